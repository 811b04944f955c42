//! Reading the endpoints this process serves (the local target). Invocations go through
//! `serving` directly: they are the data plane, not a use case of the control plane.

use super::ServiceError;
use crate::serving::capture_figures::{CaptureFigureReports, Figures};
use crate::serving::endpoint_logs::EndpointLogReports;
use crate::store::{DynStore, EndpointLogRecord, EndpointRecord};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct EndpointService {
    store: DynStore,
    capture_figures: Arc<CaptureFigureReports>,
    logs: Arc<EndpointLogReports>,
}

impl EndpointService {
    pub fn new(store: DynStore, capture_figures: Arc<CaptureFigureReports>, logs: Arc<EndpointLogReports>) -> Self {
        Self { store, capture_figures, logs }
    }

    /// This process among the replicas, as its endpoint logs name it.
    pub fn replica(&self) -> &str {
        self.logs.replica()
    }

    /// The endpoint's algorithm output as the other replicas last wrote it, most recent first.
    pub async fn other_replicas_logs(
        &self,
        environment: &str,
        name: &str,
    ) -> Result<Vec<EndpointLogRecord>, ServiceError> {
        Ok(self.logs.others(environment, name).await?)
    }

    /// The figures of capture destination `destination` (a `serving::capture::stats_key`), or
    /// of every destination when `None`, by key.
    pub async fn capture_figures(&self, destination: Option<&str>) -> Result<HashMap<String, Figures>, ServiceError> {
        Ok(self.capture_figures.figures(destination).await?)
    }

    pub async fn list(&self) -> Result<Vec<EndpointRecord>, ServiceError> {
        Ok(self.store.list_endpoints().await?)
    }

    /// `display` names the endpoint in the error (as the caller wrote it).
    pub async fn get(&self, environment: &str, name: &str, display: &str) -> Result<EndpointRecord, ServiceError> {
        self.store
            .endpoint(environment, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("endpoint {display:?} not found")))
    }
}
