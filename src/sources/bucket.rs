//! A config-bucket source: one object, read when its version (or ETag) changes, as the
//! solution's S3 notification on `mlops-config.json` triggers its orchestrator.

use super::{Revision, SourceError};
use crate::artifacts::ArtifactStore;
use crate::config::BucketSource;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

pub struct BucketObject {
    store: Arc<dyn ObjectStore>,
    path: Path,
    max_bytes: u64,
}

impl BucketObject {
    pub fn new(source: &BucketSource, artifacts: &ArtifactStore, max_bytes: u64) -> Result<BucketObject, SourceError> {
        #[cfg(feature = "aws")]
        if let Some(s3) = &source.s3 {
            // That S3 bucket itself, credentials from the standard AWS chain.
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_region(&s3.region).with_bucket_name(&source.bucket);
            if let Some(url) = &s3.endpoint_url {
                builder = builder.with_endpoint(url).with_allow_http(url.starts_with("http://"));
            }
            let store = builder.build().map_err(|e| SourceError(format!("S3 bucket {}: {e}", source.bucket)))?;
            let path = Path::parse(&source.key).map_err(|e| SourceError(format!("key {:?}: {e}", source.key)))?;
            return Ok(BucketObject { store: Arc::new(store), path, max_bytes });
        }
        let path = artifacts
            .location_path(&source.bucket, &source.key)
            .map_err(|e| SourceError(format!("{}/{}: {e}", source.bucket, source.key)))?;
        Ok(BucketObject { store: artifacts.object_store(), path, max_bytes })
    }

    /// The object as it is now; `None` while there is none.
    pub async fn fetch(&self) -> Result<Option<Revision>, SourceError> {
        let result = match self.store.get(&self.path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(SourceError(format!("reading {}: {e}", self.path))),
        };
        let meta = result.meta.clone();
        if meta.size > self.max_bytes {
            return Err(SourceError(format!(
                "{} is {} bytes, more than config_sources.max_bytes ({})",
                self.path, meta.size, self.max_bytes
            )));
        }
        let mut content = Vec::with_capacity(meta.size as usize);
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SourceError(format!("reading {}: {e}", self.path)))?;
            if (content.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(SourceError(format!("{} grew past config_sources.max_bytes", self.path)));
            }
            content.extend_from_slice(&chunk);
        }
        // The version id where the bucket keeps versions, else the ETag; a store with neither
        // (none we use) falls back to the time and size.
        let id = meta
            .version
            .clone()
            .or_else(|| meta.e_tag.clone().map(|t| t.trim_matches('"').to_string()))
            .unwrap_or_else(|| format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size));
        Ok(Some(Revision {
            id,
            author: None,
            message: Some(format!("{} modified {}", self.path, meta.last_modified.to_rfc3339())),
            content: Some(content.into()),
        }))
    }
}
