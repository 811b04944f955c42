//! What each job kind does to a pipeline.

use super::{JobHandler, JobOutcome};
use crate::app::AppState;
use crate::store::JobRecord;
use async_trait::async_trait;
use std::sync::Arc;

pub struct PipelineJobs {}

pub fn handler(_state: &AppState) -> Arc<dyn JobHandler> {
    Arc::new(PipelineJobs {})
}

#[async_trait]
impl JobHandler for PipelineJobs {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        JobOutcome::Fail(format!("unknown job kind {:?}", job.kind))
    }
}
