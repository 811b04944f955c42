//! Extractors that turn requests into typed values or into problem+json errors: the caller
//! (authenticated, with the permission the route needs) and a JSON body that reports where it is
//! broken.

use crate::auth::{Permission, Principal, TokenRegistry};
use crate::error::{ApiError, FieldProblem};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::marker::PhantomData;

/// A permission as a type, so a handler's signature says what it needs.
pub trait Needs: Send + Sync + 'static {
    const PERMISSION: Permission;
}

pub struct ToRead;
pub struct ToOperate;
pub struct ToApprove;
pub struct ToInvoke;

impl Needs for ToRead {
    const PERMISSION: Permission = Permission::Read;
}
impl Needs for ToOperate {
    const PERMISSION: Permission = Permission::Operate;
}
impl Needs for ToApprove {
    const PERMISSION: Permission = Permission::Approve;
}
impl Needs for ToInvoke {
    const PERMISSION: Permission = Permission::Invoke;
}

/// The authenticated caller, allowed to do `N`.
pub struct Caller<N: Needs>(pub Principal, pub PhantomData<N>);

impl<N: Needs> FromRequestParts<AppState> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = match parts.extensions.get::<super::signed::SignedBy>() {
            // A SigV4 signature, verified by `signed::verify_signatures`.
            Some(signed) => TokenRegistry::permit(signed.0.clone(), N::PERMISSION)?,
            None => {
                let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
                state.tokens.authorize(header, N::PERMISSION)?
            }
        };
        Ok(Caller(principal, PhantomData))
    }
}

/// Any JSON value as the body, whatever the content type (API Gateway clients of the solution
/// send all sorts); a broken body is a 400 naming line and column.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid_json("the request body is empty; send a JSON object".into()));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            invalid_json(format!("the request body is not valid JSON (line {}, column {}): {e}", e.line(), e.column()))
        })
    }
}

fn invalid_json(message: String) -> ApiError {
    ApiError::BadRequest {
        detail: message.clone(),
        errors: vec![FieldProblem::new("", None, "invalid_json", message.clone())],
        compat_detail: Some(message),
    }
}

/// Path parameters; an undecodable one (e.g. invalid UTF-8) is a 400 problem, not axum's text.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid(FieldProblem::new(
                "",
                None,
                "invalid_parameter",
                format!("invalid path: {}", rejection.body_text()),
            ))),
        }
    }
}

/// Query parameters; a bad one is a 400 problem naming it (axum's own rejection is plain text).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|e| {
            let parameter = e.path().to_string();
            let named = (parameter != ".").then_some(parameter.as_str());
            ApiError::invalid(FieldProblem::new(
                "",
                named,
                "invalid_parameter",
                format!("invalid query string: {}", e.inner()),
            ))
        })
    }
}

pub fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body is larger than this server accepts".into())
    } else {
        ApiError::bad_request("", format!("could not read the request body: {rejection}"))
    }
}
