//! The four model monitors: the baseline processing job the solution's baseline Lambda starts
//! with the SageMaker Python SDK (reference §8.2), then the stack's monitoring schedule.
//!
//! Data quality and model quality run the Model Monitor analyzer with the environment the SDK's
//! `DefaultModelMonitor` / `ModelQualityMonitor.suggest_baseline` give it. Model bias and model
//! explainability run Clarify with an `analysis_config.json` built as the SDK's
//! `SageMakerClarifyProcessor` builds it (the job's own config, next to its results), plus the
//! monitoring form of that config at `<baseline output>/monitor/analysis_config.json`, where the
//! stack's job definition reads it (what the solution uploads after submitting the job).

use super::{CreateError, int, job_step, job_tags, schedule_scheduled, stack_output};
use crate::domain::plan::MonitorStage;
use crate::domain::spec::{
    Choice, ModelBiasSpec, ModelExplainabilitySpec, ModelScores, MonitorKind, ProblemType, ShapBaseline,
};
use crate::targets::aws::clients::Clients;
use crate::targets::aws::context::AwsContext;
use crate::targets::aws::errors::AwsError;
use crate::targets::aws::image_uris;
use crate::targets::{StageContext, StepOutcome, TargetError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sagemaker::operation::create_processing_job::CreateProcessingJobInput;
use aws_sdk_sagemaker::operation::create_processing_job::builders::CreateProcessingJobInputBuilder;
use aws_sdk_sagemaker::operation::describe_processing_job::DescribeProcessingJobOutput;
use aws_sdk_sagemaker::types::{
    AppSpecification, ProcessingClusterConfig, ProcessingInput, ProcessingInstanceType, ProcessingOutput,
    ProcessingOutputConfig, ProcessingResources, ProcessingS3CompressionType, ProcessingS3DataDistributionType,
    ProcessingS3DataType, ProcessingS3Input, ProcessingS3InputMode, ProcessingS3Output, ProcessingS3UploadMode,
    ProcessingStoppingCondition, Tag,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The SDK's container paths (`sagemaker.model_monitor.model_monitoring`, `sagemaker.clarify`).
const BASELINE_DATASET_INPUT: &str = "baseline_dataset_input";
const ANALYZER_DATASET_PATH: &str = "/opt/ml/processing/input/baseline_dataset_input";
const OUTPUT_PATH: &str = "/opt/ml/processing/output";
const CLARIFY_DATA_PATH: &str = "/opt/ml/processing/input/data";
const CLARIFY_CONFIG_PATH: &str = "/opt/ml/processing/input/config";

/// How much of the baseline CSV is read to find its header row.
const HEADER_READ_BYTES: usize = 1 << 20;

pub(super) async fn run(
    clients: &Clients,
    stage: &StageContext,
    m: &MonitorStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let StepOutcome::Done(baseline) = baseline(clients, stage, m, outputs, context).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let StepOutcome::Done(schedule) = schedule_scheduled(clients, &m.monitoring_schedule_name, context).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let mut done = baseline;
    if let (Value::Object(done), Value::Object(schedule)) = (&mut done, schedule) {
        done.extend(schedule);
    }
    Ok(StepOutcome::Done(done))
}

/// The baseline job: created when absent, `Done` once `Completed`.
pub(super) async fn baseline(
    clients: &Clients,
    stage: &StageContext,
    m: &MonitorStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let name = &m.baseline_job_name;
    let describe = async {
        let out = clients.sagemaker.describe_processing_job().processing_job_name(name).send().await;
        out.map_err(|e| AwsError::from_sdk("DescribeProcessingJob", e))
    };
    let status = |job: &DescribeProcessingJobOutput| {
        (
            job.processing_job_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            job.failure_reason().map(String::from),
        )
    };
    let create = start_baseline(clients, stage, m, outputs, context);
    let Some(job) = job_step("baseline job", name, describe, status, create).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let status = job.processing_job_status().map(|s| s.as_str()).unwrap_or_default();
    let mut done = json!({
        "baseline_job_name": name,
        "baseline_job_status": status,
        "baseline_output": baseline_output(m),
    });
    if is_clarify(&m.kind) {
        done["analysis_config"] = json!(format!("{}/monitor/analysis_config.json", baseline_output(m)));
    }
    Ok(StepOutcome::Done(done))
}

async fn start_baseline(
    clients: &Clients,
    stage: &StageContext,
    m: &MonitorStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<(), CreateError> {
    let role = stack_output(outputs, "MonitorRoleArn")?;
    let baseline_data = format!("s3://{}/{}", context.assets_bucket, m.baseline_data);
    let image = |uri: Result<String, image_uris::ImageUriError>| uri.map_err(|e| TargetError::permanent(e.to_string()));
    let request = if is_clarify(&m.kind) {
        let headers = baseline_header(clients, &context.assets_bucket, m.baseline_data.as_str()).await?;
        let model_name = endpoint_model(clients, m.endpoint_name.as_str()).await?;
        let configs = clarify_configs(m, &headers, &model_name, &context.assets_bucket)?;
        // Both before the job: once the job exists, nothing is uploaded again.
        put_json(clients, m, "analysis_config.json", &configs.job).await?;
        put_json(clients, m, "monitor/analysis_config.json", &configs.monitor).await?;
        clarify_request(
            m,
            role,
            &image(image_uris::clarify_image_uri(&context.region))?,
            &baseline_data,
            job_tags(stage),
        )
    } else {
        let analyzer = match &context.monitor_image_uri {
            Some(ours) => Analyzer::Ours(ours.clone()),
            None => Analyzer::Prebuilt(image(image_uris::model_monitor_image_uri(&context.region))?),
        };
        analyzer_request(m, role, &analyzer, &baseline_data, job_tags(stage))
    };
    request.send_with(&clients.sagemaker).await.map_err(|e| AwsError::from_sdk("CreateProcessingJob", e))?;
    Ok(())
}

fn is_clarify(kind: &MonitorKind) -> bool {
    matches!(kind, MonitorKind::ModelBias(_) | MonitorKind::ModelExplainability(_))
}

/// `s3://<baseline_job_output_location>/<baseline_job_name>`: each baseline writes under its own
/// name (the stack's `BaselineJobOutputLocation`), so a re-run never mixes results.
pub(super) fn baseline_output(m: &MonitorStage) -> String {
    format!("{}/{}", m.baseline_job_output_location.uri(), m.baseline_job_name)
}

/// Bucket and key of `file` under the baseline output.
fn baseline_object(m: &MonitorStage, file: &str) -> (String, String) {
    let location = &m.baseline_job_output_location;
    let key = match location.prefix() {
        "" => format!("{}/{file}", m.baseline_job_name),
        prefix => format!("{prefix}/{}/{file}", m.baseline_job_name),
    };
    (location.bucket().to_string(), key)
}

// ----- the Model Monitor analyzer (data quality, model quality) ----------------------------

/// Which image analyses a data-quality or model-quality baseline.
pub(super) enum Analyzer {
    /// SageMaker's Model Monitor analyzer of the region.
    Prebuilt(String),
    /// Ours (`aws.monitor_image_uri`), run as `mlops analyze`.
    Ours(String),
}

impl Analyzer {
    fn image(&self) -> &str {
        match self {
            Analyzer::Prebuilt(image) | Analyzer::Ours(image) => image,
        }
    }
}

/// The analyzer's environment (sagemaker-formats B.7/B.9) as `suggest_baseline` sets it: CSV
/// with a header, where the input and output are mounted, no CloudWatch metrics; model quality
/// adds its analysis type and attributes.
pub(super) fn analyzer_environment(m: &MonitorStage, analyzer: &Analyzer) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let csv = json!({"csv": {"header": true, "output_columns_position": "START"}});
    env.insert("dataset_format".to_string(), csv.to_string());
    env.insert("dataset_source".to_string(), ANALYZER_DATASET_PATH.to_string());
    env.insert("output_path".to_string(), OUTPUT_PATH.to_string());
    env.insert("publish_cloudwatch_metrics".to_string(), "Disabled".to_string());
    if let MonitorKind::ModelQuality(q) = &m.kind {
        env.insert("analysis_type".to_string(), "MODEL_QUALITY".to_string());
        env.insert("problem_type".to_string(), q.problem_type.as_str().to_string());
        env.insert("ground_truth_attribute".to_string(), q.baseline_ground_truth_attribute.clone());
        if let Analyzer::Ours(_) = analyzer {
            // Ours reads the baseline as the local target does: the predicted label's column,
            // and the probability's for the curves (AUC) when there is one.
            env.insert("inference_attribute".to_string(), q.baseline_inference_attribute.clone());
            if let Some(probability) = &q.baseline_probability_attribute {
                env.insert("probability_attribute".to_string(), probability.clone());
            }
            return env;
        }
        // As the solution's baseline Lambda chooses (reference §8.2): for binary
        // classification the probability and its threshold when both are given, else the
        // predicted label.
        let probability = match (&q.baseline_probability_attribute, q.probability_threshold_attribute) {
            (Some(p), Some(t)) if q.problem_type == ProblemType::BinaryClassification => Some((p, t)),
            _ => None,
        };
        match probability {
            Some((attribute, threshold)) => {
                env.insert("probability_attribute".to_string(), attribute.clone());
                env.insert("probability_threshold_attribute".to_string(), threshold.to_string());
            }
            None => {
                env.insert("inference_attribute".to_string(), q.baseline_inference_attribute.clone());
            }
        }
    }
    env
}

/// CreateProcessingJob of a data-quality or model-quality baseline.
pub(super) fn analyzer_request(
    m: &MonitorStage,
    role: &str,
    analyzer: &Analyzer,
    baseline_data: &str,
    tags: Vec<Tag>,
) -> CreateProcessingJobInputBuilder {
    let request = processing_request(m, role, analyzer.image(), tags);
    let request = match analyzer {
        Analyzer::Prebuilt(_) => request,
        // Our image's entrypoint is `mlops`; the job runs `mlops analyze` (docs/MONITORING.md).
        Analyzer::Ours(image) => request
            .app_specification(AppSpecification::builder().image_uri(image).container_arguments("analyze").build()),
    };
    request
        .set_environment(Some(analyzer_environment(m, analyzer).into_iter().collect()))
        .processing_inputs(s3_input(BASELINE_DATASET_INPUT, baseline_data, ANALYZER_DATASET_PATH))
        .processing_output_config(output_config(m, "monitoring_output"))
}

// ----- Clarify (model bias, model explainability) ------------------------------------------

/// CreateProcessingJob of a Clarify baseline: the dataset and the job's analysis config in, the
/// analysis out (as `SageMakerClarifyProcessor._run`).
pub(super) fn clarify_request(
    m: &MonitorStage,
    role: &str,
    image: &str,
    baseline_data: &str,
    tags: Vec<Tag>,
) -> CreateProcessingJobInputBuilder {
    let config = format!("{}/analysis_config.json", baseline_output(m));
    processing_request(m, role, image, tags)
        .processing_inputs(s3_input("dataset", baseline_data, CLARIFY_DATA_PATH))
        .processing_inputs(s3_input("analysis_config", &config, CLARIFY_CONFIG_PATH))
        .processing_output_config(output_config(m, "analysis_result"))
}

/// The two Clarify configurations of a baseline.
#[derive(Debug)]
pub(super) struct ClarifyConfigs {
    /// What the baseline job reads (`analysis_config.json` beside its results).
    pub job: Value,
    /// What the monitoring job definition reads (`monitor/analysis_config.json`).
    pub monitor: Value,
}

/// Builds both configs as the SDK's `suggest_baseline` does from the solution's arguments:
/// `DataConfig(text/csv, headers, label = first column)`, `ModelConfig(<endpoint's model>,
/// instance type, 1 instance, accept text/csv)`, and the request's `BiasConfig` +
/// `ModelPredictedLabelConfig` or `SHAPConfig` + `model_scores`.
pub(super) fn clarify_configs(
    m: &MonitorStage,
    headers: &[String],
    model_name: &str,
    assets_bucket: &str,
) -> Result<ClarifyConfigs, TargetError> {
    // The solution's convention: the label is the baseline CSV's first column.
    let Some(label) = headers.first() else {
        return Err(TargetError::permanent(format!("the baseline data {} has no header row", m.baseline_data)));
    };
    let predictor = Map::from_iter([
        ("model_name".to_string(), json!(model_name)),
        ("instance_type".to_string(), json!(m.instance_type.as_str())),
        ("initial_instance_count".to_string(), json!(1)),
        ("accept_type".to_string(), json!("text/csv")),
    ]);
    let report = json!({"name": "report", "title": "Analysis Report"});
    let mut job = Map::from_iter([
        ("dataset_type".to_string(), json!("text/csv")),
        ("headers".to_string(), json!(headers)),
        ("label".to_string(), json!(label)),
    ]);
    let monitor = match &m.kind {
        MonitorKind::ModelBias(b) => {
            let bias = bias_analysis(b)?;
            job.extend(bias.clone());
            let (label_config, threshold) = predicted_label(b);
            let mut job_predictor = predictor;
            job_predictor.extend(label_config);
            job.insert("predictor".into(), Value::Object(job_predictor));
            if let Some(threshold) = threshold {
                job.insert("probability_threshold".into(), threshold);
            }
            job.insert("methods".into(), json!({"post_training_bias": {"methods": "all"}, "report": report}));
            let mut monitor = bias;
            monitor.insert("headers".into(), json!(headers));
            monitor.insert("label".into(), json!(label));
            monitor
        }
        MonitorKind::ModelExplainability(e) => {
            let shap = shap_config(e, assets_bucket);
            let mut job_predictor = predictor.clone();
            if let Some(scores) = &e.model_scores {
                job_predictor.insert("label".into(), model_scores(scores));
            }
            job.insert("predictor".into(), Value::Object(job_predictor));
            job.insert("methods".into(), json!({"shap": shap, "report": report}));
            // Explainability is about the features: the monitor's headers leave the label out.
            let features: Vec<&String> = headers.iter().filter(|h| *h != label).collect();
            Map::from_iter([
                ("methods".to_string(), json!({"shap": shap})),
                ("predictor".to_string(), Value::Object(predictor)),
                ("headers".to_string(), json!(features)),
            ])
        }
        MonitorKind::DataQuality | MonitorKind::ModelQuality(_) => {
            return Err(TargetError::permanent("Clarify configs are for model bias and explainability"));
        }
    };
    Ok(ClarifyConfigs { job: Value::Object(job), monitor: Value::Object(monitor) })
}

/// `BiasConfig(**bias_config).get_config()`: the facets (one per `facet_name`, each with its
/// values when given), the positive label values and the optional group column.
fn bias_analysis(b: &ModelBiasSpec) -> Result<Map<String, Value>, TargetError> {
    let config = &b.bias_config;
    let invalid = |why: &str| TargetError::permanent(format!("bias_config: {why}"));
    let label_values =
        config.get("label_values_or_threshold").ok_or_else(|| invalid("no label_values_or_threshold"))?;
    let name = config.get("facet_name").ok_or_else(|| invalid("no facet_name"))?;
    let values = config.get("facet_values_or_threshold");
    let facet = |name: &Value, values: Option<&Value>| {
        let mut facet = Map::from_iter([("name_or_index".to_string(), name.clone())]);
        if let Some(values) = values.filter(|v| !v.is_null()) {
            facet.insert("value_or_threshold".into(), values.clone());
        }
        Value::Object(facet)
    };
    let facets = match (name, values) {
        (Value::Array(names), None) => names.iter().map(|n| facet(n, None)).collect(),
        (Value::Array(names), Some(Value::Array(per_facet))) if per_facet.len() == names.len() => {
            names.iter().zip(per_facet).map(|(n, v)| facet(n, Some(v))).collect()
        }
        (Value::Array(_), Some(_)) => {
            return Err(invalid("facet_values_or_threshold needs one entry per facet_name"));
        }
        (name, values) => vec![facet(name, values)],
    };
    let mut analysis = Map::from_iter([
        ("label_values_or_threshold".to_string(), label_values.clone()),
        ("facet".to_string(), Value::Array(facets)),
    ]);
    if let Some(group) = config.get("group_name") {
        analysis.insert("group_variable".into(), group.clone());
    }
    Ok(analysis)
}

/// `ModelPredictedLabelConfig(**config).get_predictor_config()`: where the label, probability
/// and label names are in the model's output, and the probability threshold (which goes to the
/// config's top level). Absent for regression, as the solution's all-`None` default.
fn predicted_label(b: &ModelBiasSpec) -> (Map<String, Value>, Option<Value>) {
    let Some(config) = &b.model_predicted_label_config else { return (Map::new(), None) };
    let predictor = ["label", "probability", "label_headers"]
        .into_iter()
        .filter_map(|key| config.get(key).filter(|v| !v.is_null()).map(|v| (key.to_string(), v.clone())))
        .collect();
    (predictor, config.get("probability_threshold").filter(|v| !v.is_null()).cloned())
}

/// `SHAPConfig(**shap_config).get_explainability_config()["shap"]`: the SDK's defaults
/// (`use_logit` false, `save_local_shap_values` true) overridden by what the request gives; a
/// baseline that is an asset key becomes its S3 URI (reference §3.8).
fn shap_config(e: &ModelExplainabilitySpec, assets_bucket: &str) -> Value {
    let mut shap =
        Map::from_iter([("use_logit".to_string(), json!(false)), ("save_local_shap_values".to_string(), json!(true))]);
    // `algorithm` is ours (exact TreeSHAP runs on the local target only): Clarify never sees it.
    shap.extend(e.shap_config.options.clone().into_iter().filter(|(k, _)| k != "algorithm"));
    match &e.shap_config.baseline {
        Some(ShapBaseline::AssetKey(key)) => {
            shap.insert("baseline".into(), json!(format!("s3://{assets_bucket}/{key}")));
        }
        Some(ShapBaseline::Rows(rows)) => {
            shap.insert("baseline".into(), Value::Array(rows.clone()));
        }
        None => {}
    }
    Value::Object(shap)
}

/// An index stays a number and a name a string: Clarify treats them differently.
fn model_scores(scores: &ModelScores) -> Value {
    match scores {
        ModelScores::Index(i) => json!(i),
        ModelScores::Name(n) => json!(n),
    }
}

/// The column names of a CSV: its first line split on commas, as the solution reads it (no
/// quoting), without a byte-order mark or a trailing `\r`.
pub(super) fn csv_header(head: &[u8], complete: bool) -> Result<Vec<String>, String> {
    let line = match head.iter().position(|&b| b == b'\n') {
        Some(end) => &head[..end],
        None if complete => head,
        None => return Err(format!("its first line is longer than {} bytes", head.len())),
    };
    let line = String::from_utf8_lossy(line);
    let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
    if line.trim().is_empty() {
        return Err("its first line is empty; a header row is required".into());
    }
    Ok(line.split(',').map(str::to_string).collect())
}

/// The baseline CSV's header row, from the start of the object.
async fn baseline_header(clients: &Clients, bucket: &str, key: &str) -> Result<Vec<String>, TargetError> {
    let out = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes=0-{}", HEADER_READ_BYTES - 1))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetObject", e))?;
    let head =
        out.body.collect().await.map_err(|e| TargetError::transient(format!("reading s3://{bucket}/{key}: {e}")))?;
    let head = head.into_bytes();
    csv_header(&head, head.len() < HEADER_READ_BYTES)
        .map_err(|why| TargetError::permanent(format!("the baseline data s3://{bucket}/{key}: {why}")))
}

/// The model behind the endpoint's current configuration (first variant), which Clarify's
/// temporary shadow endpoint serves.
async fn endpoint_model(clients: &Clients, endpoint: &str) -> Result<String, TargetError> {
    let described = clients
        .sagemaker
        .describe_endpoint()
        .endpoint_name(endpoint)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeEndpoint", e))?;
    let config_name = described.endpoint_config_name().unwrap_or_default();
    let config = clients
        .sagemaker
        .describe_endpoint_config()
        .endpoint_config_name(config_name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeEndpointConfig", e))?;
    config
        .production_variants()
        .first()
        .and_then(|v| v.model_name())
        .map(str::to_string)
        .ok_or_else(|| TargetError::permanent(format!("endpoint config {config_name} of {endpoint} names no model")))
}

/// Uploads a config under the baseline output, encrypted with the stage's key when it has one.
async fn put_json(clients: &Clients, m: &MonitorStage, file: &str, value: &Value) -> Result<(), TargetError> {
    let (bucket, key) = baseline_object(m, file);
    let body = serde_json::to_vec(value).expect("JSON values serialise");
    let mut put =
        clients.s3.put_object().bucket(&bucket).key(&key).content_type("application/json").body(ByteStream::from(body));
    if let Some(kms) = &m.kms_key_arn {
        put = put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(kms.as_str());
    }
    put.send().await.map_err(|e| AwsError::from_sdk("PutObject", e))?;
    Ok(())
}

// ----- shared by both images ---------------------------------------------------------------

/// Name, image, role, one instance of the stage's type and volume, the stage's time limit and
/// KMS key: the SDK's monitor class arguments.
fn processing_request(m: &MonitorStage, role: &str, image: &str, tags: Vec<Tag>) -> CreateProcessingJobInputBuilder {
    let cluster = ProcessingClusterConfig::builder()
        .instance_count(1)
        .instance_type(ProcessingInstanceType::from(m.instance_type.as_str()))
        .volume_size_in_gb(int(m.instance_volume_size))
        .set_volume_kms_key_id(m.kms_key_arn.as_ref().map(|k| k.as_str().to_string()))
        .build();
    CreateProcessingJobInput::builder()
        .processing_job_name(&m.baseline_job_name)
        .app_specification(AppSpecification::builder().image_uri(image).build())
        .processing_resources(ProcessingResources::builder().cluster_config(cluster).build())
        .set_stopping_condition(
            m.baseline_max_runtime_seconds
                .map(|s| ProcessingStoppingCondition::builder().max_runtime_in_seconds(int(s)).build()),
        )
        .role_arn(role)
        .set_tags(Some(tags))
}

fn s3_input(name: &str, uri: &str, local_path: &str) -> ProcessingInput {
    let s3 = ProcessingS3Input::builder()
        .s3_uri(uri)
        .local_path(local_path)
        .s3_data_type(ProcessingS3DataType::S3Prefix)
        .s3_input_mode(ProcessingS3InputMode::File)
        .s3_data_distribution_type(ProcessingS3DataDistributionType::Fullyreplicated)
        .s3_compression_type(ProcessingS3CompressionType::None)
        .build();
    ProcessingInput::builder().input_name(name).app_managed(false).s3_input(s3).build()
}

fn output_config(m: &MonitorStage, name: &str) -> ProcessingOutputConfig {
    let s3 = ProcessingS3Output::builder()
        .s3_uri(baseline_output(m))
        .local_path(OUTPUT_PATH)
        .s3_upload_mode(ProcessingS3UploadMode::EndOfJob)
        .build();
    ProcessingOutputConfig::builder()
        .outputs(ProcessingOutput::builder().output_name(name).app_managed(false).s3_output(s3).build())
        .set_kms_key_id(m.kms_key_arn.as_ref().map(|k| k.as_str().to_string()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::domain::{PipelineType, StageParams};

    fn monitor(pipeline_type: PipelineType) -> MonitorStage {
        match fixtures::stage_params(pipeline_type) {
            StageParams::Monitor(m) => m,
            other => panic!("not a monitor: {other:?}"),
        }
    }

    fn monitor_of(body: &Value) -> MonitorStage {
        match fixtures::stage_of(body).params {
            StageParams::Monitor(m) => m,
            other => panic!("not a monitor: {other:?}"),
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/monitor";
    const IMAGE: &str = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer";
    const DATA: &str = "s3://mlops-assets/monitor/baseline/training-dataset-with-header.csv";

    fn prebuilt() -> Analyzer {
        Analyzer::Prebuilt(IMAGE.into())
    }

    fn env(m: &MonitorStage) -> Vec<(String, String)> {
        analyzer_environment(m, &prebuilt()).into_iter().collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.sort();
        v
    }

    const COMMON: [(&str, &str); 4] = [
        ("dataset_format", r#"{"csv":{"header":true,"output_columns_position":"START"}}"#),
        ("dataset_source", "/opt/ml/processing/input/baseline_dataset_input"),
        ("output_path", "/opt/ml/processing/output"),
        ("publish_cloudwatch_metrics", "Disabled"),
    ];

    #[test]
    fn data_quality_baseline_is_the_sdks_suggest_baseline() {
        let m = monitor(PipelineType::ByomDataQualityMonitor);
        assert_eq!(env(&m), pairs(&COMMON));
        let input = analyzer_request(&m, ROLE, &prebuilt(), DATA, vec![]).build().unwrap();
        assert_eq!(input.processing_job_name(), Some(m.baseline_job_name.as_str()));
        assert!(m.baseline_job_name.starts_with("churn-endpoint-dataquality-"), "{}", m.baseline_job_name);
        assert_eq!(input.role_arn(), Some(ROLE));
        assert_eq!(input.app_specification().and_then(|a| a.image_uri()), Some(IMAGE));
        let [dataset] = input.processing_inputs() else { panic!("one input") };
        assert_eq!(dataset.input_name(), Some("baseline_dataset_input"));
        let s3 = dataset.s3_input().unwrap();
        assert_eq!(s3.s3_uri(), Some(DATA));
        assert_eq!(s3.local_path(), Some("/opt/ml/processing/input/baseline_dataset_input"));
        assert_eq!(s3.s3_data_type(), Some(&ProcessingS3DataType::S3Prefix));
        assert_eq!(s3.s3_input_mode(), Some(&ProcessingS3InputMode::File));
        let out = input.processing_output_config().unwrap();
        let [output] = out.outputs() else { panic!("one output") };
        assert_eq!(output.output_name(), Some("monitoring_output"));
        let s3 = output.s3_output().unwrap();
        let expected = format!("s3://my-bucket/monitor/baseline/{}", m.baseline_job_name);
        assert_eq!(s3.s3_uri(), Some(expected.as_str()));
        assert_eq!(s3.local_path(), Some("/opt/ml/processing/output"));
        assert_eq!(s3.s3_upload_mode(), Some(&ProcessingS3UploadMode::EndOfJob));
        assert_eq!(out.kms_key_id(), None);
        let cluster = input.processing_resources().and_then(|r| r.cluster_config()).unwrap();
        assert_eq!(cluster.instance_count(), Some(1));
        assert_eq!(cluster.instance_type().map(|t| t.as_str()), Some("ml.m5.large"));
        assert_eq!(cluster.volume_size_in_gb(), Some(20));
        assert_eq!(input.stopping_condition().and_then(|s| s.max_runtime_in_seconds()), Some(3600));
    }

    #[test]
    fn kms_and_no_time_limit() {
        let mut body = fixtures::request(PipelineType::ByomDataQualityMonitor);
        body["kms_key_arn"] = json!("arn:aws:kms:us-east-1:123456789012:key/k1");
        body.as_object_mut().unwrap().remove("baseline_max_runtime_seconds");
        let m = monitor_of(&body);
        let input = analyzer_request(&m, ROLE, &prebuilt(), DATA, vec![]).build().unwrap();
        let kms = Some("arn:aws:kms:us-east-1:123456789012:key/k1");
        assert_eq!(input.processing_output_config().unwrap().kms_key_id(), kms);
        let cluster = input.processing_resources().and_then(|r| r.cluster_config()).unwrap();
        assert_eq!(cluster.volume_kms_key_id(), kms);
        assert!(input.stopping_condition().is_none());
    }

    #[test]
    fn model_quality_binary_prefers_probability_and_threshold() {
        let m = monitor(PipelineType::ByomModelQualityMonitor);
        let mut expected = COMMON.to_vec();
        expected.extend([
            ("analysis_type", "MODEL_QUALITY"),
            ("problem_type", "BinaryClassification"),
            ("ground_truth_attribute", "label"),
            ("probability_attribute", "probability"),
            ("probability_threshold_attribute", "0.5"),
        ]);
        assert_eq!(env(&m), pairs(&expected));
    }

    #[test]
    fn model_quality_uses_the_inference_attribute_otherwise() {
        // Binary without a probability threshold: the predicted label.
        let mut body = fixtures::request(PipelineType::ByomModelQualityMonitor);
        body.as_object_mut().unwrap().remove("probability_threshold_attribute");
        let env = analyzer_environment(&monitor_of(&body), &prebuilt());
        assert_eq!(env.get("inference_attribute").map(String::as_str), Some("prediction"));
        assert!(!env.contains_key("probability_attribute") && !env.contains_key("probability_threshold_attribute"));

        // Regression: always the predicted value, even with probability fields around.
        let mut body = fixtures::request(PipelineType::ByomModelQualityMonitor);
        body["problem_type"] = json!("Regression");
        for key in
            ["monitor_probability_attribute", "probability_threshold_attribute", "baseline_probability_attribute"]
        {
            body.as_object_mut().unwrap().remove(key);
        }
        let env = analyzer_environment(&monitor_of(&body), &prebuilt());
        assert_eq!(env.get("problem_type").map(String::as_str), Some("Regression"));
        assert_eq!(env.get("inference_attribute").map(String::as_str), Some("prediction"));
        assert!(!env.contains_key("probability_attribute"));
    }

    #[test]
    fn model_quality_with_our_analyzer_names_the_prediction_and_probability_columns() {
        let m = monitor(PipelineType::ByomModelQualityMonitor);
        let ours = Analyzer::Ours("123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-orchestrator:1.0".into());
        let env: Vec<_> = analyzer_environment(&m, &ours).into_iter().collect();
        let mut expected = COMMON.to_vec();
        expected.extend([
            ("analysis_type", "MODEL_QUALITY"),
            ("problem_type", "BinaryClassification"),
            ("ground_truth_attribute", "label"),
            ("inference_attribute", "prediction"),
            ("probability_attribute", "probability"),
        ]);
        assert_eq!(env, pairs(&expected));
    }

    fn headers() -> Vec<String> {
        ["credit_risk", "age", "personal_status_sex", "amount"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn model_bias_configs() {
        let m = monitor(PipelineType::ByomModelBiasMonitor);
        let configs = clarify_configs(&m, &headers(), "model-a", fixtures::ASSETS).unwrap();
        assert_eq!(
            configs.job,
            json!({
                "dataset_type": "text/csv",
                "headers": ["credit_risk", "age", "personal_status_sex", "amount"],
                "label": "credit_risk",
                "label_values_or_threshold": [1],
                "facet": [{"name_or_index": "age", "value_or_threshold": [40]}],
                "group_variable": "personal_status_sex",
                "predictor": {
                    "model_name": "model-a",
                    "instance_type": "ml.m5.large",
                    "initial_instance_count": 1,
                    "accept_type": "text/csv",
                    "probability": 0,
                },
                "methods": {
                    "post_training_bias": {"methods": "all"},
                    "report": {"name": "report", "title": "Analysis Report"},
                },
            })
        );
        assert_eq!(
            configs.monitor,
            json!({
                "label_values_or_threshold": [1],
                "facet": [{"name_or_index": "age", "value_or_threshold": [40]}],
                "group_variable": "personal_status_sex",
                "headers": ["credit_risk", "age", "personal_status_sex", "amount"],
                "label": "credit_risk",
            })
        );
    }

    #[test]
    fn model_bias_with_several_facets_a_threshold_and_regression() {
        let mut body = fixtures::request(PipelineType::ByomModelBiasMonitor);
        body["bias_config"] = json!({
            "label_values_or_threshold": 0.5,
            "facet_name": ["age", "amount"],
            "facet_values_or_threshold": [[40], [1000]],
        });
        body["model_predicted_label_config"] = json!({"probability": 0, "probability_threshold": 0.7});
        let configs = clarify_configs(&monitor_of(&body), &headers(), "model-a", fixtures::ASSETS).unwrap();
        assert_eq!(
            configs.job["facet"],
            json!([{"name_or_index": "age", "value_or_threshold": [40]}, {"name_or_index": "amount", "value_or_threshold": [1000]}])
        );
        assert_eq!(configs.job["probability_threshold"], json!(0.7));
        assert_eq!(configs.job["predictor"]["probability"], json!(0));
        assert!(configs.job.get("group_variable").is_none());
        assert!(configs.monitor.get("probability_threshold").is_none(), "the monitor reads it from the job definition");

        // Regression without a predicted-label config: nothing extra in the predictor.
        let mut body = fixtures::request(PipelineType::ByomModelBiasMonitor);
        body["problem_type"] = json!("Regression");
        body["monitor_inference_attribute"] = json!("0");
        for key in ["model_predicted_label_config", "monitor_probability_attribute", "probability_threshold_attribute"]
        {
            body.as_object_mut().unwrap().remove(key);
        }
        let configs = clarify_configs(&monitor_of(&body), &headers(), "model-a", fixtures::ASSETS).unwrap();
        assert_eq!(
            configs.job["predictor"],
            json!({"model_name": "model-a", "instance_type": "ml.m5.large", "initial_instance_count": 1, "accept_type": "text/csv"})
        );
        assert!(configs.job.get("probability_threshold").is_none());
    }

    #[test]
    fn model_explainability_configs() {
        let m = monitor(PipelineType::ByomModelExplainabilityMonitor);
        let configs = clarify_configs(&m, &headers(), "model-a", fixtures::ASSETS).unwrap();
        let shap = json!({
            "baseline": "s3://mlops-assets/monitor/baseline/shap-baseline.csv",
            "num_samples": 500,
            "agg_method": "mean_abs",
            "use_logit": false,
            "save_local_shap_values": true,
        });
        let predictor = json!({"model_name": "model-a", "instance_type": "ml.m5.large", "initial_instance_count": 1, "accept_type": "text/csv"});
        let mut job_predictor = predictor.clone();
        job_predictor["label"] = json!(0);
        assert_eq!(
            configs.job,
            json!({
                "dataset_type": "text/csv",
                "headers": ["credit_risk", "age", "personal_status_sex", "amount"],
                "label": "credit_risk",
                "predictor": job_predictor,
                "methods": {"shap": shap, "report": {"name": "report", "title": "Analysis Report"}},
            })
        );
        assert_eq!(
            configs.monitor,
            json!({
                "methods": {"shap": shap},
                "predictor": predictor,
                "headers": ["age", "personal_status_sex", "amount"],
            })
        );
    }

    #[test]
    fn shap_rows_and_named_scores() {
        let mut body = fixtures::request(PipelineType::ByomModelExplainabilityMonitor);
        body["shap_config"] =
            json!({"baseline": [[30, 1, 500]], "num_samples": 10, "agg_method": "median", "use_logit": true});
        body["model_scores"] = json!("score");
        let configs = clarify_configs(&monitor_of(&body), &headers(), "m", fixtures::ASSETS).unwrap();
        assert_eq!(
            configs.job["methods"]["shap"],
            json!({"baseline": [[30, 1, 500]], "num_samples": 10, "agg_method": "median", "use_logit": true, "save_local_shap_values": true})
        );
        assert_eq!(configs.job["predictor"]["label"], json!("score"));
    }

    #[test]
    fn clarify_request_reads_the_dataset_and_the_jobs_config() {
        let m = monitor(PipelineType::ByomModelBiasMonitor);
        let input = clarify_request(&m, ROLE, "clarify-image", DATA, vec![]).build().unwrap();
        assert!(input.environment().is_none());
        let output = baseline_output(&m);
        assert!(output.starts_with("s3://my-bucket/monitor/baseline/churn-endpoint-modelbias-"), "{output}");
        let inputs: Vec<_> = input
            .processing_inputs()
            .iter()
            .map(|i| {
                let s3 = i.s3_input().unwrap();
                (i.input_name().unwrap(), s3.s3_uri().unwrap().to_string(), s3.local_path().unwrap())
            })
            .collect();
        assert_eq!(
            inputs,
            [
                ("dataset", DATA.to_string(), "/opt/ml/processing/input/data"),
                ("analysis_config", format!("{output}/analysis_config.json"), "/opt/ml/processing/input/config"),
            ]
        );
        let [result] = input.processing_output_config().unwrap().outputs() else { panic!("one output") };
        assert_eq!(result.output_name(), Some("analysis_result"));
        assert_eq!(result.s3_output().unwrap().s3_uri(), Some(output.as_str()));
        assert_eq!(result.s3_output().unwrap().local_path(), Some("/opt/ml/processing/output"));
        // The stack's job definition reads the monitor config under the same prefix.
        let (bucket, key) = baseline_object(&m, "monitor/analysis_config.json");
        assert_eq!(format!("s3://{bucket}/{key}"), format!("{output}/monitor/analysis_config.json"));
    }

    #[test]
    fn csv_headers() {
        assert_eq!(csv_header(b"label,a,b\n1,2,3\n", true).unwrap(), ["label", "a", "b"]);
        assert_eq!(csv_header(b"\xef\xbb\xbflabel,a\r\n1,2\r\n", true).unwrap(), ["label", "a"]);
        assert_eq!(csv_header(b"label,a", true).unwrap(), ["label", "a"]);
        assert!(csv_header(b"label,a", false).unwrap_err().contains("longer than"));
        assert!(csv_header(b"\n1,2", true).unwrap_err().contains("header row"));
        assert!(csv_header(b"", true).is_err());
    }
}
