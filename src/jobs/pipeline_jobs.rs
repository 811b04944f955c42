//! What each job kind does to a pipeline: deploy one stage, pass a rejection on, or tear all
//! stages down. The state changes themselves are store transitions; this module decides which to
//! make from what the target reports.

use super::{DEPLOY_STAGE, JobHandler, JobOutcome, REJECT_STAGE, TEARDOWN_PIPELINE};
use crate::config::JobSettings;
use crate::domain::{PipelineType, StageParams};
use crate::store::{DynStore, JobRecord, JobTemplate, StageKey, StageRecord};
use crate::targets::{Decision, DynTarget, StageContext, StepOutcome, TargetError};
use async_trait::async_trait;
use std::sync::Arc;

pub struct PipelineJobs {
    store: DynStore,
    target: DynTarget,
    settings: JobSettings,
}

pub fn handler(state: &crate::app::AppState) -> Arc<dyn JobHandler> {
    Arc::new(PipelineJobs::new(state.store.clone(), state.target.clone(), state.settings.jobs.clone()))
}

/// The job that deploys a stage; the store fills in pipeline, stage and version.
pub fn deploy_job(max_attempts: i32) -> JobTemplate {
    JobTemplate { kind: DEPLOY_STAGE.into(), max_attempts }
}

pub fn reject_job(max_attempts: i32) -> JobTemplate {
    JobTemplate { kind: REJECT_STAGE.into(), max_attempts }
}

pub fn teardown_job(max_attempts: i32) -> JobTemplate {
    JobTemplate { kind: TEARDOWN_PIPELINE.into(), max_attempts }
}

/// What a target step means for the job.
enum Next {
    /// The step finished with these outputs; the job goes on.
    Finished(serde_json::Value),
    /// The job run ends here: a long wait re-schedules, a transient error retries with backoff,
    /// a permanent one fails the job (and with it the stage and pipeline).
    Stop(JobOutcome),
}

fn next(step: Result<StepOutcome, TargetError>) -> Next {
    match step {
        Ok(StepOutcome::Done(outputs)) => Next::Finished(outputs),
        Ok(StepOutcome::InProgress(after)) => Next::Stop(JobOutcome::PollAgain(after)),
        Err(TargetError::Transient(e)) => Next::Stop(JobOutcome::Retry(e)),
        Err(TargetError::Permanent(e)) => Next::Stop(JobOutcome::Fail(e)),
    }
}

impl PipelineJobs {
    pub fn new(store: DynStore, target: DynTarget, settings: JobSettings) -> Self {
        Self { store, target, settings }
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
        let context = self.context(&key, &stage, decision(job)).await?;
        match next(self.target.deploy_stage(&context).await) {
            Next::Stop(outcome) => Ok(outcome),
            Next::Finished(outputs) => {
                self.store
                    .complete_stage(&key, outputs, deploy_job(self.settings.max_attempts))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome::Done)
            }
        }
    }

    async fn reject(&self, job: &JobRecord) -> Result<JobOutcome, String> {
        let key = stage_key(job)?;
        let stages = self.store.stages(&key.pipeline_id).await.map_err(|e| e.to_string())?;
        let Some(stage) = stages.iter().find(|s| s.ordinal == key.ordinal && s.version == key.version) else {
            return Ok(JobOutcome::Done); // re-provisioned since: nothing waits any more
        };
        let context = self.context(&key, stage, decision(job)).await?;
        match next(self.target.reject_stage(&context).await) {
            Next::Stop(outcome) => Ok(outcome),
            Next::Finished(_) => Ok(JobOutcome::Done),
        }
    }

    async fn teardown(&self, job: &JobRecord) -> Result<JobOutcome, String> {
        let pipeline_id = job.pipeline_id.as_deref().ok_or("teardown job without a pipeline")?;
        // A deploy step already running could create what the teardown has just removed: let it
        // finish first (it stops early once it sees the pipeline being deleted).
        if self.store.running_jobs(pipeline_id, &job.id).await.map_err(|e| e.to_string())? > 0 {
            return Ok(JobOutcome::PollAgain(self.settings.poll_interval));
        }
        let stages = self.store.stages(pipeline_id).await.map_err(|e| e.to_string())?;
        for stage in stages.iter().rev() {
            let key = StageKey { pipeline_id: pipeline_id.to_string(), ordinal: stage.ordinal, version: stage.version };
            let context = self.context(&key, stage, None).await?;
            if let Next::Stop(outcome) = next(self.target.teardown_stage(&context).await) {
                return Ok(outcome);
            }
        }
        self.store.complete_delete(pipeline_id).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::Done)
    }

    async fn context(
        &self,
        key: &StageKey,
        stage: &StageRecord,
        decision: Option<Decision>,
    ) -> Result<StageContext, String> {
        let params: StageParams = serde_json::from_value(stage.params.0.clone())
            .map_err(|e| format!("stage {} has unreadable parameters: {e}", stage.ordinal))?;
        let pipeline = self
            .store
            .pipeline(&key.pipeline_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("pipeline {} vanished", key.pipeline_id))?;
        let pipeline_type: PipelineType =
            pipeline.pipeline_type.parse().map_err(|_| format!("unknown pipeline type {}", pipeline.pipeline_type))?;
        Ok(StageContext {
            key: key.clone(),
            pipeline_type,
            pipeline_name: pipeline.name,
            environment: stage.environment.clone(),
            params,
            started_at: stage.updated_at,
            decision,
        })
    }
}

fn stage_key(job: &JobRecord) -> Result<StageKey, String> {
    let pipeline_id = job.pipeline_id.clone().ok_or("stage job without a pipeline")?;
    let ordinal = job.stage_ordinal.ok_or("stage job without a stage")?;
    let version = job.payload.0.get("version").and_then(|v| v.as_i64()).ok_or("stage job without a version")?;
    Ok(StageKey { pipeline_id, ordinal, version })
}

/// The approval decision an approval job carries, if any.
fn decision(job: &JobRecord) -> Option<Decision> {
    let payload = &job.payload.0;
    Some(Decision {
        approve: payload.get("approve")?.as_bool()?,
        actor: payload.get("actor")?.as_str()?.to_string(),
        comment: payload.get("comment").and_then(|c| c.as_str()).map(str::to_string),
    })
}

#[async_trait]
impl JobHandler for PipelineJobs {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        let result = match job.kind.as_str() {
            DEPLOY_STAGE => self.deploy(job).await,
            REJECT_STAGE => self.reject(job).await,
            TEARDOWN_PIPELINE => self.teardown(job).await,
            other => Ok(JobOutcome::Fail(format!("unknown job kind {other:?}"))),
        };
        // Store errors on the way are transient: the job runs again.
        let outcome = result.unwrap_or_else(JobOutcome::Retry);
        let waited = (crate::store::now() - job.created_at).to_std().unwrap_or_default();
        match outcome {
            JobOutcome::PollAgain(_) if waited > self.settings.max_wait => JobOutcome::Fail(format!(
                "gave up after waiting {} (jobs.max_wait) for the target to finish",
                humantime::format_duration(self.settings.max_wait)
            )),
            other => other,
        }
    }
}
