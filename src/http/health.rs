//! Liveness and readiness for load balancers and orchestrators.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    pub status: &'static str,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// Liveness: the process answers. Does no I/O.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, body = HealthOut)))]
async fn healthz() -> Json<HealthOut> {
    Json(HealthOut { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = HealthOut), (status = 503, body = crate::error::Problem)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<HealthOut>, ApiError> {
    crate::services::ready(&state.store).await?;
    Ok(Json(HealthOut { status: "ready" }))
}
