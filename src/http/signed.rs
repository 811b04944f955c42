//! Requests signed with AWS SigV4 (`Authorization: AWS4-HMAC-SHA256 …`): the signature covers
//! the body, so this layer reads it (within the API's body limit), checks the signature against
//! the configured access keys and leaves the signer for [`super::extract::Caller`]. A request that
//! does not verify ends here with 403 and the reason.

use crate::auth::Principal;
use crate::auth::sigv4::{ALGORITHM, SignedRequest};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Who signed the request, once the signature verified.
#[derive(Debug, Clone)]
pub struct SignedBy(pub Principal);

pub async fn verify_signatures(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let signed =
        request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(ALGORITHM));
    if !signed || state.tokens.is_open() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // The client signed the URI it sent, stage prefix included.
    let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |u| u.0.clone());
    let limit = state.settings.http.body_limit_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::PayloadTooLarge(format!(
            "a signed request's body is read whole to check its signature: at most {limit} bytes"
        ))
        .into_response();
    };
    let view = SignedRequest {
        method: parts.method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers: &parts.headers,
        body: &bytes,
    };
    match state.tokens.verify_signed(&view, chrono::Utc::now()) {
        Ok(principal) => {
            parts.extensions.insert(SignedBy(principal));
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) => {
            tracing::info!(reason = %e, "refused a SigV4-signed request");
            ApiError::Auth(e.into()).into_response()
        }
    }
}
