//! Prepares an ONNX graph for serving before tract sees it: picks the output that answers an
//! invocation, keeps only the nodes that output needs, rewrites the few `ai.onnx.ml` operators
//! that are plain arithmetic into standard ones, and checks that every remaining operator is one
//! the runtime has, so an unsupported model fails at deploy, naming the operator.
//!
//! Converters (skl2onnx, onnxmltools) give classifiers two outputs: the label, and the
//! probabilities, often behind a `ZipMap` that turns them into a list of maps. The probabilities
//! are what a model endpoint answers with (as SageMaker's XGBoost answers `binary:logistic` with
//! the probability), so the label branch goes and the `ZipMap` is skipped.

use std::collections::HashSet;
use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, attribute_proto,
    tensor_proto, type_proto,
};

/// ONNX element types this module reads.
const FLOAT: i32 = tensor_proto::DataType::Float as i32;
const DOUBLE: i32 = tensor_proto::DataType::Double as i32;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("the file holds no ONNX graph")]
    NoGraph,
    #[error("the model keeps tensor {0:?} in an external data file; save it with its weights inside the .onnx file")]
    ExternalData(String),
    #[error("the model takes {0} inputs ({1}); the local target feeds one [rows, features] tensor")]
    Inputs(usize, String),
    #[error("input {name:?} is {what}; the local target feeds a float or double tensor of shape [rows, features]")]
    InputType { name: String, what: String },
    #[error("the model has no floating-point output to answer with (outputs: {0})")]
    NoOutput(String),
    #[error("{}", unsupported_message(.0))]
    Unsupported(Vec<(String, String)>),
}

fn unsupported_message(operators: &[(String, String)]) -> String {
    let list: Vec<String> = operators.iter().map(|(op, node)| format!("`{op}` (node {node:?})")).collect();
    format!("the local ONNX runtime does not implement operator {}", list.join(", "))
}

/// What serving needs to know about a prepared graph.
#[derive(Debug)]
pub struct Prepared {
    pub proto: ModelProto,
    pub input_is_double: bool,
    pub num_features: usize,
    /// A batch size the model fixes (it was exported for that many rows), if any.
    pub fixed_batch: Option<usize>,
    pub output_name: String,
    /// The model also had a label output: a classifier.
    pub classifier: bool,
    /// The operators left after pruning, as `domain.OpType`.
    pub operators: Vec<String>,
}

fn tensor_type(info: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match info.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t),
    }
}

fn domain_name(domain: &str) -> &str {
    if domain.is_empty() { "ai.onnx" } else { domain }
}

/// Prepares `proto`; `implemented(op_type)` says whether the runtime has an operator.
pub fn prepare(mut proto: ModelProto, implemented: impl Fn(&str) -> bool) -> Result<Prepared, GraphError> {
    let graph = proto.graph.as_mut().ok_or(GraphError::NoGraph)?;
    if let Some(t) =
        graph.initializer.iter().find(|t| t.data_location == Some(tensor_proto::DataLocation::External as i32))
    {
        return Err(GraphError::ExternalData(t.name.clone()));
    }

    // The one fed input.
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(GraphError::Inputs(inputs.len(), names.join(", ")));
    };
    let input_error = |what: String| GraphError::InputType { name: input.name.clone(), what };
    let tensor = tensor_type(input).ok_or_else(|| input_error("not a tensor".into()))?;
    let input_is_double = match tensor.elem_type {
        FLOAT => false,
        DOUBLE => true,
        other => return Err(input_error(format!("of element type {}", element_type_name(other)))),
    };
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    let dims: Vec<Option<&Dim>> =
        tensor.shape.as_ref().map(|s| s.dim.iter().map(|d| d.value.as_ref()).collect()).unwrap_or_default();
    let (fixed_batch, num_features) = match dims.as_slice() {
        [batch, Some(Dim::DimValue(features))] if *features > 0 => {
            let fixed = match batch {
                Some(Dim::DimValue(b)) if *b > 0 => Some(*b as usize),
                _ => None,
            };
            (fixed, *features as usize)
        }
        _ => return Err(input_error(format!("of shape {}", shape_text(&dims)))),
    };

    // The output that answers, and whether there is a label beside it.
    let producer = |name: &str| graph.node.iter().find(|n| n.output.iter().any(|o| o == name));
    let mut candidates: Vec<(String, Option<ValueInfoProto>)> = Vec::new();
    let mut classifier = false;
    for output in &graph.output {
        if let Some(zipmap) = producer(&output.name).filter(|n| n.op_type == "ZipMap")
            && let Some(probabilities) = zipmap.input.first()
        {
            candidates.push((probabilities.clone(), None));
            classifier = true;
            continue;
        }
        match tensor_type(output).map(|t| t.elem_type) {
            Some(FLOAT | DOUBLE) => candidates.push((output.name.clone(), Some(output.clone()))),
            Some(_) => classifier = true,
            None => {}
        }
    }
    let chosen = candidates
        .iter()
        .find(|(name, _)| name.to_ascii_lowercase().contains("prob"))
        .or(candidates.first())
        .cloned()
        .ok_or_else(|| {
            GraphError::NoOutput(graph.output.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "))
        })?;
    let (output_name, info) = chosen;
    graph.output = vec![info.unwrap_or(ValueInfoProto { name: output_name.clone(), ..Default::default() })];

    // Keep the nodes the output needs (ONNX lists nodes in topological order).
    let mut needed: HashSet<String> = HashSet::from([output_name.clone()]);
    let mut kept: Vec<NodeProto> = Vec::new();
    for node in graph.node.drain(..).rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            needed.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
            kept.push(node);
        }
    }
    kept.reverse();
    graph.initializer.retain(|t| needed.contains(&t.name));

    // Arithmetic operators of ai.onnx.ml, rewritten into the standard ones tract has.
    let mut nodes = Vec::with_capacity(kept.len());
    for node in kept {
        match (domain_name(&node.domain), node.op_type.as_str()) {
            ("ai.onnx.ml", "Scaler") => nodes.extend(rewrite_scaler(node, &mut graph.initializer)),
            _ => nodes.push(node),
        }
    }
    graph.node = nodes;

    let mut unsupported: Vec<(String, String)> = Vec::new();
    for node in &graph.node {
        let domain = domain_name(&node.domain);
        let operator = format!("{domain}.{}", node.op_type);
        let known = matches!(domain, "ai.onnx" | "ai.onnx.ml") && implemented(&node.op_type);
        if !known && !unsupported.iter().any(|(op, _)| *op == operator) {
            unsupported.push((operator, node.name.clone()));
        }
    }
    if !unsupported.is_empty() {
        return Err(GraphError::Unsupported(unsupported));
    }
    let mut operators: Vec<String> =
        graph.node.iter().map(|n| format!("{}.{}", domain_name(&n.domain), n.op_type)).collect();
    operators.sort();
    operators.dedup();

    // The standard operators the rewrite added need a standard opset (broadcasting since 7).
    if !proto.opset_import.iter().any(|o| o.domain.is_empty() || o.domain == "ai.onnx") {
        proto.opset_import.push(OperatorSetIdProto { domain: String::new(), version: 13 });
    }
    Ok(Prepared { proto, input_is_double, num_features, fixed_batch, output_name, classifier, operators })
}

/// `Scaler`: `(x - offset) * scale` per feature, as Cast, Sub and Mul.
fn rewrite_scaler(node: NodeProto, initializers: &mut Vec<TensorProto>) -> Vec<NodeProto> {
    let floats = |name: &str| node.attribute.iter().find(|a| a.name == name).map(|a| a.floats.clone());
    let offset = floats("offset").unwrap_or_else(|| vec![0.0]);
    let scale = floats("scale").unwrap_or_else(|| vec![1.0]);
    let (x, y) = (node.input.first().cloned().unwrap_or_default(), node.output.first().cloned().unwrap_or_default());
    let names = [
        format!("{y}__mlops_offset"),
        format!("{y}__mlops_scale"),
        format!("{y}__mlops_x"),
        format!("{y}__mlops_centred"),
    ];
    for (name, values) in [(&names[0], offset), (&names[1], scale)] {
        initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: FLOAT,
            float_data: values,
            ..Default::default()
        });
    }
    let op = |op_type: &str, inputs: [&str; 2], output: &str, attribute: Vec<AttributeProto>| NodeProto {
        name: format!("{}__{op_type}", node.name),
        op_type: op_type.into(),
        input: inputs.iter().filter(|i| !i.is_empty()).map(|i| i.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    };
    let to_float = AttributeProto {
        name: "to".into(),
        i: FLOAT as i64,
        r#type: attribute_proto::AttributeType::Int as i32,
        ..Default::default()
    };
    vec![
        op("Cast", [&x, ""], &names[2], vec![to_float]),
        op("Sub", [&names[2], &names[0]], &names[3], vec![]),
        op("Mul", [&names[3], &names[1]], &y, vec![]),
    ]
}

fn element_type_name(code: i32) -> String {
    tensor_proto::DataType::try_from(code)
        .map(|t| t.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| code.to_string())
}

fn shape_text(dims: &[Option<&tract_onnx::pb::tensor_shape_proto::dimension::Value>]) -> String {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Some(Dim::DimValue(v)) => v.to_string(),
            Some(Dim::DimParam(p)) => p.clone(),
            None => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
