//! Reading monitors and their executions, and running a monitor now over a window of one's
//! choosing (the one-time run users asked AWS for).

use super::ServiceError;
use crate::domain::jobs::JobPayload;
use crate::domain::request::RequestErrors;
use crate::domain::schedule::check_window;
use crate::store::{DynStore, MonitorExecutionRecord, MonitorRecord, NewExecution, NewJob};
use chrono::{DateTime, Utc};

#[derive(Clone)]
pub struct MonitorService {
    store: DynStore,
    max_attempts: i32,
}

impl MonitorService {
    pub fn new(store: DynStore, max_attempts: i32) -> Self {
        Self { store, max_attempts }
    }

    pub async fn list(&self) -> Result<Vec<MonitorRecord>, ServiceError> {
        Ok(self.store.list_monitors().await?)
    }

    pub async fn get(&self, id: &str) -> Result<MonitorRecord, ServiceError> {
        self.store.monitor(id).await?.ok_or_else(|| ServiceError::NotFound(format!("monitor {id:?} not found")))
    }

    pub async fn executions(&self, id: &str, limit: i64) -> Result<Vec<MonitorExecutionRecord>, ServiceError> {
        self.get(id).await?;
        Ok(self.store.list_executions(id, limit).await?)
    }

    pub async fn execution(&self, id: &str, execution_id: &str) -> Result<MonitorExecutionRecord, ServiceError> {
        self.get(id).await?;
        self.store
            .execution(execution_id)
            .await?
            .filter(|e| e.monitor_id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("execution {execution_id:?} of monitor {id:?} not found")))
    }

    /// Records an execution over `[start, end)` and queues it.
    pub async fn run_now(
        &self,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<MonitorExecutionRecord, ServiceError> {
        let monitor = self.get(id).await?;
        check_window(start, end, crate::store::now()).map_err(|e| ServiceError::Invalid(RequestErrors(vec![e])))?;
        let pipeline = self
            .store
            .pipeline(&monitor.pipeline_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("the pipeline of monitor {id:?} is gone")))?;
        let execution_id = uuid::Uuid::now_v7().to_string();
        let payload = JobPayload::RunMonitor { version: pipeline.version, execution_id: execution_id.clone() };
        let execution = NewExecution {
            id: execution_id,
            monitor_id: monitor.id.clone(),
            origin: "manual".into(),
            window_start: start,
            window_end: end,
            job: NewJob {
                kind: payload.kind().to_string(),
                payload: payload.to_json(),
                max_attempts: self.max_attempts,
                run_at: crate::store::now(),
                idempotency_key: None,
                pipeline_id: Some(monitor.pipeline_id.clone()),
                stage_ordinal: None,
            },
        };
        Ok(self.store.create_execution(&execution).await?)
    }
}
