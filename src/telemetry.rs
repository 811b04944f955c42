//! Logging: human-readable text on a terminal, JSON lines in containers (`log.format = "json"`).
//!
//! Lines reach stdout in batches rather than one `write` each: the access log writes a line per
//! request, and that system call was the largest single cost of a `/healthz` answer (about a fifth
//! of its CPU) and a sixth of an invocation's. A line waits at most [`FLUSH_EVERY`] or until
//! [`FLUSH_BYTES`] are pending; warnings and errors go out at once, with everything before them;
//! the rest is written when the process ends (`flush`, called by `main`, and on a panic). A
//! `kill -9` can lose the info lines of the last interval, never a warning or an error.
//!
//! Written here rather than with tracing-appender's `non_blocking`: its writer thread is woken for
//! every line, which costs what the write cost.

use crate::config::{LogFormat, LogSettings};
// A poisoned lock only means a thread panicked while logging; the bytes are still good.
use crate::tasks::lock;
use std::io::Write;
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

mod request;
pub use request::{RequestFields, in_request, request_finished};

/// The longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Pending bytes that are written at once, by the thread that logs.
const FLUSH_BYTES: usize = 64 * 1024;

/// Installs the global subscriber once; later calls (tests start many servers) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let style = match settings.format {
        LogFormat::Json => Style::Json,
        LogFormat::Text if ansi => Style::Terminal,
        LogFormat::Text => Style::Text,
    };
    let installed = subscriber(style, BatchedStdout).with(filter).try_init();
    if installed.is_ok() {
        let _ = STYLE.set(style);
        start_flushing();
    }
}

/// How lines are written: `log.format`, and for text whether stdout is a terminal (colours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Text,
    Terminal,
    Json,
}

/// The style of the installed subscriber; unset when `init` did not install ours.
static STYLE: OnceLock<Style> = OnceLock::new();

/// The formatting layer for `style`, writing to `writer`; every event logged while a request is
/// handled gets the request's fields ([`request::WithRequest`]).
fn subscriber<W>(style: Style, writer: W) -> Layered<Box<dyn Layer<Registry> + Send + Sync>, Registry>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let ansi = style == Style::Terminal;
    let fields = tracing_subscriber::fmt::format().with_target(false).with_ansi(ansi);
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
    let layer = match style {
        Style::Json => {
            let format = request::WithRequest::json(fields.json().flatten_event(true));
            layer.json().flatten_event(true).event_format(format).boxed()
        }
        Style::Text | Style::Terminal => layer.event_format(request::WithRequest::text(fields)).boxed(),
    };
    Registry::default().with(layer)
}

/// Writes every pending line to stdout.
pub fn flush() {
    let output = lock(&OUTPUT);
    let batch = std::mem::take(&mut *lock(&PENDING));
    write_batch(output, batch);
}

/// Lines formatted but not yet written.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Held while a batch is written, so batches reach stdout in the order they were taken.
static OUTPUT: Mutex<()> = Mutex::new(());

/// Writes `batch`; the caller holds the output lock, so batches keep the order they were taken in.
fn write_batch(_output: MutexGuard<'_, ()>, batch: Vec<u8>) {
    if !batch.is_empty() {
        // Nowhere to report a failed log write; the next batch tries again.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&batch).and_then(|()| stdout.flush());
    }
}

fn start_flushing() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            }
        });
        if spawned.is_err() {
            eprintln!(
                "cannot start the log flusher thread; log lines are written when {FLUSH_BYTES} bytes are pending"
            );
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // try_lock: the panicking thread may hold either lock (this hook runs before unwinding).
            if let Ok(output) = OUTPUT.try_lock()
                && let Ok(mut pending) = PENDING.try_lock()
            {
                let batch = std::mem::take(&mut *pending);
                drop(pending);
                write_batch(output, batch);
            }
            previous(info);
        }));
    });
}

/// The subscriber's writer: one `Line` per event.
struct BatchedStdout;

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line { urgent: *meta.level() <= tracing::Level::WARN }
    }
}

/// Adds whole lines to the pending ones; `urgent` (a warning or an error) writes them at once.
fn append(bytes: &[u8], urgent: bool) {
    let full = {
        let mut pending = lock(&PENDING);
        pending.extend_from_slice(bytes);
        pending.len() >= FLUSH_BYTES
    };
    if full || urgent {
        flush();
    }
}

/// One event's text, appended to the pending lines.
struct Line {
    /// A warning or an error: written at once.
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        append(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer is process-wide; one test covers it, so nothing else writes to it meanwhile.
    #[test]
    fn lines_wait_until_a_warning_a_full_buffer_or_a_flush_and_keep_their_order() {
        let subscriber = tracing_subscriber::fmt().with_writer(BatchedStdout).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            flush();
            tracing::info!("first");
            tracing::info!("second");
            let pending = String::from_utf8(lock(&PENDING).clone()).unwrap();
            let (first, second) = (pending.find("first").expect("waits"), pending.find("second").expect("waits"));
            assert!(first < second, "in order: {pending}");

            tracing::warn!("third");
            assert!(lock(&PENDING).is_empty(), "a warning takes every pending line out with it");

            tracing::info!("fourth");
            assert!(!lock(&PENDING).is_empty());
            flush();
            assert!(lock(&PENDING).is_empty(), "flushed");

            tracing::info!("{}", "x".repeat(FLUSH_BYTES));
            assert!(lock(&PENDING).is_empty(), "{FLUSH_BYTES} pending bytes are written at once");
        });
    }
}
