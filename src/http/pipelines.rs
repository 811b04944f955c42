//! The `/v1/pipelines` resource API: provision (with a dry run), list, read, events, approvals,
//! delete.

use super::extract::{ApiPath, ApiQuery, Caller, JsonBody, ToApprove, ToOperate, ToRead};
use crate::domain::state::{PipelineState, StageState};
use crate::domain::{PipelineType, StagePlan};
use crate::error::ApiError;
use crate::services::pipelines::PipelineView;
use crate::state::AppState;
use crate::store::{EventRecord, PipelineFilter, PipelineRecord, StageRecord};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_pipeline, list_pipelines))
        .routes(routes!(get_pipeline, delete_pipeline))
        .routes(routes!(list_events))
        .routes(routes!(decide_approval))
}

#[derive(Serialize, ToSchema)]
pub struct PipelineOut {
    pub id: String,
    /// `model_name` (lower-cased), or `image_tag` for the image builder.
    pub name: String,
    pub pipeline_type: String,
    pub target: String,
    pub state: PipelineState,
    /// Bumped by every re-provision.
    pub version: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The validated, typed request.
    pub spec: Value,
    /// When the current version came from a config source: `source`, `kind` (`git`, `bucket`),
    /// `revision` (commit SHA, object version), `author`, `message`, `config_revision_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Value>,
    pub stages: Vec<StageOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StageOut {
    pub ordinal: i32,
    pub environment: String,
    pub state: StageState,
    pub requires_approval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// Everything this stage deploys with, per-environment values resolved.
    pub params: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineSummaryOut {
    pub id: String,
    pub name: String,
    pub pipeline_type: String,
    pub state: PipelineState,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineListOut {
    pub items: Vec<PipelineSummaryOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PlanOut {
    pub dry_run: bool,
    pub pipeline_type: PipelineType,
    pub name: String,
    /// The version the pipeline would get.
    pub version: i64,
    pub stages: Vec<StagePlan>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventListOut {
    pub items: Vec<EventRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalIn {
    pub decision: Decision,
    pub comment: Option<String>,
    /// The pipeline version the decision is about (as `/v1/pipelines/{id}` shows it): a
    /// decision on another version than the current one is refused with 409, so an approver
    /// never approves a version they did not look at.
    pub version: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Validate and plan only: nothing is stored.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub state: Option<PipelineState>,
    pub pipeline_type: Option<PipelineType>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-500, default 50.
    pub limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with an id greater than this.
    pub after: Option<i64>,
    /// 1-1000, default 200.
    pub limit: Option<i64>,
    /// `true`: answer with Server-Sent Events (`text/event-stream`) — the events after `after`
    /// (or the `Last-Event-ID` header), then each new one as it happens; `limit` does not apply.
    pub follow: Option<bool>,
}

fn stage_out(s: StageRecord) -> StageOut {
    StageOut {
        ordinal: s.ordinal,
        environment: s.environment,
        state: s.state,
        requires_approval: s.requires_approval,
        approved_by: s.approved_by,
        approved_at: s.approved_at,
        params: s.params.0,
        outputs: s.outputs.map(|o| o.0),
        last_error: s.last_error,
        updated_at: s.updated_at,
    }
}

pub fn pipeline_out(p: PipelineRecord, stages: Vec<StageRecord>, warnings: Vec<String>) -> PipelineOut {
    PipelineOut {
        id: p.id,
        name: p.name,
        pipeline_type: p.pipeline_type,
        target: p.target,
        state: p.state,
        version: p.version,
        created_by: p.created_by,
        created_at: p.created_at,
        updated_at: p.updated_at,
        last_error: p.last_error,
        spec: p.spec.0,
        origin: p.origin.map(|o| o.0),
        stages: stages.into_iter().map(stage_out).collect(),
        warnings,
    }
}

fn view_out(view: PipelineView) -> PipelineOut {
    pipeline_out(view.record, view.stages, Vec::new())
}

/// Provision or update a pipeline; `?dry_run=true` returns the plan and stores nothing.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", params(CreateQuery),
    request_body(content = Object, description = "The same body as /provisionpipeline"),
    responses(
        (status = 201, description = "Created", body = PipelineOut),
        (status = 200, description = "Updated an existing pipeline (same type and name), or the dry-run plan", body = PipelineOut),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_pipeline(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<ToOperate>,
    ApiQuery(query): ApiQuery<CreateQuery>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if query.dry_run {
        let planned = state.pipelines.plan(&body).await?;
        let out = PlanOut {
            dry_run: true,
            pipeline_type: planned.spec.pipeline_type,
            name: planned.spec.name,
            version: planned.version,
            stages: planned.plan.stages,
            warnings: planned.warnings,
        };
        return Ok((StatusCode::OK, Json(to_json(&out)?)));
    }
    let result = state.pipelines.provision(&principal, &body).await?;
    let status = if result.created { StatusCode::CREATED } else { StatusCode::OK };
    let view = state.pipelines.with_stages(result.record).await?;
    Ok((status, Json(to_json(&pipeline_out(view.record, view.stages, result.warnings))?)))
}

fn to_json(value: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// List pipelines, oldest first, filtered by state and type, a page at a time.
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", params(ListQuery),
    responses((status = 200, body = PipelineListOut), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_pipelines(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<PipelineListOut>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "`limit` must be between 1 and 500"));
    }
    let filter = PipelineFilter {
        state: query.state,
        pipeline_type: query.pipeline_type.map(|t| t.as_str().to_string()),
        after_id: query.cursor,
        limit: limit + 1,
    };
    let mut rows = state.pipelines.list(&filter).await?;
    let next_cursor = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|p| p.id.clone()).unwrap_or_default()
    });
    let items = rows
        .into_iter()
        .map(|p| PipelineSummaryOut {
            id: p.id,
            name: p.name,
            pipeline_type: p.pipeline_type,
            state: p.state,
            version: p.version,
            updated_at: p.updated_at,
        })
        .collect();
    Ok(Json(PipelineListOut { items, next_cursor }))
}

/// One pipeline with its stages.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id")),
    responses((status = 200, body = PipelineOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_pipeline(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PipelineOut>, ApiError> {
    Ok(Json(view_out(state.pipelines.view(&id).await?)))
}

/// Delete a pipeline: its endpoints are torn down, then it is `deleted`.
#[utoipa::path(delete, path = "/v1/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id")),
    responses((status = 202, description = "Teardown started", body = PipelineOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn delete_pipeline(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<ToOperate>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<PipelineOut>), ApiError> {
    let view = state.pipelines.delete(&principal, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(view_out(view))))
}

/// The pipeline's audit trail: every state change, approval and deployment, oldest first. With
/// `follow=true`, a stream of Server-Sent Events instead: each event's SSE `id` is its id, its
/// `event` its kind, its `data` the event as JSON; reconnecting with `Last-Event-ID` resumes after
/// that event and misses none. A stream ends after five minutes (reconnect), or once the
/// pipeline is deleted.
#[utoipa::path(get, path = "/v1/pipelines/{id}/events", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id"), EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "With `follow=true`: resume after this event (wins over `after`)")),
    responses(
        (status = 200, content(
            (EventListOut = "application/json"),
            (super::event_stream::SseEventItem = "text/event-stream", example = json!({"id": "42", "event": "stage.state_changed", "data": "{\"id\":42,\"pipeline_id\":\"01a2…\",\"stage_ordinal\":0,\"kind\":\"stage.state_changed\",\"from_state\":\"pending\",\"to_state\":\"deploying\",\"actor\":\"system\",\"message\":null,\"details\":{\"version\":1},\"created_at\":\"2026-12-03T08:00:00Z\"}"})),
        )),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_events(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if query.follow == Some(true) {
        let resume = match headers.get("last-event-id") {
            Some(value) => Some(value.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).ok_or_else(|| {
                ApiError::bad_parameter("Last-Event-ID", "`Last-Event-ID` must be the id of an event")
            })?),
            None => None,
        };
        let after = resume.or(query.after).unwrap_or(0);
        // Unknown pipelines are a 404 now, not an empty stream.
        state.pipelines.events(&id, Some(after), 1).await?;
        let stream = super::event_stream::follow(state.pipelines.clone(), id, after, state.shutdown.clone());
        return Ok(stream.into_response());
    }
    let limit = query.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "`limit` must be between 1 and 1000"));
    }
    let items = state.pipelines.events(&id, query.after, limit).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|e| e.id)).flatten();
    Ok(Json(EventListOut { items, next_after }).into_response())
}

/// Approve or reject the stage waiting for approval (`{stage}` is its environment name or
/// ordinal). Needs the approver role; the approver is recorded.
#[utoipa::path(post, path = "/v1/pipelines/{id}/stages/{stage}/approval", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id"), ("stage" = String, Path, description = "Environment name or 0-based ordinal")),
    request_body = ApprovalIn,
    responses(
        (status = 200, body = PipelineOut),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not a decision (`decision`, `version`, `comment`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stage is not waiting for approval, or `version` is not the pipeline's current version", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn decide_approval(
    State(state): State<AppState>,
    Caller(principal, ..): Caller<ToApprove>,
    ApiPath((id, stage)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<PipelineOut>, ApiError> {
    let input: ApprovalIn = serde_json::from_value(body).map_err(|e| {
        let field = ["version", "comment"].into_iter().find(|f| e.to_string().contains(&format!("`{f}`")));
        ApiError::bad_request(
            &format!("/{}", field.unwrap_or("decision")),
            format!(
                "expected {{\"decision\": \"approve\" | \"reject\", \"version\": <pipeline version>, \"comment\": \"…\"}}: {e}"
            ),
        )
    })?;
    let approve = matches!(input.decision, Decision::Approve);
    let view = state.pipelines.decide(&principal, &id, &stage, approve, input.comment, Some(input.version)).await?;
    Ok(Json(view_out(view)))
}
