//! Every row of the state tables in docs/ARCHITECTURE.md §4, without a database.

use super::*;
use PipelineState as P;
use StageState as S;

fn snapshot(pipeline: PipelineState, version: i64, stages: &[StageState]) -> Snapshot {
    Snapshot {
        pipeline: PipelineSnapshot { id: "p1".into(), state: pipeline, version },
        stages: stages
            .iter()
            .enumerate()
            .map(|(i, state)| StageSnapshot {
                ordinal: i as i32,
                environment: ["dev", "staging", "prod"][i].into(),
                state: *state,
                requires_approval: i > 0,
                version,
            })
            .collect(),
    }
}

fn pipeline_moves(plan: &Plan) -> Vec<(PipelineState, PipelineState)> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Pipeline { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

fn stage_moves(plan: &Plan) -> Vec<(i32, StageState, StageState)> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Stage { ordinal, from, to, .. } => Some((*ordinal, *from, *to)),
            _ => None,
        })
        .collect()
}

fn jobs(plan: &Plan) -> Vec<(Option<i32>, JobPayload)> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Enqueue { ordinal, payload } => Some((*ordinal, payload.clone())),
            _ => None,
        })
        .collect()
}

fn events(plan: &Plan) -> Vec<&'static str> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::Event { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

fn deploy(version: i64) -> JobPayload {
    JobPayload::DeployStage { version, decision: None }
}

fn approve(actor: &str) -> Decision {
    Decision { approve: true, actor: actor.into(), comment: Some("looks good".into()) }
}

fn reject(actor: &str) -> Decision {
    Decision { approve: false, actor: actor.into(), comment: None }
}

fn failed_job(kind: &str, ordinal: Option<i32>, version: i64) -> Fact {
    Fact::JobFailed(FailedJob {
        id: "j1".into(),
        kind: kind.into(),
        ordinal,
        version: Some(version),
        error: "boom".into(),
    })
}

// Pipeline: (new) → pending, by provision.
#[test]
fn provision_creates_version_one_pending_and_deploys_the_first_stage() {
    let plan = provision(None, "alice", None).unwrap();
    assert!(plan.created);
    assert_eq!(plan.version, 1);
    assert_eq!(events(&plan.plan), [event_kind::PIPELINE_CREATED]);
    assert_eq!(jobs(&plan.plan), [(Some(0), deploy(1))]);
    assert!(pipeline_moves(&plan.plan).is_empty(), "a new row starts pending");
}

// Pipeline: any except deleting, deleted → pending, by re-provision.
#[test]
fn reprovision_from_every_live_state_goes_back_to_pending_with_the_next_version() {
    for state in [P::Provisioning, P::AwaitingApproval, P::Active, P::Failed, P::Rejected] {
        let s = snapshot(state, 4, &[S::Deployed, S::AwaitingApproval]);
        let plan = provision(Some(&s), "bob", None).unwrap();
        assert!(!plan.created);
        assert_eq!(plan.version, 5, "{state}");
        assert_eq!(pipeline_moves(&plan.plan), [(state, P::Pending)], "{state}");
        assert!(plan.plan.changes.contains(&Change::CancelQueuedJobs), "{state}");
        assert_eq!(jobs(&plan.plan), [(Some(0), deploy(5))], "{state}");
        assert_eq!(events(&plan.plan), [event_kind::PIPELINE_UPDATED]);
    }
    // Already pending: a new version, no state change.
    let plan = provision(Some(&snapshot(P::Pending, 1, &[S::Pending])), "bob", None).unwrap();
    assert_eq!(plan.version, 2);
    assert!(pipeline_moves(&plan.plan).is_empty());
}

#[test]
fn reprovision_while_deleting_is_a_conflict() {
    let err = provision(Some(&snapshot(P::Deleting, 1, &[S::Deployed])), "bob", None).unwrap_err();
    assert!(matches!(err, WorkflowError::Conflict(_)), "{err:?}");
}

// Pipeline: pending → provisioning; stage: pending → deploying (a deploy job begins a stage).
#[test]
fn a_deploy_job_begins_its_stage() {
    let s = snapshot(P::Pending, 1, &[S::Pending, S::Pending]);
    let plan = decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap();
    assert_eq!(stage_moves(&plan), [(0, S::Pending, S::Deploying)]);
    assert_eq!(pipeline_moves(&plan), [(P::Pending, P::Provisioning)]);
    // A retried job finds its stage deploying already: nothing changes, it goes on.
    let s = snapshot(P::Provisioning, 1, &[S::Deploying]);
    let plan = decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap();
    assert!(plan.changes.is_empty() && plan.skipped.is_none());
}

#[test]
fn stale_or_finished_deploy_work_is_skipped_with_a_reason() {
    let s = snapshot(P::Pending, 2, &[S::Pending]);
    assert!(decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap().skipped.is_some(), "old version");
    let s = snapshot(P::Active, 1, &[S::Deployed]);
    assert!(decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap().skipped.is_some(), "done");
    for state in [P::Deleting, P::Deleted] {
        let s = snapshot(state, 1, &[S::Deploying]);
        assert!(decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap().skipped.is_some());
        let deployed = Fact::StageDeployed { ordinal: 0, version: 1, outputs: serde_json::json!({}) };
        assert!(decide(&s, &deployed).unwrap().skipped.is_some(), "{state}");
    }
    let s = snapshot(P::Provisioning, 2, &[S::Deploying]);
    let deployed = Fact::StageDeployed { ordinal: 0, version: 1, outputs: serde_json::json!({}) };
    assert!(decide(&s, &deployed).unwrap().skipped.is_some(), "an older version's result is dropped");
}

// Stage: deploying → deployed; pipeline: provisioning → awaiting_approval; stage: pending →
// awaiting_approval (the previous stage deployed and the next needs approval).
#[test]
fn a_deployed_stage_makes_the_next_one_wait_for_approval() {
    let s = snapshot(P::Provisioning, 1, &[S::Deploying, S::Pending, S::Pending]);
    let outputs = serde_json::json!({"endpoint": "e"});
    let plan = decide(&s, &Fact::StageDeployed { ordinal: 0, version: 1, outputs: outputs.clone() }).unwrap();
    assert_eq!(plan.changes[0], Change::StageOutputs { ordinal: 0, version: 1, outputs });
    assert_eq!(stage_moves(&plan), [(0, S::Deploying, S::Deployed), (1, S::Pending, S::AwaitingApproval)]);
    assert_eq!(pipeline_moves(&plan), [(P::Provisioning, P::AwaitingApproval)]);
    assert!(jobs(&plan).is_empty());
}

#[test]
fn a_deployed_stage_deploys_the_next_one_when_it_needs_no_approval() {
    let mut s = snapshot(P::Provisioning, 3, &[S::Deploying, S::Pending]);
    s.stages[1].requires_approval = false;
    let plan = decide(&s, &Fact::StageDeployed { ordinal: 0, version: 3, outputs: serde_json::json!({}) }).unwrap();
    assert_eq!(jobs(&plan), [(Some(1), deploy(3))]);
    assert!(pipeline_moves(&plan).is_empty());
}

// Pipeline: provisioning → active (the last stage deployed).
#[test]
fn the_last_stage_deployed_makes_the_pipeline_active() {
    let s = snapshot(P::Provisioning, 1, &[S::Deployed, S::Deployed, S::Deploying]);
    let plan = decide(&s, &Fact::StageDeployed { ordinal: 2, version: 1, outputs: serde_json::json!({}) }).unwrap();
    assert_eq!(stage_moves(&plan), [(2, S::Deploying, S::Deployed)]);
    assert_eq!(pipeline_moves(&plan), [(P::Provisioning, P::Active)]);
}

// Pipeline: awaiting_approval → provisioning; stage: awaiting_approval → deploying (approve).
#[test]
fn an_approval_deploys_the_stage_and_records_the_approver() {
    let s = snapshot(P::AwaitingApproval, 2, &[S::Deployed, S::AwaitingApproval]);
    let decision = approve("ann");
    let plan = decide(&s, &Fact::Decided { ordinal: 1, decision: decision.clone(), version: Some(2) }).unwrap();
    assert_eq!(events(&plan), [event_kind::STAGE_APPROVED]);
    assert_eq!(stage_moves(&plan), [(1, S::AwaitingApproval, S::Deploying)]);
    assert_eq!(pipeline_moves(&plan), [(P::AwaitingApproval, P::Provisioning)]);
    assert!(plan.changes.contains(&Change::Approved { ordinal: 1, version: 2, actor: "ann".into() }));
    assert_eq!(jobs(&plan), [(Some(1), JobPayload::DeployStage { version: 2, decision: Some(decision) })]);
}

// Pipeline: awaiting_approval → rejected; stage: awaiting_approval → rejected (reject).
#[test]
fn a_rejection_stops_the_pipeline_and_tells_the_target() {
    let s = snapshot(P::AwaitingApproval, 1, &[S::Deployed, S::AwaitingApproval]);
    let plan = decide(&s, &Fact::Decided { ordinal: 1, decision: reject("bob"), version: None }).unwrap();
    assert_eq!(events(&plan), [event_kind::STAGE_REJECTED]);
    assert_eq!(stage_moves(&plan), [(1, S::AwaitingApproval, S::Rejected)]);
    assert_eq!(pipeline_moves(&plan), [(P::AwaitingApproval, P::Rejected)]);
    assert_eq!(jobs(&plan), [(Some(1), JobPayload::RejectStage { version: 1, decision: reject("bob") })]);
    assert!(!plan.changes.iter().any(|c| matches!(c, Change::Approved { .. })));
}

#[test]
fn decisions_that_do_not_fit_are_refused() {
    let waiting = snapshot(P::AwaitingApproval, 3, &[S::Deployed, S::AwaitingApproval]);
    let on = |s: &Snapshot, ordinal, version| {
        decide(s, &Fact::Decided { ordinal, decision: approve("ann"), version }).unwrap_err()
    };
    assert!(matches!(on(&waiting, 1, Some(2)), WorkflowError::Conflict(m) if m.contains("version 2")));
    assert!(matches!(on(&waiting, 0, None), WorkflowError::Conflict(m) if m.contains("not awaiting approval")));
    assert!(matches!(on(&waiting, 5, None), WorkflowError::NotFound(_)));
    let deleting = snapshot(P::Deleting, 3, &[S::Deployed, S::AwaitingApproval]);
    assert!(matches!(on(&deleting, 1, None), WorkflowError::Conflict(_)));
}

// Pipeline: any except deleting, deleted → deleting (delete).
#[test]
fn delete_from_every_live_state_starts_a_teardown() {
    for state in [P::Pending, P::Provisioning, P::AwaitingApproval, P::Active, P::Failed, P::Rejected] {
        let s = snapshot(state, 2, &[S::Deployed]);
        let plan = decide(&s, &Fact::DeleteRequested { actor: "alice".into() }).unwrap();
        assert_eq!(pipeline_moves(&plan), [(state, P::Deleting)]);
        assert!(plan.changes.contains(&Change::CancelQueuedJobs));
        assert_eq!(jobs(&plan), [(None, JobPayload::TeardownPipeline { version: 2 })]);
    }
    let again = decide(&snapshot(P::Deleting, 1, &[]), &Fact::DeleteRequested { actor: "a".into() }).unwrap();
    assert!(again.changes.is_empty() && again.skipped.is_some(), "asking twice is harmless");
    let gone = decide(&snapshot(P::Deleted, 1, &[]), &Fact::DeleteRequested { actor: "a".into() });
    assert!(matches!(gone, Err(WorkflowError::NotFound(_))));
}

// Pipeline: deleting → deleted (teardown finished).
#[test]
fn a_finished_teardown_releases_endpoints_and_deletes() {
    let plan = decide(&snapshot(P::Deleting, 1, &[S::Deployed]), &Fact::TeardownFinished).unwrap();
    assert_eq!(plan.changes[0], Change::ReleaseEndpoints);
    assert_eq!(pipeline_moves(&plan), [(P::Deleting, P::Deleted)]);
    let plan = decide(&snapshot(P::Active, 1, &[S::Deployed]), &Fact::TeardownFinished).unwrap();
    assert!(plan.changes.is_empty() && plan.skipped.is_some(), "nothing released unless deleting");
}

// Pipeline: provisioning, pending, deleting → failed; stage: deploying, pending → failed.
#[test]
fn a_failed_job_fails_its_stage_and_pipeline() {
    let s = snapshot(P::Provisioning, 1, &[S::Deploying]);
    let plan = decide(&s, &failed_job("deploy_stage", Some(0), 1)).unwrap();
    assert_eq!(stage_moves(&plan), [(0, S::Deploying, S::Failed)]);
    assert_eq!(pipeline_moves(&plan), [(P::Provisioning, P::Failed)]);
    match &plan.changes[1] {
        Change::Pipeline { message: Some(m), .. } => assert_eq!(m, "job j1 (deploy_stage) failed: boom"),
        other => panic!("{other:?}"),
    }

    let s = snapshot(P::Pending, 1, &[S::Pending]);
    let plan = decide(&s, &failed_job("deploy_stage", Some(0), 1)).unwrap();
    assert_eq!(stage_moves(&plan), [(0, S::Pending, S::Failed)]);
    assert_eq!(pipeline_moves(&plan), [(P::Pending, P::Failed)]);

    let s = snapshot(P::Deleting, 1, &[S::Deployed]);
    let plan = decide(&s, &failed_job("teardown_pipeline", None, 1)).unwrap();
    assert_eq!(pipeline_moves(&plan), [(P::Deleting, P::Failed)]);
    assert!(stage_moves(&plan).is_empty());
}

#[test]
fn a_failed_job_of_an_older_version_fails_nothing() {
    let s = snapshot(P::Provisioning, 2, &[S::Deploying]);
    let plan = decide(&s, &failed_job("deploy_stage", Some(0), 1)).unwrap();
    assert!(plan.changes.is_empty() && plan.skipped.is_some());
}

#[test]
fn a_failed_job_of_a_pipeline_at_rest_is_recorded_without_a_state_change() {
    // Passing a rejection on failed: the pipeline stays rejected.
    let s = snapshot(P::Rejected, 1, &[S::Deployed, S::Rejected]);
    let plan = decide(&s, &failed_job("reject_stage", Some(1), 1)).unwrap();
    assert!(pipeline_moves(&plan).is_empty() && stage_moves(&plan).is_empty());
    assert_eq!(events(&plan), [event_kind::JOB_FAILED]);
    // A deploy step still running when the delete came fails: the teardown goes on.
    let s = snapshot(P::Deleting, 1, &[S::Deploying]);
    let plan = decide(&s, &failed_job("deploy_stage", Some(0), 1)).unwrap();
    assert_eq!(stage_moves(&plan), [(0, S::Deploying, S::Failed)]);
    assert!(pipeline_moves(&plan).is_empty(), "the pipeline stays deleting");
}

#[test]
fn a_failed_monitor_run_is_recorded_and_fails_nothing() {
    // The second stage deploys while the first one's monitor run fails for good.
    let s = snapshot(P::Provisioning, 1, &[S::Deployed, S::Deploying]);
    let plan = decide(&s, &failed_job("run_monitor", Some(0), 1)).unwrap();
    assert!(pipeline_moves(&plan).is_empty() && stage_moves(&plan).is_empty());
    assert_eq!(events(&plan), [event_kind::JOB_FAILED]);
    // So do the jobs of a release started outside the orchestrator, whichever stage they name.
    for ordinal in [0, 1] {
        let plan = decide(&s, &failed_job("run_release", Some(ordinal), 1)).unwrap();
        assert!(pipeline_moves(&plan).is_empty() && stage_moves(&plan).is_empty());
        assert_eq!(events(&plan), [event_kind::JOB_FAILED]);
    }
}

// Transitions the state machines refuse are errors, not silent skips.
#[test]
fn a_transition_the_state_machine_refuses_is_an_error() {
    // A stage pending while its pipeline is already active: starting it would move the
    // pipeline active → provisioning, which the machine does not allow.
    let s = snapshot(P::Active, 1, &[S::Pending]);
    let err = decide(&s, &Fact::StageStarted { ordinal: 0, version: 1 }).unwrap_err();
    assert_eq!(err, WorkflowError::PipelineTransition { pipeline: "p1".into(), from: P::Active, to: P::Provisioning });
    assert!(err.is_illegal_transition());
    // The next stage already deployed when the previous one finishes.
    let s = snapshot(P::Provisioning, 1, &[S::Deploying, S::Deployed]);
    let err = decide(&s, &Fact::StageDeployed { ordinal: 0, version: 1, outputs: serde_json::json!({}) }).unwrap_err();
    assert_eq!(
        err,
        WorkflowError::StageTransition {
            pipeline: "p1".into(),
            ordinal: 1,
            from: S::Deployed,
            to: S::AwaitingApproval
        }
    );
    // Approving a stage while the pipeline failed meanwhile.
    let s = snapshot(P::Failed, 1, &[S::Deployed, S::AwaitingApproval]);
    let err = decide(&s, &Fact::Decided { ordinal: 1, decision: approve("ann"), version: None }).unwrap_err();
    assert!(err.is_illegal_transition(), "{err:?}");
    assert!(!WorkflowError::Conflict("x".into()).is_illegal_transition());
}

/// Every (from, to) pair the plans produce is one the state machines allow.
#[test]
fn plans_only_contain_allowed_transitions() {
    let facts = |v| {
        vec![
            Fact::StageStarted { ordinal: 0, version: v },
            Fact::StageStarted { ordinal: 1, version: v },
            Fact::StageDeployed { ordinal: 0, version: v, outputs: serde_json::json!({}) },
            Fact::StageDeployed { ordinal: 1, version: v, outputs: serde_json::json!({}) },
            Fact::Decided { ordinal: 1, decision: approve("a"), version: None },
            Fact::Decided { ordinal: 1, decision: reject("a"), version: None },
            Fact::DeleteRequested { actor: "a".into() },
            Fact::TeardownFinished,
            failed_job("deploy_stage", Some(0), v),
            failed_job("teardown_pipeline", None, v),
        ]
    };
    let mut checked = 0;
    for &p in PipelineState::ALL {
        for &a in StageState::ALL {
            for &b in StageState::ALL {
                let s = snapshot(p, 1, &[a, b]);
                for fact in facts(1) {
                    if let Ok(plan) = decide(&s, &fact) {
                        for (from, to) in pipeline_moves(&plan) {
                            assert!(from.can_transition_to(to), "{fact:?} on {p}: {from} -> {to}");
                        }
                        for (_, from, to) in stage_moves(&plan) {
                            assert!(from.can_transition_to(to), "{fact:?}: {from} -> {to}");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} plans");
}
