//! Requests signed with AWS SigV4 (`Authorization: AWS4-HMAC-SHA256 …`): the signature covers
//! the body, so this layer reads it (within the API's body limit), checks the signature against
//! the configured access keys and leaves the signer for [`super::extract::Caller`]. A request that
//! does not verify ends here with 403 and the reason.

use super::layer::{Answer, Inner, Wrap};
use crate::auth::Principal;
use crate::auth::sigv4::{ALGORITHM, SignedRequest};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::http::header::AUTHORIZATION;
use axum::response::IntoResponse;

/// Who signed the request, once the signature verified.
#[derive(Debug, Clone)]
pub struct SignedBy(pub Principal);

/// Checks signed requests before the router sees them; only a signed request (rare, and read
/// whole anyway) takes a clone of the service inside.
#[derive(Clone)]
pub struct Signatures {
    pub state: AppState,
}

impl Wrap for Signatures {
    fn call<S: Inner>(&self, inner: &mut S, request: Request) -> Answer {
        let signed = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(ALGORITHM));
        if !signed || self.state.tokens.is_open() {
            return Box::pin(inner.call(request));
        }
        // The service that was made ready goes with the request; the layer keeps a clone.
        let ready = inner.clone();
        let mut inner = std::mem::replace(inner, ready);
        let state = self.state.clone();
        Box::pin(async move {
            match verified(&state, request).await {
                Ok(request) => inner.call(request).await,
                Err(refused) => Ok(refused.into_response()),
            }
        })
    }
}

/// The request with its signer attached, or why it is refused.
async fn verified(state: &AppState, request: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    // The client signed the URI it sent, stage prefix included (this layer is outside the router,
    // which strips the prefix; `OriginalUri` is there when something nested it further out).
    let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |u| u.0.clone());
    let limit = state.settings.http.body_limit_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(ApiError::PayloadTooLarge(format!(
            "a signed request's body is read whole to check its signature: at most {limit} bytes"
        )));
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
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        Err(e) => {
            tracing::info!(reason = %e, "refused a SigV4-signed request");
            Err(ApiError::Auth(e.into()))
        }
    }
}
