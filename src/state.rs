//! The handles every request shares (`axum` state). Built by `app`; read by the handlers in
//! `http/`, which so never import `app`.

use crate::artifacts::ArtifactStore;
use crate::auth::TokenRegistry;
use crate::config::Settings;
use crate::services::algorithms::AlgorithmService;
use crate::services::endpoints::EndpointService;
use crate::services::pipelines::PipelineService;
use crate::serving::capture::CaptureWriter;
use crate::serving::endpoints::EndpointRegistry;
use crate::serving::limiter::InvocationLimiter;
use crate::store::DynStore;
use crate::targets::DynTarget;
use std::sync::Arc;

/// What every request shares, behind one `Arc`: axum clones the state for each request (and
/// its extractors again), and one reference count is far cheaper than a dozen, each a cache line
/// the cores take from one another.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles themselves.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub store: DynStore,
    pub tokens: Arc<TokenRegistry>,
    pub artifacts: ArtifactStore,
    pub endpoints: Arc<EndpointRegistry>,
    pub invocations: Arc<InvocationLimiter>,
    pub capture: CaptureWriter,
    /// The capture figures every replica adds to the store.
    pub capture_figures: Arc<crate::serving::capture_figures::CaptureFigureReports>,
    /// Custom algorithms' output every replica writes to the store.
    pub endpoint_logs: Arc<crate::serving::endpoint_logs::EndpointLogReports>,
    pub target: DynTarget,
    pub pipelines: PipelineService,
    pub endpoint_service: EndpointService,
    pub algorithm_service: AlgorithmService,
    pub monitor_service: crate::services::monitors::MonitorService,
    pub model_registry: crate::services::model_registry::ModelRegistryService,
    pub model_cards: crate::services::model_cards::ModelCardService,
    pub notification_service: crate::services::notifications::NotificationService,
    pub config_revisions: crate::services::config_revisions::ConfigRevisionService,
    /// The configured notification channels.
    pub channels: crate::notify::Channels,
    /// Cancelled when the server begins to stop: long-lived responses (event streams) end.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Shared {
    /// Flushes what is buffered and closes the database.
    pub async fn close(&self) {
        if let Err(e) = self.capture.shutdown().await {
            tracing::error!(error = %e, "captured invocations could not all be written at shutdown");
        }
        if let Err(e) = self.capture_figures.report().await {
            tracing::error!(error = %e, "the last capture figures could not be added to the store");
        }
        if let Err(e) = self.endpoint_logs.report().await {
            tracing::warn!(error = %e, "the last endpoint logs could not be written to the store");
        }
        self.store.close().await;
    }
}
