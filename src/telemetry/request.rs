//! What a request's log lines carry, and the access line that ends every request.
//!
//! The request's fields (method, path, request id) are a task-local value, not a tracing span:
//! a span per request cost an invocation about 8 % of its instructions (the fmt layer formats the
//! span's fields when it opens; the registry and the filter do work on every poll), and few
//! requests log anything else. [`WithRequest`] appends the fields to every event logged while the
//! request's future runs. The access line is written by hand into the batched output
//! ([`request_finished`]): formatted by tracing-subscriber it cost 11 % of an invocation. A test
//! pins it to the bytes the subscriber writes for the same event.

use super::{STYLE, Style, append};
use crate::encode::{write_digits, write_str, write_utc_second};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of access lines: `RUST_LOG=info,mlops::access=warn` turns them off.
pub const ACCESS_TARGET: &str = "mlops::access";

/// The request a log line was written for.
#[derive(Debug)]
pub struct RequestFields {
    pub method: Method,
    pub uri: Uri,
    /// `x-request-id`: the caller's, or one made for the request.
    pub id: HeaderValue,
}

impl RequestFields {
    /// The id as text; a caller's id that is not visible ASCII is logged empty.
    fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    /// ` method=… path=… request.id=…`, as the text format writes fields.
    fn write_text(&self, out: &mut Vec<u8>) {
        for (name, value) in
            [(" method=", self.method.as_str()), (" path=", self.uri.path()), (" request.id=", self.id())]
        {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// `,"request":{"method":…,"path":…,"id":…}`, to close a JSON line's object with.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#","request":{"method":"#);
        write_str(out, self.method.as_str());
        out.extend_from_slice(br#","path":"#);
        write_str(out, self.uri.path());
        out.extend_from_slice(br#","id":"#);
        write_str(out, self.id());
        out.push(b'}');
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestFields>;
}

/// Runs `future` (a request's handling) with `fields` on every line it logs.
pub fn in_request<F: Future>(fields: Arc<RequestFields>, future: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(fields, future)
}

thread_local! {
    /// The line being written, kept per thread so that an access line allocates nothing.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Logs the access line of a request that answered `status` after `latency`.
pub fn request_finished(request: &Arc<RequestFields>, status: StatusCode, latency: Duration) {
    let Some(&style) = STYLE.get() else { return };
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return;
    }
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if style == Style::Terminal {
        // In colour, by the subscriber like every other line: a terminal is not a hot path.
        REQUEST.sync_scope(request.clone(), || {
            tracing::info!(target: ACCESS_TARGET, status = status.as_u16(), latency_us, "request finished");
        });
        return;
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        write_access_line(line, style, SystemTime::now(), request, status.as_u16(), latency_us);
        append(line, false);
    });
}

/// What the subscriber writes for `info!(status, latency_us, "request finished")` in `request`,
/// with `Style::Text` (no colours) or `Style::Json`.
fn write_access_line(
    out: &mut Vec<u8>,
    style: Style,
    now: SystemTime,
    request: &RequestFields,
    status: u16,
    latency_us: u64,
) {
    let mut numbers = itoa::Buffer::new();
    if style == Style::Json {
        out.extend_from_slice(br#"{"timestamp":""#);
        write_timestamp(out, now);
        out.extend_from_slice(br#"","level":"INFO","message":"request finished","status":"#);
        out.extend_from_slice(numbers.format(status).as_bytes());
        out.extend_from_slice(br#","latency_us":"#);
        out.extend_from_slice(numbers.format(latency_us).as_bytes());
        request.write_json(out);
        out.extend_from_slice(b"}\n");
    } else {
        write_timestamp(out, now);
        out.extend_from_slice(b"  INFO request finished status=");
        out.extend_from_slice(numbers.format(status).as_bytes());
        out.extend_from_slice(b" latency_us=");
        out.extend_from_slice(numbers.format(latency_us).as_bytes());
        request.write_text(out);
        out.push(b'\n');
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` writes it.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    write_utc_second(out, i64::try_from(since_epoch.as_secs()).unwrap_or_default());
    out.push(b'.');
    write_digits(out, since_epoch.subsec_micros(), 6);
    out.push(b'Z');
}

/// An event format that appends the request's fields to every event logged in one: in text as
/// more `name=value` fields, in JSON as a `request` object.
pub(super) struct WithRequest<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequest<F> {
    pub(super) fn text(inner: F) -> Self {
        WithRequest { inner, json: false }
    }

    pub(super) fn json(inner: F) -> Self {
        WithRequest { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Ok(request) = REQUEST.try_with(Arc::clone) else {
            return self.inner.format_event(ctx, writer, event);
        };
        // Rare (most requests log nothing but their access line): formatted apart, then joined.
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        let mut fields = Vec::new();
        let line = match (self.json, line.strip_suffix('}')) {
            (true, Some(open)) => {
                request.write_json(&mut fields);
                fields.push(b'}');
                open
            }
            (true, None) => line,
            (false, _) => {
                request.write_text(&mut fields);
                line
            }
        };
        writer.write_str(line)?;
        // Built from `&str`s only.
        writer.write_str(std::str::from_utf8(&fields).map_err(|_| fmt::Error)?)?;
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    /// `line` with its timestamp cut out, after checking that it is RFC 3339 with microseconds.
    fn without_time(line: &str) -> String {
        let end = line.find('Z').expect("a timestamp") + 1;
        let start = end - "2026-12-06T11:25:06.123456Z".len();
        let time = &line[start..end];
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time} in {line}");
        assert_eq!(time.len(), 27, "microseconds: {time}");
        format!("{}{}", &line[..start], &line[end..])
    }

    /// What our subscriber in `style` writes for the events `log` logs.
    fn logged(style: Style, log: impl FnOnce()) -> String {
        let written = Written::default();
        let sink = written.clone();
        tracing::subscriber::with_default(super::super::subscriber(style, move || sink.clone()), log);
        written.take()
    }

    fn request() -> Arc<RequestFields> {
        Arc::new(RequestFields {
            method: Method::POST,
            uri: "/v1/endpoints/a%20b/invocations?x=1".parse().unwrap(),
            id: HeaderValue::from_static(r#"caller's "id" \ 1"#),
        })
    }

    #[test]
    fn access_lines_are_what_the_subscriber_writes_for_the_same_event() {
        for style in [Style::Text, Style::Json] {
            let request = request();
            let by_subscriber = logged(style, || {
                REQUEST.sync_scope(request.clone(), || {
                    tracing::info!(target: ACCESS_TARGET, status = 404u16, latency_us = 1234u64, "request finished");
                });
            });
            let mut by_hand = Vec::new();
            write_access_line(&mut by_hand, style, SystemTime::now(), &request, 404, 1234);
            let by_hand = String::from_utf8(by_hand).unwrap();
            assert_eq!(without_time(&by_hand), without_time(&by_subscriber), "{style:?}");

            if style == Style::Json {
                let line: serde_json::Value = serde_json::from_str(&by_hand).unwrap();
                assert_eq!(line["status"], 404);
                assert_eq!(line["latency_us"], 1234);
                assert_eq!(line["request"]["method"], "POST");
                assert_eq!(line["request"]["path"], "/v1/endpoints/a%20b/invocations", "the path, not the query");
                assert_eq!(line["request"]["id"], r#"caller's "id" \ 1"#);
            } else {
                let fields = r#" method=POST path=/v1/endpoints/a%20b/invocations request.id=caller's "id" \ 1"#;
                assert!(by_hand.strip_suffix('\n').is_some_and(|line| line.ends_with(fields)), "{by_hand}");
            }
        }
    }

    #[test]
    fn lines_logged_in_a_request_carry_its_fields_and_others_do_not() {
        for style in [Style::Text, Style::Json] {
            let text = logged(style, || {
                REQUEST.sync_scope(request(), || tracing::error!(error = "boom", "request failed"));
                tracing::warn!(error = "boom", "outside");
            });
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2, "{text}");
            if style == Style::Json {
                let (inside, outside): (serde_json::Value, serde_json::Value) =
                    (serde_json::from_str(lines[0]).unwrap(), serde_json::from_str(lines[1]).unwrap());
                assert_eq!(inside["message"], "request failed");
                assert_eq!(inside["error"], "boom");
                assert_eq!(inside["level"], "ERROR");
                assert_eq!(inside["request"]["id"], r#"caller's "id" \ 1"#);
                assert_eq!(inside["request"]["path"], "/v1/endpoints/a%20b/invocations");
                assert_eq!(outside["message"], "outside");
                assert!(outside.get("request").is_none(), "{outside}");
            } else {
                assert!(lines[0].contains("ERROR request failed error=\"boom\" method=POST path="), "{}", lines[0]);
                assert!(lines[0].ends_with(r#"request.id=caller's "id" \ 1"#), "{}", lines[0]);
                assert!(!lines[1].contains("request.id"), "{}", lines[1]);
            }
        }
    }
}
