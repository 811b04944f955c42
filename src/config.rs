//! Settings: embedded defaults → optional TOML file → `DATABASE_URL` → `MLOPS_*` env vars
//! (nested keys with `__`, e.g. `MLOPS_JOBS__WORKERS=4`) → command-line flags. Everything is
//! validated at start and a bad value fails naming its key.

mod notifications;
mod sources;

pub use notifications::{EmailChannel, NotificationSettings, SmtpSecurity, SnsChannel, WebhookChannel};
pub use sources::{BucketS3, BucketSource, ConfigSourceSettings, GitSource};

use crate::auth::Role;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Holds the SQLite file and the local artifact store unless configured elsewhere.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default `sqlite://{data_dir}/mlops.db`.
    pub database_url: Option<String>,
    /// Run without authentication (every caller is an admin). For a laptop only: set by the
    /// `--dev` flag alone, never from a file or the environment, where it could be left on.
    #[serde(skip)]
    pub dev: bool,
    pub target: TargetKind,
    /// Promotion order, e.g. `["dev", "staging", "prod"]`; none or one means single environment.
    pub environments: Vec<String>,
    /// The solution's `UseModelRegistry`: realtime/batch requests name a model package instead
    /// of an image and artifact.
    pub use_model_registry: bool,
    pub http: HttpSettings,
    pub assets: AssetSettings,
    pub jobs: JobSettings,
    pub capture: CaptureSettings,
    pub serving: ServingSettings,
    pub training: TrainingSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub notifications: NotificationSettings,
    pub config_sources: ConfigSourceSettings,
    pub retention: RetentionSettings,
    /// Settings of the aws target; read only when `target = "aws"`.
    pub aws: AwsSettings,
}

/// How long records that grow with use are kept (docs/OPERATIONS.md); `0s` keeps them forever.
/// Unfinished work and what the system still reads are never deleted (`store/retention.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Finished monitor executions (each monitor's ten newest stay).
    #[serde(with = "duration")]
    pub monitor_executions: Duration,
    /// Notifications whose deliveries have all ended, with their delivery logs.
    #[serde(with = "duration")]
    pub notifications: Duration,
    /// Config revisions (each source's newest and the one in force stay).
    #[serde(with = "duration")]
    pub config_revisions: Duration,
    /// How often each worker process sweeps.
    #[serde(with = "duration")]
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            monitor_executions: Duration::from_secs(90 * DAY),
            notifications: Duration::from_secs(90 * DAY),
            config_revisions: Duration::from_secs(180 * DAY),
            interval: Duration::from_secs(60 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// This process serves models itself.
    Local,
    /// CloudFormation stacks that create CodePipelines that deploy SageMaker resources.
    Aws,
}

/// The aws target (docs/AWS.md §1). Credentials come from the standard AWS chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    pub region: String,
    /// An emulator or test front instead of the real endpoints (e.g. moto on loopback).
    pub endpoint_url: Option<String>,
    /// Versioned bucket holding `template.zip` files and the assets (model artifacts, data).
    pub assets_bucket: String,
    pub blueprint_bucket: String,
    /// Role CloudFormation assumes for every stack the orchestrator creates.
    pub cloudformation_role_arn: String,
    pub notification_topic_arn: String,
    pub ecr_repo_arn: String,
    pub ecr_repo_name: String,
    /// An image with our analyzer (`mlops analyze`; e.g. this server's own image) that
    /// data- and model-quality baselines and monitoring schedules run instead of SageMaker's prebuilt
    /// Model Monitor analyzer, which is closed to new customers (docs/MONITORING.md).
    pub monitor_image_uri: Option<String>,
    /// How long a worker waits between two looks at something slow (a stack, a pipeline, a job).
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How long `/provisionpipeline` waits for the wrapper stack's StackId to answer with it.
    #[serde(with = "duration")]
    pub stack_id_wait: Duration,
    /// How often the CodePipelines of active pipelines are checked for releases started outside
    /// the orchestrator (the console's "Release change"), whose post-deploy jobs then run.
    #[serde(with = "duration")]
    pub release_watch_interval: Duration,
    /// One entry per configured environment when there are several (multi-account).
    pub environments: std::collections::BTreeMap<String, AwsEnvironmentSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsEnvironmentSettings {
    /// Twelve digits. From an environment variable it arrives as a number (figment parses
    /// `MLOPS_AWS__ENVIRONMENTS__PROD__ACCOUNT_ID=012345678901` as one), so both are taken.
    #[serde(deserialize_with = "account_id")]
    pub account_id: String,
    /// CloudFormation deployment role in that account.
    pub deploy_role_arn: String,
    /// Role CodePipeline (and the worker, for describes and deletes) assumes in that account.
    pub action_role_arn: String,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint_url: None,
            assets_bucket: String::new(),
            blueprint_bucket: String::new(),
            cloudformation_role_arn: String::new(),
            notification_topic_arn: String::new(),
            ecr_repo_arn: String::new(),
            ecr_repo_name: String::new(),
            monitor_image_uri: None,
            poll_interval: Duration::from_secs(15),
            stack_id_wait: Duration::from_secs(20),
            release_watch_interval: Duration::from_secs(60),
            environments: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest JSON request body accepted by the control-plane API.
    pub body_limit_bytes: usize,
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// How long a graceful shutdown may take before in-flight work is abandoned.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Open client connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// From a request's first byte to its complete headers; a slower client is dropped.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// A kept-alive connection without requests is closed after this. Keep it above the idle
    /// timeout of a load balancer in front (ALB: 60 s).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// A path prefix also accepted before every route (e.g. `/prod`), so clients of the
    /// solution's API Gateway keep its stage in their URLs: `/prod/provisionpipeline`.
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetSettings {
    /// Bucket (folder under the object root) that holds asset keys such as model artifacts.
    pub bucket: String,
    /// Object store root; default `{data_dir}/objects`.
    pub root: Option<PathBuf>,
    pub max_upload_bytes: u64,
    /// The local target's object root in an S3 bucket (or any S3-compatible store) instead of
    /// a directory, so that several replicas serve the same endpoints and write capture to the
    /// same place. Excludes `root`; needs a build with the aws feature.
    pub s3: Option<S3Root>,
}

/// One S3 bucket holding the object root: every bucket name of a request (`my-bucket/capture`)
/// is a folder in it, as under a local root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Root {
    pub bucket: String,
    /// A folder of the bucket to hold the root, e.g. `mlops/`; empty: the whole bucket.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// An S3-compatible endpoint (MinIO, Ceph, an emulator); path-style requests are used.
    pub endpoint_url: Option<String>,
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Jobs run at once by this process; 0 runs none (an API-only replica).
    pub workers: usize,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    #[serde(with = "duration")]
    pub lease: Duration,
    #[serde(with = "duration")]
    pub heartbeat: Duration,
    pub max_attempts: i32,
    #[serde(with = "duration")]
    pub retry_base: Duration,
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// How long a job may keep waiting on its target (a stack, a training job) before the
    /// pipeline fails; longer than the longest SageMaker job (AutoML: 30 days).
    #[serde(with = "duration")]
    pub max_wait: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSettings {
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    pub max_buffered_records: usize,
    /// Bytes of capture records queued and buffered at most; records that do not fit are
    /// dropped and counted per endpoint (never waited for).
    pub max_buffered_bytes: usize,
    /// Share of invocations captured, 0 to 100 (the solution deploys 100).
    pub sampling_percentage: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServingSettings {
    /// SageMaker's limit for one invocation payload is 6 MB.
    pub max_request_bytes: usize,
    /// How often a replica re-checks the database for a redeployed endpoint, and how long it
    /// remembers a name the database lacks.
    #[serde(with = "duration")]
    pub endpoint_refresh: Duration,
    /// Largest model file (after decompression) the local target loads.
    pub max_model_bytes: u64,
    /// Bounds on what a model may declare (classes, targets, trees, nodes, features) and on the
    /// memory its decoding may take.
    pub model_limits: crate::serving::xgboost::ModelLimits,
    /// Invocations of one endpoint running at once on a replica; more are answered 429.
    pub max_concurrent_invocations: usize,
    /// Models kept loaded on a replica at most; the least recently used goes first.
    pub max_loaded_models: usize,
    /// Memory of the models kept loaded (their trees), at most; the least recently used goes
    /// first (the model just loaded always stays).
    pub max_loaded_model_bytes: u64,
    /// How long an invocation waits for its model to load before it is answered 503 with
    /// `Retry-After` (the load goes on in the background).
    #[serde(with = "duration")]
    pub model_load_wait: Duration,
    /// The Python that makes custom algorithms' virtual environments (`byom_image_builder`).
    pub python: String,
    /// How long a custom algorithm may take to answer its first `GET /ping` after it starts.
    #[serde(with = "duration")]
    pub custom_start_timeout: Duration,
    /// How long making a Python environment may take (a custom algorithm's venv and its
    /// `requirements.txt`, the trainer's own): a build that runs past it is killed and fails.
    #[serde(with = "duration")]
    pub install_timeout: Duration,
    /// The CPUs custom algorithms' processes run on (`"1"`, `"0-3"`, `"0,2"`), as a container's
    /// `--cpuset-cpus` would; unset, wherever the kernel puts them (src/serving/cpus.rs: when
    /// to set it).
    pub algorithm_cpus: Option<crate::serving::cpus::CpuList>,
    /// Keep each runtime worker thread on a CPU of its own when the process may run on exactly
    /// as many CPUs as it has workers and `algorithm_cpus` is unset (src/server/worker_cpus.rs).
    pub pin_workers: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub tokens: Vec<TokenSettings>,
    /// AWS access keys whose SigV4-signed requests are accepted, as API Gateway's IAM
    /// authorisation takes them (the solution's signed clients).
    pub access_keys: Vec<AccessKeySettings>,
}

/// One AWS access key. Its secret comes from an environment variable or a file, never from the
/// config file itself, and is never logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeySettings {
    pub name: String,
    pub role: Role,
    pub access_key_id: String,
    /// The environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// A file holding the secret access key (surrounding whitespace ignored).
    pub secret_access_key_file: Option<PathBuf>,
}

/// One API token. Give either `token` (hashed at load and dropped) or `sha256` (hex of the
/// SHA-256 of the token, so the secret itself never sits in a config file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub name: String,
    pub role: Role,
    pub token: Option<String>,
    pub sha256: Option<String>,
}

impl AuthSettings {
    /// Replaces every plaintext `token` by its `sha256` (the secret is dropped), refusing
    /// tokens shorter than [`MIN_TOKEN_CHARS`] and digests that are not 64 hex digits.
    pub fn hash_tokens(&mut self) -> Result<(), ConfigError> {
        for (i, entry) in self.tokens.iter_mut().enumerate() {
            let key = |field: &str| format!("auth.tokens[{i}].{field}");
            match (entry.token.take(), &entry.sha256) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(key("token"), "give token or sha256, not both"));
                }
                (Some(token), None) => {
                    if token.chars().count() < MIN_TOKEN_CHARS {
                        return Err(ConfigError::new(
                            key("token"),
                            format!("{:?}'s token is shorter than {MIN_TOKEN_CHARS} characters", entry.name),
                        ));
                    }
                    entry.sha256 = Some(hex::encode(crate::auth::digest(&token)));
                }
                (None, Some(digest)) => {
                    if digest.len() != 64 || hex::decode(digest).is_err() {
                        return Err(ConfigError::new(key("sha256"), "must be 64 hex digits (a SHA-256)"));
                    }
                }
                (None, None) => return Err(ConfigError::new(key("token"), "give token or sha256")),
            }
        }
        Ok(())
    }

    /// The access keys with their secrets read (from the environment or files), by key id.
    pub fn access_keys(&self) -> Result<Vec<(String, crate::auth::sigv4::AccessKey)>, ConfigError> {
        let mut keys = Vec::new();
        for (i, k) in self.access_keys.iter().enumerate() {
            let key = |field: &str| format!("auth.access_keys[{i}].{field}");
            if k.name.trim().is_empty() {
                return Err(ConfigError::new(key("name"), "must not be empty"));
            }
            let id_ok = (16..=128).contains(&k.access_key_id.len())
                && k.access_key_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !id_ok {
                return Err(ConfigError::new(
                    key("access_key_id"),
                    "must be an AWS access key id: 16 to 128 upper-case letters and digits",
                ));
            }
            if self.access_keys[..i].iter().any(|other| other.access_key_id == k.access_key_id) {
                return Err(ConfigError::new(key("access_key_id"), "is configured twice"));
            }
            let secret = match (&k.secret_access_key_env, &k.secret_access_key_file) {
                (Some(var), None) => std::env::var(var).map_err(|_| {
                    ConfigError::new(key("secret_access_key_env"), format!("the environment has no {var}"))
                })?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new(key("secret_access_key_file"), format!("{}: {e}", path.display())))?,
                _ => {
                    return Err(ConfigError::new(
                        key("secret_access_key_env"),
                        "give exactly one of secret_access_key_env or secret_access_key_file",
                    ));
                }
            };
            let secret = secret.trim().to_string();
            if secret.len() < 16 {
                return Err(ConfigError::new(key("secret_access_key_env"), "the secret is shorter than 16 characters"));
            }
            let principal = crate::auth::Principal { name: k.name.clone(), role: k.role };
            keys.push((k.access_key_id.clone(), crate::auth::sigv4::AccessKey { secret, principal }));
        }
        Ok(keys)
    }

    /// Each configured token's digest and who it belongs to.
    pub fn principals(&self) -> Vec<([u8; 32], crate::auth::Principal)> {
        self.tokens
            .iter()
            .filter_map(|t| {
                let digest = match (&t.token, &t.sha256) {
                    (Some(token), _) => crate::auth::digest(token),
                    (None, Some(hex_digest)) => hex::decode(hex_digest).ok()?.try_into().ok()?,
                    (None, None) => return None,
                };
                Some((digest, crate::auth::Principal { name: t.name.clone(), role: t.role }))
            })
            .collect()
    }
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url_password))
            .field("dev", &self.dev)
            .field("target", &self.target)
            .field("environments", &self.environments)
            .field("use_model_registry", &self.use_model_registry)
            .field("http", &self.http)
            .field("assets", &self.assets)
            .field("jobs", &self.jobs)
            .field("capture", &self.capture)
            .field("serving", &self.serving)
            .field("training", &self.training)
            .field("auth", &self.auth)
            .field("log", &self.log)
            .field("metrics", &self.metrics)
            .field("notifications", &self.notifications)
            .field("config_sources", &self.config_sources)
            .field("aws", &self.aws)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:<redacted>{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

/// Training on the local target (`model_training_builtin`, `model_autopilot_training`:
/// src/targets/local/training.rs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSettings {
    /// A Python whose environment has the trainer's requirements
    /// (src/targets/local/trainers/requirements.txt); none: the server makes a virtual environment
    /// of its own with `serving.python` on first use and installs them from the package registry.
    pub python: Option<String>,
}

/// Prometheus metrics (src/metrics.rs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the metrics listener (`GET /metrics`, no authentication: keep it on a private
    /// network or loopback); none = no listener.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// tracing filter directives, e.g. `info,mlops=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("mlops-data"),
            database_url: None,
            dev: false,
            target: TargetKind::Local,
            environments: Vec::new(),
            use_model_registry: false,
            http: HttpSettings::default(),
            assets: AssetSettings::default(),
            jobs: JobSettings::default(),
            capture: CaptureSettings::default(),
            serving: ServingSettings::default(),
            auth: AuthSettings::default(),
            log: LogSettings::default(),
            training: TrainingSettings::default(),
            metrics: MetricsSettings::default(),
            notifications: NotificationSettings::default(),
            config_sources: ConfigSourceSettings::default(),
            retention: RetentionSettings::default(),
            aws: AwsSettings::default(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(25),
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            path_prefix: None,
        }
    }
}

impl Default for AssetSettings {
    fn default() -> Self {
        Self { bucket: "assets".into(), root: None, max_upload_bytes: 2 * 1024 * 1024 * 1024, s3: None }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            max_wait: Duration::from_secs(32 * 24 * 3600),
        }
    }
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(5),
            max_buffered_records: 1000,
            max_buffered_bytes: 64 * 1024 * 1024,
            sampling_percentage: 100.0,
        }
    }
}

impl Default for ServingSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 6 * 1024 * 1024,
            endpoint_refresh: Duration::from_secs(2),
            max_model_bytes: 1024 * 1024 * 1024,
            model_limits: Default::default(),
            max_concurrent_invocations: 256,
            max_loaded_models: 64,
            max_loaded_model_bytes: 2 * 1024 * 1024 * 1024,
            model_load_wait: Duration::from_secs(2),
            python: "python3".into(),
            custom_start_timeout: Duration::from_secs(120),
            install_timeout: Duration::from_secs(30 * 60),
            algorithm_cpus: None,
            pin_workers: true,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info".into() }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Flags given on the command line; they override every other layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--dev`: the only way to turn authentication off.
    #[serde(skip)]
    pub dev: bool,
}

/// Shortest plaintext token accepted: 32 characters of a random secret are beyond guessing.
pub const MIN_TOKEN_CHARS: usize = 32;

impl Settings {
    /// Loads the layers from the process environment.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::new("config", format!("file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            .merge(Env::prefixed("MLOPS_").split("__").ignore(&["server", "token", "config"]))
            .merge(Serialized::defaults(overrides));
        if figment.contains("dev") {
            return Err(ConfigError::new(
                "dev",
                "authentication can be turned off only with the --dev flag of `mlops serve`, not from a file or MLOPS_DEV",
            ));
        }
        let mut settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            ConfigError::new(if key.is_empty() { "config".into() } else { key }, e.kind.to_string())
        })?;
        settings.dev = overrides.dev;
        settings.auth.hash_tokens()?;
        settings.auth.access_keys()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("mlops.db").display()),
        }
    }

    pub fn objects_root(&self) -> PathBuf {
        self.assets.root.clone().unwrap_or_else(|| self.data_dir.join("objects"))
    }

    /// Environment names in promotion order; a single-environment server has one, `default`.
    pub fn environment_names(&self) -> Vec<String> {
        if self.environments.is_empty() { vec!["default".to_string()] } else { self.environments.clone() }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(prefix) = &self.http.path_prefix {
            let segment = regex::Regex::new("^(/[A-Za-z0-9._~-]+)+$").expect("valid regex");
            if !segment.is_match(prefix) || prefix == "/v1" {
                return Err(ConfigError::new(
                    "http.path_prefix",
                    format!("{prefix:?} must be path segments such as \"/prod\" (no trailing '/', not \"/v1\")"),
                ));
            }
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::new("database_url", "must start with postgres:// or sqlite://"));
        }
        let env_name = regex::Regex::new("^[a-z][a-z0-9-]{0,31}$").expect("valid regex");
        for (i, env) in self.environments.iter().enumerate() {
            if !env_name.is_match(env) {
                return Err(ConfigError::new(
                    format!("environments[{i}]"),
                    format!("{env:?} is not a valid environment name (lower-case letters, digits, '-')"),
                ));
            }
            if self.environments[..i].contains(env) {
                return Err(ConfigError::new(format!("environments[{i}]"), format!("{env:?} is listed twice")));
            }
        }
        if !bucket_name_ok(&self.assets.bucket) {
            return Err(ConfigError::new("assets.bucket", "must be a valid bucket name (3-63 of a-z 0-9 . -)"));
        }
        if let Some(s3) = &self.assets.s3 {
            if self.assets.root.is_some() {
                return Err(ConfigError::new("assets.s3", "set either assets.root or assets.s3, not both"));
            }
            if !cfg!(feature = "aws") {
                return Err(ConfigError::new(
                    "assets.s3",
                    "this build has no S3 support (built without the aws feature)",
                ));
            }
            if !bucket_name_ok(&s3.bucket) {
                return Err(ConfigError::new("assets.s3.bucket", "must be a valid bucket name (3-63 of a-z 0-9 . -)"));
            }
            if s3.prefix.starts_with('/')
                || s3.prefix.contains("//")
                || s3.prefix.split('/').any(|p| p == "." || p == "..")
            {
                return Err(ConfigError::new("assets.s3.prefix", "must be a relative key prefix such as `mlops/`"));
            }
        }
        if self.jobs.max_attempts < 1 {
            return Err(ConfigError::new("jobs.max_attempts", "must be at least 1"));
        }
        if self.jobs.heartbeat.is_zero() || self.jobs.heartbeat * 2 > self.jobs.lease {
            return Err(ConfigError::new("jobs.heartbeat", "must be non-zero and at most half of jobs.lease"));
        }
        if self.retention.interval.is_zero() {
            return Err(ConfigError::new("retention.interval", "must be non-zero"));
        }
        if self.jobs.poll_interval.is_zero() {
            return Err(ConfigError::new("jobs.poll_interval", "must be non-zero"));
        }
        if !(0.0..=100.0).contains(&self.capture.sampling_percentage) {
            return Err(ConfigError::new("capture.sampling_percentage", "must be between 0 and 100"));
        }
        for (key, zero) in [
            ("capture.max_buffered_bytes", self.capture.max_buffered_bytes == 0),
            ("serving.max_concurrent_invocations", self.serving.max_concurrent_invocations == 0),
            ("serving.max_loaded_models", self.serving.max_loaded_models == 0),
            ("serving.max_loaded_model_bytes", self.serving.max_loaded_model_bytes == 0),
            ("http.max_connections", self.http.max_connections == 0),
            ("http.header_read_timeout", self.http.header_read_timeout.is_zero()),
            ("http.idle_timeout", self.http.idle_timeout.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::new(key, "must be non-zero"));
            }
        }
        if let Some(cpus) = &self.serving.algorithm_cpus {
            cpus.check_allowed().map_err(|e| ConfigError::new("serving.algorithm_cpus", e))?;
        }
        if self.jobs.max_wait.is_zero() {
            return Err(ConfigError::new("jobs.max_wait", "must be non-zero"));
        }
        if self.target == TargetKind::Aws {
            self.validate_aws()?;
        }
        if self.capture.flush_interval.is_zero() {
            return Err(ConfigError::new("capture.flush_interval", "must be non-zero"));
        }
        self.notifications.validate()?;
        self.config_sources.validate()?;
        if self.target == TargetKind::Aws
            && let Some(i) = self.config_sources.buckets.iter().position(|b| b.s3.is_none())
        {
            // The aws target's object store is the assets bucket itself, not a root of buckets.
            return Err(ConfigError::new(
                format!("config_sources.buckets[{i}].s3"),
                "on the aws target a config bucket is an S3 bucket: set s3 = { region = \"…\" }",
            ));
        }
        for (i, token) in self.auth.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if token.name.trim().is_empty() {
                return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
            }
            match (&token.token, &token.sha256) {
                (Some(t), None) if t.len() >= 16 => {}
                (Some(_), None) => {
                    return Err(ConfigError::new(format!("{key}.token"), "must be at least 16 characters"));
                }
                (None, Some(h)) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {}
                (None, Some(_)) => {
                    return Err(ConfigError::new(format!("{key}.sha256"), "must be 64 hex characters"));
                }
                _ => return Err(ConfigError::new(key, "give exactly one of token or sha256")),
            }
        }
        Ok(())
    }

    fn validate_aws(&self) -> Result<(), ConfigError> {
        if !cfg!(feature = "aws") {
            return Err(ConfigError::new(
                "target",
                "this build has no aws target (it was built without the `aws` feature)",
            ));
        }
        let aws = &self.aws;
        let required = [
            ("aws.region", &aws.region),
            ("aws.assets_bucket", &aws.assets_bucket),
            ("aws.blueprint_bucket", &aws.blueprint_bucket),
            ("aws.cloudformation_role_arn", &aws.cloudformation_role_arn),
            ("aws.notification_topic_arn", &aws.notification_topic_arn),
        ];
        for (key, value) in required {
            if value.trim().is_empty() {
                return Err(ConfigError::new(key, "is required when target = \"aws\""));
            }
        }
        if let Some(image) = &aws.monitor_image_uri
            && (image.is_empty() || image.len() > 255 || image.chars().any(char::is_whitespace))
        {
            return Err(ConfigError::new(
                "aws.monitor_image_uri",
                format!(
                    "{image:?} is not an image URI (1-255 characters, no spaces), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-orchestrator:1.0"
                ),
            ));
        }
        let arn = regex::Regex::new(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:.+$").expect("valid regex");
        for (key, value) in [
            ("aws.cloudformation_role_arn", &aws.cloudformation_role_arn),
            ("aws.notification_topic_arn", &aws.notification_topic_arn),
        ] {
            if !arn.is_match(value) {
                return Err(ConfigError::new(key, format!("{value:?} is not an ARN")));
            }
        }
        for (key, bucket) in
            [("aws.assets_bucket", &aws.assets_bucket), ("aws.blueprint_bucket", &aws.blueprint_bucket)]
        {
            if !bucket_name_ok(bucket) {
                return Err(ConfigError::new(key, "must be a valid bucket name (3-63 of a-z 0-9 . -)"));
            }
        }
        if aws.poll_interval.is_zero() {
            return Err(ConfigError::new("aws.poll_interval", "must be non-zero"));
        }
        if aws.release_watch_interval.is_zero() {
            return Err(ConfigError::new("aws.release_watch_interval", "must be non-zero"));
        }
        if aws.stack_id_wait >= self.http.request_timeout {
            return Err(ConfigError::new("aws.stack_id_wait", "must be shorter than http.request_timeout"));
        }
        match self.environments.len() {
            0 | 1 => {}
            // The multi-account pipeline has three deploy stages, as the solution's does.
            3 => {
                for env in &self.environments {
                    let key = format!("aws.environments.{env}");
                    let Some(e) = aws.environments.get(env) else {
                        return Err(ConfigError::new(key, "is required: account_id, deploy_role_arn, action_role_arn"));
                    };
                    if e.account_id.len() != 12 || !e.account_id.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ConfigError::new(format!("{key}.account_id"), "must be 12 digits"));
                    }
                    for (field, value) in
                        [("deploy_role_arn", &e.deploy_role_arn), ("action_role_arn", &e.action_role_arn)]
                    {
                        if !arn.is_match(value) {
                            return Err(ConfigError::new(format!("{key}.{field}"), format!("{value:?} is not an ARN")));
                        }
                    }
                }
                if let Some(extra) = aws.environments.keys().find(|k| !self.environments.contains(k)) {
                    return Err(ConfigError::new(format!("aws.environments.{extra}"), "is not one of `environments`"));
                }
            }
            n => {
                return Err(ConfigError::new(
                    "environments",
                    format!(
                        "the aws target deploys to one environment or to three (dev, staging, prod); {n} are configured"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A server must either authenticate or say loudly that it does not (`--dev`), and `--dev`
    /// only on a loopback address with no tokens configured (tokens mean someone meant to
    /// authenticate). Checked by the processes that serve or work, not by `migrate`.
    pub fn require_auth(&self) -> Result<(), ConfigError> {
        if self.dev && !self.listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "listen",
                format!("--dev turns authentication off and listens only on a loopback address, not {}", self.listen),
            ));
        }
        if self.dev && !(self.auth.tokens.is_empty() && self.auth.access_keys.is_empty()) {
            return Err(ConfigError::new(
                "auth.tokens",
                "--dev turns authentication off, but API tokens or access keys are configured: drop --dev or them",
            ));
        }
        if !self.dev && self.auth.tokens.is_empty() && self.auth.access_keys.is_empty() {
            return Err(ConfigError::new(
                "auth.tokens",
                "no API tokens configured: add [[auth.tokens]] (or [[auth.access_keys]]) entries, or run with --dev (no authentication)",
            ));
        }
        Ok(())
    }
}

fn bucket_name_ok(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// Durations as human-readable strings (`30s`, `5m`, `1h 30m`).
/// An AWS account id given as text, or as a number whose leading zeros were lost on the way.
fn account_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(text) => text,
        Id::Number(n) => format!("{n:012}"),
    })
}

mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like \"30s\" or \"5m\": {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        Settings::load(None, overrides)
    }

    // figment's Jail returns its own large error type; not ours to shrink.
    #[test]
    #[allow(clippy::result_large_err)]
    fn defaults_need_dev_or_tokens() {
        Jail::expect_with(|_| {
            let err = load(&Overrides::default()).unwrap().require_auth().unwrap_err();
            assert_eq!(err.key, "auth.tokens");
            let s = load(&Overrides { dev: true, ..Default::default() }).unwrap();
            assert!(s.dev);
            s.require_auth().unwrap();
            assert_eq!(s.database_url(), "sqlite://mlops-data/mlops.db");
            assert_eq!(s.environment_names(), vec!["default"]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn algorithm_cpus_take_a_list_or_a_number_and_bad_ones_name_the_key() {
        Jail::expect_with(|jail| {
            let dev = Overrides { dev: true, ..Default::default() };
            assert_eq!(load(&dev).unwrap().serving.algorithm_cpus, None);
            // A bare number comes from the environment as a number.
            jail.set_env("MLOPS_SERVING__ALGORITHM_CPUS", "0");
            assert_eq!(load(&dev).unwrap().serving.algorithm_cpus.unwrap().cpus(), [0]);
            jail.create_file("mlops.toml", "[serving]\nalgorithm_cpus = \"0,0-0\"\n")?;
            jail.clear_env();
            let s = Settings::load(Some(Path::new("mlops.toml")), &dev).unwrap();
            assert_eq!(s.serving.algorithm_cpus.unwrap().to_string(), "0");
            for (value, says) in [("1-0", "runs backwards"), ("zero", "is not a CPU number"), ("1023", "may run on")] {
                jail.set_env("MLOPS_SERVING__ALGORITHM_CPUS", value);
                let err = load(&dev).unwrap_err();
                assert_eq!(err.key, "serving.algorithm_cpus", "{err}");
                assert!(err.to_string().contains(says), "{value}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn layers_apply_in_order_and_bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "mlops.toml",
                r#"
                listen = "127.0.0.1:9000"
                environments = ["dev", "staging", "prod"]
                [jobs]
                workers = 2
                [[auth.tokens]]
                name = "ops"
                role = "operator"
                token = "0123456789abcdef0123456789abcdef"
                "#,
            )?;
            jail.set_env("MLOPS_JOBS__WORKERS", "7");
            jail.set_env("DATABASE_URL", "postgres://localhost/x");
            let s = Settings::load(Some(Path::new("mlops.toml")), &Overrides::default()).unwrap();
            assert_eq!(s.listen.port(), 9000);
            assert_eq!(s.jobs.workers, 7);
            assert_eq!(s.environments.len(), 3);
            assert_eq!(s.database_url(), "postgres://localhost/x");
            let s = Settings::load(
                Some(Path::new("mlops.toml")),
                &Overrides { listen: Some("127.0.0.1:1".parse().unwrap()), ..Default::default() },
            )
            .unwrap();
            assert_eq!(s.listen.port(), 1);

            jail.set_env("MLOPS_JOBS__LEASE", "soon");
            let err = Settings::load(Some(Path::new("mlops.toml")), &Overrides::default()).unwrap_err();
            assert_eq!(err.key, "jobs.lease", "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn an_s3_object_root_comes_from_the_environment_and_excludes_a_directory() {
        Jail::expect_with(|jail| {
            jail.set_env("MLOPS_ASSETS__S3__BUCKET", "shared-objects");
            jail.set_env("MLOPS_ASSETS__S3__ENDPOINT_URL", "http://127.0.0.1:9000");
            let loaded = load(&Overrides::default());
            if cfg!(feature = "aws") {
                let s3 = loaded.unwrap().assets.s3.unwrap();
                assert_eq!(
                    (s3.bucket.as_str(), s3.prefix.as_str(), s3.region.as_str()),
                    ("shared-objects", "", "us-east-1")
                );
                assert_eq!(s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
            } else {
                assert_eq!(loaded.unwrap_err().key, "assets.s3", "no S3 in a build without the aws feature");
                return Ok(());
            }
            jail.set_env("MLOPS_ASSETS__S3__PREFIX", "../up");
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "assets.s3.prefix");
            jail.set_env("MLOPS_ASSETS__S3__PREFIX", "mlops/");
            jail.set_env("MLOPS_ASSETS__ROOT", "/srv/objects");
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "assets.s3");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn semantic_checks_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("MLOPS_ENVIRONMENTS", "[dev, Prod]");
            let err = load(&Overrides::default()).unwrap_err();
            assert_eq!(err.key, "environments[1]");
            jail.set_env("MLOPS_ENVIRONMENTS", "[dev]");
            jail.set_env("MLOPS_ASSETS__BUCKET", "Bad_Bucket");
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "assets.bucket");
            jail.set_env("MLOPS_ASSETS__BUCKET", "assets");
            jail.set_env("MLOPS_UNKNOWN", "1");
            let err = load(&Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("unknown"), "{err}");
            Ok(())
        });
    }

    /// Channels and config sources: each bad value is refused naming its key, and secrets stay
    /// out of the settings' Debug output.
    #[test]
    #[allow(clippy::result_large_err)]
    fn notification_channels_and_config_sources_are_checked() {
        Jail::expect_with(|jail| {
            let token =
                "[[auth.tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"0123456789abcdef0123456789abcdef\"\n";
            let key = |jail: &mut Jail, toml: &str| {
                jail.create_file("mlops.toml", &format!("{token}{toml}")).unwrap();
                Settings::load(Some(Path::new("mlops.toml")), &Overrides::default()).map(|_| ()).map_err(|e| e.key)
            };
            let hook = "[[notifications.webhooks]]\nname = \"ops\"\nurl = \"https://h.example.com/x\"\n";
            assert_eq!(key(jail, hook), Err("notifications.webhooks[0].secret".into()), "a webhook must be signed");
            let signed = format!("{hook}secret = \"whsec_c2VjcmV0\"\n");
            assert_eq!(key(jail, &signed), Ok(()));
            let filtered = format!("{signed}events = [\"pipeline.exploded\"]\n");
            assert_eq!(key(jail, &filtered), Err("notifications.webhooks[0].events".into()));
            let ftp = signed.replace("https://h.example.com/x", "ftp://h.example.com");
            assert_eq!(key(jail, &ftp), Err("notifications.webhooks[0].url".into()));
            let mail =
                "[[notifications.email]]\nname = \"ops\"\nsmtp_host = \"smtp\"\nfrom = \"a@b.c\"\nto = [\"nobody\"]\n";
            assert_eq!(
                key(jail, &format!("{signed}{mail}")),
                Err("notifications.email[0].name".into()),
                "two channels named ops"
            );
            assert_eq!(key(jail, &mail.replace("\"ops\"", "\"mail\"")), Err("notifications.email[0].to".into()));
            let git = "[[config_sources.git]]\nname = \"repo\"\nurl = \"/srv/repo.git\"\n";
            assert_eq!(key(jail, git), Ok(()));
            assert_eq!(
                key(jail, &format!("{git}branch = \"--upload-pack=x\"\n")),
                Err("config_sources.git[0].branch".into())
            );
            assert_eq!(
                key(jail, &format!("{git}path = \"../etc/passwd\"\n")),
                Err("config_sources.git[0].path".into())
            );
            let bucket = "[[config_sources.buckets]]\nname = \"repo\"\nbucket = \"mlops-config\"\n";
            assert_eq!(key(jail, &format!("{git}{bucket}")), Err("config_sources.buckets[0].name".into()));

            jail.create_file("mlops.toml", &format!("{token}{signed}"))?;
            let settings = Settings::load(Some(Path::new("mlops.toml")), &Overrides::default()).unwrap();
            assert!(!format!("{settings:?}").contains("whsec_"), "the webhook secret is not logged");
            Ok(())
        });
    }

    #[cfg(feature = "aws")]
    #[test]
    #[allow(clippy::result_large_err)]
    fn aws_settings_are_checked_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("MLOPS_TARGET", "aws");
            let key = || load(&Overrides::default()).unwrap_err().key;
            assert_eq!(key(), "aws.region");
            jail.set_env("MLOPS_AWS__REGION", "us-east-1");
            assert_eq!(key(), "aws.assets_bucket");
            jail.set_env("MLOPS_AWS__ASSETS_BUCKET", "mlops-assets");
            jail.set_env("MLOPS_AWS__BLUEPRINT_BUCKET", "mlops-blueprints");
            jail.set_env("MLOPS_AWS__CLOUDFORMATION_ROLE_ARN", "mlops-cloudformation");
            jail.set_env("MLOPS_AWS__NOTIFICATION_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:mlops");
            assert_eq!(key(), "aws.cloudformation_role_arn", "not an ARN");
            jail.set_env("MLOPS_AWS__CLOUDFORMATION_ROLE_ARN", "arn:aws:iam::123456789012:role/mlops-cloudformation");
            jail.set_env("MLOPS_AWS__BLUEPRINT_BUCKET", "Blueprints");
            assert_eq!(key(), "aws.blueprint_bucket");
            jail.set_env("MLOPS_AWS__BLUEPRINT_BUCKET", "mlops-blueprints");
            jail.set_env("MLOPS_AWS__STACK_ID_WAIT", "10m");
            assert_eq!(key(), "aws.stack_id_wait", "longer than a request may take");
            jail.set_env("MLOPS_AWS__STACK_ID_WAIT", "5s");
            load(&Overrides::default()).expect("a complete single-account configuration");

            jail.set_env("MLOPS_ENVIRONMENTS", "[dev, prod]");
            assert_eq!(key(), "environments", "one environment or three");
            jail.set_env("MLOPS_ENVIRONMENTS", "[dev, staging, prod]");
            assert_eq!(key(), "aws.environments.dev");
            for (env, account) in [("DEV", "111111111111"), ("STAGING", "222222222222"), ("PROD", "33x3")] {
                jail.set_env(format!("MLOPS_AWS__ENVIRONMENTS__{env}__ACCOUNT_ID"), account);
                let role = format!("arn:aws:iam::{account}:role/mlops");
                jail.set_env(format!("MLOPS_AWS__ENVIRONMENTS__{env}__DEPLOY_ROLE_ARN"), &role);
                jail.set_env(format!("MLOPS_AWS__ENVIRONMENTS__{env}__ACTION_ROLE_ARN"), &role);
            }
            assert_eq!(key(), "aws.environments.prod.account_id");
            jail.set_env("MLOPS_AWS__ENVIRONMENTS__PROD__ACCOUNT_ID", "012345678901");
            jail.set_env("MLOPS_AWS__ENVIRONMENTS__PROD__DEPLOY_ROLE_ARN", "arn:aws:iam::012345678901:role/mlops");
            jail.set_env("MLOPS_AWS__ENVIRONMENTS__PROD__ACTION_ROLE_ARN", "arn:aws:iam::012345678901:role/mlops");
            let s = load(&Overrides::default()).expect("a complete three-account configuration");
            assert_eq!(s.aws.environments["prod"].account_id, "012345678901", "leading zero kept");
            assert_eq!(s.aws.environments["dev"].account_id, "111111111111");
            jail.set_env("MLOPS_JOBS__MAX_WAIT", "0s");
            assert_eq!(key(), "jobs.max_wait");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn authentication_is_off_only_by_the_dev_flag() {
        Jail::expect_with(|jail| {
            jail.set_env("MLOPS_DEV", "true");
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "dev", "not from the environment");
            jail.clear_env();
            jail.create_file("dev.toml", "dev = true")?;
            let err = Settings::load(Some(Path::new("dev.toml")), &Overrides::default()).unwrap_err();
            assert_eq!(err.key, "dev", "not from a file");
            assert!(err.message.contains("--dev flag"), "{err}");

            let dev =
                |listen: &str| Overrides { dev: true, listen: Some(listen.parse().unwrap()), ..Default::default() };
            assert!(load(&dev("127.0.0.1:8080")).unwrap().require_auth().is_ok());
            assert!(load(&dev("[::1]:8080")).unwrap().require_auth().is_ok());
            let err = load(&dev("0.0.0.0:8080")).unwrap().require_auth().unwrap_err();
            assert_eq!(err.key, "listen", "{err}");
            let err = load(&dev("10.1.2.3:8080")).unwrap().require_auth().unwrap_err();
            assert!(err.message.contains("loopback"), "{err}");

            jail.set_env(
                "MLOPS_AUTH__TOKENS",
                r#"[{name="ops", role="operator", token="0123456789abcdef0123456789abcdef"}]"#,
            );
            let err = load(&dev("127.0.0.1:8080")).unwrap().require_auth().unwrap_err();
            assert_eq!(err.key, "auth.tokens", "{err}");
            assert!(load(&Overrides::default()).unwrap().require_auth().is_ok());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn plaintext_tokens_are_hashed_at_load_and_short_ones_refused() {
        Jail::expect_with(|jail| {
            let secret = "0123456789abcdef0123456789abcdef";
            jail.set_env("MLOPS_AUTH__TOKENS", format!(r#"[{{name="ops", role="operator", token="{secret}"}}]"#));
            jail.set_env("DATABASE_URL", "postgres://mlops:hunter2-db-password@db.internal:5432/mlops");
            let s = load(&Overrides::default()).unwrap();
            assert!(s.auth.tokens[0].token.is_none(), "the plaintext is dropped");
            assert_eq!(s.auth.tokens[0].sha256.as_deref(), Some(hex::encode(crate::auth::digest(secret)).as_str()));
            assert_eq!(s.auth.principals()[0].0, crate::auth::digest(secret));
            let debug = format!("{s:?}");
            assert!(!debug.contains(secret) && !debug.contains("hunter2"), "{debug}");
            assert!(debug.contains("postgres://mlops:<redacted>@db.internal:5432/mlops"), "{debug}");

            jail.set_env(
                "MLOPS_AUTH__TOKENS",
                r#"[{name="ops", role="operator", token="0123456789abcdef0123456789abcde"}]"#,
            );
            let err = load(&Overrides::default()).unwrap_err();
            assert_eq!(err.key, "auth.tokens[0].token");
            assert!(err.message.contains("shorter than 32"), "{err}");
            jail.set_env("MLOPS_AUTH__TOKENS", r#"[{name="ops", role="operator", sha256="abc"}]"#);
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "auth.tokens[0].sha256");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn access_keys_read_their_secret_and_the_path_prefix_is_checked() {
        Jail::expect_with(|jail| {
            let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY-config-test";
            jail.set_env("PORTAL_SECRET", secret);
            let key = |extra: &str| {
                format!(r#"[{{name="portal", role="operator", access_key_id="AKIAMLOPSTEST0000001"{extra}}}]"#)
            };
            jail.set_env("MLOPS_AUTH__ACCESS_KEYS", key(r#", secret_access_key_env="PORTAL_SECRET""#));
            let s = load(&Overrides::default()).unwrap();
            s.require_auth().unwrap();
            let keys = s.auth.access_keys().unwrap();
            assert_eq!((keys[0].0.as_str(), keys[0].1.secret.as_str()), ("AKIAMLOPSTEST0000001", secret));
            assert!(!format!("{s:?}{keys:?}").contains(secret), "never in Debug");

            jail.set_env("MLOPS_AUTH__ACCESS_KEYS", key(r#", secret_access_key_env="NO_SUCH_VARIABLE""#));
            let err = load(&Overrides::default()).unwrap_err();
            assert_eq!(err.key, "auth.access_keys[0].secret_access_key_env");
            assert!(err.message.contains("NO_SUCH_VARIABLE"), "{err}");
            jail.set_env("MLOPS_AUTH__ACCESS_KEYS", key(""));
            let err = load(&Overrides::default()).unwrap_err();
            assert!(err.message.contains("exactly one of"), "{err}");
            jail.set_env(
                "MLOPS_AUTH__ACCESS_KEYS",
                r#"[{name="portal", role="operator", access_key_id="akia-lower", secret_access_key_env="PORTAL_SECRET"}]"#,
            );
            assert_eq!(load(&Overrides::default()).unwrap_err().key, "auth.access_keys[0].access_key_id");

            jail.set_env("MLOPS_AUTH__ACCESS_KEYS", key(r#", secret_access_key_env="PORTAL_SECRET""#));
            for (prefix, ok) in
                [("/prod", true), ("/v2/stage", true), ("prod", false), ("/prod/", false), ("/v1", false)]
            {
                jail.set_env("MLOPS_HTTP__PATH_PREFIX", prefix);
                let loaded = load(&Overrides::default());
                assert_eq!(loaded.is_ok(), ok, "{prefix}: {loaded:?}");
                if !ok {
                    assert_eq!(loaded.unwrap_err().key, "http.path_prefix");
                }
            }
            Ok(())
        });
    }

    #[test]
    fn debug_of_a_token_never_shows_it() {
        let t = TokenSettings {
            name: "ops".into(),
            role: Role::Operator,
            token: Some("s3cr3t-value".into()),
            sha256: None,
        };
        assert!(!format!("{t:?}").contains("s3cr3t-value"));
        assert_eq!(redact_url_password("sqlite://data/mlops.db"), "sqlite://data/mlops.db");
        assert_eq!(redact_url_password("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url_password("postgres://u:p@ss@h/d"), "postgres://u:<redacted>@h/d");
    }
}
