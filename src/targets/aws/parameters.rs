//! CloudFormation parameters: the deployed template's, for one stage (reference §7, §8.1,
//! §3.9-§3.11), and the wrapper stack's (docs/AWS.md §4). Names are the solution's, misspellings
//! included (`AlgoHyperparameteres`); every value is a string, as parameter files hold them.
//!
//! Every declared parameter of a template is given (optional ones with their empty or default
//! value) except `JobInstanceCount` of the monitors, which the solution never sets either. A test
//! checks the names and values against the templates' declarations.

use serde_json::Value;

use super::context::AwsContext;
use super::image_uris::{self, ImageUriError};
use super::package;
use crate::domain::names::template_zip_key;
use crate::domain::plan::{AutopilotStage, BatchStage, MonitorStage, RealtimeStage, TrainingStage};
use crate::domain::spec::{Choice, ImageBuilderSpec, ModelScores, ModelSource, MonitorKind, ShapBaseline};
use crate::domain::{PipelineType, StageParams};

/// The stage's parameters cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error(transparent)]
    ImageUri(#[from] ImageUriError),
    /// The stored parameters belong to another pipeline family (a bug, or a corrupted row).
    #[error("`{pipeline_type}` cannot be deployed with `{family}` stage parameters")]
    Mismatch { pipeline_type: PipelineType, family: &'static str },
    #[error("`{field}` is required for `{pipeline_type}`")]
    Missing { pipeline_type: PipelineType, field: &'static str },
}

/// Whether `pipeline_type` goes through the multi-account wrapper: three environments, and a type
/// that is promoted (training types deploy once in the orchestrator's account and the image
/// builder has no wrapper, reference §3.1, §6.1).
pub fn is_multi_account(pipeline_type: PipelineType, ctx: &AwsContext) -> bool {
    ctx.environments.len() == 3 && pipeline_type.supports_per_stage()
}

/// The deployed template's parameters for one stage, in the template's order.
pub fn stack_parameters(
    pipeline_type: PipelineType,
    params: &StageParams,
    ctx: &AwsContext,
) -> Result<Vec<(String, String)>, ParameterError> {
    let mut p = Params::default();
    match (pipeline_type, params) {
        (PipelineType::ByomRealtimeBuiltin | PipelineType::ByomRealtimeCustom, StageParams::Realtime(r)) => {
            realtime(&mut p, r, ctx)?
        }
        (PipelineType::ByomBatchBuiltin | PipelineType::ByomBatchCustom, StageParams::Batch(b)) => {
            batch(&mut p, b, ctx)?
        }
        (t, StageParams::Monitor(m)) if t.monitor_type() == Some(m.kind.monitor_type()) => monitor(&mut p, t, m, ctx)?,
        (PipelineType::ByomImageBuilder, StageParams::ImageBuilder(i)) => image_builder(&mut p, i, ctx),
        (PipelineType::ModelTrainingBuiltin, StageParams::Training(t)) if t.training.tuner.is_none() => {
            training(&mut p, t, ctx)?
        }
        (PipelineType::ModelTunerBuiltin, StageParams::Training(t)) if t.training.tuner.is_some() => {
            training(&mut p, t, ctx)?
        }
        (PipelineType::ModelAutopilotTraining, StageParams::Autopilot(a)) => autopilot(&mut p, a, ctx),
        (pipeline_type, other) => return Err(ParameterError::Mismatch { pipeline_type, family: family(other) }),
    }
    Ok(p.0)
}

/// The wrapper stack's parameters (docs/AWS.md §4): the single-account set, or with
/// [`is_multi_account`] the multi-account one. Empty for the image builder, which has no wrapper.
pub fn wrapper_parameters(pipeline_type: PipelineType, stack_name: &str, ctx: &AwsContext) -> Vec<(String, String)> {
    if pipeline_type == PipelineType::ByomImageBuilder {
        return Vec::new();
    }
    let mut p = Params::default();
    p.set("NotificationsSNSTopicArn", &ctx.notification_topic_arn);
    p.set("TemplateZipFileName", template_zip_key(stack_name));
    p.set("TemplateFileName", pipeline_type.template_file());
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("StackName", stack_name);
    if is_multi_account(pipeline_type, ctx) {
        // The environments in promotion order are the template's Dev, Staging and Prod.
        for (env, label) in ctx.environments.iter().zip(["Dev", "Staging", "Prod"]) {
            p.set(format!("{label}ParamsName"), package::stage_params_file(&env.name));
        }
        for (env, label) in ctx.environments.iter().zip(["Dev", "Staging", "Prod"]) {
            p.set(format!("{label}AccountId"), &env.account_id);
            p.set(format!("{label}DeployRoleArn"), &env.deploy_role_arn);
            p.set(format!("{label}ActionRoleArn"), &env.action_role_arn);
        }
    } else {
        p.set("TemplateParamsName", package::SINGLE_PARAMS_FILE);
        p.set("CloudFormationRoleArn", &ctx.cloudformation_role_arn);
    }
    p.0
}

/// Parameters in the order they are set.
#[derive(Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// An optional value; absent is the empty string the templates take as "none".
    fn optional<T: ToString>(&mut self, key: &str, value: Option<T>) {
        self.set(key, value.map(|v| v.to_string()).unwrap_or_default());
    }
}

/// The templates' spelling of booleans.
fn python_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("JSON values and maps always serialise")
}

/// Image, artifact and registry parameters of a realtime or batch model.
struct ModelParams {
    image_uri: String,
    artifact: String,
    package_group: String,
    package: String,
}

fn model_params(model: &ModelSource, ctx: &AwsContext) -> Result<ModelParams, ParameterError> {
    Ok(match model {
        ModelSource::BuiltIn { framework, framework_version, artifact } => ModelParams {
            image_uri: image_uris::builtin_image_uri(framework, framework_version, &ctx.region)?,
            artifact: artifact.to_string(),
            package_group: String::new(),
            package: String::new(),
        },
        ModelSource::CustomImage { image_uri, artifact } => ModelParams {
            image_uri: image_uri.to_string(),
            artifact: artifact.to_string(),
            package_group: String::new(),
            package: String::new(),
        },
        // The package names its own image and artifact (reference §3.2: ImageUri sent empty).
        ModelSource::Registry { model_package } => ModelParams {
            image_uri: String::new(),
            artifact: String::new(),
            package_group: model_package.group().to_string(),
            package: model_package.to_string(),
        },
    })
}

fn realtime(p: &mut Params, r: &RealtimeStage, ctx: &AwsContext) -> Result<(), ParameterError> {
    let model = model_params(&r.model, ctx)?;
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("BlueprintBucket", &ctx.blueprint_bucket);
    p.set("CustomAlgorithmsECRRepoArn", &ctx.ecr_repo_arn);
    p.optional("KmsKeyArn", r.kms_key_arn.as_ref());
    p.set("ImageUri", model.image_uri);
    p.set("ModelName", &r.model_name);
    p.set("ModelArtifactLocation", model.artifact);
    p.set("DataCaptureLocation", r.data_capture_location.as_str());
    p.set("InferenceInstance", r.inference_instance.as_str());
    p.set("ModelPackageGroupName", model.package_group);
    p.set("ModelPackageName", model.package);
    p.set("EndpointName", r.endpoint_name.as_str());
    Ok(())
}

fn batch(p: &mut Params, b: &BatchStage, ctx: &AwsContext) -> Result<(), ParameterError> {
    let model = model_params(&b.model, ctx)?;
    p.set("BlueprintBucket", &ctx.blueprint_bucket);
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("CustomAlgorithmsECRRepoArn", &ctx.ecr_repo_arn);
    p.optional("KmsKeyArn", b.kms_key_arn.as_ref());
    p.set("ImageUri", model.image_uri);
    p.set("ModelName", &b.model_name);
    p.set("ModelArtifactLocation", model.artifact);
    p.set("InferenceInstance", b.inference_instance.as_str());
    p.set("BatchInputBucket", b.batch_inference_data.bucket());
    p.set("BatchInferenceData", b.batch_inference_data.as_str());
    p.set("BatchOutputLocation", b.batch_job_output_location.as_str());
    p.set("ModelPackageGroupName", model.package_group);
    p.set("ModelPackageName", model.package);
    Ok(())
}

fn monitor(p: &mut Params, t: PipelineType, m: &MonitorStage, ctx: &AwsContext) -> Result<(), ParameterError> {
    let (image_uri, analyzer_arguments) = match (&m.kind, &ctx.monitor_image_uri) {
        // Our analyzer: the image's entrypoint is `mlops`, the job runs `mlops analyze`.
        (MonitorKind::DataQuality | MonitorKind::ModelQuality(_), Some(ours)) => (ours.clone(), "analyze"),
        (MonitorKind::DataQuality | MonitorKind::ModelQuality(_), _) => {
            (image_uris::model_monitor_image_uri(&ctx.region)?, "")
        }
        (MonitorKind::ModelBias(_) | MonitorKind::ModelExplainability(_), _) => {
            (image_uris::clarify_image_uri(&ctx.region)?, "")
        }
    };
    p.set("BlueprintBucket", &ctx.blueprint_bucket);
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("EndpointName", m.endpoint_name.as_str());
    // Each baseline writes under its own job name, so a re-run never mixes results (§8.1).
    p.set("BaselineJobOutputLocation", format!("{}/{}", m.baseline_job_output_location, m.baseline_job_name));
    p.set("BaselineData", m.baseline_data.as_str());
    p.set("InstanceType", m.instance_type.as_str());
    p.set("InstanceVolumeSize", m.instance_volume_size.to_string());
    p.optional("BaselineMaxRuntimeSeconds", m.baseline_max_runtime_seconds);
    p.set("MonitorMaxRuntimeSeconds", m.monitor_max_runtime_seconds.to_string());
    p.optional("KmsKeyArn", m.kms_key_arn.as_ref());
    p.set("BaselineJobName", &m.baseline_job_name);
    p.set("MonitoringScheduleName", &m.monitoring_schedule_name);
    p.set("DataCaptureBucket", m.data_capture_location.bucket());
    p.set("BaselineOutputBucket", m.baseline_job_output_location.bucket());
    p.set("DataCaptureLocation", m.data_capture_location.as_str());
    p.set("MonitoringOutputLocation", m.monitoring_output_location.as_str());
    p.set("ScheduleExpression", m.schedule_expression.as_str());
    p.set("ImageUri", image_uri);

    let ground_truth = || {
        m.monitor_ground_truth_input
            .as_ref()
            .ok_or(ParameterError::Missing { pipeline_type: t, field: "monitor_ground_truth_input" })
    };
    if !analyzer_arguments.is_empty() {
        p.set("AnalyzerArguments", analyzer_arguments);
    }
    match &m.kind {
        MonitorKind::DataQuality => {}
        MonitorKind::ModelQuality(q) => {
            let ground_truth = ground_truth()?;
            p.set("ProblemType", q.problem_type.as_str());
            p.set("BaselineInferenceAttribute", &q.baseline_inference_attribute);
            p.optional("BaselineProbabilityAttribute", q.baseline_probability_attribute.as_ref());
            p.set("BaselineGroundTruthAttribute", &q.baseline_ground_truth_attribute);
            p.optional("MonitorInferenceAttribute", q.monitor_inference_attribute.as_ref());
            p.optional("MonitorProbabilityAttribute", q.monitor_probability_attribute.as_ref());
            p.optional("ProbabilityThresholdAttribute", q.probability_threshold_attribute);
            p.set("GroundTruthBucket", ground_truth.bucket());
            p.set("MonitorGroundTruthInput", ground_truth.as_str());
        }
        MonitorKind::ModelBias(b) => {
            let ground_truth = ground_truth()?;
            p.set("ProblemType", b.problem_type.as_str());
            p.optional("MonitorInferenceAttribute", b.monitor_inference_attribute.as_ref());
            p.optional("MonitorProbabilityAttribute", b.monitor_probability_attribute.as_ref());
            p.optional("ProbabilityThresholdAttribute", b.probability_threshold_attribute);
            p.set("GroundTruthBucket", ground_truth.bucket());
            p.set("MonitorGroundTruthInput", ground_truth.as_str());
            p.set("BiasConfig", json_text(&b.bias_config));
            p.optional("ModelPredictedLabelConfig", b.model_predicted_label_config.as_ref().map(json_text));
            p.optional("FeaturesAttribute", b.features_attribute.as_ref());
        }
        MonitorKind::ModelExplainability(e) => {
            p.set("ProblemType", e.problem_type.as_str());
            p.optional("MonitorInferenceAttribute", e.monitor_inference_attribute.as_ref());
            p.optional("MonitorProbabilityAttribute", e.monitor_probability_attribute.as_ref());
            p.optional("ProbabilityThresholdAttribute", e.probability_threshold_attribute);
            let mut shap = e.shap_config.options.clone();
            match &e.shap_config.baseline {
                // A string baseline is an asset key; Clarify wants its S3 URI (reference §3.8).
                Some(ShapBaseline::AssetKey(key)) => {
                    shap.insert("baseline".into(), Value::String(format!("s3://{}/{key}", ctx.assets_bucket)));
                }
                Some(ShapBaseline::Rows(rows)) => {
                    shap.insert("baseline".into(), Value::Array(rows.clone()));
                }
                None => {}
            }
            p.set("SHAPConfig", json_text(&shap));
            // JSON, so an index (0) and a name ("score") stay distinguishable.
            p.optional(
                "ExplainabilityModelScores",
                e.model_scores.as_ref().map(|s| match s {
                    ModelScores::Index(i) => json_text(i),
                    ModelScores::Name(n) => json_text(n),
                }),
            );
            p.optional("FeaturesAttribute", e.features_attribute.as_ref());
        }
    }
    Ok(())
}

fn image_builder(p: &mut Params, i: &ImageBuilderSpec, ctx: &AwsContext) {
    p.set("NotificationsSNSTopicArn", &ctx.notification_topic_arn);
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("CustomImage", i.custom_algorithm_docker.as_str());
    p.set("ECRRepoName", i.ecr_repo_name.as_str());
    p.set("ImageTag", i.image_tag.as_str());
}

fn training(p: &mut Params, stage: &TrainingStage, ctx: &AwsContext) -> Result<(), ParameterError> {
    let t = &stage.training;
    p.set("NotificationsSNSTopicArn", &ctx.notification_topic_arn);
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("BlueprintBucket", &ctx.blueprint_bucket);
    p.set("JobName", &stage.job_name);
    p.set("ImageUri", image_uris::builtin_image_uri(&t.model_framework, &t.model_framework_version, &ctx.region)?);
    p.set("InstanceType", t.instance_type.as_str());
    p.set("JobInstanceCount", t.instance_count.to_string());
    p.set("InstanceVolumeSize", t.instance_volume_size.to_string());
    p.set("JobOutputLocation", t.job_output_location.as_str());
    p.optional("KmsKeyArn", t.kms_key_arn.as_ref());
    p.set("TrainingData", t.training_data.as_str());
    p.optional("ValidationData", t.validation_data.as_ref());
    p.set("EncryptInnerTraffic", python_bool(t.encrypt_inner_traffic));
    p.set("MaxRuntimePerJob", t.max_runtime_per_job.to_string());
    p.set("UseSpotInstances", python_bool(t.use_spot_instances));
    p.set("MaxWaitTimeForSpotInstances", t.max_wait_time_spot_instances.to_string());
    p.set("ContentType", &t.content_type);
    p.set("S3DataType", t.s3_data_type.as_str());
    p.set("DataDistribution", t.data_distribution.as_str());
    p.optional("CompressionType", t.compression_type.map(Choice::as_str));
    p.set("DataInputMode", t.data_input_mode.as_str());
    p.optional("DataRecordWrapping", t.data_record_wrapping.map(Choice::as_str));
    let attribute_names = (!t.attribute_names.is_empty()).then(|| json_text(&t.attribute_names));
    p.optional("AttributeNames", attribute_names);
    p.set("AlgoHyperparameteres", json_text(&t.algo_hyperparameters));
    if let Some(tuner) = &t.tuner {
        p.set("HyperparametersTunerConfig", json_text(&tuner.tuner_configs));
        let ranges = tuner.ranges_in_request_form();
        p.set("AlgoHyperparameteresRange", json_text(&ranges));
    }
    Ok(())
}

fn autopilot(p: &mut Params, stage: &AutopilotStage, ctx: &AwsContext) {
    let a = &stage.autopilot;
    p.set("NotificationsSNSTopicArn", &ctx.notification_topic_arn);
    p.set("AssetsBucket", &ctx.assets_bucket);
    p.set("BlueprintBucket", &ctx.blueprint_bucket);
    p.set("JobName", &stage.job_name);
    p.optional("ProblemType", a.problem_type.map(Choice::as_str));
    p.optional("AutopilotJobObjective", a.job_objective.map(Choice::as_str));
    p.set("TrainingData", a.training_data.as_str());
    p.set("TargetAttribute", &a.target_attribute);
    p.set("JobOutputLocation", a.job_output_location.as_str());
    p.optional("CompressionType", a.compression_type.map(Choice::as_str));
    p.set("AutopilotMaxCandidates", a.job_max_candidates.to_string());
    p.set("EncryptInnerTraffic", python_bool(a.encrypt_inner_traffic));
    p.set("MaxRuntimePerJob", a.max_runtime_per_job.to_string());
    p.set("AutopilotTotalRuntime", a.total_max_runtime.to_string());
    p.set("GenerateDefinitionsOnly", python_bool(a.generate_definition_only));
    p.optional("KmsKeyArn", a.kms_key_arn.as_ref());
}

fn family(params: &StageParams) -> &'static str {
    match params {
        StageParams::Realtime(_) => "realtime",
        StageParams::Batch(_) => "batch",
        StageParams::Monitor(_) => "monitor",
        StageParams::ImageBuilder(_) => "image_builder",
        StageParams::Training(_) => "training",
        StageParams::Autopilot(_) => "autopilot",
    }
}
