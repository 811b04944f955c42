//! The endpoints this process serves. The database says which model an endpoint runs (and at
//! which revision); each replica loads that model once from the artifact store and re-checks the
//! database at most every `refresh`, so a redeploy reaches every replica without a restart.
//!
//! Deploying copies the artifact to a content-addressed snapshot (`_mlops/models/<sha256>`), as
//! SageMaker copies model data into an endpoint: replacing the asset later changes nothing for
//! the running endpoint, on any replica, until the pipeline is provisioned again.
//!
//! Models load in the background, one at a time per process: a request that finds its model
//! missing waits up to `serving.model_load_wait` and is then answered 503 with `Retry-After`
//! while the load goes on (a client giving up never cancels it); a request that finds a newer
//! revision keeps being served by the loaded one until the new one is ready. At most
//! `serving.max_loaded_models` models, and `serving.max_loaded_model_bytes` of them, stay loaded;
//! the least recently used go first.

use super::builtin::BuiltinModel;
use super::model_archive;
use super::xgboost::ModelLimits;
use crate::artifacts::{ArtifactStore, StorageError};
use crate::store::{DynStore, EndpointRecord, StoreError, endpoint_state};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    /// A custom algorithm (`byom_realtime_custom`): it runs the model, as a child process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmRef>,
}

/// The algorithm a custom endpoint runs: its name and the digest of its zip's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlgorithmRef {
    pub name: String,
    pub sha256: String,
}

/// What answers an endpoint's invocations.
pub enum Model {
    /// A model this process evaluates (XGBoost or ONNX).
    Builtin(BuiltinModel),
    /// A custom algorithm, running as a child process.
    Process(super::process::ProcessModel),
}

impl Model {
    /// Memory held in this process (a child process's own memory is not ours to count).
    pub fn memory_bytes(&self) -> u64 {
        match self {
            Model::Builtin(model) => model.memory_bytes(),
            Model::Process(_) => 0,
        }
    }
}

/// Where and how custom algorithms run on this replica.
#[derive(Debug, Clone)]
pub struct CustomRuntime {
    /// Unpacked algorithms and their virtual environments, by the zip's digest.
    pub algorithms_dir: std::path::PathBuf,
    /// Unpacked model archives of custom endpoints.
    pub models_dir: std::path::PathBuf,
    pub python: String,
    /// How long a custom algorithm may take to answer its first `GET /ping`.
    pub start_timeout: Duration,
    /// How long making its virtual environment may take (on a replica that has not yet).
    pub install_timeout: Duration,
    /// The CPUs the algorithms' processes run on; `None`: any.
    pub cpus: Option<super::cpus::CpuList>,
}

impl Default for CustomRuntime {
    fn default() -> Self {
        let base = std::env::temp_dir().join("mlops-custom");
        Self {
            algorithms_dir: base.join("algorithms"),
            models_dir: base.join("models"),
            python: "python3".into(),
            start_timeout: Duration::from_secs(120),
            install_timeout: Duration::from_secs(30 * 60),
            cpus: None,
        }
    }
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
    pub model: Model,
    /// Registered once per load, so an invocation only adds to atomics.
    pub metrics: crate::metrics::EndpointMetrics,
    /// Where its invocations are captured, resolved on the first one (`None` inside: the
    /// destination cannot be written, logged once).
    pub capture_target: std::sync::OnceLock<Option<super::capture::CaptureTarget>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model artifact {key:?}: {source}")]
    Storage { key: String, source: StorageError },
    #[error("model artifact {key:?}: {source}")]
    Archive { key: String, source: model_archive::ArchiveError },
    #[error("model artifact {key:?} is not a model this server can load: {source}")]
    Load { key: String, source: super::builtin::LoadError },
    #[error(
        "the deployed snapshot of {key:?} is damaged (sha256 {actual}, expected {expected}); provision the pipeline again"
    )]
    Damaged { key: String, expected: String, actual: String },
    #[error("could not store the snapshot of model artifact {key:?}: {source}")]
    Snapshot { key: String, source: object_store::Error },
    #[error("custom algorithm {name:?}: {message}")]
    Algorithm { name: String, message: String },
    #[error("custom algorithm {name:?}: {source}")]
    Process { name: String, source: super::process::ProcessError },
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {0:?} not found")]
    NotFound(String),
    /// The model is loading on this replica; ask again in about `retry_after`.
    #[error("the model of endpoint {name:?} is loading on this replica")]
    Loading { name: String, retry_after: Duration },
    /// A background load failed (every request that waited for it sees the same error).
    #[error(transparent)]
    LoadFailed(Arc<EndpointError>),
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
    /// When it last answered, on the registry's use clock (for least-recently-used eviction).
    used: AtomicU64,
    memory_bytes: u64,
}

type Key = (String, String);
type LoadResult = Result<Arc<LiveEndpoint>, Arc<EndpointError>>;

/// A load in flight: the revision it loads and where its result appears.
struct Load {
    revision: i64,
    result: watch::Receiver<Option<LoadResult>>,
}

/// How many models, and how much of them, a replica keeps loaded.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub max_models: usize,
    pub max_bytes: u64,
    /// How long a request waits for a load before it is answered 503.
    pub load_wait: Duration,
}

pub struct EndpointRegistry {
    store: DynStore,
    artifacts: ArtifactStore,
    refresh: Duration,
    max_model_bytes: u64,
    limits: ModelLimits,
    capacity: Capacity,
    /// foldhash rather than SipHash: looked up on every invocation, with names of endpoints
    /// that exist (an unknown one is never cached).
    cache: RwLock<HashMap<Key, Cached, foldhash::fast::RandomState>>,
    /// Loads in flight, at most one per endpoint; requests wait on the same one.
    loads: Mutex<HashMap<Key, Load>>,
    /// Loads run one at a time, so a burst of first requests cannot parse many models at once.
    loading: Arc<tokio::sync::Semaphore>,
    use_clock: AtomicU64,
    /// Names the database did not have, and when it said so: asked again within `refresh`, the
    /// answer is "not found" from here, so a client repeating a wrong name costs a map lookup
    /// rather than a query per request. At most [`MAX_ABSENT`] names.
    absent: Mutex<HashMap<Key, Instant, foldhash::fast::RandomState>>,
    custom: CustomRuntime,
}

/// Unknown names remembered at once (each at most a SageMaker name's 63 characters): when full,
/// the expired ones go, and if none has, all of them.
const MAX_ABSENT: usize = 1024;

/// A loaded model and the digest of the artifact it came from.
pub struct LoadedModel {
    pub model: BuiltinModel,
    pub sha256: String,
}

impl EndpointRegistry {
    pub fn new(
        store: DynStore,
        artifacts: ArtifactStore,
        refresh: Duration,
        max_model_bytes: u64,
        limits: ModelLimits,
        capacity: Capacity,
    ) -> Self {
        Self {
            store,
            artifacts,
            refresh,
            max_model_bytes,
            limits,
            capacity,
            cache: RwLock::default(),
            loads: Mutex::new(HashMap::new()),
            loading: Arc::new(tokio::sync::Semaphore::new(1)),
            use_clock: AtomicU64::new(0),
            absent: Mutex::default(),
            custom: CustomRuntime::default(),
        }
    }

    pub fn with_custom_runtime(mut self, custom: CustomRuntime) -> Self {
        self.custom = custom;
        self
    }

    /// Stores `bytes` (a model archive) as the content-addressed snapshot a deploy keeps, and
    /// returns its digest; for a model this process does not parse (a custom algorithm's).
    pub async fn snapshot_bytes(&self, key: &str, bytes: bytes::Bytes) -> Result<String, ModelError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.keep_snapshot(key, &sha256, bytes).await?;
        Ok(sha256)
    }

    /// Stores the snapshot of the artifact at `key` whose digest is `sha256`, unless it is
    /// there: content-addressed, an existing one already holds these exact bytes.
    async fn keep_snapshot(&self, key: &str, sha256: &str, bytes: bytes::Bytes) -> Result<(), ModelError> {
        let path = snapshot_path(sha256);
        if self.artifacts.object_store().head(&path).await.is_err() {
            self.artifacts
                .object_store()
                .put(&path, bytes.into())
                .await
                .map_err(|source| ModelError::Snapshot { key: key.to_string(), source })?;
        }
        Ok(())
    }

    /// Reads the model artifact at asset `key` (within the size limit).
    pub async fn read_artifact(&self, key: &str) -> Result<bytes::Bytes, ModelError> {
        self.artifacts
            .read_asset(key, self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: key.to_string(), source })
    }

    /// Starts a custom endpoint's algorithm with its model: the algorithm's zip and the model
    /// archive come from their snapshots, are unpacked on this replica (once per digest) and
    /// `serve` is started and awaited.
    pub async fn start_custom(
        &self,
        environment: &str,
        name: &str,
        config: &EndpointConfig,
    ) -> Result<super::process::ProcessModel, ModelError> {
        let algorithm = config.algorithm.as_ref().ok_or_else(|| ModelError::Algorithm {
            name: String::new(),
            message: "the endpoint names no algorithm".into(),
        })?;
        let algorithm_error = |message: String| ModelError::Algorithm { name: algorithm.name.clone(), message };
        let built = match super::algorithm::materialized(&algorithm.sha256, &self.custom.algorithms_dir) {
            Some(built) => built,
            None => {
                let zip = self
                    .artifacts
                    .read_path(&algorithm_snapshot_path(&algorithm.sha256), super::algorithm::MAX_UNPACKED_BYTES)
                    .await
                    .map_err(|e| algorithm_error(format!("its snapshot cannot be read: {e}")))?;
                let (dir, python) = (&self.custom.algorithms_dir, &self.custom.python);
                super::algorithm::materialize(&zip, &algorithm.sha256, dir, python, self.custom.install_timeout)
                    .await
                    .map_err(|e| algorithm_error(e.to_string()))?
            }
        };
        let model_dir = self.custom.models_dir.join(&config.artifact_sha256);
        if !model_dir.join(".ready").exists() {
            let archive = self
                .artifacts
                .read_path(&snapshot_path(&config.artifact_sha256), self.max_model_bytes)
                .await
                .map_err(|source| ModelError::Storage { key: config.artifact.clone(), source })?;
            let (dir, limit) = (model_dir.clone(), self.max_model_bytes);
            tokio::task::spawn_blocking(move || model_archive::unpack_archive(&archive, &dir, limit))
                .await
                .map_err(|e| algorithm_error(e.to_string()))?
                .map_err(|source| ModelError::Archive { key: config.artifact.clone(), source })?;
        }
        let spec = super::process::ProcessSpec {
            endpoint: format!("{environment}.{name}"),
            program: built.program,
            venv: built.venv,
            model_dir: model_dir.join("model"),
            start_timeout: self.custom.start_timeout,
            cpus: self.custom.cpus.clone(),
        };
        super::process::ProcessModel::start(spec)
            .await
            .map_err(|source| ModelError::Process { name: algorithm.name.clone(), source })
    }

    /// Loads the model at asset `key` (`framework` as the request names it) and stores its
    /// snapshot; the deploy step.
    pub async fn snapshot_model(&self, key: &str, framework: &str) -> Result<LoadedModel, ModelError> {
        let bytes = self
            .artifacts
            .read_asset(key, self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: key.to_string(), source })?;
        let loaded = self.parse(key, bytes.clone(), framework).await?;
        self.keep_snapshot(key, &loaded.sha256, bytes).await?;
        Ok(loaded)
    }

    /// Loads the snapshot a previous stage deployed: a promotion deploys exactly those bytes,
    /// whatever the asset holds now.
    pub async fn promoted_model(&self, key: &str, sha256: &str, framework: &str) -> Result<LoadedModel, ModelError> {
        let bytes = self
            .artifacts
            .read_path(&snapshot_path(sha256), self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: key.to_string(), source })?;
        let loaded = self.parse(key, bytes, framework).await?;
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
    async fn parse(&self, key: &str, bytes: bytes::Bytes, framework: &str) -> Result<LoadedModel, ModelError> {
        let limit = self.max_model_bytes;
        let framework = framework.to_string();
        let limits = self.limits;
        let key_owned = key.to_string();
        let started = std::time::Instant::now();
        let loaded = tokio::task::spawn_blocking(move || {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let file = model_archive::extract_model_file_with_limit(&bytes, limit)
                .map_err(|source| ModelError::Archive { key: key_owned.clone(), source })?;
            let model = BuiltinModel::load(&file, &framework, &limits)
                .map_err(|source| ModelError::Load { key: key_owned, source })?;
            Ok(LoadedModel { model, sha256 })
        })
        .await
        // A panic while parsing a hostile file is a failed load, not a dead request.
        .map_err(|e| ModelError::Load {
            key: key.to_string(),
            source: super::builtin::LoadError::Panicked(e.to_string()),
        })?;
        let outcome = if loaded.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::metrics::MODEL_LOADS, "outcome" => outcome).increment(1);
        metrics::histogram!(crate::metrics::MODEL_LOAD_DURATION).record(started.elapsed().as_secs_f64());
        loaded
    }

    /// The endpoint, loaded and current to within `refresh`.
    pub async fn get(self: &Arc<Self>, environment: &str, name: &str) -> Result<Arc<LiveEndpoint>, EndpointError> {
        let key = (environment.to_string(), name.to_string());
        let cached = self.cached(&key);
        if let Some((endpoint, checked)) = &cached
            && checked.elapsed() < self.refresh
        {
            return Ok(endpoint.clone());
        }
        // A name no endpoint can have or one the database lacked a moment ago is not looked up.
        if cached.is_none() && (cannot_exist(name) || self.known_absent(&key)) {
            return Err(EndpointError::NotFound(name.to_string()));
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
            self.remember_absent(key);
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
        let mut result = self.start_load(key.clone(), record);
        // A newer revision loads while the loaded one goes on answering.
        if let Some((endpoint, _)) = cached {
            self.touch(&key);
            return Ok(endpoint);
        }
        let loading = || EndpointError::Loading { name: name.to_string(), retry_after: Duration::from_secs(1) };
        // No wait at all means none: a zero timer would still give the load a tick to finish.
        let done = if self.capacity.load_wait.is_zero() {
            result.borrow().clone()
        } else {
            match tokio::time::timeout(self.capacity.load_wait, result.wait_for(Option::is_some)).await {
                Ok(Ok(done)) => done.clone(),
                // The loading task ended without a word (it panicked): the next request loads again.
                Ok(Err(_)) | Err(_) => None,
            }
        };
        match done {
            Some(Ok(endpoint)) => Ok(endpoint),
            Some(Err(e)) => Err(EndpointError::LoadFailed(e)),
            None => Err(loading()),
        }
    }

    /// The loaded endpoint and when it was last checked, counting this as a use.
    fn cached(&self, key: &Key) -> Option<(Arc<LiveEndpoint>, Instant)> {
        let cache = self.cache.read().expect("cache lock");
        let entry = cache.get(key)?;
        entry.used.store(self.use_clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some((entry.endpoint.clone(), entry.checked))
    }

    /// Whether the database lacked the endpoint less than `refresh` ago.
    fn known_absent(&self, key: &Key) -> bool {
        let absent = self.absent.lock().expect("absent lock");
        absent.get(key).is_some_and(|asked| asked.elapsed() < self.refresh)
    }

    fn remember_absent(&self, key: Key) {
        let mut absent = self.absent.lock().expect("absent lock");
        if absent.len() >= MAX_ABSENT && !absent.contains_key(&key) {
            absent.retain(|_, asked| asked.elapsed() < self.refresh);
            if absent.len() >= MAX_ABSENT {
                absent.clear();
            }
        }
        absent.insert(key, Instant::now());
    }

    /// Starts loading `record`'s model in the background, or joins the load already running for
    /// that revision.
    fn start_load(self: &Arc<Self>, key: Key, record: EndpointRecord) -> watch::Receiver<Option<LoadResult>> {
        let mut loads = self.loads.lock().expect("loads lock");
        if let Some(load) = loads.get(&key)
            && load.revision == record.revision
        {
            return load.result.clone();
        }
        let (sender, receiver) = watch::channel(None);
        loads.insert(key.clone(), Load { revision: record.revision, result: receiver.clone() });
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let permit = this.loading.clone().acquire_owned().await;
            let result = match this.load_record(&record).await {
                Ok(endpoint) => {
                    let endpoint = Arc::new(endpoint);
                    this.insert(endpoint.clone());
                    Ok(endpoint)
                }
                Err(e) => {
                    tracing::warn!(endpoint = %record.name, error = %e, "loading the model failed");
                    Err(Arc::new(e))
                }
            };
            drop(permit);
            let mut loads = this.loads.lock().expect("loads lock");
            if loads.get(&key).is_some_and(|load| load.revision == record.revision) {
                loads.remove(&key);
            }
            sender.send_replace(Some(result));
        });
        receiver
    }

    /// Puts a model the deploy job has just loaded into the cache, so this replica does not load
    /// it a second time.
    pub fn install(&self, endpoint: LiveEndpoint) {
        self.insert(Arc::new(endpoint));
    }

    /// Caches `endpoint`, then evicts the least recently used others while over capacity.
    fn insert(&self, endpoint: Arc<LiveEndpoint>) {
        let key = (endpoint.environment.clone(), endpoint.name.clone());
        let memory_bytes = endpoint.model.memory_bytes();
        // Deployed through this replica: no longer unknown here, whatever was asked before.
        self.absent.lock().expect("absent lock").remove(&key);
        let mut cache = self.cache.write().expect("cache lock");
        let used = AtomicU64::new(self.use_clock.fetch_add(1, Ordering::Relaxed));
        cache.insert(key.clone(), Cached { endpoint, checked: Instant::now(), used, memory_bytes });
        loop {
            let total: u64 = cache.values().map(|c| c.memory_bytes).sum();
            if cache.len() <= self.capacity.max_models && total <= self.capacity.max_bytes {
                break;
            }
            let Some(oldest) = cache
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, c)| c.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&oldest);
            metrics::counter!(crate::metrics::MODEL_EVICTIONS).increment(1);
            tracing::info!(environment = %oldest.0, endpoint = %oldest.1, "unloaded the least recently used model");
        }
    }

    /// The endpoint as loaded on this replica, without looking at the database.
    pub fn loaded(&self, environment: &str, name: &str) -> Option<Arc<LiveEndpoint>> {
        self.cache
            .read()
            .expect("cache lock")
            .get(&(environment.to_string(), name.to_string()))
            .map(|c| c.endpoint.clone())
    }

    /// Every endpoint loaded on this replica.
    pub fn all_loaded(&self) -> Vec<Arc<LiveEndpoint>> {
        self.cache.read().expect("cache lock").values().map(|c| c.endpoint.clone()).collect()
    }

    pub fn forget(&self, environment: &str, name: &str) {
        self.cache.write().expect("cache lock").remove(&(environment.to_string(), name.to_string()));
    }

    fn touch(&self, key: &Key) {
        if let Some(c) = self.cache.write().expect("cache lock").get_mut(key) {
            c.checked = Instant::now();
        }
    }

    async fn load_record(&self, record: &EndpointRecord) -> Result<LiveEndpoint, EndpointError> {
        let config: EndpointConfig = serde_json::from_value(record.config.0.clone())
            .map_err(|e| EndpointError::Config(record.name.clone(), e))?;
        if config.algorithm.is_some() {
            let process = self.start_custom(&record.environment, &record.name, &config).await?;
            return Ok(LiveEndpoint {
                environment: record.environment.clone(),
                name: record.name.clone(),
                revision: record.revision,
                metrics: crate::metrics::EndpointMetrics::new(&record.environment, &record.name),
                capture_target: Default::default(),
                config,
                model: Model::Process(process),
            });
        }
        let bytes = self
            .artifacts
            .read_path(&snapshot_path(&config.artifact_sha256), self.max_model_bytes)
            .await
            .map_err(|source| ModelError::Storage { key: config.artifact.clone(), source })?;
        let loaded = self.parse(&config.artifact, bytes, &config.framework).await?;
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
            model: Model::Builtin(loaded.model),
            metrics: crate::metrics::EndpointMetrics::new(&record.environment, &record.name),
            capture_target: Default::default(),
        })
    }
}

/// Whether no endpoint can be called `name`: endpoint names are stored as `EndpointName` makes
/// them (lowercase SageMaker names).
fn cannot_exist(name: &str) -> bool {
    crate::domain::names::EndpointName::parse(name).map_or(true, |n| n.as_str() != name)
}

/// Where a custom algorithm's zip is kept (written by the local image builder); `_mlops` is no
/// valid bucket name, so no request reaches it.
pub fn algorithm_snapshot_path(sha256: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("_mlops/algorithms/{sha256}.zip"))
}

/// Where a deployed model's bytes live. `_mlops` is not a valid bucket name, so no user location
/// can reach it.
fn snapshot_path(sha256: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("_mlops/models/{sha256}"))
}
