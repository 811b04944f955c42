//! `[config_sources]`: where `mlops-config.json` files are watched (issue 14, docs/OPERATIONS.md
//! "Config sources") — Git repositories (the solution's first path) and object-store buckets
//! (its current one), any number of each.

use super::{ConfigError, duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigSourceSettings {
    pub git: Vec<GitSource>,
    pub buckets: Vec<BucketSource>,
    /// Largest config file read.
    pub max_bytes: u64,
    /// Bound on one fetch (a `git fetch`, an object read).
    #[serde(with = "duration")]
    pub fetch_timeout: Duration,
}

impl Default for ConfigSourceSettings {
    fn default() -> Self {
        Self { git: Vec::new(), buckets: Vec::new(), max_bytes: 1024 * 1024, fetch_timeout: Duration::from_secs(120) }
    }
}

/// A Git repository: any URL or path `git fetch` takes (credentials as git finds them: an SSH
/// agent or key, a credential helper).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    pub name: String,
    pub url: String,
    #[serde(default = "main")]
    pub branch: String,
    /// The file's path in the repository.
    #[serde(default = "config_file")]
    pub path: String,
    #[serde(default = "git_poll", with = "duration")]
    pub poll_interval: Duration,
    /// What `POST /v1/git/webhook` checks pushes with: GitHub's HMAC key
    /// (`X-Hub-Signature-256`) or GitLab's token (`X-Gitlab-Token`); or a file holding it.
    pub webhook_secret: Option<String>,
    pub webhook_secret_file: Option<std::path::PathBuf>,
}

/// An object in a bucket of the object store: the local store's folder of that name (or its S3
/// root when `assets.s3` is set), or, with `s3`, that S3 bucket itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSource {
    pub name: String,
    pub bucket: String,
    #[serde(default = "config_file")]
    pub key: String,
    #[serde(default = "bucket_poll", with = "duration")]
    pub poll_interval: Duration,
    pub s3: Option<BucketS3>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketS3 {
    pub region: String,
    /// An emulator instead of AWS (e.g. moto on loopback).
    pub endpoint_url: Option<String>,
}

fn main() -> String {
    "main".into()
}

fn config_file() -> String {
    "mlops-config.json".into()
}

fn git_poll() -> Duration {
    Duration::from_secs(60)
}

fn bucket_poll() -> Duration {
    Duration::from_secs(30)
}

impl ConfigSourceSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = regex::Regex::new("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$").expect("valid regex");
        let mut names = std::collections::HashSet::new();
        let all = self.git.iter().map(|g| ("git", &g.name, g.poll_interval)).enumerate();
        let all = all.chain(self.buckets.iter().map(|b| ("buckets", &b.name, b.poll_interval)).enumerate());
        for (i, (kind, name, poll)) in all {
            let key = |field: &str| format!("config_sources.{kind}[{i}].{field}");
            if !name_ok.is_match(name) {
                return Err(ConfigError::new(key("name"), "1-64 letters, digits, '.', '_' or '-'"));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::new(key("name"), format!("{name:?} names two sources")));
            }
            if poll.is_zero() {
                return Err(ConfigError::new(key("poll_interval"), "must be non-zero"));
            }
        }
        for (i, g) in self.git.iter().enumerate() {
            let key = |field: &str| format!("config_sources.git[{i}].{field}");
            if g.url.trim().is_empty() || g.url.starts_with('-') {
                return Err(ConfigError::new(key("url"), "must be a URL or path git can fetch"));
            }
            // A branch or path starting with '-' would read as an option of git.
            if g.branch.is_empty() || g.branch.starts_with('-') || g.branch.contains("..") || g.branch.contains(' ') {
                return Err(ConfigError::new(key("branch"), "must be a branch name"));
            }
            if g.path.is_empty() || g.path.starts_with(['/', '-']) || g.path.split('/').any(|p| p == "..") {
                return Err(ConfigError::new(key("path"), "must be a relative path in the repository"));
            }
            if g.webhook_secret.is_some() && g.webhook_secret_file.is_some() {
                return Err(ConfigError::new(key("webhook_secret"), "give webhook_secret or webhook_secret_file"));
            }
        }
        for (i, b) in self.buckets.iter().enumerate() {
            let key = |field: &str| format!("config_sources.buckets[{i}].{field}");
            if !super::bucket_name_ok(&b.bucket) {
                return Err(ConfigError::new(key("bucket"), "must be a valid bucket name (3-63 of a-z 0-9 . -)"));
            }
            if b.key.is_empty() || b.key.starts_with('/') || b.key.ends_with('/') {
                return Err(ConfigError::new(key("key"), "must be an object key such as `mlops-config.json`"));
            }
            if b.s3.is_some() && !cfg!(feature = "aws") {
                return Err(ConfigError::new(
                    key("s3"),
                    "this build has no S3 support (built without the aws feature)",
                ));
            }
        }
        if self.max_bytes == 0 || self.fetch_timeout.is_zero() {
            return Err(ConfigError::new("config_sources.max_bytes", "max_bytes and fetch_timeout must be non-zero"));
        }
        Ok(())
    }
}

/// Webhook secrets never reach the log.
impl std::fmt::Debug for ConfigSourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let git: Vec<_> = self.git.iter().map(|g| (&g.name, &g.url, &g.branch, &g.path)).collect();
        f.debug_struct("ConfigSourceSettings")
            .field("git", &git)
            .field("buckets", &self.buckets)
            .field("max_bytes", &self.max_bytes)
            .field("fetch_timeout", &self.fetch_timeout)
            .finish()
    }
}
