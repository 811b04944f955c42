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

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: DynStore,
    pub tokens: Arc<TokenRegistry>,
    pub artifacts: ArtifactStore,
    pub endpoints: Arc<EndpointRegistry>,
    pub invocations: Arc<InvocationLimiter>,
    pub capture: CaptureWriter,
    pub target: DynTarget,
    pub pipelines: PipelineService,
    pub endpoint_service: EndpointService,
    pub algorithm_service: AlgorithmService,
    pub monitor_service: crate::services::monitors::MonitorService,
    /// Cancelled when the server begins to stop: long-lived responses (event streams) end.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// Flushes what is buffered and closes the database.
    pub async fn close(&self) {
        if let Err(e) = self.capture.shutdown().await {
            tracing::error!(error = %e, "captured invocations could not all be written at shutdown");
        }
        self.store.close().await;
    }
}
