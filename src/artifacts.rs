//! The artifact store: one folder (or S3 bucket) per bucket name under a root.
//!
//! Asset keys (`model_artifact_location`, `baseline_data`, ...) live in the assets bucket;
//! `bucket/prefix` locations (`data_capture_location`, batch input and output, monitoring
//! output, ...) resolve to `{bucket}/{prefix}` under the same root (DESIGN.md §5).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

mod uncached;

/// Multipart part size: S3 wants every part but the last to be at least 5 MiB.
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {key:?} not found")]
    NotFound { key: String },
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("object store operation failed")]
    Backend(#[source] object_store::Error),
    #[error("reading the upload body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{path}: {source}")]
    LocalFile { path: String, source: std::io::Error },
}

/// What [`ArtifactStore::put_asset`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// The same objects, for data capture: on a local root, its files leave the page cache once
    /// written ([`uncached`]).
    capture: Arc<dyn ObjectStore>,
    assets_bucket: Arc<str>,
    /// The store holds one folder per bucket (a local root), rather than being the assets bucket
    /// itself (S3).
    folder_per_bucket: bool,
}

impl ArtifactStore {
    /// A store rooted at a local directory, created if missing.
    pub fn local(root: &std::path::Path, assets_bucket: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|source| {
            StorageError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("cannot create {}: {source}", root.display()).into(),
            })
        })?;
        // fsync so that "written" means what it means on S3: capture and uploads report success
        // only once the bytes would survive a crash.
        let store = Arc::new(LocalFileSystem::new_with_prefix(root).map_err(StorageError::Backend)?.with_fsync(true));
        let capture = Arc::new(uncached::UncachedWrites::new(Arc::clone(&store)));
        Ok(Self { store, capture, assets_bucket: assets_bucket.into(), folder_per_bucket: true })
    }

    /// A store holding one folder per bucket; assets live under `{assets_bucket}/`.
    pub fn from_object_store(store: Arc<dyn ObjectStore>, assets_bucket: &str) -> Self {
        Self { capture: Arc::clone(&store), store, assets_bucket: assets_bucket.into(), folder_per_bucket: true }
    }

    /// The assets bucket in S3 (the aws target): asset keys are the bucket's own keys.
    #[cfg(feature = "aws")]
    pub fn s3(region: &str, bucket: &str, endpoint_url: Option<&str>) -> Result<Self, StorageError> {
        // Credentials from the environment, web identity, the ECS task role or IMDS, as the SDKs.
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_region(region).with_bucket_name(bucket);
        if let Some(url) = endpoint_url {
            // An emulator on one host: path-style requests, plain HTTP allowed.
            builder = builder.with_endpoint(url).with_allow_http(url.starts_with("http://"));
        }
        let store = builder.build().map_err(StorageError::Backend)?;
        let store: Arc<dyn ObjectStore> = Arc::new(store);
        Ok(Self { capture: Arc::clone(&store), store, assets_bucket: bucket.into(), folder_per_bucket: false })
    }

    /// The object root in an S3 bucket (under `prefix`), one folder per bucket name as a local
    /// root has; several replicas can share it.
    #[cfg(feature = "aws")]
    pub fn s3_root(
        region: &str,
        bucket: &str,
        prefix: &str,
        endpoint_url: Option<&str>,
        assets_bucket: &str,
    ) -> Result<Self, StorageError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_region(region).with_bucket_name(bucket);
        if let Some(url) = endpoint_url {
            builder = builder
                .with_endpoint(url)
                .with_allow_http(url.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(StorageError::Backend)?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self::from_object_store(store, assets_bucket))
    }

    /// Removes the staging files a crash left under a local root: the local backend writes every
    /// object to `{name}#{n}` and renames it into place, so a process killed mid-write leaves the
    /// staging file behind. Only files untouched for `older_than` go, so a write in flight in
    /// another process sharing the directory is left alone. Returns how many were removed.
    pub fn sweep_staging_files(root: &std::path::Path, older_than: std::time::Duration) -> std::io::Result<usize> {
        let cutoff = std::time::SystemTime::now() - older_than;
        let mut removed = 0;
        let mut folders = vec![root.to_path_buf()];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    folders.push(entry.path());
                    continue;
                }
                let name = entry.file_name();
                let is_staging = name
                    .to_str()
                    .and_then(|n| n.rsplit_once('#'))
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if is_staging && entry.metadata()?.modified()? < cutoff {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The store data capture writes through (the same objects as [`Self::object_store`]).
    pub fn capture_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.capture)
    }

    pub fn assets_bucket(&self) -> &str {
        &self.assets_bucket
    }

    /// Streams `body` into the assets bucket at `key`.
    ///
    /// The bytes go to a multipart upload that is completed only when the whole body arrived
    /// within `max_bytes`; on refusal or a body error the upload is aborted, so no partial
    /// object is ever visible and an existing object at `key` is left untouched.
    pub async fn put_asset<S, E>(&self, key: &str, mut body: S, max_bytes: u64) -> Result<StoredObject, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = self.asset_path(key)?;
        let mut upload = self.store.put_multipart(&path).await.map_err(StorageError::Backend)?;

        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut parts = 0usize;
        let streamed: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StorageError::Body(Box::new(e)))?;
                size += chunk.len() as u64;
                if size > max_bytes {
                    return Err(StorageError::TooLarge { limit: max_bytes });
                }
                hasher.update(&chunk);
                pending_len += chunk.len();
                pending.push(chunk);
                if pending_len >= PART_SIZE {
                    put_part(upload.as_mut(), &mut pending).await?;
                    pending_len = 0;
                    parts += 1;
                }
            }
            // An upload needs at least one part, even for an empty body.
            if !pending.is_empty() || parts == 0 {
                put_part(upload.as_mut(), &mut pending).await?;
            }
            upload.complete().await.map_err(StorageError::Backend)?;
            Ok(())
        }
        .await;

        if let Err(error) = streamed {
            if let Err(abort_error) = upload.abort().await {
                tracing::warn!(%path, error = %abort_error, "aborting a failed upload failed");
            }
            return Err(error);
        }
        Ok(StoredObject { size, sha256: hex::encode(hasher.finalize()) })
    }

    /// Opens the asset at `key` for streaming; [`StorageError::NotFound`] if there is none.
    pub async fn get_asset(
        &self,
        key: &str,
    ) -> Result<(ObjectMeta, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        let path = self.asset_path(key)?;
        let result = self.store.get(&path).await.map_err(|e| not_found_or_backend(e, key))?;
        let meta = result.meta.clone();
        let stream = result.into_stream().map_err(StorageError::Backend).boxed();
        Ok((meta, stream))
    }

    /// The asset's metadata; [`StorageError::NotFound`] if there is none.
    pub async fn asset_meta(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        let path = self.asset_path(key)?;
        self.store.head(&path).await.map_err(|e| not_found_or_backend(e, key))
    }

    /// Reads the whole asset at `key`, refusing objects larger than `max_bytes`.
    pub async fn read_asset(&self, key: &str, max_bytes: u64) -> Result<Bytes, StorageError> {
        let path = self.asset_path(key)?;
        self.read_limited(&path, key, max_bytes).await
    }

    /// `{bucket}/{prefix}` as an object path; an empty prefix stands for the whole bucket.
    pub fn location_path(&self, bucket: &str, prefix: &str) -> Result<Path, StorageError> {
        location_path(bucket, prefix)
    }

    /// Every object under `{bucket}/{prefix}`, sorted by location; empty if there is none.
    pub async fn list_under(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let path = location_path(bucket, prefix)?;
        let mut objects: Vec<ObjectMeta> =
            self.store.list(Some(&path)).try_collect().await.map_err(StorageError::Backend)?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The asset `key`, or else every asset below `key/`, sorted by location (an S3Prefix input
    /// such as a training channel, which names one object or a folder of them).
    pub async fn assets_under(&self, key: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let path = self.asset_path(key.trim_end_matches('/'))?;
        match self.store.head(&path).await {
            Ok(meta) => return Ok(vec![meta]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(StorageError::Backend(e)),
        }
        let mut objects: Vec<ObjectMeta> =
            self.store.list(Some(&path)).try_collect().await.map_err(StorageError::Backend)?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Reads the whole object at `path` (e.g. from [`Self::list_under`]), up to `max_bytes`.
    pub async fn read_path(&self, path: &Path, max_bytes: u64) -> Result<Bytes, StorageError> {
        self.read_limited(path, path.as_ref(), max_bytes).await
    }

    fn asset_path(&self, key: &str) -> Result<Path, StorageError> {
        validate_key(key)?;
        if key.ends_with('/') {
            return Err(invalid(key, "ends with '/', which names a folder, not an object"));
        }
        if self.folder_per_bucket {
            location_path(&self.assets_bucket, key)
        } else {
            Path::parse(key).map_err(|e| invalid(key, &e.to_string()))
        }
    }

    async fn read_limited(&self, path: &Path, key: &str, max_bytes: u64) -> Result<Bytes, StorageError> {
        let result = self.store.get(path).await.map_err(|e| not_found_or_backend(e, key))?;
        if result.meta.size > max_bytes {
            return Err(StorageError::TooLarge { limit: max_bytes });
        }
        // The size is checked again while reading: the object may be replaced meanwhile.
        let mut stream = result.into_stream();
        let mut buffer = Vec::with_capacity(usize::try_from(max_bytes.min(1 << 20)).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(StorageError::Backend)?;
            if (buffer.len() + chunk.len()) as u64 > max_bytes {
                return Err(StorageError::TooLarge { limit: max_bytes });
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buffer))
    }
}

/// Copies every object under `s3://bucket/prefix` last modified at or after `since` into `dir`
/// (keys below the prefix become paths below `dir`), each file's modification time set to its
/// object's, and returns how many were copied. `mlops analyze` reads a monitoring job's ground
/// truth this way: SageMaker hands a custom image no ground-truth input it documents, so the
/// container fetches the labels itself with the job's role. Credentials and region come from the
/// environment as for the SDKs (in a SageMaker job, its container credentials); `AWS_ENDPOINT_URL`
/// points at an S3-compatible store.
#[cfg(feature = "aws")]
pub async fn download_prefix(
    uri: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    dir: &std::path::Path,
) -> Result<usize, StorageError> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| invalid(uri, "not an s3:// URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(uri, "no bucket"));
    }
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(StorageError::Backend)?;
    let prefix = prefix.trim_matches('/');
    let listed = if prefix.is_empty() { None } else { Some(parse(prefix)?) };
    let mut objects = store.list(listed.as_ref());
    let mut copied = 0;
    while let Some(meta) = objects.try_next().await.map_err(StorageError::Backend)? {
        if since.is_some_and(|since| meta.last_modified < since) {
            continue;
        }
        let below =
            meta.location.as_ref().strip_prefix(prefix).unwrap_or(meta.location.as_ref()).trim_start_matches('/');
        // Below `dir` only, whatever the key holds.
        if std::path::Path::new(below).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(invalid(meta.location.as_ref(), "not a plain relative key"));
        }
        let file = dir.join(below);
        let body = store
            .get(&meta.location)
            .await
            .map_err(StorageError::Backend)?
            .bytes()
            .await
            .map_err(StorageError::Backend)?;
        let write = || -> std::io::Result<()> {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, &body)?;
            std::fs::File::options().write(true).open(&file)?.set_modified(meta.last_modified.into())
        };
        write().map_err(|source| StorageError::LocalFile { path: file.display().to_string(), source })?;
        copied += 1;
    }
    Ok(copied)
}

/// `{bucket}/{prefix}` as an object path; an empty prefix stands for the whole bucket, and a
/// trailing `/` on the prefix (as in S3 URIs) is ignored.
pub fn location_path(bucket: &str, prefix: &str) -> Result<Path, StorageError> {
    if bucket.is_empty() {
        return Err(invalid(bucket, "the bucket name is empty"));
    }
    if bucket.contains('/') {
        return Err(invalid(bucket, "a bucket name cannot contain '/'"));
    }
    validate_key(bucket)?;
    if prefix.is_empty() {
        return parse(bucket);
    }
    validate_key(prefix)?;
    parse(&format!("{bucket}/{prefix}"))
}

/// Refuses what would escape or confuse the bucket layout. Keys are validated upstream; this
/// is the last line of defence before a key becomes a file name.
fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(invalid(key, "the key is empty"));
    }
    if key.starts_with('/') {
        return Err(invalid(key, "starts with '/'"));
    }
    if key.contains('\\') {
        return Err(invalid(key, "contains a backslash"));
    }
    parse(key).map(drop)
}

fn parse(key: &str) -> Result<Path, StorageError> {
    Path::parse(key).map_err(|e| {
        let reason = match e {
            object_store::path::Error::EmptySegment { .. } => "contains an empty segment ('//')".to_string(),
            object_store::path::Error::BadSegment { source, .. } => {
                format!("contains a segment that is '.', '..' or a control character ({source})")
            }
            other => other.to_string(),
        };
        invalid(key, &reason)
    })
}

fn invalid(key: &str, reason: &str) -> StorageError {
    StorageError::InvalidKey { key: key.to_string(), reason: reason.to_string() }
}

fn not_found_or_backend(error: object_store::Error, key: &str) -> StorageError {
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound { key: key.to_string() },
        other => StorageError::Backend(other),
    }
}

async fn put_part(upload: &mut dyn MultipartUpload, pending: &mut Vec<Bytes>) -> Result<(), StorageError> {
    let payload: PutPayload = pending.drain(..).collect();
    upload.put_part(payload).await.map_err(StorageError::Backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn store(dir: &tempfile::TempDir) -> ArtifactStore {
        ArtifactStore::local(&dir.path().join("objects"), "assets").unwrap()
    }

    fn body(chunks: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        stream::iter(chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
    }

    async fn get_error(store: &ArtifactStore, key: &str) -> StorageError {
        match store.get_asset(key).await {
            Ok(_) => panic!("{key:?} should not be readable"),
            Err(error) => error,
        }
    }

    /// Every file under the root, staging files included, relative to it.
    fn files(dir: &tempfile::TempDir) -> Vec<String> {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let root = dir.path().join("objects");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn leftover_staging_files_are_swept_and_fresh_ones_and_objects_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        std::fs::create_dir_all(root.join("assets/models")).unwrap();
        let write = |path: &str, age: std::time::Duration| {
            let file = std::fs::File::create(root.join(path)).unwrap();
            file.set_modified(std::time::SystemTime::now() - age).unwrap();
        };
        let hour = std::time::Duration::from_secs(3600);
        write("assets/models/model.tar.gz#1", hour);
        write("assets/models/model.tar.gz#12", hour);
        write("assets/models/model.tar.gz", hour);
        write("assets/models/in-flight.json#1", std::time::Duration::ZERO);
        write("assets/models/not#staging", hour);
        let removed = ArtifactStore::sweep_staging_files(&root, std::time::Duration::from_secs(300)).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            files(&dir),
            ["assets/models/in-flight.json#1", "assets/models/model.tar.gz", "assets/models/not#staging"]
        );
        assert_eq!(ArtifactStore::sweep_staging_files(&dir.path().join("missing"), hour).unwrap(), 0);
    }

    #[tokio::test]
    async fn local_creates_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert!(dir.path().join("objects").is_dir());
        assert_eq!(store.assets_bucket(), "assets");
    }

    #[tokio::test]
    async fn put_then_get_and_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let stored = store.put_asset("models/m1/model.tar.gz", body(&[b"hello ", b"world"]), 100).await.unwrap();
        assert_eq!(stored.size, 11);
        // sha256("hello world")
        assert_eq!(stored.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(files(&dir), ["assets/models/m1/model.tar.gz"]);

        let (meta, stream) = store.get_asset("models/m1/model.tar.gz").await.unwrap();
        assert_eq!(meta.size, 11);
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(chunks.concat(), b"hello world");

        let bytes = store.read_asset("models/m1/model.tar.gz", 11).await.unwrap();
        assert_eq!(&bytes[..], b"hello world");
    }

    #[tokio::test]
    async fn empty_body_stores_an_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let stored = store.put_asset("empty", body(&[]), 10).await.unwrap();
        assert_eq!(stored.size, 0);
        assert_eq!(stored.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert!(store.read_asset("empty", 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn body_spanning_several_parts_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20).map(|_| Ok(chunk.clone())).collect();
        let stored = store.put_asset("big", stream::iter(chunks), 64 * 1024 * 1024).await.unwrap();
        assert_eq!(stored.size, 20 * 1024 * 1024);
        let bytes = store.read_asset("big", u64::MAX).await.unwrap();
        assert_eq!(bytes.len(), 20 * 1024 * 1024);
        assert!(bytes.iter().all(|b| *b == 7));
        assert_eq!(files(&dir), ["assets/big"]);
    }

    #[tokio::test]
    async fn too_large_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let error = store.put_asset("models/huge", body(&[b"12345", b"67890", b"x"]), 10).await.unwrap_err();
        assert!(matches!(error, StorageError::TooLarge { limit: 10 }), "{error:?}");
        tokio::task::yield_now().await;
        assert_eq!(files(&dir), Vec::<String>::new());
        assert!(matches!(get_error(&store, "models/huge").await, StorageError::NotFound { .. }));
    }

    #[tokio::test]
    async fn too_large_keeps_the_previous_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.put_asset("m", body(&[b"old"]), 10).await.unwrap();
        store.put_asset("m", body(&[b"far too long"]), 10).await.unwrap_err();
        assert_eq!(&store.read_asset("m", 10).await.unwrap()[..], b"old");
        assert_eq!(files(&dir), ["assets/m"]);
    }

    #[tokio::test]
    async fn stream_error_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let failing =
            stream::iter(vec![Ok(Bytes::from_static(b"partial")), Err(std::io::Error::other("client went away"))]);
        let error = store.put_asset("models/broken", failing, 100).await.unwrap_err();
        match &error {
            StorageError::Body(source) => assert_eq!(source.to_string(), "client went away"),
            other => panic!("expected a body error, got {other:?}"),
        }
        assert_eq!(files(&dir), Vec::<String>::new());
    }

    #[tokio::test]
    async fn read_refuses_objects_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.put_asset("m", body(&[b"12345"]), 10).await.unwrap();
        assert!(matches!(store.read_asset("m", 4).await.unwrap_err(), StorageError::TooLarge { limit: 4 }));
        let path = store.location_path("assets", "m").unwrap();
        assert!(matches!(store.read_path(&path, 4).await.unwrap_err(), StorageError::TooLarge { limit: 4 }));
        assert_eq!(&store.read_path(&path, 5).await.unwrap()[..], b"12345");
    }

    #[tokio::test]
    async fn missing_objects_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        match store.read_asset("nope/model", 10).await.unwrap_err() {
            StorageError::NotFound { key } => assert_eq!(key, "nope/model"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        let path = store.location_path("data", "nope").unwrap();
        assert!(matches!(store.read_path(&path, 10).await.unwrap_err(), StorageError::NotFound { .. }));
    }

    #[tokio::test]
    async fn traversal_and_odd_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let cases = [
            ("../outside", "'.', '..'"),
            ("a/../../outside", "'.', '..'"),
            ("a/./b", "'.', '..'"),
            ("/etc/passwd", "starts with '/'"),
            ("a//b", "empty segment"),
            ("a\\..\\b", "backslash"),
            ("", "empty"),
            ("models/", "names a folder"),
            ("bad\u{1}name", "control character"),
        ];
        for (key, reason) in cases {
            let error = store.put_asset(key, body(&[b"x"]), 10).await.unwrap_err();
            match &error {
                StorageError::InvalidKey { key: k, reason: r } => {
                    assert_eq!(k, key);
                    assert!(r.contains(reason), "{key:?}: {r:?} should mention {reason:?}");
                }
                other => panic!("{key:?}: expected InvalidKey, got {other:?}"),
            }
            assert!(matches!(get_error(&store, key).await, StorageError::InvalidKey { .. }));
        }
        assert_eq!(files(&dir), Vec::<String>::new());
        assert!(!dir.path().join("outside").exists());
    }

    #[test]
    fn location_paths() {
        assert_eq!(location_path("data", "capture/ep").unwrap().as_ref(), "data/capture/ep");
        assert_eq!(location_path("data", "out/").unwrap().as_ref(), "data/out");
        assert_eq!(location_path("data", "").unwrap().as_ref(), "data");
        for (bucket, prefix) in
            [("", "x"), ("a/b", "x"), ("..", "x"), ("data", "../x"), ("data", "/x"), ("data", "a//b")]
        {
            assert!(
                matches!(location_path(bucket, prefix), Err(StorageError::InvalidKey { .. })),
                "{bucket:?} {prefix:?}"
            );
        }
    }

    #[tokio::test]
    async fn list_under_returns_sorted_objects_of_the_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let raw = store.object_store();
        for key in [
            "data/capture/ep/b.jsonl",
            "data/capture/ep/2024/a.jsonl",
            "data/capture-other/c.jsonl",
            "other/capture/ep/d.jsonl",
        ] {
            raw.put(&Path::parse(key).unwrap(), PutPayload::from_static(b"{}\n")).await.unwrap();
        }
        let listed: Vec<String> =
            store.list_under("data", "capture").await.unwrap().into_iter().map(|m| m.location.to_string()).collect();
        assert_eq!(listed, ["data/capture/ep/2024/a.jsonl", "data/capture/ep/b.jsonl"]);
        assert!(store.list_under("data", "nothing").await.unwrap().is_empty());
        assert!(store.list_under("missing", "").await.unwrap().is_empty());
    }
}
