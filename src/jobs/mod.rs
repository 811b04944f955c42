//! Background jobs (DESIGN §4): leased, fenced, heart-beaten, reaped, retried with backoff.
//! The queue lives in the store; `runner` claims and runs jobs; `pipeline_jobs` says what each
//! kind does.

pub mod pipeline_jobs;
pub mod releases;
pub mod retention;
pub mod runner;
pub mod schedules;

pub use runner::Runner;

use crate::store::JobRecord;
use async_trait::async_trait;
use std::time::Duration;

pub use crate::domain::jobs::JobPayload;

/// How one run of a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// Still waiting on something slow (a stack, an endpoint): check again after this long,
    /// without counting an attempt.
    PollAgain(Duration),
    /// A transient failure: retry with backoff while attempts remain.
    Retry(String),
    /// A permanent failure: the job, and what it was doing, fail now.
    Fail(String),
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &JobRecord) -> JobOutcome;
}

/// Routes each job to the handler of its kind.
pub struct ByKind {
    pub pipelines: Box<dyn JobHandler>,
    pub deliveries: Box<dyn JobHandler>,
    pub config_polls: Box<dyn JobHandler>,
}

#[async_trait]
impl JobHandler for ByKind {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        match job.kind.as_str() {
            JobPayload::DELIVER_NOTIFICATION => self.deliveries.run(job).await,
            JobPayload::POLL_CONFIG_SOURCE => self.config_polls.run(job).await,
            _ => self.pipelines.run(job).await,
        }
    }
}
