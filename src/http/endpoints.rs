//! Locally served real-time endpoints: list, describe, invoke. Invocation is also reachable as
//! SageMaker's `/endpoints/{name}/invocations`.
//!
//! Endpoint names are per environment. On a single-environment server `{name}` is the endpoint
//! name; with several environments it is `{environment}.{name}` (endpoint names cannot contain a
//! dot, so the split is unambiguous), e.g. `staging.churn`.

use super::extract::{ApiPath, ApiQuery, Caller, ToInvoke, ToRead};
use crate::error::{ApiError, FieldProblem};
use crate::serving::capture::{CaptureDestination, CaptureStats, stats_key};
use crate::serving::capture_figures::Figures;
use crate::serving::codec::MediaTypeError;
use crate::serving::endpoints::{EndpointConfig, EndpointError};
use crate::serving::invoke::{self, CUSTOM_ATTRIBUTES, INFERENCE_ID, Invocation, InvokeError};
use crate::serving::process::ProcessError;
use crate::state::AppState;
use crate::store::EndpointRecord;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

// Names built once: looking a header up by `&str` parses the name on every call.
static VARIANT: HeaderName = HeaderName::from_static("x-amzn-invoked-production-variant");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints))
        .routes(routes!(get_endpoint))
        .routes(routes!(endpoint_logs))
        .routes(routes!(invoke_endpoint))
        .routes(routes!(invoke_sagemaker_style))
        .routes(routes!(inference_api))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    /// What to put in the URL: `name`, or `environment.name` on a multi-environment server.
    pub id: String,
    pub name: String,
    pub environment: String,
    pub pipeline_id: String,
    /// `creating` until its stage deploys, then `in_service`.
    pub state: String,
    /// Bumped by every deployment.
    pub revision: i64,
    pub invocation_path: String,
    /// The solution's inference API for this endpoint (`{"payload", "content_type"}` bodies).
    pub inference_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<EndpointModelOut>,
    /// Data capture of the endpoint: records captured, written, dropped and sampled out, over
    /// every replica and restart (within one flush interval of now), and on this replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<EndpointCaptureOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointCaptureOut {
    /// Every replica's, restarts included: what each added to the database at its flushes, and
    /// this replica's count up to now.
    #[serde(flatten)]
    pub all: CaptureStats,
    /// This replica's since it started.
    pub this_replica: CaptureStats,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointModelOut {
    pub model_name: String,
    pub framework: String,
    pub artifact: String,
    pub artifact_sha256: String,
    pub objective: String,
    pub num_features: usize,
    pub num_outputs: usize,
    pub variant: String,
    /// `bucket/prefix` where invocations are captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_capture_location: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointListOut {
    pub items: Vec<EndpointOut>,
}

fn multi_environment(state: &AppState) -> bool {
    state.settings.environments.len() > 1
}

/// `{name}` or `{environment}.{name}` → (environment, name), borrowed: this runs on every
/// invocation.
fn resolve<'a>(state: &'a AppState, id: &'a str) -> Result<(&'a str, &'a str), ApiError> {
    let environments = &state.settings.environments;
    // No environments configured: the one environment is `default`, as `environment_names` says.
    let known =
        |env: &str| if environments.is_empty() { env == "default" } else { environments.iter().any(|e| e == env) };
    let first = environments.first().map_or("default", String::as_str);
    match id.split_once('.') {
        Some((env, name)) if known(env) => Ok((env, name)),
        Some((env, _)) => Err(ApiError::NotFound(format!(
            "no environment {env:?} on this server (environments: {})",
            state.settings.environment_names().join(", ")
        ))),
        None if multi_environment(state) => Err(ApiError::NotFound(format!(
            "endpoint names are per environment on this server: use <environment>.{id}, e.g. {first}.{id}"
        ))),
        None => Ok((first, id)),
    }
}

/// The endpoint's stored configuration, taken out of the record (read once per answer).
fn take_config(record: &mut EndpointRecord) -> Option<EndpointConfig> {
    serde_json::from_value(std::mem::take(&mut record.config.0)).ok()
}

/// The `stats_key` of the endpoint's capture destination; `None` when it captures nothing.
fn capture_key(config: &EndpointConfig, name: &str) -> Option<String> {
    let location = config.capture.as_ref()?;
    Some(stats_key(&CaptureDestination {
        bucket: location.bucket.clone(),
        prefix: location.prefix.clone(),
        endpoint: name.to_string(),
        variant: config.variant.clone(),
    }))
}

/// `config`: the record's ([`take_config`]); `figures`: capture figures by `stats_key`, the
/// endpoint's among them.
fn endpoint_out(
    state: &AppState,
    record: EndpointRecord,
    config: Option<EndpointConfig>,
    figures: &HashMap<String, Figures>,
) -> EndpointOut {
    let id =
        if multi_environment(state) { format!("{}.{}", record.environment, record.name) } else { record.name.clone() };
    let capture = config.as_ref().and_then(|c| {
        let key = capture_key(c, &record.name)?;
        let Figures { all, here } = figures.get(&key).cloned().unwrap_or_default();
        Some(EndpointCaptureOut { all, this_replica: here })
    });
    let model = config.map(|c| EndpointModelOut {
        model_name: c.model_name,
        framework: c.framework,
        artifact: c.artifact,
        artifact_sha256: c.artifact_sha256,
        objective: c.objective,
        num_features: c.num_features,
        num_outputs: c.num_outputs,
        variant: c.variant,
        data_capture_location: c.capture.map(|l| format!("{}/{}", l.bucket, l.prefix)),
    });
    EndpointOut {
        invocation_path: format!("/v1/endpoints/{id}/invocations"),
        inference_path: format!("/v1/endpoints/{id}/inference"),
        id,
        name: record.name,
        environment: record.environment,
        pipeline_id: record.pipeline_id,
        state: record.state,
        revision: record.revision,
        model,
        capture,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Every endpoint, in every environment.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", responses((status = 200, body = EndpointListOut)))]
async fn list_endpoints(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
) -> Result<Json<EndpointListOut>, ApiError> {
    let records = state.endpoint_service.list().await?;
    let figures = state.endpoint_service.capture_figures(None).await?;
    let items = records
        .into_iter()
        .map(|mut record| {
            let config = take_config(&mut record);
            endpoint_out(&state, record, config, &figures)
        })
        .collect();
    Ok(Json(EndpointListOut { items }))
}

/// One endpoint: its state and the model it serves.
#[utoipa::path(get, path = "/v1/endpoints/{name}", tag = "endpoints",
    params(("name" = String, Path, description = "`name`, or `environment.name` with several environments")),
    responses((status = 200, body = EndpointOut), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_endpoint(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    let (environment, name) = resolve(&state, &id)?;
    let mut record = state.endpoint_service.get(environment, name, &id).await?;
    let config = take_config(&mut record);
    // This endpoint's figures only: one row of the store, however many endpoints there are.
    let figures = match config.as_ref().and_then(|c| capture_key(c, &record.name)) {
        Some(key) => state.endpoint_service.capture_figures(Some(&key)).await?,
        None => HashMap::new(),
    };
    Ok(Json(endpoint_out(&state, record, config, &figures)))
}

/// The invocation body, up to the SageMaker payload limit.
struct Payload(Bytes);

impl FromRequest<AppState> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::body::HttpBody;
        use http_body_util::BodyExt;
        let limit = state.settings.serving.max_request_bytes;
        let too_large = || ApiError::PayloadTooLarge(format!("the invocation payload is larger than {limit} bytes"));
        let mut body = req.into_body();
        // A declared length over the limit is refused before anything is read.
        if body.size_hint().lower() > limit as u64 {
            return Err(too_large());
        }
        // Frame by frame rather than through http-body-util's `Limited` and `collect`, whose
        // buffer list and boxing cost an invocation more than reading it (callgrind): a body
        // that arrives in one frame (nearly all) is that frame's bytes, not copied.
        let mut first = Bytes::new();
        let mut joined: Option<bytes::BytesMut> = None;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::bad_request("", format!("could not read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else { continue }; // trailers: nothing to score
            let read = joined.as_ref().map_or(first.len(), bytes::BytesMut::len);
            if read + data.len() > limit {
                return Err(too_large());
            }
            match &mut joined {
                Some(joined) => joined.extend_from_slice(&data),
                None if first.is_empty() => first = data,
                None => {
                    let mut both = bytes::BytesMut::with_capacity(first.len() + data.len());
                    both.extend_from_slice(&first);
                    both.extend_from_slice(&data);
                    joined = Some(both);
                }
            }
        }
        Ok(Payload(joined.map_or(first, bytes::BytesMut::freeze)))
    }
}

/// The request headers an invocation uses, read without copying the whole header map.
#[derive(Default)]
struct InvocationHeaders {
    content_type: Option<String>,
    accept: Option<String>,
    inference_id: Option<String>,
    custom_attributes: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for InvocationHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(InvocationHeaders {
            content_type: header(&header::CONTENT_TYPE),
            accept: header(&header::ACCEPT),
            inference_id: header(&INFERENCE_ID),
            custom_attributes: header(&CUSTOM_ATTRIBUTES),
        })
    }
}

fn endpoint_error(id: &str, e: &EndpointError) -> ApiError {
    match e {
        EndpointError::NotFound(_) => ApiError::NotFound(format!("endpoint {id:?} not found")),
        EndpointError::NotInService { .. } => ApiError::Conflict(e.to_string()),
        EndpointError::Loading { retry_after, .. } => ApiError::ModelLoading {
            message: format!("the model of endpoint {id:?} is loading on this replica; retry shortly"),
            retry_after_seconds: retry_after.as_secs().max(1) as u32,
        },
        EndpointError::LoadFailed(inner) => endpoint_error(id, inner),
        // The model cannot be loaded on this replica right now (storage down, damaged snapshot).
        EndpointError::Model(e) => ApiError::Unavailable(format!("endpoint {id:?} cannot serve: {e}")),
        EndpointError::Store(e) => {
            tracing::warn!(endpoint = %id, error = %e, "endpoint lookup failed");
            ApiError::Unavailable(format!("endpoint {id:?} cannot be looked up right now; try again"))
        }
        other => ApiError::Internal(other.to_string()),
    }
}

async fn run_invocation(
    state: AppState,
    id: String,
    headers: InvocationHeaders,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (environment, name) = resolve(&state, &id)?;
    let _slot = state.invocations.try_acquire(environment, name).ok_or_else(|| ApiError::TooManyRequests {
        message: format!(
            "endpoint {id:?} is handling {} invocations already (serving.max_concurrent_invocations); retry shortly",
            state.invocations.per_endpoint()
        ),
        retry_after_seconds: 1,
    })?;
    let endpoint = state.endpoints.get(environment, name).await.map_err(|e| {
        if matches!(e, EndpointError::NotFound(_)) {
            state.invocations.forget(environment, name);
        }
        endpoint_error(&id, &e)
    })?;
    let InvocationHeaders { content_type, accept, inference_id, custom_attributes } = headers;
    let invocation = Invocation { content_type, accept, body, inference_id, custom_attributes };
    let started = std::time::Instant::now();
    let output = invoke::invoke(endpoint.clone(), &state.capture, invocation).await;
    let metrics = &endpoint.metrics;
    metrics.observe(output.is_ok(), started.elapsed());
    let output = output.map_err(|e| match e {
        InvokeError::MediaType(e @ MediaTypeError::Unsupported(_)) => ApiError::UnsupportedMediaType(e.to_string()),
        InvokeError::MediaType(e @ MediaTypeError::NotAcceptable(_)) => ApiError::NotAcceptable(e.to_string()),
        InvokeError::Rows(e) => {
            let pointer = match (e.row, e.column) {
                (Some(r), Some(c)) => format!("/rows/{r}/columns/{c}"),
                (Some(r), None) => format!("/rows/{r}"),
                _ => String::new(),
            };
            let message = e.to_string();
            ApiError::invalid(FieldProblem::new(&pointer, None, "invalid_row", message))
        }
        InvokeError::Process(ProcessError::Restarting) => ApiError::ModelLoading {
            message: format!("the algorithm of endpoint {id:?} is restarting on this replica; retry shortly"),
            retry_after_seconds: 1,
        },
        // SageMaker answers a container's failure as a `ModelError` (424).
        InvokeError::Process(e) => ApiError::ModelError(e.to_string()),
        InvokeError::Predict(e) => ApiError::ModelError(e.to_string()),
        InvokeError::Model { status, body } => {
            let kind = if status < 500 { "client" } else { "server" };
            let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
            ApiError::ModelError(format!("Received {kind} error ({status}) from the algorithm with message \"{text}\""))
        }
    })?;
    let mut response = output.body.into_response();
    let content_type = match output.content_type {
        std::borrow::Cow::Borrowed(built_in) => Ok(HeaderValue::from_static(built_in)),
        std::borrow::Cow::Owned(algorithms) => HeaderValue::from_str(&algorithms),
    };
    let content_type = content_type.unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(&endpoint.config.variant) {
        response.headers_mut().insert(&VARIANT, v);
    }
    Ok(response)
}

/// Invoke an endpoint with `text/csv` rows (no header) or JSON (`{"instances": [[…]]}` or a
/// list of rows); the answer follows `Accept` (default: the request's type). Every successful
/// call is captured in SageMaker's data-capture format.
#[utoipa::path(post, path = "/v1/endpoints/{name}/invocations", tag = "endpoints",
    params(("name" = String, Path, description = "`name`, or `environment.name` with several environments"),
           ("X-Amzn-SageMaker-Inference-Id" = Option<String>, Header, description = "Recorded as the capture's inferenceId")),
    request_body(description = "Rows to score", content((String = "text/csv"), (String = "application/json"), (String = "application/jsonlines"))),
    responses(
        (status = 200, description = "Predictions", content((String = "text/csv"), (String = "application/json"), (String = "application/jsonlines"))),
        (status = 400, description = "A malformed row, named by row and column", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 406, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in service yet", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The endpoint is saturated; retry after `Retry-After` seconds", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn invoke_endpoint(
    State(state): State<AppState>,
    _caller: Caller<ToInvoke>,
    ApiPath(id): ApiPath<String>,
    headers: InvocationHeaders,
    Payload(body): Payload,
) -> Result<Response, ApiError> {
    run_invocation(state, id, headers, body).await
}

#[derive(Serialize, ToSchema)]
pub struct EndpointLogsOut {
    /// The replica that answered (its host name and a random part, new at every start).
    pub replica: String,
    /// Whether the endpoint's algorithm runs on the replica that answered (which keeps the last
    /// 2,000 lines in memory).
    pub running_here: bool,
    /// Restarts after the algorithm stopped, on this replica.
    pub restarts: u32,
    /// The last lines it wrote to stdout and stderr on this replica, oldest first.
    pub lines: Vec<String>,
    /// The same from the other replicas (and a few earlier processes), as each last wrote them
    /// to the database (every 10 s while it writes more, at most 200 lines), most recent first.
    pub other_replicas: Vec<ReplicaLogsOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplicaLogsOut {
    pub replica: String,
    pub restarts: i64,
    /// When that replica last wrote its lines.
    pub updated_at: DateTime<Utc>,
    /// Oldest first.
    pub lines: Vec<String>,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines to return, newest last (1-2000, default 200).
    pub lines: Option<usize>,
}

/// A custom endpoint's algorithm output (stdout and stderr) on the replica that answers.
#[utoipa::path(get, path = "/v1/endpoints/{name}/logs", tag = "endpoints",
    params(("name" = String, Path, description = "`name`, or `environment.name` with several environments"), LogsQuery),
    responses(
        (status = 200, body = EndpointLogsOut),
        (status = 400, description = "`lines` is not a number in range", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn endpoint_logs(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<EndpointLogsOut>, ApiError> {
    let (environment, name) = resolve(&state, &id)?;
    state.endpoint_service.get(environment, name, &id).await?;
    let lines = query.lines.unwrap_or(200).clamp(1, 2000);
    let other_replicas = state
        .endpoint_service
        .other_replicas_logs(environment, name)
        .await?
        .into_iter()
        .map(|row| {
            let skip = row.lines.len().saturating_sub(lines);
            ReplicaLogsOut {
                replica: row.replica,
                restarts: row.restarts,
                updated_at: row.updated_at,
                lines: row.lines.into_iter().skip(skip).collect(),
            }
        })
        .collect();
    let replica = state.endpoint_service.replica().to_string();
    Ok(Json(match state.endpoints.loaded(environment, name).as_deref().map(|e| &e.model) {
        Some(crate::serving::endpoints::Model::Process(process)) => EndpointLogsOut {
            replica,
            running_here: true,
            restarts: process.restarts(),
            lines: process.logs(lines),
            other_replicas,
        },
        _ => EndpointLogsOut { replica, running_here: false, restarts: 0, lines: Vec::new(), other_replicas },
    }))
}

/// SageMaker runtime's path for the same invocation.
#[utoipa::path(post, path = "/endpoints/{name}/invocations", tag = "endpoints",
    params(("name" = String, Path, description = "`name`, or `environment.name` with several environments")),
    request_body(description = "Rows to score", content((String = "text/csv"), (String = "application/json"), (String = "application/jsonlines"))),
    responses(
        (status = 200, description = "Predictions", content((String = "text/csv"), (String = "application/json"), (String = "application/jsonlines"))),
        (status = 400, description = "A malformed row, named by row and column", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 406, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in service yet", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The endpoint is saturated; retry after `Retry-After` seconds", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn invoke_sagemaker_style(
    State(state): State<AppState>,
    _caller: Caller<ToInvoke>,
    ApiPath(id): ApiPath<String>,
    headers: InvocationHeaders,
    Payload(body): Payload,
) -> Result<Response, ApiError> {
    run_invocation(state, id, headers, body).await
}

/// The body of the solution's inference API (its `POST /inference` in front of each real-time
/// endpoint).
// Documents the body: the handler reads it field by field, to name a bad one.
#[derive(ToSchema)]
pub struct InferenceIn {
    /// What the model gets: text as it is (e.g. CSV rows), any other JSON value JSON-encoded.
    pub payload: Value,
    /// The payload's media type, e.g. `text/csv`.
    pub content_type: String,
}

/// The solution's inference API, for clients of its `POST /inference`: the same body and answer
/// (the model's raw prediction text), served for every real-time endpoint; captured as any
/// invocation.
#[utoipa::path(post, path = "/v1/endpoints/{name}/inference", tag = "endpoints",
    params(("name" = String, Path, description = "`name`, or `environment.name` with several environments")),
    request_body(content = InferenceIn, content_type = "application/json"),
    responses(
        (status = 200, description = "The model's prediction text", content((String = "text/csv"), (String = "application/json"), (String = "application/jsonlines"))),
        (status = 400, description = "A missing field, or a malformed row", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in service yet", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The endpoint is saturated; retry after `Retry-After` seconds", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn inference_api(
    State(state): State<AppState>,
    _caller: Caller<ToInvoke>,
    ApiPath(id): ApiPath<String>,
    Payload(body): Payload,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        let message = format!("the request body is not valid JSON (line {}, column {}): {e}", e.line(), e.column());
        ApiError::invalid(FieldProblem::new("", None, "invalid_json", message))
    })?;
    let field = |name: &str, message: &str| {
        ApiError::invalid(FieldProblem::new(&format!("/{name}"), None, "required", format!("{name}: {message}")))
    };
    let content_type = match body.get("content_type") {
        Some(Value::String(s)) if HeaderValue::from_str(s).is_ok() && !s.trim().is_empty() => s.clone(),
        _ => return Err(field("content_type", "the payload's media type, e.g. \"text/csv\", is required")),
    };
    let payload = match body.get("payload") {
        Some(Value::String(text)) => Bytes::from(text.clone()),
        None | Some(Value::Null) => {
            return Err(field("payload", "the text (or JSON) to send to the model is required"));
        }
        Some(other) => Bytes::from(serde_json::to_vec(other).expect("a JSON value serialises")),
    };
    let headers = InvocationHeaders { content_type: Some(content_type), ..InvocationHeaders::default() };
    run_invocation(state, id, headers, payload).await
}
