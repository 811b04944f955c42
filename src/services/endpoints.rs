//! Reading the endpoints this process serves (the local target). Invocations go through
//! `serving` directly: they are the data plane, not a use case of the control plane.

use super::ServiceError;
use crate::store::{DynStore, EndpointRecord};

#[derive(Clone)]
pub struct EndpointService {
    store: DynStore,
}

impl EndpointService {
    pub fn new(store: DynStore) -> Self {
        Self { store }
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
