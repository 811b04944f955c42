//! The per-environment deployment plan: which stages a pipeline has, in what order, which need
//! an approval, and every parameter each stage deploys with (per-environment values resolved,
//! generated names filled in). Both targets deploy from [`StageParams`] alone.
//!
//! Generated names (`<endpoint>-<monitor type>-<4 hex>` for monitor baseline jobs and schedules,
//! `<model_name>-<training|tuner|autopilot>-<4 hex>` for training jobs without `job_name`) take
//! their hex from a hash of the pipeline type, name, environment, revision and purpose. The
//! solution draws a fresh UUID on every provisioning; hashing the caller's `revision` keeps that
//! behaviour (a new revision gets new names, so a re-provisioned monitor re-runs its baseline)
//! while making a plan reproducible.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cron::CronExpression;
use super::names::{EndpointName, JobName};
use super::per_stage::PerStage;
use super::pipeline_type::PipelineType;
use super::request::RequestContext;
use super::spec::{
    AutopilotSpec, ImageBuilderSpec, ModelSource, MonitorKind, PipelineParams, PipelineSpec, TrainingSpec,
};
use super::values::{AssetKey, InstanceType, KmsKeyArn, S3Location};

/// The environment name when the server configures none.
pub const DEFAULT_ENVIRONMENT: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// In promotion order.
    pub stages: Vec<StagePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StagePlan {
    /// Position in the promotion order, from 0.
    pub ordinal: u32,
    pub environment: String,
    /// Every stage after the first waits for a manual approval, as the solution's multi-account
    /// pipeline does.
    pub requires_approval: bool,
    pub params: StageParams,
}

/// Everything one stage deploys with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum StageParams {
    Realtime(RealtimeStage),
    Batch(BatchStage),
    Monitor(MonitorStage),
    ImageBuilder(ImageBuilderSpec),
    Training(TrainingStage),
    Autopilot(AutopilotStage),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RealtimeStage {
    pub model_name: String,
    pub model: ModelSource,
    pub inference_instance: InstanceType,
    pub data_capture_location: S3Location,
    pub endpoint_name: EndpointName,
    pub kms_key_arn: Option<KmsKeyArn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchStage {
    pub model_name: String,
    pub model: ModelSource,
    pub inference_instance: InstanceType,
    pub batch_inference_data: S3Location,
    pub batch_job_output_location: S3Location,
    pub kms_key_arn: Option<KmsKeyArn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonitorStage {
    pub endpoint_name: EndpointName,
    /// `<endpoint>-<type>-<4 hex>`; the baseline output goes under
    /// `<baseline_job_output_location>/<baseline_job_name>`.
    pub baseline_job_name: String,
    /// `<endpoint>-<type>-<4 hex>`, with its own hex.
    pub monitoring_schedule_name: String,
    pub baseline_data: AssetKey,
    pub baseline_job_output_location: S3Location,
    pub data_capture_location: S3Location,
    pub monitoring_output_location: S3Location,
    pub schedule_expression: CronExpression,
    pub monitor_max_runtime_seconds: u32,
    pub instance_type: InstanceType,
    pub instance_volume_size: u32,
    pub baseline_max_runtime_seconds: Option<u32>,
    pub kms_key_arn: Option<KmsKeyArn>,
    pub monitor_ground_truth_input: Option<S3Location>,
    pub kind: MonitorKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingStage {
    /// The spec's `job_name`, or the generated default.
    pub job_name: String,
    pub training: TrainingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AutopilotStage {
    /// The spec's `job_name`, or the generated default.
    pub job_name: String,
    pub autopilot: AutopilotSpec,
}

/// A spec cannot be planned against the current environments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec has per-environment values, but not for this environment: the server's
    /// environments changed since the spec was validated.
    #[error(
        "`{field}` has no value for environment `{environment}`; the pipeline's per-environment values no longer match the configured environments"
    )]
    MissingStageValue { field: &'static str, environment: String },
}

/// Plans `spec` for the configured environments. `revision` distinguishes provisionings of the
/// same pipeline (e.g. its version number); it only feeds generated names.
pub fn plan(spec: &PipelineSpec, ctx: &RequestContext, revision: u64) -> Result<Plan, PlanError> {
    let stages = stage_environments(spec.pipeline_type, ctx)
        .into_iter()
        .enumerate()
        .map(|(ordinal, environment)| {
            let params = stage_params(spec, &environment, revision)?;
            Ok(StagePlan { ordinal: ordinal as u32, requires_approval: ordinal > 0, environment, params })
        })
        .collect::<Result<_, _>>()?;
    Ok(Plan { stages })
}

/// Every configured environment for promoted types; only the first (or [`DEFAULT_ENVIRONMENT`])
/// for single environments and for the types that deploy once.
pub fn stage_environments(pipeline_type: PipelineType, ctx: &RequestContext) -> Vec<String> {
    match ctx.environments.as_slice() {
        [] => vec![DEFAULT_ENVIRONMENT.to_string()],
        all if all.len() >= 2 && pipeline_type.supports_per_stage() => all.to_vec(),
        [first, ..] => vec![first.clone()],
    }
}

fn stage_params(spec: &PipelineSpec, environment: &str, revision: u64) -> Result<StageParams, PlanError> {
    let resolve = Resolver { environment };
    let generated = |purpose: &str| {
        short_hex(&[spec.pipeline_type.as_str(), &spec.name, environment, &revision.to_string(), purpose])
    };
    Ok(match &spec.params {
        PipelineParams::Realtime(p) => StageParams::Realtime(RealtimeStage {
            model_name: p.model_name.clone(),
            model: p.model.clone(),
            inference_instance: resolve.value("inference_instance", &p.inference_instance)?,
            data_capture_location: resolve.value("data_capture_location", &p.data_capture_location)?,
            endpoint_name: resolve.value("endpoint_name", &p.endpoint_name)?,
            kms_key_arn: resolve.value("kms_key_arn", &p.kms_key_arn)?,
        }),
        PipelineParams::Batch(p) => StageParams::Batch(BatchStage {
            model_name: p.model_name.clone(),
            model: p.model.clone(),
            inference_instance: resolve.value("inference_instance", &p.inference_instance)?,
            batch_inference_data: resolve.value("batch_inference_data", &p.batch_inference_data)?,
            batch_job_output_location: resolve.value("batch_job_output_location", &p.batch_job_output_location)?,
            kms_key_arn: resolve.value("kms_key_arn", &p.kms_key_arn)?,
        }),
        PipelineParams::Monitor(p) => {
            let endpoint_name = resolve.value("endpoint_name", &p.endpoint_name)?;
            let infix = p.kind.monitor_type().name_infix();
            StageParams::Monitor(MonitorStage {
                baseline_job_name: format!("{endpoint_name}-{infix}-{}", generated("baseline")),
                monitoring_schedule_name: format!("{endpoint_name}-{infix}-{}", generated("schedule")),
                endpoint_name,
                baseline_data: p.baseline_data.clone(),
                baseline_job_output_location: resolve
                    .value("baseline_job_output_location", &p.baseline_job_output_location)?,
                data_capture_location: resolve.value("data_capture_location", &p.data_capture_location)?,
                monitoring_output_location: resolve
                    .value("monitoring_output_location", &p.monitoring_output_location)?,
                schedule_expression: resolve.value("schedule_expression", &p.schedule_expression)?,
                monitor_max_runtime_seconds: resolve
                    .value("monitor_max_runtime_seconds", &p.monitor_max_runtime_seconds)?,
                instance_type: resolve.value("instance_type", &p.instance_type)?,
                instance_volume_size: resolve.value("instance_volume_size", &p.instance_volume_size)?,
                baseline_max_runtime_seconds: resolve
                    .value("baseline_max_runtime_seconds", &p.baseline_max_runtime_seconds)?,
                kms_key_arn: resolve.value("kms_key_arn", &p.kms_key_arn)?,
                monitor_ground_truth_input: p
                    .monitor_ground_truth_input
                    .as_ref()
                    .map(|input| resolve.value("monitor_ground_truth_input", input))
                    .transpose()?,
                kind: p.kind.clone(),
            })
        }
        PipelineParams::ImageBuilder(p) => StageParams::ImageBuilder(p.clone()),
        PipelineParams::Training(p) => StageParams::Training(TrainingStage {
            job_name: job_name(
                if p.tuner.is_some() { "tuner" } else { "training" },
                &p.model_name,
                p.job_name.as_ref(),
                generated,
            ),
            training: p.clone(),
        }),
        PipelineParams::Autopilot(p) => StageParams::Autopilot(AutopilotStage {
            job_name: job_name("autopilot", &p.model_name, p.job_name.as_ref(), generated),
            autopilot: p.clone(),
        }),
    })
}

struct Resolver<'a> {
    environment: &'a str,
}

impl Resolver<'_> {
    fn value<T: Clone>(&self, field: &'static str, value: &PerStage<T>) -> Result<T, PlanError> {
        value
            .get(self.environment)
            .cloned()
            .ok_or_else(|| PlanError::MissingStageValue { field, environment: self.environment.to_string() })
    }
}

/// The spec's job name, or `<model_name>-<infix>-<4 hex>`.
fn job_name(infix: &str, model_name: &str, given: Option<&JobName>, generated: impl Fn(&str) -> String) -> String {
    match given {
        Some(name) => name.to_string(),
        None => format!("{model_name}-{infix}-{}", generated("job")),
    }
}

/// Four hex digits from a 64-bit FNV-1a hash of `parts`, folded to 16 bits.
fn short_hex(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let folded = (hash ^ (hash >> 16) ^ (hash >> 32) ^ (hash >> 48)) & 0xffff;
    format!("{folded:04x}")
}
