//! Claims due jobs by lease and runs them outside any transaction. Each running job has a
//! heartbeat extending its lease; if the lease is lost (reaped after a stall) the job's future
//! is dropped so two workers never act on one job at once.

use super::{JobHandler, JobOutcome};
use crate::config::JobSettings;
use crate::store::{DynStore, JobFinish, JobRecord, StoreError};
use crate::tasks::{AbortOnDrop, panic_message};
use futures::FutureExt;
use rand::RngExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Runner {
    store: DynStore,
    handler: Arc<dyn JobHandler>,
    worker_id: String,
    settings: JobSettings,
}

impl Runner {
    pub fn new(store: DynStore, handler: Arc<dyn JobHandler>, settings: JobSettings) -> Self {
        let worker_id = format!("{}-{}", crate::host::hostname(), uuid::Uuid::now_v7().simple());
        Self { store, handler, worker_id, settings }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs jobs until `shutdown` fires, then stops claiming and gives running jobs `grace` to
    /// finish; jobs still running after that are released back to the queue.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.settings.workers.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        let mut in_flight: Vec<(String, tokio::task::AbortHandle)> = Vec::new();
        let wake = self.store.job_wakeup();
        let mut next_reap = tokio::time::Instant::now();
        tracing::info!(worker = %self.worker_id, slots = self.settings.workers, "job runner started");

        loop {
            // Register for wake-ups before looking, so a job enqueued meanwhile is not missed.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            while running.try_join_next().is_some() {}
            in_flight.retain(|(_, handle)| !handle.is_finished());

            if tokio::time::Instant::now() >= next_reap {
                self.reap().await;
                next_reap = tokio::time::Instant::now() + self.settings.heartbeat;
            }

            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match self.store.claim_jobs(&self.worker_id, free as i64, self.settings.lease).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                            let this = self.clone();
                            let id = job.id.clone();
                            let handle = running.spawn(async move {
                                this.run_job(job).await;
                                drop(permit);
                            });
                            in_flight.push((id, handle));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
                }
            }
            // Claimed a full batch: there may be more waiting, look again at once.
            if claimed > 0 && slots.available_permits() > 0 {
                continue;
            }

            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }

        tracing::info!(worker = %self.worker_id, running = running.len(), "job runner stopping");
        let drained = tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            running.abort_all();
            for (job_id, handle) in in_flight.iter().filter(|(_, h)| !h.is_finished()) {
                handle.abort();
                let released = JobFinish::Reschedule { run_at: crate::store::now() };
                match self.store.finish_job(job_id, &self.worker_id, released).await {
                    Ok(_) => tracing::info!(job.id = %job_id, "released unfinished job at shutdown"),
                    Err(e) => {
                        tracing::warn!(job.id = %job_id, error = %e, "could not release job; its lease will expire")
                    }
                }
            }
        }
    }

    /// Test helper: runs every due job (including ones that become due while draining) one at a
    /// time until none is left; returns how many runs happened.
    pub async fn run_until_empty(&self) -> Result<usize, StoreError> {
        let mut runs = 0;
        loop {
            self.store.reap_expired_jobs().await?;
            let jobs = self.store.claim_jobs(&self.worker_id, 1, self.settings.lease).await?;
            let Some(job) = jobs.into_iter().next() else { return Ok(runs) };
            self.run_job(job).await;
            runs += 1;
        }
    }

    async fn reap(&self) {
        match self.store.reap_expired_jobs().await {
            Ok(failed) => {
                for job in failed {
                    tracing::warn!(job.id = %job.id, job.kind = %job.kind, "job failed: lease expired and attempts are used up");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reaping expired jobs failed"),
        }
    }

    async fn run_job(&self, job: JobRecord) {
        let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind,
            pipeline.id = job.pipeline_id.as_deref().unwrap_or(""), attempt = job.attempts + 1);
        async {
            let lost = CancellationToken::new();
            // Aborted on drop too, so a runner that is itself dropped stops renewing the lease.
            let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
                self.store.clone(),
                job.id.clone(),
                self.worker_id.clone(),
                self.settings.clone(),
                lost.clone(),
            )));
            // A panic in a handler is a bug: it fails the job, logged with the job's id, instead
            // of killing the task and leaving the lease to expire.
            let run = std::panic::AssertUnwindSafe(self.handler.run(&job)).catch_unwind();
            let run = async {
                run.await.unwrap_or_else(|panic| {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(job.id = %job.id, job.kind = %job.kind, panic = %message, "job handler panicked");
                    JobOutcome::Fail(format!("the job handler panicked: {message}"))
                })
            };
            let outcome = tokio::select! {
                outcome = run => Some(outcome),
                _ = lost.cancelled() => None,
            };
            drop(_heartbeat);
            let Some(outcome) = outcome else {
                tracing::warn!("lease lost while running; another worker owns the job now");
                return;
            };
            let counted = match &outcome {
                JobOutcome::Done => "succeeded",
                JobOutcome::PollAgain(_) => "poll_again",
                JobOutcome::Retry(_) => "retry",
                JobOutcome::Fail(_) => "failed",
            };
            metrics::counter!(crate::metrics::JOBS_FINISHED, "kind" => job.kind.clone(), "outcome" => counted)
                .increment(1);
            let finish = match &outcome {
                JobOutcome::Done => JobFinish::Succeeded,
                JobOutcome::PollAgain(after) => JobFinish::Reschedule { run_at: at(*after) },
                JobOutcome::Retry(error) => {
                    tracing::warn!(%error, "job failed; will retry");
                    JobFinish::Retry {
                        run_at: at(backoff(job.attempts, self.settings.retry_base, self.settings.retry_max)),
                        error: error.clone(),
                    }
                }
                JobOutcome::Fail(error) => {
                    tracing::error!(%error, "job failed permanently");
                    JobFinish::Fail { error: error.clone() }
                }
            };
            match self.store.finish_job(&job.id, &self.worker_id, finish).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!("job finished after its lease was lost; result dropped"),
                Err(e) => tracing::error!(error = %e, "could not record the job's result; its lease will expire and it will run again"),
            }
        }
        .instrument(span)
        .await
    }
}

async fn heartbeat(store: DynStore, job_id: String, worker: String, settings: JobSettings, lost: CancellationToken) {
    // The lease was taken (or last renewed) no earlier than this.
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(settings.heartbeat).await;
        match store.heartbeat_job(&job_id, &worker, settings.lease).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A blip: keep trying while the lease lasts, but give the job up before it can run
            // out, since then another worker may take it over.
            Err(e) => {
                tracing::warn!(job.id = %job_id, error = %e, "heartbeat failed");
                if renewed.elapsed() + settings.heartbeat >= settings.lease {
                    lost.cancel();
                    return;
                }
            }
        }
    }
}

fn at(after: Duration) -> chrono::DateTime<chrono::Utc> {
    crate::store::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX)
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries
/// of many jobs that failed together spread out but never come back too early.
pub fn backoff(attempts: i32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.clamp(0, 20) as u32).min(max);
    let half = exp / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempts in 0..10 {
            let d = backoff(attempts, base, max);
            let full = (base * 2u32.pow(attempts as u32)).min(max);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(5, base, max)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
