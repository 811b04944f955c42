//! Training jobs, hyperparameter tuning and Autopilot (reference §3.10, §3.11). These deploy once,
//! in the first environment, so nothing here varies per stage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Choice, ProblemType};
use crate::domain::names::JobName;
use crate::domain::values::{AssetKey, InstanceType, KmsKeyArn};

/// `model_training_builtin`, and `model_tuner_builtin` when `tuner` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSpec {
    pub model_name: String,
    pub training_data: AssetKey,
    pub validation_data: Option<AssetKey>,
    pub job_output_location: AssetKey,
    pub model_framework: String,
    pub model_framework_version: String,
    /// The request's `algo_hyperparamaters` (sic): scalar values by name.
    #[schema(value_type = Object)]
    pub algo_hyperparameters: Map<String, Value>,
    /// `None`: generated per provisioning as `<model_name>-<training|tuner>-<4 hex>` (see `plan`).
    pub job_name: Option<JobName>,
    pub instance_type: InstanceType,
    pub instance_count: u32,
    /// GB.
    pub instance_volume_size: u32,
    pub encrypt_inner_traffic: bool,
    pub max_runtime_per_job: u32,
    pub use_spot_instances: bool,
    pub max_wait_time_spot_instances: u32,
    pub content_type: String,
    pub s3_data_type: S3DataType,
    pub data_distribution: DataDistribution,
    pub compression_type: Option<CompressionType>,
    pub data_input_mode: DataInputMode,
    pub data_record_wrapping: Option<RecordWrapping>,
    /// Empty: not set.
    pub attribute_names: Vec<String>,
    pub kms_key_arn: Option<KmsKeyArn>,
    pub tuner: Option<TunerSpec>,
}

/// The tuning part of `model_tuner_builtin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TunerSpec {
    /// `HyperparameterTuner` arguments (`objective_metric_name`, `max_jobs`, ...): known ones
    /// checked, digit strings normalised to integers, the rest passed through.
    #[schema(value_type = Object)]
    pub tuner_configs: Map<String, Value>,
    /// The request's `hyperparamaters_ranges` (sic).
    pub hyperparameter_ranges: BTreeMap<String, HyperparameterRange>,
}

impl TunerSpec {
    /// The ranges back in the request's form, `{name: ["continuous", [min, max]], ...}`: what the
    /// solution's template documents and what the local tuner reads.
    pub fn ranges_in_request_form(&self) -> Map<String, Value> {
        self.hyperparameter_ranges
            .iter()
            .map(|(name, range)| {
                let value = match range {
                    HyperparameterRange::Continuous { min, max } => serde_json::json!(["continuous", [min, max]]),
                    HyperparameterRange::Integer { min, max } => serde_json::json!(["integer", [min, max]]),
                    HyperparameterRange::Categorical { values } => serde_json::json!(["categorical", values]),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// One tunable hyperparameter (request form `["continuous", [min, max]]`, `["integer", [min,
/// max]]` or `["categorical", [values...]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HyperparameterRange {
    Continuous { min: f64, max: f64 },
    Integer { min: i64, max: i64 },
    Categorical { values: Vec<String> },
}

/// `model_autopilot_training`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutopilotSpec {
    pub model_name: String,
    pub training_data: AssetKey,
    pub job_output_location: AssetKey,
    pub target_attribute: String,
    /// `None`: generated per provisioning as `<model_name>-autopilot-<4 hex>` (see `plan`).
    pub job_name: Option<JobName>,
    /// Set together with `job_objective`, or neither (Autopilot infers both).
    pub problem_type: Option<ProblemType>,
    pub job_objective: Option<AutopilotObjective>,
    pub compression_type: Option<CompressionType>,
    pub job_max_candidates: u32,
    pub encrypt_inner_traffic: bool,
    pub max_runtime_per_job: u32,
    pub total_max_runtime: u32,
    pub generate_definition_only: bool,
    pub kms_key_arn: Option<KmsKeyArn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum S3DataType {
    S3Prefix,
    ManifestFile,
    AugmentedManifestFile,
}

impl Choice for S3DataType {
    const ALL: &'static [Self] = &[Self::S3Prefix, Self::ManifestFile, Self::AugmentedManifestFile];

    fn as_str(self) -> &'static str {
        match self {
            Self::S3Prefix => "S3Prefix",
            Self::ManifestFile => "ManifestFile",
            Self::AugmentedManifestFile => "AugmentedManifestFile",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum DataDistribution {
    FullyReplicated,
    ShardedByS3Key,
}

impl Choice for DataDistribution {
    const ALL: &'static [Self] = &[Self::FullyReplicated, Self::ShardedByS3Key];

    fn as_str(self) -> &'static str {
        match self {
            Self::FullyReplicated => "FullyReplicated",
            Self::ShardedByS3Key => "ShardedByS3Key",
        }
    }
}

/// Input compression; no compression is `None` (the request's empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CompressionType {
    Gzip,
}

impl Choice for CompressionType {
    const ALL: &'static [Self] = &[Self::Gzip];

    fn as_str(self) -> &'static str {
        "Gzip"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum DataInputMode {
    File,
    Pipe,
    FastFile,
}

impl Choice for DataInputMode {
    const ALL: &'static [Self] = &[Self::File, Self::Pipe, Self::FastFile];

    fn as_str(self) -> &'static str {
        match self {
            Self::File => "File",
            Self::Pipe => "Pipe",
            Self::FastFile => "FastFile",
        }
    }
}

/// Record wrapping; none is `None` (the request's empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum RecordWrapping {
    #[serde(rename = "RecordIO")]
    RecordIo,
}

impl Choice for RecordWrapping {
    const ALL: &'static [Self] = &[Self::RecordIo];

    fn as_str(self) -> &'static str {
        "RecordIO"
    }
}

/// Autopilot's objective metric (the template's allowed values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AutopilotObjective {
    Accuracy,
    #[serde(rename = "MSE")]
    Mse,
    F1,
    #[serde(rename = "F1macro")]
    F1Macro,
    #[serde(rename = "AUC")]
    Auc,
}

impl Choice for AutopilotObjective {
    const ALL: &'static [Self] = &[Self::Accuracy, Self::Mse, Self::F1, Self::F1Macro, Self::Auc];

    fn as_str(self) -> &'static str {
        match self {
            Self::Accuracy => "Accuracy",
            Self::Mse => "MSE",
            Self::F1 => "F1",
            Self::F1Macro => "F1macro",
            Self::Auc => "AUC",
        }
    }
}

impl AutopilotObjective {
    /// Whether Autopilot accepts this objective for the problem type: MSE for regression;
    /// Accuracy, F1 or AUC for binary; Accuracy or F1macro for multiclass.
    pub fn suits(self, problem_type: ProblemType) -> bool {
        match problem_type {
            ProblemType::Regression => self == Self::Mse,
            ProblemType::BinaryClassification => {
                matches!(self, Self::Accuracy | Self::F1 | Self::Auc)
            }
            ProblemType::MulticlassClassification => matches!(self, Self::Accuracy | Self::F1Macro),
        }
    }
}
