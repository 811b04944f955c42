//! `/v1/model-package-groups`: the local target's model registry — groups, their numbered
//! versions with SageMaker's `ModelApprovalStatus`, and approval decisions (approver role).

use super::extract::{ApiPath, Caller, JsonBody, ToApprove, ToOperate, ToRead};
use crate::error::ApiError;
use crate::services::model_registry::ModelPackageView;
use crate::state::AppState;
use crate::store::ModelPackageGroupRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(register_package, list_packages))
        .routes(routes!(get_package))
        .routes(routes!(decide_package))
}

#[derive(Serialize, ToSchema)]
pub struct GroupListOut {
    pub items: Vec<ModelPackageGroupRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct PackageListOut {
    pub items: Vec<ModelPackageView>,
}

/// A new group.
// These bodies are documented here; the service reads them field by field, to name a bad one.
#[derive(Deserialize, ToSchema)]
pub struct GroupIn {
    /// 1-63 letters, digits and hyphens.
    pub name: String,
    pub description: Option<String>,
}

/// A new version of a group: its model is an uploaded asset, or a SageMaker training job's
/// output (`<job_output_location>/<training_job_name>/output/model.tar.gz` in the assets bucket).
#[derive(Deserialize, ToSchema)]
pub struct PackageIn {
    /// The model's asset key (uploaded first); or give the two training fields.
    pub model_artifact_location: Option<String>,
    /// A training job whose output holds the model.
    pub training_job_name: Option<String>,
    /// The training pipeline's `job_output_location` (an asset key prefix).
    pub job_output_location: Option<String>,
    /// `xgboost` or `onnx`.
    pub model_framework: String,
    pub model_framework_version: Option<String>,
    pub description: Option<String>,
}

/// An approval decision.
#[derive(Deserialize, ToSchema)]
pub struct DecisionIn {
    /// `Approved`, `Rejected` or `PendingManualApproval`.
    pub status: String,
    pub comment: Option<String>,
}

/// Creates a model package group.
#[utoipa::path(post, path = "/v1/model-package-groups", tag = "models", request_body = GroupIn,
    responses((status = 201, body = ModelPackageGroupRecord),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn create_group(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToOperate>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ModelPackageGroupRecord>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.model_registry.create_group(&caller, &body).await?)))
}

/// Every model package group.
#[utoipa::path(get, path = "/v1/model-package-groups", tag = "models", responses((status = 200, body = GroupListOut)))]
async fn list_groups(State(state): State<AppState>, _caller: Caller<ToRead>) -> Result<Json<GroupListOut>, ApiError> {
    Ok(Json(GroupListOut { items: state.model_registry.groups().await? }))
}

/// Registers the group's next version (`PendingManualApproval`), from an uploaded asset.
#[utoipa::path(post, path = "/v1/model-package-groups/{group}/packages", tag = "models",
    params(("group" = String, Path, description = "Group name")), request_body = PackageIn,
    responses((status = 201, body = ModelPackageView),
        (status = 400, description = "A bad field, or no such asset", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn register_package(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToOperate>,
    ApiPath(group): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ModelPackageView>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.model_registry.register(&caller, &group, &body).await?)))
}

/// The group's versions, oldest first, each with its decisions.
#[utoipa::path(get, path = "/v1/model-package-groups/{group}/packages", tag = "models",
    params(("group" = String, Path, description = "Group name")),
    responses((status = 200, body = PackageListOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_packages(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<PackageListOut>, ApiError> {
    Ok(Json(PackageListOut { items: state.model_registry.packages(&group).await? }))
}

/// One version with its decisions.
#[utoipa::path(get, path = "/v1/model-package-groups/{group}/packages/{version}", tag = "models",
    params(("group" = String, Path, description = "Group name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = ModelPackageView),
        (status = 400, description = "A version that is not a number", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_package(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath((group, version)): ApiPath<(String, i64)>,
) -> Result<Json<ModelPackageView>, ApiError> {
    Ok(Json(state.model_registry.package(&group, version).await?))
}

/// Sets a version's `ModelApprovalStatus` (approver or admin); the decision is recorded with the
/// caller's name and comment.
#[utoipa::path(post, path = "/v1/model-package-groups/{group}/packages/{version}/approval", tag = "models",
    params(("group" = String, Path, description = "Group name"), ("version" = i64, Path, description = "Version number")),
    request_body = DecisionIn,
    responses((status = 200, body = ModelPackageView),
        (status = 400, description = "A bad field, or a version that is not a number", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn decide_package(
    State(state): State<AppState>,
    Caller(caller, _): Caller<ToApprove>,
    ApiPath((group, version)): ApiPath<(String, i64)>,
    JsonBody(body): JsonBody,
) -> Result<Json<ModelPackageView>, ApiError> {
    Ok(Json(state.model_registry.decide(&caller, &group, version, &body).await?))
}
