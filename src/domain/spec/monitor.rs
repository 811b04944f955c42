//! The four model monitors: common settings plus one struct per monitor flavour.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ProblemType;
use crate::domain::cron::CronExpression;
use crate::domain::names::EndpointName;
use crate::domain::per_stage::PerStage;
use crate::domain::pipeline_type::MonitorType;
use crate::domain::values::{AssetKey, InstanceType, KmsKeyArn, S3Location};

/// Settings shared by all monitors (reference §3.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorSpec {
    /// The monitored endpoint (lower-cased); also the prefix of generated job names.
    pub endpoint_name: PerStage<EndpointName>,
    /// CSV with a header row, in the assets bucket.
    pub baseline_data: AssetKey,
    pub baseline_job_output_location: PerStage<S3Location>,
    /// The endpoint's data-capture location.
    pub data_capture_location: PerStage<S3Location>,
    pub monitoring_output_location: PerStage<S3Location>,
    pub schedule_expression: PerStage<CronExpression>,
    pub monitor_max_runtime_seconds: PerStage<u32>,
    pub instance_type: PerStage<InstanceType>,
    /// GB.
    pub instance_volume_size: PerStage<u32>,
    /// `None`: no limit.
    pub baseline_max_runtime_seconds: PerStage<Option<u32>>,
    pub kms_key_arn: PerStage<Option<KmsKeyArn>>,
    /// Merged ground-truth labels; set for model quality and model bias, `None` otherwise.
    pub monitor_ground_truth_input: Option<PerStage<S3Location>>,
    pub kind: MonitorKind,
}

/// What the monitor checks, with the settings only that flavour has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "monitor", rename_all = "snake_case")]
pub enum MonitorKind {
    DataQuality,
    ModelQuality(ModelQualitySpec),
    ModelBias(ModelBiasSpec),
    ModelExplainability(ModelExplainabilitySpec),
}

impl MonitorKind {
    pub fn monitor_type(&self) -> MonitorType {
        match self {
            Self::DataQuality => MonitorType::DataQuality,
            Self::ModelQuality(_) => MonitorType::ModelQuality,
            Self::ModelBias(_) => MonitorType::ModelBias,
            Self::ModelExplainability(_) => MonitorType::ModelExplainability,
        }
    }
}

/// `byom_model_quality_monitor` (reference §3.6). Attributes are column names/indices or
/// JSONPaths, kept as strings as the template parameters are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelQualitySpec {
    pub problem_type: ProblemType,
    pub baseline_inference_attribute: String,
    pub baseline_ground_truth_attribute: String,
    /// Required for binary classification.
    pub baseline_probability_attribute: Option<String>,
    pub monitor_inference_attribute: Option<String>,
    pub monitor_probability_attribute: Option<String>,
    /// In [0, 1].
    pub probability_threshold_attribute: Option<f64>,
}

/// `byom_model_bias_monitor` (reference §3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelBiasSpec {
    pub problem_type: ProblemType,
    /// `sagemaker.clarify.BiasConfig` arguments, checked (`label_values_or_threshold`,
    /// `facet_name`, `facet_values_or_threshold`, `group_name`) and passed through as given.
    #[schema(value_type = Object)]
    pub bias_config: Map<String, Value>,
    /// `sagemaker.clarify.ModelPredictedLabelConfig` arguments; required for classification.
    #[schema(value_type = Option<Object>)]
    pub model_predicted_label_config: Option<Map<String, Value>>,
    pub monitor_inference_attribute: Option<String>,
    pub monitor_probability_attribute: Option<String>,
    pub probability_threshold_attribute: Option<f64>,
    pub features_attribute: Option<String>,
}

/// `byom_model_explainability_monitor` (reference §3.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelExplainabilitySpec {
    pub problem_type: ProblemType,
    pub shap_config: ShapConfig,
    pub model_scores: Option<ModelScores>,
    pub monitor_inference_attribute: Option<String>,
    pub monitor_probability_attribute: Option<String>,
    pub probability_threshold_attribute: Option<f64>,
    pub features_attribute: Option<String>,
}

/// `sagemaker.clarify.SHAPConfig` arguments. The baseline is separate because a string baseline
/// is an asset key that the AWS target rewrites to `s3://<assets>/<key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShapConfig {
    pub baseline: Option<ShapBaseline>,
    /// The other arguments (`num_samples`, `agg_method`, ...), checked and passed through.
    #[schema(value_type = Object)]
    pub options: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ShapBaseline {
    /// A CSV in the assets bucket.
    AssetKey(AssetKey),
    /// Inline baseline rows.
    #[schema(value_type = Vec<Object>)]
    Rows(Vec<Value>),
}

/// Which model output to explain: an index or a JSONPath/header name (Clarify treats the two
/// differently, so the JSON type is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ModelScores {
    Index(u32),
    Name(String),
}
