//! Rows as the store returns them, and the inputs of its write operations.

use crate::domain::state::{PipelineState, StageState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use std::time::Duration;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PipelineRecord {
    pub id: String,
    pub name: String,
    pub pipeline_type: String,
    pub target: String,
    pub spec: Json<Value>,
    pub request: Json<Value>,
    #[sqlx(try_from = "String")]
    pub state: PipelineState,
    pub version: i64,
    pub created_by: String,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The target's own id for the pipeline (aws: the wrapper stack's StackId), once known.
    pub external_id: Option<String>,
    /// The config revision that provisioned the current version, if one did.
    pub origin: Option<Json<Value>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRecord {
    pub pipeline_id: String,
    pub ordinal: i32,
    pub environment: String,
    #[sqlx(try_from = "String")]
    pub state: StageState,
    pub requires_approval: bool,
    pub params: Json<Value>,
    pub outputs: Option<Json<Value>>,
    pub version: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// What the running deploy step has finished so far (see [`crate::store::Store::save_checkpoint`]).
    pub checkpoint: Option<Json<Value>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub payload: Json<Value>,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub pipeline_id: Option<String>,
    pub stage_ordinal: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Job statuses as stored.
pub mod job_status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventRecord {
    pub id: i64,
    pub pipeline_id: String,
    pub stage_ordinal: Option<i32>,
    /// What happened, e.g. `pipeline.state_changed`, `stage.approved`.
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    /// Who caused it: a token name, or `system` for workers.
    pub actor: String,
    pub message: Option<String>,
    /// Structured facts about the event: a stage transition's pipeline `version`; a monitor
    /// execution's `violations` and whether they `repeated` the previous execution's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<sqlx::types::Json<serde_json::Value>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRecord {
    pub environment: String,
    pub name: String,
    pub pipeline_id: String,
    pub stage_ordinal: i32,
    pub state: String,
    pub config: Json<Value>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A custom algorithm `byom_image_builder` built on the local target.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlgorithmRecord {
    /// `ecr_repo_name:image_tag`, what `custom_image_uri` names.
    pub name: String,
    pub pipeline_id: String,
    /// SHA-256 of the zip: names its snapshot and each replica's unpacked copy.
    pub sha256: String,
    /// The asset key it was built from.
    pub source: String,
    /// The checked layout and how it was built.
    pub details: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Endpoint states as stored.
pub mod endpoint_state {
    /// Reserved by a provisioned pipeline, not deployed yet.
    pub const CREATING: &str = "creating";
    pub const IN_SERVICE: &str = "in_service";
}

pub struct NewPipeline {
    pub id: String,
    pub name: String,
    pub pipeline_type: String,
    pub target: String,
    pub spec: Value,
    pub request: Value,
    pub actor: String,
    /// The config revision it came from (`source`, `kind`, `revision`, `author`, `message`);
    /// none for an API request.
    pub origin: Option<Value>,
    /// That origin in words, for the provisioning event.
    pub origin_note: Option<String>,
}

/// The stages (and endpoint names) of one pipeline version, as the planner makes them.
#[derive(Debug, Clone, Default)]
pub struct PlannedStages {
    pub stages: Vec<NewStage>,
    pub endpoints: Vec<NewEndpoint>,
}

/// Plans the stages of a pipeline for a version. The store calls it inside the provisioning
/// transaction, once it knows the version under the pipeline's lock, so two concurrent
/// re-provisions never plan (and name their jobs) for the same version. An error is a request
/// the planner refuses.
pub type StagePlanner<'a> = dyn Fn(i64) -> Result<PlannedStages, String> + Send + Sync + 'a;

#[derive(Debug, Clone)]
pub struct NewStage {
    pub environment: String,
    pub requires_approval: bool,
    pub params: Value,
}

#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub environment: String,
    pub name: String,
    pub stage_ordinal: i32,
}

#[derive(Debug, Clone)]
pub enum Provisioned {
    Created(PipelineRecord),
    Updated(PipelineRecord),
}

impl Provisioned {
    pub fn record(&self) -> &PipelineRecord {
        match self {
            Provisioned::Created(p) | Provisioned::Updated(p) => p,
        }
    }
}

/// How the jobs a workflow plan enqueues are run.
#[derive(Debug, Clone, Copy)]
pub struct JobPolicy {
    pub max_attempts: i32,
}

/// The result of applying a fact to a pipeline.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The pipeline after the change.
    pub pipeline: PipelineRecord,
    /// The stage the fact named, after the change (`None` when skipped or none was named).
    pub stage: Option<StageRecord>,
    /// Why nothing changed, when nothing did (superseded or finished work).
    pub skipped: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    pub pipeline_id: Option<String>,
    pub stage_ordinal: Option<i32>,
}

/// How a job run ended, as the runner reports it.
#[derive(Debug, Clone)]
pub enum JobFinish {
    Succeeded,
    /// A long wait: run again at `run_at` without counting an attempt.
    Reschedule {
        run_at: DateTime<Utc>,
    },
    /// A transient failure: attempts + 1, run again at `run_at` unless attempts are used up.
    Retry {
        run_at: DateTime<Utc>,
        error: String,
    },
    /// A permanent failure.
    Fail {
        error: String,
    },
}

/// Identifies one stage at one pipeline version; stale versions are superseded work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageKey {
    pub pipeline_id: String,
    pub ordinal: i32,
    pub version: i64,
}

#[derive(Debug, Clone, Default)]
pub struct PipelineFilter {
    pub state: Option<PipelineState>,
    pub pipeline_type: Option<String>,
    /// Cursor: return pipelines with an id greater than this (ids are time-ordered UUIDv7).
    pub after_id: Option<String>,
    pub limit: i64,
}

/// The job queue at a glance, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobQueueStats {
    /// Jobs waiting, due or scheduled for later.
    pub queued: i64,
    pub running: i64,
    /// When the longest-waiting due job became due.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    pub pipelines: i64,
    pub stages: i64,
    pub jobs: i64,
    pub events: i64,
    pub endpoints: i64,
}

pub fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

/// A model monitor of one stage on the local target.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MonitorRecord {
    pub id: String,
    pub pipeline_id: String,
    pub environment: String,
    /// The monitoring schedule's name (`<endpoint>-<type>-<hex>`).
    pub name: String,
    /// `data_quality`, `model_quality`, ...
    pub monitor_type: String,
    pub endpoint_name: String,
    pub schedule_expression: String,
    /// The stage's parameters and where its baseline files are.
    pub config: Json<Value>,
    /// `scheduled` or `stopped`.
    pub state: String,
    pub next_run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A monitor to record (or re-record, when its stage deploys again).
#[derive(Debug, Clone)]
pub struct NewMonitor {
    pub pipeline_id: String,
    pub environment: String,
    pub name: String,
    pub monitor_type: String,
    pub endpoint_name: String,
    pub schedule_expression: String,
    pub config: Value,
    pub next_run_at: DateTime<Utc>,
}

/// One run of a monitor over a window of captured traffic.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MonitorExecutionRecord {
    pub id: String,
    pub monitor_id: String,
    /// `schedule` or `manual` (run-now).
    pub origin: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// `pending`, `running`, `completed`, `completed_with_violations` or `failed`.
    pub state: String,
    pub result: Option<Json<Value>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An execution to record, with the job that runs it.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub monitor_id: String,
    pub origin: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub job: NewJob,
}

/// The event a finished monitor execution writes on its pipeline.
#[derive(Debug, Clone, Copy)]
pub struct MonitorEvent<'a> {
    pub kind: &'a str,
    pub message: &'a str,
    pub details: Option<&'a serde_json::Value>,
}
