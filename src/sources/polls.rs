//! The `poll_config_source` job: fetch a source and process its newest revision. One recurring
//! job per source (queued at start, re-scheduled after every run, never failing: a source that
//! cannot be reached is tried again at its next interval); a verified push queues a one-off run.

use super::Sources;
use crate::jobs::{JobHandler, JobOutcome, JobPayload};
use crate::services::config_revisions::ConfigRevisionService;
use crate::store::{DynStore, JobRecord, NewJob, StoreError};
use async_trait::async_trait;

pub struct ConfigPolls {
    service: ConfigRevisionService,
}

impl ConfigPolls {
    pub fn new(service: ConfigRevisionService) -> Self {
        Self { service }
    }
}

/// The job that polls `source` every interval.
pub fn recurring_job(source: &str, max_attempts: i32) -> NewJob {
    job(source, true, format!("config-source:{source}"), max_attempts)
}

/// A run now, after a push.
pub fn immediate_job(source: &str, max_attempts: i32) -> NewJob {
    job(source, false, format!("config-push:{source}:{}", uuid::Uuid::now_v7()), max_attempts)
}

fn job(source: &str, recurring: bool, key: String, max_attempts: i32) -> NewJob {
    let payload = JobPayload::PollConfigSource { source: source.to_string(), recurring };
    NewJob {
        kind: payload.kind().to_string(),
        payload: payload.to_json(),
        max_attempts,
        run_at: crate::store::now(),
        idempotency_key: Some(key),
        pipeline_id: None,
        stage_ordinal: None,
    }
}

/// Queues every configured source's recurring poll (or re-queues one that ended).
pub async fn start(store: &DynStore, sources: &Sources, max_attempts: i32) -> Result<(), StoreError> {
    for source in sources.iter() {
        store.ensure_recurring_job(&recurring_job(&source.name, max_attempts)).await?;
    }
    Ok(())
}

#[async_trait]
impl JobHandler for ConfigPolls {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        let (name, recurring) = match JobPayload::parse(&job.kind, &job.payload.0) {
            Ok(JobPayload::PollConfigSource { source, recurring }) => (source, recurring),
            Ok(other) => return JobOutcome::Fail(format!("not a config poll: {}", other.kind())),
            Err(e) => return JobOutcome::Fail(e.to_string()),
        };
        let Some(source) = self.service.sources().get(&name) else {
            tracing::info!(source = %name, "config source no longer configured; its poll ends");
            return JobOutcome::Done;
        };
        match source.fetch().await {
            Ok(Some(revision)) => {
                let id = revision.id.clone();
                match self.service.ingest(source, revision).await {
                    Ok(Some(record)) => {
                        tracing::info!(source = %name, revision = %id, state = %record.state, "config revision processed")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(source = %name, revision = %id, error = %e, "processing a config revision failed; trying again")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "fetching the config source failed; trying again at its next poll")
            }
        }
        if recurring { JobOutcome::PollAgain(source.poll_interval) } else { JobOutcome::Done }
    }
}
