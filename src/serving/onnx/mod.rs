//! ONNX models (`model_framework: onnx`, or an artifact that is an ONNX file), evaluated in this
//! process with tract, a pure-Rust runtime: converted scikit-learn, LightGBM and XGBoost models
//! and small networks.
//!
//! A model answers like SageMaker's built-in XGBoost: one line (CSV) or entry (JSON) per row,
//! holding the model's floating-point output. For a classifier that is the probabilities; with
//! two classes, only the positive class's (as `binary:logistic` answers), so a binary model
//! answers one number per row whichever library made it.
//!
//! Everything that can fail does so at deploy: the graph is prepared ([`graph`]), typed and
//! optimised for any number of rows, and run once on a row of zeros before the endpoint goes
//! into service.

mod graph;
mod linear;
mod scores;
mod tract_ops;
mod trees;

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("not a readable ONNX model: {0}")]
    Parse(String),
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    #[error("the ONNX runtime cannot prepare this model: {0}")]
    Prepare(String),
    #[error("the model's output {name:?} has shape {shape}; the local target answers with [rows] or [rows, columns]")]
    OutputShape { name: String, shape: String },
    #[error("the model failed to evaluate: {0}")]
    Run(String),
}

/// Which columns of the output answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Every,
    /// The second of two columns (a binary classifier's positive class).
    SecondColumn,
}

pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    num_features: usize,
    input_is_double: bool,
    fixed_batch: Option<usize>,
    /// Columns of the model's output per row.
    columns: usize,
    answer: Answer,
    description: String,
    operators: Vec<String>,
    memory_bytes: u64,
    /// The one tree ensemble reading the model's input, which exact TreeSHAP can explain.
    trees: Option<Box<trees::Ensemble>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel").field("description", &self.description).finish_non_exhaustive()
    }
}

/// Whether `bytes` look like an ONNX file: a serialized ModelProto starts with its `ir_version`
/// (field 1, varint: tag byte 0x08), where XGBoost's JSON and UBJSON start with `{`.
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x08)
}

/// Runs `work`, a call into tract, turning a panic into an error: tract asserts on graphs it
/// does not expect (found by fuzzing model files: an output no node produces panics while the
/// graph is built), and a hostile model must be a refused model, whoever loads or runs it.
fn guarded<T>(
    work: impl FnOnce() -> Result<T, OnnxError>,
    error: impl FnOnce(String) -> OnnxError,
) -> Result<T, OnnxError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        Err(error(format!("the runtime panicked: {}", crate::tasks::panic_message(panic.as_ref()))))
    })
}

impl OnnxModel {
    /// Parses, prepares, optimises and test-runs a model.
    pub fn load(bytes: &[u8]) -> Result<Self, OnnxError> {
        guarded(|| Self::load_unguarded(bytes), OnnxError::Prepare)
    }

    fn load_unguarded(bytes: &[u8]) -> Result<Self, OnnxError> {
        let mut onnx = tract_onnx::onnx();
        tract_ops::register(&mut onnx.op_register);
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| OnnxError::Parse(format!("{e:#}")))?;
        let prepared = graph::prepare(proto, |op| onnx.op_register.0.contains_key(op))?;
        let prepare_error = |e: TractError| OnnxError::Prepare(format!("{e:#}"));
        let mut model = onnx.model_for_proto_model(&prepared.proto).map_err(prepare_error)?;
        let rows: TDim = match prepared.fixed_batch {
            Some(batch) => batch.to_dim(),
            None => model.symbols.sym("rows").to_dim(),
        };
        let datum = if prepared.input_is_double { f64::datum_type() } else { f32::datum_type() };
        model
            .set_input_fact(0, InferenceFact::dt_shape(datum, [rows, prepared.num_features.to_dim()]))
            .map_err(prepare_error)?;
        model.set_output_fact(0, InferenceFact::default()).map_err(prepare_error)?;
        let typed = model.into_optimized().map_err(prepare_error)?;
        let output = typed.output_fact(0).map_err(prepare_error)?;
        let shape_error =
            || OnnxError::OutputShape { name: prepared.output_name.clone(), shape: format!("{:?}", output.shape) };
        let columns = match output.shape.as_concrete().map(|s| s.len()).unwrap_or(output.shape.rank()) {
            1 => 1,
            2 => output.shape[1].to_usize().map_err(|_| shape_error())?,
            _ => return Err(shape_error()),
        };
        if columns == 0 {
            return Err(shape_error());
        }
        let answer = if prepared.classifier && columns == 2 { Answer::SecondColumn } else { Answer::Every };
        let description = match (prepared.classifier, columns) {
            (true, 2) => "onnx classifier: positive-class probability".to_string(),
            (true, c) => format!("onnx classifier: {c} class probabilities"),
            (false, 1) => "onnx regressor".to_string(),
            (false, c) => format!("onnx model: {c} outputs"),
        };
        let plan = typed.into_runnable().map_err(prepare_error)?;
        let trees = input_ensemble(&prepared.proto).map(Box::new);
        let model = Self {
            plan,
            num_features: prepared.num_features,
            input_is_double: prepared.input_is_double,
            fixed_batch: prepared.fixed_batch,
            columns,
            answer,
            description,
            operators: prepared.operators,
            // The plan holds the weights once more than the file (and our copy of a tree
            // ensemble once again); tract's own buffers are small beside them for these models.
            memory_bytes: (2 + u64::from(trees.is_some())) * bytes.len() as u64,
            trees,
        };
        let mut out = Vec::new();
        model.predict_rows(&vec![0.0; model.num_features], &mut out)?;
        Ok(model)
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Numbers per row in an answer.
    pub fn num_outputs(&self) -> usize {
        match self.answer {
            Answer::Every => self.columns,
            Answer::SecondColumn => 1,
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The operators the served graph runs, as `domain.OpType`.
    pub fn operators(&self) -> &[String] {
        &self.operators
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Answers for `values` (rows of `num_features` values, NaN = missing), appended to `out`.
    pub fn predict_rows(&self, values: &[f32], out: &mut Vec<f64>) -> Result<(), OnnxError> {
        let rows = values.len() / self.num_features;
        match self.fixed_batch {
            None => self.run(values, rows, out),
            Some(batch) => {
                // Exported for a fixed number of rows: whole batches, the last one padded.
                for block in values.chunks(batch * self.num_features) {
                    let real = block.len() / self.num_features;
                    let mut padded = block.to_vec();
                    padded.resize(batch * self.num_features, 0.0);
                    let start = out.len();
                    self.run(&padded, batch, out)?;
                    out.truncate(start + real * self.num_outputs());
                }
                Ok(())
            }
        }
    }

    /// Exact TreeSHAP of answer column `score` against `background` rows, for a model that is
    /// one additive tree ensemble (`trees::shap`). `records` are the rows to be explained: the
    /// ensemble must answer them exactly as the whole graph does, or the graph changes the trees'
    /// scores in ways TreeSHAP does not see.
    pub fn tree_shap(
        &self,
        score: usize,
        background: &[Vec<f64>],
        records: &[Vec<f64>],
    ) -> Result<TreeShap<'_>, String> {
        let Some(ensemble) = &self.trees else {
            return Err("exact TreeSHAP needs a model that is one tree ensemble reading the model's input".into());
        };
        if ensemble.max_depth() > trees::shap::MAX_DEPTH {
            return Err(format!(
                "a tree of the model is deeper than {} levels: exact TreeSHAP is refused, use kernel",
                trees::shap::MAX_DEPTH
            ));
        }
        if !ensemble.is_additive() {
            return Err("exact TreeSHAP needs trees whose scores add up (aggregate_function SUM or AVERAGE)".into());
        }
        if background.is_empty() {
            return Err("exact TreeSHAP of an ONNX model needs baseline rows (shap_config.baseline)".into());
        }
        if score >= self.num_outputs() {
            return Err(format!("output {score} asked; the model answers {} per row", self.num_outputs()));
        }
        let output = match self.answer {
            Answer::Every => score,
            Answer::SecondColumn => 1,
        };
        let rows = |rows: &[Vec<f64>]| -> Vec<Vec<f32>> {
            rows.iter()
                .map(|r| {
                    let mut row: Vec<f32> = r.iter().map(|x| *x as f32).collect();
                    row.resize(self.num_features, f32::NAN);
                    row
                })
                .collect()
        };
        let flat: Vec<f32> = rows(records).concat();
        let (mut scores, mut winners) = (Vec::new(), Vec::new());
        ensemble.eval(&flat, self.num_features, &mut scores, &mut winners);
        let mut answers = Vec::new();
        self.predict_rows(&flat, &mut answers).map_err(|e| e.to_string())?;
        let outputs = self.num_outputs();
        for (i, (trees, model)) in scores.chunks(ensemble.width()).zip(answers.chunks(outputs)).enumerate() {
            let (trees, model) = (f64::from(trees[output]), model[score]);
            if (trees - model).abs() > 1e-5 * model.abs().max(1.0) {
                return Err(format!(
                    "the ONNX graph changes its tree ensemble's scores (record {}: trees {trees}, model {model}); \
                     exact TreeSHAP explains the ensemble alone: use the kernel algorithm",
                    i + 1
                ));
            }
        }
        Ok(TreeShap {
            ensemble,
            column: ensemble.scored_column(output),
            background: rows(background),
            width: self.num_features,
        })
    }

    fn run(&self, values: &[f32], rows: usize, out: &mut Vec<f64>) -> Result<(), OnnxError> {
        guarded(|| self.run_unguarded(values, rows, out), OnnxError::Run)
    }

    fn run_unguarded(&self, values: &[f32], rows: usize, out: &mut Vec<f64>) -> Result<(), OnnxError> {
        let run_error = |e: TractError| OnnxError::Run(format!("{e:#}"));
        let shape = [rows, self.num_features];
        let input = if self.input_is_double {
            let doubles: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
            Tensor::from_shape(&shape, &doubles)
        } else {
            Tensor::from_shape(&shape, values)
        }
        .map_err(run_error)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue())).map_err(run_error)?;
        let output = outputs[0].cast_to::<f64>().map_err(run_error)?;
        let plain = output.try_as_plain_ram().map_err(run_error)?;
        let numbers = plain.as_slice::<f64>().map_err(run_error)?;
        if numbers.len() != rows * self.columns {
            return Err(OnnxError::Run(format!(
                "the model answered {} numbers for {rows} rows of {} columns",
                numbers.len(),
                self.columns
            )));
        }
        match self.answer {
            Answer::Every => out.extend_from_slice(numbers),
            Answer::SecondColumn => out.extend(numbers.chunks_exact(2).map(|pair| pair[1])),
        }
        Ok(())
    }
}

/// The model's one tree ensemble, when it reads the model's input (directly or through a
/// `Cast`): what exact TreeSHAP explains.
fn input_ensemble(proto: &tract_onnx::pb::ModelProto) -> Option<trees::Ensemble> {
    let graph = proto.graph.as_ref()?;
    let input = &graph.input.first()?.name;
    let mut ensembles =
        graph.node.iter().filter(|n| matches!(n.op_type.as_str(), "TreeEnsembleClassifier" | "TreeEnsembleRegressor"));
    let node = ensembles.next()?;
    if ensembles.next().is_some() {
        return None;
    }
    let source = node.input.first()?;
    let reads_input = source == input
        || graph
            .node
            .iter()
            .any(|n| n.op_type == "Cast" && n.output.first() == Some(source) && n.input.first() == Some(input));
    if reads_input { trees::Ensemble::from_node(node).ok() } else { None }
}

/// Exact TreeSHAP of one output of an ONNX tree ensemble, in the score space before its post
/// transform (margins, as XGBoost's `pred_contribs`; a probability where there is none).
pub struct TreeShap<'a> {
    ensemble: &'a trees::Ensemble,
    column: usize,
    background: Vec<Vec<f32>>,
    width: usize,
}

impl TreeShap<'_> {
    /// One value per feature, and the expected score they add up from.
    pub fn explain(&self, record: &[f64]) -> (Vec<f64>, f64) {
        let mut row: Vec<f32> = record.iter().map(|x| *x as f32).collect();
        row.resize(self.width, f32::NAN);
        let (mut phi, expected) = self.ensemble.interventional_shap(&row, &self.background, self.column);
        phi.truncate(record.len());
        (phi, expected)
    }
}
