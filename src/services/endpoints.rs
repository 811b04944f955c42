//! Reading the endpoints this process serves (the local target). Invocations go through
//! `serving` directly: they are the data plane, not a use case of the control plane.

use super::ServiceError;
use crate::serving::capture_figures::{CaptureFigureReports, Figures};
use crate::store::{DynStore, EndpointRecord};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct EndpointService {
    store: DynStore,
    capture_figures: Arc<CaptureFigureReports>,
}

impl EndpointService {
    pub fn new(store: DynStore, capture_figures: Arc<CaptureFigureReports>) -> Self {
        Self { store, capture_figures }
    }

    /// Every capture destination's figures, by `serving::capture::stats_key`.
    pub async fn capture_figures(&self) -> Result<HashMap<String, Figures>, ServiceError> {
        Ok(self.capture_figures.figures().await?)
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
