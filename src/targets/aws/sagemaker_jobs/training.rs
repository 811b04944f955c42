//! `model_training_builtin`, `model_tuner_builtin` and `model_autopilot_training`: the jobs the
//! solution's Lambdas start with the SageMaker Python SDK (reference §7.5, §7.6), here as the
//! API requests the SDK's `Estimator.fit`, `HyperparameterTuner.fit` and `AutoML.fit` send.
//! Autopilot uses `CreateAutoMLJobV2`, the API's current form (the SDK's `AutoML` sends v1).

use super::{int, job_step, job_tags, stack_output};
use crate::domain::plan::{AutopilotStage, TrainingStage};
use crate::domain::spec::{
    Choice, CompressionType as SpecCompression, HyperparameterRange, RecordWrapping, TrainingSpec, TunerSpec,
};
use crate::targets::aws::clients::Clients;
use crate::targets::aws::context::AwsContext;
use crate::targets::aws::errors::AwsError;
use crate::targets::aws::image_uris;
use crate::targets::{StageContext, StepOutcome, TargetError};
use aws_sdk_sagemaker::operation::create_auto_ml_job_v2::CreateAutoMlJobV2Input;
use aws_sdk_sagemaker::operation::create_auto_ml_job_v2::builders::CreateAutoMlJobV2InputBuilder;
use aws_sdk_sagemaker::operation::create_hyper_parameter_tuning_job::CreateHyperParameterTuningJobInput;
use aws_sdk_sagemaker::operation::create_hyper_parameter_tuning_job::builders::CreateHyperParameterTuningJobInputBuilder;
use aws_sdk_sagemaker::operation::create_training_job::CreateTrainingJobInput;
use aws_sdk_sagemaker::operation::create_training_job::builders::CreateTrainingJobInputBuilder;
use aws_sdk_sagemaker::operation::describe_auto_ml_job_v2::DescribeAutoMlJobV2Output;
use aws_sdk_sagemaker::operation::describe_hyper_parameter_tuning_job::DescribeHyperParameterTuningJobOutput;
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, AutoMlChannelType, AutoMlDataSource, AutoMlJobChannel, AutoMlJobCompletionCriteria,
    AutoMlJobObjective, AutoMlMetricEnum, AutoMlOutputDataConfig, AutoMlProblemTypeConfig, AutoMlSecurityConfig,
    AutoMls3DataSource, AutoMls3DataType, CategoricalParameterRange, Channel, CheckpointConfig, CompressionType,
    ContinuousParameterRange, DataSource, HyperParameterAlgorithmSpecification, HyperParameterScalingType,
    HyperParameterTrainingJobDefinition, HyperParameterTuningJobConfig, HyperParameterTuningJobObjective,
    HyperParameterTuningJobObjectiveType, HyperParameterTuningJobStrategyType, IntegerParameterRange, MetricDefinition,
    OutputDataConfig, ParameterRanges, ProblemType as SmProblemType, RecordWrapper, ResourceConfig, ResourceLimits,
    S3DataDistribution, S3DataSource, S3DataType, StoppingCondition, TabularJobConfig, Tag, TrainingInputMode,
    TrainingInstanceType, TrainingJobEarlyStoppingType,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

// ----- training and tuning -----------------------------------------------------------------

pub(super) async fn run_training(
    clients: &Clients,
    stage: &StageContext,
    t: &TrainingStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    match &t.training.tuner {
        None => training_job(clients, stage, t, outputs, context).await,
        Some(tuner) => tuning_job(clients, stage, t, tuner, outputs, context).await,
    }
}

async fn training_job(
    clients: &Clients,
    stage: &StageContext,
    t: &TrainingStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let name = &t.job_name;
    let describe = async {
        let out = clients.sagemaker.describe_training_job().training_job_name(name).send().await;
        out.map_err(|e| AwsError::from_sdk("DescribeTrainingJob", e))
    };
    let create = async {
        let role = stack_output(outputs, "SageMakerRoleArn")?;
        let request = training_request(t, role, &training_image(&t.training, context)?, context, job_tags(stage));
        request.send_with(&clients.sagemaker).await.map_err(|e| AwsError::from_sdk("CreateTrainingJob", e))?;
        Ok(())
    };
    let status = |job: &DescribeTrainingJobOutput| {
        (
            job.training_job_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            job.failure_reason().map(String::from),
        )
    };
    let Some(job) = job_step("training job", name, describe, status, create).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let status = job.training_job_status().map(|s| s.as_str()).unwrap_or_default();
    Ok(StepOutcome::Done(json!({
        "training_job_name": name,
        "training_job_status": status,
        "output_location": output_path(&t.training, context),
        "model_artifacts": job.model_artifacts().and_then(|a| a.s3_model_artifacts()),
    })))
}

async fn tuning_job(
    clients: &Clients,
    stage: &StageContext,
    t: &TrainingStage,
    tuner: &TunerSpec,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let name = &t.job_name;
    let describe = async {
        let out =
            clients.sagemaker.describe_hyper_parameter_tuning_job().hyper_parameter_tuning_job_name(name).send().await;
        out.map_err(|e| AwsError::from_sdk("DescribeHyperParameterTuningJob", e))
    };
    let create = async {
        let role = stack_output(outputs, "SageMakerRoleArn")?;
        let image = training_image(&t.training, context)?;
        let request = tuning_request(t, tuner, role, &image, context, job_tags(stage))?;
        request
            .send_with(&clients.sagemaker)
            .await
            .map_err(|e| AwsError::from_sdk("CreateHyperParameterTuningJob", e))?;
        Ok(())
    };
    let status = |job: &DescribeHyperParameterTuningJobOutput| {
        let state = job.hyper_parameter_tuning_job_status().map(|s| s.as_str().to_string()).unwrap_or_default();
        (state, job.failure_reason().map(String::from))
    };
    let Some(job) = job_step("hyperparameter tuning job", name, describe, status, create).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let status = job.hyper_parameter_tuning_job_status().map(|s| s.as_str()).unwrap_or_default();
    Ok(StepOutcome::Done(json!({
        "tuning_job_name": name,
        "tuning_job_status": status,
        "output_location": output_path(&t.training, context),
        "best_training_job": job.best_training_job().and_then(|b| b.training_job_name()),
    })))
}

fn training_image(t: &TrainingSpec, context: &AwsContext) -> Result<String, TargetError> {
    image_uris::builtin_image_uri(&t.model_framework, &t.model_framework_version, &context.region)
        .map_err(|e| TargetError::permanent(e.to_string()))
}

fn output_path(t: &TrainingSpec, context: &AwsContext) -> String {
    format!("s3://{}/{}", context.assets_bucket, t.job_output_location)
}

/// CreateTrainingJob as `Estimator(...).fit({"train": ..., "validation": ...}, job_name)` sends it
/// for the solution's arguments (reference §7.5).
pub(super) fn training_request(
    stage: &TrainingStage,
    role: &str,
    image: &str,
    context: &AwsContext,
    tags: Vec<Tag>,
) -> CreateTrainingJobInputBuilder {
    let t = &stage.training;
    let algorithm = AlgorithmSpecification::builder()
        .training_image(image)
        .training_input_mode(TrainingInputMode::from(t.data_input_mode.as_str()))
        .build();
    CreateTrainingJobInput::builder()
        .training_job_name(&stage.job_name)
        .algorithm_specification(algorithm)
        .role_arn(role)
        .set_hyper_parameters(Some(hyperparameters(&t.algo_hyperparameters)))
        .set_input_data_config(Some(channels(t, context)))
        .output_data_config(output_data_config(t, context))
        .resource_config(resource_config(t))
        .stopping_condition(stopping_condition(t))
        .enable_managed_spot_training(t.use_spot_instances)
        .set_checkpoint_config(checkpoint_config(stage, context))
        .enable_inter_container_traffic_encryption(t.encrypt_inner_traffic)
        .set_tags(Some(tags))
}

/// CreateHyperParameterTuningJob as `HyperparameterTuner(estimator, ...).fit(...)` sends it: the
/// tuner settings with the SDK's defaults (Bayesian, Maximize, 1 job, 1 in parallel, early
/// stopping off), the ranges on an `Auto` scale, and the estimator as the training definition
/// whose static hyperparameters leave out the tuned ones.
pub(super) fn tuning_request(
    stage: &TrainingStage,
    tuner: &TunerSpec,
    role: &str,
    image: &str,
    context: &AwsContext,
    tags: Vec<Tag>,
) -> Result<CreateHyperParameterTuningJobInputBuilder, TargetError> {
    let t = &stage.training;
    let configs = &tuner.tuner_configs;
    let text = |key: &str| configs.get(key).and_then(Value::as_str);
    let number = |key: &str| configs.get(key).and_then(Value::as_i64).map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let metric = text("objective_metric_name")
        .ok_or_else(|| TargetError::permanent("tuner_configs has no objective_metric_name"))?;
    let strategy = text("strategy").unwrap_or("Bayesian");
    let objective = HyperParameterTuningJobObjective::builder()
        .r#type(HyperParameterTuningJobObjectiveType::from(text("objective_type").unwrap_or("Maximize")))
        .metric_name(metric)
        .build();
    // Grid search runs every combination: SageMaker rejects a job count with it.
    let max_jobs = match number("max_jobs") {
        None if strategy == "Grid" => None,
        given => Some(given.unwrap_or(1)),
    };
    let limits = ResourceLimits::builder()
        .set_max_number_of_training_jobs(max_jobs)
        .max_parallel_training_jobs(number("max_parallel_jobs").unwrap_or(1))
        .set_max_runtime_in_seconds(number("max_runtime_in_seconds"))
        .build();
    let config = HyperParameterTuningJobConfig::builder()
        .strategy(HyperParameterTuningJobStrategyType::from(strategy))
        .hyper_parameter_tuning_job_objective(objective)
        .resource_limits(limits)
        .parameter_ranges(parameter_ranges(tuner))
        .training_job_early_stopping_type(TrainingJobEarlyStoppingType::from(
            text("early_stopping_type").unwrap_or("Off"),
        ))
        .set_random_seed(number("random_seed"))
        .build();

    let algorithm = HyperParameterAlgorithmSpecification::builder()
        .training_image(image)
        .training_input_mode(TrainingInputMode::from(t.data_input_mode.as_str()))
        .set_metric_definitions(metric_definitions(configs))
        .build();
    let mut static_hyperparameters = hyperparameters(&t.algo_hyperparameters);
    static_hyperparameters.retain(|name, _| !tuner.hyperparameter_ranges.contains_key(name));
    let definition = HyperParameterTrainingJobDefinition::builder()
        .algorithm_specification(algorithm)
        .role_arn(role)
        .set_static_hyper_parameters(Some(static_hyperparameters))
        .set_input_data_config(Some(channels(t, context)))
        .output_data_config(output_data_config(t, context))
        .resource_config(resource_config(t))
        .stopping_condition(stopping_condition(t))
        .enable_managed_spot_training(t.use_spot_instances)
        .set_checkpoint_config(checkpoint_config(stage, context))
        .enable_inter_container_traffic_encryption(t.encrypt_inner_traffic)
        .build();
    Ok(CreateHyperParameterTuningJobInput::builder()
        .hyper_parameter_tuning_job_name(&stage.job_name)
        .hyper_parameter_tuning_job_config(config)
        .training_job_definition(definition)
        .set_tags(Some(tags)))
}

/// Hyperparameters are strings on the wire; the SDK sends `str(value)`, so booleans are spelled
/// the Python way.
pub(super) fn hyperparameters(values: &Map<String, Value>) -> HashMap<String, String> {
    values
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "True".to_string(),
                Value::Bool(false) => "False".to_string(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect()
}

/// `train`, and `validation` when given, each an `sagemaker.inputs.TrainingInput` with the
/// request's data settings. Compression and record wrapping are left out when not set, as the
/// SDK leaves them.
fn channels(t: &TrainingSpec, context: &AwsContext) -> Vec<Channel> {
    let channel = |name: &str, key: &str| {
        let attribute_names = (!t.attribute_names.is_empty()).then(|| t.attribute_names.clone());
        let source = S3DataSource::builder()
            .s3_data_type(S3DataType::from(t.s3_data_type.as_str()))
            .s3_uri(format!("s3://{}/{key}", context.assets_bucket))
            .s3_data_distribution_type(S3DataDistribution::from(t.data_distribution.as_str()))
            .set_attribute_names(attribute_names)
            .build();
        Channel::builder()
            .channel_name(name)
            .data_source(DataSource::builder().s3_data_source(source).build())
            .content_type(&t.content_type)
            .set_compression_type(t.compression_type.map(|SpecCompression::Gzip| CompressionType::Gzip))
            .set_record_wrapper_type(t.data_record_wrapping.map(|RecordWrapping::RecordIo| RecordWrapper::Recordio))
            .input_mode(TrainingInputMode::from(t.data_input_mode.as_str()))
            .build()
    };
    let mut channels = vec![channel("train", t.training_data.as_str())];
    if let Some(validation) = &t.validation_data {
        channels.push(channel("validation", validation.as_str()));
    }
    channels
}

fn output_data_config(t: &TrainingSpec, context: &AwsContext) -> OutputDataConfig {
    OutputDataConfig::builder()
        .s3_output_path(output_path(t, context))
        .set_kms_key_id(t.kms_key_arn.as_ref().map(|k| k.as_str().to_string()))
        .build()
}

fn resource_config(t: &TrainingSpec) -> ResourceConfig {
    ResourceConfig::builder()
        .instance_type(TrainingInstanceType::from(t.instance_type.as_str()))
        .instance_count(int(t.instance_count))
        .volume_size_in_gb(int(t.instance_volume_size))
        .set_volume_kms_key_id(t.kms_key_arn.as_ref().map(|k| k.as_str().to_string()))
        .build()
}

/// `max_run`, and with spot instances `max_wait` (how long to wait for spot capacity too).
fn stopping_condition(t: &TrainingSpec) -> StoppingCondition {
    StoppingCondition::builder()
        .max_runtime_in_seconds(int(t.max_runtime_per_job))
        .set_max_wait_time_in_seconds(t.use_spot_instances.then(|| int(t.max_wait_time_spot_instances)))
        .build()
}

/// With spot instances the job can be interrupted; it resumes from checkpoints here (the
/// solution's `s3://<assets>/<job_output_location>/<job_name>/checkpoint`).
fn checkpoint_config(stage: &TrainingStage, context: &AwsContext) -> Option<CheckpointConfig> {
    stage.training.use_spot_instances.then(|| {
        CheckpointConfig::builder()
            .s3_uri(format!("{}/{}/checkpoint", output_path(&stage.training, context), stage.job_name))
            .build()
    })
}

/// `ContinuousParameter(min, max)` and friends: bounds as strings, `Auto` scale.
fn parameter_ranges(tuner: &TunerSpec) -> ParameterRanges {
    let mut ranges = ParameterRanges::builder();
    for (name, range) in &tuner.hyperparameter_ranges {
        ranges = match range {
            HyperparameterRange::Continuous { min, max } => ranges.continuous_parameter_ranges(
                ContinuousParameterRange::builder()
                    .name(name)
                    .min_value(min.to_string())
                    .max_value(max.to_string())
                    .scaling_type(HyperParameterScalingType::Auto)
                    .build(),
            ),
            HyperparameterRange::Integer { min, max } => ranges.integer_parameter_ranges(
                IntegerParameterRange::builder()
                    .name(name)
                    .min_value(min.to_string())
                    .max_value(max.to_string())
                    .scaling_type(HyperParameterScalingType::Auto)
                    .build(),
            ),
            HyperparameterRange::Categorical { values } => ranges.categorical_parameter_ranges(
                CategoricalParameterRange::builder().name(name).set_values(Some(values.clone())).build(),
            ),
        };
    }
    ranges.build()
}

/// The tuner's `metric_definitions` (custom algorithms; built-ins publish their own metrics).
fn metric_definitions(configs: &Map<String, Value>) -> Option<Vec<MetricDefinition>> {
    let definitions = configs.get("metric_definitions")?.as_array()?;
    let text = |d: &Value, key: &str| d.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    Some(
        definitions
            .iter()
            .map(|d| MetricDefinition::builder().name(text(d, "Name")).regex(text(d, "Regex")).build())
            .collect(),
    )
}

// ----- Autopilot ---------------------------------------------------------------------------

pub(super) async fn run_autopilot(
    clients: &Clients,
    stage: &StageContext,
    a: &AutopilotStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let name = &a.job_name;
    let describe = async {
        let out = clients.sagemaker.describe_auto_ml_job_v2().auto_ml_job_name(name).send().await;
        out.map_err(|e| AwsError::from_sdk("DescribeAutoMLJobV2", e))
    };
    let create = async {
        let role = stack_output(outputs, "SageMakerRoleArn")?;
        let request = automl_request(a, role, context, job_tags(stage));
        request.send_with(&clients.sagemaker).await.map_err(|e| AwsError::from_sdk("CreateAutoMLJobV2", e))?;
        Ok(())
    };
    let status = |job: &DescribeAutoMlJobV2Output| {
        (
            job.auto_ml_job_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            job.failure_reason().map(String::from),
        )
    };
    let Some(job) = job_step("AutoML job", name, describe, status, create).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let status = job.auto_ml_job_status().map(|s| s.as_str()).unwrap_or_default();
    Ok(StepOutcome::Done(json!({
        "automl_job_name": name,
        "automl_job_status": status,
        "output_location": format!("s3://{}/{}", context.assets_bucket, a.autopilot.job_output_location),
        "best_candidate": job.best_candidate().and_then(|c| c.candidate_name()),
    })))
}

/// CreateAutoMLJobV2 with what `AutoML(...).fit(inputs, job_name)` sets (reference §7.6): a
/// tabular CSV problem with a header row, the target column, the problem type and objective when
/// given, the candidate and runtime limits as completion criteria, inter-container encryption and
/// the KMS key.
pub(super) fn automl_request(
    stage: &AutopilotStage,
    role: &str,
    context: &AwsContext,
    tags: Vec<Tag>,
) -> CreateAutoMlJobV2InputBuilder {
    let a = &stage.autopilot;
    let kms = a.kms_key_arn.as_ref().map(|k| k.as_str().to_string());
    let source = AutoMls3DataSource::builder()
        .s3_data_type(AutoMls3DataType::S3Prefix)
        .s3_uri(format!("s3://{}/{}", context.assets_bucket, a.training_data))
        .build();
    let channel = AutoMlJobChannel::builder()
        .channel_type(AutoMlChannelType::Training)
        .content_type("text/csv;header=present")
        .set_compression_type(a.compression_type.map(|SpecCompression::Gzip| CompressionType::Gzip))
        .data_source(AutoMlDataSource::builder().s3_data_source(source).build())
        .build();
    let criteria = AutoMlJobCompletionCriteria::builder()
        .max_candidates(int(a.job_max_candidates))
        .max_runtime_per_training_job_in_seconds(int(a.max_runtime_per_job))
        .max_auto_ml_job_runtime_in_seconds(int(a.total_max_runtime))
        .build();
    let tabular = TabularJobConfig::builder()
        .target_attribute_name(&a.target_attribute)
        .set_problem_type(a.problem_type.map(|p| SmProblemType::from(p.as_str())))
        .completion_criteria(criteria)
        .generate_candidate_definitions_only(a.generate_definition_only)
        .build();
    CreateAutoMlJobV2Input::builder()
        .auto_ml_job_name(&stage.job_name)
        .auto_ml_job_input_data_config(channel)
        .output_data_config(
            AutoMlOutputDataConfig::builder()
                .s3_output_path(format!("s3://{}/{}", context.assets_bucket, a.job_output_location))
                .set_kms_key_id(kms.clone())
                .build(),
        )
        .auto_ml_problem_type_config(AutoMlProblemTypeConfig::TabularJobConfig(tabular))
        .set_auto_ml_job_objective(
            a.job_objective
                .map(|o| AutoMlJobObjective::builder().metric_name(AutoMlMetricEnum::from(o.as_str())).build()),
        )
        .security_config(
            AutoMlSecurityConfig::builder()
                .enable_inter_container_traffic_encryption(a.encrypt_inner_traffic)
                .set_volume_kms_key_id(kms)
                .build(),
        )
        .role_arn(role)
        .set_tags(Some(tags))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::domain::{PipelineType, StageParams};

    const ROLE: &str = "arn:aws:iam::123456789012:role/training";
    const IMAGE: &str = "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1";

    fn training_of(body: &Value) -> TrainingStage {
        match fixtures::stage_of(body).params {
            StageParams::Training(t) => t,
            other => panic!("not training: {other:?}"),
        }
    }

    fn autopilot_of(body: &Value) -> AutopilotStage {
        match fixtures::stage_of(body).params {
            StageParams::Autopilot(a) => a,
            other => panic!("not autopilot: {other:?}"),
        }
    }

    fn sorted(map: &HashMap<String, String>) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        v.sort();
        v
    }

    #[test]
    fn training_request_is_the_estimators() {
        let t = training_of(&fixtures::request(PipelineType::ModelTrainingBuiltin));
        assert!(t.job_name.starts_with("churn-xgb-training-"), "{}", t.job_name);
        let image = training_image(&t.training, &fixtures::context()).unwrap();
        assert_eq!(image, IMAGE);
        let input = training_request(&t, ROLE, &image, &fixtures::context(), vec![]).build().unwrap();
        assert_eq!(input.training_job_name(), Some(t.job_name.as_str()));
        assert_eq!(input.role_arn(), Some(ROLE));
        let algorithm = input.algorithm_specification().unwrap();
        assert_eq!(algorithm.training_image(), Some(IMAGE));
        assert_eq!(algorithm.training_input_mode(), Some(&TrainingInputMode::File));
        assert_eq!(
            sorted(input.hyper_parameters().unwrap()),
            [("eval_metric", "auc"), ("num_round", "400"), ("objective", "binary:logistic"), ("rate_drop", "0.3")]
        );

        let channels: Vec<_> = input
            .input_data_config()
            .iter()
            .map(|c| {
                let s3 = c.data_source().and_then(|d| d.s3_data_source()).unwrap();
                (c.channel_name().unwrap(), s3.s3_uri().unwrap())
            })
            .collect();
        assert_eq!(
            channels,
            [
                ("train", "s3://mlops-assets/training/train.csv"),
                ("validation", "s3://mlops-assets/training/validation.csv")
            ]
        );
        let train = &input.input_data_config()[0];
        let s3 = train.data_source().and_then(|d| d.s3_data_source()).unwrap();
        assert_eq!(s3.s3_data_type(), Some(&S3DataType::S3Prefix));
        assert_eq!(s3.s3_data_distribution_type(), Some(&S3DataDistribution::FullyReplicated));
        assert!(s3.attribute_names().is_empty());
        assert_eq!(train.content_type(), Some("csv"));
        assert_eq!(train.compression_type(), None);
        assert_eq!(train.record_wrapper_type(), None);
        assert_eq!(train.input_mode(), Some(&TrainingInputMode::File));

        assert_eq!(input.output_data_config().unwrap().s3_output_path(), Some("s3://mlops-assets/training-output"));
        assert_eq!(input.output_data_config().unwrap().kms_key_id(), None);
        let resources = input.resource_config().unwrap();
        assert_eq!(resources.instance_type().map(|t| t.as_str()), Some("ml.m5.xlarge"));
        assert_eq!(resources.instance_count(), Some(1));
        assert_eq!(resources.volume_size_in_gb(), Some(20));
        let stopping = input.stopping_condition().unwrap();
        assert_eq!(stopping.max_runtime_in_seconds(), Some(86_400));
        assert_eq!(stopping.max_wait_time_in_seconds(), Some(172_800));
        assert_eq!(input.enable_managed_spot_training(), Some(true));
        let checkpoint = format!("s3://mlops-assets/training-output/{}/checkpoint", t.job_name);
        assert_eq!(input.checkpoint_config().and_then(|c| c.s3_uri()), Some(checkpoint.as_str()));
        assert_eq!(input.enable_inter_container_traffic_encryption(), Some(true));
    }

    #[test]
    fn training_without_spot_with_data_options_and_kms() {
        let mut body = fixtures::request(PipelineType::ModelTrainingBuiltin);
        let extra = json!({
            "use_spot_instances": "False",
            "encrypt_inner_traffic": "False",
            "compression_type": "Gzip",
            "data_record_wrapping": "RecordIO",
            "data_input_mode": "Pipe",
            "s3_data_type": "AugmentedManifestFile",
            "data_distribution": "ShardedByS3Key",
            "attribute_names": ["source-ref", "class"],
            "content_type": "application/x-recordio",
            "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k1",
            "job_name": "my-training-1",
        });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body.as_object_mut().unwrap().remove("validation_data");
        let t = training_of(&body);
        let input = training_request(&t, ROLE, IMAGE, &fixtures::context(), vec![]).build().unwrap();
        assert_eq!(input.training_job_name(), Some("my-training-1"));
        let [train] = input.input_data_config() else { panic!("only train") };
        let s3 = train.data_source().and_then(|d| d.s3_data_source()).unwrap();
        assert_eq!(s3.s3_data_type(), Some(&S3DataType::AugmentedManifestFile));
        assert_eq!(s3.s3_data_distribution_type(), Some(&S3DataDistribution::ShardedByS3Key));
        assert_eq!(s3.attribute_names(), ["source-ref", "class"]);
        assert_eq!(train.compression_type(), Some(&CompressionType::Gzip));
        assert_eq!(train.record_wrapper_type(), Some(&RecordWrapper::Recordio));
        assert_eq!(train.input_mode(), Some(&TrainingInputMode::Pipe));
        assert_eq!(train.content_type(), Some("application/x-recordio"));
        assert_eq!(input.enable_managed_spot_training(), Some(false));
        assert!(input.checkpoint_config().is_none());
        assert_eq!(input.stopping_condition().unwrap().max_wait_time_in_seconds(), None);
        assert_eq!(input.enable_inter_container_traffic_encryption(), Some(false));
        let kms = Some("arn:aws:kms:us-east-1:123456789012:key/k1");
        assert_eq!(input.output_data_config().unwrap().kms_key_id(), kms);
        assert_eq!(input.resource_config().unwrap().volume_kms_key_id(), kms);
    }

    #[test]
    fn hyperparameters_are_python_strings() {
        let values = json!({"a": 1, "b": 0.25, "c": true, "d": false, "e": "x", "f": null});
        let map = hyperparameters(values.as_object().unwrap());
        assert_eq!(sorted(&map), [("a", "1"), ("b", "0.25"), ("c", "True"), ("d", "False"), ("e", "x")]);
    }

    #[test]
    fn tuning_request_is_the_tuners() {
        let body = fixtures::request(PipelineType::ModelTunerBuiltin);
        let t = training_of(&body);
        let tuner = t.training.tuner.clone().unwrap();
        assert_eq!(t.job_name, "churn-tuning-1");
        let input = tuning_request(&t, &tuner, ROLE, IMAGE, &fixtures::context(), vec![]).unwrap().build().unwrap();
        assert_eq!(input.hyper_parameter_tuning_job_name(), Some("churn-tuning-1"));
        let config = input.hyper_parameter_tuning_job_config().unwrap();
        assert_eq!(config.strategy(), Some(&HyperParameterTuningJobStrategyType::Bayesian));
        let objective = config.hyper_parameter_tuning_job_objective().unwrap();
        assert_eq!(objective.r#type(), Some(&HyperParameterTuningJobObjectiveType::Maximize));
        assert_eq!(objective.metric_name(), Some("validation:auc"));
        let limits = config.resource_limits().unwrap();
        assert_eq!(limits.max_number_of_training_jobs(), Some(10));
        assert_eq!(limits.max_parallel_training_jobs(), Some(2));
        assert_eq!(config.training_job_early_stopping_type(), Some(&TrainingJobEarlyStoppingType::Auto));

        let ranges = config.parameter_ranges().unwrap();
        let continuous: Vec<_> = ranges
            .continuous_parameter_ranges()
            .iter()
            .map(|r| (r.name().unwrap(), r.min_value().unwrap(), r.max_value().unwrap(), r.scaling_type().unwrap()))
            .collect();
        let auto = &HyperParameterScalingType::Auto;
        assert_eq!(
            continuous,
            [("eta", "0.1", "0.5", auto), ("gamma", "0", "5", auto), ("min_child_weight", "0", "120", auto)]
        );
        let integer: Vec<_> = ranges
            .integer_parameter_ranges()
            .iter()
            .map(|r| (r.name().unwrap(), r.min_value().unwrap(), r.max_value().unwrap()))
            .collect();
        assert_eq!(integer, [("max_depth", "1", "15")]);
        let [categorical] = ranges.categorical_parameter_ranges() else { panic!("one categorical range") };
        assert_eq!(
            (categorical.name(), categorical.values()),
            (Some("optimizer"), &["sgd".to_string(), "Adam".to_string()][..])
        );

        let definition = input.training_job_definition().unwrap();
        assert_eq!(definition.role_arn(), Some(ROLE));
        assert_eq!(definition.algorithm_specification().and_then(|a| a.training_image()), Some(IMAGE));
        assert!(definition.algorithm_specification().unwrap().metric_definitions().is_empty());
        // The tuned hyperparameters are not static (none of the fixture's are tuned).
        assert_eq!(
            sorted(definition.static_hyper_parameters().unwrap()),
            [("eval_metric", "auc"), ("num_round", "400"), ("objective", "binary:logistic"), ("rate_drop", "0.3")]
        );
        assert_eq!(definition.input_data_config().len(), 2);
        assert_eq!(
            definition.output_data_config().unwrap().s3_output_path(),
            Some("s3://mlops-assets/training-output")
        );
        assert_eq!(definition.enable_managed_spot_training(), Some(true));
        assert_eq!(
            definition.checkpoint_config().and_then(|c| c.s3_uri()),
            Some("s3://mlops-assets/training-output/churn-tuning-1/checkpoint")
        );
        assert_eq!(definition.stopping_condition().unwrap().max_wait_time_in_seconds(), Some(172_800));
    }

    #[test]
    fn tuner_defaults_grid_and_tuned_statics() {
        let mut body = fixtures::request(PipelineType::ModelTunerBuiltin);
        body["tuner_configs"] = json!({
            "objective_metric_name": "validation:rmse",
            "strategy": "Grid",
            "metric_definitions": [{"Name": "validation:rmse", "Regex": "rmse=(\\S+)"}],
        });
        body["hyperparamaters_ranges"] = json!({"num_round": ["integer", [100, 500]]});
        let t = training_of(&body);
        let tuner = t.training.tuner.clone().unwrap();
        let input = tuning_request(&t, &tuner, ROLE, IMAGE, &fixtures::context(), vec![]).unwrap().build().unwrap();
        let config = input.hyper_parameter_tuning_job_config().unwrap();
        assert_eq!(config.strategy(), Some(&HyperParameterTuningJobStrategyType::Grid));
        let objective = config.hyper_parameter_tuning_job_objective().unwrap();
        assert_eq!(objective.r#type(), Some(&HyperParameterTuningJobObjectiveType::Maximize));
        let limits = config.resource_limits().unwrap();
        assert_eq!(limits.max_number_of_training_jobs(), None, "Grid takes no job count");
        assert_eq!(limits.max_parallel_training_jobs(), Some(1));
        assert_eq!(config.training_job_early_stopping_type(), Some(&TrainingJobEarlyStoppingType::Off));
        let definition = input.training_job_definition().unwrap();
        let [metric] = definition.algorithm_specification().unwrap().metric_definitions() else { panic!("one metric") };
        assert_eq!((metric.name(), metric.regex()), (Some("validation:rmse"), Some("rmse=(\\S+)")));
        let statics = definition.static_hyper_parameters().unwrap();
        assert!(!statics.contains_key("num_round"), "a tuned hyperparameter is not static");
        assert_eq!(statics.get("eval_metric").map(String::as_str), Some("auc"));
    }

    #[test]
    fn automl_request_is_a_tabular_v2_job() {
        let a = autopilot_of(&fixtures::request(PipelineType::ModelAutopilotTraining));
        assert!(a.job_name.starts_with("churn-autopilot-autopilot-"), "{}", a.job_name);
        let input = automl_request(&a, ROLE, &fixtures::context(), vec![]).build().unwrap();
        assert_eq!(input.auto_ml_job_name(), Some(a.job_name.as_str()));
        assert_eq!(input.role_arn(), Some(ROLE));
        let [channel] = input.auto_ml_job_input_data_config() else { panic!("one channel") };
        assert_eq!(channel.channel_type(), Some(&AutoMlChannelType::Training));
        assert_eq!(channel.content_type(), Some("text/csv;header=present"));
        assert_eq!(channel.compression_type(), None);
        let s3 = channel.data_source().and_then(|d| d.s3_data_source()).unwrap();
        assert_eq!(s3.s3_data_type(), Some(&AutoMls3DataType::S3Prefix));
        assert_eq!(s3.s3_uri(), Some("s3://mlops-assets/autopilot/train.csv"));
        let output = input.output_data_config().unwrap();
        assert_eq!(output.s3_output_path(), Some("s3://mlops-assets/autopilot-output"));
        assert_eq!(output.kms_key_id(), None);
        let Some(AutoMlProblemTypeConfig::TabularJobConfig(tabular)) = input.auto_ml_problem_type_config() else {
            panic!("tabular")
        };
        assert_eq!(tabular.target_attribute_name(), Some("churn"));
        assert_eq!(tabular.problem_type(), Some(&SmProblemType::BinaryClassification));
        assert_eq!(tabular.generate_candidate_definitions_only(), Some(false));
        let criteria = tabular.completion_criteria().unwrap();
        assert_eq!(criteria.max_candidates(), Some(10));
        assert_eq!(criteria.max_runtime_per_training_job_in_seconds(), Some(86_400));
        assert_eq!(criteria.max_auto_ml_job_runtime_in_seconds(), Some(2_592_000));
        assert_eq!(input.auto_ml_job_objective().and_then(|o| o.metric_name()), Some(&AutoMlMetricEnum::F1));
        let security = input.security_config().unwrap();
        assert_eq!(security.enable_inter_container_traffic_encryption(), Some(true));
        assert_eq!(security.volume_kms_key_id(), None);
    }

    #[test]
    fn automl_without_problem_type_with_gzip_and_kms() {
        let mut body = fixtures::request(PipelineType::ModelAutopilotTraining);
        for key in ["problem_type", "job_objective"] {
            body.as_object_mut().unwrap().remove(key);
        }
        body["compression_type"] = json!("Gzip");
        body["generate_definition_only"] = json!("True");
        body["kms_key_arn"] = json!("arn:aws:kms:us-east-1:123456789012:key/k1");
        let a = autopilot_of(&body);
        let input = automl_request(&a, ROLE, &fixtures::context(), vec![]).build().unwrap();
        let Some(AutoMlProblemTypeConfig::TabularJobConfig(tabular)) = input.auto_ml_problem_type_config() else {
            panic!("tabular")
        };
        assert_eq!(tabular.problem_type(), None, "Autopilot infers it");
        assert_eq!(tabular.generate_candidate_definitions_only(), Some(true));
        assert!(input.auto_ml_job_objective().is_none());
        assert_eq!(input.auto_ml_job_input_data_config()[0].compression_type(), Some(&CompressionType::Gzip));
        let kms = Some("arn:aws:kms:us-east-1:123456789012:key/k1");
        assert_eq!(input.output_data_config().unwrap().kms_key_id(), kms);
        assert_eq!(input.security_config().unwrap().volume_kms_key_id(), kms);
    }
}
