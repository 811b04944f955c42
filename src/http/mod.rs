//! HTTP surfaces. Handlers stay thin: extract, call a service, map the result.

pub mod access;
pub mod algorithms;
pub mod assets;
pub mod compat;
pub mod config_sources;
pub mod endpoints;
pub mod event_stream;
pub mod extract;
pub mod health;
pub mod layer;
pub mod model_cards;
pub mod model_registry;
pub mod monitors;
pub mod notifications;
pub mod pipelines;
pub mod route_metrics;
pub mod signed;
pub mod timeout;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::put;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    // Asset keys contain '/', which needs a wildcard route; its spec entry is added by
    // `openapi::ApiDoc` under `/v1/assets/{key}`.
    let assets = axum::Router::new()
        .route("/v1/assets/{*key}", put(assets::put_asset).get(assets::get_asset))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(health::router())
        .merge(compat::router())
        .merge(pipelines::router())
        .merge(algorithms::router())
        .merge(monitors::router())
        .merge(model_registry::router())
        .merge(model_cards::router())
        .merge(notifications::router())
        .merge(config_sources::router())
        // Invocations read their bodies themselves, up to the serving payload limit (not
        // through axum's extractors, so `http.body_limit_bytes` does not apply to them).
        .merge(endpoints::router())
        .merge(OpenApiRouter::from(assets))
}
