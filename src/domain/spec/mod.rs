//! The typed, validated form of a provisioning request. Built only by
//! [`parse_request`](super::request::parse_request); stored as JSON and read back losslessly.
//!
//! Field names follow the request keys, except where the solution misspells them
//! (`algo_hyperparamaters` → `algo_hyperparameters`, `hyperparamaters_ranges` →
//! `hyperparameter_ranges`). Defaults from reference §3.10/§3.11 are already applied.

mod inference;
mod monitor;
mod training;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::names;
use super::pipeline_type::PipelineType;

pub use inference::{BatchSpec, ImageBuilderSpec, ModelSource, RealtimeSpec};
pub use monitor::{
    ModelBiasSpec, ModelExplainabilitySpec, ModelQualitySpec, ModelScores, MonitorKind, MonitorSpec, ShapBaseline,
    ShapConfig,
};
pub use training::{
    AutopilotObjective, AutopilotSpec, CompressionType, DataDistribution, DataInputMode, HyperparameterRange,
    RecordWrapping, S3DataType, TrainingSpec, TunerSpec,
};

/// A validated pipeline request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineSpec {
    pub pipeline_type: PipelineType,
    /// The pipeline's identity within its type: the trimmed, lower-cased `model_name` (`image_tag`
    /// for the image builder). The same type and name again means "update this pipeline", as the
    /// solution's stack name (which is lower-cased) does.
    pub name: String,
    pub params: PipelineParams,
}

impl PipelineSpec {
    /// The deployed workload's stack name (reference §6.2).
    pub fn stack_name(&self) -> String {
        names::stack_name(self.pipeline_type, &self.name)
    }
}

/// The parameters of each pipeline family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum PipelineParams {
    Realtime(RealtimeSpec),
    Batch(BatchSpec),
    Monitor(MonitorSpec),
    ImageBuilder(ImageBuilderSpec),
    /// `model_training_builtin` and `model_tuner_builtin` (with `tuner` set).
    Training(TrainingSpec),
    Autopilot(AutopilotSpec),
}

/// A closed set of string values, spelled as the solution spells them.
pub trait Choice: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// The model's problem type (monitors and Autopilot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ProblemType {
    Regression,
    BinaryClassification,
    MulticlassClassification,
}

impl Choice for ProblemType {
    const ALL: &'static [Self] = &[Self::Regression, Self::BinaryClassification, Self::MulticlassClassification];

    fn as_str(self) -> &'static str {
        match self {
            Self::Regression => "Regression",
            Self::BinaryClassification => "BinaryClassification",
            Self::MulticlassClassification => "MulticlassClassification",
        }
    }
}
