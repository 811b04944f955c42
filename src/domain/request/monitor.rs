//! The four `byom_*_monitor` types: shared settings, then each flavour's own.

use serde_json::Value;

use super::body::{Body, pointer};
use super::clarify;
use super::errors::FieldErrorCode;
use super::identity;
use super::scalars::{
    Invalid, asset_key, attribute, choice, integer, kms_key, model_name, parsed, probability, quoted, text,
};
use crate::domain::cron::CronExpression;
use crate::domain::names::{EndpointName, MAX_SAGEMAKER_NAME_LEN};
use crate::domain::per_stage::PerStage;
use crate::domain::pipeline_type::MonitorType;
use crate::domain::spec::{
    Choice, ModelBiasSpec, ModelExplainabilitySpec, ModelQualitySpec, MonitorKind, MonitorSpec, PipelineParams,
    PipelineSpec, ProblemType,
};
use crate::domain::values::{InstanceType, S3Location};

/// SageMaker's limit on a monitoring job's run time (reference §8.1).
const MONITOR_MAX_RUNTIME: u32 = 86_400;
/// SageMaker's limit on a processing (baseline) job's run time.
const BASELINE_MAX_RUNTIME: u32 = 777_600;
/// SageMaker's limit on a processing volume, in GB.
const MAX_VOLUME_GB: u32 = 16_384;

pub(super) fn monitor(b: &mut Body, monitor_type: MonitorType) -> Option<PipelineSpec> {
    let pipeline_type = b.pipeline_type;
    // The solution checks `problem_type` before any required key.
    let problem_type = match monitor_type {
        MonitorType::DataQuality => None,
        _ => problem_type(b),
    };
    let model_name = b.required("model_name", model_name(pipeline_type));
    let endpoint_name = b.per_stage_required("endpoint_name", monitored_endpoint(monitor_type));
    let baseline_data = b.required("baseline_data", asset_key);
    let baseline_job_output_location = b.per_stage_required("baseline_job_output_location", parsed(S3Location::parse));
    let data_capture_location = b.per_stage_required("data_capture_location", parsed(S3Location::parse));
    let monitoring_output_location = b.per_stage_required("monitoring_output_location", parsed(S3Location::parse));
    let schedule_expression = b.per_stage_required("schedule_expression", parsed(CronExpression::parse));
    let monitor_max_runtime_seconds =
        b.per_stage_required("monitor_max_runtime_seconds", |v| integer(v, 1..=MONITOR_MAX_RUNTIME));
    let instance_type = b.per_stage_required("instance_type", parsed(InstanceType::parse));
    let instance_volume_size = b.per_stage_required("instance_volume_size", |v| integer(v, 1..=MAX_VOLUME_GB));
    let baseline_max_runtime_seconds = b.per_stage_optional("baseline_max_runtime_seconds", baseline_max_runtime);
    let kms_key_arn = b.per_stage_optional("kms_key_arn", kms_key);
    let (kind, monitor_ground_truth_input) = match monitor_type {
        MonitorType::DataQuality => (Some(MonitorKind::DataQuality), Some(None)),
        MonitorType::ModelQuality => model_quality(b, problem_type),
        MonitorType::ModelBias => model_bias(b, problem_type),
        MonitorType::ModelExplainability => (model_explainability(b, problem_type), Some(None)),
    };

    let schedule_expression = schedule_expression?;
    warn_about_sagemaker_schedules(b, &schedule_expression);
    let model_name = model_name?;
    Some(PipelineSpec {
        pipeline_type,
        name: identity(&model_name),
        params: PipelineParams::Monitor(MonitorSpec {
            endpoint_name: endpoint_name?,
            baseline_data: baseline_data?,
            baseline_job_output_location: baseline_job_output_location?,
            data_capture_location: data_capture_location?,
            monitoring_output_location: monitoring_output_location?,
            schedule_expression,
            monitor_max_runtime_seconds: monitor_max_runtime_seconds?,
            instance_type: instance_type?,
            instance_volume_size: instance_volume_size?,
            baseline_max_runtime_seconds: baseline_max_runtime_seconds?.unwrap_or(PerStage::All(None)),
            kms_key_arn: kms_key_arn?.unwrap_or(PerStage::All(None)),
            monitor_ground_truth_input: monitor_ground_truth_input?,
            kind: kind?,
        }),
    })
}

/// Missing, mistyped and unknown problem types all get the solution's one error.
fn problem_type(b: &mut Body) -> Option<ProblemType> {
    let allowed = quoted(ProblemType::ALL.iter().map(|p| p.as_str()));
    let message = match b.get("problem_type").map(choice::<ProblemType>) {
        Some(Ok(problem_type)) => return Some(problem_type),
        Some(Err(invalid)) => format!("`problem_type`: {}", invalid.message),
        None => format!("`problem_type` is required for {}: one of {allowed}", b.pipeline_type),
    };
    b.error(pointer(&["problem_type"]), FieldErrorCode::UnsupportedProblemType, message);
    None
}

/// The monitored endpoint: generated job and schedule names `<endpoint>-<type>-<4 hex>` must fit
/// SageMaker's 63 characters, which the solution only finds out at deploy time.
fn monitored_endpoint(monitor_type: MonitorType) -> impl Fn(&Value) -> Result<EndpointName, Invalid> {
    move |v| {
        let name = parsed(EndpointName::parse)(v)?;
        let suffix = format!("-{}-xxxx", monitor_type.name_infix());
        let max = MAX_SAGEMAKER_NAME_LEN - suffix.len();
        if name.as_str().len() > max {
            return Err(Invalid::value(format!(
                "`{name}` is {} characters long; at most {max} are allowed so that the generated job names `<endpoint>{suffix}` fit SageMaker's {MAX_SAGEMAKER_NAME_LEN}",
                name.as_str().len()
            )));
        }
        Ok(name)
    }
}

/// The empty string means "no limit", as in the template.
fn baseline_max_runtime(v: &Value) -> Result<Option<u32>, Invalid> {
    match v.as_str() {
        Some("") => Ok(None),
        _ => integer(v, 1..=BASELINE_MAX_RUNTIME).map(Some),
    }
}

fn warn_about_sagemaker_schedules(b: &mut Body, schedules: &PerStage<CronExpression>) {
    let labelled: Vec<(String, &CronExpression)> = match schedules {
        PerStage::All(cron) => vec![(format!("`{cron}`"), cron)],
        PerStage::Each(crons) => {
            crons.iter().map(|(environment, cron)| (format!("`{cron}` ({environment})"), cron)).collect()
        }
    };
    let unsupported: Vec<String> = labelled
        .into_iter()
        .filter(|(_, cron)| !cron.is_sagemaker_monitor_schedule())
        .map(|(label, _)| label)
        .collect();
    if !unsupported.is_empty() {
        b.warn(format!(
            "`schedule_expression` {} runs on the local target, but SageMaker Model Monitor accepts only hourly `cron(0 * ? * * *)`, daily `cron(0 H ? * * *)` and every-N-hours `cron(0 H/N ? * * *)` schedules",
            unsupported.join(", ")
        ));
    }
}

type KindAndGroundTruth = (Option<MonitorKind>, Option<Option<PerStage<S3Location>>>);

fn model_quality(b: &mut Body, problem_type: Option<ProblemType>) -> KindAndGroundTruth {
    let binary = problem_type == Some(ProblemType::BinaryClassification);
    let baseline_inference_attribute = b.required("baseline_inference_attribute", attribute);
    let baseline_ground_truth_attribute = b.required("baseline_ground_truth_attribute", attribute);
    let baseline_probability_attribute = b.required_if(binary, "baseline_probability_attribute", attribute);
    let monitor_inference_attribute =
        b.required_if(needs_inference_attribute(problem_type), "monitor_inference_attribute", attribute);
    let ground_truth = b.per_stage_required("monitor_ground_truth_input", parsed(S3Location::parse));
    let monitor_probability_attribute = b.optional("monitor_probability_attribute", attribute);
    let probability_threshold_attribute = b.optional("probability_threshold_attribute", probability);

    // SageMaker's binary model-quality job needs the prediction, or a probability and the
    // threshold that turns it into one (reference §3.6).
    if binary
        && let (Some(None), Some(probability), Some(threshold)) =
            (&monitor_inference_attribute, &monitor_probability_attribute, &probability_threshold_attribute)
        && (probability.is_none() || threshold.is_none())
    {
        b.error(
            pointer(&["monitor_inference_attribute"]),
            FieldErrorCode::Required,
            "`monitor_inference_attribute` is required for BinaryClassification unless both `monitor_probability_attribute` and `probability_threshold_attribute` are given".to_string(),
        );
        return (None, None);
    }
    let kind = (|| {
        Some(MonitorKind::ModelQuality(ModelQualitySpec {
            problem_type: problem_type?,
            baseline_inference_attribute: baseline_inference_attribute?,
            baseline_ground_truth_attribute: baseline_ground_truth_attribute?,
            baseline_probability_attribute: baseline_probability_attribute?,
            monitor_inference_attribute: monitor_inference_attribute?,
            monitor_probability_attribute: monitor_probability_attribute?,
            probability_threshold_attribute: probability_threshold_attribute?,
        }))
    })();
    (kind, ground_truth.map(Some))
}

fn model_bias(b: &mut Body, problem_type: Option<ProblemType>) -> KindAndGroundTruth {
    let classification =
        matches!(problem_type, Some(ProblemType::BinaryClassification | ProblemType::MulticlassClassification));
    let monitor_inference_attribute =
        b.required_if(needs_inference_attribute(problem_type), "monitor_inference_attribute", attribute);
    let ground_truth = b.per_stage_required("monitor_ground_truth_input", parsed(S3Location::parse));
    let model_predicted_label_config =
        b.required_if(classification, "model_predicted_label_config", clarify::predicted_label_config);
    let bias_config = b.required("bias_config", clarify::bias_config);
    let monitor_probability_attribute = b.optional("monitor_probability_attribute", attribute);
    let probability_threshold_attribute = b.optional("probability_threshold_attribute", probability);
    let features_attribute = b.optional("features_attribute", text);

    let kind = (|| {
        Some(MonitorKind::ModelBias(ModelBiasSpec {
            problem_type: problem_type?,
            bias_config: bias_config?,
            model_predicted_label_config: model_predicted_label_config?,
            monitor_inference_attribute: monitor_inference_attribute?,
            monitor_probability_attribute: monitor_probability_attribute?,
            probability_threshold_attribute: probability_threshold_attribute?,
            features_attribute: features_attribute?,
        }))
    })();
    (kind, ground_truth.map(Some))
}

fn model_explainability(b: &mut Body, problem_type: Option<ProblemType>) -> Option<MonitorKind> {
    let monitor_inference_attribute =
        b.required_if(needs_inference_attribute(problem_type), "monitor_inference_attribute", attribute);
    let shap_config = b.required("shap_config", clarify::shap_config);
    let model_scores = b.optional("model_scores", clarify::model_scores);
    let monitor_probability_attribute = b.optional("monitor_probability_attribute", attribute);
    let probability_threshold_attribute = b.optional("probability_threshold_attribute", probability);
    let features_attribute = b.optional("features_attribute", text);

    Some(MonitorKind::ModelExplainability(ModelExplainabilitySpec {
        problem_type: problem_type?,
        shap_config: shap_config?,
        model_scores: model_scores?,
        monitor_inference_attribute: monitor_inference_attribute?,
        monitor_probability_attribute: monitor_probability_attribute?,
        probability_threshold_attribute: probability_threshold_attribute?,
        features_attribute: features_attribute?,
    }))
}

/// Regression and multiclass monitors must say where the prediction is (reference §4.1).
fn needs_inference_attribute(problem_type: Option<ProblemType>) -> bool {
    matches!(problem_type, Some(ProblemType::Regression | ProblemType::MulticlassClassification))
}
