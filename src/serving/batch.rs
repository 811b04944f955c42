//! Batch transform of one object, as SageMaker runs one for the solution's batch pipelines
//! (`SplitType=Line`, `AssembleWith=Line`, `Accept=text/csv`): every input line is a record,
//! every record gives one output line, in input order.
//!
//! The object streams through in chunks of whole lines; chunks are scored on rayon's threads,
//! several at once, and written back in order to a multipart upload, so memory stays flat in the
//! input's size and the output object appears only once it is complete.
//!
//! Blank lines are not records and give no output line, as SageMaker's line splitter drops them.
//! A custom algorithm gets each chunk as one mini-batch request and answers one line per record.
//! Input is CSV, or JSON lines for objects named `*.jsonl` / `*.json` (one row per line, as the
//! invocation API takes them).

use super::builtin::BuiltinModel;
use super::codec::{self, CodecError, FeatureMatrix, RequestFormat, ResponseFormat};
use super::process::{ProcessError, ProcessModel, ProcessRequest};
use crate::tasks::{AbortOnDrop, panic_message};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesOrdered, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::sync::Arc;

/// Input is cut into chunks of about this many bytes (whole lines) for scoring.
const CHUNK_BYTES: usize = 1024 * 1024;
/// Input is read in ranges of this many bytes (one request to S3, one read for a local file):
/// one chunk each, so a chunk's memory is freed as soon as it is scored. Larger reads cut into
/// several chunks kept a whole read alive until its last chunk was written, and their
/// multi-megabyte allocations, freed in whatever order scoring finished, raised the peak from
/// run to run (measured: 68-92 MiB with 4 MiB reads, 61-73 MiB with these).
const READ_BYTES: u64 = 1024 * 1024;
/// Ranges read at once, ahead of the scoring: S3 answers each after a round trip, so one at a
/// time would leave the cores waiting.
const READS_AHEAD: usize = 4;
/// The longest line accepted: SageMaker's default `MaxPayloadInMB` for one record.
pub const MAX_LINE_BYTES: usize = 6 * 1024 * 1024;
/// Output parts: S3 wants every part but the last to be at least 5 MiB.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts being uploaded while the next fills. One: the output is a few percent of the input, so
/// a part uploads long before the next is full; a second would only show in a long run's peak
/// memory, when a write happened to be slow.
const PARTS_IN_FLIGHT: usize = 1;

/// What one object's transform read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransformStats {
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A record the model cannot take; `line` and `column` are 1-based.
    #[error("{file}: line {line}{}: {message}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
    Record { file: String, line: usize, column: Option<usize>, message: String },
    #[error("{file}: line {line} is longer than {MAX_LINE_BYTES} bytes (SageMaker's MaxPayloadInMB of 6)")]
    LineTooLong { file: String, line: usize },
    #[error("{file}: {source}")]
    Storage { file: String, source: object_store::Error },
    /// A built-in model failed to evaluate records it accepted.
    #[error("{file}: lines {first}-{last}: the model failed: {message}")]
    Model { file: String, first: usize, last: usize, message: String },
    /// A custom algorithm refused or failed a mini-batch.
    #[error("{file}: {lines}: {message}")]
    Algorithm { file: String, lines: String, message: String, transient: bool },
}

impl BatchError {
    /// A failure of the object store rather than of the data.
    pub fn is_storage(&self) -> bool {
        matches!(self, BatchError::Storage { .. })
    }

    /// Worth retrying (storage trouble, an algorithm restarting): the job runs again and
    /// resumes from its checkpoint.
    pub fn is_transient(&self) -> bool {
        matches!(self, BatchError::Storage { .. } | BatchError::Algorithm { transient: true, .. })
    }
}

/// The input format of an object, from its name.
pub fn input_format(name: &str) -> RequestFormat {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".jsonl") || lower.ends_with(".json") { RequestFormat::JsonLines } else { RequestFormat::Csv }
}

/// Whole lines of the input, and the number of the first.
struct Chunk {
    first_line: usize,
    bytes: Bytes,
}

impl Chunk {
    /// The number of the chunk's last line (its final newline ends that line, not a new one).
    fn last_line(&self) -> usize {
        let newlines = self.bytes.iter().filter(|b| **b == b'\n').count();
        self.first_line + newlines - usize::from(self.bytes.ends_with(b"\n") && newlines > 0)
    }
}

/// Cuts a byte stream into chunks of whole lines, without copying: a chunk is a slice of what
/// was read, except the one line that straddles two reads (copied once, as its own chunk).
struct Chunker {
    stream: BoxStream<'static, Result<Bytes, object_store::Error>>,
    /// The start of a line whose end has not been read yet.
    carry: Vec<u8>,
    ready: std::collections::VecDeque<Chunk>,
    next_line: usize,
    started: bool,
    finished: bool,
    file: String,
}

impl Chunker {
    fn new(stream: BoxStream<'static, Result<Bytes, object_store::Error>>, file: String) -> Self {
        Chunker {
            stream,
            carry: Vec::new(),
            ready: Default::default(),
            next_line: 1,
            started: false,
            finished: false,
            file,
        }
    }

    async fn next(&mut self) -> Result<Option<Chunk>, BatchError> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Ok(Some(chunk));
            }
            if self.finished {
                return Ok(None);
            }
            match self.stream.next().await {
                Some(Ok(bytes)) => self.cut(bytes)?,
                Some(Err(source)) => return Err(BatchError::Storage { file: self.file.clone(), source }),
                None => {
                    self.finished = true;
                    if !self.carry.is_empty() {
                        let last = Bytes::from(std::mem::take(&mut self.carry));
                        self.push(last);
                    }
                }
            }
        }
    }

    /// Takes the whole lines of what was read; keeps the unfinished last one.
    fn cut(&mut self, mut bytes: Bytes) -> Result<(), BatchError> {
        if !self.started {
            self.started = !bytes.is_empty();
            // A UTF-8 byte-order mark (as spreadsheet exports write) is not data.
            if bytes.starts_with(b"\xEF\xBB\xBF") {
                bytes = bytes.slice(3..);
            }
        }
        let Some(last_end) = memchr::memrchr(b'\n', &bytes) else {
            self.carry.extend_from_slice(&bytes);
            return self.check_carry();
        };
        let rest = bytes.split_off(last_end + 1);
        if !self.carry.is_empty() {
            let first_end = memchr::memchr(b'\n', &bytes).expect("bytes holds a line end");
            self.carry.extend_from_slice(&bytes.split_to(first_end + 1));
            if self.carry.len() > MAX_LINE_BYTES + 1 {
                return Err(BatchError::LineTooLong { file: self.file.clone(), line: self.next_line });
            }
            let straddling = Bytes::from(std::mem::take(&mut self.carry));
            self.push(straddling);
        }
        // Reads are larger than chunks: cut them at the first line end past each chunk's size.
        while bytes.len() > CHUNK_BYTES {
            let end = memchr::memchr(b'\n', &bytes[CHUNK_BYTES..]).map_or(bytes.len(), |i| CHUNK_BYTES + i + 1);
            let chunk = bytes.split_to(end);
            self.push(chunk);
        }
        if !bytes.is_empty() {
            self.push(bytes);
        }
        self.carry.extend_from_slice(&rest);
        self.check_carry()
    }

    fn check_carry(&self) -> Result<(), BatchError> {
        if self.carry.len() > MAX_LINE_BYTES {
            return Err(BatchError::LineTooLong { file: self.file.clone(), line: self.next_line });
        }
        Ok(())
    }

    fn push(&mut self, bytes: Bytes) {
        let first_line = self.next_line;
        // memchr's vectorised search: this count runs on every byte, before the scoring can.
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count();
        self.ready.push_back(Chunk { first_line, bytes });
    }
}

/// What scores the records: a built-in model in this process, or a custom algorithm's
/// `/invocations` (each chunk a mini-batch: `BatchStrategy=MultiRecord`, whole lines up to
/// SageMaker's `MaxPayloadInMB` of 6).
#[derive(Clone)]
pub enum Scorer {
    Builtin(Arc<BuiltinModel>),
    Process(Arc<ProcessModel>),
}

type Scored = Result<(Vec<u8>, u64, u64), BatchError>;

/// Scores one chunk: its output lines, records and input bytes.
fn score(scorer: &Scorer, format: RequestFormat, chunk: Chunk, file: String) -> BoxFuture<'static, Scored> {
    match scorer.clone() {
        Scorer::Builtin(model) => async move {
            let bytes_in = chunk.bytes.len() as u64;
            let first = chunk.first_line;
            // On rayon's threads (one per core), not tokio's blocking pool: that pool starts a
            // thread whenever none is idle, so the chunks in flight ran on as many threads at
            // once, each with its own matrix and allocator pages; the peak memory then depended
            // on how the threads happened to overlap (measured: 98-129 MiB for the same 10M-row
            // run), not on the input.
            let (sender, receiver) = tokio::sync::oneshot::channel();
            rayon::spawn({
                let file = file.clone();
                move || {
                    let scored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        score_chunk(&model, format, &chunk, &file)
                    }));
                    // The transform may have stopped waiting (another chunk failed): no one to tell.
                    let _ = sender.send(scored);
                }
            });
            let failed = |message| Err(BatchError::Model { file, first, last: first, message });
            let scored = match receiver.await {
                Ok(Ok(scored)) => scored,
                Ok(Err(panic)) => failed(format!("evaluation panicked: {}", panic_message(panic.as_ref()))),
                // Not expected: the closure sends whatever happens, and rayon runs every job.
                Err(_) => failed("evaluation ended without a result".to_string()),
            };
            scored.map(|(body, rows)| (body, rows, bytes_in))
        }
        .boxed(),
        Scorer::Process(process) => async move { score_with_process(&process, format, chunk, &file).await }.boxed(),
    }
}

/// Sends the chunk's records (blank lines left out) to the algorithm in one request.
async fn score_with_process(process: &ProcessModel, format: RequestFormat, chunk: Chunk, file: &str) -> Scored {
    let bytes_in = chunk.bytes.len() as u64;
    let (mut payload, mut rows) = (Vec::with_capacity(chunk.bytes.len()), 0u64);
    for line in chunk.bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        payload.extend_from_slice(line);
        payload.push(b'\n');
        rows += 1;
    }
    if rows == 0 {
        return Ok((Vec::new(), 0, bytes_in));
    }
    let lines = format!("lines {}-{}", chunk.first_line, chunk.last_line());
    let content_type = match format {
        RequestFormat::Csv => "text/csv",
        RequestFormat::Json | RequestFormat::JsonLines => "application/jsonlines",
    };
    let request = ProcessRequest {
        content_type: Some(content_type.into()),
        accept: Some("text/csv".into()),
        body: Bytes::from(payload),
        ..Default::default()
    };
    let reply = process.invoke(request).await.map_err(|e| BatchError::Algorithm {
        file: file.to_string(),
        lines: lines.clone(),
        message: e.to_string(),
        transient: matches!(e, ProcessError::Restarting),
    })?;
    if !(200..300).contains(&reply.status) {
        let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(1024)]).into_owned();
        return Err(BatchError::Algorithm {
            file: file.to_string(),
            lines,
            message: format!("the algorithm answered {}: {text}", reply.status),
            transient: false,
        });
    }
    let mut body = reply.body.to_vec();
    if body.last().is_some_and(|b| *b != b'\n') {
        body.push(b'\n');
    }
    Ok((body, rows, bytes_in))
}

/// Scores the records of one chunk; returns the output lines and how many records there were.
fn score_chunk(
    model: &BuiltinModel,
    format: RequestFormat,
    chunk: &Chunk,
    file: &str,
) -> Result<(Vec<u8>, u64), BatchError> {
    let record_error = |e: CodecError| BatchError::Record {
        file: file.to_string(),
        line: e.row.unwrap_or(chunk.first_line),
        column: e.column,
        message: e.message,
    };
    let text = std::str::from_utf8(&chunk.bytes).map_err(|e| {
        let line = chunk.first_line + chunk.bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
        record_error(CodecError { row: Some(line), column: None, message: "not valid UTF-8".into() })
    })?;
    // Each blocking thread keeps its matrix between chunks: a chunk's worth of fresh memory
    // costs more in page faults than its numbers take to parse.
    let mut matrix = FeatureMatrix::with_cols(model.num_features());
    matrix.values = MATRIX_VALUES.take();
    matrix.values.clear();
    let scored = score_lines(model, format, chunk, text, &mut matrix).map_err(|e| match e {
        LinesError::Record(codec) => record_error(codec),
        LinesError::Model(message) => {
            BatchError::Model { file: file.to_string(), first: chunk.first_line, last: chunk.last_line(), message }
        }
    });
    MATRIX_VALUES.set(std::mem::take(&mut matrix.values));
    scored.map(|body| (body, matrix.rows as u64))
}

/// Why a chunk's lines could not be scored: a record the model cannot take, or the model.
enum LinesError {
    Record(CodecError),
    Model(String),
}

thread_local! {
    static MATRIX_VALUES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Parses the chunk's lines into `matrix`, predicts and encodes; a record's error, or the
/// model's message.
fn score_lines(
    model: &BuiltinModel,
    format: RequestFormat,
    chunk: &Chunk,
    text: &str,
    matrix: &mut FeatureMatrix,
) -> Result<Vec<u8>, LinesError> {
    for (offset, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        codec::parse_line(format, line, chunk.first_line + offset, matrix).map_err(LinesError::Record)?;
    }
    let per_row = model.num_outputs();
    let mut outputs = Vec::with_capacity(matrix.rows * per_row);
    model.predict_rows(&matrix.values, &mut outputs).map_err(|e| LinesError::Model(e.0))?;
    Ok(codec::encode_predictions(ResponseFormat::Csv, &outputs, per_row).1)
}

/// Transforms the object at `input` into `output` with up to `parallelism` chunks scored at
/// once. `progress` sees the running figures after every chunk written. On any failure the
/// output is abandoned: nothing appears at `output` (an earlier object there stays as it was).
pub async fn transform_object(
    store: &Arc<dyn ObjectStore>,
    scorer: Scorer,
    input: &Path,
    output: &Path,
    parallelism: usize,
    progress: &(dyn Fn(TransformStats) + Send + Sync),
) -> Result<TransformStats, BatchError> {
    let file = input.to_string();
    let storage = |source| BatchError::Storage { file: file.clone(), source };
    let format = input_format(input.filename().unwrap_or_default());
    let size = store.head(input).await.map_err(storage)?.size;
    // Ranged reads: a few large reads instead of the many small ones a streamed get makes.
    let (source, path) = (Arc::clone(store), input.clone());
    let ranges = futures::stream::iter(
        (0..size).step_by(READ_BYTES as usize).map(move |start| start..(start + READ_BYTES).min(size)),
    );
    let stream = ranges
        .map(move |range| {
            let (source, path) = (source.clone(), path.clone());
            async move { source.get_range(&path, range).await }
        })
        .buffered(READS_AHEAD)
        .boxed();
    let mut chunker = Chunker::new(stream, file.clone());
    // Reading and cutting run beside the scoring, a few chunks ahead.
    let in_flight = 2 * parallelism.max(1) + 2;
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<Result<Chunk, BatchError>>(in_flight);
    let reader = tokio::spawn(async move {
        loop {
            let next = chunker.next().await.transpose();
            let last = !matches!(next, Some(Ok(_)));
            if let Some(item) = next
                && sender.send(item).await.is_err()
            {
                return;
            }
            if last {
                return;
            }
        }
    });
    let _stop_reading = AbortOnDrop(reader);
    let upload = store.put_multipart(output).await.map_err(storage)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);

    let written = async {
        let mut stats = TransformStats::default();
        let mut scoring = FuturesOrdered::new();
        let mut reading = true;
        loop {
            while reading && scoring.len() < in_flight {
                match chunks.recv().await.transpose()? {
                    Some(chunk) => scoring.push_back(score(&scorer, format, chunk, file.clone())),
                    None => reading = false,
                }
            }
            let Some(scored) = scoring.next().await else { break };
            let (body, rows, bytes_in) = scored?;
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(storage)?;
            stats.rows += rows;
            stats.bytes_in += bytes_in;
            stats.bytes_out += body.len() as u64;
            writer.put(Bytes::from(body));
            progress(stats);
        }
        Ok::<_, BatchError>(stats)
    }
    .await;

    match written {
        Ok(stats) => {
            writer.finish().await.map_err(storage)?;
            Ok(stats)
        }
        Err(error) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%output, error = %abort, "abandoning a failed transform's output failed");
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn chunker(parts: Vec<&'static [u8]>) -> Chunker {
        let stream = stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed();
        Chunker::new(stream, "f".into())
    }

    async fn all(mut c: Chunker) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(chunk) = c.next().await.unwrap() {
            out.push((chunk.first_line, chunk.bytes.to_vec()));
        }
        out
    }

    #[tokio::test]
    async fn lines_across_reads_are_joined_without_the_byte_order_mark() {
        let chunks = all(chunker(vec![b"\xEF\xBB\xBF1,2\n3,", b"4\n5,6"])).await;
        assert_eq!(chunks, vec![(1, b"1,2\n".to_vec()), (2, b"3,4\n".to_vec()), (3, b"5,6".to_vec())]);
        let chunks = all(chunker(vec![b"1,", b"2", b"", b"\n3"])).await;
        assert_eq!(chunks, vec![(1, b"1,2\n".to_vec()), (2, b"3".to_vec())]);
    }

    #[tokio::test]
    async fn chunks_end_on_line_ends_and_count_lines() {
        let line = vec![b'7'; 1000];
        let mut body = Vec::new();
        for _ in 0..3000 {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        let leaked: &'static [u8] = Box::leak(body.clone().into_boxed_slice());
        let parts: Vec<&'static [u8]> = leaked.chunks(64 * 1024 + 3).collect();
        let chunks = all(chunker(parts)).await;
        assert!(chunks.len() >= 2, "{}", chunks.len());
        let mut expected_line = 1;
        let mut joined = Vec::new();
        for (first_line, bytes) in &chunks {
            assert_eq!(*first_line, expected_line);
            assert_eq!(bytes.last(), Some(&b'\n'));
            expected_line += bytes.iter().filter(|b| **b == b'\n').count();
            joined.extend_from_slice(bytes);
        }
        assert_eq!(joined, body);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_is_refused_with_its_number() {
        let long: &'static [u8] = Box::leak(vec![b'1'; MAX_LINE_BYTES + 2].into_boxed_slice());
        let mut c = chunker(vec![b"1,2\n", long]);
        // The short first line comes out once the long one is known to be too long, or not at all.
        let error = loop {
            match c.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the long line should be refused"),
                Err(e) => break e,
            }
        };
        assert!(matches!(error, BatchError::LineTooLong { line: 2, .. }), "{error}");
    }

    #[test]
    fn formats_follow_the_object_name() {
        assert_eq!(input_format("in/a.csv"), RequestFormat::Csv);
        assert_eq!(input_format("in/a"), RequestFormat::Csv);
        assert_eq!(input_format("in/A.JSONL"), RequestFormat::JsonLines);
        assert_eq!(input_format("in/a.json"), RequestFormat::JsonLines);
    }
}
