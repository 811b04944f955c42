//! The one place errors become HTTP responses: RFC 9457 `application/problem+json` with
//! `type, title, status, detail, code`, `errors: [{pointer, message, code}]` for bad input, and
//! the AWS solution's `message` / `detailedMessage` members so its existing clients keep working.

use crate::auth::AuthError;
use crate::domain::RequestErrors;
use crate::services::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// JSON Pointer (RFC 6901) into the request body; empty for the body itself.
    pub pointer: String,
    /// For a bad query or path parameter: its name (the pointer is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    pub message: String,
    pub code: String,
}

impl FieldProblem {
    pub fn new(pointer: &str, parameter: Option<&str>, code: &str, message: String) -> Self {
        Self { pointer: pointer.into(), parameter: parameter.map(String::from), message, code: code.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: every bad field is listed. `compat_detail` is the solution's wording.
    #[error("{detail}")]
    BadRequest { detail: String, errors: Vec<FieldProblem>, compat_detail: Option<String> },
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A signed delivery (a push webhook) whose signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A valid request this server cannot carry out (e.g. a pipeline type the target lacks).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Unavailable(String),
    /// Too many requests right now; `Retry-After` tells when to come back (seconds).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_seconds: u32 },
    /// A custom algorithm failed to answer (SageMaker's `ModelError`).
    #[error("{0}")]
    ModelError(String),
    /// The endpoint's model is loading on this replica; `Retry-After` tells when to come back.
    #[error("{message}")]
    ModelLoading { message: String, retry_after_seconds: u32 },
    #[error("{0}")]
    Timeout(String),
    /// The client stopped sending the request's body.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("this route does not take that method; the API is described at /openapi.json")]
    MethodNotAllowed,
    /// The target's own API failed (aws: an AWS error); its code is kept.
    #[error("{0}")]
    Upstream(crate::targets::UpstreamError),
    /// Details are logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The AWS solution's error message (kept for its clients).
    pub message: String,
    /// The AWS solution's detailed message (kept for its clients).
    #[serde(rename = "detailedMessage")]
    pub detailed_message: String,
}

impl ApiError {
    /// A bad part of the JSON body, named by its JSON Pointer (`""` for the whole body).
    pub fn bad_request(pointer: &str, message: impl Into<String>) -> Self {
        Self::invalid(FieldProblem::new(pointer, None, "invalid_value", message.into()))
    }

    /// A bad query or path parameter, named.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        Self::invalid(FieldProblem::new("", Some(name), "invalid_parameter", message.into()))
    }

    pub fn invalid(problem: FieldProblem) -> Self {
        ApiError::BadRequest { detail: problem.message.clone(), errors: vec![problem], compat_detail: None }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::Forbidden { .. } | AuthError::Signature(_)) => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ModelLoading { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ModelError(_) => StatusCode::FAILED_DEPENDENCY,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Upstream(e) => StatusCode::from_u16(e.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::BAD_GATEWAY),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::Auth(AuthError::Forbidden { .. }) => "forbidden",
            ApiError::Auth(AuthError::Signature(_)) => "invalid_signature",
            ApiError::Auth(_) => "unauthorized",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unsupported_by_target",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::ModelLoading { .. } => "model_loading",
            ApiError::ModelError(_) => "model_error",
            ApiError::Timeout(_) => "timeout",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Upstream(_) => "upstream",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(_) => {
                "an internal error occurred; the request id identifies it in the server log".into()
            }
            // The upstream's own text may name internals: it is logged, not sent.
            ApiError::Upstream(e) => format!(
                "the target's {} call failed with {}; the request id identifies the cause in the server log",
                e.operation, e.code
            ),
            other => other.to_string(),
        };
        let code = match self {
            ApiError::Upstream(e) => e.code.clone(),
            other => other.code().to_string(),
        };
        let (errors, detailed_message) = match self {
            ApiError::BadRequest { errors, compat_detail, .. } => {
                (errors.clone(), compat_detail.clone().unwrap_or_else(|| detail.clone()))
            }
            _ => (Vec::new(), detail.clone()),
        };
        let message = match (self, status) {
            // The solution's wording for an AWS error, whatever its status.
            (ApiError::Upstream(_), _) => "A boto3 ClientError occurred".to_string(),
            (_, StatusCode::BAD_REQUEST) => "A BadRequest exception occurred".to_string(),
            (_, StatusCode::INTERNAL_SERVER_ERROR) => "An Unexpected Server side exception occurred".to_string(),
            (_, other) => other.canonical_reason().unwrap_or("Error").to_string(),
        };
        Problem {
            type_: format!("urn:mlops:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code,
            errors,
            message,
            detailed_message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            ApiError::Upstream(e) => tracing::error!(error = %e, "the target's API failed"),
            _ => {}
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests { retry_after_seconds, .. }
        | ApiError::ModelLoading { retry_after_seconds, .. } = &self
        {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        if matches!(self, ApiError::Auth(AuthError::Missing | AuthError::Invalid)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(errors) => bad_request(errors),
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::BadSignature(why) => ApiError::BadSignature(why),
            ServiceError::Conflict(why) => ApiError::Conflict(why),
            ServiceError::Unsupported(why) => ApiError::Unprocessable(why),
            ServiceError::Upstream(e) => ApiError::Upstream(e),
            ServiceError::Unavailable { what, cause } => {
                // The cause stays in the log (with the request id): no internals in bodies.
                tracing::error!(error = %cause, "{what} is not reachable");
                ApiError::Unavailable(format!("{what} is not reachable"))
            }
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// Every bad field of a request, with the solution's wording for its clients.
fn bad_request(errors: RequestErrors) -> ApiError {
    let detail = match errors.0.len() {
        1 => errors.0[0].message.clone(),
        n => format!("the request has {n} invalid fields: {}", errors.0[0].message),
    };
    ApiError::BadRequest {
        detail,
        compat_detail: Some(errors.compat_detailed_message()),
        errors: errors
            .0
            .into_iter()
            .map(|e| {
                let code = serde_json::to_value(e.code).ok().and_then(|v| v.as_str().map(String::from));
                FieldProblem::new(&e.pointer, None, &code.unwrap_or_default(), e.message)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_requests_is_a_429_problem_with_retry_after() {
        let response =
            ApiError::TooManyRequests { message: "endpoint busy".into(), retry_after_seconds: 1 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn an_unavailable_dependency_names_no_internals() {
        let error = ServiceError::Unavailable { what: "the database", cause: "connection refused to 10.0.0.5".into() };
        let problem = ApiError::from(error).to_problem();
        assert_eq!(problem.status, 503);
        assert_eq!(problem.detail, "the database is not reachable");
    }
}
