//! HTTP surfaces. Handlers stay thin: extract, call a service, map the result.

pub mod health;

use crate::app::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(health::router())
}
