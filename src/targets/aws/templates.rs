//! The CloudFormation templates of `templates/` (docs/AWS.md §4-§5), embedded in the binary so a
//! deployment never depends on files next to it.

use crate::domain::PipelineType;

/// The wrapper of a single-account pipeline: one CloudFormation deploy action.
pub const SINGLE_ACCOUNT_WRAPPER: &str = "single_account_codepipeline.yaml";
/// The wrapper of a multi-account pipeline: dev, staging and prod with approvals between.
pub const MULTI_ACCOUNT_WRAPPER: &str = "multi_account_codepipeline.yaml";

/// Every template: file name and text.
pub const ALL: &[(&str, &str)] = &[
    (SINGLE_ACCOUNT_WRAPPER, include_str!("../../../templates/single_account_codepipeline.yaml")),
    (MULTI_ACCOUNT_WRAPPER, include_str!("../../../templates/multi_account_codepipeline.yaml")),
    ("byom_realtime_inference_pipeline.yaml", include_str!("../../../templates/byom_realtime_inference_pipeline.yaml")),
    ("byom_batch_pipeline.yaml", include_str!("../../../templates/byom_batch_pipeline.yaml")),
    ("byom_data_quality_monitor.yaml", include_str!("../../../templates/byom_data_quality_monitor.yaml")),
    ("byom_model_quality_monitor.yaml", include_str!("../../../templates/byom_model_quality_monitor.yaml")),
    ("byom_model_bias_monitor.yaml", include_str!("../../../templates/byom_model_bias_monitor.yaml")),
    (
        "byom_model_explainability_monitor.yaml",
        include_str!("../../../templates/byom_model_explainability_monitor.yaml"),
    ),
    (
        "byom_custom_algorithm_image_builder.yaml",
        include_str!("../../../templates/byom_custom_algorithm_image_builder.yaml"),
    ),
    ("model_training_pipeline.yaml", include_str!("../../../templates/model_training_pipeline.yaml")),
    (
        "model_hyperparameter_tunning_pipeline.yaml",
        include_str!("../../../templates/model_hyperparameter_tunning_pipeline.yaml"),
    ),
    ("autopilot_training_pipeline.yaml", include_str!("../../../templates/autopilot_training_pipeline.yaml")),
];

/// The text of the template called `file_name`.
pub fn template(file_name: &str) -> Option<&'static str> {
    ALL.iter().find(|(name, _)| *name == file_name).map(|(_, text)| *text)
}

/// The template that deploys `pipeline_type`'s workload (reference §6.1; `tunning` is the
/// solution's spelling). For the image builder it is the whole pipeline: it has no wrapper.
pub fn deployed_template_file(pipeline_type: PipelineType) -> &'static str {
    pipeline_type.template_file()
}

/// The wrapper stack's template: the pipeline that deploys the workload template.
pub fn wrapper_template_file(multi: bool) -> &'static str {
    if multi { MULTI_ACCOUNT_WRAPPER } else { SINGLE_ACCOUNT_WRAPPER }
}
