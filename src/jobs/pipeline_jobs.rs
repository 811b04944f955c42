//! What each job kind does to a pipeline: deploy one stage, or tear all stages down. The state
//! changes themselves are store transitions; this module decides which to make from what the
//! target reports.

use super::{DEPLOY_STAGE, JobHandler, JobOutcome, TEARDOWN_PIPELINE};
use crate::domain::StageParams;
use crate::store::{DynStore, JobRecord, JobTemplate, StageKey, StageRecord};
use crate::targets::{DynTarget, StageContext, StepOutcome, TargetError};
use async_trait::async_trait;

pub struct PipelineJobs {
    store: DynStore,
    target: DynTarget,
    max_attempts: i32,
}

impl PipelineJobs {
    pub fn new(store: DynStore, target: DynTarget, max_attempts: i32) -> Self {
        Self { store, target, max_attempts }
    }

    async fn deploy(&self, job: &JobRecord) -> Result<JobOutcome, String> {
        let key = stage_key(job)?;
        let Some(stage) = self.store.begin_stage(&key).await.map_err(|e| e.to_string())? else {
            tracing::info!(
                stage = key.ordinal,
                version = key.version,
                "stage superseded or already done; nothing to deploy"
            );
            return Ok(JobOutcome::Done);
        };
        let context = self.context(&key, &stage).await?;
        match self.target.deploy_stage(&context).await {
            Ok(StepOutcome::Done(outputs)) => {
                self.store
                    .complete_stage(&key, outputs, deploy_job(self.max_attempts))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome::Done)
            }
            Ok(StepOutcome::InProgress(after)) => Ok(JobOutcome::PollAgain(after)),
            Err(TargetError::Transient(e)) => Ok(JobOutcome::Retry(e)),
            Err(TargetError::Permanent(e)) => Ok(JobOutcome::Fail(e)),
        }
    }

    async fn teardown(&self, job: &JobRecord) -> Result<JobOutcome, String> {
        let pipeline_id = job.pipeline_id.as_deref().ok_or("teardown job without a pipeline")?;
        let stages = self.store.stages(pipeline_id).await.map_err(|e| e.to_string())?;
        for stage in stages.iter().rev() {
            let key = StageKey { pipeline_id: pipeline_id.to_string(), ordinal: stage.ordinal, version: stage.version };
            let context = self.context(&key, stage).await?;
            match self.target.teardown_stage(&context).await {
                Ok(StepOutcome::Done(_)) => {}
                Ok(StepOutcome::InProgress(after)) => return Ok(JobOutcome::PollAgain(after)),
                Err(TargetError::Transient(e)) => return Ok(JobOutcome::Retry(e)),
                Err(TargetError::Permanent(e)) => return Ok(JobOutcome::Fail(e)),
            }
        }
        self.store.complete_delete(pipeline_id).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::Done)
    }

    async fn context(&self, key: &StageKey, stage: &StageRecord) -> Result<StageContext, String> {
        let params: StageParams = serde_json::from_value(stage.params.0.clone())
            .map_err(|e| format!("stage {} has unreadable parameters: {e}", stage.ordinal))?;
        let pipeline = self
            .store
            .pipeline(&key.pipeline_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("pipeline {} vanished", key.pipeline_id))?;
        Ok(StageContext {
            key: key.clone(),
            pipeline_name: pipeline.name,
            environment: stage.environment.clone(),
            params,
        })
    }
}

pub fn handler(state: &crate::app::AppState) -> std::sync::Arc<dyn JobHandler> {
    std::sync::Arc::new(PipelineJobs::new(state.store.clone(), state.target.clone(), state.settings.jobs.max_attempts))
}

/// The job that deploys a stage; the store fills in pipeline, stage and version.
pub fn deploy_job(max_attempts: i32) -> JobTemplate {
    JobTemplate { kind: DEPLOY_STAGE.into(), max_attempts }
}

pub fn teardown_job(max_attempts: i32) -> JobTemplate {
    JobTemplate { kind: TEARDOWN_PIPELINE.into(), max_attempts }
}

fn stage_key(job: &JobRecord) -> Result<StageKey, String> {
    let pipeline_id = job.pipeline_id.clone().ok_or("stage job without a pipeline")?;
    let ordinal = job.stage_ordinal.ok_or("stage job without a stage")?;
    let version = job.payload.0.get("version").and_then(|v| v.as_i64()).ok_or("stage job without a version")?;
    Ok(StageKey { pipeline_id, ordinal, version })
}

#[async_trait]
impl JobHandler for PipelineJobs {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        let result = match job.kind.as_str() {
            DEPLOY_STAGE => self.deploy(job).await,
            TEARDOWN_PIPELINE => self.teardown(job).await,
            other => Ok(JobOutcome::Fail(format!("unknown job kind {other:?}"))),
        };
        // Store errors on the way are transient: the job runs again.
        result.unwrap_or_else(JobOutcome::Retry)
    }
}
