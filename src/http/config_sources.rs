//! Config sources: the push webhook (`POST /v1/git/webhook`), the configured sources, and every
//! revision they produced with what became of it (`/v1/config/revisions`).

use super::extract::{ApiPath, ApiQuery, Caller, ToRead};
use crate::error::ApiError;
use crate::sources::push::Delivery;
use crate::state::AppState;
use crate::store::{ConfigRevisionFilter, ConfigRevisionRecord};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push_webhook))
        .routes(routes!(list_sources))
        .routes(routes!(list_revisions))
        .routes(routes!(get_revision))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// Check the push against this source only (default: every Git source with a secret).
    pub source: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    /// The sources fetched now (none for a ping, a tag, or a push to another branch).
    pub triggered: Vec<String>,
}

/// A GitHub or GitLab push webhook. Not authenticated by token: the signature is the proof
/// (GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`, checked against each Git source's
/// `webhook_secret`). A verified push to a source's branch fetches that source at once; a
/// delivery that verifies for no source gets 401 and changes nothing.
#[utoipa::path(post, path = "/v1/git/webhook", tag = "config", params(WebhookQuery),
    request_body(content = Object, description = "The push event as GitHub or GitLab sends it"),
    responses(
        (status = 202, body = WebhookOut, description = "Verified; the sources listed are fetched now"),
        (status = 200, body = WebhookOut, description = "Verified, and nothing to fetch (a ping, or another branch)"),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn push_webhook(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WebhookQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookOut>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = Delivery {
        github_signature: header("x-hub-signature-256"),
        gitlab_token: header("x-gitlab-token"),
        event: header("x-github-event").or(header("x-gitlab-event")),
        body: &body,
    };
    let triggered =
        state.config_revisions.push(&delivery, query.source.as_deref(), state.settings.jobs.max_attempts).await?;
    let status = if triggered.is_empty() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(WebhookOut { triggered })))
}

#[derive(Serialize, ToSchema)]
pub struct SourceOut {
    pub name: String,
    /// `git` or `bucket`.
    pub kind: String,
    /// Git: `url`, `branch`, `path`; bucket: `bucket`, `key`, `s3`.
    #[schema(value_type = Object)]
    pub location: Value,
    /// e.g. `1m`.
    pub poll_interval: String,
    /// Whether `POST /v1/git/webhook` can trigger it.
    pub webhook: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SourceListOut {
    pub items: Vec<SourceOut>,
}

/// The config sources this server watches.
#[utoipa::path(get, path = "/v1/config/sources", tag = "config", responses((status = 200, body = SourceListOut)))]
async fn list_sources(State(state): State<AppState>, _caller: Caller<ToRead>) -> Json<SourceListOut> {
    let items = state
        .config_revisions
        .source_views()
        .into_iter()
        .map(|s| SourceOut {
            name: s.name,
            kind: s.kind.to_string(),
            location: s.location,
            poll_interval: humantime::format_duration(s.poll_interval).to_string(),
            webhook: s.webhook,
        })
        .collect();
    Json(SourceListOut { items })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    pub source: Option<String>,
    /// `accepted`, `rejected`, `unchanged`, `partially_applied` or `processing`.
    pub state: Option<String>,
    /// From `next_before` of the previous page.
    pub before: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RevisionListOut {
    pub items: Vec<ConfigRevisionRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// Every revision the config sources produced, newest first: accepted ones with the pipelines
/// they provisioned, refused ones with the same field-level errors the API gives.
#[utoipa::path(get, path = "/v1/config/revisions", tag = "config", params(RevisionQuery),
    responses((status = 200, body = RevisionListOut), (status = 400, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn list_revisions(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiQuery(query): ApiQuery<RevisionQuery>,
) -> Result<Json<RevisionListOut>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "`limit` must be between 1 and 200"));
    }
    const STATES: [&str; 5] = ["processing", "accepted", "rejected", "unchanged", "partially_applied"];
    if let Some(s) = &query.state
        && !STATES.contains(&s.as_str())
    {
        return Err(ApiError::bad_parameter("state", format!("`state` must be one of {}", STATES.join(", "))));
    }
    let filter =
        ConfigRevisionFilter { source: query.source, state: query.state, before: query.before, limit: limit + 1 };
    let mut items = state.config_revisions.list(&filter).await?;
    let next_before = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.clone()).unwrap_or_default()
    });
    Ok(Json(RevisionListOut { items, next_before }))
}

/// One config revision.
#[utoipa::path(get, path = "/v1/config/revisions/{id}", tag = "config",
    params(("id" = String, Path, description = "Config revision id")),
    responses((status = 200, body = ConfigRevisionRecord), (status = 404, body = crate::error::Problem, content_type = "application/problem+json")))]
async fn get_revision(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConfigRevisionRecord>, ApiError> {
    Ok(Json(state.config_revisions.get(&id).await?))
}
