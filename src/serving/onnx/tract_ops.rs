//! Our evaluators of `ai.onnx.ml` operators ([`super::trees`], [`super::linear`]) as tract
//! operators, registered in place of tract's own (those modules say why).

use super::linear::LinearClassifier;
use super::scores::Labels;
use super::trees::Ensemble;
use std::sync::Arc;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::Array1;

pub fn register(register: &mut OnnxOpRegister) {
    register.insert("TreeEnsembleClassifier", tree_ensemble);
    register.insert("TreeEnsembleRegressor", tree_ensemble);
    register.insert("LinearClassifier", linear_classifier);
}

fn tree_ensemble(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ensemble = Ensemble::from_node(node).map_err(|e| format_err!("{e}"))?;
    Ok((expand(RowExpansion(Arc::new(RowModel::Trees(ensemble)))), vec![]))
}

fn linear_classifier(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let linear =
        LinearClassifier::from_node(node).map_err(|e| format_err!("node {:?} (LinearClassifier): {e}", node.name))?;
    Ok((expand(RowExpansion(Arc::new(RowModel::Linear(linear)))), vec![]))
}

/// An operator that maps each row of a [rows, features] input to scores (and a label).
#[derive(Debug)]
enum RowModel {
    Trees(Ensemble),
    Linear(LinearClassifier),
}

impl RowModel {
    fn width(&self) -> usize {
        match self {
            RowModel::Trees(e) => e.width(),
            RowModel::Linear(l) => l.width(),
        }
    }

    fn labels(&self) -> Option<&Labels> {
        match self {
            RowModel::Trees(e) => e.labels.as_ref(),
            RowModel::Linear(l) => Some(&l.labels),
        }
    }

    fn check_features(&self, features: usize) -> TractResult<()> {
        match self {
            RowModel::Trees(e) => {
                if let Some(max) = e.max_feature
                    && max as usize >= features
                {
                    bail!("the trees read feature {max}, the input has {features}");
                }
            }
            RowModel::Linear(l) => {
                if l.features != features {
                    bail!("the classifier has coefficients for {} features, the input has {features}", l.features);
                }
            }
        }
        Ok(())
    }

    fn eval(&self, values: &[f32], features: usize, scores: &mut Vec<f32>, winners: &mut Vec<usize>) {
        match self {
            RowModel::Trees(e) => e.eval(values, features, scores, winners),
            RowModel::Linear(l) => l.eval(values, scores, winners),
        }
    }
}

/// The inference-time form: declares the shapes, then wires the typed operator.
#[derive(Debug, Clone)]
struct RowExpansion(Arc<RowModel>);

fn label_type(model: &RowModel) -> Option<DatumType> {
    model.labels().map(|labels| match labels {
        Labels::Ints(_) => i64::datum_type(),
        Labels::Strings(_) => String::datum_type(),
    })
}

impl Expansion for RowExpansion {
    fn name(&self) -> StaticName {
        "MlRows".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.0.labels().is_some() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.nboutputs()?)?;
        s.equals(&inputs[0].rank, 2)?;
        let scores = outputs.last().expect("one output at least");
        s.equals(&scores.datum_type, f32::datum_type())?;
        s.equals(&scores.rank, 2)?;
        s.equals(&scores.shape[0], &inputs[0].shape[0])?;
        s.equals(&scores.shape[1], self.0.width().to_dim())?;
        if let Some(label_type) = label_type(&self.0) {
            s.equals(&outputs[0].datum_type, label_type)?;
            s.equals(&outputs[0].rank, 1)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, RowOp(self.0.clone()), inputs)
    }
}

/// The typed operator: rows in, (labels and) scores out.
#[derive(Debug, Clone)]
struct RowOp(Arc<RowModel>);

impl PartialEq for RowOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RowOp {}

impl Op for RowOp {
    fn name(&self) -> StaticName {
        "MlRows".into()
    }

    op_as_typed_op!();
}

impl EvalOp for RowOp {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let (rows, features) = match input.shape() {
            [rows, features] => (*rows, *features),
            shape => bail!("a tree ensemble takes [rows, features], not {shape:?}"),
        };
        self.0.check_features(features)?;
        let plain = input.try_as_plain_ram()?;
        let values = plain.as_slice::<f32>()?;
        let (mut scores, mut winners) = (Vec::with_capacity(rows * self.0.width()), Vec::with_capacity(rows));
        if features > 0 {
            self.0.eval(values, features, &mut scores, &mut winners);
        }
        if winners.len() != rows {
            bail!("{rows} rows of {features} features gave {} answers", winners.len());
        }
        let scores = Tensor::from_shape(&[rows, self.0.width()], &scores)?.into_tvalue();
        let labels = match self.0.labels() {
            None => return Ok(tvec!(scores)),
            Some(Labels::Ints(labels)) => {
                let picked: Vec<i64> = winners.iter().map(|w| labels[*w]).collect();
                Tensor::from_shape(&[rows], &picked)?
            }
            Some(Labels::Strings(labels)) => {
                Tensor::from(Array1::from_iter(winners.iter().map(|w| labels[*w].clone())).into_dyn())
            }
        };
        Ok(tvec!(labels.into_tvalue(), scores))
    }
}

impl TypedOp for RowOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        let scores = f32::fact(&[rows.clone(), self.0.width().to_dim()]);
        Ok(match label_type(&self.0) {
            None => tvec!(scores),
            Some(label_type) => tvec!(label_type.fact(&[rows]), scores),
        })
    }

    as_op!();
}
