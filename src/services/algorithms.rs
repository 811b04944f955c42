//! Reading the custom algorithms the local image builder registered.

use super::ServiceError;
use crate::store::{AlgorithmRecord, DynStore};

#[derive(Clone)]
pub struct AlgorithmService {
    store: DynStore,
}

impl AlgorithmService {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    pub async fn list(&self) -> Result<Vec<AlgorithmRecord>, ServiceError> {
        Ok(self.store.list_algorithms().await?)
    }

    pub async fn get(&self, name: &str) -> Result<AlgorithmRecord, ServiceError> {
        self.store.algorithm(name).await?.ok_or_else(|| {
            ServiceError::NotFound(format!(
                "algorithm {name:?} not found; byom_image_builder registers `ecr_repo_name:image_tag`"
            ))
        })
    }
}
