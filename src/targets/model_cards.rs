//! Where model cards live (issue 16): the local target keeps them in the database and exports
//! them to PDF and HTML in the object store; the aws target calls SageMaker's model-card APIs.
//! Both take content the domain has already checked against the model-card schema.

use super::UpstreamError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;

pub type DynModelCards = Arc<dyn ModelCards>;

/// One version of a card, as `DescribeModelCard` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct CardVersion {
    pub arn: String,
    pub name: String,
    pub version: i64,
    pub status: String,
    /// The content JSON, as a string (SageMaker's `Content`).
    pub content: String,
    pub created_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    pub modified_at: Option<DateTime<Utc>>,
    pub modified_by: Option<String>,
}

/// A card in a list (`ListModelCards`, `ListModelCardVersions`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CardSummary {
    pub arn: String,
    pub name: String,
    pub version: Option<i64>,
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
}

/// A card to write: its status and whole content.
#[derive(Debug, Clone)]
pub struct CardWrite<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub content: &'a str,
    pub actor: &'a str,
}

/// Where an export went.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CardExport {
    pub job_name: String,
    pub version: i64,
    /// The PDF's location (`s3://<assets bucket>/model_card_exports/…pdf`).
    pub pdf: String,
    /// The HTML copy's location, where the target writes one.
    pub html: Option<String>,
    /// The job's status when the target stopped waiting (`Completed`, or still `InProgress`).
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A request field whose value the target cannot use (e.g. a model that does not exist).
    #[error("{message}")]
    Invalid { pointer: String, message: String },
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("{what} is not reachable")]
    Unavailable { what: &'static str, cause: String },
    #[error("{0}")]
    Internal(String),
}

impl CardError {
    pub fn invalid(pointer: &str, message: impl Into<String>) -> Self {
        CardError::Invalid { pointer: pointer.to_string(), message: message.into() }
    }
}

#[async_trait]
pub trait ModelCards: Send + Sync + 'static {
    /// The overview fields a model's own records give (`model_id`, `model_name`,
    /// `model_artifact`, `inference_environment`), as the solution fills them from the model.
    async fn model_overview(&self, model_name: &str) -> Result<Map<String, Value>, CardError>;
    /// `training_job_details` from a training job's own record.
    async fn training_job_details(&self, job_name: &str) -> Result<Map<String, Value>, CardError>;
    /// A metric file (`metric_file_s3_url`), parsed as JSON.
    async fn metric_file(&self, bucket: &str, key: &str) -> Result<Value, CardError>;
    /// A version (the latest when `None`); `None` when there is no such card or version.
    async fn card(&self, name: &str, version: Option<i64>) -> Result<Option<CardVersion>, CardError>;
    /// `Conflict` when the name is taken.
    async fn create(&self, card: &CardWrite<'_>) -> Result<(), CardError>;
    /// A new version; `NotFound` without the card.
    async fn update(&self, card: &CardWrite<'_>) -> Result<(), CardError>;
    /// `false` when there was no such card.
    async fn delete(&self, name: &str) -> Result<bool, CardError>;
    async fn list(&self) -> Result<Vec<CardSummary>, CardError>;
    async fn versions(&self, name: &str) -> Result<Vec<CardSummary>, CardError>;
    /// Exports a version to PDF (under the assets bucket's `model_card_exports/`).
    async fn export(&self, name: &str, version: i64, job_name: &str, actor: &str) -> Result<CardExport, CardError>;
}
