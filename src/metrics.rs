//! Prometheus metrics, served on their own listener (`metrics.listen`) so that scraping needs no
//! token and never competes with the API's connection limits.
//!
//! Recording goes through the `metrics` facade everywhere; this module installs the Prometheus
//! recorder once per process and names every metric, so the names live in one place:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mlops_http_requests_total` | counter | `method`, `route` (the route template), `status` |
//! | `mlops_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `mlops_invocations_total` | counter | `endpoint` (`env.name`), `outcome` (`ok`, `client_error`) |
//! | `mlops_invocation_duration_seconds` | histogram | `endpoint` |
//! | `mlops_capture_dropped_total` | counter | `destination` (`bucket/prefix/endpoint/variant`) |
//! | `mlops_model_loads_total` | counter | `outcome` (`ok`, `error`) |
//! | `mlops_model_load_duration_seconds` | histogram | |
//! | `mlops_model_evictions_total` | counter | |
//! | `mlops_jobs_queued` | gauge | |
//! | `mlops_jobs_running` | gauge | |
//! | `mlops_jobs_oldest_queued_age_seconds` | gauge | |
//! | `mlops_jobs_finished_total` | counter | `kind`, `outcome` (`succeeded`, `poll_again`, `retry`, `failed`) |
//!
//! Label values are bounded: routes are templates, endpoints are counted only once they exist.

use crate::store::DynStore;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "mlops_http_requests_total";
pub const HTTP_DURATION: &str = "mlops_http_request_duration_seconds";
pub const INVOCATIONS: &str = "mlops_invocations_total";
pub const INVOCATION_DURATION: &str = "mlops_invocation_duration_seconds";
pub const CAPTURE_DROPPED: &str = "mlops_capture_dropped_total";
pub const MODEL_LOADS: &str = "mlops_model_loads_total";
pub const MODEL_LOAD_DURATION: &str = "mlops_model_load_duration_seconds";
pub const MODEL_EVICTIONS: &str = "mlops_model_evictions_total";
pub const JOBS_QUEUED: &str = "mlops_jobs_queued";
pub const JOBS_RUNNING: &str = "mlops_jobs_running";
pub const JOBS_OLDEST_AGE: &str = "mlops_jobs_oldest_queued_age_seconds";
pub const JOBS_FINISHED: &str = "mlops_jobs_finished_total";

/// Latency buckets from 50 µs (a small invocation) to a minute (the request timeout).
const SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle). Until it is
/// installed, recording is a no-op.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            handle
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets without a scrape.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Folds the histograms' recorded samples into their buckets every `every`, forever. The recorder
/// keeps every sample (8 bytes) until then: with nobody scraping `/metrics` a loaded server grew
/// by 20-25 MB every 10 s (measured: /healthz at 80,000 a second). On a blocking thread: a second
/// of samples at that rate takes a few milliseconds to fold, which an async worker's requests
/// would wait for.
pub async fn upkeep(handle: PrometheusHandle, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let handle = handle.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || handle.run_upkeep()).await {
            tracing::error!(error = %e, "folding metrics samples failed");
        }
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                // The samples recorded since the last upkeep, into their buckets.
                handle.run_upkeep();
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
            }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Publishes the job queue's depth and age every `every` (any replica can: the queue is shared).
pub async fn watch_job_queue(store: DynStore, every: Duration) {
    loop {
        match store.job_queue_stats().await {
            Ok(stats) => {
                metrics::gauge!(JOBS_QUEUED).set(stats.queued as f64);
                metrics::gauge!(JOBS_RUNNING).set(stats.running as f64);
                let age = stats
                    .oldest_queued_at
                    .map(|at| (crate::store::now() - at).to_std().unwrap_or_default().as_secs_f64())
                    .unwrap_or(0.0);
                metrics::gauge!(JOBS_OLDEST_AGE).set(age);
            }
            Err(e) => tracing::warn!(error = %e, "reading the job queue for metrics failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The HTTP status as a label value, without allocating for the common ones.
pub fn status_label(status: axum::http::StatusCode) -> metrics::SharedString {
    match status.as_u16() {
        200 => "200".into(),
        201 => "201".into(),
        202 => "202".into(),
        204 => "204".into(),
        400 => "400".into(),
        404 => "404".into(),
        409 => "409".into(),
        429 => "429".into(),
        other => other.to_string().into(),
    }
}

/// Whether a recorder is installed (until then recording is a no-op).
pub fn installed() -> bool {
    HANDLE.get().is_some()
}

/// One method, route and status's metrics.
struct HttpHandles {
    method: &'static str,
    status: axum::http::StatusCode,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type HandlesByRoute = std::collections::HashMap<String, Vec<HttpHandles>, foldhash::fast::RandomState>;

thread_local! {
    /// Bounded like the labels: routes are templates, methods and statuses few.
    static HTTP_HANDLES: std::cell::RefCell<HandlesByRoute> = std::cell::RefCell::default();
}

/// Counts a routed request by route template and status, with its latency. Recorded through
/// handles kept per thread: registering a labelled metric by its key on every request cost an
/// invocation 4 % of its instructions.
pub fn record_http(method: &'static str, route: &str, status: axum::http::StatusCode, elapsed: Duration) {
    HTTP_HANDLES.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), Vec::new());
        }
        let handles = routes.get_mut(route).expect("inserted above");
        let position = match handles.iter().position(|h| h.method == method && h.status == status) {
            Some(position) => position,
            None => {
                let path = route.to_owned();
                handles.push(HttpHandles {
                    method,
                    status,
                    requests: metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => path.clone(), "status" => status_label(status)),
                    duration: metrics::histogram!(HTTP_DURATION, "method" => method, "route" => path),
                });
                handles.len() - 1
            }
        };
        handles[position].requests.increment(1);
        handles[position].duration.record(elapsed.as_secs_f64());
    });
}

pub fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// One endpoint's invocation metrics, registered once when the model is installed so that an
/// invocation only adds to atomics.
#[derive(Clone)]
pub struct EndpointMetrics {
    ok: metrics::Counter,
    client_error: metrics::Counter,
    duration: metrics::Histogram,
}

impl EndpointMetrics {
    pub fn new(environment: &str, name: &str) -> Self {
        let endpoint = format!("{environment}.{name}");
        Self {
            ok: metrics::counter!(INVOCATIONS, "endpoint" => endpoint.clone(), "outcome" => "ok"),
            client_error: metrics::counter!(INVOCATIONS, "endpoint" => endpoint.clone(), "outcome" => "client_error"),
            duration: metrics::histogram!(INVOCATION_DURATION, "endpoint" => endpoint),
        }
    }

    pub fn observe(&self, succeeded: bool, elapsed: Duration) {
        if succeeded { &self.ok } else { &self.client_error }.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

impl std::fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointMetrics")
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn resident_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<usize>().ok()).expect("kB") * 1024
    }

    /// Without a scrape, memory stays flat however many samples are recorded: 4,000,000 samples
    /// kept would be 32 MB. (nextest runs each test in a process of its own, so the resident size
    /// is this test's.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upkeep_keeps_unscraped_histograms_from_growing() {
        let handle = install();
        let _upkeep = crate::tasks::AbortOnDrop(tokio::spawn(upkeep(handle, Duration::from_millis(10))));
        let histogram = metrics::histogram!("mlops_test_upkeep_seconds");
        let record = |n| {
            for i in 0..n {
                histogram.record(f64::from(i % 1000) * 1e-5);
            }
        };
        // Once before measuring, so the allocator's and the runtime's first growth is not counted.
        record(200_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = resident_bytes();
        for _ in 0..100 {
            record(40_000);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grown = resident_bytes().saturating_sub(before);
        assert!(grown < 8 << 20, "the resident size grew by {grown} bytes over 4,000,000 samples");
    }
}
