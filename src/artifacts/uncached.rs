//! A local object root whose written objects leave the page cache once written.
//!
//! For capture files: written once at tens of MB a second under load, read again at most by a
//! monitoring job an hour later. Kept in the page cache they would crowd out what is read again
//! (models, the database), count against a container's memory limit, and make the kernel take a
//! fresh page for every 4 KB written. PostgreSQL drops its closed WAL segments so; it is cheap
//! here: the store fsyncs every object before publishing it, so its pages are clean and
//! `POSIX_FADV_DONTNEED` frees them at once; the next flush writes into pages just freed.
//! Measured (docs/OPERATIONS.md, Memory): the page cache grows by the server's log alone instead
//! of 600 MB per 10 s of load, and a one-core server keeps its p99 as its memory fills.
//!
//! Only single puts are dropped: multipart uploads (assets, batch outputs) are not wrapped.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

#[derive(Debug)]
pub struct UncachedWrites {
    inner: Arc<LocalFileSystem>,
}

impl UncachedWrites {
    pub fn new(inner: Arc<LocalFileSystem>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for UncachedWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UncachedWrites({})", self.inner)
    }
}

/// Asks the kernel to drop the file's cached pages. Best effort: the object is written either
/// way, and a file deleted meanwhile has nothing left to drop.
fn drop_cached_pages(path: &std::path::Path) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        let dropped = std::fs::File::open(path)
            .and_then(|file| Ok(posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)?));
        if let Err(error) = dropped {
            tracing::debug!(path = %path.display(), %error, "could not drop a written object's cached pages");
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let _ = path;
}

#[async_trait]
impl ObjectStore for UncachedWrites {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let written = self.inner.put_opts(location, payload, opts).await?;
        if let Ok(path) = self.inner.path_to_filesystem(location) {
            // A blocking call (it frees every page of the file) kept off the async workers; a
            // panic in it loses nothing but the advice.
            let _ = tokio::task::spawn_blocking(move || drop_cached_pages(&path)).await;
        }
        Ok(written)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::super::ArtifactStore;
    use object_store::ObjectStoreExt;

    /// How many of the file's pages are in the page cache, and how many it has.
    #[allow(unsafe_code)] // mincore needs a mapping of the file; std has neither call
    fn resident_pages(path: &std::path::Path) -> (usize, usize) {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = usize::try_from(file.metadata().unwrap().len()).unwrap();
        // SAFETY: sysconf only reads a system constant.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: a read-only mapping of a file this test owns, never dereferenced (mapping it
        // reads nothing in) and unmapped before returning; mincore writes one byte per page of
        // the mapping into `resident`, which has that many.
        let answer = unsafe {
            let address = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
            assert_ne!(address, libc::MAP_FAILED, "mmap {}", path.display());
            let answer = libc::mincore(address, len, resident.as_mut_ptr());
            libc::munmap(address, len);
            answer
        };
        assert_eq!(answer, 0, "mincore {}", path.display());
        (resident.iter().filter(|&&b| b & 1 == 1).count(), resident.len())
    }

    #[tokio::test]
    async fn capture_writes_leave_the_page_cache_and_read_back_whole() {
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(root.path(), "assets").unwrap();
        let bytes: bytes::Bytes = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>().into();
        let (plain, captured) =
            (object_store::path::Path::from("b/plain"), object_store::path::Path::from("b/captured"));
        store.object_store().put(&plain, bytes.clone().into()).await.unwrap();
        store.capture_store().put(&captured, bytes.clone().into()).await.unwrap();

        // The control: what an ordinary write leaves cached (all of it, on a machine with room).
        let (cached, pages) = resident_pages(&root.path().join("b/plain"));
        assert_eq!(cached, pages, "a plain write stays in the page cache (a filesystem that caches, e.g. not tmpfs)");
        let (left, pages) = resident_pages(&root.path().join("b/captured"));
        assert!(left * 100 <= pages, "{left} of {pages} pages of a capture write are still cached");

        let read = store.capture_store().get(&captured).await.unwrap().bytes().await.unwrap();
        assert_eq!(read, bytes);
    }
}
