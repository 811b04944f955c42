//! Start-up and shutdown: wires settings, store, workers and the HTTP router, then serves until
//! the shutdown future resolves, and stops everything within the configured grace period.

use crate::artifacts::{ArtifactStore, StorageError};
use crate::auth::TokenRegistry;
use crate::config::{Settings, TargetKind};
use crate::domain::RequestContext;
use crate::error::ApiError;
use crate::http::layer::WrapLayer;
use crate::jobs::Runner;
use crate::services::endpoints::EndpointService;
use crate::services::pipelines::PipelineService;
use crate::serving::capture::{CaptureConfig, CaptureWriter};
use crate::serving::endpoints::EndpointRegistry;
pub use crate::state::AppState;
use crate::store::{Backend, DynStore, JobPolicy, StoreError};
use crate::targets::local::LocalTarget;
use crate::targets::{DynTarget, StorePort};
use crate::tasks::AbortOnDrop;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_swagger_ui::SwaggerUi;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the artifact store: {0}")]
    Artifacts(#[from] StorageError),
    #[error("the database schema is not up to date ({0} migrations pending): run `mlops migrate` first")]
    SchemaOutOfDate(usize),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Channel(#[from] crate::notify::ChannelError),
    #[error(transparent)]
    ConfigSource(#[from] crate::sources::SourceError),
    #[error("cannot listen for metrics on {address}: {source}")]
    MetricsListen { address: std::net::SocketAddr, source: std::io::Error },
}

/// Starts the metrics listener, the job-queue gauges and the histograms' upkeep when
/// `metrics.listen` is set, on `bound` when the caller bound it; they stop when the returned
/// guards drop (the listener also when `stop` fires).
async fn start_metrics(
    settings: &Settings,
    store: &DynStore,
    stop: &CancellationToken,
    bound: Option<TcpListener>,
) -> Result<Vec<AbortOnDrop>, StartError> {
    let Some(address) = settings.metrics.listen else { return Ok(Vec::new()) };
    let listener = match bound {
        Some(listener) => listener,
        None => TcpListener::bind(address).await.map_err(|source| StartError::MetricsListen { address, source })?,
    };
    tracing::info!(listen = %listener.local_addr()?, "metrics served at /metrics");
    let handle = crate::metrics::install();
    let upkeep = tokio::spawn(crate::metrics::upkeep(handle.clone(), crate::metrics::UPKEEP_EVERY));
    let stopped = stop.clone();
    let serve = tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(listener, handle, async move { stopped.cancelled().await }).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    let queue = tokio::spawn(crate::metrics::watch_job_queue(store.clone(), std::time::Duration::from_secs(5)));
    Ok(vec![AbortOnDrop(serve), AbortOnDrop(queue), AbortOnDrop(upkeep)])
}

/// A staging file untouched this long belongs to no write in flight (a stalled upload that
/// resumes later than this fails and is retried by its client).
const STAGING_FILE_AGE: std::time::Duration = std::time::Duration::from_secs(300);

impl AppState {
    /// Opens everything a server or worker process needs.
    pub async fn build(settings: Settings) -> Result<AppState, StartError> {
        settings.require_auth()?;
        if settings.dev {
            tracing::warn!("authentication is OFF (--dev): every caller is an admin. Never expose this server.");
        }
        if settings.metrics.listen.is_some() {
            // Before anything records: handles registered earlier would stay no-ops.
            crate::metrics::install();
        }
        let channels = crate::notify::Channels::from_settings(&settings)?;
        let store = open_store(&settings).await?;
        let tokens = Arc::new(
            TokenRegistry::new(settings.auth.principals(), settings.dev).with_access_keys(settings.auth.access_keys()?),
        );
        let artifacts = match settings.target {
            // The aws target's assets are the assets bucket in S3, where its templates point.
            #[cfg(feature = "aws")]
            TargetKind::Aws => ArtifactStore::s3(
                &settings.aws.region,
                &settings.aws.assets_bucket,
                settings.aws.endpoint_url.as_deref(),
            )?,
            #[cfg(feature = "aws")]
            _ if settings.assets.s3.is_some() => {
                let s3 = settings.assets.s3.as_ref().expect("checked above");
                ArtifactStore::s3_root(
                    &s3.region,
                    &s3.bucket,
                    &s3.prefix,
                    s3.endpoint_url.as_deref(),
                    &settings.assets.bucket,
                )?
            }
            _ => {
                let root = settings.objects_root();
                let store = ArtifactStore::local(&root, &settings.assets.bucket)?;
                // In the background: a large object tree takes a while to walk.
                tokio::task::spawn_blocking(move || {
                    match ArtifactStore::sweep_staging_files(&root, STAGING_FILE_AGE) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(files = n, root = %root.display(), "removed staging files a crash left behind")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, root = %root.display(), "sweeping leftover staging files failed")
                        }
                    }
                });
                store
            }
        };
        let endpoints = Arc::new(
            EndpointRegistry::new(
                store.clone(),
                artifacts.clone(),
                settings.serving.endpoint_refresh,
                settings.serving.max_model_bytes,
                settings.serving.model_limits,
                crate::serving::endpoints::Capacity {
                    max_models: settings.serving.max_loaded_models,
                    max_bytes: settings.serving.max_loaded_model_bytes,
                    load_wait: settings.serving.model_load_wait,
                },
            )
            .with_custom_runtime(crate::serving::endpoints::CustomRuntime {
                algorithms_dir: settings.data_dir.join("algorithms"),
                models_dir: settings.data_dir.join("custom-models"),
                python: settings.serving.python.clone(),
                start_timeout: settings.serving.custom_start_timeout,
                install_timeout: settings.serving.install_timeout,
                cpus: settings.serving.algorithm_cpus.clone(),
            }),
        );
        let capture = CaptureWriter::start(
            artifacts.capture_store(),
            CaptureConfig {
                flush_interval: settings.capture.flush_interval,
                max_buffered_records: settings.capture.max_buffered_records,
                max_queued_records: crate::serving::capture::queue_capacity(settings.capture.max_buffered_records),
                max_buffered_bytes: settings.capture.max_buffered_bytes,
                sampling_percentage: settings.capture.sampling_percentage,
            },
        );
        // The target, and where model cards live on it (the aws one shares the target's clients).
        let (target, card_backend): (DynTarget, crate::targets::model_cards::DynModelCards) = match settings.target {
            TargetKind::Local => (
                Arc::new(
                    LocalTarget::new(StorePort::of(&store), endpoints.clone(), artifacts.clone())
                        .with_algorithms(
                            settings.data_dir.join("algorithms"),
                            &settings.serving.python,
                            settings.serving.install_timeout,
                        )
                        .with_training_python(settings.training.python.as_deref()),
                ),
                Arc::new(crate::targets::local::LocalModelCards::new(
                    store.clone(),
                    StorePort::of(&store),
                    artifacts.clone(),
                )),
            ),
            #[cfg(feature = "aws")]
            TargetKind::Aws => {
                let target = crate::targets::aws::AwsTarget::new(&settings, StorePort::of(&store)).await;
                let cards = Arc::new(target.model_cards());
                (Arc::new(target), cards)
            }
            #[cfg(not(feature = "aws"))]
            TargetKind::Aws => unreachable!("configuration refuses target = aws in a build without the aws feature"),
        };
        let pipelines = PipelineService::new(
            store.clone(),
            target.clone(),
            RequestContext {
                environments: settings.environments.clone(),
                use_model_registry: settings.use_model_registry,
            },
            JobPolicy { max_attempts: settings.jobs.max_attempts },
            settings.aws.stack_id_wait,
        );
        let model_cards = crate::services::model_cards::ModelCardService::new(card_backend, artifacts.assets_bucket());
        // Names this process in what it writes for every replica to read.
        let replica = crate::host::process_name();
        let capture_figures = Arc::new(crate::serving::capture_figures::CaptureFigureReports::new(
            capture.clone(),
            store.clone(),
            replica.clone(),
        ));
        let endpoint_logs =
            Arc::new(crate::serving::endpoint_logs::EndpointLogReports::new(endpoints.clone(), store.clone(), replica));
        let endpoint_service = EndpointService::new(store.clone(), capture_figures.clone(), endpoint_logs.clone());
        let algorithm_service = crate::services::algorithms::AlgorithmService::new(store.clone());
        let model_registry =
            crate::services::model_registry::ModelRegistryService::new(store.clone(), artifacts.clone());
        let monitor_service = crate::services::monitors::MonitorService::new(
            store.clone(),
            artifacts.clone(),
            settings.jobs.max_attempts,
        );
        let notification_service = crate::services::notifications::NotificationService::new(store.clone());
        let sources = crate::sources::Sources::from_settings(&settings, &artifacts)?;
        let config_revisions = crate::services::config_revisions::ConfigRevisionService::new(
            store.clone(),
            pipelines.clone(),
            channels.clone(),
            sources,
        );
        let invocations =
            Arc::new(crate::serving::limiter::InvocationLimiter::new(settings.serving.max_concurrent_invocations));
        Ok(AppState::new(crate::state::Shared {
            settings: Arc::new(settings),
            store,
            tokens,
            artifacts,
            endpoints,
            invocations,
            capture,
            capture_figures,
            endpoint_logs,
            target,
            pipelines,
            endpoint_service,
            algorithm_service,
            monitor_service,
            model_registry,
            model_cards,
            notification_service,
            config_revisions,
            channels,
            shutdown: CancellationToken::new(),
        }))
    }
}

/// The job handler of every job kind, from the parts each uses.
fn job_handler(state: &AppState) -> Arc<dyn crate::jobs::JobHandler> {
    Arc::new(crate::jobs::ByKind {
        pipelines: Box::new(crate::jobs::pipeline_jobs::PipelineJobs::new(
            state.store.clone(),
            state.target.clone(),
            state.settings.jobs.clone(),
        )),
        deliveries: Box::new(crate::notify::deliveries::DeliveryJobs::new(state.store.clone(), state.channels.clone())),
        config_polls: Box::new(crate::sources::polls::ConfigPolls::new(state.config_revisions.clone())),
    })
}

/// Opens the store, applying migrations on SQLite (an embedded database has nobody else to
/// migrate it) and refusing to start on an out-of-date Postgres schema.
pub async fn open_store(settings: &Settings) -> Result<DynStore, StartError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|source| StartError::DataDir { path: settings.data_dir.display().to_string(), source })?;
    let store = crate::store::connect(&settings.database_url()).await?;
    if store.backend() == Backend::Sqlite {
        store.migrate().await?;
    } else {
        let pending = store.pending_migrations().await?;
        if pending > 0 {
            return Err(StartError::SchemaOutOfDate(pending));
        }
    }
    Ok(store)
}

/// Runs the API and the job workers on `listener` until `shutdown` resolves.
pub async fn start(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    start_on(settings, Listeners { api: listener, metrics: None }, shutdown).await
}

/// Sockets a caller bound itself (to learn the port of a `:0` address before the server runs,
/// or to hand over inherited sockets).
pub struct Listeners {
    pub api: TcpListener,
    /// Serves `/metrics` in place of binding `metrics.listen`, which it replaces.
    pub metrics: Option<TcpListener>,
}

/// [`start`] on listeners the caller bound.
pub async fn start_on(
    mut settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let Listeners { api: listener, metrics } = listeners;
    if let Some(metrics) = &metrics {
        settings.metrics.listen = Some(metrics.local_addr()?);
    }
    let state = AppState::build(settings).await?;
    let (settings, store) = (state.settings.clone(), state.store.clone());
    let stop = state.shutdown.clone();
    let _metrics = start_metrics(&settings, &store, &stop, metrics).await?;
    let runner = Arc::new(Runner::new(store.clone(), job_handler(&state), settings.jobs.clone()));
    // Aborted if this future is dropped (a killed server), so no worker outlives its server.
    let mut workers = (settings.jobs.workers > 0)
        .then(|| AbortOnDrop(tokio::spawn(runner.run(stop.clone(), settings.http.shutdown_grace))));
    let _schedules = (settings.jobs.workers > 0).then(|| AbortOnDrop(spawn_schedules(&settings, &store, &stop)));
    let _releases = (settings.jobs.workers > 0).then(|| spawn_release_watch(&state)).flatten();
    let _retention = (settings.jobs.workers > 0).then(|| spawn_retention(&state));
    let _dispatcher = (settings.jobs.workers > 0).then(|| AbortOnDrop(spawn_dispatcher(&state)));
    // Both report once more at shutdown (`Shared::close`).
    let figures = state.capture_figures.clone();
    let _capture_figures = AbortOnDrop(tokio::spawn(crate::tasks::repeat(
        settings.capture.flush_interval,
        "capture figures could not be added to the store",
        move || {
            let figures = figures.clone();
            async move { figures.report().await }
        },
    )));
    let logs = state.endpoint_logs.clone();
    let _endpoint_logs = AbortOnDrop(tokio::spawn(crate::tasks::repeat(
        crate::serving::endpoint_logs::REPORT_EVERY,
        "endpoint logs could not be written to the store",
        move || {
            let logs = logs.clone();
            async move { logs.report().await }
        },
    )));
    start_config_polls(&state).await?;

    tracing::info!(listen = %listener.local_addr()?, database = ?store.backend(), "mlops-orchestrator serving");
    // One grace period for everything (an ECS stop window is 30 s): in-flight requests and
    // running jobs share it from the moment shutdown is asked for; then the process stops.
    let grace = settings.http.shutdown_grace;
    let deadline = Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    let (stop_http, deadline_set) = (stop.clone(), deadline.clone());
    let limits = crate::server::ConnectionLimits {
        max_connections: settings.http.max_connections,
        header_read_timeout: settings.http.header_read_timeout,
        idle_timeout: settings.http.idle_timeout,
    };
    let serve = crate::server::serve(listener, router(state.clone()), limits, async move {
        shutdown.await;
        deadline_set.get_or_init(|| tokio::time::Instant::now() + grace);
        stop_http.cancel();
    });
    let deadline_at = || *deadline.get_or_init(|| tokio::time::Instant::now() + grace);
    let served = tokio::select! {
        served = serve => served,
        _ = async { stop.cancelled().await; tokio::time::sleep_until(deadline_at()).await } => {
            tracing::warn!("HTTP requests still running after the grace period were abandoned");
            Ok(())
        }
    };
    stop.cancel();
    if let Some(AbortOnDrop(workers)) = workers.as_mut()
        && tokio::time::timeout_at(deadline_at() + std::time::Duration::from_secs(1), workers).await.is_err()
    {
        tracing::warn!("job workers did not stop within the grace period");
    }
    state.close().await;
    tracing::info!("stopped");
    Ok(served?)
}

/// Starts monitor executions as their schedules fire, a window two capture flushes (and 5 s)
/// after it closes so its last records are written.
fn spawn_schedules(settings: &Settings, store: &DynStore, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let delay = settings.capture.flush_interval * 2 + std::time::Duration::from_secs(5);
    tokio::spawn(crate::jobs::schedules::run(
        store.clone(),
        settings.jobs.poll_interval,
        delay,
        settings.jobs.max_attempts,
        stop.clone(),
    ))
}

/// Watches for releases started outside the orchestrator (the aws target's CodePipelines run
/// on a console click too); the local target has none.
fn spawn_release_watch(state: &AppState) -> Option<AbortOnDrop> {
    if state.settings.target != TargetKind::Aws {
        return None;
    }
    Some(AbortOnDrop(tokio::spawn(crate::jobs::releases::run(
        state.store.clone(),
        state.target.clone(),
        state.settings.aws.release_watch_interval,
        state.settings.jobs.max_attempts,
        state.shutdown.clone(),
    ))))
}

/// Deletes what has outlived its retention (`[retention]`).
fn spawn_retention(state: &AppState) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(crate::jobs::retention::run(
        state.store.clone(),
        state.settings.retention.clone(),
        state.shutdown.clone(),
    )))
}

/// Queues each config source's recurring poll (any process may: the queue keeps one per source).
async fn start_config_polls(state: &AppState) -> Result<(), StartError> {
    let sources = state.config_revisions.sources();
    crate::sources::polls::start(&state.store, sources, state.settings.jobs.max_attempts).await?;
    Ok(())
}

/// Turns events into notifications (every worker process runs one; they share the work).
fn spawn_dispatcher(state: &AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(crate::notify::dispatcher::run(
        state.store.clone(),
        state.channels.clone(),
        state.settings.notifications.dispatch_interval,
        state.shutdown.clone(),
    ))
}

/// Runs job workers without the API until `shutdown` resolves (the `worker` role).
pub async fn run_workers(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = AppState::build(settings).await?;
    let (settings, store) = (state.settings.clone(), state.store.clone());
    let stop = state.shutdown.clone();
    let _metrics = start_metrics(&settings, &store, &stop, None).await?;
    let runner = Arc::new(Runner::new(store.clone(), job_handler(&state), settings.jobs.clone()));
    let workers = tokio::spawn(runner.run(stop.clone(), settings.http.shutdown_grace));
    let _schedules = AbortOnDrop(spawn_schedules(&settings, &store, &stop));
    let _releases = spawn_release_watch(&state);
    let _retention = spawn_retention(&state);
    let _dispatcher = AbortOnDrop(spawn_dispatcher(&state));
    start_config_polls(&state).await?;
    shutdown.await;
    stop.cancel();
    // The runner releases unfinished jobs at the end of its grace period; give it a moment more.
    if tokio::time::timeout(settings.http.shutdown_grace + std::time::Duration::from_secs(1), workers).await.is_err() {
        tracing::warn!("job workers did not stop within the grace period");
    }
    state.close().await;
    Ok(())
}

/// The API and, around all of it, what every request passes through (outermost first): its id,
/// log context and access line; panics answered 500; the request timeout; the body limit of JSON
/// routes; SigV4 signatures checked.
///
/// Layered around the router as one service rather than with `Router::layer`, which wraps every
/// route in the whole stack and boxes it again: axum clones a route's service for every request,
/// and cloning that stack was a tenth of an invocation's instructions.
pub fn router(state: AppState) -> impl crate::server::HttpService {
    let settings = state.settings.clone();
    let (api, spec) = crate::openapi::split();
    let app = api
        .route_layer(WrapLayer(crate::http::route_metrics::RouteMetrics))
        .with_state(state.clone())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(|| async { ApiError::NotFound("no such route; the API is described at /openapi.json".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let app = match &settings.http.path_prefix {
        // Every route also under the prefix (an API Gateway stage in the clients' URLs).
        Some(prefix) => Router::new().nest(prefix, app.clone()).fallback_service(app),
        None => app,
    };
    tower::ServiceBuilder::new()
        .layer(WrapLayer(crate::http::access::Access))
        .map_response(axum::response::IntoResponse::into_response)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("handler panicked".into()))
        }))
        .layer(WrapLayer(crate::http::timeout::Timeout::new(
            settings.http.request_timeout,
            settings.http.path_prefix.as_deref(),
        )))
        .layer(DefaultBodyLimit::max(settings.http.body_limit_bytes))
        .layer(WrapLayer(crate::http::signed::Signatures { state }))
        .service(app)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
