//! Use cases shared by the HTTP surfaces (and later the Git watcher): they combine the domain,
//! the store and the target. Each takes only the ports it uses and answers with a typed
//! [`ServiceError`]; `error.rs` is the one place those become HTTP responses.

pub mod algorithms;
pub mod config_revisions;
pub mod endpoints;
pub mod model_cards;
pub mod model_registry;
pub mod monitors;
pub mod notifications;
pub mod pipelines;

use crate::domain::RequestErrors;
use crate::store::{DynStore, StoreError};
use crate::targets::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request has bad fields; every one is listed.
    #[error("{}", .0.0.first().map(|e| e.message.as_str()).unwrap_or("the request is not valid"))]
    Invalid(RequestErrors),
    #[error("{0}")]
    NotFound(String),
    /// A signed delivery whose signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Conflict(String),
    /// A valid request this server's target cannot carry out.
    #[error("{0}")]
    Unsupported(String),
    /// The target's own API failed (aws: an AWS error).
    #[error(transparent)]
    Upstream(UpstreamError),
    /// A dependency is down; `cause` is for the log only.
    #[error("{what} is not reachable")]
    Unavailable { what: &'static str, cause: String },
    /// Details are logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// One bad field.
    pub fn invalid(pointer: &str, code: crate::domain::FieldErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Invalid(RequestErrors(vec![crate::domain::FieldError::new(pointer, code, message)]))
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => ServiceError::Conflict(why),
            // A transition the state machines refuse is logged where it happens.
            StoreError::Workflow(refused) => ServiceError::Conflict(refused.to_string()),
            StoreError::Plan(why) => ServiceError::Unsupported(why),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// Readiness: the database answers.
pub async fn ready(store: &DynStore) -> Result<(), ServiceError> {
    store.ping().await.map_err(|e| ServiceError::Unavailable { what: "the database", cause: e.to_string() })
}
