//! `model_training_builtin`, `model_tuner_builtin` and `model_autopilot_training`. Defaults are
//! the solution's (reference §3.10, §3.11); ranges are the templates' constraints.

use serde_json::Value;

use super::body::{Body, pointer};
use super::errors::FieldErrorCode;
use super::hyperparameters::{attribute_names, ranges, static_hyperparameters, tuner_configs};
use super::identity;
use super::inference::{framework, framework_version};
use super::scalars::{
    Invalid, asset_key, boolean, choice, integer, kms_key, model_name, optional_choice, parsed, quoted, text,
};
use crate::domain::names::{JobName, MAX_SAGEMAKER_NAME_LEN, MAX_TUNING_JOB_NAME_LEN};
use crate::domain::pipeline_type::PipelineType;
use crate::domain::spec::{
    AutopilotObjective, AutopilotSpec, Choice, DataDistribution, DataInputMode, PipelineParams, PipelineSpec,
    ProblemType, S3DataType, TrainingSpec, TunerSpec,
};
use crate::domain::values::{AssetKey, InstanceType};

const MAX_RUNTIME_PER_JOB: std::ops::RangeInclusive<u32> = 600..=259_200;
const MAX_WAIT_SPOT: std::ops::RangeInclusive<u32> = 1..=259_200;
const TOTAL_MAX_RUNTIME: std::ops::RangeInclusive<u32> = 3_600..=2_592_000;
/// SageMaker's limit on a training volume, in GB.
const MAX_VOLUME_GB: u32 = 16_384;

pub(super) fn training(b: &mut Body) -> Option<PipelineSpec> {
    let pipeline_type = b.pipeline_type;
    let tuner = pipeline_type == PipelineType::ModelTunerBuiltin;
    let model_name = b.required("model_name", model_name(pipeline_type));
    let training_data = b.required("training_data", asset_key);
    let job_output_location = b.required("job_output_location", asset_key);
    let model_framework = b.required("model_framework", framework);
    let model_framework_version = b.required("model_framework_version", framework_version);
    let algo_hyperparameters = b.required("algo_hyperparamaters", static_hyperparameters);
    let tuner_spec = tuner.then(|| {
        let tuner_configs = b.required("tuner_configs", tuner_configs);
        let hyperparameter_ranges = b.required("hyperparamaters_ranges", ranges);
        Some(TunerSpec { tuner_configs: tuner_configs?, hyperparameter_ranges: hyperparameter_ranges? })
    });
    let job_name = b.optional("job_name", job_name(pipeline_type));
    let validation_data = b.optional("validation_data", optional_asset_key);
    let instance_type = b.optional("instance_type", parsed(InstanceType::parse));
    let instance_count = b.optional("instance_count", |v| integer(v, 1..=u32::MAX));
    let instance_volume_size = b.optional("instance_volume_size", |v| integer(v, 1..=MAX_VOLUME_GB));
    let encrypt_inner_traffic = b.optional("encrypt_inner_traffic", boolean);
    let max_runtime_per_job = b.optional("max_runtime_per_job", |v| integer(v, MAX_RUNTIME_PER_JOB));
    let use_spot_instances = b.optional("use_spot_instances", boolean);
    let max_wait_time_spot_instances = b.optional("max_wait_time_spot_instances", |v| integer(v, MAX_WAIT_SPOT));
    let content_type = b.optional("content_type", text);
    let s3_data_type = b.optional("s3_data_type", choice::<S3DataType>);
    let data_distribution = b.optional("data_distribution", choice::<DataDistribution>);
    let compression_type = b.optional("compression_type", optional_choice);
    let data_input_mode = b.optional("data_input_mode", choice::<DataInputMode>);
    let data_record_wrapping = b.optional("data_record_wrapping", optional_choice);
    let attribute_names = b.optional("attribute_names", attribute_names);
    let kms_key_arn = b.optional("kms_key_arn", kms_key);

    // Rules across fields, checked on whatever parsed so that every problem is reported.
    let mut consistent = true;
    if let (Some(model_name), Some(None)) = (&model_name, &job_name) {
        consistent &= default_job_name_fits(b, model_name);
    }
    let max_runtime_per_job = max_runtime_per_job.map(|v| v.unwrap_or(86_400));
    let use_spot_instances = use_spot_instances.map(|v| v.unwrap_or(true));
    let max_wait_time_spot_instances = max_wait_time_spot_instances.map(|v| v.unwrap_or(172_800));
    if let (Some(runtime), Some(true), Some(wait)) =
        (max_runtime_per_job, use_spot_instances, max_wait_time_spot_instances)
        && wait < runtime
    {
        b.error(
            pointer(&["max_wait_time_spot_instances"]),
            FieldErrorCode::InvalidValue,
            format!(
                "`max_wait_time_spot_instances` ({wait}) must be at least `max_runtime_per_job` ({runtime}) when spot instances are used"
            ),
        );
        consistent = false;
    }
    if !consistent {
        return None;
    }

    let model_name = model_name?;
    Some(PipelineSpec {
        pipeline_type,
        name: identity(&model_name),
        params: PipelineParams::Training(TrainingSpec {
            model_name,
            training_data: training_data?,
            validation_data: validation_data?.flatten(),
            job_output_location: job_output_location?,
            model_framework: model_framework?,
            model_framework_version: model_framework_version?,
            algo_hyperparameters: algo_hyperparameters?,
            job_name: job_name?,
            instance_type: match instance_type? {
                Some(instance_type) => instance_type,
                None => InstanceType::parse("ml.m4.xlarge").expect("valid default"),
            },
            instance_count: instance_count?.unwrap_or(1),
            instance_volume_size: instance_volume_size?.unwrap_or(20),
            encrypt_inner_traffic: encrypt_inner_traffic?.unwrap_or(true),
            max_runtime_per_job: max_runtime_per_job?,
            use_spot_instances: use_spot_instances?,
            max_wait_time_spot_instances: max_wait_time_spot_instances?,
            content_type: content_type?.unwrap_or_else(|| "csv".to_string()),
            s3_data_type: s3_data_type?.unwrap_or(S3DataType::S3Prefix),
            data_distribution: data_distribution?.unwrap_or(DataDistribution::FullyReplicated),
            compression_type: compression_type?.flatten(),
            data_input_mode: data_input_mode?.unwrap_or(DataInputMode::File),
            data_record_wrapping: data_record_wrapping?.flatten(),
            attribute_names: attribute_names?.unwrap_or_default(),
            kms_key_arn: kms_key_arn?.flatten(),
            tuner: match tuner_spec {
                Some(tuner_spec) => Some(tuner_spec?),
                None => None,
            },
        }),
    })
}

pub(super) fn autopilot(b: &mut Body) -> Option<PipelineSpec> {
    let pipeline_type = b.pipeline_type;
    let model_name = b.required("model_name", model_name(pipeline_type));
    let training_data = b.required("training_data", asset_key);
    let job_output_location = b.required("job_output_location", asset_key);
    let target_attribute = b.required("target_attribute", target_attribute);
    let job_name = b.optional("job_name", job_name(pipeline_type));
    let problem_type = b.optional("problem_type", optional_choice::<ProblemType>).map(Option::flatten);
    let job_objective = b.optional("job_objective", optional_choice::<AutopilotObjective>).map(Option::flatten);
    let compression_type = b.optional("compression_type", optional_choice);
    let job_max_candidates = b.optional("job_max_candidates", |v| integer(v, 1..=u32::MAX));
    let encrypt_inner_traffic = b.optional("encrypt_inner_traffic", boolean);
    let max_runtime_per_job = b.optional("max_runtime_per_job", |v| integer(v, MAX_RUNTIME_PER_JOB));
    let total_max_runtime = b.optional("total_max_runtime", |v| integer(v, TOTAL_MAX_RUNTIME));
    let generate_definition_only = b.optional("generate_definition_only", boolean);
    let kms_key_arn = b.optional("kms_key_arn", kms_key);

    // Rules across fields, checked on whatever parsed so that every problem is reported.
    let mut consistent = true;
    if let (Some(model_name), Some(None)) = (&model_name, &job_name) {
        consistent &= default_job_name_fits(b, model_name);
    }
    if let (Some(problem_type), Some(job_objective)) = (problem_type, job_objective) {
        consistent &= objective_suits_problem(b, problem_type, job_objective);
    }
    let max_runtime_per_job = max_runtime_per_job.map(|v| v.unwrap_or(86_400));
    let total_max_runtime = total_max_runtime.map(|v| v.unwrap_or(2_592_000));
    if let (Some(per_job), Some(total)) = (max_runtime_per_job, total_max_runtime)
        && per_job > total
    {
        b.error(
            pointer(&["max_runtime_per_job"]),
            FieldErrorCode::InvalidValue,
            format!("`max_runtime_per_job` ({per_job}) must not exceed `total_max_runtime` ({total})"),
        );
        consistent = false;
    }
    if !consistent {
        return None;
    }

    let model_name = model_name?;
    Some(PipelineSpec {
        pipeline_type,
        name: identity(&model_name),
        params: PipelineParams::Autopilot(AutopilotSpec {
            model_name,
            training_data: training_data?,
            job_output_location: job_output_location?,
            target_attribute: target_attribute?,
            job_name: job_name?,
            problem_type: problem_type?,
            job_objective: job_objective?,
            compression_type: compression_type?.flatten(),
            job_max_candidates: job_max_candidates?.unwrap_or(10),
            encrypt_inner_traffic: encrypt_inner_traffic?.unwrap_or(true),
            max_runtime_per_job: max_runtime_per_job?,
            total_max_runtime: total_max_runtime?,
            generate_definition_only: generate_definition_only?.unwrap_or(false),
            kms_key_arn: kms_key_arn?.flatten(),
        }),
    })
}

/// SageMaker limits tuning and AutoML job names more tightly than training-job names.
fn job_name_limit(pipeline_type: PipelineType) -> usize {
    match pipeline_type {
        PipelineType::ModelTrainingBuiltin => MAX_SAGEMAKER_NAME_LEN,
        _ => MAX_TUNING_JOB_NAME_LEN,
    }
}

fn job_name(pipeline_type: PipelineType) -> impl Fn(&Value) -> Result<JobName, Invalid> {
    move |v| {
        let name = parsed(JobName::parse)(v)?;
        let limit = job_name_limit(pipeline_type);
        if name.as_str().len() > limit {
            return Err(Invalid::value(format!(
                "`{name}` is {} characters long; SageMaker allows at most {limit} for this kind of job",
                name.as_str().len()
            )));
        }
        Ok(name)
    }
}

/// Without `job_name`, the job is named `<model_name>-<infix>-<4 hex>`: that must fit too.
fn default_job_name_fits(b: &mut Body, model_name: &str) -> bool {
    let limit = job_name_limit(b.pipeline_type);
    let infix = b.pipeline_type.job_name_infix().unwrap_or_default();
    let suffix_len = infix.len() + 6;
    if model_name.len() + suffix_len <= limit {
        return true;
    }
    b.error(
        pointer(&["job_name"]),
        FieldErrorCode::Required,
        format!(
            "`job_name` is required when the model name is longer than {} characters: the default `<model_name>-{infix}-<4 hex>` would exceed SageMaker's {limit}",
            limit - suffix_len,
        ),
    );
    false
}

/// Autopilot takes a problem type and an objective together, or neither, and the objective must
/// be one it offers for that problem type.
fn objective_suits_problem(
    b: &mut Body,
    problem_type: Option<ProblemType>,
    job_objective: Option<AutopilotObjective>,
) -> bool {
    let (pointer_key, code, message) = match (problem_type, job_objective) {
        (None, Some(objective)) => (
            "problem_type",
            FieldErrorCode::Required,
            format!(
                "`problem_type` is required when `job_objective` (`{}`) is given: Autopilot takes both or neither",
                objective.as_str()
            ),
        ),
        (Some(problem), None) => (
            "job_objective",
            FieldErrorCode::Required,
            format!(
                "`job_objective` is required when `problem_type` (`{}`) is given: Autopilot takes both or neither",
                problem.as_str()
            ),
        ),
        (Some(problem), Some(objective)) if !objective.suits(problem) => {
            let suitable: Vec<&str> =
                AutopilotObjective::ALL.iter().filter(|o| o.suits(problem)).map(|o| o.as_str()).collect();
            (
                "job_objective",
                FieldErrorCode::InvalidValue,
                format!(
                    "`job_objective`: `{}` does not apply to {}; use {}",
                    objective.as_str(),
                    problem.as_str(),
                    quoted(suitable)
                ),
            )
        }
        _ => return true,
    };
    b.error(pointer(&[pointer_key]), code, message);
    false
}

/// `validation_data`: the empty string (the solution's default) means none.
fn optional_asset_key(v: &Value) -> Result<Option<AssetKey>, Invalid> {
    match v.as_str() {
        Some("") => Ok(None),
        _ => asset_key(v).map(Some),
    }
}

fn target_attribute(v: &Value) -> Result<String, Invalid> {
    let name = text(v)?;
    if name.len() > 128 {
        return Err(Invalid::value(format!("is {} characters long; at most 128 are allowed", name.len())));
    }
    Ok(name)
}
