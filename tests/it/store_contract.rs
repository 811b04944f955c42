//! The store contract: the same test bodies on SQLite and Postgres.

use crate::on_both_stores;
use crate::support::TestDb;
use mlops::domain::jobs::Decision;
use mlops::domain::state::{PipelineState, StageState};
use mlops::domain::workflow::Fact;
use mlops::store::*;
use serde_json::json;

/// A pipeline to provision, with the stages its planner returns for every version (each
/// stage's params name the version they were planned for).
pub struct TestPipeline {
    pub new: NewPipeline,
    pub planned: PlannedStages,
}

pub fn new_pipeline(name: &str, environments: &[&str]) -> TestPipeline {
    TestPipeline {
        new: NewPipeline {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.into(),
            pipeline_type: "byom_realtime_builtin".into(),
            target: "local".into(),
            spec: json!({"model_name": name}),
            request: json!({"pipeline_type": "byom_realtime_builtin", "model_name": name}),
            actor: "alice".into(),
            origin: None,
            origin_note: None,
        },
        planned: PlannedStages {
            stages: environments
                .iter()
                .enumerate()
                .map(|(i, env)| NewStage {
                    environment: env.to_string(),
                    requires_approval: i > 0,
                    params: json!({"env": env}),
                })
                .collect(),
            endpoints: environments
                .iter()
                .enumerate()
                .map(|(i, env)| NewEndpoint {
                    environment: env.to_string(),
                    name: format!("{name}-ep"),
                    stage_ordinal: i as i32,
                })
                .collect(),
        },
    }
}

pub const POLICY: JobPolicy = JobPolicy { max_attempts: 3 };

/// Provisions with a planner that records the version in each stage's params, as the real
/// planner's generated names do.
pub async fn provision(store: &DynStore, p: TestPipeline) -> Result<Provisioned, StoreError> {
    provision_with(store, p, POLICY).await
}

pub async fn provision_with(store: &DynStore, p: TestPipeline, policy: JobPolicy) -> Result<Provisioned, StoreError> {
    let planned = p.planned;
    let planner = move |version: i64| {
        let mut stages = planned.clone();
        for stage in &mut stages.stages {
            stage.params["planned_for"] = json!(version);
        }
        Ok(stages)
    };
    store.provision(p.new, &planner, policy).await
}

pub async fn begin_stage(store: &DynStore, key: &StageKey) -> Result<Option<StageRecord>, StoreError> {
    let fact = Fact::StageStarted { ordinal: key.ordinal, version: key.version };
    Ok(store.apply(&key.pipeline_id, &fact, POLICY).await?.stage)
}

/// The pipeline after the stage completed, `None` when the completion was superseded.
pub async fn complete_stage(
    store: &DynStore,
    key: &StageKey,
    outputs: serde_json::Value,
) -> Result<Option<PipelineRecord>, StoreError> {
    let fact = Fact::StageDeployed { ordinal: key.ordinal, version: key.version, outputs };
    let applied = store.apply(&key.pipeline_id, &fact, POLICY).await?;
    Ok(applied.skipped.is_none().then_some(applied.pipeline))
}

pub async fn decide(
    store: &DynStore,
    id: &str,
    ordinal: i32,
    decision: &Decision,
) -> Result<PipelineRecord, StoreError> {
    let fact = Fact::Decided { ordinal, decision: decision.clone(), version: None };
    Ok(store.apply(id, &fact, POLICY).await?.pipeline)
}

pub async fn request_delete(store: &DynStore, id: &str, actor: &str) -> Result<PipelineRecord, StoreError> {
    Ok(store.apply(id, &Fact::DeleteRequested { actor: actor.into() }, POLICY).await?.pipeline)
}

pub async fn complete_delete(store: &DynStore, id: &str) -> Result<(), StoreError> {
    store.apply(id, &Fact::TeardownFinished, POLICY).await.map(|_| ())
}

async fn event_kinds(db: &TestDb, id: &str) -> Vec<String> {
    db.store
        .events(id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match (e.from_state, e.to_state) {
            (Some(f), Some(t)) => {
                format!("{}:{}:{f}->{t}", e.kind, e.stage_ordinal.map(|o| o.to_string()).unwrap_or_default())
            }
            _ => e.kind,
        })
        .collect()
}

async fn provision_creates_everything_in_one_transaction(db: TestDb) {
    let before = db.store.row_counts().await.unwrap();
    assert_eq!(before, RowCounts::default());
    let p = provision(&db.store, new_pipeline("churn", &["dev", "staging"])).await.unwrap();
    let Provisioned::Created(p) = p else { panic!("expected a new pipeline") };
    assert_eq!(p.state, PipelineState::Pending);
    assert_eq!(p.version, 1);
    assert_eq!(p.created_by, "alice");
    let counts = db.store.row_counts().await.unwrap();
    assert_eq!((counts.pipelines, counts.stages, counts.jobs, counts.endpoints), (1, 2, 1, 2));
    let stages = db.store.stages(&p.id).await.unwrap();
    assert_eq!(
        stages.iter().map(|s| (s.environment.as_str(), s.requires_approval)).collect::<Vec<_>>(),
        [("dev", false), ("staging", true)]
    );
    assert!(stages.iter().all(|s| s.state == StageState::Pending && s.version == 1));
    assert_eq!(stages[1].params.0, json!({"env": "staging", "planned_for": 1}));
    assert_eq!(event_kinds(&db, &p.id).await, ["pipeline.created"]);
    let fetched = db.store.pipeline(&p.id).await.unwrap().unwrap();
    assert_eq!(fetched.spec.0, json!({"model_name": "churn"}));
    assert_eq!(fetched.created_at, p.created_at, "timestamps round-trip exactly");
    assert!(db.store.live_pipeline("byom_realtime_builtin", "churn").await.unwrap().is_some());
    assert!(db.store.live_pipeline("byom_batch_builtin", "churn").await.unwrap().is_none());
}

async fn reprovision_updates_and_supersedes_queued_work(db: TestDb) {
    let first = provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    let mut again = new_pipeline("churn", &["dev"]);
    again.new.spec = json!({"model_name": "churn", "v": 2});
    let second = provision(&db.store, again).await.unwrap();
    let Provisioned::Updated(p) = second else { panic!("expected an update") };
    assert_eq!(p.id, first.record().id);
    assert_eq!(p.version, 2);
    assert_eq!(p.spec.0["v"], 2);
    let counts = db.store.row_counts().await.unwrap();
    assert_eq!((counts.pipelines, counts.stages, counts.jobs), (1, 1, 2));
    let stages = db.store.stages(&p.id).await.unwrap();
    assert_eq!(stages[0].version, 2);
    // Only the new version's job is runnable; the first was cancelled.
    let claimed = db.store.claim_jobs("w1", 10, std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload.0, json!({"kind": "deploy_stage", "version": 2}));
    assert!(event_kinds(&db, &p.id).await.contains(&"pipeline.updated".to_string()));
}

async fn endpoint_owned_by_another_pipeline_is_a_conflict_and_stores_nothing(db: TestDb) {
    provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    let before = db.store.row_counts().await.unwrap();
    let mut other = new_pipeline("other", &["dev"]);
    other.planned.endpoints[0].name = "churn-ep".into();
    let err = provision(&db.store, other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("churn-ep")), "{err}");
    assert_eq!(db.store.row_counts().await.unwrap(), before, "the failed transaction left rows behind");
    // The same name in another environment is a different endpoint.
    let mut prod = new_pipeline("other", &["prod"]);
    prod.planned.endpoints[0].name = "churn-ep".into();
    provision(&db.store, prod).await.unwrap();
}

async fn promotion_with_approval_reaches_active(db: TestDb) {
    let p = provision(&db.store, new_pipeline("churn", &["dev", "staging", "prod"])).await.unwrap();
    let id = p.record().id.clone();
    let key = |ordinal| StageKey { pipeline_id: id.clone(), ordinal, version: 1 };

    let stage = begin_stage(&db.store, &key(0)).await.unwrap().expect("stage 0 deployable");
    assert_eq!(stage.state, StageState::Deploying);
    assert_eq!(db.store.pipeline(&id).await.unwrap().unwrap().state, PipelineState::Provisioning);
    // Approval is refused while the stage is not waiting for it.
    let approve = Decision { approve: true, actor: "boss".into(), comment: Some("ship it".into()) };
    assert!(matches!(decide(&db.store, &id, 1, &approve).await, Err(StoreError::Conflict(_))));
    let after = complete_stage(&db.store, &key(0), json!({"endpoint": "x"})).await.unwrap().unwrap();
    assert_eq!(after.state, PipelineState::AwaitingApproval);
    let stages = db.store.stages(&id).await.unwrap();
    assert_eq!(stages[0].state, StageState::Deployed);
    assert_eq!(stages[0].outputs.as_ref().unwrap().0, json!({"endpoint": "x"}));
    assert_eq!(stages[1].state, StageState::AwaitingApproval);

    let after = decide(&db.store, &id, 1, &approve).await.unwrap();
    assert_eq!(after.state, PipelineState::Provisioning);
    let stages = db.store.stages(&id).await.unwrap();
    assert_eq!(stages[1].state, StageState::Deploying);
    assert_eq!(stages[1].approved_by.as_deref(), Some("boss"));
    assert!(stages[1].approved_at.is_some());
    let jobs = db.store.claim_jobs("w", 10, std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.stage_ordinal == Some(1)).count(), 1, "approval enqueued the stage's job");

    assert!(begin_stage(&db.store, &key(1)).await.unwrap().is_some(), "an approved stage is deployable");
    complete_stage(&db.store, &key(1), json!({})).await.unwrap();
    decide(&db.store, &id, 2, &approve).await.unwrap();
    begin_stage(&db.store, &key(2)).await.unwrap().unwrap();
    let done = complete_stage(&db.store, &key(2), json!({})).await.unwrap().unwrap();
    assert_eq!(done.state, PipelineState::Active);

    let events = db.store.events(&id, None, 1000).await.unwrap();
    let approvals: Vec<_> = events.iter().filter(|e| e.kind == "stage.approved").collect();
    assert_eq!(approvals.len(), 2);
    assert!(approvals.iter().all(|e| e.actor == "boss" && e.message.as_deref() == Some("ship it")));
    let kinds = event_kinds(&db, &id).await;
    for expected in [
        "pipeline.state_changed::pending->provisioning",
        "stage.state_changed:0:pending->deploying",
        "stage.state_changed:0:deploying->deployed",
        "stage.state_changed:1:pending->awaiting_approval",
        "pipeline.state_changed::provisioning->awaiting_approval",
        "stage.state_changed:1:awaiting_approval->deploying",
        "pipeline.state_changed::awaiting_approval->provisioning",
        "pipeline.state_changed::provisioning->active",
    ] {
        assert!(kinds.contains(&expected.to_string()), "missing {expected} in {kinds:#?}");
    }
    // Events page by id.
    let first = db.store.events(&id, None, 3).await.unwrap();
    let rest = db.store.events(&id, Some(first[2].id), 1000).await.unwrap();
    assert_eq!(first.len() + rest.len(), events.len());
}

async fn rejection_stops_the_pipeline(db: TestDb) {
    let p = provision(&db.store, new_pipeline("churn", &["dev", "prod"])).await.unwrap();
    let id = p.record().id.clone();
    let key = StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 };
    begin_stage(&db.store, &key).await.unwrap();
    complete_stage(&db.store, &key, json!({})).await.unwrap();
    let reject = Decision { approve: false, actor: "boss".into(), comment: Some("not yet".into()) };
    let p = decide(&db.store, &id, 1, &reject).await.unwrap();
    assert_eq!(p.state, PipelineState::Rejected);
    assert_eq!(db.store.stages(&id).await.unwrap()[1].state, StageState::Rejected);
    let jobs = db.store.claim_jobs("w", 10, std::time::Duration::from_secs(30)).await.unwrap();
    let stage_jobs: Vec<_> = jobs.iter().filter(|j| j.stage_ordinal == Some(1)).collect();
    assert_eq!(stage_jobs.len(), 1);
    assert_eq!(stage_jobs[0].kind, "reject_stage", "a rejected stage must not deploy");
    assert_eq!(
        stage_jobs[0].payload.0,
        json!({"kind": "reject_stage", "version": 1, "approve": false, "actor": "boss", "comment": "not yet"})
    );
    assert!(event_kinds(&db, &id).await.contains(&"stage.rejected".to_string()));
}

async fn stale_versions_are_superseded(db: TestDb) {
    let p = provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    let id = p.record().id.clone();
    let v1 = StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 };
    begin_stage(&db.store, &v1).await.unwrap().unwrap();
    provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    // The v1 deploy finishing late changes nothing.
    assert!(complete_stage(&db.store, &v1, json!({})).await.unwrap().is_none());
    assert!(begin_stage(&db.store, &v1).await.unwrap().is_none());
    let err = db.store.activate_endpoint(&v1, "dev", "churn-ep", json!({})).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    let v2 = StageKey { version: 2, ..v1 };
    begin_stage(&db.store, &v2).await.unwrap().unwrap();
    let ep = db.store.activate_endpoint(&v2, "dev", "churn-ep", json!({"model": "m"})).await.unwrap();
    assert_eq!(ep.state, endpoint_state::IN_SERVICE);
    assert_eq!(ep.revision, 1);
    assert_eq!(complete_stage(&db.store, &v2, json!({})).await.unwrap().unwrap().state, PipelineState::Active);
}

async fn delete_releases_endpoints_and_frees_the_name(db: TestDb) {
    let p = provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    let id = p.record().id.clone();
    let key = StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 };
    begin_stage(&db.store, &key).await.unwrap().unwrap();
    let p = request_delete(&db.store, &id, "alice").await.unwrap();
    assert_eq!(p.state, PipelineState::Deleting);
    // A deploy that was already running finds nothing left to do.
    assert!(complete_stage(&db.store, &key, json!({})).await.unwrap().is_none());
    assert!(begin_stage(&db.store, &key).await.unwrap().is_none());
    assert_eq!(db.store.pipeline(&id).await.unwrap().unwrap().state, PipelineState::Deleting);
    // Asking twice is harmless; re-provisioning meanwhile is refused.
    request_delete(&db.store, &id, "alice").await.unwrap();
    assert!(matches!(provision(&db.store, new_pipeline("churn", &["dev"])).await, Err(StoreError::Conflict(_))));
    let jobs = db.store.claim_jobs("w", 10, std::time::Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(), ["teardown_pipeline"], "deploy job cancelled");
    complete_delete(&db.store, &id).await.unwrap();
    assert_eq!(db.store.pipeline(&id).await.unwrap().unwrap().state, PipelineState::Deleted);
    assert!(db.store.endpoint("dev", "churn-ep").await.unwrap().is_none());
    assert!(matches!(request_delete(&db.store, &id, "alice").await, Err(StoreError::NotFound(_))));
    let again = provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    assert!(matches!(again, Provisioned::Created(_)), "a deleted pipeline's name can be used again");
}

async fn list_filters_and_pages(db: TestDb) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut p = new_pipeline(&format!("m{i}"), &["dev"]);
        if i % 2 == 0 {
            p.new.pipeline_type = "byom_batch_builtin".into();
        }
        ids.push(provision(&db.store, p).await.unwrap().record().id.clone());
    }
    let page = |after: Option<String>, limit| PipelineFilter { after_id: after, limit, ..Default::default() };
    let first = db.store.list_pipelines(&page(None, 2)).await.unwrap();
    let second = db.store.list_pipelines(&page(Some(first[1].id.clone()), 2)).await.unwrap();
    let third = db.store.list_pipelines(&page(Some(second[1].id.clone()), 2)).await.unwrap();
    let all: Vec<_> = first.iter().chain(&second).chain(&third).map(|p| p.id.clone()).collect();
    assert_eq!(all, ids, "cursor pages cover every pipeline once, in creation order");
    let batch = db
        .store
        .list_pipelines(&PipelineFilter {
            pipeline_type: Some("byom_batch_builtin".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    let active = db
        .store
        .list_pipelines(&PipelineFilter { state: Some(PipelineState::Active), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert!(active.is_empty());
}

on_both_stores!(
    provision_creates_everything_in_one_transaction,
    reprovision_updates_and_supersedes_queued_work,
    endpoint_owned_by_another_pipeline_is_a_conflict_and_stores_nothing,
    promotion_with_approval_reaches_active,
    rejection_stops_the_pipeline,
    stale_versions_are_superseded,
    delete_releases_endpoints_and_frees_the_name,
    list_filters_and_pages,
);

/// Runs `a` and `b` at the same moment, `rounds` times over, and `check`s their results.
async fn races<A, B, FA, FB>(rounds: usize, mut setup: impl AsyncFnMut() -> (A, B), check: impl Fn(bool, bool))
where
    A: FnOnce() -> FA,
    B: FnOnce() -> FB,
    FA: std::future::Future<Output = bool> + Send + 'static,
    FB: std::future::Future<Output = bool> + Send + 'static,
{
    for _ in 0..rounds {
        let (a, b) = setup().await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (ba, bb) = (barrier.clone(), barrier);
        let fa = a();
        let fb = b();
        let ta = tokio::spawn(async move {
            ba.wait().await;
            fa.await
        });
        let tb = tokio::spawn(async move {
            bb.wait().await;
            fb.await
        });
        check(ta.await.unwrap(), tb.await.unwrap());
    }
}

/// Provisions `name` again (single environment), telling whether the store accepted it.
fn reprovision(
    store: &mlops::store::DynStore,
    name: &str,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + use<> {
    let (store, name) = (store.clone(), name.to_string());
    move || Box::pin(async move { provision(&store, new_pipeline(&name, &["dev"])).await.is_ok() })
}

async fn awaiting_staging(db: &TestDb, name: &str) -> String {
    let p = provision(&db.store, new_pipeline(name, &["dev", "staging"])).await.unwrap();
    let id = p.record().id.clone();
    let key = StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 };
    begin_stage(&db.store, &key).await.unwrap();
    complete_stage(&db.store, &key, json!({})).await.unwrap();
    id
}

async fn concurrent_decisions_on_one_stage_admit_exactly_one(db: TestDb) {
    let store = db.store.clone();
    let mut round = 0;
    races(
        12,
        async || {
            round += 1;
            let id = awaiting_staging(&db, &format!("race{round}")).await;
            let decision_by = |approve: bool, actor: &'static str| {
                let (store, id) = (store.clone(), id.clone());
                move || async move {
                    let decision = Decision { approve, actor: actor.into(), comment: None };
                    decide(&store, &id, 1, &decision).await.is_ok()
                }
            };
            // Alternate approve+approve and approve+reject rounds.
            (decision_by(true, "ann"), decision_by(round % 2 == 0, "bob"))
        },
        |a, b| assert!(a ^ b, "exactly one decision is accepted (got {a}, {b})"),
    )
    .await;
    // Every pipeline has exactly one decision event and one job for stage 1.
    let jobs = db.store.claim_jobs("w", 1000, std::time::Duration::from_secs(60)).await.unwrap();
    let per_pipeline = jobs.iter().filter(|j| j.stage_ordinal == Some(1)).count();
    assert_eq!(per_pipeline, 12);
}

async fn reprovision_racing_a_delete_never_strands_the_pipeline(db: TestDb) {
    let store = db.store.clone();
    let mut round = 0;
    races(
        12,
        async || {
            round += 1;
            let name = format!("race{round}");
            let p = provision(&db.store, new_pipeline(&name, &["dev"])).await.unwrap();
            let id = p.record().id.clone();
            let provision = reprovision(&store, &name);
            let delete = {
                let (store, id) = (store.clone(), id.clone());
                move || async move { request_delete(&store, &id, "alice").await.is_ok() }
            };
            (provision, delete)
        },
        |_, deleted| assert!(deleted, "a delete of a live pipeline is always accepted"),
    )
    .await;
    // Every pipeline is deleting with its teardown job runnable: none is stranded.
    let jobs = db.store.claim_jobs("w", 1000, std::time::Duration::from_secs(60)).await.unwrap();
    let pipelines = db.store.list_pipelines(&PipelineFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(pipelines.len(), 12);
    for p in pipelines {
        assert_eq!(p.state, PipelineState::Deleting, "{}", p.name);
        assert!(
            jobs.iter().any(|j| j.pipeline_id.as_deref() == Some(&p.id) && j.kind == "teardown_pipeline"),
            "{} has no runnable teardown job",
            p.name
        );
    }
}

async fn reprovision_racing_a_stage_completion_neither_deadlocks_nor_errs(db: TestDb) {
    let store = db.store.clone();
    let mut round = 0;
    races(
        12,
        async || {
            round += 1;
            let name = format!("race{round}");
            let p = provision(&db.store, new_pipeline(&name, &["dev"])).await.unwrap();
            let key = StageKey { pipeline_id: p.record().id.clone(), ordinal: 0, version: 1 };
            begin_stage(&db.store, &key).await.unwrap();
            let provision = reprovision(&store, &name);
            let complete = {
                let store = store.clone();
                move || async move { complete_stage(&store, &key, json!({})).await.is_ok() }
            };
            (provision, complete)
        },
        |provisioned, completed| assert!(provisioned && completed, "no error ({provisioned}, {completed})"),
    )
    .await;
}

/// Two re-provisions of one pipeline at once: each plans its stages (and so its generated job
/// names) for the version it is stored as, never both for the same one.
async fn concurrent_reprovisions_plan_for_distinct_versions(db: TestDb) {
    let store = db.store.clone();
    let mut round = 0;
    races(
        12,
        async || {
            round += 1;
            let name = format!("race{round}");
            provision(&db.store, new_pipeline(&name, &["dev"])).await.unwrap();
            (reprovision(&store, &name), reprovision(&store, &name))
        },
        |a, b| assert!(a && b, "both re-provisions are accepted ({a}, {b})"),
    )
    .await;
    let jobs = db.store.claim_jobs("w", 1000, std::time::Duration::from_secs(60)).await.unwrap();
    let pipelines = db.store.list_pipelines(&PipelineFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(pipelines.len(), 12);
    for p in pipelines {
        assert_eq!(p.version, 3, "{}", p.name);
        let stages = db.store.stages(&p.id).await.unwrap();
        assert_eq!(stages[0].version, 3);
        assert_eq!(stages[0].params.0["planned_for"], 3, "{}: stages planned for another version", p.name);
        let runnable: Vec<_> = jobs.iter().filter(|j| j.pipeline_id.as_deref() == Some(&p.id)).collect();
        assert_eq!(runnable.len(), 1, "{}: only the last version's deploy is runnable", p.name);
        assert_eq!(runnable[0].payload.0["version"], 3);
    }
}

on_both_stores!(
    concurrent_reprovisions_plan_for_distinct_versions,
    concurrent_decisions_on_one_stage_admit_exactly_one,
    reprovision_racing_a_delete_never_strands_the_pipeline,
    reprovision_racing_a_stage_completion_neither_deadlocks_nor_errs,
);

/// The retention sweep deletes what has outlived its retention and keeps what is still read:
/// unfinished executions and each monitor's ten newest, notifications with a delivery not yet
/// ended, a config source's newest revision and the one in force.
async fn retention_keeps_what_is_still_read(db: TestDb) {
    use chrono::Utc;
    let store = &db.store;
    let later = Utc::now() + chrono::Duration::minutes(1);
    let p = provision(store, new_pipeline("retained", &["dev"])).await.unwrap().record().clone();
    let monitor = store
        .save_monitor(&NewMonitor {
            pipeline_id: p.id.clone(),
            environment: "dev".into(),
            name: "retained-dq".into(),
            monitor_type: "DataQuality".into(),
            endpoint_name: "retained-ep".into(),
            schedule_expression: "cron(0 * ? * * *)".into(),
            config: json!({}),
            next_run_at: Utc::now(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..13 {
        let id = uuid::Uuid::now_v7().to_string();
        let job = NewJob {
            kind: "run_monitor".into(),
            payload: json!({"version": 1, "execution_id": id}),
            max_attempts: 3,
            run_at: Utc::now(),
            idempotency_key: None,
            pipeline_id: Some(p.id.clone()),
            stage_ordinal: None,
        };
        let window = Utc::now() - chrono::Duration::hours(13 - i);
        let execution = NewExecution {
            id: id.clone(),
            monitor_id: monitor.id.clone(),
            origin: "manual".into(),
            window_start: window,
            window_end: window + chrono::Duration::hours(1),
            job,
        };
        store.create_execution(&execution).await.unwrap();
        // The oldest is still pending; the twelve after it finish.
        if i > 0 {
            assert!(store.start_execution(&id).await.unwrap());
            let event = MonitorEvent { kind: "monitor.completed", message: "ok", details: None };
            store.finish_execution(&id, "completed", Some(&json!({})), None, &event).await.unwrap();
        }
        ids.push(id);
    }
    assert_eq!(store.sweep_monitor_executions(Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(store.sweep_monitor_executions(later).await.unwrap(), 2, "the two oldest finished ones");
    assert!(store.execution(&ids[0]).await.unwrap().is_some(), "pending: kept");
    assert!(store.execution(&ids[1]).await.unwrap().is_none() && store.execution(&ids[2]).await.unwrap().is_none());
    assert_eq!(store.list_executions(&monitor.id, 100).await.unwrap().len(), 11);
    assert_eq!(store.sweep_monitor_executions(later).await.unwrap(), 0, "the ten newest stay");

    let notification = |subject: &str| NewNotification {
        kind: "config.rejected".into(),
        pipeline_id: None,
        event_id: None,
        subject: subject.into(),
        body: json!({}),
        channels: vec![("hook".into(), "webhook".into())],
        max_attempts: 3,
    };
    let delivered = store.record_notification(&notification("delivered")).await.unwrap();
    let pending = store.record_notification(&notification("pending")).await.unwrap();
    let delivery = store.deliveries(&delivered.id).await.unwrap().remove(0);
    let attempt =
        NewAttempt { succeeded: true, response: Some("204".into()), error: None, duration_ms: 3, last: false };
    assert!(store.record_attempt(&delivery.id, &attempt).await.unwrap());
    assert_eq!(store.sweep_notifications(later).await.unwrap(), 1);
    assert!(store.notification(&delivered.id).await.unwrap().is_none());
    assert!(store.delivery(&delivery.id).await.unwrap().is_none(), "its deliveries went with it");
    assert!(store.delivery_attempts(&delivery.id).await.unwrap().is_empty());
    assert!(store.notification(&pending.id).await.unwrap().is_some(), "a delivery not ended: kept");

    let begin = |source: &str, revision: &str| NewConfigRevision {
        source: source.into(),
        source_kind: "git".into(),
        revision: revision.into(),
        content_sha256: None,
        author: None,
        message: None,
    };
    let mut revisions = Vec::new();
    for (revision, state) in [("r1", "accepted"), ("r2", "rejected"), ("r3", "rejected")] {
        let Begun::Started(r) = store.begin_config_revision(&begin("repo", revision)).await.unwrap() else {
            panic!("{revision} seen before")
        };
        store.finish_config_revision(&r.id, state, None, None, None).await.unwrap();
        revisions.push(r.id);
    }
    let Begun::Started(processing) = store.begin_config_revision(&begin("bucket", "v1")).await.unwrap() else {
        panic!()
    };
    assert_eq!(store.sweep_config_revisions(later).await.unwrap(), 1);
    assert!(store.config_revision(&revisions[1]).await.unwrap().is_none(), "an old refused revision");
    assert!(store.config_revision(&revisions[0]).await.unwrap().is_some(), "the one in force");
    assert!(store.config_revision(&revisions[2]).await.unwrap().is_some(), "the source's newest");
    assert!(store.config_revision(&processing.id).await.unwrap().is_some(), "being processed");
}

on_both_stores!(retention_keeps_what_is_still_read);

/// Capture figures: each report adds to its destination's sums once, all rows or none; the
/// latest flush is kept whatever order reports come in.
async fn capture_figures_add_up_per_destination(db: TestDb) {
    let store = db.store.clone();
    let at = |s: i64| Some(chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap());
    let figures = |destination: &str, captured, written, dropped, sampled_out, last_flush| CaptureFigures {
        destination: destination.into(),
        captured,
        written,
        dropped,
        sampled_out,
        last_flush,
    };
    assert!(store.capture_figures(None).await.unwrap().is_empty());
    let first = [figures("b/p/one/AllTraffic", 3, 2, 1, 0, at(10))];
    assert!(store.add_capture_figures("a", 1, &first).await.unwrap());
    assert!(!store.add_capture_figures("a", 1, &first).await.unwrap(), "a report sent again counts once");
    let second = [figures("b/p/one/AllTraffic", 2, 3, 0, 1, None), figures("b/p/another/AllTraffic", 1, 0, 0, 0, None)];
    assert!(store.add_capture_figures("a", 2, &second).await.unwrap());
    assert!(!store.add_capture_figures("a", 1, &first).await.unwrap(), "nor an earlier one");
    // Another replica's report of an earlier flush.
    assert!(store.add_capture_figures("b", 1, &[figures("b/p/one/AllTraffic", 1, 1, 0, 0, at(5))]).await.unwrap());
    assert_eq!(
        store.capture_figures(None).await.unwrap(),
        vec![figures("b/p/another/AllTraffic", 1, 0, 0, 0, None), figures("b/p/one/AllTraffic", 6, 6, 1, 1, at(10)),]
    );
    assert!(store.add_capture_figures("a", 3, &[figures("b/p/another/AllTraffic", 0, 1, 0, 0, at(20))]).await.unwrap());
    assert_eq!(
        store.capture_figures(Some("b/p/another/AllTraffic")).await.unwrap(),
        vec![figures("b/p/another/AllTraffic", 1, 1, 0, 0, at(20))]
    );
    assert!(store.capture_figures(Some("b/p/none/AllTraffic")).await.unwrap().is_empty());
    // Report numbers of processes gone a while are forgotten; the sums stay.
    assert_eq!(store.sweep_capture_figure_reports(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(store.sweep_capture_figure_reports(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap(), 2);
    assert_eq!(store.capture_figures(None).await.unwrap().len(), 2);
}

on_both_stores!(capture_figures_add_up_per_destination);

/// Endpoint logs: one row per process and endpoint, rewritten in place; an endpoint keeps its
/// ten most recently written rows, newest first.
async fn endpoint_logs_keep_each_replicas_newest_lines(db: TestDb) {
    let store = db.store.clone();
    let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    let row = |replica: &str, lines: &[&str], updated: i64| EndpointLogRecord {
        environment: "default".into(),
        endpoint: "linear-endpoint".into(),
        replica: replica.into(),
        restarts: 1,
        lines: lines.iter().map(|l| l.to_string()).collect(),
        updated_at: at(updated),
    };
    store.save_endpoint_logs(&row("a", &["one"], 1)).await.unwrap();
    store.save_endpoint_logs(&row("b", &["two"], 2)).await.unwrap();
    store.save_endpoint_logs(&row("a", &["one", "three \"quoted\""], 3)).await.unwrap();
    let mut other = row("c", &["elsewhere"], 4);
    other.endpoint = "other-endpoint".into();
    store.save_endpoint_logs(&other).await.unwrap();
    assert_eq!(
        store.endpoint_logs("default", "linear-endpoint").await.unwrap(),
        vec![row("a", &["one", "three \"quoted\""], 3), row("b", &["two"], 2)]
    );
    for i in 0..12 {
        store.save_endpoint_logs(&row(&format!("r{i:02}"), &["x"], 10 + i)).await.unwrap();
    }
    let kept: Vec<String> =
        store.endpoint_logs("default", "linear-endpoint").await.unwrap().into_iter().map(|r| r.replica).collect();
    let newest: Vec<String> = (2..12).rev().map(|i| format!("r{i:02}")).collect();
    assert_eq!(kept, newest, "the ten most recently written");
    assert_eq!(store.endpoint_logs("default", "other-endpoint").await.unwrap(), vec![other]);

    // Rows of an endpoint that exists stay; those of endpoints that are gone go once old enough.
    provision(&store, new_pipeline("kept", &["default"])).await.unwrap();
    let mut kept = row("a", &["kept"], 20);
    kept.endpoint = "kept-ep".into();
    store.save_endpoint_logs(&kept).await.unwrap();
    assert_eq!(store.sweep_orphaned_endpoint_logs(at(10)).await.unwrap(), 1, "the other endpoint's row only");
    assert_eq!(store.endpoint_logs("default", "linear-endpoint").await.unwrap().len(), 10, "written after the cutoff");
    assert_eq!(store.sweep_orphaned_endpoint_logs(at(100)).await.unwrap(), 10);
    assert_eq!(store.endpoint_logs("default", "kept-ep").await.unwrap(), vec![kept]);
}

on_both_stores!(endpoint_logs_keep_each_replicas_newest_lines);
