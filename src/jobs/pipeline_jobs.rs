//! What each pipeline job does: deploy one stage, pass a rejection on, or tear all stages down.
//! The state changes themselves are workflow facts the store applies; this module reports them
//! from what the target says.

use super::{JobHandler, JobOutcome, JobPayload};
use crate::config::JobSettings;
use crate::domain::state::StageState;
use crate::domain::workflow::{Fact, SYSTEM, event_kind};
use crate::domain::{PipelineType, StageParams};
use crate::store::{DynStore, JobPolicy, JobRecord, MonitorEvent, StageKey, StageRecord, StoreError};
use crate::targets::{Decision, DynTarget, ErrorKind, StageContext, StepOutcome, TargetError};
use async_trait::async_trait;

pub struct PipelineJobs {
    store: DynStore,
    target: DynTarget,
    settings: JobSettings,
}

/// How a job run ends on a target step that did not finish: a long wait re-schedules, a
/// transient error retries with backoff, any other fails the job (and with it the stage and the
/// pipeline, as the workflow decides).
fn unfinished(step: Result<StepOutcome, TargetError>) -> JobOutcome {
    match step {
        Ok(StepOutcome::Done(_)) => JobOutcome::Done,
        Ok(StepOutcome::InProgress(after)) => JobOutcome::PollAgain(after),
        // Retrying helps only what may pass by itself; a missing resource or a conflict stays.
        Err(e) if e.kind == ErrorKind::Transient => JobOutcome::Retry(e.to_string()),
        Err(e) => JobOutcome::Fail(e.to_string()),
    }
}

impl PipelineJobs {
    pub fn new(store: DynStore, target: DynTarget, settings: JobSettings) -> Self {
        Self { store, target, settings }
    }

    fn policy(&self) -> JobPolicy {
        JobPolicy { max_attempts: self.settings.max_attempts }
    }

    async fn deploy(&self, job: &JobRecord, key: StageKey, decision: Option<Decision>) -> Result<JobOutcome, String> {
        let fact = Fact::StageStarted { ordinal: key.ordinal, version: key.version };
        let applied = match self.store.apply(&key.pipeline_id, &fact, self.policy()).await {
            Ok(applied) => applied,
            // Retrying cannot make the state machine accept the transition.
            Err(e @ StoreError::Workflow(_)) => return Ok(JobOutcome::Fail(e.to_string())),
            Err(e) => return Err(e.to_string()),
        };
        let Some(stage) = applied.stage else {
            tracing::info!(
                job.id = %job.id,
                stage = key.ordinal,
                version = key.version,
                reason = applied.skipped.as_deref().unwrap_or("stage gone"),
                "nothing to deploy"
            );
            return Ok(JobOutcome::Done);
        };
        let context = self.context(&key, &stage, decision).await?;
        match self.target.deploy_stage(&context).await {
            Ok(StepOutcome::Done(outputs)) => {
                let fact = Fact::StageDeployed { ordinal: key.ordinal, version: key.version, outputs };
                self.store.apply(&key.pipeline_id, &fact, self.policy()).await.map_err(|e| e.to_string())?;
                Ok(JobOutcome::Done)
            }
            other => Ok(unfinished(other)),
        }
    }

    async fn reject(&self, key: StageKey, decision: Decision) -> Result<JobOutcome, String> {
        let stages = self.store.stages(&key.pipeline_id).await.map_err(|e| e.to_string())?;
        let Some(stage) = stages.iter().find(|s| s.ordinal == key.ordinal && s.version == key.version) else {
            return Ok(JobOutcome::Done); // re-provisioned since: nothing waits any more
        };
        let context = self.context(&key, stage, Some(decision)).await?;
        Ok(unfinished(self.target.reject_stage(&context).await))
    }

    async fn teardown(&self, job: &JobRecord, pipeline_id: &str) -> Result<JobOutcome, String> {
        // A deploy step already running could create what the teardown has just removed: let it
        // finish first (it stops early once it sees the pipeline being deleted).
        if self.store.running_jobs(pipeline_id, &job.id).await.map_err(|e| e.to_string())? > 0 {
            return Ok(JobOutcome::PollAgain(self.settings.poll_interval));
        }
        let stages = self.store.stages(pipeline_id).await.map_err(|e| e.to_string())?;
        for stage in stages.iter().rev() {
            let key = StageKey { pipeline_id: pipeline_id.to_string(), ordinal: stage.ordinal, version: stage.version };
            let context = self.context(&key, stage, None).await?;
            match self.target.teardown_stage(&context).await {
                Ok(StepOutcome::Done(_)) => {}
                other => return Ok(unfinished(other)),
            }
        }
        self.store.apply(pipeline_id, &Fact::TeardownFinished, self.policy()).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::Done)
    }

    /// Runs a deployed stage's post-deploy jobs again for a release someone else started. A
    /// stage re-provisioned or torn down since has nothing to run; a failure is the job's (an
    /// event on the pipeline), never the deployment's.
    async fn run_release(&self, key: StageKey, release: String) -> Result<JobOutcome, String> {
        let stages = self.store.stages(&key.pipeline_id).await.map_err(|e| e.to_string())?;
        let Some(stage) = stages
            .iter()
            .find(|s| s.ordinal == key.ordinal && s.version == key.version && s.state == StageState::Deployed)
        else {
            return Ok(JobOutcome::Done);
        };
        let mut context = self.context(&key, stage, None).await?;
        context.release = Some(release.clone());
        match self.target.after_release(&context).await {
            Ok(StepOutcome::Done(outputs)) => {
                let message = format!(
                    "post-deploy jobs of release {release} in {} finished: {}",
                    context.environment,
                    serde_json::to_string(&outputs).unwrap_or_default()
                );
                self.store
                    .stage_event(&key, event_kind::RELEASE_COMPLETED, SYSTEM, &message)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome::Done)
            }
            other => Ok(unfinished(other)),
        }
    }

    /// Runs one monitor execution. Its outcome is the execution's (and an event on the
    /// pipeline), never the pipeline's state: a failed run is recorded and the job is done.
    async fn run_monitor(&self, execution_id: &str) -> Result<JobOutcome, String> {
        let Some(execution) = self.store.execution(execution_id).await.map_err(|e| e.to_string())? else {
            return Ok(JobOutcome::Done); // the monitor was deleted with its executions
        };
        if !self.store.start_execution(execution_id).await.map_err(|e| e.to_string())? {
            return Ok(JobOutcome::Done); // finished already
        }
        let Some(monitor) = self.store.monitor(&execution.monitor_id).await.map_err(|e| e.to_string())? else {
            return Ok(JobOutcome::Done);
        };
        let window = format!("{} to {}", execution.window_start.to_rfc3339(), execution.window_end.to_rfc3339());
        let mut details = None;
        let (state, result, error, event) = match self.target.run_monitor(&monitor, &execution).await {
            Ok(result) => {
                let flagged: Vec<String> = result["violations"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|v| {
                                v["feature_name"]
                                    .as_str()
                                    .map(|f| format!("{f} ({})", v["constraint_check_type"].as_str().unwrap_or("")))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if flagged.is_empty() {
                    let message = format!("{}: no violations in {window}", monitor.name);
                    ("completed", Some(result), None, (crate::domain::workflow::event_kind::MONITOR_COMPLETED, message))
                } else {
                    let message =
                        format!("{}: {} violations in {window}: {}", monitor.name, flagged.len(), flagged.join(", "));
                    tracing::warn!(monitor = %monitor.name, execution = %execution.id, %message, "monitor violations");
                    let repeated = self.repeats_previous(&monitor.id, execution_id, &result["violations"]).await?;
                    details = Some(serde_json::json!({
                        "monitor": monitor.name,
                        "execution_id": execution.id,
                        "violations": result["violations"],
                        "repeated": repeated,
                    }));
                    (
                        "completed_with_violations",
                        Some(result),
                        None,
                        (crate::domain::workflow::event_kind::MONITOR_VIOLATIONS, message),
                    )
                }
            }
            Err(e) if e.kind == ErrorKind::Transient => return Ok(JobOutcome::Retry(e.to_string())),
            Err(e) => {
                let message = format!("{}: the run over {window} failed: {e}", monitor.name);
                ("failed", None, Some(e.to_string()), (crate::domain::workflow::event_kind::MONITOR_FAILED, message))
            }
        };
        let event = MonitorEvent { kind: event.0, message: &event.1, details: details.as_ref() };
        self.store
            .finish_execution(execution_id, state, result.as_ref(), error.as_deref(), &event)
            .await
            .map_err(|e| e.to_string())?;
        Ok(JobOutcome::Done)
    }

    /// Whether the monitor's previous finished execution found the same violations (then
    /// people were told already: a violation is notified once while it persists).
    async fn repeats_previous(
        &self,
        monitor_id: &str,
        execution_id: &str,
        violations: &serde_json::Value,
    ) -> Result<bool, String> {
        let recent = self.store.list_executions(monitor_id, 10).await.map_err(|e| e.to_string())?;
        let previous = recent.iter().find(|e| e.id != execution_id && e.finished_at.is_some() && e.state != "failed");
        Ok(previous
            .and_then(|p| p.result.as_ref())
            .is_some_and(|r| crate::domain::notifications::same_violations(&r.0["violations"], violations)))
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
        let promoted_from = if key.ordinal > 0 {
            let stages = self.store.stages(&key.pipeline_id).await.map_err(|e| e.to_string())?;
            stages
                .into_iter()
                .find(|s| s.ordinal == 0 && s.version == key.version)
                .and_then(|first| first.outputs.map(|o| o.0))
        } else {
            None
        };
        Ok(StageContext {
            key: key.clone(),
            pipeline_type,
            pipeline_name: pipeline.name,
            environment: stage.environment.clone(),
            params,
            started_at: stage.updated_at,
            decision,
            promoted_from,
            checkpoint: stage.checkpoint.as_ref().map(|c| c.0.clone()),
            release: None,
        })
    }

    /// Runs one job; `Err` is a store error on the way, which is transient.
    async fn dispatch(&self, job: &JobRecord) -> Result<JobOutcome, String> {
        let payload = match JobPayload::parse(&job.kind, &job.payload.0) {
            Ok(payload) => payload,
            Err(e) => return Ok(JobOutcome::Fail(e.to_string())),
        };
        let Some(pipeline_id) = job.pipeline_id.clone() else {
            return Ok(JobOutcome::Fail(format!("{} job without a pipeline", job.kind)));
        };
        let stage_key = |version| match job.stage_ordinal {
            Some(ordinal) => Ok(StageKey { pipeline_id: pipeline_id.clone(), ordinal, version }),
            None => Err(format!("{} job without a stage", job.kind)),
        };
        match payload {
            JobPayload::DeployStage { version, decision } => match stage_key(version) {
                Ok(key) => self.deploy(job, key, decision).await,
                Err(e) => Ok(JobOutcome::Fail(e)),
            },
            JobPayload::RejectStage { version, decision } => match stage_key(version) {
                Ok(key) => self.reject(key, decision).await,
                Err(e) => Ok(JobOutcome::Fail(e)),
            },
            JobPayload::TeardownPipeline { .. } => self.teardown(job, &pipeline_id).await,
            JobPayload::RunMonitor { execution_id, .. } => self.run_monitor(&execution_id).await,
            JobPayload::RunRelease { version, release } => match stage_key(version) {
                Ok(key) => self.run_release(key, release).await,
                Err(e) => Ok(JobOutcome::Fail(e)),
            },
            JobPayload::DeliverNotification { .. } | JobPayload::PollConfigSource { .. } => {
                Ok(JobOutcome::Fail("not a pipeline job".into()))
            }
        }
    }
}

#[async_trait]
impl JobHandler for PipelineJobs {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        // Store errors on the way are transient: the job runs again.
        let outcome = self.dispatch(job).await.unwrap_or_else(JobOutcome::Retry);
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
