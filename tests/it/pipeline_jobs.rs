//! `PipelineJobs` against a scripted fake target, on SQLite: retries, polling again,
//! `jobs.max_wait`, teardown order and failure propagation, with no AWS emulator.

use crate::support::api::realtime_body;
use crate::support::{Db, TestDb};
use async_trait::async_trait;
use mlops::config::JobSettings;
use mlops::domain::state::{PipelineState, StageState};
use mlops::domain::workflow::Fact;
use mlops::domain::{PipelineSpec, RequestContext, parse_request, plan};
use mlops::jobs::Runner;
use mlops::jobs::pipeline_jobs::PipelineJobs;
use mlops::store::{DynStore, JobPolicy, NewPipeline, NewStage, PlannedStages, job_status};
use mlops::targets::{StageContext, StepOutcome, Target, TargetError};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Step = Result<StepOutcome, TargetError>;

/// Answers each call with the next scripted step (`Done` once the script runs out) and records
/// which call it was.
#[derive(Default)]
struct ScriptedTarget {
    deploys: Mutex<VecDeque<Step>>,
    teardowns: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<String>>,
}

impl ScriptedTarget {
    fn deploys(steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self { deploys: Mutex::new(steps.into()), ..Default::default() })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn next(&self, queue: &Mutex<VecDeque<Step>>, call: String) -> Step {
        self.calls.lock().unwrap().push(call);
        queue.lock().unwrap().pop_front().unwrap_or_else(|| Ok(StepOutcome::Done(json!({"fake": true}))))
    }
}

#[async_trait]
impl Target for ScriptedTarget {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn check_supported(&self, _spec: &PipelineSpec) -> Result<(), String> {
        Ok(())
    }

    async fn deploy_stage(&self, stage: &StageContext) -> Step {
        self.next(&self.deploys, format!("deploy {}", stage.environment))
    }

    async fn teardown_stage(&self, stage: &StageContext) -> Step {
        self.next(&self.teardowns, format!("teardown {}", stage.environment))
    }
}

fn settings() -> JobSettings {
    JobSettings {
        workers: 1,
        poll_interval: Duration::from_millis(20),
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        ..JobSettings::default()
    }
}

/// Provisions a real realtime pipeline (its stage parameters are what the jobs read) in
/// `environments`, every stage deploying without approval so one drain runs them all.
async fn provision(store: &DynStore, environments: &[&str]) -> String {
    let ctx =
        RequestContext { environments: environments.iter().map(|e| e.to_string()).collect(), ..Default::default() };
    let body = realtime_body("churn", "models/churn.json");
    let spec = parse_request(&body, &ctx).unwrap().spec;
    let new = NewPipeline {
        id: uuid::Uuid::now_v7().to_string(),
        name: spec.name.clone(),
        pipeline_type: spec.pipeline_type.as_str().into(),
        target: "scripted".into(),
        spec: json!({}),
        request: body,
        actor: "tester".into(),
        origin: None,
        origin_note: None,
    };
    let planner = |version: i64| {
        let stages = plan(&spec, &ctx, version as u64).map_err(|e| e.to_string())?.stages;
        Ok(PlannedStages {
            stages: stages
                .iter()
                .map(|s| NewStage {
                    environment: s.environment.clone(),
                    requires_approval: false,
                    params: serde_json::to_value(&s.params).unwrap(),
                })
                .collect(),
            endpoints: Vec::new(),
        })
    };
    store.provision(new, &planner, JobPolicy { max_attempts: 3 }).await.unwrap().record().id.clone()
}

/// Runs due jobs (re-scheduled ones included, as they come due) until the pipeline reaches
/// `state`.
async fn run_until(runner: &Runner, store: &DynStore, id: &str, state: PipelineState) -> mlops::store::PipelineRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        runner.run_until_empty().await.unwrap();
        let pipeline = store.pipeline(id).await.unwrap().unwrap();
        if pipeline.state == state {
            return pipeline;
        }
        assert!(tokio::time::Instant::now() < deadline, "pipeline stuck in {} (want {state})", pipeline.state);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn runner(db: &TestDb, target: Arc<ScriptedTarget>, settings: JobSettings) -> Runner {
    let handler = Arc::new(PipelineJobs::new(db.store.clone(), target, settings.clone()));
    Runner::new(db.store.clone(), handler, settings)
}

/// The job whose failure failed pipeline `id`, found by the id its failure event names
/// (`job <id> (<kind>) failed: …`).
async fn failed_job(db: &TestDb, id: &str) -> mlops::store::JobRecord {
    let events = db.store.events(id, None, 1000).await.unwrap();
    let message = events.iter().rev().find_map(|e| e.message.clone().filter(|m| m.starts_with("job "))).unwrap();
    let job_id = message.split_whitespace().nth(1).unwrap().to_string();
    db.store.job(&job_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn transient_failures_are_retried_then_the_stages_deploy_in_order() {
    let db = TestDb::new(Db::Sqlite).await;
    let target = ScriptedTarget::deploys(vec![
        Err(TargetError::transient("throttled")),
        Ok(StepOutcome::InProgress(Duration::from_millis(5))),
    ]);
    let id = provision(&db.store, &["dev", "prod"]).await;
    let runner = runner(&db, target.clone(), settings());
    let pipeline = run_until(&runner, &db.store, &id, PipelineState::Active).await;
    assert_eq!(pipeline.last_error, None);
    assert_eq!(target.calls(), ["deploy dev", "deploy dev", "deploy dev", "deploy prod"], "retry, poll again, done");
    let stages = db.store.stages(&id).await.unwrap();
    assert!(stages.iter().all(|s| s.state == StageState::Deployed));
    assert_eq!(stages[0].outputs.as_ref().unwrap().0, json!({"fake": true}));
}

#[tokio::test]
async fn a_permanent_failure_fails_the_stage_and_the_pipeline_at_once() {
    for error in
        [TargetError::permanent("the model cannot be loaded"), TargetError::conflict("re-provisioned meanwhile")]
    {
        let db = TestDb::new(Db::Sqlite).await;
        let message = error.message.clone();
        let target = ScriptedTarget::deploys(vec![Err(error)]);
        let id = provision(&db.store, &["dev", "prod"]).await;
        let pipeline = run_until(&runner(&db, target.clone(), settings()), &db.store, &id, PipelineState::Failed).await;
        assert!(pipeline.last_error.as_deref().unwrap().ends_with(&message), "{:?}", pipeline.last_error);
        assert_eq!(target.calls(), ["deploy dev"], "not retried");
        let stages = db.store.stages(&id).await.unwrap();
        assert_eq!((stages[0].state, stages[1].state), (StageState::Failed, StageState::Pending));
        assert_eq!(failed_job(&db, &id).await.status, job_status::FAILED);
    }
}

#[tokio::test]
async fn transient_failures_past_max_attempts_fail_the_pipeline() {
    let db = TestDb::new(Db::Sqlite).await;
    let target = ScriptedTarget::deploys((0..5).map(|i| Err(TargetError::transient(format!("blip {i}")))).collect());
    let id = provision(&db.store, &["dev"]).await;
    let pipeline = run_until(&runner(&db, target.clone(), settings()), &db.store, &id, PipelineState::Failed).await;
    assert_eq!(target.calls().len(), 3, "jobs.max_attempts");
    assert!(pipeline.last_error.unwrap().ends_with("blip 2"));
}

#[tokio::test]
async fn a_target_that_keeps_waiting_fails_after_max_wait() {
    let db = TestDb::new(Db::Sqlite).await;
    let waiting = (0..1000).map(|_| Ok(StepOutcome::InProgress(Duration::from_millis(5)))).collect();
    let target = ScriptedTarget::deploys(waiting);
    let id = provision(&db.store, &["dev"]).await;
    let settings = JobSettings { max_wait: Duration::from_millis(150), ..settings() };
    let pipeline = run_until(&runner(&db, target.clone(), settings), &db.store, &id, PipelineState::Failed).await;
    assert!(pipeline.last_error.unwrap().contains("jobs.max_wait"));
    assert!(target.calls().len() > 3, "it polled again several times first: {}", target.calls().len());
}

#[tokio::test]
async fn teardown_goes_last_stage_first_and_deletes() {
    let db = TestDb::new(Db::Sqlite).await;
    let target = Arc::new(ScriptedTarget::default());
    let id = provision(&db.store, &["dev", "staging", "prod"]).await;
    let runner = runner(&db, target.clone(), settings());
    run_until(&runner, &db.store, &id, PipelineState::Active).await;
    db.store
        .apply(&id, &Fact::DeleteRequested { actor: "tester".into() }, JobPolicy { max_attempts: 3 })
        .await
        .unwrap();
    run_until(&runner, &db.store, &id, PipelineState::Deleted).await;
    assert_eq!(target.calls()[3..], ["teardown prod", "teardown staging", "teardown dev"], "every stage, last first");
}

#[tokio::test]
async fn a_failed_teardown_fails_the_pipeline_and_a_waiting_one_polls_again() {
    let db = TestDb::new(Db::Sqlite).await;
    let target = Arc::new(ScriptedTarget {
        teardowns: Mutex::new(
            vec![Ok(StepOutcome::InProgress(Duration::from_millis(5))), Err(TargetError::permanent("stack stuck"))]
                .into(),
        ),
        ..Default::default()
    });
    let id = provision(&db.store, &["dev"]).await;
    let runner = runner(&db, target.clone(), settings());
    run_until(&runner, &db.store, &id, PipelineState::Active).await;
    db.store
        .apply(&id, &Fact::DeleteRequested { actor: "tester".into() }, JobPolicy { max_attempts: 3 })
        .await
        .unwrap();
    let pipeline = run_until(&runner, &db.store, &id, PipelineState::Failed).await;
    assert!(pipeline.last_error.unwrap().contains("stack stuck"));
    assert_eq!(target.calls(), ["deploy dev", "teardown dev", "teardown dev"]);
}
