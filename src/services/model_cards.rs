//! Model cards (issue 16): the solution's six operations through `/provisionpipeline` and the
//! `/v1/model-cards` resources, on whichever target this server runs. The request is read and
//! its content built by the domain; the overview, training details and metric files the
//! solution discovers are filled from the target; the whole content is checked against the
//! model-card schema before the target stores it.

use super::ServiceError;
use crate::auth::Principal;
use crate::domain::FieldErrorCode;
use crate::domain::model_card::{
    CardStatus, ModelCardOp, ModelCardRequest, check_content, merged, metric_groups_from_file, parse_model_card_request,
};
use crate::targets::model_cards::{CardError, CardExport, CardSummary, CardVersion, CardWrite, DynModelCards};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// SageMaker's limit on a card's `Content`.
const MAX_CONTENT_CHARS: usize = 100_000;

/// A version as `/v1` shows it: the content as JSON, not as a string.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelCardView {
    pub arn: String,
    pub name: String,
    pub version: i64,
    /// `Draft`, `PendingReview`, `Approved` or `Archived`.
    pub status: String,
    /// SageMaker's model-card content (`docs/schemas/model-card.schema.json`).
    #[schema(value_type = Object)]
    pub content: Value,
    pub created_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    pub modified_at: Option<DateTime<Utc>>,
    pub modified_by: Option<String>,
}

impl From<CardError> for ServiceError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::NotFound(what) => ServiceError::NotFound(what),
            CardError::Conflict(why) => ServiceError::Conflict(why),
            CardError::Invalid { pointer, message } => {
                ServiceError::invalid(&pointer, FieldErrorCode::InvalidValue, message)
            }
            CardError::Upstream(e) => ServiceError::Upstream(e),
            CardError::Unavailable { what, cause } => ServiceError::Unavailable { what, cause },
            CardError::Internal(why) => ServiceError::Internal(why),
        }
    }
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("model card {name} not found"))
}

/// Python's `datetime.isoformat()` of an aware time, as the solution's encoder writes times.
fn iso(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| json!(t.to_rfc3339())).unwrap_or(Value::Null)
}

/// `DescribeModelCard`'s answer, as the solution returns it in `message`.
pub fn describe_json(card: &CardVersion) -> Value {
    let mut out = json!({
        "ModelCardArn": card.arn,
        "ModelCardName": card.name,
        "ModelCardVersion": card.version,
        "Content": card.content,
        "ModelCardStatus": card.status,
        "CreationTime": iso(card.created_at),
        "LastModifiedTime": iso(card.modified_at),
    });
    if let Some(by) = &card.created_by {
        out["CreatedBy"] = json!({ "UserProfileName": by });
    }
    if let Some(by) = &card.modified_by {
        out["LastModifiedBy"] = json!({ "UserProfileName": by });
    }
    out
}

/// `ListModelCards`' answer.
pub fn list_json(cards: &[CardSummary]) -> Value {
    let summaries: Vec<Value> = cards
        .iter()
        .map(|c| {
            json!({
                "ModelCardName": c.name,
                "ModelCardArn": c.arn,
                "ModelCardStatus": c.status,
                "CreationTime": iso(c.created_at),
                "LastModifiedTime": iso(c.modified_at),
            })
        })
        .collect();
    json!({ "ModelCardSummaries": summaries })
}

fn view(card: CardVersion) -> ModelCardView {
    ModelCardView {
        content: serde_json::from_str(&card.content).unwrap_or(Value::Null),
        arn: card.arn,
        name: card.name,
        version: card.version,
        status: card.status,
        created_at: card.created_at,
        created_by: card.created_by,
        modified_at: card.modified_at,
        modified_by: card.modified_by,
    }
}

/// The SDK's default export job name: the card's name made unique with the time.
fn default_job_name(card: &str) -> String {
    let suffix = format!("-{}-{:04x}", Utc::now().format("%Y%m%d%H%M%S"), rand::random::<u16>());
    let keep = 63 - suffix.len();
    let base: String = card.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

#[derive(Clone)]
pub struct ModelCardService {
    cards: DynModelCards,
    /// Where exports go: `s3://<assets bucket>/model_card_exports`.
    export_path: String,
}

impl ModelCardService {
    pub fn new(cards: DynModelCards, assets_bucket: &str) -> Self {
        Self { cards, export_path: format!("s3://{assets_bucket}/model_card_exports") }
    }

    /// A compat operation (`body.pipeline_type` names one): the solution's `message`.
    pub async fn compat(&self, caller: &Principal, op: ModelCardOp, body: &Value) -> Result<Value, ServiceError> {
        let request = parse_model_card_request(op, body).map_err(ServiceError::Invalid)?;
        let name = request.name.clone();
        Ok(match op {
            ModelCardOp::Create => describe_json(&self.create_from(caller, request).await?),
            ModelCardOp::Update => describe_json(&self.update_from(caller, request).await?),
            ModelCardOp::Describe => describe_json(&self.card(&name, None).await?),
            ModelCardOp::Delete => {
                self.delete(&name).await?;
                json!(format!("Model card with the name: {name} has been deleted"))
            }
            ModelCardOp::List => list_json(&self.cards.list().await?),
            ModelCardOp::Export => {
                self.export_from(caller, &request).await?;
                json!(format!("Model card with the name: {name} has been exported to {}", self.export_path))
            }
        })
    }

    async fn card(&self, name: &str, version: Option<i64>) -> Result<CardVersion, ServiceError> {
        self.cards.card(name, version).await?.ok_or_else(|| match version {
            Some(v) => ServiceError::NotFound(format!("model card {name} version {v} not found")),
            None => not_found(name),
        })
    }

    /// Fills what the solution discovers (the model's overview, a training job's details,
    /// metric files) into the request's content.
    async fn discovered(&self, request: &ModelCardRequest) -> Result<Map<String, Value>, ServiceError> {
        let mut content = request.content.clone();
        if let Some(model) = &request.overview_model {
            let found = self.cards.model_overview(model).await?;
            let overview = content.entry("model_overview").or_insert_with(|| json!({}));
            if let Some(overview) = overview.as_object_mut() {
                overview.extend(found);
            }
        }
        if let Some(job) = &request.training_job {
            let details = self.cards.training_job_details(job).await?;
            let training = content.entry("training_details").or_insert_with(|| json!({}));
            if let Some(training) = training.as_object_mut() {
                training.insert("training_job_details".into(), Value::Object(details));
            }
        }
        for file in &request.metric_files {
            let pointer = format!("/evaluation_details/{}/metric_file_s3_url", file.index);
            let invalid = |message: String| ServiceError::invalid(&pointer, FieldErrorCode::InvalidValue, message);
            let url = format!("s3://{}/{}", file.bucket, file.key);
            let json = match self.cards.metric_file(&file.bucket, &file.key).await {
                Ok(json) => json,
                Err(CardError::NotFound(why)) => return Err(invalid(format!("`metric_file_s3_url`: {why}"))),
                Err(CardError::Invalid { message, .. }) => {
                    return Err(invalid(format!("`metric_file_s3_url`: {message}")));
                }
                Err(other) => return Err(other.into()),
            };
            let groups = metric_groups_from_file(file.metric_type, &json)
                .map_err(|why| invalid(format!("`metric_file_s3_url` ({url}): {why}")))?;
            if let Some(entry) = content.get_mut("evaluation_details").and_then(|e| e.get_mut(file.index)) {
                entry["metric_groups"] = Value::Array(groups);
            }
        }
        Ok(content)
    }

    fn serialised(content: &Map<String, Value>) -> Result<String, ServiceError> {
        check_content(content).map_err(ServiceError::Invalid)?;
        let text = serde_json::to_string(content).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let chars = text.chars().count();
        if chars > MAX_CONTENT_CHARS {
            return Err(ServiceError::invalid(
                "",
                FieldErrorCode::InvalidValue,
                format!("the card's content is {chars} characters; SageMaker takes at most {MAX_CONTENT_CHARS}"),
            ));
        }
        Ok(text)
    }

    async fn create_from(&self, caller: &Principal, request: ModelCardRequest) -> Result<CardVersion, ServiceError> {
        let content = Self::serialised(&self.discovered(&request).await?)?;
        let status = request.status.unwrap_or(CardStatus::Draft).as_str();
        self.cards.create(&CardWrite { name: &request.name, status, content: &content, actor: &caller.name }).await?;
        self.card(&request.name, None).await
    }

    /// Each section given replaces the card's; the status stays unless one is given.
    async fn update_from(&self, caller: &Principal, request: ModelCardRequest) -> Result<CardVersion, ServiceError> {
        let current = self.card(&request.name, None).await?;
        let existing: Map<String, Value> = serde_json::from_str(&current.content).unwrap_or_default();
        let content = Self::serialised(&merged(&existing, &self.discovered(&request).await?))?;
        let status = request.status.map(CardStatus::as_str).unwrap_or(&current.status);
        self.cards.update(&CardWrite { name: &request.name, status, content: &content, actor: &caller.name }).await?;
        self.card(&request.name, None).await
    }

    async fn export_from(&self, caller: &Principal, request: &ModelCardRequest) -> Result<CardExport, ServiceError> {
        let version = self.card(&request.name, request.version).await?.version;
        let job = request.export_job_name.clone().unwrap_or_else(|| default_job_name(&request.name));
        Ok(self.cards.export(&request.name, version, &job, &caller.name).await?)
    }

    // --- /v1 ----------------------------------------------------------------------------

    pub async fn create(&self, caller: &Principal, body: &Value) -> Result<ModelCardView, ServiceError> {
        let request = parse_model_card_request(ModelCardOp::Create, body).map_err(ServiceError::Invalid)?;
        Ok(view(self.create_from(caller, request).await?))
    }

    pub async fn update(&self, caller: &Principal, name: &str, body: &Value) -> Result<ModelCardView, ServiceError> {
        let body = with_name(body, name)?;
        let request = parse_model_card_request(ModelCardOp::Update, &body).map_err(ServiceError::Invalid)?;
        Ok(view(self.update_from(caller, request).await?))
    }

    pub async fn get(&self, name: &str, version: Option<i64>) -> Result<ModelCardView, ServiceError> {
        Ok(view(self.card(name, version).await?))
    }

    pub async fn list(&self) -> Result<Vec<CardSummary>, ServiceError> {
        Ok(self.cards.list().await?)
    }

    pub async fn versions(&self, name: &str) -> Result<Vec<CardSummary>, ServiceError> {
        let versions = self.cards.versions(name).await?;
        if versions.is_empty() {
            return Err(not_found(name));
        }
        Ok(versions)
    }

    pub async fn delete(&self, name: &str) -> Result<(), ServiceError> {
        if self.cards.delete(name).await? { Ok(()) } else { Err(not_found(name)) }
    }

    pub async fn export(&self, caller: &Principal, name: &str, body: &Value) -> Result<CardExport, ServiceError> {
        let body = with_name(body, name)?;
        let request = parse_model_card_request(ModelCardOp::Export, &body).map_err(ServiceError::Invalid)?;
        self.export_from(caller, &request).await
    }
}

/// A `/v1` body with the card's name from the path.
fn with_name(body: &Value, name: &str) -> Result<Value, ServiceError> {
    let mut body = match body {
        Value::Object(_) => body.clone(),
        Value::Null => json!({}),
        _ => {
            return Err(ServiceError::invalid("", FieldErrorCode::InvalidType, "the body must be a JSON object"));
        }
    };
    body["name"] = json!(name);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_job_names_are_valid() {
        let name = default_job_name(&"c".repeat(63));
        assert!(crate::domain::model_card::valid_card_name(&name), "{name}");
        assert!(name.len() <= 63);
        assert!(default_job_name("card").starts_with("card-20"));
    }
}
