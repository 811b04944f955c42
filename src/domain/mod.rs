//! The pure domain: pipeline types, request validation into a typed [`PipelineSpec`], the
//! per-environment [`Plan`], and the pipeline/stage state machines. No HTTP, no SQL, no I/O:
//! everything here is a function of its inputs.

pub mod config_file;
pub mod cron;
pub mod jobs;
pub mod model_card;
pub mod names;
pub mod notifications;
pub mod per_stage;
pub mod pipeline_type;
pub mod plan;
pub mod request;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod values;
pub mod workflow;

#[cfg(test)]
mod tests;

pub use cron::CronExpression;
pub use names::{EcrRepoName, EndpointName, ImageTag, JobName};
pub use per_stage::PerStage;
pub use pipeline_type::{MonitorType, PipelineType, UnknownPipelineType};
pub use plan::{Plan, PlanError, StageParams, StagePlan, plan};
pub use request::{FieldError, FieldErrorCode, RequestContext, RequestErrors, ValidatedRequest, parse_request};
pub use spec::{ModelSource, PipelineParams, PipelineSpec};
pub use values::{AssetKey, ImageUri, InstanceType, InvalidValue, KmsKeyArn, ModelPackageArn, S3Location};
