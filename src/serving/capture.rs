//! SageMaker data capture: one JSON line per invocation (reference B.6), written in batches to
//! `{bucket}/{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{mm}-{ss}-{mmm}-{uuid}.jsonl`.
//!
//! An invocation writes its line straight into a shard's buffer: one shard per worker thread
//! (a thread keeps its shard), each holding a batch per destination and hour of invocation (UTC)
//! in chunks that are never copied again. A single task collects the shards and writes each
//! destination and hour as a new object: on the interval, when `max_buffered_records` are
//! buffered, on [`CaptureWriter::flush`] and on [`CaptureWriter::shutdown`]. A flush never
//! rewrites an earlier object, and a failed write keeps its records buffered for the next flush,
//! so a transient store error loses nothing.
//!
//! Capture never blocks or slows an invocation: it takes only its own shard's lock, which the
//! writer holds just long enough to swap the shard's batches out (and never waits for: a busy
//! shard is retried after a yield, so the writer cannot stall a worker thread either). Records
//! buffered may take at most `max_buffered_bytes` (and number at most `max_queued_records` until
//! the writer collects them); a record that does not fit is dropped and counted for its endpoint,
//! never silently. So a store that keeps failing cannot grow memory without bound: once the
//! budget is full, new records are dropped, and counted, until a write succeeds. Per endpoint,
//! [`CaptureWriter::stats`] tells captured, written and dropped records and the last successful
//! flush.
//! The file name takes the time of the first record it holds, as SageMaker's names look like
//! `51-15-820-d0e7fdc2-c1ba-4e01-a9ad-7ed9b7a96b75.jsonl`. Within an object, each worker
//! thread's lines keep their order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};

// Shards and targets stay usable after a panic: every batch is whole at each step (a line is
// counted only once written).
use crate::encode::{write_str, write_utc_second};
use crate::tasks::lock;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaptureDestination {
    pub bucket: String,
    /// May be empty; a trailing `/` is ignored.
    pub prefix: String,
    pub endpoint: String,
    pub variant: String,
}

/// One invocation's exchange, borrowed from the invocation: the line is written from it at once.
#[derive(Debug, Clone)]
pub struct CaptureEvent<'a> {
    pub input_content_type: &'a str,
    pub input: &'a [u8],
    pub output_content_type: &'a str,
    pub output: &'a [u8],
    /// The caller's `InferenceId`, if it sent one.
    pub inference_id: Option<&'a str>,
    pub event_id: uuid::Uuid,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub flush_interval: Duration,
    /// Flush as soon as this many records are buffered (over all destinations).
    pub max_buffered_records: usize,
    /// Records waiting for the writer to collect them at most; a record beyond is dropped.
    pub max_queued_records: usize,
    /// Bytes of records buffered at most; a record that does not fit is dropped.
    pub max_buffered_bytes: usize,
    /// Share of invocations captured, 0 to 100 (SageMaker's `InitialSamplingPercentage`).
    pub sampling_percentage: f64,
}

/// The fewest records waiting for the writer that [`queue_capacity`] allows.
const MIN_QUEUE_RECORDS: usize = 65_536;

/// Records waiting for the writer at most, for a flush threshold of `max_buffered_records`.
/// Memory is bounded by `max_buffered_bytes`; the count only has to outlast one slow write, while
/// the writer is busy and invocations go on recording. 4 × 1,000 lasted 90 ms at 45,000
/// invocations a second, less than one fsync on a busy disk: a load run dropped 321 records that
/// fitted the byte budget. 65,536 last about 1.5 s at that rate.
pub fn queue_capacity(max_buffered_records: usize) -> usize {
    (4 * max_buffered_records.max(1)).max(MIN_QUEUE_RECORDS)
}

/// What happened to one invocation's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Queued,
    /// The buffer was full (or the queue was): the record is dropped and counted.
    Dropped,
}

/// Capture figures of one endpoint (by its capture destination) since this process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CaptureStats {
    /// Records accepted for writing.
    pub captured: u64,
    /// Records written to the object store.
    pub written: u64,
    /// Records dropped because the buffer or queue was full.
    pub dropped: u64,
    /// Invocations left out by `capture.sampling_percentage`.
    pub sampled_out: u64,
    /// When records of this endpoint were last written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_flush: Option<DateTime<Utc>>,
}

/// One destination's figures: atomics, so an invocation takes no lock to count itself.
#[derive(Default)]
struct Counters {
    captured: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    sampled_out: AtomicU64,
    /// Microseconds since the epoch of the last successful write; `0`: none yet.
    last_flush_micros: AtomicI64,
}

/// An endpoint's capture destination, checked once, with its figures. An invocation records
/// through it without building paths or looking anything up; the writer groups its records by
/// destination and hour. The writer hands out one per destination, so figures survive a model
/// reload.
#[derive(Clone)]
pub struct CaptureTarget(Arc<TargetInner>);

struct TargetInner {
    destination: CaptureDestination,
    /// [`stats_key`] of the destination: the drop metric's label.
    key: String,
    counters: Counters,
}

impl CaptureTarget {
    /// An invocation that `capture.sampling_percentage` left out.
    pub fn sampled_out(&self) {
        self.0.counters.sampled_out.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> CaptureStats {
        let c = &self.0.counters;
        let micros = c.last_flush_micros.load(Ordering::Acquire);
        CaptureStats {
            captured: c.captured.load(Ordering::Acquire),
            written: c.written.load(Ordering::Acquire),
            dropped: c.dropped.load(Ordering::Acquire),
            sampled_out: c.sampled_out.load(Ordering::Acquire),
            last_flush: (micros != 0).then(|| DateTime::from_timestamp_micros(micros)).flatten(),
        }
    }

    fn dropped(&self, records: usize) {
        self.0.counters.dropped.fetch_add(records as u64, Ordering::Relaxed);
        metrics::counter!(crate::metrics::CAPTURE_DROPPED, "destination" => self.0.key.clone())
            .increment(records as u64);
    }

    /// Identifies the destination among the batches.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

/// What the handles and the writer task share.
struct Shared {
    /// The destinations, by [`stats_key`].
    targets: Mutex<HashMap<String, CaptureTarget>>,
    shards: Box<[Mutex<Shard>]>,
    /// Bytes of records buffered (in the shards or the writer's batches).
    bytes: AtomicUsize,
    /// Records in the shards, not yet collected by the writer.
    queued: AtomicUsize,
    /// Wakes the writer once `max_buffered_records` are queued. Records alone never wake it:
    /// a wake-up per invocation (a futex call and a thread switch) cost more than the rest of
    /// capturing it.
    threshold: Notify,
}

impl Shared {
    /// Takes `len` bytes of the budget, if they fit.
    fn reserve(&self, len: usize, max: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(len).filter(|n| *n <= max))
            .is_ok()
    }

    fn release(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// The calling thread's shard: the same one for every call from a thread, so two worker
    /// threads meet only when there are more threads than shards.
    fn shard(&self) -> &Mutex<Shard> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        &self.shards[INDEX.with(|index| *index) % self.shards.len()]
    }
}

/// Lines written by invocations, waiting for the writer.
#[derive(Default)]
struct Shard {
    /// Set at shutdown: the shard takes no more lines.
    closed: bool,
    /// Keyed by destination ([`CaptureTarget::id`]) and hour (hours since the epoch).
    batches: ShardBatches,
}

/// foldhash rather than SipHash: looked up on every captured invocation, with keys this
/// process makes (no one can choose them to collide).
type ShardBatches = HashMap<(usize, i64), ShardBatch, foldhash::fast::RandomState>;

/// One destination and hour's lines in a shard.
struct ShardBatch {
    target: CaptureTarget,
    first_time: DateTime<Utc>,
    /// Lines, in order; a line is never split between chunks.
    chunks: Vec<Vec<u8>>,
    records: usize,
    bytes: usize,
}

/// A batch's first chunk holds this much; each next one twice its predecessor, up to
/// [`MAX_CHUNK`]. Lines are written into chunks that are never grown (a growing buffer would
/// copy everything before, on the invocation's path), and a quiet endpoint's batch stays small.
const FIRST_CHUNK: usize = 4 * 1024;
const MAX_CHUNK: usize = 64 * 1024;

impl ShardBatch {
    fn new(target: CaptureTarget, first_time: DateTime<Utc>) -> Self {
        ShardBatch { target, first_time, chunks: Vec::new(), records: 0, bytes: 0 }
    }

    /// Writes the event's line at the end of the batch; returns its length.
    fn append(&mut self, event: &CaptureEvent<'_>) -> usize {
        // Base64 takes 4 bytes for 3; the record around the payloads takes about 300.
        let most = (event.input.len() + event.output.len()) / 3 * 4 + 512;
        let room = self.chunks.last().map_or(0, |chunk| chunk.capacity() - chunk.len());
        if room < most {
            let next = self.chunks.last().map_or(FIRST_CHUNK, |chunk| (2 * chunk.capacity()).min(MAX_CHUNK));
            self.chunks.push(Vec::with_capacity(next.max(most)));
        }
        let chunk = self.chunks.last_mut().expect("a chunk was pushed above");
        let start = chunk.len();
        write_line(chunk, event);
        chunk.len() - start
    }

    /// Removes the last line, `len` bytes, that the budget refused.
    fn take_back(&mut self, len: usize) {
        let chunk = self.chunks.last_mut().expect("the line was written to the last chunk");
        chunk.truncate(chunk.len() - len);
    }
}

/// The key of an endpoint's figures: its capture destination without the hour.
pub fn stats_key(dest: &CaptureDestination) -> String {
    format!("{}/{}/{}/{}", dest.bucket, dest.prefix.trim_end_matches('/'), dest.endpoint, dest.variant)
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("invalid capture destination: {0}")]
    InvalidDestination(String),
    #[error("the capture writer has stopped")]
    Closed,
    #[error("writing {failed_objects} capture object(s) holding {records} record(s) failed")]
    Write {
        failed_objects: usize,
        records: usize,
        #[source]
        source: object_store::Error,
    },
}

/// A cheap handle to the capture task; clones share it.
#[derive(Clone)]
pub struct CaptureWriter {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    max_buffered_records: usize,
    max_queued_records: usize,
    max_buffered_bytes: usize,
    sampling_percentage: f64,
}

enum Control {
    Flush(oneshot::Sender<Result<(), CaptureError>>),
    Shutdown(oneshot::Sender<Result<(), CaptureError>>),
}

impl CaptureWriter {
    /// Spawns the writer task on the current tokio runtime.
    pub fn start(store: Arc<dyn ObjectStore>, config: CaptureConfig) -> CaptureWriter {
        let (control, control_receiver) = mpsc::channel(16);
        // Twice the threads that record (tokio's workers, one per core), so that each keeps a
        // shard of its own however the thread-local indices fall.
        let shards = 2 * std::thread::available_parallelism().map_or(4, usize::from);
        let shared = Arc::new(Shared {
            targets: Mutex::default(),
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            bytes: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            threshold: Notify::new(),
        });
        let writer = CaptureWriter {
            shared: shared.clone(),
            control,
            max_buffered_records: config.max_buffered_records.max(1),
            max_queued_records: config.max_queued_records,
            max_buffered_bytes: config.max_buffered_bytes,
            sampling_percentage: config.sampling_percentage,
        };
        tokio::spawn(run(store, config, shared, control_receiver));
        writer
    }

    pub fn sampling_percentage(&self) -> f64 {
        self.sampling_percentage
    }

    /// The destination's target (the same one for every call with an equal destination), or
    /// why records cannot go there.
    pub fn target(&self, dest: &CaptureDestination) -> Result<CaptureTarget, CaptureError> {
        let key = stats_key(dest);
        let mut targets = lock(&self.shared.targets);
        if let Some(target) = targets.get(&key) {
            return Ok(target.clone());
        }
        hour_folder(dest, DateTime::UNIX_EPOCH)?;
        let target = CaptureTarget(Arc::new(TargetInner {
            destination: dest.clone(),
            key: key.clone(),
            counters: Counters::default(),
        }));
        targets.insert(key, target.clone());
        Ok(target)
    }

    /// [`Self::record_to`] the destination's target (the tests' shorthand; an endpoint keeps its
    /// target).
    #[cfg(test)]
    pub fn record(&self, dest: &CaptureDestination, event: CaptureEvent<'_>) -> Result<Recorded, CaptureError> {
        self.record_to(&self.target(dest)?, &event)
    }

    /// Writes one invocation's line into this thread's shard without waiting for anything but
    /// that shard's lock; when the buffer is full the record is dropped and counted.
    pub fn record_to(&self, target: &CaptureTarget, event: &CaptureEvent<'_>) -> Result<Recorded, CaptureError> {
        let shared = &*self.shared;
        let mut shard = lock(shared.shard());
        if shard.closed {
            return Err(CaptureError::Closed);
        }
        let queued = shared.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if queued > self.max_queued_records {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            drop(shard);
            target.dropped(1);
            return Ok(Recorded::Dropped);
        }
        let hour = event.time.timestamp().div_euclid(3600);
        let batch =
            shard.batches.entry((target.id(), hour)).or_insert_with(|| ShardBatch::new(target.clone(), event.time));
        let len = batch.append(event);
        if !shared.reserve(len, self.max_buffered_bytes) {
            batch.take_back(len);
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            drop(shard);
            target.dropped(1);
            return Ok(Recorded::Dropped);
        }
        batch.first_time = batch.first_time.min(event.time);
        batch.records += 1;
        batch.bytes += len;
        // Counted before the lock goes: the writer may write the record at once.
        target.0.counters.captured.fetch_add(1, Ordering::AcqRel);
        drop(shard);
        if queued >= self.max_buffered_records {
            shared.threshold.notify_one();
        }
        Ok(Recorded::Queued)
    }

    /// The figures of the endpoint capturing to `dest`.
    #[cfg(test)]
    pub fn stats(&self, dest: &CaptureDestination) -> CaptureStats {
        let targets = lock(&self.shared.targets);
        targets.get(&stats_key(dest)).map(CaptureTarget::stats).unwrap_or_default()
    }

    /// Every destination's figures since this process started, by [`stats_key`].
    pub fn all_stats(&self) -> Vec<(String, CaptureStats)> {
        let targets = lock(&self.shared.targets);
        targets.iter().map(|(key, target)| (key.clone(), target.stats())).collect()
    }

    /// Bytes of records buffered now.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Writes every record recorded before this call; returns once they are stored. On failure
    /// the records stay buffered and go out with the next flush.
    pub async fn flush(&self) -> Result<(), CaptureError> {
        let (reply, done) = oneshot::channel();
        self.control.send(Control::Flush(reply)).await.map_err(|_| CaptureError::Closed)?;
        done.await.map_err(|_| CaptureError::Closed)?
    }

    /// Stops taking records, writes every record already accepted, and stops the task. If that
    /// last write fails, its records are lost and the error counts them. Afterwards `record`
    /// and `flush` fail with [`CaptureError::Closed`] and `shutdown` does nothing.
    pub async fn shutdown(&self) -> Result<(), CaptureError> {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Shutdown(reply)).await.is_err() {
            return Ok(());
        }
        done.await.map_err(|_| CaptureError::Closed)?
    }
}

async fn run(
    store: Arc<dyn ObjectStore>,
    config: CaptureConfig,
    shared: Arc<Shared>,
    mut control: mpsc::Receiver<Control>,
) {
    let mut buffers = Buffers { shared: shared.clone(), batches: HashMap::new(), records: 0 };
    let period = config.flush_interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After a failed write, wait for the interval before retrying, rather than retrying on
    // every new record while the store is down.
    let mut retry_on_tick_only = false;
    loop {
        tokio::select! {
            _ = shared.threshold.notified() => {
                buffers.collect(false).await;
                if buffers.records >= config.max_buffered_records && !retry_on_tick_only {
                    retry_on_tick_only = background_flush(&mut buffers, store.as_ref()).await;
                }
            }
            command = control.recv() => match command {
                Some(Control::Flush(reply)) => {
                    buffers.collect(false).await;
                    let result = buffers.flush(store.as_ref()).await;
                    retry_on_tick_only = result.is_err();
                    let _ = reply.send(result);
                }
                Some(Control::Shutdown(reply)) => {
                    return shut_down(buffers, store.as_ref(), control, reply).await;
                }
                // Every handle is gone: nobody is left to hear about a failure but the log.
                None => {
                    buffers.collect(true).await;
                    if let Err(error) = buffers.flush(store.as_ref()).await {
                        let cause = cause(&error);
                        tracing::error!(
                            %error,
                            cause,
                            "capture records lost: writer dropped without shutdown"
                        );
                    }
                    return;
                }
            },
            _ = ticker.tick() => {
                buffers.collect(false).await;
                retry_on_tick_only = background_flush(&mut buffers, store.as_ref()).await;
            }
        }
    }
}

/// Closes the shards and writes what they hold too: a record that was accepted is written.
async fn shut_down(
    mut buffers: Buffers,
    store: &dyn ObjectStore,
    mut control: mpsc::Receiver<Control>,
    reply: oneshot::Sender<Result<(), CaptureError>>,
) {
    control.close();
    buffers.collect(true).await;
    let mut others = Vec::new();
    while let Some(command) = control.recv().await {
        match command {
            Control::Flush(other) | Control::Shutdown(other) => others.push(other),
        }
    }
    let result = buffers.flush(store).await;
    for other in others {
        let outcome = result.as_ref().map_err(|_| CaptureError::Closed).copied();
        let _ = other.send(outcome);
    }
    let _ = reply.send(result);
}

/// Flushes with nobody waiting for the result, so this is where a failure is logged. Returns
/// whether it failed.
async fn background_flush(buffers: &mut Buffers, store: &dyn ObjectStore) -> bool {
    match buffers.flush(store).await {
        Ok(()) => false,
        Err(error) => {
            let cause = cause(&error);
            tracing::warn!(%error, cause, "capture flush failed; retrying on the next interval");
            true
        }
    }
}

/// The store's own message, which the error's display leaves to its source.
fn cause(error: &CaptureError) -> Option<String> {
    std::error::Error::source(error).map(ToString::to_string)
}

/// The writer's batches: collected from the shards, or kept after a failed write.
struct Buffers {
    /// Keyed by destination and hour, as the shards' batches.
    batches: HashMap<(usize, i64), Batch>,
    records: usize,
    shared: Arc<Shared>,
}

struct Batch {
    target: CaptureTarget,
    folder: Path,
    first_time: DateTime<Utc>,
    /// The object's content, in parts; written as they are.
    chunks: Vec<Bytes>,
    records: usize,
    bytes: usize,
}

/// The shard's batches, unless an invocation holds it now; with `close`, the shard takes no
/// more lines afterwards.
fn take_shard(shard: &Mutex<Shard>, close: bool) -> Option<ShardBatches> {
    let mut shard = match shard.try_lock() {
        Ok(shard) => shard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return None,
    };
    shard.closed |= close;
    Some(std::mem::take(&mut shard.batches))
}

impl Buffers {
    /// Takes every shard's batches; with `close`, the shards take no more lines afterwards.
    async fn collect(&mut self, close: bool) {
        let shared = Arc::clone(&self.shared);
        for shard in shared.shards.iter() {
            // An invocation holds its shard only while it writes one line: rather than block
            // this worker thread on it, let other tasks run and come back.
            let taken = loop {
                match take_shard(shard, close) {
                    Some(taken) => break taken,
                    None => tokio::task::yield_now().await,
                }
            };
            let mut records = 0;
            for (key, batch) in taken {
                records += batch.records;
                self.add(key, batch);
            }
            shared.queued.fetch_sub(records, Ordering::AcqRel);
        }
    }

    fn add(&mut self, key: (usize, i64), batch: ShardBatch) {
        let ShardBatch { target, first_time, chunks, records, bytes } = batch;
        if records == 0 {
            return; // only lines the budget refused
        }
        let chunks = chunks.into_iter().filter(|chunk| !chunk.is_empty()).map(Bytes::from);
        match self.batches.entry(key) {
            Entry::Occupied(entry) => {
                let batch = entry.into_mut();
                batch.first_time = batch.first_time.min(first_time);
                batch.chunks.extend(chunks);
                batch.records += records;
                batch.bytes += bytes;
            }
            Entry::Vacant(entry) => {
                // The destination was checked when its target was made; only the hour differs.
                let folder = match hour_folder(&target.0.destination, first_time) {
                    Ok(folder) => folder,
                    Err(error) => {
                        tracing::error!(%error, records, "capture records dropped");
                        self.shared.release(bytes);
                        target.0.counters.captured.fetch_sub(records as u64, Ordering::AcqRel);
                        target.dropped(records);
                        return;
                    }
                };
                entry.insert(Batch { target, folder, first_time, chunks: chunks.collect(), records, bytes });
            }
        }
        self.records += records;
    }

    /// Writes each batch as a new object; failed batches stay buffered.
    async fn flush(&mut self, store: &dyn ObjectStore) -> Result<(), CaptureError> {
        let mut failed: Option<(usize, usize, object_store::Error)> = None;
        for (key, batch) in std::mem::take(&mut self.batches) {
            let location = file_path(&batch.folder, batch.first_time);
            let payload: PutPayload = batch.chunks.iter().cloned().collect();
            match store.put(&location, payload).await {
                Ok(_) => {
                    self.records -= batch.records;
                    self.shared.release(batch.bytes);
                    let counters = &batch.target.0.counters;
                    counters.written.fetch_add(batch.records as u64, Ordering::AcqRel);
                    counters.last_flush_micros.store(Utc::now().timestamp_micros(), Ordering::Release);
                }
                Err(error) => {
                    failed = Some(match failed {
                        None => (1, batch.records, error),
                        Some((objects, records, first)) => (objects + 1, records + batch.records, first),
                    });
                    self.batches.insert(key, batch);
                }
            }
        }
        match failed {
            None => Ok(()),
            Some((failed_objects, records, source)) => Err(CaptureError::Write { failed_objects, records, source }),
        }
    }
}

/// `{bucket}/{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh` for the hour of `time` (UTC).
fn hour_folder(dest: &CaptureDestination, time: DateTime<Utc>) -> Result<Path, CaptureError> {
    for (what, name) in [("endpoint", &dest.endpoint), ("variant", &dest.variant)] {
        if name.is_empty() || name.contains('/') {
            return Err(CaptureError::InvalidDestination(format!(
                "the {what} name {name:?} must be one non-empty path segment"
            )));
        }
    }
    let prefix = dest.prefix.strip_suffix('/').unwrap_or(&dest.prefix);
    let hour = time.format("%Y/%m/%d/%H");
    let under_bucket = if prefix.is_empty() {
        format!("{}/{}/{hour}", dest.endpoint, dest.variant)
    } else {
        format!("{prefix}/{}/{}/{hour}", dest.endpoint, dest.variant)
    };
    crate::artifacts::location_path(&dest.bucket, &under_bucket)
        .map_err(|e| CaptureError::InvalidDestination(e.to_string()))
}

/// `{folder}/{mm}-{ss}-{mmm}-{uuid}.jsonl`; the random UUID keeps every flush's object new.
fn file_path(folder: &Path, first_time: DateTime<Utc>) -> Path {
    let name = format!("{}-{}.jsonl", first_time.format("%M-%S-%3f"), uuid::Uuid::new_v4());
    folder.clone().join(name)
}

/// One side of the exchange as SageMaker records it: text as it is, anything else base64.
struct CapturedPayload<'a> {
    observed_content_type: &'a str,
    mode: &'static str,
    data: Cow<'a, str>,
    encoding: &'static str,
}

/// Writes the record as one compact JSON line, ending in `\n`, at the end of `out`: the bytes
/// `serde_json` writes for SageMaker's record (the tests compare the two), written out here
/// because `serde_json` escapes a string byte by byte, and the request body it escaped was a
/// third of a captured invocation's cost. A body with nothing to escape (any CSV, most JSON) is
/// now found so with a vectorised scan and copied as it is.
fn write_line(out: &mut Vec<u8>, event: &CaptureEvent<'_>) {
    out.extend_from_slice(br#"{"captureData":{"endpointInput":"#);
    write_payload(out, &captured(event.input_content_type, "INPUT", event.input));
    out.extend_from_slice(br#","endpointOutput":"#);
    write_payload(out, &captured(event.output_content_type, "OUTPUT", event.output));
    out.extend_from_slice(br#"},"eventMetadata":{"eventId":""#);
    out.extend_from_slice(event.event_id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
    out.push(b'"');
    if let Some(id) = event.inference_id {
        out.extend_from_slice(br#","inferenceId":"#);
        write_str(out, id);
    }
    out.extend_from_slice(br#","inferenceTime":""#);
    write_utc_second(out, event.time.timestamp());
    out.extend_from_slice(b"Z\"},\"eventVersion\":\"0\"}\n");
}

fn write_payload(out: &mut Vec<u8>, payload: &CapturedPayload<'_>) {
    out.extend_from_slice(br#"{"observedContentType":"#);
    write_str(out, payload.observed_content_type);
    out.extend_from_slice(br#","mode":""#);
    out.extend_from_slice(payload.mode.as_bytes());
    out.extend_from_slice(br#"","data":"#);
    write_str(out, &payload.data);
    out.extend_from_slice(br#","encoding":""#);
    out.extend_from_slice(payload.encoding.as_bytes());
    out.extend_from_slice(br#""}"#);
}

/// CSV and JSON bodies are kept as text; anything else, or text that is not UTF-8, is base64
/// (SageMaker's `CsvContentTypes` / `JsonContentTypes` defaults).
fn captured<'a>(content_type: &'a str, mode: &'static str, data: &'a [u8]) -> CapturedPayload<'a> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let text_encoding = if essence.eq_ignore_ascii_case("text/csv") {
        Some("CSV")
    } else if essence.eq_ignore_ascii_case("application/json") || essence.eq_ignore_ascii_case("application/jsonlines")
    {
        Some("JSON")
    } else {
        None
    };
    let (encoding, data) = match (text_encoding, std::str::from_utf8(data)) {
        (Some(encoding), Ok(text)) => (encoding, Cow::Borrowed(text)),
        _ => ("BASE64", Cow::Owned(base64::engine::general_purpose::STANDARD.encode(data))),
    };
    CapturedPayload { observed_content_type: content_type, mode, data, encoding }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use futures::TryStreamExt;
    use object_store::local::LocalFileSystem;

    struct Fixture {
        dir: tempfile::TempDir,
        store: Arc<dyn ObjectStore>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        Fixture { dir, store }
    }

    fn quiet_config() -> CaptureConfig {
        CaptureConfig {
            flush_interval: Duration::from_secs(3600),
            max_buffered_records: 1_000_000,
            max_queued_records: 16,
            max_buffered_bytes: 64 << 20,
            sampling_percentage: 100.0,
        }
    }

    fn dest() -> CaptureDestination {
        CaptureDestination {
            bucket: "data".into(),
            prefix: "capture/".into(),
            endpoint: "churn".into(),
            variant: "AllTraffic".into(),
        }
    }

    fn at(h: u32, m: u32, s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 2, 14, h, m, s).unwrap() + chrono::Duration::milliseconds(ms.into())
    }

    fn csv_event(time: DateTime<Utc>) -> CaptureEvent<'static> {
        CaptureEvent {
            input_content_type: "text/csv",
            input: b"69,0,153.7\n",
            output_content_type: "text/csv; charset=utf-8",
            output: b"0.0254181120544672\n",
            inference_id: None,
            event_id: uuid::Uuid::new_v4(),
            time,
        }
    }

    /// (location, content) of every object, sorted by location.
    async fn objects(store: &Arc<dyn ObjectStore>) -> Vec<(String, String)> {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = Vec::new();
        for meta in metas {
            let bytes = store.get(&meta.location).await.unwrap().bytes().await;
            out.push((meta.location.to_string(), String::from_utf8(bytes.unwrap().to_vec()).unwrap()));
        }
        out.sort();
        out
    }

    /// The file name without its random UUID: `{mm}-{ss}-{mmm}`.
    fn name_time(location: &str) -> &str {
        let name = location.rsplit('/').next().unwrap();
        assert!(name.ends_with(".jsonl"), "{name}");
        assert_eq!(name.len(), "00-00-000-".len() + 36 + ".jsonl".len(), "{name}");
        &name[..9]
    }

    fn folder(location: &str) -> &str {
        &location[..location.rfind('/').unwrap()]
    }

    /// Polls until `count` objects exist; the interval and size flushes run on their own.
    async fn wait_for_objects(store: &Arc<dyn ObjectStore>, count: usize) -> Vec<(String, String)> {
        for _ in 0..500 {
            let found = objects(store).await;
            if found.len() >= count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {count} capture objects within 5 s");
    }

    #[tokio::test]
    async fn record_shape_is_byte_for_byte_sagemakers() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let event = CaptureEvent {
            inference_id: Some("req-42"),
            event_id: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".parse().unwrap(),
            output: b"0.0254181120544672",
            ..csv_event(at(17, 25, 49, 820))
        };
        writer.record(&dest(), event).unwrap();
        writer.flush().await.unwrap();

        let found = objects(&fx.store).await;
        assert_eq!(found.len(), 1);
        let (location, content) = &found[0];
        assert_eq!(folder(location), "data/capture/churn/AllTraffic/2022/02/14/17");
        assert_eq!(name_time(location), "25-49-820");
        let expected = concat!(
            r#"{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"69,0,153.7\n","encoding":"CSV"},"#,
            r#""endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},"#,
            r#""eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","inferenceId":"req-42","inferenceTime":"2022-02-14T17:25:49Z"},"#,
            r#""eventVersion":"0"}"#,
            "\n"
        );
        assert_eq!(content, expected);
    }

    #[tokio::test]
    async fn inference_id_appears_only_when_given() {
        let without = capture_line(&csv_event(at(9, 0, 0, 0)));
        let without: serde_json::Value = serde_json::from_slice(&without).unwrap();
        let metadata = without["eventMetadata"].as_object().unwrap();
        assert!(!metadata.contains_key("inferenceId"));
        assert_eq!(metadata.keys().collect::<Vec<_>>(), ["eventId", "inferenceTime"]);

        let with = capture_line(&CaptureEvent { inference_id: Some("abc"), ..csv_event(at(9, 0, 0, 0)) });
        let with: serde_json::Value = serde_json::from_slice(&with).unwrap();
        assert_eq!(with["eventMetadata"]["inferenceId"], "abc");
    }

    #[test]
    fn encodings_follow_the_content_type() {
        let json = captured("application/json", "INPUT", b"{\"instances\": [[1, 2]]}");
        assert_eq!((json.encoding, &*json.data), ("JSON", "{\"instances\": [[1, 2]]}"));
        let jsonl = captured("Application/JSONLines; charset=utf-8", "OUTPUT", b"{\"score\": 1.0}\n");
        assert_eq!((jsonl.encoding, &*jsonl.data), ("JSON", "{\"score\": 1.0}\n"));
        assert_eq!(jsonl.observed_content_type, "Application/JSONLines; charset=utf-8");
        let csv = captured("TEXT/CSV", "INPUT", b"1,2");
        assert_eq!((csv.encoding, &*csv.data), ("CSV", "1,2"));
    }

    #[test]
    fn unlisted_or_non_utf8_bodies_are_base64() {
        let npy = captured("application/x-npy", "INPUT", &[0x00, 0x9f, 0x92, 0x96]);
        assert_eq!((npy.encoding, &*npy.data), ("BASE64", "AJ+Slg=="));
        let plain = captured("text/plain", "OUTPUT", b"hello");
        assert_eq!((plain.encoding, &*plain.data), ("BASE64", "aGVsbG8="));
        let broken_csv = captured("text/csv", "INPUT", b"1,\xff");
        assert_eq!((broken_csv.encoding, &*broken_csv.data), ("BASE64", "MSz/"));
        let empty = captured("", "OUTPUT", b"");
        assert_eq!((empty.encoding, &*empty.data), ("BASE64", ""));
    }

    #[tokio::test]
    async fn base64_record_in_a_written_line() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let event = CaptureEvent {
            input_content_type: "application/x-image",
            input: &[0xff, 0xd8, 0xff],
            ..csv_event(at(8, 1, 2, 3))
        };
        writer.record(&dest(), event).unwrap();
        writer.shutdown().await.unwrap();
        let found = objects(&fx.store).await;
        let line: serde_json::Value = serde_json::from_str(&found[0].1).unwrap();
        let input = &line["captureData"]["endpointInput"];
        assert_eq!(input["encoding"], "BASE64");
        assert_eq!(input["data"], "/9j/");
        assert_eq!(input["observedContentType"], "application/x-image");
        assert_eq!(line["captureData"]["endpointOutput"]["encoding"], "CSV");
    }

    #[tokio::test]
    async fn events_are_partitioned_by_hour() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        writer.record(&dest(), csv_event(at(10, 59, 59, 999))).unwrap();
        writer.record(&dest(), csv_event(at(11, 0, 0, 0))).unwrap();
        writer.record(&dest(), csv_event(at(10, 30, 0, 5))).unwrap();
        writer.flush().await.unwrap();

        let found = objects(&fx.store).await;
        let layout: Vec<(&str, &str, usize)> = found
            .iter()
            .map(|(location, content)| (folder(location), name_time(location), content.lines().count()))
            .collect();
        assert_eq!(
            layout,
            [
                ("data/capture/churn/AllTraffic/2022/02/14/10", "30-00-005", 2),
                ("data/capture/churn/AllTraffic/2022/02/14/11", "00-00-000", 1),
            ]
        );
    }

    #[tokio::test]
    async fn destinations_get_their_own_folders() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let other = CaptureDestination { prefix: String::new(), variant: "Shadow".into(), ..dest() };
        writer.record(&dest(), csv_event(at(1, 0, 0, 0))).unwrap();
        writer.record(&other, csv_event(at(1, 0, 0, 0))).unwrap();
        writer.flush().await.unwrap();
        let folders: Vec<String> =
            objects(&fx.store).await.iter().map(|(location, _)| folder(location).to_string()).collect();
        assert_eq!(folders, ["data/capture/churn/AllTraffic/2022/02/14/01", "data/churn/Shadow/2022/02/14/01",]);
    }

    #[tokio::test]
    async fn shutdown_flushes_every_concurrent_record() {
        const N: usize = 300;
        let fx = fixture();
        // Room for every record in the queue: none is dropped, all are written at shutdown.
        let config = CaptureConfig { max_queued_records: N, max_buffered_records: 64, ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        let mut tasks = Vec::new();
        for i in 0..N {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let hour = u32::try_from(i % 3).unwrap();
                writer.record(&dest(), csv_event(at(hour, 0, 0, 0)))
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        writer.shutdown().await.unwrap();

        let found = objects(&fx.store).await;
        let lines: Vec<serde_json::Value> = found
            .iter()
            .flat_map(|(_, content)| content.lines())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), N);
        let ids: std::collections::HashSet<&str> =
            lines.iter().map(|line| line["eventMetadata"]["eventId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), N);

        assert!(matches!(writer.record(&dest(), csv_event(at(0, 0, 0, 0))), Err(CaptureError::Closed)));
        assert!(matches!(writer.flush().await, Err(CaptureError::Closed)));
        writer.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn interval_flush_writes_without_being_asked() {
        let fx = fixture();
        let config = CaptureConfig { flush_interval: Duration::from_millis(20), ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        writer.record(&dest(), csv_event(at(3, 4, 5, 6))).unwrap();
        let found = wait_for_objects(&fx.store, 1).await;
        assert_eq!(found[0].1.lines().count(), 1);
    }

    #[tokio::test]
    async fn size_flush_writes_once_enough_records_are_buffered() {
        let fx = fixture();
        let config = CaptureConfig { max_buffered_records: 3, ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        for _ in 0..2 {
            writer.record(&dest(), csv_event(at(3, 0, 0, 0))).unwrap();
        }
        // Let the task drain the channel: two records stay under the threshold.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(objects(&fx.store).await.is_empty());
        writer.record(&dest(), csv_event(at(3, 0, 0, 0))).unwrap();
        let found = wait_for_objects(&fx.store, 1).await;
        assert_eq!(found[0].1.lines().count(), 3);
    }

    #[tokio::test]
    async fn each_flush_writes_a_new_object() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        writer.record(&dest(), csv_event(at(5, 0, 0, 0))).unwrap();
        writer.flush().await.unwrap();
        let first = objects(&fx.store).await;
        writer.record(&dest(), csv_event(at(5, 0, 0, 0))).unwrap();
        writer.flush().await.unwrap();
        // Nothing buffered: no empty object.
        writer.flush().await.unwrap();

        let found = objects(&fx.store).await;
        assert_eq!(found.len(), 2);
        assert!(found.contains(&first[0]), "the first object is unchanged");
        assert!(found.iter().all(|(_, content)| content.lines().count() == 1));
    }

    #[tokio::test]
    async fn failed_writes_keep_records_for_the_next_flush() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        // A file where the bucket folder should be makes every write under it fail.
        let blocker = fx.dir.path().join("data");
        std::fs::write(&blocker, b"not a folder").unwrap();

        writer.record(&dest(), csv_event(at(6, 0, 0, 0))).unwrap();
        writer.record(&dest(), csv_event(at(7, 0, 0, 0))).unwrap();
        for _ in 0..2 {
            match writer.flush().await {
                Err(CaptureError::Write { failed_objects, records, .. }) => {
                    assert_eq!((failed_objects, records), (2, 2))
                }
                other => panic!("expected a write error, got {other:?}"),
            }
        }
        writer.record(&dest(), csv_event(at(7, 30, 0, 0))).unwrap();

        std::fs::remove_file(&blocker).unwrap();
        writer.flush().await.unwrap();
        let found = objects(&fx.store).await;
        let counts: Vec<usize> = found.iter().map(|(_, c)| c.lines().count()).collect();
        assert_eq!(counts, [1, 2]);
    }

    #[tokio::test]
    async fn failed_shutdown_reports_the_lost_records() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        std::fs::write(fx.dir.path().join("data"), b"not a folder").unwrap();
        writer.record(&dest(), csv_event(at(6, 0, 0, 0))).unwrap();
        match writer.shutdown().await {
            Err(CaptureError::Write { records: 1, .. }) => {}
            other => panic!("expected a write error for one record, got {other:?}"),
        }
        assert!(matches!(writer.record(&dest(), csv_event(at(6, 0, 0, 0))), Err(CaptureError::Closed)));
    }

    #[tokio::test]
    async fn records_still_queued_at_shutdown_are_written() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        // On this single-threaded runtime the writer task has not run yet: both records are
        // still in the queue when the shutdown request joins them.
        writer.record(&dest(), csv_event(at(2, 0, 0, 0))).unwrap();
        writer.record(&dest(), csv_event(at(2, 0, 0, 1))).unwrap();
        writer.shutdown().await.unwrap();
        let found = objects(&fx.store).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.lines().count(), 2);
    }

    #[tokio::test]
    async fn invalid_destinations_are_refused_at_record_time() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let cases = [
            CaptureDestination { endpoint: "a/b".into(), ..dest() },
            CaptureDestination { variant: String::new(), ..dest() },
            CaptureDestination { bucket: String::new(), ..dest() },
            CaptureDestination { prefix: "../escape".into(), ..dest() },
            CaptureDestination { prefix: "/abs".into(), ..dest() },
        ];
        for case in cases {
            let result = writer.record(&case.clone(), csv_event(at(1, 0, 0, 0)));
            assert!(matches!(result, Err(CaptureError::InvalidDestination(_))), "{case:?}: {result:?}");
        }
        writer.shutdown().await.unwrap();
        assert!(objects(&fx.store).await.is_empty());
    }

    /// A full queue never makes an invocation wait: the record is dropped and counted, and
    /// captured + dropped is every record offered.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let fx = fixture();
        let config = CaptureConfig { max_queued_records: 3, ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        // The single-threaded runtime does not run the writer between these calls.
        let outcomes: Vec<Recorded> =
            (0..10).map(|i| writer.record(&dest(), csv_event(at(4, 0, 0, i))).unwrap()).collect();
        assert_eq!(outcomes.iter().filter(|o| **o == Recorded::Queued).count(), 3);
        let stats = writer.stats(&dest());
        assert_eq!((stats.captured, stats.dropped), (3, 7));
        writer.flush().await.unwrap();
        let stats = writer.stats(&dest());
        assert_eq!(stats.written, 3);
        assert!(stats.last_flush.is_some());
        assert_eq!(writer.buffered_bytes(), 0, "written records leave the budget");
    }

    /// Threads recording at once while the writer collects and writes all the time (a flush
    /// every 50 records): every record is written exactly once, none dropped, and each thread's
    /// lines keep their order within an object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_from_many_threads_are_each_written_once() {
        const THREADS: usize = 6;
        const PER_THREAD: usize = 2_000;
        let fx = fixture();
        let config = CaptureConfig { max_queued_records: 1_000_000, max_buffered_records: 50, ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        // The inference id names the thread and the record's place in its order.
                        let id = format!("{thread}-{i:05}");
                        let event = CaptureEvent { inference_id: Some(&id), ..csv_event(at(4, 0, 0, 0)) };
                        assert_eq!(writer.record(&dest(), event).unwrap(), Recorded::Queued);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        writer.shutdown().await.unwrap();

        let found = objects(&fx.store).await;
        assert!(found.len() > 1, "the writer flushed while the threads recorded");
        let mut seen = std::collections::HashSet::new();
        for (_, content) in &found {
            let mut last: HashMap<String, String> = HashMap::new();
            for line in content.lines() {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                let id = line["eventMetadata"]["inferenceId"].as_str().unwrap().to_string();
                let (thread, place) = id.split_once('-').unwrap();
                if let Some(before) = last.insert(thread.to_string(), place.to_string()) {
                    assert!(before.as_str() < place, "thread {thread}: {before} before {place}");
                }
                assert!(seen.insert(id.clone()), "{id} written twice");
            }
        }
        assert_eq!(seen.len(), THREADS * PER_THREAD);
        let stats = writer.stats(&dest());
        assert_eq!((stats.captured, stats.written, stats.dropped), (seen.len() as u64, seen.len() as u64, 0));
        assert_eq!(writer.buffered_bytes(), 0);
    }

    /// A body larger than a chunk gets a chunk of its own; the lines around it stay whole.
    #[tokio::test]
    async fn a_line_larger_than_a_chunk_is_written_whole() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let big: String = (0..40_000).map(|i| format!("{i},")).collect();
        assert!(big.len() > MAX_CHUNK);
        writer.record(&dest(), csv_event(at(9, 0, 0, 0))).unwrap();
        writer.record(&dest(), CaptureEvent { input: big.as_bytes(), ..csv_event(at(9, 0, 0, 1)) }).unwrap();
        writer.record(&dest(), csv_event(at(9, 0, 0, 2))).unwrap();
        writer.flush().await.unwrap();
        let found = objects(&fx.store).await;
        assert_eq!(found.len(), 1);
        let inputs: Vec<String> = found[0]
            .1
            .lines()
            .map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                line["captureData"]["endpointInput"]["data"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(inputs, ["69,0,153.7\n", big.as_str(), "69,0,153.7\n"]);
    }

    /// A writer busy with a slow write (here: not run at all) queues the records of a burst
    /// that fit the byte budget instead of dropping them: the queue's count is not the limit.
    #[tokio::test]
    async fn a_burst_that_fits_the_byte_budget_is_queued_whole() {
        let fx = fixture();
        let config = CaptureConfig {
            max_queued_records: queue_capacity(1000),
            max_buffered_records: 1000,
            max_buffered_bytes: 64 * 1024 * 1024,
            ..quiet_config()
        };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        const BURST: u32 = 20_000;
        // The single-threaded runtime does not run the writer between these calls.
        for i in 0..BURST {
            writer.record(&dest(), csv_event(at(6, 0, i / 1000, i % 1000))).unwrap();
        }
        let stats = writer.stats(&dest());
        assert_eq!((stats.captured, stats.dropped), (u64::from(BURST), 0));
        writer.flush().await.unwrap();
        assert_eq!(writer.stats(&dest()).written, u64::from(BURST));
    }

    /// SageMaker's record as `serde_json` writes it: what [`write_line`] must write, byte for byte.
    fn serde_line(event: &CaptureEvent<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Record<'a> {
            capture_data: Data<'a>,
            event_metadata: Metadata<'a>,
            event_version: &'static str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Data<'a> {
            endpoint_input: Payload<'a>,
            endpoint_output: Payload<'a>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            observed_content_type: &'a str,
            mode: &'static str,
            data: Cow<'a, str>,
            encoding: &'static str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Metadata<'a> {
            event_id: uuid::Uuid,
            #[serde(skip_serializing_if = "Option::is_none")]
            inference_id: Option<&'a str>,
            inference_time: String,
        }
        let payload = |content_type, mode, data| {
            let CapturedPayload { observed_content_type, mode, data, encoding } = captured(content_type, mode, data);
            Payload { observed_content_type, mode, data, encoding }
        };
        let record = Record {
            capture_data: Data {
                endpoint_input: payload(event.input_content_type, "INPUT", event.input),
                endpoint_output: payload(event.output_content_type, "OUTPUT", event.output),
            },
            event_metadata: Metadata {
                event_id: event.event_id,
                inference_id: event.inference_id,
                inference_time: event.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
            event_version: "0",
        };
        let mut line = serde_json::to_vec(&record).unwrap();
        line.push(b'\n');
        line
    }

    #[test]
    fn lines_are_the_bytes_serde_json_writes() {
        // Escapes at the start, the end and across the 32-byte blocks of the scan, every control
        // character, quotes and backslashes, and text that needs none (non-ASCII, DEL included).
        let mut texts: Vec<String> = vec![
            String::new(),
            "1,2,3\n4,5,6\n".into(),
            "\"quoted\"".into(),
            r"back\slash".into(),
            "tab\there".into(),
            "caf\u{e9} \u{1f600} \u{7f}".into(),
            (0u8..0x20).map(char::from).collect(),
            "{\"instances\": [[1.5, \"a\\\"b\"]]}".into(),
        ];
        for position in [0, 1, 30, 31, 32, 33, 63, 64, 65, 95] {
            for escaped in ['"', '\\', '\u{1}', '\u{1f}', '\n'] {
                let mut text = "7".repeat(96);
                text.replace_range(position..=position, &escaped.to_string());
                texts.push(text);
            }
        }
        for text in &texts {
            for content_type in ["text/csv", "application/json", "text/\"odd\"; q=1", "application/x-npy"] {
                for inference_id in [None, Some(text.as_str()), Some("req-1")] {
                    let event = CaptureEvent {
                        input_content_type: content_type,
                        input: text.as_bytes(),
                        output_content_type: "text/csv; charset=utf-8",
                        output: text.as_bytes(),
                        inference_id,
                        ..csv_event(at(23, 59, 59, 999))
                    };
                    let ours = capture_line(&event);
                    assert_eq!(
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&serde_line(&event)),
                        "{text:?}"
                    );
                }
            }
        }
    }

    fn capture_line(event: &CaptureEvent<'_>) -> Vec<u8> {
        let mut line = Vec::new();
        write_line(&mut line, event);
        line
    }

    /// An endpoint reloaded (a new model revision) resolves the same target: its figures go on.
    #[tokio::test]
    async fn one_destination_has_one_target_and_one_set_of_figures() {
        let fx = fixture();
        let writer = CaptureWriter::start(Arc::clone(&fx.store), quiet_config());
        let (first, second) = (writer.target(&dest()).unwrap(), writer.target(&dest()).unwrap());
        assert_eq!(first.id(), second.id());
        writer.record_to(&first, &csv_event(at(8, 0, 0, 0))).unwrap();
        writer.record_to(&second, &csv_event(at(8, 0, 0, 1))).unwrap();
        second.sampled_out();
        writer.flush().await.unwrap();
        let stats = writer.stats(&dest());
        assert_eq!((stats.captured, stats.written, stats.sampled_out), (2, 2, 1));
        assert_eq!(wait_for_objects(&fx.store, 1).await.len(), 1, "one hour, one destination: one object");
    }

    /// While the store keeps failing, buffered records stay within the byte budget: the rest is
    /// dropped and counted, and nothing is lost silently.
    #[tokio::test]
    async fn a_failing_store_cannot_grow_memory_without_bound() {
        let fx = fixture();
        // A file where the bucket's folder should be: every write fails.
        std::fs::write(fx.dir.path().join("data"), b"not a folder").unwrap();
        let line_len = capture_line(&csv_event(at(5, 0, 0, 0))).len();
        let config = CaptureConfig { max_buffered_bytes: 20 * line_len, max_queued_records: 1000, ..quiet_config() };
        let writer = CaptureWriter::start(Arc::clone(&fx.store), config);
        for i in 0..100 {
            writer.record(&dest(), csv_event(at(5, 0, 0, i))).unwrap();
            if i % 10 == 0 {
                assert!(writer.flush().await.is_err());
            }
        }
        assert!(writer.buffered_bytes() <= 20 * line_len, "{} bytes buffered", writer.buffered_bytes());
        let stats = writer.stats(&dest());
        assert_eq!(stats.captured + stats.dropped, 100);
        assert_eq!(stats.captured, 20);
        assert_eq!(stats.written, 0);
        // The store comes back: what was kept is written.
        std::fs::remove_file(fx.dir.path().join("data")).unwrap();
        writer.flush().await.unwrap();
        assert_eq!(writer.stats(&dest()).written, 20);
        assert_eq!(writer.buffered_bytes(), 0);
    }
}
