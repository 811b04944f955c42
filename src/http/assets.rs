//! The assets bucket over HTTP: model artifacts, baselines, training data. Keys may contain `/`
//! (`models/churn/model.tar.gz`); bodies are streamed both ways, uploads are size-limited and
//! never left half-written, and keys that try to leave the bucket are refused.

use super::extract::{ApiPath, Caller, ToOperate, ToRead};
use crate::artifacts::StorageError;
use crate::domain::AssetKey;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http_body_util::BodyExt;
use serde::Serialize;
use tower_http::timeout::{TimeoutBody, TimeoutError};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct AssetOut {
    pub key: String,
    pub bucket: String,
    pub size: u64,
    pub sha256: String,
}

/// Prefixes the orchestrator writes itself: `template.zip` files (an upload there would make a
/// CodePipeline deploy whatever it holds) and deployed model snapshots.
const RESERVED_PREFIXES: [&str; 2] = ["mlops_provisioned_pipelines/", "_mlops/"];

fn parse_key(key: &str) -> Result<AssetKey, ApiError> {
    if key.ends_with('/') {
        return Err(ApiError::bad_parameter("key", format!("asset key {key:?} names a folder, not an object")));
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| key.starts_with(*p)) {
        return Err(ApiError::bad_parameter(
            "key",
            format!("asset keys under {prefix:?} are reserved for the orchestrator's own objects"),
        ));
    }
    AssetKey::parse(key).map_err(|e| ApiError::bad_parameter("key", format!("asset key {key:?} is not valid: {e}")))
}

fn storage_error(key: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => ApiError::NotFound(format!("asset {key:?} not found")),
        StorageError::TooLarge { limit } => {
            ApiError::PayloadTooLarge(format!("asset {key:?} is larger than the upload limit of {limit} bytes"))
        }
        StorageError::InvalidKey { reason, .. } => {
            ApiError::bad_parameter("key", format!("asset key {key:?}: {reason}"))
        }
        StorageError::Body(e)
            if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) =>
        {
            ApiError::RequestTimeout(format!("{e}; nothing was stored"))
        }
        StorageError::Body(e) => ApiError::bad_request("", format!("the upload was interrupted: {e}")),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Upload (or replace) an asset; the body is the file, streamed.
#[utoipa::path(put, path = "/v1/assets/{key}", tag = "assets",
    params(("key" = String, Path, description = "Object key in the assets bucket; may contain '/'")),
    request_body(content = Vec<u8>, description = "The file", content_type = "application/octet-stream"),
    responses(
        (status = 201, body = AssetOut),
        (status = 400, description = "Invalid key (e.g. '..' segments)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 408, description = "No bytes of the body arrived for `http.idle_timeout`; nothing was stored", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_asset(
    State(state): State<AppState>,
    _caller: Caller<ToOperate>,
    ApiPath(key): ApiPath<String>,
    body: Body,
) -> Result<(StatusCode, Json<AssetOut>), ApiError> {
    let key = parse_key(&key)?;
    // Uploads have no request timeout (their length depends on their size): a body that stops
    // arriving is bounded as an idle connection is.
    let stall = state.settings.http.idle_timeout;
    let stream = Box::pin(TimeoutBody::new(stall, body)).into_data_stream().map_err(move |e| {
        if e.is::<TimeoutError>() {
            let waited = humantime::format_duration(stall);
            std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no bytes of the upload arrived for {waited}"))
        } else {
            std::io::Error::other(e)
        }
    });
    let stored = state
        .artifacts
        .put_asset(key.as_str(), stream, state.settings.assets.max_upload_bytes)
        .await
        .map_err(|e| storage_error(key.as_str(), e))?;
    tracing::info!(asset = %key, size = stored.size, "asset stored");
    Ok((
        StatusCode::CREATED,
        Json(AssetOut {
            key: key.as_str().to_string(),
            bucket: state.artifacts.assets_bucket().to_string(),
            size: stored.size,
            sha256: stored.sha256,
        }),
    ))
}

/// Download an asset, streamed.
#[utoipa::path(get, path = "/v1/assets/{key}", tag = "assets",
    params(("key" = String, Path, description = "Object key in the assets bucket; may contain '/'")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_asset(
    State(state): State<AppState>,
    _caller: Caller<ToRead>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let (meta, stream) = state.artifacts.get_asset(key.as_str()).await.map_err(|e| storage_error(key.as_str(), e))?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    Ok(response)
}
