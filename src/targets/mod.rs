//! Where pipelines run (DESIGN §5). A target deploys and tears down one stage at a time from the
//! stage's resolved `StageParams`; long waits are reported back so the job re-schedules itself
//! instead of holding a worker.

#[cfg(feature = "aws")]
pub mod aws;
pub mod codepipeline_state;
pub mod local;
pub mod model_cards;

use crate::domain::{PipelineSpec, PipelineType, StageParams};
use crate::store::{
    AlgorithmRecord, DynStore, EndpointRecord, MonitorExecutionRecord, MonitorRecord, NewMonitor, PipelineRecord,
    StageKey, StageRecord, StoreError,
};
use async_trait::async_trait;
use codepipeline_state::PipelineStateOut;
use std::sync::Arc;
use std::time::Duration;

pub type DynTarget = Arc<dyn Target>;

/// What a target may read and write in the database: a narrow port, not the whole store (state
/// transitions are the workflow's, applied by the jobs).
#[async_trait]
pub trait TargetStore: Send + Sync + 'static {
    /// The pipeline's stages (aws: to find the CodePipeline stage of an environment).
    async fn stages(&self, pipeline_id: &str) -> Result<Vec<StageRecord>, StoreError>;
    /// Records the target's own id of a pipeline (aws: the wrapper StackId).
    async fn set_external_id(&self, pipeline_id: &str, external_id: &str) -> Result<(), StoreError>;
    /// Puts a stage's endpoint in service (local: every replica then loads the new model).
    async fn activate_endpoint(
        &self,
        key: &StageKey,
        environment: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<EndpointRecord, StoreError>;
    /// Records how far a long deploy step got, for a restarted job to resume from (see
    /// [`StageContext::checkpoint`]); `false` when the stage was re-provisioned meanwhile.
    async fn save_checkpoint(&self, key: &StageKey, checkpoint: &serde_json::Value) -> Result<bool, StoreError>;
    /// A progress event on the stage, for the pipeline's event log.
    async fn progress(&self, key: &StageKey, kind: &str, message: &str) -> Result<(), StoreError>;
    /// Registers a custom algorithm the local image builder built (see `Store::register_algorithm`).
    async fn register_algorithm(
        &self,
        pipeline_id: &str,
        name: &str,
        sha256: &str,
        source: &str,
        details: &serde_json::Value,
    ) -> Result<AlgorithmRecord, StoreError>;
    async fn algorithm(&self, name: &str) -> Result<Option<AlgorithmRecord>, StoreError>;
    async fn delete_algorithms(&self, pipeline_id: &str) -> Result<(), StoreError>;
    /// Records a stage's monitor and its schedule (local target; see `Store::save_monitor`).
    async fn save_monitor(&self, monitor: &NewMonitor) -> Result<MonitorRecord, StoreError>;
    async fn delete_monitors(&self, pipeline_id: &str) -> Result<(), StoreError>;
    /// A version of the local model registry (what `model_package_name` names on the local target).
    async fn model_package(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Option<crate::store::ModelPackageRecord>, StoreError>;
    /// The live pipeline of a type and name (model cards: a model's records by its name).
    async fn live_pipeline(&self, pipeline_type: &str, name: &str) -> Result<Option<PipelineRecord>, StoreError>;
    /// The outputs of the deployed `model_training_builtin` / `model_tuner_builtin` stage whose
    /// training or tuning job is `job_name` or, for a tuning job, holds it (its training jobs are
    /// `<tuning job>-NNN-<hex>`): local model cards read training details from them.
    async fn training_outputs(&self, job_name: &str) -> Result<Option<serde_json::Value>, StoreError>;
}

pub type DynTargetStore = Arc<dyn TargetStore>;

/// The store seen through the targets' port.
pub struct StorePort(pub DynStore);

#[async_trait]
impl TargetStore for StorePort {
    async fn stages(&self, pipeline_id: &str) -> Result<Vec<StageRecord>, StoreError> {
        self.0.stages(pipeline_id).await
    }

    async fn set_external_id(&self, pipeline_id: &str, external_id: &str) -> Result<(), StoreError> {
        self.0.set_external_id(pipeline_id, external_id).await
    }

    async fn activate_endpoint(
        &self,
        key: &StageKey,
        environment: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<EndpointRecord, StoreError> {
        self.0.activate_endpoint(key, environment, name, config).await
    }

    async fn save_checkpoint(&self, key: &StageKey, checkpoint: &serde_json::Value) -> Result<bool, StoreError> {
        self.0.save_checkpoint(key, checkpoint).await
    }

    async fn progress(&self, key: &StageKey, kind: &str, message: &str) -> Result<(), StoreError> {
        self.0.stage_event(key, kind, "target", message).await
    }

    async fn register_algorithm(
        &self,
        pipeline_id: &str,
        name: &str,
        sha256: &str,
        source: &str,
        details: &serde_json::Value,
    ) -> Result<AlgorithmRecord, StoreError> {
        self.0.register_algorithm(pipeline_id, name, sha256, source, details).await
    }

    async fn algorithm(&self, name: &str) -> Result<Option<AlgorithmRecord>, StoreError> {
        self.0.algorithm(name).await
    }

    async fn delete_algorithms(&self, pipeline_id: &str) -> Result<(), StoreError> {
        self.0.delete_algorithms(pipeline_id).await
    }

    async fn save_monitor(&self, monitor: &NewMonitor) -> Result<MonitorRecord, StoreError> {
        self.0.save_monitor(monitor).await
    }

    async fn model_package(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Option<crate::store::ModelPackageRecord>, StoreError> {
        self.0.model_package(group, version).await
    }

    async fn delete_monitors(&self, pipeline_id: &str) -> Result<(), StoreError> {
        self.0.delete_monitors(pipeline_id).await
    }

    async fn live_pipeline(&self, pipeline_type: &str, name: &str) -> Result<Option<PipelineRecord>, StoreError> {
        self.0.live_pipeline(pipeline_type, name).await
    }

    async fn training_outputs(&self, job_name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        use crate::domain::PipelineType;
        for pipeline_type in [PipelineType::ModelTrainingBuiltin, PipelineType::ModelTunerBuiltin] {
            let mut after_id = None;
            loop {
                let filter = crate::store::PipelineFilter {
                    state: None,
                    pipeline_type: Some(pipeline_type.as_str().to_string()),
                    after_id: after_id.clone(),
                    limit: 200,
                };
                let page = self.0.list_pipelines(&filter).await?;
                let Some(last) = page.last() else { break };
                after_id = Some(last.id.clone());
                for pipeline in &page {
                    for stage in self.0.stages(&pipeline.id).await? {
                        let Some(outputs) = stage.outputs.filter(|_| stage.version == pipeline.version) else {
                            continue;
                        };
                        let outputs = outputs.0;
                        let named = |key: &str| outputs.get(key).and_then(|v| v.as_str());
                        let holds = named("training_job_name") == Some(job_name)
                            || named("tuning_job_name")
                                .is_some_and(|t| t == job_name || job_name.starts_with(&format!("{t}-")));
                        if holds {
                            return Ok(Some(outputs));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

impl StorePort {
    pub fn of(store: &DynStore) -> DynTargetStore {
        Arc::new(StorePort(store.clone()))
    }
}

/// One stage as a target sees it.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub key: StageKey,
    pub pipeline_type: PipelineType,
    /// The pipeline's identity (`model_name`, or `image_tag` for the image builder).
    pub pipeline_name: String,
    pub environment: String,
    pub params: StageParams,
    /// When this stage last changed state (for a deploy: when it started deploying).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// For a stage that waited for approval: who decided, and how.
    pub decision: Option<Decision>,
    /// For a later stage of a promotion: the outputs the first stage of this version recorded,
    /// so the stage deploys exactly what the first one did (local: the model's SHA-256).
    pub promoted_from: Option<serde_json::Value>,
    /// What an earlier run of this deploy step recorded with [`TargetStore::save_checkpoint`]
    /// before it was interrupted.
    pub checkpoint: Option<serde_json::Value>,
    /// Set when the stage's post-deploy jobs run again for a release someone else started (its
    /// id): the jobs take names of their own.
    pub release: Option<String>,
}

pub use crate::domain::jobs::Decision;

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Finished; the outputs are recorded on the stage.
    Done(serde_json::Value),
    /// Not finished: ask again after this long (one describe call per attempt).
    InProgress(Duration),
}

/// What kind of failure a target step met, which decides what the job does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying with backoff (throttling, a blip in storage or the network).
    Transient,
    /// Retrying cannot help (a model file that cannot be loaded, a template AWS refuses).
    Permanent,
    /// Something the step needs does not exist (an artifact, a stack, an endpoint).
    NotFound,
    /// The step collides with other work (re-provisioned meanwhile, a name taken).
    Conflict,
}

/// A failed target step: its kind, what to tell the user, and the error underneath.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TargetError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// A call to the target's own API failed while answering a request (aws: an AWS error, whose code
/// and operation the problem body keeps; its message goes to the log only).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct UpstreamError {
    /// HTTP status the upstream answered with (502 when there was no answer).
    pub status: u16,
    /// The call that failed, e.g. `GetPipelineState`.
    pub operation: String,
    pub code: String,
    pub message: String,
}

#[async_trait]
pub trait Target: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Whether this target can run `spec`; the error says why not (HTTP 422, nothing stored).
    fn check_supported(&self, spec: &PipelineSpec) -> Result<(), String>;
    async fn deploy_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError>;
    async fn teardown_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError>;
    /// Whether this process serves the pipelines' real-time endpoints (so provisioning reserves
    /// their names in the endpoints table). The aws target's endpoints live in SageMaker.
    fn hosts_endpoints(&self) -> bool {
        false
    }

    /// Whether the target gives pipelines an id of its own (aws: the wrapper StackId) that the
    /// compat API should answer with.
    fn has_external_ids(&self) -> bool {
        false
    }

    /// The pipeline's state as the target itself reports it (aws: CodePipeline's
    /// `GetPipelineState`); `None` when it has nothing to report (yet).
    async fn reported_state(&self, _pipeline: &PipelineRecord) -> Result<Option<PipelineStateOut>, UpstreamError> {
        Ok(None)
    }

    /// A stage waiting for approval was rejected (the store has already recorded it).
    async fn reject_stage(&self, _stage: &StageContext) -> Result<StepOutcome, TargetError> {
        Ok(StepOutcome::Done(serde_json::Value::Null))
    }

    /// Releases of an active pipeline that the orchestrator did not start and that finished
    /// after `since` (aws: succeeded CodePipeline executions started from the console's
    /// "Release change" or the API), oldest first, by id. The post-deploy jobs of each run once
    /// (`after_release`).
    async fn foreign_releases(
        &self,
        _pipeline: &PipelineRecord,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, TargetError> {
        Ok(Vec::new())
    }

    /// Runs a deployed stage's post-deploy jobs again for `stage.release`, under names of their
    /// own; called again while it answers `InProgress`.
    async fn after_release(&self, _stage: &StageContext) -> Result<StepOutcome, TargetError> {
        Ok(StepOutcome::Done(serde_json::Value::Null))
    }

    /// Runs one execution of a monitor the target scheduled (local: over the captured traffic
    /// in the object store). The result is what the executions API shows; its `violations`
    /// list decides the execution's state.
    async fn run_monitor(
        &self,
        _monitor: &MonitorRecord,
        _execution: &MonitorExecutionRecord,
    ) -> Result<serde_json::Value, TargetError> {
        Err(TargetError::permanent("this target's monitors run in its own service"))
    }
}
