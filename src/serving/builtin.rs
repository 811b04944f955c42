//! Models this process evaluates itself, whichever library made them: XGBoost (our evaluator of
//! its JSON and UBJSON files) and ONNX (tract). The file says which it is; `model_framework` only
//! has to agree with it.

use super::onnx::{OnnxError, OnnxModel, looks_like_onnx};
use super::xgboost::{Booster, LoadError as XgboostError, ModelLimits};

pub enum BuiltinModel {
    Xgboost(Booster),
    Onnx(OnnxModel),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Xgboost(#[from] XgboostError),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("model_framework is `onnx` but the model file is not an ONNX file")]
    NotOnnx,
    /// A hostile or broken file made a parser panic; the load fails, the process goes on.
    #[error("loading the model failed: {0}")]
    Panicked(String),
}

/// A failed evaluation (a tract error; XGBoost evaluation cannot fail).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PredictError(pub String);

impl BuiltinModel {
    /// Loads a model file; `framework` is the request's `model_framework`.
    pub fn load(file: &[u8], framework: &str, limits: &ModelLimits) -> Result<Self, LoadError> {
        if looks_like_onnx(file) {
            return Ok(BuiltinModel::Onnx(OnnxModel::load(file)?));
        }
        if framework.eq_ignore_ascii_case("onnx") {
            return Err(LoadError::NotOnnx);
        }
        Ok(BuiltinModel::Xgboost(Booster::load_within(file, limits)?))
    }

    /// The framework the file turned out to be.
    pub fn framework(&self) -> &'static str {
        match self {
            BuiltinModel::Xgboost(_) => "xgboost",
            BuiltinModel::Onnx(_) => "onnx",
        }
    }

    pub fn num_features(&self) -> usize {
        match self {
            BuiltinModel::Xgboost(b) => b.num_features(),
            BuiltinModel::Onnx(m) => m.num_features(),
        }
    }

    /// Numbers per row in an answer.
    pub fn num_outputs(&self) -> usize {
        match self {
            BuiltinModel::Xgboost(b) => b.num_outputs(),
            BuiltinModel::Onnx(m) => m.num_outputs(),
        }
    }

    /// What the model computes: XGBoost's objective, or what an ONNX model answers with.
    pub fn objective(&self) -> &str {
        match self {
            BuiltinModel::Xgboost(b) => b.objective(),
            BuiltinModel::Onnx(m) => m.description(),
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        match self {
            BuiltinModel::Xgboost(b) => b.memory_bytes(),
            BuiltinModel::Onnx(m) => m.memory_bytes(),
        }
    }

    /// Answers for `values` (whole rows of `num_features()`), appended to `out`.
    pub fn predict_rows(&self, values: &[f32], out: &mut Vec<f64>) -> Result<(), PredictError> {
        match self {
            // One row (the usual invocation) skips the block set-up of predict_rows.
            BuiltinModel::Xgboost(b) if values.len() == b.num_features() => {
                b.predict_row(values, out);
                Ok(())
            }
            BuiltinModel::Xgboost(b) => {
                b.predict_rows(values, out);
                Ok(())
            }
            BuiltinModel::Onnx(m) => m.predict_rows(values, out).map_err(|e| PredictError(e.to_string())),
        }
    }
}
