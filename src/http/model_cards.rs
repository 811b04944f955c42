//! `/v1/model-cards`: model cards beside the solution's `*_model_card` operations, with the same
//! fields and rules (the body of a create is the solution's body without `pipeline_type`).

use super::extract::{ApiPath, Caller, JsonBody, ToOperate, ToRead};
use crate::error::ApiError;
use crate::services::model_cards::ModelCardView;
use crate::state::AppState;
use crate::targets::model_cards::{CardExport, CardSummary};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_card, list_cards))
        .routes(routes!(get_card, update_card, delete_card))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(export_card))
}

#[derive(Serialize, ToSchema)]
pub struct CardListOut {
    pub items: Vec<CardSummary>,
}

/// Creates a card (version 1). Body: the solution's fields — `name`, `status` (default `Draft`),
/// `model_overview` (with `model_name`, filled from that model's records), `intended_uses`,
/// `training_details` (with `training_job_name`, filled from the job), `evaluation_details`
/// (with `metric_file_s3_url` + `metric_type`, filled from the file), `additional_information`.
#[utoipa::path(post, path = "/v1/model-cards", tag = "model-cards",
    request_body(content = Object, description = "{\"name\": \"churn-card\", \"intended_uses\": {\"purpose_of_model\": \"…\"}, …}"),
    responses((status = 201, body = ModelCardView),
        (status = 400, description = "A bad field, named; content outside SageMaker's model-card schema", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn create_card(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToOperate>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ModelCardView>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.model_cards.create(&caller, &body).await?)))
}

/// Every card, at its latest version.
#[utoipa::path(get, path = "/v1/model-cards", tag = "model-cards", responses((status = 200, body = CardListOut)))]
async fn list_cards(State(state): State<AppState>, _caller: Caller<ToRead>) -> Result<Json<CardListOut>, ApiError> {
    Ok(Json(CardListOut { items: state.model_cards.list().await? }))
}

/// A card's latest version.
#[utoipa::path(get, path = "/v1/model-cards/{name}", tag = "model-cards",
    params(("name" = String, Path, description = "Card name")),
    responses((status = 200, body = ModelCardView), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_card(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModelCardView>, ApiError> {
    Ok(Json(state.model_cards.get(&name, None).await?))
}

/// Writes the card's next version: each section given replaces the card's, the others stay;
/// the status stays unless `status` is given.
#[utoipa::path(patch, path = "/v1/model-cards/{name}", tag = "model-cards",
    params(("name" = String, Path, description = "Card name")),
    request_body(content = Object, description = "{\"status\": \"PendingReview\", \"intended_uses\": {…}}"),
    responses((status = 200, body = ModelCardView),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Updated by someone else meanwhile", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn update_card(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToOperate>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ModelCardView>, ApiError> {
    Ok(Json(state.model_cards.update(&caller, &name, &body).await?))
}

/// Deletes the card and every version (its exports stay).
#[utoipa::path(delete, path = "/v1/model-cards/{name}", tag = "model-cards",
    params(("name" = String, Path, description = "Card name")),
    responses((status = 204), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn delete_card(
    State(state): State<AppState>,
    _caller: Caller<ToOperate>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.model_cards.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The card's versions, oldest first.
#[utoipa::path(get, path = "/v1/model-cards/{name}/versions", tag = "model-cards",
    params(("name" = String, Path, description = "Card name")),
    responses((status = 200, body = CardListOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_versions(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CardListOut>, ApiError> {
    Ok(Json(CardListOut { items: state.model_cards.versions(&name).await? }))
}

/// One version of the card.
#[utoipa::path(get, path = "/v1/model-cards/{name}/versions/{version}", tag = "model-cards",
    params(("name" = String, Path, description = "Card name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = ModelCardView),
        (status = 400, description = "A version that is not a number", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_version(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> Result<Json<ModelCardView>, ApiError> {
    Ok(Json(state.model_cards.get(&name, Some(version)).await?))
}

/// Exports a version (`model_card_version`, default the latest) to PDF — and on the local
/// target HTML too — under the assets bucket's `model_card_exports/`; `export_job_name` defaults
/// to the card's name with the time.
#[utoipa::path(post, path = "/v1/model-cards/{name}/exports", tag = "model-cards",
    params(("name" = String, Path, description = "Card name")),
    request_body(content = Object, description = "{\"export_job_name\": \"churn-card-q3\", \"model_card_version\": 2}"),
    responses((status = 201, body = CardExport),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The export job name is taken", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn export_card(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToOperate>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<CardExport>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.model_cards.export(&caller, &name, &body).await?)))
}
