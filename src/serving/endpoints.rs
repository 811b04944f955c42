//! The endpoints this process serves. The database says which model an endpoint runs (and at
//! which revision); each replica loads that model once from the artifact store and re-checks the
//! database at most every `refresh`, so a redeploy reaches every replica without a restart.
//!
//! Deploying copies the artifact to a content-addressed snapshot (`_mlops/models/<sha256>`), as
//! SageMaker copies model data into an endpoint: replacing the asset later changes nothing for
//! the running endpoint, on any replica, until the pipeline is provisioned again.

use super::model_archive;
use super::xgboost::{Booster, ModelLimits};
use crate::artifacts::{ArtifactStore, StorageError};
use crate::store::{DynStore, EndpointRecord, StoreError, endpoint_state};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What an endpoint runs, as stored on its row when its stage deploys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    pub model_name: String,
    pub framework: String,
    /// Asset key the model was deployed from.
    pub artifact: String,
    /// SHA-256 of the artifact at deploy time; names its snapshot.
    pub artifact_sha256: String,
    /// SageMaker's production variant name; part of the capture path.
    pub variant: String,
    pub capture: Option<CaptureLocation>,
    pub num_features: usize,
    pub num_outputs: usize,
    pub objective: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureLocation {
    pub bucket: String,
    pub prefix: String,
}

/// A model ready to answer.
pub struct LiveEndpoint {
    pub environment: String,
    pub name: String,
    pub revision: i64,
    pub config: EndpointConfig,
    pub model: Booster,
    /// Registered once per load, so an invocation only adds to atomics.
    pub metrics: crate::metrics::EndpointMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model artifact {key:?}: {source}")]
    Storage { key: String, source: StorageError },
    #[error("model artifact {key:?}: {source}")]
    Archive { key: String, source: model_archive::ArchiveError },
    #[error("model artifact {key:?} is not a model this server can load: {source}")]
    Load { key: String, source: super::xgboost::LoadError },
    #[error(
        "the deployed snapshot of {key:?} is damaged (sha256 {actual}, expected {expected}); provision the pipeline again"
    )]
    Damaged { key: String, expected: String, actual: String },
    #[error("could not store the snapshot of model artifact {key:?}: {source}")]
    Snapshot { key: String, source: object_store::Error },
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {0:?} not found")]
    NotFound(String),
    #[error("endpoint {name:?} is not in service yet (state: {state})")]
    NotInService { name: String, state: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("endpoint {0:?} has an unreadable configuration: {1}")]
    Config(String, serde_json::Error),
}

struct Cached {
    endpoint: Arc<LiveEndpoint>,
    checked: Instant,
}

pub struct EndpointRegistry {
    store: DynStore,
    artifacts: ArtifactStore,
    refresh: Duration,
    max_model_bytes: u64,
    limits: ModelLimits,
    cache: RwLock<HashMap<(String, String), Cached>>,
    /// Loads one model at a time, so a burst of first requests loads it once.
    loading: tokio::sync::Mutex<()>,
}

/// A loaded model and the digest of the artifact it came from.
pub struct LoadedModel {
    pub booster: Booster,
    pub sha256: String,
}

impl EndpointRegistry {
    pub fn new(
        store: DynStore,
        artifacts: ArtifactStore,
        refresh: Duration,
        max_model_bytes: u64,
        limits: ModelLimits,
    ) -> Self {
        Self {
            store,
            artifacts,
            refresh,
            max_model_bytes,
            limits,
            cache: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the model at asset `key` and stores its snapshot; the deploy step.
    pub async fn snapshot_model(&self, key: &str) -> Result<LoadedModel, ModelError> {
        let bytes = self
            .artifacts
            .read_asset(key, self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: key.to_string(), source })?;
        let loaded = self.parse(key, bytes.clone()).await?;
        let path = snapshot_path(&loaded.sha256);
        // Content-addressed: an existing snapshot already holds these exact bytes.
        if self.artifacts.object_store().head(&path).await.is_err() {
            self.artifacts
                .object_store()
                .put(&path, bytes.into())
                .await
                .map_err(|source| ModelError::Snapshot { key: key.to_string(), source })?;
        }
        Ok(loaded)
    }

    /// Loads the snapshot a previous stage deployed: a promotion deploys exactly those bytes,
    /// whatever the asset holds now.
    pub async fn promoted_model(&self, key: &str, sha256: &str) -> Result<LoadedModel, ModelError> {
        let bytes = self
            .artifacts
            .read_path(&snapshot_path(sha256), self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: key.to_string(), source })?;
        let loaded = self.parse(key, bytes).await?;
        if loaded.sha256 != sha256 {
            return Err(ModelError::Damaged {
                key: key.to_string(),
                expected: sha256.to_string(),
                actual: loaded.sha256,
            });
        }
        Ok(loaded)
    }

    /// Reads, unpacks and parses a model (parsing runs on the blocking pool: a large JSON model
    /// takes a while).
    async fn parse(&self, key: &str, bytes: bytes::Bytes) -> Result<LoadedModel, ModelError> {
        let limit = self.max_model_bytes;
        let limits = self.limits;
        let key_owned = key.to_string();
        let started = std::time::Instant::now();
        let loaded = tokio::task::spawn_blocking(move || {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let file = model_archive::extract_model_file_with_limit(&bytes, limit)
                .map_err(|source| ModelError::Archive { key: key_owned.clone(), source })?;
            let booster =
                Booster::load_within(&file, &limits).map_err(|source| ModelError::Load { key: key_owned, source })?;
            Ok(LoadedModel { booster, sha256 })
        })
        .await
        // A panic while parsing a hostile file is a failed load, not a dead request.
        .map_err(|e| ModelError::Load {
            key: key.to_string(),
            source: super::xgboost::LoadError::Invalid {
                path: String::new(),
                reason: format!("loading panicked: {e}"),
            },
        })?;
        let outcome = if loaded.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::metrics::MODEL_LOADS, "outcome" => outcome).increment(1);
        metrics::histogram!(crate::metrics::MODEL_LOAD_DURATION).record(started.elapsed().as_secs_f64());
        loaded
    }

    /// The endpoint, loaded and current to within `refresh`.
    pub async fn get(&self, environment: &str, name: &str) -> Result<Arc<LiveEndpoint>, EndpointError> {
        let key = (environment.to_string(), name.to_string());
        let cached = self.cache.read().expect("cache lock").get(&key).map(|c| (c.endpoint.clone(), c.checked));
        if let Some((endpoint, checked)) = &cached
            && checked.elapsed() < self.refresh
        {
            return Ok(endpoint.clone());
        }
        let record = match self.store.endpoint(environment, name).await {
            Ok(record) => record,
            // The model is loaded: a database blip must not take inference down. Look again
            // after the next refresh interval rather than on every request.
            Err(e) => match cached {
                Some((endpoint, _)) => {
                    tracing::warn!(endpoint = name, error = %e, "cannot re-check the endpoint; serving the loaded model");
                    self.touch(&key);
                    return Ok(endpoint);
                }
                None => return Err(e.into()),
            },
        };
        let Some(record) = record else {
            self.forget(environment, name);
            return Err(EndpointError::NotFound(name.to_string()));
        };
        if record.state != endpoint_state::IN_SERVICE {
            // A re-provisioned endpoint keeps serving its previous model until the new one is
            // deployed; only a never-deployed endpoint has nothing to serve.
            if let Some((endpoint, _)) = cached {
                return Ok(endpoint);
            }
            return Err(EndpointError::NotInService { name: name.to_string(), state: record.state });
        }
        if let Some((endpoint, _)) = &cached
            && endpoint.revision == record.revision
        {
            self.touch(&key);
            return Ok(endpoint.clone());
        }
        let _one_at_a_time = self.loading.lock().await;
        let loaded_meanwhile = self.cache.read().expect("cache lock").get(&key).map(|c| c.endpoint.clone());
        if let Some(endpoint) = loaded_meanwhile
            && endpoint.revision == record.revision
        {
            return Ok(endpoint);
        }
        let endpoint = Arc::new(self.load_record(&record).await?);
        self.cache
            .write()
            .expect("cache lock")
            .insert(key, Cached { endpoint: endpoint.clone(), checked: Instant::now() });
        Ok(endpoint)
    }

    /// Puts a model the deploy job has just loaded into the cache, so this replica does not load
    /// it a second time.
    pub fn install(&self, endpoint: LiveEndpoint) {
        let key = (endpoint.environment.clone(), endpoint.name.clone());
        self.cache
            .write()
            .expect("cache lock")
            .insert(key, Cached { endpoint: Arc::new(endpoint), checked: Instant::now() });
    }

    pub fn forget(&self, environment: &str, name: &str) {
        self.cache.write().expect("cache lock").remove(&(environment.to_string(), name.to_string()));
    }

    fn touch(&self, key: &(String, String)) {
        if let Some(c) = self.cache.write().expect("cache lock").get_mut(key) {
            c.checked = Instant::now();
        }
    }

    async fn load_record(&self, record: &EndpointRecord) -> Result<LiveEndpoint, EndpointError> {
        let config: EndpointConfig = serde_json::from_value(record.config.0.clone())
            .map_err(|e| EndpointError::Config(record.name.clone(), e))?;
        let bytes = self
            .artifacts
            .read_path(&snapshot_path(&config.artifact_sha256), self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: config.artifact.clone(), source })?;
        let loaded = self.parse(&config.artifact, bytes).await?;
        if loaded.sha256 != config.artifact_sha256 {
            return Err(ModelError::Damaged {
                key: config.artifact.clone(),
                expected: config.artifact_sha256.clone(),
                actual: loaded.sha256,
            }
            .into());
        }
        Ok(LiveEndpoint {
            environment: record.environment.clone(),
            name: record.name.clone(),
            revision: record.revision,
            config,
            model: loaded.booster,
            metrics: crate::metrics::EndpointMetrics::new(&record.environment, &record.name),
        })
    }
}

/// Where a deployed model's bytes live. `_mlops` is not a valid bucket name, so no user location
/// can reach it.
fn snapshot_path(sha256: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("_mlops/models/{sha256}"))
}
