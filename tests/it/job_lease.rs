//! Job leasing on both stores: exclusive claims, fencing, heartbeats, the reaper, retries, and a
//! worker killed mid-job.

use crate::on_both_stores;
use crate::store_contract::{begin_stage, new_pipeline, provision, provision_with};
use crate::support::TestDb;
use async_trait::async_trait;
use mlops::config::JobSettings;
use mlops::domain::state::{PipelineState, StageState};
use mlops::jobs::{JobHandler, JobOutcome, Runner};
use mlops::store::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn job(kind: &str, max_attempts: i32) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: json!({}),
        max_attempts,
        run_at: now(),
        idempotency_key: None,
        pipeline_id: None,
        stage_ordinal: None,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn concurrent_claims_never_share_a_job(db: TestDb) {
    for _ in 0..40 {
        db.store.enqueue_job(job("noop", 3)).await.unwrap();
    }
    let mut claimers = Vec::new();
    for w in 0..4 {
        let store = db.store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store.claim_jobs(&format!("w{w}"), 3, LEASE).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                mine.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40, "every job claimed");
    assert_eq!(unique.len(), 40, "no job claimed twice");
}

async fn transitions_are_fenced_to_the_lease_holder(db: TestDb) {
    let j = db.store.enqueue_job(job("noop", 3)).await.unwrap();
    let claimed = db.store.claim_jobs("a", 1, LEASE).await.unwrap();
    assert_eq!(claimed[0].id, j.id);
    assert_eq!(claimed[0].locked_by.as_deref(), Some("a"));
    assert!(!db.store.heartbeat_job(&j.id, "b", LEASE).await.unwrap());
    assert!(!db.store.finish_job(&j.id, "b", JobFinish::Succeeded).await.unwrap());
    let before = db.store.job(&j.id).await.unwrap().unwrap().lease_until.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(db.store.heartbeat_job(&j.id, "a", LEASE).await.unwrap());
    let after = db.store.job(&j.id).await.unwrap().unwrap().lease_until.unwrap();
    assert!(after > before, "heartbeat extends the lease");
    assert!(db.store.finish_job(&j.id, "a", JobFinish::Succeeded).await.unwrap());
    assert!(!db.store.finish_job(&j.id, "a", JobFinish::Succeeded).await.unwrap(), "finishing twice is refused");
    let done = db.store.job(&j.id).await.unwrap().unwrap();
    assert_eq!(done.status, job_status::SUCCEEDED);
    assert_eq!(done.locked_by, None);
}

async fn reaper_requeues_expired_leases_then_fails_past_the_cap(db: TestDb) {
    let p = provision_with(&db.store, new_pipeline("churn", &["dev"]), JobPolicy { max_attempts: 2 }).await.unwrap();
    let id = p.record().id.clone();
    begin_stage(&db.store, &StageKey { pipeline_id: id.clone(), ordinal: 0, version: 1 }).await.unwrap();

    let expire = Duration::ZERO;
    let first = db.store.claim_jobs("a", 1, expire).await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(db.store.reap_expired_jobs().await.unwrap().is_empty());
    let requeued = db.store.job(&first[0].id).await.unwrap().unwrap();
    assert_eq!((requeued.status.as_str(), requeued.attempts), (job_status::QUEUED, 1));
    assert!(requeued.last_error.unwrap().contains("lease expired"));
    assert!(
        !db.store.finish_job(&first[0].id, "a", JobFinish::Succeeded).await.unwrap(),
        "the old holder is fenced out"
    );

    db.store.claim_jobs("b", 1, expire).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failed = db.store.reap_expired_jobs().await.unwrap();
    assert_eq!(failed.len(), 1);
    let job = db.store.job(&first[0].id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), (job_status::FAILED, 2));
    let pipeline = db.store.pipeline(&id).await.unwrap().unwrap();
    assert_eq!(pipeline.state, PipelineState::Failed);
    assert!(pipeline.last_error.unwrap().contains("lease expired"));
    assert_eq!(db.store.stages(&id).await.unwrap()[0].state, StageState::Failed);
}

async fn retries_back_off_and_reschedules_do_not_count(db: TestDb) {
    let p = provision(&db.store, new_pipeline("churn", &["dev"])).await.unwrap();
    let id = p.record().id.clone();
    let j = db.store.claim_jobs("a", 1, LEASE).await.unwrap().remove(0);

    let later = now() + chrono::Duration::seconds(60);
    assert!(db.store.finish_job(&j.id, "a", JobFinish::Reschedule { run_at: later }).await.unwrap());
    let rescheduled = db.store.job(&j.id).await.unwrap().unwrap();
    assert_eq!((rescheduled.status.as_str(), rescheduled.attempts), (job_status::QUEUED, 0));
    assert!(db.store.claim_jobs("a", 1, LEASE).await.unwrap().is_empty(), "not due yet");

    let retry = db
        .store
        .enqueue_job(NewJob {
            pipeline_id: Some(id.clone()),
            stage_ordinal: Some(0),
            payload: json!({"version": 1}),
            ..job("deploy_stage", 2)
        })
        .await
        .unwrap();
    let claimed = db.store.claim_jobs("a", 1, LEASE).await.unwrap();
    assert_eq!(claimed[0].id, retry.id);
    let soon = now() + chrono::Duration::milliseconds(20);
    db.store.finish_job(&retry.id, "a", JobFinish::Retry { run_at: soon, error: "throttled".into() }).await.unwrap();
    let r = db.store.job(&retry.id).await.unwrap().unwrap();
    assert_eq!((r.status.as_str(), r.attempts, r.last_error.as_deref()), (job_status::QUEUED, 1, Some("throttled")));
    tokio::time::sleep(Duration::from_millis(30)).await;
    db.store.claim_jobs("a", 1, LEASE).await.unwrap();
    db.store
        .finish_job(&retry.id, "a", JobFinish::Retry { run_at: now(), error: "still throttled".into() })
        .await
        .unwrap();
    let r = db.store.job(&retry.id).await.unwrap().unwrap();
    assert_eq!((r.status.as_str(), r.attempts), (job_status::FAILED, 2), "attempts used up");
    let pipeline = db.store.pipeline(&id).await.unwrap().unwrap();
    assert_eq!(pipeline.state, PipelineState::Failed);
    assert!(pipeline.last_error.unwrap().contains("still throttled"));
}

async fn idempotency_keys_deduplicate(db: TestDb) {
    let a = db.store.enqueue_job(NewJob { idempotency_key: Some("k1".into()), ..job("noop", 3) }).await.unwrap();
    let b = db.store.enqueue_job(NewJob { idempotency_key: Some("k1".into()), ..job("noop", 3) }).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(db.store.row_counts().await.unwrap().jobs, 1);
}

/// Counts runs and completions; the first run of a job with `{"hang": true}` hangs until its
/// future is dropped.
#[derive(Default)]
struct HangOnce {
    started: AtomicUsize,
    completed: AtomicUsize,
    hung: std::sync::atomic::AtomicBool,
    started_signal: tokio::sync::Notify,
}

fn hanging_job() -> NewJob {
    NewJob { payload: json!({"hang": true}), ..job("work", 3) }
}

#[async_trait]
impl JobHandler for HangOnce {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.started_signal.notify_one();
        if job.payload.0["hang"] == true && !self.hung.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.completed.fetch_add(1, Ordering::SeqCst);
        JobOutcome::Done
    }
}

fn fast_settings() -> JobSettings {
    JobSettings {
        workers: 2,
        poll_interval: Duration::from_millis(50),
        lease: Duration::from_millis(600),
        heartbeat: Duration::from_millis(200),
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
        ..JobSettings::default()
    }
}

async fn killed_worker_job_is_reclaimed_and_completes_once(db: TestDb) {
    let handler = Arc::new(HangOnce::default());
    let j = db.store.enqueue_job(hanging_job()).await.unwrap();

    let first = Arc::new(Runner::new(db.store.clone(), handler.clone(), fast_settings()));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(first.clone().run(stop.clone(), Duration::from_secs(5)));
    tokio::time::timeout(Duration::from_secs(10), handler.started_signal.notified()).await.expect("job started");
    // Heartbeats keep the lease alive while the worker lives...
    tokio::time::sleep(Duration::from_millis(900)).await;
    let held = db.store.job(&j.id).await.unwrap().unwrap();
    assert_eq!((held.status.as_str(), held.locked_by.as_deref()), (job_status::RUNNING, Some(first.worker_id())));
    // ...then the worker dies without releasing anything.
    task.abort();
    let _ = task.await;

    let second = Runner::new(db.store.clone(), handler.clone(), fast_settings());
    assert_eq!(second.run_until_empty().await.unwrap(), 0, "the lease has not expired yet");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(second.run_until_empty().await.unwrap(), 1);
    let done = db.store.job(&j.id).await.unwrap().unwrap();
    assert_eq!(done.status, job_status::SUCCEEDED);
    assert_eq!(done.attempts, 1, "the lost lease counted one attempt");
    assert_eq!(handler.started.load(Ordering::SeqCst), 2);
    assert_eq!(handler.completed.load(Ordering::SeqCst), 1, "completed exactly once");
}

async fn runner_wakes_on_enqueue_and_releases_work_at_shutdown(db: TestDb) {
    let handler = Arc::new(HangOnce::default());
    let mut settings = fast_settings();
    settings.poll_interval = Duration::from_secs(30); // only a wake-up can start the job quickly
    let runner = Arc::new(Runner::new(db.store.clone(), handler.clone(), settings));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(runner.clone().run(stop.clone(), Duration::from_millis(200)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.store.enqueue_job(job("work", 3)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), handler.started_signal.notified()).await.expect("woken by enqueue");

    let stuck = db.store.enqueue_job(hanging_job()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), handler.started_signal.notified()).await.expect("second job started");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("runner stops within the grace").unwrap();
    let released = db.store.job(&stuck.id).await.unwrap().unwrap();
    assert_eq!((released.status.as_str(), released.locked_by, released.attempts), (job_status::QUEUED, None, 0));
}

struct PanicsOnBadInput;

#[async_trait]
impl JobHandler for PanicsOnBadInput {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        if job.payload.0["bad"] == true {
            panic!("unexpected input {}", job.payload.0);
        }
        JobOutcome::Done
    }
}

/// A panicking handler fails its job with the panic's message; the runner goes on.
async fn a_panicking_job_fails_and_the_runner_goes_on(db: TestDb) {
    let bad = db.store.enqueue_job(NewJob { payload: json!({"bad": true}), ..job("work", 3) }).await.unwrap();
    let good = db.store.enqueue_job(job("work", 3)).await.unwrap();
    let runner = Runner::new(db.store.clone(), Arc::new(PanicsOnBadInput), fast_settings());
    assert_eq!(runner.run_until_empty().await.unwrap(), 2, "each job ran once");
    let bad = db.store.job(&bad.id).await.unwrap().unwrap();
    assert_eq!(bad.status, job_status::FAILED);
    let error = bad.last_error.unwrap();
    assert!(error.contains("panicked") && error.contains("unexpected input"), "{error}");
    assert_eq!(db.store.job(&good.id).await.unwrap().unwrap().status, job_status::SUCCEEDED);
}

on_both_stores!(
    a_panicking_job_fails_and_the_runner_goes_on,
    concurrent_claims_never_share_a_job,
    transitions_are_fenced_to_the_lease_holder,
    reaper_requeues_expired_leases_then_fails_past_the_cap,
    retries_back_off_and_reschedules_do_not_count,
    idempotency_keys_deduplicate,
    killed_worker_job_is_reclaimed_and_completes_once,
    runner_wakes_on_enqueue_and_releases_work_at_shutdown,
);

/// Replicas wake each other through LISTEN/NOTIFY: a job enqueued through one Postgres
/// connection pool wakes a worker holding another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_other_replicas() {
    let db = TestDb::new(crate::support::Db::Postgres).await;
    let other_replica = mlops::store::connect(&db.url).await.unwrap();
    let wake = other_replica.job_wakeup();
    let woken = wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    db.store.enqueue_job(job("work", 3)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), woken).await.expect("the other replica was woken");
    other_replica.close().await;
}

/// The queue figures the metrics publish: waiting (due or not), running, and since when the
/// longest-waiting due job waits.
async fn queue_stats_count_waiting_and_running_jobs(db: TestDb) {
    assert_eq!(db.store.job_queue_stats().await.unwrap(), JobQueueStats::default());
    let due_since = now() - chrono::Duration::seconds(30);
    db.store.enqueue_job(NewJob { run_at: due_since, ..job("old", 3) }).await.unwrap();
    db.store.enqueue_job(job("new", 3)).await.unwrap();
    db.store.enqueue_job(NewJob { run_at: now() + chrono::Duration::hours(1), ..job("later", 3) }).await.unwrap();
    let stats = db.store.job_queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (3, 0));
    assert_eq!(stats.oldest_queued_at, Some(due_since), "the future job is not waiting yet");

    let claimed = db.store.claim_jobs("w1", 1, LEASE).await.unwrap();
    assert_eq!(claimed[0].kind, "old");
    let stats = db.store.job_queue_stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 1));
    assert_ne!(stats.oldest_queued_at, Some(due_since));
}

on_both_stores!(queue_stats_count_waiting_and_running_jobs);
