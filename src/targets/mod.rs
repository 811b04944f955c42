//! Where pipelines run (DESIGN §5). A target deploys and tears down one stage at a time from the
//! stage's resolved `StageParams`; long waits are reported back so the job re-schedules itself
//! instead of holding a worker.

pub mod local;

use crate::domain::{PipelineSpec, StageParams};
use crate::store::StageKey;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

pub type DynTarget = Arc<dyn Target>;

/// One stage as a target sees it.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub key: StageKey,
    pub pipeline_name: String,
    pub environment: String,
    pub params: StageParams,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Finished; the outputs are recorded on the stage.
    Done(serde_json::Value),
    /// Not finished: ask again after this long (one describe call per attempt).
    InProgress(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Worth retrying with backoff (throttling, a blip in storage).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (a model file that cannot be loaded, a missing artifact).
    #[error("{0}")]
    Permanent(String),
}

#[async_trait]
pub trait Target: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Whether this target can run `spec`; the error says why not (HTTP 422, nothing stored).
    fn check_supported(&self, spec: &PipelineSpec) -> Result<(), String>;
    async fn deploy_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError>;
    async fn teardown_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError>;
}
