//! The AWS MLOps Workload Orchestrator API, kept as it is so existing clients and
//! `mlops-config.json` files work unchanged: `POST /provisionpipeline` and `POST /pipelinestatus`.

use super::extract::{Caller, JsonBody, ToOperate, ToRead};
use crate::domain::model_card::ModelCardOp;
use crate::domain::{PipelineType, names};
use crate::error::ApiError;
use crate::state::AppState;
use crate::targets::codepipeline_state::PipelineStateOut;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(provision_pipeline)).routes(routes!(pipeline_status))
}

#[derive(Serialize, ToSchema)]
pub struct ProvisionOut {
    /// The solution's message: `success: stack creation started`, or
    /// `Pipeline <name> is already provisioned. Updating template parameters.`
    pub message: String,
    /// Our id; on the aws target the wrapper stack's StackId, as the solution answers.
    pub pipeline_id: String,
    /// Accepted but worth knowing (e.g. ignored keys).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The answer to a model-card operation, as the solution gives it: `message` holds SageMaker's
/// `DescribeModelCard` or `ListModelCards` answer, or a sentence (delete, export).
// No other keys (`deny_unknown_fields` makes that `additionalProperties: false`), so an answer
// matches exactly one of the two shapes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCardMessage {
    /// An object (`DescribeModelCard`, `ListModelCards`) or a sentence.
    pub message: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProvisionAnswer {
    Pipeline(ProvisionOut),
    ModelCard(ModelCardMessage),
}

/// Provision or update a pipeline (the solution's body, any of the 12 pipeline types), or run
/// one of the solution's model-card operations (`create_model_card`, `update_model_card`,
/// `describe_model_card`, `delete_model_card`, `export_model_card`, `list_model_cards`).
///
/// The same `pipeline_type` and `model_name` again updates the pipeline and redeploys it.
#[utoipa::path(post, path = "/provisionpipeline", tag = "compat",
    request_body(content = Object, description = "The solution's request body, e.g. {\"pipeline_type\": \"byom_realtime_builtin\", \"model_name\": \"churn\", …}"),
    responses(
        (status = 200, body = ProvisionAnswer),
        (status = 404, description = "A model-card operation on a card that does not exist", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A model card or export job name that is taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Invalid request: every bad field is listed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Valid, but this server's target cannot run it", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn provision_pipeline(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<ToOperate>,
    JsonBody(body): JsonBody,
) -> Result<Json<ProvisionAnswer>, ApiError> {
    if let Some(op) = body.get("pipeline_type").and_then(ModelCardOp::from_pipeline_type) {
        let message = state.model_cards.compat(&principal, op, &body).await?;
        return Ok(Json(ProvisionAnswer::ModelCard(ModelCardMessage { message })));
    }
    let result = state.pipelines.provision(&principal, &body).await?;
    let pipeline_type: PipelineType =
        result.record.pipeline_type.parse().map_err(|_| ApiError::Internal("stored pipeline type".into()))?;
    let stack = names::stack_name(pipeline_type, &result.record.name);
    // The solution's messages (reference §5.1); the image builder has no wrapper stack.
    let message = match (result.created, pipeline_type) {
        (true, _) => "success: stack creation started".to_string(),
        (false, PipelineType::ByomImageBuilder) => format!("Pipeline {stack} is being updated."),
        (false, _) => format!(
            "Pipeline {} is already provisioned. Updating template parameters.",
            names::wrapper_stack_name(&stack)
        ),
    };
    let pipeline_id = state.pipelines.compat_id(&result.record).await;
    Ok(Json(ProvisionAnswer::Pipeline(ProvisionOut { message, pipeline_id, warnings: result.warnings })))
}

/// A pipeline's state in CodePipeline's `GetPipelineState` shape: on the aws target CodePipeline's
/// own answer; `pipeline_id` may be our id or the StackId the provisioning returned.
#[utoipa::path(post, path = "/pipelinestatus", tag = "compat",
    request_body(content = Object, description = "{\"pipeline_id\": \"<id returned by /provisionpipeline>\"}"),
    responses(
        (status = 200, body = PipelineStateOut),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn pipeline_status(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    JsonBody(body): JsonBody,
) -> Result<Json<PipelineStateOut>, ApiError> {
    let id = match body.get("pipeline_id") {
        Some(serde_json::Value::String(id)) if !id.trim().is_empty() => id.trim().to_string(),
        Some(_) => return Err(ApiError::bad_request("/pipeline_id", "`pipeline_id` must be a non-empty string")),
        None => return Err(ApiError::bad_request("/pipeline_id", "`pipeline_id` is required")),
    };
    Ok(Json(state.pipelines.codepipeline_state(&id).await?))
}
