//! Config sources (issue 14, DESIGN §2): where `mlops-config.json` files come from besides the
//! API — Git repositories (`git.rs`) and object-store buckets (`bucket.rs`). Each is polled by a
//! recurring job (`polls.rs`) and fetched at once on a verified push (`push.rs`,
//! `POST /v1/git/webhook`); what a revision does is `services::config_revisions`.

pub mod bucket;
pub mod git;
pub mod polls;
pub mod push;

use crate::artifacts::ArtifactStore;
use crate::config::Settings;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One revision of a source's config file.
#[derive(Debug, Clone)]
pub struct Revision {
    /// The commit SHA, or the object's version id (else its ETag).
    pub id: String,
    pub author: Option<String>,
    pub message: Option<String>,
    /// The file as of this revision; `None` when the revision has no such file.
    pub content: Option<Bytes>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Git,
    Bucket,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Git => "git",
            SourceKind::Bucket => "bucket",
        }
    }
}

enum Fetcher {
    Git(git::GitRepo),
    Bucket(bucket::BucketObject),
}

pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub poll_interval: Duration,
    /// Where it reads: the repository URL, branch and path; or the bucket and key.
    pub location: serde_json::Value,
    /// A Git source's push-webhook secret.
    webhook_secret: Option<Vec<u8>>,
    branch: Option<String>,
    fetcher: Fetcher,
    /// One fetch at a time on this replica (a Git mirror is one directory).
    busy: tokio::sync::Mutex<()>,
}

impl Source {
    /// The source's file at its newest revision; `None` when there is none yet (an empty
    /// bucket).
    pub async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        let _one_at_a_time = self.busy.lock().await;
        match &self.fetcher {
            Fetcher::Git(repo) => repo.fetch().await.map(Some),
            Fetcher::Bucket(object) => object.fetch().await,
        }
    }

    pub fn has_webhook(&self) -> bool {
        self.webhook_secret.is_some()
    }
}

/// Every configured source, by name.
#[derive(Clone, Default)]
pub struct Sources {
    by_name: Arc<BTreeMap<String, Source>>,
}

impl Sources {
    pub fn from_settings(settings: &Settings, artifacts: &ArtifactStore) -> Result<Sources, SourceError> {
        let c = &settings.config_sources;
        let mut by_name = BTreeMap::new();
        for g in &c.git {
            let secret = match (&g.webhook_secret, &g.webhook_secret_file) {
                (Some(s), _) => Some(s.trim().as_bytes().to_vec()),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(file)
                        .map_err(|e| {
                            SourceError(format!("config source {:?}: cannot read {}: {e}", g.name, file.display()))
                        })?
                        .trim()
                        .as_bytes()
                        .to_vec(),
                ),
                (None, None) => None,
            };
            let dir = settings.data_dir.join("config-sources").join(format!("{}.git", g.name));
            let repo = git::GitRepo::new(g, dir, c.fetch_timeout, c.max_bytes);
            by_name.insert(
                g.name.clone(),
                Source {
                    name: g.name.clone(),
                    kind: SourceKind::Git,
                    poll_interval: g.poll_interval,
                    location: serde_json::json!({"url": g.url, "branch": g.branch, "path": g.path}),
                    webhook_secret: secret,
                    branch: Some(g.branch.clone()),
                    fetcher: Fetcher::Git(repo),
                    busy: tokio::sync::Mutex::new(()),
                },
            );
        }
        for b in &c.buckets {
            let object = bucket::BucketObject::new(b, artifacts, c.max_bytes)
                .map_err(|e| SourceError(format!("config source {:?}: {e}", b.name)))?;
            by_name.insert(
                b.name.clone(),
                Source {
                    name: b.name.clone(),
                    kind: SourceKind::Bucket,
                    poll_interval: b.poll_interval,
                    location: serde_json::json!({"bucket": b.bucket, "key": b.key, "s3": b.s3.is_some()}),
                    webhook_secret: None,
                    branch: None,
                    fetcher: Fetcher::Bucket(object),
                    busy: tokio::sync::Mutex::new(()),
                },
            );
        }
        Ok(Sources { by_name: Arc::new(by_name) })
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.by_name.values()
    }

    /// The Git sources a push verifies for (`only`: just the one named), and of those the ones
    /// whose branch it updates. `Err` when it verifies for none.
    pub fn pushed(&self, push: &push::Delivery<'_>, only: Option<&str>) -> Result<Vec<&Source>, push::Refused> {
        let verified: Vec<&Source> = self
            .iter()
            .filter(|s| only.is_none_or(|o| o == s.name))
            .filter(|s| s.webhook_secret.as_deref().is_some_and(|secret| push.verify(secret)))
            .collect();
        if verified.is_empty() {
            return Err(push::Refused::Signature);
        }
        let branch = push.branch()?;
        Ok(verified.into_iter().filter(|s| s.branch.as_deref() == branch.as_deref()).collect())
    }
}
