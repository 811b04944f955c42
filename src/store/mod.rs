//! Persistent state (DESIGN §3): pipelines, stages, jobs, events and locally served endpoints.
//!
//! `Store` names what the rest of the system needs, not generic CRUD. Every state transition
//! writes its event in the same transaction, and every job enqueue happens in the transaction of
//! the state change that causes it. Two backends implement it from one body of SQL
//! (`sql_store.rs`); what differs between them (transaction start, job claim, wake-up) lives in
//! `postgres.rs` and `sqlite.rs`.

pub mod capture_figures;
pub mod config_revisions;
pub mod endpoint_logs;
pub mod model_cards;
pub mod model_registry;
pub mod notifications;
mod postgres;
mod records;
pub mod retention;
mod sql_store;
mod sqlite;

pub use capture_figures::{CaptureFigureStore, CaptureFigures};
pub use config_revisions::{
    Begun, ConfigRevisionFilter, ConfigRevisionRecord, ConfigRevisionStore, NewConfigRevision, revision_state,
};
pub use endpoint_logs::{EndpointLogRecord, EndpointLogStore};
pub use model_cards::{ModelCardExportRecord, ModelCardStore, ModelCardVersionRecord};
pub use model_registry::{
    ModelPackageDecisionRecord, ModelPackageGroupRecord, ModelPackageRecord, ModelRegistryStore, NewModelPackage,
};
pub use notifications::{
    DeliveryAttemptRecord, DeliveryRecord, NewAttempt, NewNotification, NotificationFilter, NotificationRecord,
    NotificationStore, PendingEvent,
};
pub use postgres::PostgresStore;
pub use records::*;
pub use retention::RetentionStore;
pub use sqlite::SqliteStore;

use crate::domain::workflow::{Fact, WorkflowError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub type DynStore = Arc<dyn Store>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("unsupported database url {0:?}: expected postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// The workflow refused the fact: it does not fit the pipeline's state.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// The planner refused the request while provisioning.
    #[error("{0}")]
    Plan(String),
}

/// Opens the database named by `url` (`postgres://…` or `sqlite://…`).
pub async fn connect(url: &str) -> Result<DynStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// Timestamps are kept to the microsecond so both backends return exactly what was written.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[async_trait]
pub trait Store:
    NotificationStore
    + ConfigRevisionStore
    + ModelRegistryStore
    + ModelCardStore
    + RetentionStore
    + CaptureFigureStore
    + EndpointLogStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// Woken whenever a job becomes runnable (in this process, or on Postgres in any replica).
    fn job_wakeup(&self) -> Arc<Notify>;
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn pending_migrations(&self) -> Result<usize, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);

    // Pipelines ----------------------------------------------------------------------------
    /// Creates the pipeline, or — when a live pipeline of the same type and name exists — makes a
    /// new version of it, as `domain::workflow::provision` decides. Under the pipeline's lock the
    /// version is fixed, `planner` plans the stages for it, and the plan is applied in one
    /// transaction. Endpoint names are reserved here so two pipelines cannot claim one endpoint.
    async fn provision(
        &self,
        new: NewPipeline,
        planner: &StagePlanner<'_>,
        jobs: JobPolicy,
    ) -> Result<Provisioned, StoreError>;
    async fn pipeline(&self, id: &str) -> Result<Option<PipelineRecord>, StoreError>;
    /// The pipeline a target knows by `external_id` (aws: a StackId).
    async fn pipeline_by_external_id(&self, external_id: &str) -> Result<Option<PipelineRecord>, StoreError>;
    /// Records the target's id for a pipeline; a pipeline keeps its first one (a different one
    /// later is a conflict: two stacks for one pipeline).
    async fn set_external_id(&self, pipeline_id: &str, external_id: &str) -> Result<(), StoreError>;
    async fn live_pipeline(&self, pipeline_type: &str, name: &str) -> Result<Option<PipelineRecord>, StoreError>;
    async fn list_pipelines(&self, filter: &PipelineFilter) -> Result<Vec<PipelineRecord>, StoreError>;
    async fn stages(&self, pipeline_id: &str) -> Result<Vec<StageRecord>, StoreError>;
    async fn events(
        &self,
        pipeline_id: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Applies `fact` to the pipeline: reads it under its row lock, asks
    /// `domain::workflow::decide` what follows, and applies that plan in the same transaction.
    /// A transition the state machines refuse is logged and returned as `Workflow`.
    async fn apply(&self, pipeline_id: &str, fact: &Fact, jobs: JobPolicy) -> Result<Applied, StoreError>;

    /// Records what a stage's running deploy step has finished, fenced on the stage's version
    /// (`false`: re-provisioned meanwhile, the step's work is moot).
    async fn save_checkpoint(&self, key: &StageKey, checkpoint: &serde_json::Value) -> Result<bool, StoreError>;
    /// Adds a progress event to a stage (no state change), e.g. a batch transform's figures.
    async fn stage_event(&self, key: &StageKey, kind: &str, actor: &str, message: &str) -> Result<(), StoreError>;

    // Endpoints ----------------------------------------------------------------------------
    async fn endpoint(&self, environment: &str, name: &str) -> Result<Option<EndpointRecord>, StoreError>;
    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError>;
    /// Puts the endpoint of a stage in service with its resolved config (revision + 1, so every
    /// replica reloads the model).
    async fn activate_endpoint(
        &self,
        key: &StageKey,
        environment: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<EndpointRecord, StoreError>;

    // Algorithms -----------------------------------------------------------------------------
    /// Registers (or rebuilds) the algorithm `name` for the pipeline; the pipeline's algorithms
    /// of other names go (an image builder re-provisioned with another repository). A name
    /// another pipeline owns is a conflict.
    async fn register_algorithm(
        &self,
        pipeline_id: &str,
        name: &str,
        sha256: &str,
        source: &str,
        details: &serde_json::Value,
    ) -> Result<AlgorithmRecord, StoreError>;
    async fn algorithm(&self, name: &str) -> Result<Option<AlgorithmRecord>, StoreError>;
    async fn list_algorithms(&self) -> Result<Vec<AlgorithmRecord>, StoreError>;
    async fn delete_algorithms(&self, pipeline_id: &str) -> Result<(), StoreError>;

    // Monitors -------------------------------------------------------------------------------
    /// Records the monitor of a stage (replacing the one an earlier deploy of the stage recorded,
    /// keeping its id and executions).
    async fn save_monitor(&self, monitor: &NewMonitor) -> Result<MonitorRecord, StoreError>;
    async fn delete_monitors(&self, pipeline_id: &str) -> Result<(), StoreError>;
    async fn monitor(&self, id: &str) -> Result<Option<MonitorRecord>, StoreError>;
    async fn list_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError>;
    /// Scheduled monitors whose next run is at or before `now`.
    async fn due_monitors(&self, now: DateTime<Utc>) -> Result<Vec<MonitorRecord>, StoreError>;
    /// Claims a scheduled window: moves the monitor's `next_run_at` from `expected` to `next`,
    /// records the execution and queues its job, in one transaction. `None` when another replica
    /// claimed it first (`next_run_at` moved, or the window is recorded already).
    async fn claim_scheduled_execution(
        &self,
        expected: DateTime<Utc>,
        next: DateTime<Utc>,
        execution: &NewExecution,
    ) -> Result<Option<MonitorExecutionRecord>, StoreError>;
    /// Records a run-now execution and queues its job.
    async fn create_execution(&self, execution: &NewExecution) -> Result<MonitorExecutionRecord, StoreError>;
    async fn execution(&self, id: &str) -> Result<Option<MonitorExecutionRecord>, StoreError>;
    /// A monitor's executions, newest first.
    async fn list_executions(&self, monitor_id: &str, limit: i64) -> Result<Vec<MonitorExecutionRecord>, StoreError>;
    /// `pending` → `running`; `false` when it was not pending (finished, or run elsewhere).
    async fn start_execution(&self, id: &str) -> Result<bool, StoreError>;
    /// Records how an execution ended and, in the same transaction, an event on the monitor's
    /// pipeline (`kind`, `message`).
    async fn finish_execution(
        &self,
        id: &str,
        state: &str,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
        event: &MonitorEvent<'_>,
    ) -> Result<(), StoreError>;

    // Jobs ---------------------------------------------------------------------------------
    async fn enqueue_job(&self, job: NewJob) -> Result<JobRecord, StoreError>;
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Leases up to `limit` due jobs to `worker` until now + `lease`.
    async fn claim_jobs(&self, worker: &str, limit: i64, lease: Duration) -> Result<Vec<JobRecord>, StoreError>;
    /// Extends a lease; `false` when the job is no longer ours (reaped, cancelled).
    async fn heartbeat_job(&self, job_id: &str, worker: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Fenced on `locked_by = worker`; `false` when the lease was lost. A permanent failure also
    /// fails the job's stage and pipeline in the same transaction.
    async fn finish_job(&self, job_id: &str, worker: &str, finish: JobFinish) -> Result<bool, StoreError>;
    /// Returns expired leases to the queue with attempts + 1, or fails them past `max_attempts`.
    /// Returns the jobs it failed.
    async fn reap_expired_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Jobs of a pipeline that some worker is running now, other than `except_job`.
    async fn running_jobs(&self, pipeline_id: &str, except_job: &str) -> Result<i64, StoreError>;

    /// How many jobs wait and run, and since when the oldest due one waits.
    async fn job_queue_stats(&self) -> Result<JobQueueStats, StoreError>;

    /// Row counts per table, for tests that prove a rejected request stored nothing.
    async fn row_counts(&self) -> Result<RowCounts, StoreError>;
}
