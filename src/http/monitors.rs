//! `/v1/monitors`: the model monitors the local target runs, their executions (scheduled windows
//! and run-now), run-now itself, and `/v1/ground-truth/{endpoint}` for model quality.

use super::extract::{ApiPath, ApiQuery, Caller, JsonBody, ToInvoke, ToOperate, ToRead};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{MonitorExecutionRecord, MonitorRecord};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_monitors))
        .routes(routes!(get_monitor))
        .routes(routes!(list_executions, run_now))
        .routes(routes!(get_execution))
        .routes(routes!(post_ground_truth))
}

/// Ground truth for an endpoint's predictions: SageMaker's ground-truth records as JSON lines
/// (`{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "…"},
/// "eventVersion": "0"}`), joined to captured inferences by `inferenceId`, else `eventId`.
/// Idempotent on `eventId`. `{endpoint}` is `name`, or `environment.name`.
#[utoipa::path(post, path = "/v1/ground-truth/{endpoint}", tag = "monitors",
    params(("endpoint" = String, Path, description = "Endpoint name, or `environment.name`")),
    request_body(content = String, content_type = "text/plain", description = "Ground-truth records as JSON lines (any content type is read as text)"),
    responses(
        (status = 202, body = crate::services::monitors::GroundTruthAccepted),
        (status = 400, description = "A line that is not a ground-truth record, named by `/lines/<n>`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No model-quality monitor watches the endpoint", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn post_ground_truth(
    State(state): State<AppState>,
    _caller: Caller<ToInvoke>,
    ApiPath(endpoint): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<crate::services::monitors::GroundTruthAccepted>), ApiError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("", "the body is not UTF-8 text".to_string()))?;
    let accepted = state.monitor_service.ingest_ground_truth(&endpoint, text).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[derive(Serialize, ToSchema)]
pub struct MonitorOut {
    pub id: String,
    pub pipeline_id: String,
    pub environment: String,
    /// The monitoring schedule's name.
    pub name: String,
    /// `data_quality`.
    pub monitor_type: String,
    pub endpoint_name: String,
    pub schedule_expression: String,
    /// `scheduled`.
    pub state: String,
    /// When the schedule next fires (its window ends then; it runs shortly after).
    pub next_run_at: DateTime<Utc>,
    /// The baseline job's files.
    pub baseline_statistics: String,
    pub baseline_constraints: String,
    pub data_capture_location: String,
    pub monitoring_output_location: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct MonitorListOut {
    pub items: Vec<MonitorOut>,
}

fn monitor_out(m: MonitorRecord) -> MonitorOut {
    let config = &m.config.0;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    MonitorOut {
        baseline_statistics: text(&config["baseline_statistics"]),
        baseline_constraints: text(&config["baseline_constraints"]),
        data_capture_location: text(&config["stage"]["data_capture_location"]),
        monitoring_output_location: text(&config["stage"]["monitoring_output_location"]),
        id: m.id,
        pipeline_id: m.pipeline_id,
        environment: m.environment,
        name: m.name,
        monitor_type: m.monitor_type,
        endpoint_name: m.endpoint_name,
        schedule_expression: m.schedule_expression,
        state: m.state,
        next_run_at: m.next_run_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// A violation, as `constraint_violations.json` holds it (a model-quality one names its metric
/// in `feature_name` too).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ViolationOut {
    pub feature_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

/// One feature's drift against the baseline.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DriftOut {
    pub feature: String,
    /// `linf_robust`, `linf_simple`, `chi_square_p_value` or `chi_square_statistic`.
    pub method: String,
    pub distance: f64,
    pub threshold: f64,
    pub flagged: bool,
    /// Why it was (not) flagged.
    pub why: String,
}

#[derive(Serialize, ToSchema)]
pub struct ExecutionOut {
    pub id: String,
    pub monitor_id: String,
    /// `schedule` or `manual` (run-now).
    pub origin: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// `pending`, `running`, `completed`, `completed_with_violations` or `failed`.
    pub state: String,
    /// Rows profiled, from `records` capture records in the window; records that could not be
    /// read are skipped and counted.
    pub rows: Option<u64>,
    pub records: Option<u64>,
    pub unreadable_records: Option<u64>,
    /// Model quality: captured records joined with ground truth, their share of the captured
    /// ones, and the median time from inference to its label.
    pub labelled_records: Option<u64>,
    pub merge_rate: Option<f64>,
    pub label_delay_seconds: Option<i64>,
    /// Explainability: each explained label's nDCG of the window's feature ranking against the
    /// baseline's (below 0.9 is a violation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ndcg: Option<std::collections::BTreeMap<String, f64>>,
    pub violations: Vec<ViolationOut>,
    pub drift: Vec<DriftOut>,
    /// The files written (`statistics.json`, `constraint_violations.json`).
    pub files: Vec<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ExecutionListOut {
    pub items: Vec<ExecutionOut>,
}

fn execution_out(e: MonitorExecutionRecord) -> ExecutionOut {
    let result = e.result.map(|r| r.0).unwrap_or_default();
    let list = |key: &str| result[key].as_array().cloned().unwrap_or_default();
    ExecutionOut {
        rows: result["rows"].as_u64(),
        records: result["records"].as_u64(),
        unreadable_records: result["unreadable_records"].as_u64(),
        labelled_records: result["labelled_records"].as_u64(),
        merge_rate: result["merge_rate"].as_f64(),
        label_delay_seconds: result["label_delay_seconds"].as_i64(),
        ndcg: serde_json::from_value(result["ndcg"].clone()).ok(),
        violations: list("violations").into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        drift: list("drift").into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        files: list("files").into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        id: e.id,
        monitor_id: e.monitor_id,
        origin: e.origin,
        window_start: e.window_start,
        window_end: e.window_end,
        state: e.state,
        error: e.error,
        created_at: e.created_at,
        started_at: e.started_at,
        finished_at: e.finished_at,
    }
}

/// A window to run a monitor over now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunNowIn {
    /// ISO-8601, inclusive.
    pub start_time: DateTime<Utc>,
    /// ISO-8601, exclusive; not in the future, at most 31 days after `start_time`.
    pub end_time: DateTime<Utc>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExecutionQuery {
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<i64>,
}

/// Every monitor.
#[utoipa::path(get, path = "/v1/monitors", tag = "monitors", responses((status = 200, body = MonitorListOut)))]
async fn list_monitors(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
) -> Result<Json<MonitorListOut>, ApiError> {
    let items = state.monitor_service.list().await?.into_iter().map(monitor_out).collect();
    Ok(Json(MonitorListOut { items }))
}

/// One monitor.
#[utoipa::path(get, path = "/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id")),
    responses((status = 200, body = MonitorOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_monitor(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MonitorOut>, ApiError> {
    Ok(Json(monitor_out(state.monitor_service.get(&id).await?)))
}

/// A monitor's executions, newest first.
#[utoipa::path(get, path = "/v1/monitors/{id}/executions", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id"), ExecutionQuery),
    responses(
        (status = 200, body = ExecutionListOut),
        (status = 400, description = "`limit` is not a number in range", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_executions(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ExecutionQuery>,
) -> Result<Json<ExecutionListOut>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "`limit` must be between 1 and 1000"));
    }
    let items = state.monitor_service.executions(&id, limit).await?.into_iter().map(execution_out).collect();
    Ok(Json(ExecutionListOut { items }))
}

/// One execution: its window, state, figures, violations and per-feature drift.
#[utoipa::path(get, path = "/v1/monitors/{id}/executions/{execution_id}", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id"), ("execution_id" = String, Path, description = "Execution id")),
    responses((status = 200, body = ExecutionOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_execution(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath((id, execution_id)): ApiPath<(String, String)>,
) -> Result<Json<ExecutionOut>, ApiError> {
    Ok(Json(execution_out(state.monitor_service.execution(&id, &execution_id).await?)))
}

/// Runs the monitor now over `[start_time, end_time)`; the execution is queued (202) and its
/// result appears on it.
#[utoipa::path(post, path = "/v1/monitors/{id}/executions", tag = "monitors",
    params(("id" = String, Path, description = "Monitor id")),
    request_body = RunNowIn,
    responses(
        (status = 202, body = ExecutionOut),
        (status = 400, description = "Not a window (`start_time` and `end_time`, ISO-8601), or one that is backwards, longer than 31 days or in the future", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn run_now(
    State(state): State<AppState>,
    _caller: Caller<ToOperate>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ExecutionOut>), ApiError> {
    let input: RunNowIn = serde_json::from_value(body).map_err(|e| {
        let field = ["end_time", "start_time"].into_iter().find(|f| e.to_string().contains(f)).unwrap_or("start_time");
        ApiError::bad_request(
            &format!("/{field}"),
            format!(
                "expected {{\"start_time\": \"2026-12-03T07:00:00Z\", \"end_time\": \"2026-12-03T08:00:00Z\"}}: {e}"
            ),
        )
    })?;
    let execution = state.monitor_service.run_now(&id, input.start_time, input.end_time).await?;
    Ok((StatusCode::ACCEPTED, Json(execution_out(execution))))
}
