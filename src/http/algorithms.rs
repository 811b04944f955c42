//! `/v1/algorithms`: the custom algorithms `byom_image_builder` built on the local target, by the
//! name a `custom_image_uri` gives them.

use super::extract::{ApiPath, Caller, ToRead};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AlgorithmRecord;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_algorithms)).routes(routes!(get_algorithm))
}

#[derive(Serialize, ToSchema)]
pub struct AlgorithmOut {
    /// `ecr_repo_name:image_tag`; give it as `custom_image_uri`.
    pub name: String,
    /// The `byom_image_builder` pipeline that built it.
    pub pipeline_id: String,
    /// SHA-256 of the zip it was built from.
    pub sha256: String,
    /// The asset key of that zip (`custom_algorithm_docker`).
    pub source: String,
    /// How it runs (`process`: a child process from its unpacked code, no container engine).
    pub mode: String,
    /// The folder of the zip holding `serve` (empty: the top).
    pub program_dir: String,
    /// Whether the zip has a `train` entry point too.
    pub has_train: bool,
    /// The `requirements.txt` installed into its virtual environment, if any.
    pub requirements: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AlgorithmListOut {
    pub items: Vec<AlgorithmOut>,
}

fn algorithm_out(record: AlgorithmRecord) -> AlgorithmOut {
    let details = &record.details.0;
    AlgorithmOut {
        mode: details["mode"].as_str().unwrap_or("process").to_string(),
        program_dir: details["program_dir"].as_str().unwrap_or_default().to_string(),
        has_train: details["has_train"].as_bool().unwrap_or(false),
        requirements: details["requirements"].as_str().map(str::to_string),
        name: record.name,
        pipeline_id: record.pipeline_id,
        sha256: record.sha256,
        source: record.source,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Every registered algorithm, by name.
#[utoipa::path(get, path = "/v1/algorithms", tag = "algorithms",
    responses((status = 200, body = AlgorithmListOut)))]
async fn list_algorithms(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
) -> Result<Json<AlgorithmListOut>, ApiError> {
    let records = state.algorithm_service.list().await?;
    Ok(Json(AlgorithmListOut { items: records.into_iter().map(algorithm_out).collect() }))
}

/// One algorithm. A name with `/` (a repository path) is sent with it encoded as `%2F`.
#[utoipa::path(get, path = "/v1/algorithms/{name}", tag = "algorithms",
    params(("name" = String, Path, description = "`ecr_repo_name:image_tag`, `/` encoded as `%2F`")),
    responses((status = 200, body = AlgorithmOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_algorithm(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AlgorithmOut>, ApiError> {
    Ok(Json(algorithm_out(state.algorithm_service.get(&name).await?)))
}
