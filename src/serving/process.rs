//! A custom algorithm serving as a child process, under SageMaker's serving-container contract:
//! started as `serve` from its program folder with the port (`SAGEMAKER_BIND_TO_PORT`) and the
//! model directory (`SM_MODEL_DIR`, the model archive unpacked) in its environment, ready once
//! `GET /ping` answers 200, invoked with `POST /invocations` (60 s, 6 MB each way), restarted with
//! backoff when it dies, stopped when the endpoint goes. Its stdout and stderr are kept (the last
//! lines) as the endpoint's logs.

use super::child_http::CallError;
use super::invoke::{CUSTOM_ATTRIBUTES, INFERENCE_ID};
use super::port_holder::{self, Holder};
use bytes::Bytes;
use hyper::header::{self, HeaderName};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// SageMaker's limit on an invocation's answer.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// SageMaker's limit on how long the model may take to answer.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
/// SageMaker's timeout of one `GET /ping`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of output kept per endpoint.
const LOG_LINES: usize = 2000;
/// Longest line kept whole; a longer one is kept in pieces this long (an algorithm writing
/// without newlines cannot grow the reader's memory).
const LOG_LINE_BYTES: usize = 16 * 1024;
/// How long the algorithm's output gathers in its pipe between two reads. An algorithm that logs
/// a line per request (Python's `http.server` does) would otherwise wake a thread per invocation
/// just to read that line: measured 0.9 thread switches per invocation, a large part of what the
/// proxy cost. The pipe is read by a thread of its own with blocking reads, not by a task: the
/// runtime's edge-triggered epoll reports every write to a pipe, so a task waking every 20 ms
/// would still cost its worker a wake-up per line. A read of at least [`LOG_BUSY_BYTES`] (a pipe
/// holds at least a page) means the algorithm writes a lot: then the next read comes at once, so
/// a chatty algorithm never waits on a full pipe for long.
const LOG_GATHER: Duration = Duration::from_millis(20);
const LOG_BUSY_BYTES: usize = 4096;
const LOG_READ_BYTES: usize = 64 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Ports tried in a row when another program holds the one picked (see `port_holder`).
const PORT_ATTEMPTS: usize = 3;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// `environment.name`, for the logs.
    pub endpoint: String,
    /// The program folder (where `serve` is): the working directory.
    pub program: PathBuf,
    /// The algorithm's virtual environment; its `bin` goes first on `PATH`.
    pub venv: PathBuf,
    /// The unpacked model archive.
    pub model_dir: PathBuf,
    /// How long the process may take to answer its first `GET /ping`.
    pub start_timeout: Duration,
    /// The CPUs it runs on (`serving.algorithm_cpus`); `None`: any.
    pub cpus: Option<super::cpus::CpuList>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the algorithm could not be started: {0}")]
    Spawn(String),
    #[error("the algorithm exited before it was ready ({status}); its last output:\n{logs}")]
    ExitedEarly { status: String, logs: String },
    #[error("the algorithm did not answer GET /ping with 200 within {timeout:?}; its last output:\n{logs}")]
    NeverReady { timeout: Duration, logs: String },
    #[error(
        "port {port}, picked for the algorithm, is held by {holder} outside the algorithm's process group \
         (`serve` must keep its servers in its own process group, e.g. nginx with `daemon off;`)"
    )]
    PortTaken { port: u16, holder: String },
    /// Restarting after a crash; ask again shortly.
    #[error("the algorithm is restarting after it stopped; retry shortly")]
    Restarting,
    #[error("the algorithm did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the algorithm's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    ResponseTooLarge,
    #[error("calling the algorithm failed: {0}")]
    Call(String),
}

/// The algorithm's answer to one invocation.
#[derive(Debug)]
pub struct ProcessReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Headers of an invocation passed on as SageMaker passes them to a container.
#[derive(Debug, Default)]
pub struct ProcessRequest {
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub custom_attributes: Option<String>,
    pub inference_id: Option<String>,
    pub body: Bytes,
}

struct Shared {
    port: AtomicU16,
    ready: AtomicBool,
    restarts: AtomicU32,
    logs: Mutex<VecDeque<String>>,
    /// Lines logged since the start, so a reader can tell whether there are new ones.
    logged: AtomicU64,
    stop: CancellationToken,
}

impl Shared {
    fn new() -> Self {
        Shared {
            port: AtomicU16::new(0),
            ready: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
            logs: Mutex::new(VecDeque::new()),
            logged: AtomicU64::new(0),
            stop: CancellationToken::new(),
        }
    }

    fn log(&self, line: String) {
        self.log_lines([line]);
    }

    fn log_lines(&self, lines: impl IntoIterator<Item = String>) {
        let mut logs = self.logs.lock().expect("logs lock");
        for line in lines {
            if logs.len() == LOG_LINES {
                logs.pop_front();
            }
            logs.push_back(line);
            self.logged.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn tail(&self, lines: usize) -> String {
        let logs = self.logs.lock().expect("logs lock");
        logs.iter().skip(logs.len().saturating_sub(lines)).cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running algorithm; dropping it stops the process.
pub struct ProcessModel {
    shared: Arc<Shared>,
    /// Invocations go through these (`GET /ping` through reqwest, in the supervisor).
    connections: super::child_http::ChildConnections,
}

impl std::fmt::Debug for ProcessModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessModel").field("port", &self.shared.port.load(Ordering::Relaxed)).finish()
    }
}

impl Drop for ProcessModel {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// A port free at the moment: the kernel's pick, released for the algorithm to bind. Another
/// program may take it in between; `wait_ready` finds out who holds it.
fn free_port() -> Result<u16, ProcessError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ProcessError::Spawn(e.to_string()))?;
    Ok(listener.local_addr().map_err(|e| ProcessError::Spawn(e.to_string()))?.port())
}

/// The process group a child started with `process_group(0)` leads (its id is the child's pid).
#[derive(Debug, Clone, Copy)]
pub(super) struct ProcessGroup(nix::unistd::Pid);

impl ProcessGroup {
    /// Taken right after the spawn, while the child is certainly not reaped.
    pub(super) fn of(child: &tokio::process::Child) -> Option<ProcessGroup> {
        child.id().and_then(|pid| i32::try_from(pid).ok()).map(|pid| ProcessGroup(nix::unistd::Pid::from_raw(pid)))
    }

    /// SIGKILL to every process in the group. Call it before the leader is reaped, or while
    /// others of the group may live: either keeps the id from being reused. ESRCH (the group is
    /// gone already) is no error.
    pub(super) fn kill(self) {
        let _ = nix::sys::signal::killpg(self.0, nix::sys::signal::Signal::SIGKILL);
    }

    fn id(self) -> i32 {
        self.0.as_raw()
    }
}

/// The algorithm's process and whatever it started. `serve` runs as the leader of a process
/// group of its own, and the whole group is killed when the algorithm stops or exits: a serving
/// container's `serve` usually starts nginx and gunicorn workers, which killing `serve` alone
/// would leave running (holding memory and the port) after a teardown or a crash.
struct AlgorithmProcess {
    child: tokio::process::Child,
    /// The group to kill; `None` once killed.
    group: Option<ProcessGroup>,
}

impl AlgorithmProcess {
    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            group.kill();
        }
    }

    /// Kills the group, then reaps `serve`.
    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.kill().await;
    }

    /// Waits until `serve` exits, then kills what it left running. (Its group id cannot be
    /// taken by another process while any of those are alive, and killing an empty group does
    /// nothing.)
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        self.kill_group();
        status
    }

    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.kill_group();
        }
        Ok(status)
    }
}

impl Drop for AlgorithmProcess {
    /// A model dropped without its supervisor's help (the runtime shutting down): `serve` goes
    /// with `kill_on_drop`, the rest of its group here.
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Starts `serve` on `port`, its output going to the shared log.
fn spawn(spec: &ProcessSpec, shared: &Arc<Shared>, port: u16) -> Result<AlgorithmProcess, ProcessError> {
    shared.port.store(port, Ordering::Relaxed);
    let path = std::env::var("PATH").unwrap_or_default();
    // stdout and stderr into one pipe: the log holds them interleaved as they were written.
    let spawn_error = |e: std::io::Error| ProcessError::Spawn(format!("{}: {e}", spec.program.join("serve").display()));
    let (output, stdout) = std::io::pipe().map_err(spawn_error)?;
    let stderr = stdout.try_clone().map_err(spawn_error)?;
    let mut command = tokio::process::Command::new(spec.program.join("serve"));
    command
        .arg("serve")
        .current_dir(&spec.program)
        .env("PATH", format!("{}:{}:{path}", spec.venv.join("bin").display(), spec.program.display()))
        .env("VIRTUAL_ENV", &spec.venv)
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .env("SM_MODEL_DIR", &spec.model_dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let child = match &spec.cpus {
        Some(cpus) => super::cpus::spawn_on(cpus, || command.spawn()),
        None => crate::server::worker_cpus::spawn_child(|| command.spawn()),
    }
    .map_err(spawn_error)?;
    drop(command);
    let group = ProcessGroup::of(&child);
    let child = AlgorithmProcess { child, group };
    // The command (holding our copies of the pipe's write end) is gone by now, so the reader
    // sees the end of the output once the process and whatever it started have exited.
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("algorithm-output".into())
        .spawn(move || {
            crate::server::worker_cpus::free_this_thread();
            keep_output(output, &shared)
        })
        .map_err(spawn_error)?;
    Ok(child)
}

/// Reads the algorithm's output into the shared log, line by line (invalid UTF-8 kept as
/// U+FFFD), until it closes. After a small read the next one waits [`LOG_GATHER`], so the lines
/// of many invocations come in one read.
fn keep_output(mut output: impl std::io::Read, shared: &Shared) {
    let mut chunk = vec![0u8; LOG_READ_BYTES];
    let mut line = Vec::new();
    loop {
        let read = match output.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let lines = split_lines(&mut line, &chunk[..read]);
        if !lines.is_empty() {
            shared.log_lines(lines);
        }
        if read < LOG_BUSY_BYTES {
            std::thread::sleep(LOG_GATHER);
        }
    }
    if !line.is_empty() {
        shared.log(String::from_utf8_lossy(&line).into_owned());
    }
}

/// The complete lines of `pending` followed by `bytes` (without their `\n` or `\r\n`); what
/// follows the last newline stays in `pending`, cut into [`LOG_LINE_BYTES`] pieces when longer.
fn split_lines(pending: &mut Vec<u8>, bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut keep = |line: &[u8]| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            lines.push(String::new());
        }
        lines.extend(line.chunks(LOG_LINE_BYTES).map(|piece| String::from_utf8_lossy(piece).into_owned()));
    };
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        if pending.is_empty() {
            keep(&rest[..end]);
        } else {
            pending.extend_from_slice(&rest[..end]);
            keep(pending);
            pending.clear();
        }
        rest = &rest[end + 1..];
    }
    pending.extend_from_slice(rest);
    if pending.len() >= LOG_LINE_BYTES {
        let whole = pending.len() / LOG_LINE_BYTES * LOG_LINE_BYTES;
        keep(&pending[..whole]);
        pending.drain(..whole);
    }
    lines
}

/// Waits until the child answers `GET /ping` with 200 on a port only its process group listens
/// on, exits, or `timeout` passes.
async fn wait_ready(
    client: &reqwest::Client,
    child: &mut AlgorithmProcess,
    shared: &Shared,
    timeout: Duration,
) -> Result<(), ProcessError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let port = shared.port.load(Ordering::Relaxed);
    let url = format!("http://127.0.0.1:{port}/ping");
    let Some(group) = child.group else { return Err(ProcessError::Spawn("the algorithm has no process group".into())) };
    // Reading /proc takes a file per process on the host: off the async workers.
    let holder = || async move {
        tokio::task::spawn_blocking(move || port_holder::holder(port, group.id())).await.unwrap_or(Holder::Nobody)
    };
    loop {
        if let Some(status) = child.try_wait().map_err(|e| ProcessError::Spawn(e.to_string()))? {
            // Its group is gone: a listener still on the port is someone else's, and most likely
            // why it exited (the address was in use).
            if let Holder::Other(holder) = holder().await {
                return Err(ProcessError::PortTaken { port, holder });
            }
            // The readers may still be draining the pipes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(ProcessError::ExitedEarly { status: status.to_string(), logs: shared.tail(20) });
        }
        if let Ok(response) = client.get(&url).timeout(PING_TIMEOUT).send().await
            && response.status() == 200
        {
            match holder().await {
                Holder::Group => return Ok(()),
                Holder::Other(holder) => return Err(ProcessError::PortTaken { port, holder }),
                // Answered, and closed its listener since: not ready.
                Holder::Nobody => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProcessError::NeverReady { timeout, logs: shared.tail(20) });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `serve` and waits until it is ready: on `port`, or a free one, then on another free
/// one when another program holds it (at most [`PORT_ATTEMPTS`] ports). A process that does not
/// become ready is killed.
async fn launch(
    spec: &ProcessSpec,
    shared: &Arc<Shared>,
    client: &reqwest::Client,
    mut port: Option<u16>,
) -> Result<AlgorithmProcess, ProcessError> {
    let mut attempt = 1;
    loop {
        let port = match port.take() {
            Some(port) => port,
            None => free_port()?,
        };
        let mut child = spawn(spec, shared, port)?;
        match wait_ready(client, &mut child, shared, spec.start_timeout).await {
            Ok(()) => return Ok(child),
            Err(e) => {
                child.kill().await;
                if !matches!(e, ProcessError::PortTaken { .. }) || attempt == PORT_ATTEMPTS {
                    return Err(e);
                }
                shared.log(format!("[mlops] {e}; trying another port"));
                tracing::warn!(endpoint = %spec.endpoint, error = %e, "custom algorithm port taken; trying another");
                attempt += 1;
            }
        }
    }
}

impl ProcessModel {
    /// Starts the algorithm and waits until it is ready; then supervises it (restarts with
    /// backoff) until dropped.
    pub async fn start(spec: ProcessSpec) -> Result<ProcessModel, ProcessError> {
        Self::start_on(spec, None).await
    }

    /// [`ProcessModel::start`], trying `port` first.
    async fn start_on(spec: ProcessSpec, port: Option<u16>) -> Result<ProcessModel, ProcessError> {
        let shared = Arc::new(Shared::new());
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ProcessError::Spawn(e.to_string()))?;
        let child = launch(&spec, &shared, &client, port).await?;
        shared.ready.store(true, Ordering::Release);
        tracing::info!(endpoint = %spec.endpoint, port = shared.port.load(Ordering::Relaxed), "custom algorithm ready");
        tokio::spawn(supervise(spec, shared.clone(), client, child));
        Ok(ProcessModel { shared, connections: Default::default() })
    }

    /// The last `lines` lines the algorithm wrote (stdout and stderr, interleaved as they came).
    pub fn logs(&self, lines: usize) -> Vec<String> {
        let logs = self.shared.logs.lock().expect("logs lock");
        logs.iter().skip(logs.len().saturating_sub(lines)).cloned().collect()
    }

    /// Lines the algorithm (and the supervisor) logged since the endpoint loaded here.
    pub fn lines_logged(&self) -> u64 {
        self.shared.logged.load(Ordering::Relaxed)
    }

    pub fn restarts(&self) -> u32 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// What a failed call on a new connection means. A process that is dying may still take the
    /// connection and then reset it; its supervisor notices the exit within moments, so a broken
    /// call waits briefly for that before it is called the algorithm's failure.
    async fn failure(&self, e: CallError) -> ProcessError {
        let message = match e {
            CallError::TooLarge(_) => return ProcessError::ResponseTooLarge,
            CallError::Connect(_) => return ProcessError::Restarting,
            CallError::Exchange { message, .. } => message,
        };
        for _ in 0..20 {
            if !self.is_ready() {
                return ProcessError::Restarting;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ProcessError::Call(message)
    }

    /// `POST /invocations` on the algorithm.
    pub async fn invoke(&self, request: ProcessRequest) -> Result<ProcessReply, ProcessError> {
        if !self.is_ready() {
            return Err(ProcessError::Restarting);
        }
        let port = self.shared.port.load(Ordering::Relaxed);
        let headers: Vec<(&HeaderName, &str)> = [
            (&header::CONTENT_TYPE, &request.content_type),
            (&header::ACCEPT, &request.accept),
            (&CUSTOM_ATTRIBUTES, &request.custom_attributes),
            (&INFERENCE_ID, &request.inference_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect();
        let post = |fresh| self.connections.post(port, &headers, request.body.clone(), MAX_RESPONSE_BYTES, fresh);
        let call = async {
            match post(false).await {
                // A kept-alive connection the algorithm closed (it exited after its last
                // answer, before the supervisor noticed): once more on a new connection,
                // which a dead process refuses.
                Err(CallError::Exchange { reused: true, .. }) if self.is_ready() => match post(true).await {
                    Ok(answer) => Ok(answer),
                    Err(e) => Err(self.failure(e).await),
                },
                Ok(answer) => Ok(answer),
                Err(e) => Err(self.failure(e).await),
            }
        };
        tokio::time::timeout(INVOCATION_TIMEOUT, call).await.unwrap_or(Err(ProcessError::Timeout(INVOCATION_TIMEOUT)))
    }
}

/// Restarts the process whenever it exits, with exponential backoff (reset once a run lasted a
/// minute), until the model is dropped.
async fn supervise(spec: ProcessSpec, shared: Arc<Shared>, client: reqwest::Client, mut child: AlgorithmProcess) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                shared.ready.store(false, Ordering::Release);
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                shared.log(format!("[mlops] the algorithm exited ({status}); restarting in {backoff:?}"));
                tracing::warn!(endpoint = %spec.endpoint, %status, ?backoff, "custom algorithm exited; restarting");
            }
            _ = shared.stop.cancelled() => {
                child.kill().await;
                return;
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shared.stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // Cancelled, the launch drops the process it started, which kills it (and its group).
            let ready = tokio::select! {
                ready = launch(&spec, &shared, &client, None) => ready,
                _ = shared.stop.cancelled() => return,
            };
            match ready {
                Ok(next) => {
                    shared.restarts.fetch_add(1, Ordering::Relaxed);
                    shared.ready.store(true, Ordering::Release);
                    shared.log("[mlops] the algorithm is ready again".into());
                    child = next;
                    break;
                }
                Err(e) => shared.log(format!("[mlops] restart failed: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
        let mut pending = Vec::new();
        let lines = chunks.iter().flat_map(|chunk| split_lines(&mut pending, chunk)).collect();
        (lines, pending)
    }

    #[test]
    fn lines_are_split_across_reads_without_their_line_ends() {
        let (lines, pending) = split_all(&[b"serve: listening\r\nPOST /inv", b"ocations 200\n\nlast", b" part"]);
        assert_eq!(lines, ["serve: listening", "POST /invocations 200", ""]);
        assert_eq!(pending, b"last part");
    }

    #[test]
    fn invalid_utf8_is_kept_and_long_lines_are_cut() {
        let (lines, pending) = split_all(&[b"caf\xe9 \xff\n"]);
        assert_eq!((lines, pending), (vec!["caf\u{fffd} \u{fffd}".to_string()], vec![]));
        let long = vec![b'x'; LOG_LINE_BYTES * 2 + 10];
        let (lines, pending) = split_all(&[&long[..LOG_LINE_BYTES + 5], &long[LOG_LINE_BYTES + 5..]]);
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [LOG_LINE_BYTES, LOG_LINE_BYTES]);
        assert_eq!(pending.len(), 10);
        let (lines, _) = split_all(&[b"short\n", &long, b"\n"]);
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [5, LOG_LINE_BYTES, LOG_LINE_BYTES, 10]);
    }

    /// Another program took the port picked for the algorithm before the algorithm bound it: its
    /// answer to `GET /ping` does not make the endpoint ready. The algorithm starts on another
    /// port, says so in its logs, and invocations reach it, not the other program.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_algorithm_whose_port_another_program_holds_starts_on_another() {
        let impostor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken = impostor.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(|| async { "impostor" });
        tokio::spawn(async move { axum::serve(impostor, app).await });
        let model = tempfile::tempdir().unwrap();
        std::fs::write(model.path().join("weights.json"), r#"{"weights": [2.0], "bias": 1.0}"#).unwrap();
        let venv = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            endpoint: "impostor-test".into(),
            program: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/algorithms/linear/program"),
            venv: venv.path().to_path_buf(),
            model_dir: model.path().to_path_buf(),
            start_timeout: Duration::from_secs(30),
            cpus: None,
        };
        let algorithm = ProcessModel::start_on(spec, Some(taken)).await.unwrap();
        assert_ne!(algorithm.shared.port.load(Ordering::Relaxed), taken);
        let logs = algorithm.logs(LOG_LINES).join("\n");
        let said =
            format!("[mlops] port {taken}, picked for the algorithm, is held by process {} (", std::process::id());
        assert!(logs.contains(&said), "{logs}");
        assert!(logs.contains("trying another port"), "{logs}");
        let request = ProcessRequest { content_type: Some("text/csv".into()), body: "3".into(), ..Default::default() };
        let reply = algorithm.invoke(request).await.unwrap();
        assert_eq!((reply.status, &reply.body[..]), (200, &b"7.0\n"[..]));
    }

    /// Lines written while the reader waits arrive together, in order, and the last one without a
    /// newline is kept when the output closes.
    #[test]
    fn output_is_kept_in_order_until_it_closes() {
        use std::io::Write;
        let shared = Arc::new(Shared::new());
        let (reader, mut writer) = std::io::pipe().unwrap();
        let reading = std::thread::spawn({
            let shared = shared.clone();
            move || keep_output(reader, &shared)
        });
        for i in 0..LOG_LINES + 5 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        writer.write_all(b"no newline at the end").unwrap();
        drop(writer);
        reading.join().unwrap();
        let logs = shared.logs.lock().unwrap();
        assert_eq!(logs.len(), LOG_LINES);
        assert_eq!(logs.front().map(String::as_str), Some("line 6"));
        assert_eq!(logs.iter().nth_back(1).map(String::as_str), Some(format!("line {}", LOG_LINES + 4).as_str()));
        assert_eq!(logs.back().map(String::as_str), Some("no newline at the end"));
    }
}
