//! The workflow (DESIGN §2, docs/ARCHITECTURE.md §4): what happens to a pipeline when something
//! happens to it. Pure functions of the pipeline as read under its row lock and of the fact
//! that arrived; they return a [`Plan`] (state transitions, events, jobs, approvals, endpoint
//! releases) that the store applies in the same transaction. Every transition is checked against
//! the state machines in `state.rs`: one they refuse is a [`WorkflowError`], never a silent skip.
//! Work that no longer matters (an older version's job, a stage already done) is a plan with no
//! changes and the reason in [`Plan::skipped`].

use super::jobs::{Decision, JobPayload};
use super::state::{PipelineState, StageState};

/// Event kinds written to the audit log.
pub mod event_kind {
    pub const PIPELINE_CREATED: &str = "pipeline.created";
    pub const PIPELINE_UPDATED: &str = "pipeline.updated";
    pub const PIPELINE_STATE_CHANGED: &str = "pipeline.state_changed";
    pub const STAGE_STATE_CHANGED: &str = "stage.state_changed";
    pub const STAGE_APPROVED: &str = "stage.approved";
    pub const STAGE_REJECTED: &str = "stage.rejected";
    pub const ENDPOINT_IN_SERVICE: &str = "endpoint.in_service";
    /// A job failed for good without changing any state (e.g. passing a rejection on).
    pub const JOB_FAILED: &str = "job.failed";
    /// A monitor execution ended: without violations, with them (listing the features), or
    /// failed.
    pub const MONITOR_COMPLETED: &str = "monitor.completed";
    pub const MONITOR_VIOLATIONS: &str = "monitor.violations";
    pub const MONITOR_FAILED: &str = "monitor.failed";
    /// A deployment the orchestrator did not start (aws: CodePipeline's "Release change") was
    /// noticed and its stage's post-deploy jobs queued; then they finished.
    pub const RELEASE_NOTICED: &str = "release.noticed";
    pub const RELEASE_COMPLETED: &str = "release.completed";
}

/// The actor of changes the workers make.
pub const SYSTEM: &str = "system";

/// A pipeline as the workflow sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSnapshot {
    pub id: String,
    pub state: PipelineState,
    pub version: i64,
}

/// One stage row of the pipeline's current stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSnapshot {
    pub ordinal: i32,
    pub environment: String,
    pub state: StageState,
    pub requires_approval: bool,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub pipeline: PipelineSnapshot,
    pub stages: Vec<StageSnapshot>,
}

impl Snapshot {
    fn stage(&self, ordinal: i32, version: i64) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.ordinal == ordinal && s.version == version)
    }
}

/// What happened to a pipeline that exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// A deploy job begins a stage.
    StageStarted { ordinal: i32, version: i64 },
    /// The target reported the stage deployed, with these outputs.
    StageDeployed { ordinal: i32, version: i64, outputs: serde_json::Value },
    /// An approver approved or rejected a stage. `version`, when given, is the pipeline version
    /// the approver looked at: a decision on another version is refused.
    Decided { ordinal: i32, decision: Decision, version: Option<i64> },
    /// Someone asked for the pipeline to be deleted.
    DeleteRequested { actor: String },
    /// Every stage was torn down.
    TeardownFinished,
    /// A job of this pipeline failed for good.
    JobFailed(FailedJob),
}

impl Fact {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Fact::StageStarted { .. } => "stage_started",
            Fact::StageDeployed { .. } => "stage_deployed",
            Fact::Decided { .. } => "decided",
            Fact::DeleteRequested { .. } => "delete_requested",
            Fact::TeardownFinished => "teardown_finished",
            Fact::JobFailed(_) => "job_failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    pub id: String,
    pub kind: String,
    pub ordinal: Option<i32>,
    /// The version the job worked for; `None` for a payload that cannot be read.
    pub version: Option<i64>,
    pub error: String,
}

/// One change the store makes, in order, inside the transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Move the pipeline from `from` to `to` (the store fences on `from`) and write the event;
    /// `last_error` replaces the pipeline's (the reason of a failure, else none).
    Pipeline {
        from: PipelineState,
        to: PipelineState,
        actor: String,
        message: Option<String>,
        last_error: Option<String>,
    },
    /// Move a stage of `version` from `from` to `to` and write the event, as for the pipeline.
    Stage {
        ordinal: i32,
        version: i64,
        from: StageState,
        to: StageState,
        actor: String,
        message: Option<String>,
        last_error: Option<String>,
    },
    /// An event with no state change of its own (`to_state`: the state a new row starts in).
    Event {
        ordinal: Option<i32>,
        kind: &'static str,
        to_state: Option<&'static str>,
        actor: String,
        message: Option<String>,
    },
    /// Record the target's outputs on a stage.
    StageOutputs { ordinal: i32, version: i64, outputs: serde_json::Value },
    /// Record who approved a stage, and when (now).
    Approved { ordinal: i32, version: i64, actor: String },
    /// Cancel every queued job of the pipeline (running ones are fenced by version).
    CancelQueuedJobs,
    /// Enqueue a job for the pipeline (and stage).
    Enqueue { ordinal: Option<i32>, payload: JobPayload },
    /// Release every endpoint name the pipeline holds.
    ReleaseEndpoints,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Why nothing changes, when nothing does.
    pub skipped: Option<String>,
}

impl Plan {
    fn skip(reason: impl Into<String>) -> Self {
        Plan { changes: Vec::new(), skipped: Some(reason.into()) }
    }

    /// The jobs the plan enqueues.
    pub fn jobs(&self) -> impl Iterator<Item = &JobPayload> {
        self.changes.iter().filter_map(|c| match c {
            Change::Enqueue { payload, .. } => Some(payload),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("pipeline {pipeline} cannot go from {from} to {to}")]
    PipelineTransition { pipeline: String, from: PipelineState, to: PipelineState },
    #[error("stage {ordinal} of pipeline {pipeline} cannot go from {from} to {to}")]
    StageTransition { pipeline: String, ordinal: i32, from: StageState, to: StageState },
    /// The request does not fit the pipeline's state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// What the request names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
}

impl WorkflowError {
    /// A transition the state machines refuse: a bug in the workflow or a state nobody
    /// expected, as opposed to a request that does not fit.
    pub fn is_illegal_transition(&self) -> bool {
        matches!(self, Self::PipelineTransition { .. } | Self::StageTransition { .. })
    }
}

/// Builds a plan, tracking the states it moves to so every transition is checked from the state
/// the pipeline or stage will be in at that point.
struct Builder {
    pipeline_id: String,
    pipeline: PipelineState,
    stages: Vec<(i32, i64, StageState)>,
    changes: Vec<Change>,
}

impl Builder {
    fn new(snapshot: &Snapshot) -> Self {
        Self {
            pipeline_id: snapshot.pipeline.id.clone(),
            pipeline: snapshot.pipeline.state,
            stages: snapshot.stages.iter().map(|s| (s.ordinal, s.version, s.state)).collect(),
            changes: Vec::new(),
        }
    }

    /// Moves the pipeline to `to`; already there is no change.
    fn pipeline_to(&mut self, to: PipelineState, actor: &str, message: Option<&str>) -> Result<(), WorkflowError> {
        let from = self.pipeline;
        if from == to {
            return Ok(());
        }
        if !from.can_transition_to(to) {
            return Err(WorkflowError::PipelineTransition { pipeline: self.pipeline_id.clone(), from, to });
        }
        self.pipeline = to;
        let last_error = message.filter(|_| to == PipelineState::Failed).map(String::from);
        self.changes.push(Change::Pipeline {
            from,
            to,
            actor: actor.into(),
            message: message.map(String::from),
            last_error,
        });
        Ok(())
    }

    fn stage_to(
        &mut self,
        ordinal: i32,
        version: i64,
        to: StageState,
        actor: &str,
        message: Option<&str>,
    ) -> Result<(), WorkflowError> {
        let pipeline = self.pipeline_id.clone();
        let Some(entry) = self.stages.iter_mut().find(|(o, v, _)| *o == ordinal && *v == version) else {
            return Err(WorkflowError::NotFound(format!("stage {ordinal} of pipeline {pipeline} version {version}")));
        };
        let from = entry.2;
        if from == to {
            return Ok(());
        }
        if !from.can_transition_to(to) {
            return Err(WorkflowError::StageTransition { pipeline, ordinal, from, to });
        }
        entry.2 = to;
        self.changes.push(Change::Stage {
            ordinal,
            version,
            from,
            to,
            actor: actor.into(),
            message: message.map(String::from),
            last_error: message.filter(|_| to == StageState::Failed).map(String::from),
        });
        Ok(())
    }

    fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    fn build(self) -> Plan {
        Plan { changes: self.changes, skipped: None }
    }
}

/// Whether deploy work still matters: it stops once the pipeline is being torn down.
fn tearing_down(state: PipelineState) -> bool {
    matches!(state, PipelineState::Deleting | PipelineState::Deleted)
}

/// What a provision request does, given the live pipeline of the same type and name (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionPlan {
    /// The version the pipeline has once the plan is applied: stages and generated names are
    /// planned for it inside the same transaction.
    pub version: i64,
    /// A new pipeline row (else the existing one is updated and its stages replaced).
    pub created: bool,
    pub plan: Plan,
}

/// A request to provision: a new pipeline, or a new version of the live one of the same type and
/// name. Every state but `deleting` accepts a new version; its queued work is cancelled and the
/// first stage is deployed again (later stages need their approvals again). `origin`, when the
/// request came from a config source, says which revision (it is added to the event).
pub fn provision(
    existing: Option<&Snapshot>,
    actor: &str,
    origin: Option<&str>,
) -> Result<ProvisionPlan, WorkflowError> {
    let deploy_first =
        |version| Change::Enqueue { ordinal: Some(0), payload: JobPayload::DeployStage { version, decision: None } };
    let Some(existing) = existing else {
        let plan = Plan {
            changes: vec![
                Change::Event {
                    ordinal: None,
                    kind: event_kind::PIPELINE_CREATED,
                    to_state: Some(PipelineState::Pending.as_str()),
                    actor: actor.into(),
                    message: origin.map(String::from),
                },
                deploy_first(1),
            ],
            skipped: None,
        };
        return Ok(ProvisionPlan { version: 1, created: true, plan });
    };
    let current = &existing.pipeline;
    if !current.state.accepts_update() {
        return Err(WorkflowError::Conflict(format!(
            "pipeline {} is {}; wait until it is deleted, then provision again",
            current.id, current.state
        )));
    }
    let version = current.version + 1;
    let mut plan = Builder::new(existing);
    plan.push(Change::Event {
        ordinal: None,
        kind: event_kind::PIPELINE_UPDATED,
        to_state: None,
        actor: actor.into(),
        message: Some(match origin {
            Some(origin) => format!("re-provisioned as version {version} {origin}"),
            None => format!("re-provisioned as version {version}"),
        }),
    });
    plan.pipeline_to(PipelineState::Pending, actor, None)?;
    plan.push(Change::CancelQueuedJobs);
    plan.push(deploy_first(version));
    Ok(ProvisionPlan { version, created: false, plan: plan.build() })
}

/// What `fact` means for the pipeline in `snapshot`.
pub fn decide(snapshot: &Snapshot, fact: &Fact) -> Result<Plan, WorkflowError> {
    match fact {
        Fact::StageStarted { ordinal, version } => stage_started(snapshot, *ordinal, *version),
        Fact::StageDeployed { ordinal, version, outputs } => stage_deployed(snapshot, *ordinal, *version, outputs),
        Fact::Decided { ordinal, decision, version } => decided(snapshot, *ordinal, decision, *version),
        Fact::DeleteRequested { actor } => delete_requested(snapshot, actor),
        Fact::TeardownFinished => teardown_finished(snapshot),
        Fact::JobFailed(job) => job_failed(snapshot, job),
    }
}

fn stage_started(s: &Snapshot, ordinal: i32, version: i64) -> Result<Plan, WorkflowError> {
    if tearing_down(s.pipeline.state) {
        return Ok(Plan::skip(format!("pipeline is {}", s.pipeline.state)));
    }
    let Some(stage) = s.stage(ordinal, version) else {
        return Ok(Plan::skip(format!("stage {ordinal} of version {version} was superseded")));
    };
    let mut plan = Builder::new(s);
    match stage.state {
        StageState::Pending => plan.stage_to(ordinal, version, StageState::Deploying, SYSTEM, None)?,
        // Approved stages are already deploying; a retried job finds its own stage so.
        StageState::Deploying => {}
        other => return Ok(Plan::skip(format!("stage {ordinal} is {other}; nothing to deploy"))),
    }
    plan.pipeline_to(PipelineState::Provisioning, SYSTEM, None)?;
    Ok(plan.build())
}

fn stage_deployed(
    s: &Snapshot,
    ordinal: i32,
    version: i64,
    outputs: &serde_json::Value,
) -> Result<Plan, WorkflowError> {
    if tearing_down(s.pipeline.state) {
        return Ok(Plan::skip(format!("pipeline is {}", s.pipeline.state)));
    }
    match s.stage(ordinal, version) {
        Some(stage) if stage.state == StageState::Deploying => {}
        Some(stage) => return Ok(Plan::skip(format!("stage {ordinal} is {}, not deploying", stage.state))),
        None => return Ok(Plan::skip(format!("stage {ordinal} of version {version} was superseded"))),
    }
    let mut plan = Builder::new(s);
    plan.push(Change::StageOutputs { ordinal, version, outputs: outputs.clone() });
    plan.stage_to(ordinal, version, StageState::Deployed, SYSTEM, None)?;
    match s.stage(ordinal + 1, version) {
        Some(next) if next.requires_approval => {
            let message = format!("waiting for approval to deploy to {}", next.environment);
            plan.stage_to(next.ordinal, version, StageState::AwaitingApproval, SYSTEM, Some(&message))?;
            plan.pipeline_to(PipelineState::AwaitingApproval, SYSTEM, Some(&message))?;
        }
        Some(next) => plan.push(Change::Enqueue {
            ordinal: Some(next.ordinal),
            payload: JobPayload::DeployStage { version, decision: None },
        }),
        None => plan.pipeline_to(PipelineState::Active, SYSTEM, None)?,
    }
    Ok(plan.build())
}

fn decided(s: &Snapshot, ordinal: i32, decision: &Decision, expected: Option<i64>) -> Result<Plan, WorkflowError> {
    let pipeline = &s.pipeline;
    if tearing_down(pipeline.state) {
        return Err(WorkflowError::Conflict(format!("pipeline {} is {}", pipeline.id, pipeline.state)));
    }
    if let Some(expected) = expected
        && expected != pipeline.version
    {
        return Err(WorkflowError::Conflict(format!(
            "the decision is for version {expected} of pipeline {}, whose current version is {}",
            pipeline.id, pipeline.version
        )));
    }
    let version = pipeline.version;
    let stage = s
        .stage(ordinal, version)
        .ok_or_else(|| WorkflowError::NotFound(format!("stage {ordinal} of pipeline {}", pipeline.id)))?;
    if stage.state != StageState::AwaitingApproval {
        return Err(WorkflowError::Conflict(format!(
            "stage {} ({}) is {}, not awaiting approval",
            ordinal, stage.environment, stage.state
        )));
    }
    let actor = decision.actor.as_str();
    let comment = decision.comment.as_deref();
    let mut plan = Builder::new(s);
    let (kind, stage_to, pipeline_to, payload) = if decision.approve {
        let payload = JobPayload::DeployStage { version, decision: Some(decision.clone()) };
        (event_kind::STAGE_APPROVED, StageState::Deploying, PipelineState::Provisioning, payload)
    } else {
        let payload = JobPayload::RejectStage { version, decision: decision.clone() };
        (event_kind::STAGE_REJECTED, StageState::Rejected, PipelineState::Rejected, payload)
    };
    plan.push(Change::Event {
        ordinal: Some(ordinal),
        kind,
        to_state: None,
        actor: actor.into(),
        message: comment.map(String::from),
    });
    plan.stage_to(ordinal, version, stage_to, actor, comment)?;
    if decision.approve {
        plan.push(Change::Approved { ordinal, version, actor: actor.into() });
    }
    plan.push(Change::Enqueue { ordinal: Some(ordinal), payload });
    plan.pipeline_to(pipeline_to, actor, comment)?;
    Ok(plan.build())
}

fn delete_requested(s: &Snapshot, actor: &str) -> Result<Plan, WorkflowError> {
    match s.pipeline.state {
        PipelineState::Deleted => return Err(WorkflowError::NotFound(format!("pipeline {}", s.pipeline.id))),
        PipelineState::Deleting => return Ok(Plan::skip("already being deleted")),
        _ => {}
    }
    let mut plan = Builder::new(s);
    plan.pipeline_to(PipelineState::Deleting, actor, None)?;
    plan.push(Change::CancelQueuedJobs);
    plan.push(Change::Enqueue { ordinal: None, payload: JobPayload::TeardownPipeline { version: s.pipeline.version } });
    Ok(plan.build())
}

fn teardown_finished(s: &Snapshot) -> Result<Plan, WorkflowError> {
    if s.pipeline.state != PipelineState::Deleting {
        return Ok(Plan::skip(format!("pipeline is {}, not being deleted", s.pipeline.state)));
    }
    let mut plan = Builder::new(s);
    plan.push(Change::ReleaseEndpoints);
    plan.pipeline_to(PipelineState::Deleted, SYSTEM, None)?;
    Ok(plan.build())
}

/// A job failed for good. The stage it was deploying fails, and so does the pipeline while it is
/// on its way somewhere (pending, provisioning, or — for the teardown itself — deleting). A
/// pipeline at rest (rejected, active, waiting for an approval) or being deleted keeps its
/// state, and the failure is recorded as an event. An older version's job fails nothing.
fn job_failed(s: &Snapshot, job: &FailedJob) -> Result<Plan, WorkflowError> {
    let current = s.pipeline.version;
    if job.version.is_some_and(|v| v != current) {
        return Ok(Plan::skip(format!("job of version {} superseded by version {current}", job.version.unwrap_or(0))));
    }
    let message = format!("job {} ({}) failed: {}", job.id, job.kind, job.error);
    let mut plan = Builder::new(s);
    let is_teardown = job.kind == JobPayload::TEARDOWN_PIPELINE;
    // A monitor's run, or the jobs of a release someone else started, failing says nothing about
    // the pipeline's deployment: an event only.
    let is_monitor_run = job.kind == JobPayload::RUN_MONITOR || job.kind == JobPayload::RUN_RELEASE;
    let mut changed = false;
    if let Some(ordinal) = job.ordinal.filter(|_| !is_monitor_run)
        && let Some(stage) = s.stage(ordinal, current)
        && matches!(stage.state, StageState::Pending | StageState::Deploying)
    {
        plan.stage_to(ordinal, current, StageState::Failed, SYSTEM, Some(&message))?;
        changed = true;
    }
    let fails_pipeline = match s.pipeline.state {
        _ if is_monitor_run => false,
        PipelineState::Pending | PipelineState::Provisioning => true,
        PipelineState::Deleting => is_teardown,
        _ => false,
    };
    if fails_pipeline {
        plan.pipeline_to(PipelineState::Failed, SYSTEM, Some(&message))?;
        changed = true;
    }
    if !changed {
        plan.push(Change::Event {
            ordinal: job.ordinal,
            kind: event_kind::JOB_FAILED,
            to_state: None,
            actor: SYSTEM.into(),
            message: Some(message),
        });
    }
    Ok(plan.build())
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;
