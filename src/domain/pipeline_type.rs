//! The twelve pipeline types of the solution, with the per-type facts that do not depend on a
//! request: stack postfix, blueprint template, and how a type is deployed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A pipeline type, spelled exactly as the solution spells it (`byom_realtime_builtin`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipelineType {
    ByomRealtimeBuiltin,
    ByomRealtimeCustom,
    ByomBatchBuiltin,
    ByomBatchCustom,
    ByomDataQualityMonitor,
    ByomModelQualityMonitor,
    ByomModelBiasMonitor,
    ByomModelExplainabilityMonitor,
    ByomImageBuilder,
    ModelTrainingBuiltin,
    ModelTunerBuiltin,
    ModelAutopilotTraining,
}

/// `pipeline_type` is not one of the twelve names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pipeline type `{0}`")]
pub struct UnknownPipelineType(pub String);

/// The four model-monitor flavours, for the facts they share (generated names, SageMaker's
/// `MonitoringType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonitorType {
    DataQuality,
    ModelQuality,
    ModelBias,
    ModelExplainability,
}

impl MonitorType {
    /// The infix of generated baseline-job and schedule names: `<endpoint>-<infix>-<4 hex>`.
    pub fn name_infix(self) -> &'static str {
        match self {
            Self::DataQuality => "dataquality",
            Self::ModelQuality => "modelquality",
            Self::ModelBias => "modelbias",
            Self::ModelExplainability => "modelexplainability",
        }
    }

    /// SageMaker's `MonitoringType` value.
    pub fn monitoring_type(self) -> &'static str {
        match self {
            Self::DataQuality => "DataQuality",
            Self::ModelQuality => "ModelQuality",
            Self::ModelBias => "ModelBias",
            Self::ModelExplainability => "ModelExplainability",
        }
    }
}

impl PipelineType {
    pub const ALL: [PipelineType; 12] = [
        Self::ByomRealtimeBuiltin,
        Self::ByomRealtimeCustom,
        Self::ByomBatchBuiltin,
        Self::ByomBatchCustom,
        Self::ByomDataQualityMonitor,
        Self::ByomModelQualityMonitor,
        Self::ByomModelBiasMonitor,
        Self::ByomModelExplainabilityMonitor,
        Self::ByomImageBuilder,
        Self::ModelTrainingBuiltin,
        Self::ModelTunerBuiltin,
        Self::ModelAutopilotTraining,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ByomRealtimeBuiltin => "byom_realtime_builtin",
            Self::ByomRealtimeCustom => "byom_realtime_custom",
            Self::ByomBatchBuiltin => "byom_batch_builtin",
            Self::ByomBatchCustom => "byom_batch_custom",
            Self::ByomDataQualityMonitor => "byom_data_quality_monitor",
            Self::ByomModelQualityMonitor => "byom_model_quality_monitor",
            Self::ByomModelBiasMonitor => "byom_model_bias_monitor",
            Self::ByomModelExplainabilityMonitor => "byom_model_explainability_monitor",
            Self::ByomImageBuilder => "byom_image_builder",
            Self::ModelTrainingBuiltin => "model_training_builtin",
            Self::ModelTunerBuiltin => "model_tuner_builtin",
            Self::ModelAutopilotTraining => "model_autopilot_training",
        }
    }

    /// The stack-name postfix (reference §6.1), before lower-casing.
    pub fn stack_postfix(self) -> &'static str {
        match self {
            Self::ByomRealtimeBuiltin => "BYOMPipelineRealtimeBuiltIn",
            Self::ByomRealtimeCustom => "BYOMPipelineRealtimeCustom",
            Self::ByomBatchBuiltin => "BYOMPipelineBatchBuiltIn",
            Self::ByomBatchCustom => "BYOMPipelineBatchCustom",
            Self::ByomDataQualityMonitor => "BYOMDataQualityMonitor",
            Self::ByomModelQualityMonitor => "BYOMModelQualityMonitor",
            Self::ByomModelBiasMonitor => "BYOMModelBiasMonitor",
            Self::ByomModelExplainabilityMonitor => "BYOMModelExplainabilityMonitor",
            Self::ByomImageBuilder => "BYOMPipelineImageBuilder",
            Self::ModelTrainingBuiltin => "ModelTraining",
            Self::ModelTunerBuiltin => "TunerTraining",
            Self::ModelAutopilotTraining => "AutopilotTraining",
        }
    }

    /// The blueprint template's file name (reference §6.1; `tunning` is the solution's spelling).
    pub fn template_file(self) -> &'static str {
        match self {
            Self::ByomRealtimeBuiltin | Self::ByomRealtimeCustom => "byom_realtime_inference_pipeline.yaml",
            Self::ByomBatchBuiltin | Self::ByomBatchCustom => "byom_batch_pipeline.yaml",
            Self::ByomDataQualityMonitor => "byom_data_quality_monitor.yaml",
            Self::ByomModelQualityMonitor => "byom_model_quality_monitor.yaml",
            Self::ByomModelBiasMonitor => "byom_model_bias_monitor.yaml",
            Self::ByomModelExplainabilityMonitor => "byom_model_explainability_monitor.yaml",
            Self::ByomImageBuilder => "byom_custom_algorithm_image_builder.yaml",
            Self::ModelTrainingBuiltin => "model_training_pipeline.yaml",
            Self::ModelTunerBuiltin => "model_hyperparameter_tunning_pipeline.yaml",
            Self::ModelAutopilotTraining => "autopilot_training_pipeline.yaml",
        }
    }

    pub fn is_training(self) -> bool {
        matches!(self, Self::ModelTrainingBuiltin | Self::ModelTunerBuiltin | Self::ModelAutopilotTraining)
    }

    /// Whether the type is promoted through every environment and so may take per-stage values.
    /// Training types deploy once in the orchestrator account (reference §3.1), and the image
    /// builder is a single stack the orchestrator creates itself (§6.1), so neither does.
    pub fn supports_per_stage(self) -> bool {
        !self.is_training() && self != Self::ByomImageBuilder
    }

    /// The infix of a training type's default job name `<model_name>-<infix>-<4 hex>`: the
    /// solution takes the second `_`-separated word of the type.
    pub fn job_name_infix(self) -> Option<&'static str> {
        match self {
            Self::ModelTrainingBuiltin => Some("training"),
            Self::ModelTunerBuiltin => Some("tuner"),
            Self::ModelAutopilotTraining => Some("autopilot"),
            _ => None,
        }
    }

    pub fn monitor_type(self) -> Option<MonitorType> {
        match self {
            Self::ByomDataQualityMonitor => Some(MonitorType::DataQuality),
            Self::ByomModelQualityMonitor => Some(MonitorType::ModelQuality),
            Self::ByomModelBiasMonitor => Some(MonitorType::ModelBias),
            Self::ByomModelExplainabilityMonitor => Some(MonitorType::ModelExplainability),
            _ => None,
        }
    }
}

impl fmt::Display for PipelineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PipelineType {
    type Err = UnknownPipelineType;

    /// Exact, case-sensitive match, as the solution's template map is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownPipelineType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for t in PipelineType::ALL {
            assert_eq!(t.as_str().parse::<PipelineType>(), Ok(t));
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, serde_json::Value::String(t.as_str().to_string()));
            assert_eq!(serde_json::from_value::<PipelineType>(json).unwrap(), t);
        }
    }

    #[test]
    fn parsing_is_exact() {
        assert!(" byom_realtime_builtin".parse::<PipelineType>().is_err());
        assert!("BYOM_REALTIME_BUILTIN".parse::<PipelineType>().is_err());
        assert_eq!("create_model_card".parse::<PipelineType>(), Err(UnknownPipelineType("create_model_card".into())));
    }

    #[test]
    fn deployment_shape() {
        let training: Vec<_> = PipelineType::ALL.into_iter().filter(|t| t.is_training()).collect();
        assert_eq!(
            training,
            [PipelineType::ModelTrainingBuiltin, PipelineType::ModelTunerBuiltin, PipelineType::ModelAutopilotTraining]
        );
        assert!(!PipelineType::ByomImageBuilder.supports_per_stage());
        assert!(PipelineType::ByomModelBiasMonitor.supports_per_stage());
        assert_eq!(PipelineType::ModelTunerBuiltin.template_file(), "model_hyperparameter_tunning_pipeline.yaml");
    }
}
