//! Reading monitors and their executions, and running a monitor now over a window of one's
//! choosing (the one-time run users asked AWS for).

use super::ServiceError;
use crate::artifacts::ArtifactStore;
use crate::domain::jobs::JobPayload;
use crate::domain::request::{FieldError, FieldErrorCode, RequestErrors};
use crate::domain::schedule::check_window;
use crate::store::{DynStore, MonitorExecutionRecord, MonitorRecord, NewExecution, NewJob};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;

#[derive(Clone)]
pub struct MonitorService {
    store: DynStore,
    artifacts: ArtifactStore,
    max_attempts: i32,
}

/// Ground-truth records taken for an endpoint.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GroundTruthAccepted {
    /// Records accepted.
    pub records: usize,
    /// Where they were written: one object per model-quality monitor of the endpoint, under its
    /// `monitor_ground_truth_input` in SageMaker's `yyyy/mm/dd/hh` layout.
    pub objects: Vec<String>,
}

impl MonitorService {
    pub fn new(store: DynStore, artifacts: ArtifactStore, max_attempts: i32) -> Self {
        Self { store, artifacts, max_attempts }
    }

    /// Takes ground-truth JSON lines for `endpoint` (`name`, or `environment.name`): every line
    /// must be a SageMaker ground-truth record; they are written for each model-quality monitor
    /// of the endpoint. Idempotent on `eventId`: a record sent again changes nothing (the first
    /// label of an event counts).
    pub async fn ingest_ground_truth(&self, endpoint: &str, body: &str) -> Result<GroundTruthAccepted, ServiceError> {
        let mut problems = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match crate::analyzer::ground_truth::read(line) {
                Ok(_) => lines.push(line.trim()),
                Err(e) => problems.push(FieldError::new(
                    format!("/lines/{}", n + 1),
                    FieldErrorCode::InvalidValue,
                    format!("line {}: not a ground-truth record: {e}", n + 1),
                )),
            }
        }
        if problems.is_empty() && lines.is_empty() {
            problems.push(FieldError::new(
                "",
                FieldErrorCode::Required,
                "the body holds no ground-truth record (JSON lines)",
            ));
        }
        if !problems.is_empty() {
            return Err(ServiceError::Invalid(RequestErrors(problems)));
        }
        let (environment, name) = match endpoint.split_once('.') {
            Some((environment, name)) => (Some(environment), name),
            None => (None, endpoint),
        };
        let monitors: Vec<MonitorRecord> = self
            .store
            .list_monitors()
            .await?
            .into_iter()
            // The monitors that join predictions with ground truth.
            .filter(|m| matches!(m.monitor_type.as_str(), "model_quality" | "model_bias") && m.endpoint_name == name)
            .filter(|m| environment.is_none_or(|e| e == m.environment))
            .collect();
        if monitors.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "no model-quality or bias monitor watches endpoint {endpoint:?}: provision a byom_model_quality_monitor or byom_model_bias_monitor for it first"
            )));
        }
        let text = lines.join("\n") + "\n";
        let hour = crate::store::now().format("%Y/%m/%d/%H").to_string();
        let mut objects = Vec::new();
        for monitor in monitors {
            let location =
                monitor.config.0["stage"]["monitor_ground_truth_input"].as_str().unwrap_or_default().to_string();
            let (bucket, prefix) = location.split_once('/').unwrap_or((location.as_str(), ""));
            let key = [prefix, &hour, &format!("{}.jsonl", uuid::Uuid::now_v7())]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            let path =
                crate::artifacts::location_path(bucket, &key).map_err(|e| ServiceError::Internal(e.to_string()))?;
            self.artifacts
                .object_store()
                .put(&path, bytes::Bytes::from(text.clone()).into())
                .await
                .map_err(|e| ServiceError::Unavailable { what: "the object store", cause: e.to_string() })?;
            objects.push(path.to_string());
        }
        Ok(GroundTruthAccepted { records: lines.len(), objects })
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
