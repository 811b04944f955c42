//! What a config source's revision does (issue 14): validated as the API validates, then
//! provisioned as `POST /provisionpipeline` provisions (the same idempotent update), recorded
//! either way — a refused revision with the API's field-level errors and a notification, so a
//! mistake on the config-file path never disappears into a log.

use super::ServiceError;
use super::pipelines::{Origin, PipelineService};
use crate::auth::{Principal, Role};
use crate::domain::config_file;
use crate::domain::notifications::config_rejected;
use crate::domain::request::{FieldError, FieldErrorCode};
use crate::notify::Channels;
use crate::sources::{Revision, Source, Sources};
use crate::store::{Begun, ConfigRevisionFilter, ConfigRevisionRecord, DynStore, NewConfigRevision, revision_state};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct ConfigRevisionService {
    store: DynStore,
    pipelines: PipelineService,
    channels: Channels,
    sources: Sources,
}

/// A configured source as the API shows it.
pub struct SourceView {
    pub name: String,
    pub kind: &'static str,
    pub location: Value,
    pub poll_interval: std::time::Duration,
    pub webhook: bool,
}

impl ConfigRevisionService {
    pub fn new(store: DynStore, pipelines: PipelineService, channels: Channels, sources: Sources) -> Self {
        Self { store, pipelines, channels, sources }
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    pub fn source_views(&self) -> Vec<SourceView> {
        self.sources
            .iter()
            .map(|s| SourceView {
                name: s.name.clone(),
                kind: s.kind.as_str(),
                location: s.location.clone(),
                poll_interval: s.poll_interval,
                webhook: s.has_webhook(),
            })
            .collect()
    }

    /// A push webhook: verified against the Git sources' secrets (`only`: just that source), it
    /// queues an immediate fetch of each verified source whose branch it updated. Returns their
    /// names (none for a ping or a push to another branch).
    pub async fn push(
        &self,
        delivery: &crate::sources::push::Delivery<'_>,
        only: Option<&str>,
        max_attempts: i32,
    ) -> Result<Vec<String>, ServiceError> {
        if let Some(name) = only
            && self.sources.get(name).is_none()
        {
            return Err(ServiceError::NotFound(format!("no config source {name:?}")));
        }
        let sources = self.sources.pushed(delivery, only).map_err(|refused| match refused {
            crate::sources::push::Refused::Signature => ServiceError::BadSignature(refused.to_string()),
            crate::sources::push::Refused::Body(_) => {
                ServiceError::Invalid(crate::domain::RequestErrors(vec![FieldError::new(
                    "",
                    FieldErrorCode::InvalidValue,
                    refused.to_string(),
                )]))
            }
        })?;
        let mut triggered = Vec::new();
        for source in sources {
            self.store.enqueue_job(crate::sources::polls::immediate_job(&source.name, max_attempts)).await?;
            triggered.push(source.name.clone());
        }
        Ok(triggered)
    }

    pub async fn list(&self, filter: &ConfigRevisionFilter) -> Result<Vec<ConfigRevisionRecord>, ServiceError> {
        Ok(self.store.list_config_revisions(filter).await?)
    }

    pub async fn get(&self, id: &str) -> Result<ConfigRevisionRecord, ServiceError> {
        self.store
            .config_revision(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("config revision {id:?} not found")))
    }

    /// Processes `revision` of `source` once (whichever replica sees it first); `None` when it
    /// was recorded already.
    pub async fn ingest(
        &self,
        source: &Source,
        revision: Revision,
    ) -> Result<Option<ConfigRevisionRecord>, ServiceError> {
        let content_sha256 = revision.content.as_ref().map(|c| hex::encode(Sha256::digest(c)));
        let new = NewConfigRevision {
            source: source.name.clone(),
            source_kind: source.kind.as_str().to_string(),
            revision: revision.id.clone(),
            content_sha256: content_sha256.clone(),
            author: revision.author.clone(),
            message: revision.message.clone(),
        };
        let record = match self.store.begin_config_revision(&new).await? {
            Begun::Started(record) => record,
            Begun::Seen(_) => return Ok(None),
        };
        // A commit that leaves the file as it was changes nothing.
        let previous = self.store.previous_config_revision(&source.name, &record.id).await?;
        if let (Some(previous), Some(sha)) = (&previous, &content_sha256)
            && previous.content_sha256.as_ref() == Some(sha)
        {
            let done =
                self.store.finish_config_revision(&record.id, revision_state::UNCHANGED, None, None, None).await?;
            return Ok(Some(done));
        }
        let outcome = self.apply(source, &revision, &record).await;
        let (state, errors, pipelines) = match outcome {
            Applied::All(pipelines) => (revision_state::ACCEPTED, None, Some(pipelines)),
            Applied::None(errors) => (revision_state::REJECTED, Some(errors), None),
            Applied::Some(pipelines, errors) => (revision_state::PARTIALLY_APPLIED, Some(errors), Some(pipelines)),
        };
        let errors_json = errors.as_ref().map(|e| serde_json::to_value(e).unwrap_or_default());
        let pipelines_json = pipelines.as_ref().map(|p| Value::Array(p.clone()));
        let notification = errors.as_ref().map(|errors| {
            let summary = errors
                .iter()
                .take(5)
                .map(|e| if e.pointer.is_empty() { e.message.clone() } else { format!("{}: {}", e.pointer, e.message) })
                .collect::<Vec<_>>()
                .join("; ");
            let draft =
                config_rejected(&source.name, &revision.id, &record.id, errors_json.as_ref().unwrap(), &summary);
            self.channels.notification(draft, None, None, None)
        });
        if let Some(errors) = &errors {
            tracing::warn!(source = %source.name, revision = %revision.id, state, errors = errors.len(), "config revision refused");
        }
        let done = self
            .store
            .finish_config_revision(
                &record.id,
                state,
                errors_json.as_ref(),
                pipelines_json.as_ref(),
                notification.as_ref(),
            )
            .await?;
        Ok(Some(done))
    }

    async fn apply(&self, source: &Source, revision: &Revision, record: &ConfigRevisionRecord) -> Applied {
        let Some(content) = &revision.content else {
            let what = source.location["path"].as_str().or(source.location["key"].as_str()).unwrap_or("the file");
            return Applied::None(vec![FieldError::new(
                "",
                FieldErrorCode::Required,
                format!("revision {} has no {what}", revision.id),
            )]);
        };
        let requests = match config_file::requests(content) {
            Ok(requests) => requests,
            Err(errors) => return Applied::None(errors),
        };
        let list = content.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        // Every request must be valid before any is provisioned.
        let mut errors = Vec::new();
        for (i, body) in requests.iter().enumerate() {
            if let Err(e) = self.pipelines.plan(body).await {
                errors.extend(config_file::in_file(field_errors(e), i, list));
            }
        }
        if !errors.is_empty() {
            return Applied::None(errors);
        }
        let principal = Principal { name: format!("{}:{}", source.kind.as_str(), source.name), role: Role::Operator };
        let origin = origin(source, revision, record);
        let mut provisioned = Vec::new();
        for (i, body) in requests.iter().enumerate() {
            match self.pipelines.provision_from(&principal, body, Some(&origin)).await {
                Ok(result) => provisioned.push(json!({
                    "id": result.record.id,
                    "name": result.record.name,
                    "pipeline_type": result.record.pipeline_type,
                    "version": result.record.version,
                    "created": result.created,
                    "warnings": result.warnings,
                })),
                Err(e) => {
                    let errors = config_file::in_file(field_errors(e), i, list);
                    return if provisioned.is_empty() {
                        Applied::None(errors)
                    } else {
                        Applied::Some(provisioned, errors)
                    };
                }
            }
        }
        Applied::All(provisioned)
    }
}

enum Applied {
    All(Vec<Value>),
    None(Vec<FieldError>),
    Some(Vec<Value>, Vec<FieldError>),
}

/// A refusal as field errors: the request's own, or one for the whole request.
fn field_errors(error: ServiceError) -> Vec<FieldError> {
    match error {
        ServiceError::Invalid(errors) => errors.0,
        other => vec![FieldError::new("", FieldErrorCode::InvalidValue, other.to_string())],
    }
}

fn origin(source: &Source, revision: &Revision, record: &ConfigRevisionRecord) -> Origin {
    let short = revision.id.get(..12).unwrap_or(&revision.id);
    let note = match source.kind {
        crate::sources::SourceKind::Git => format!(
            "from git source {} commit {short} by {}: {}",
            source.name,
            revision.author.as_deref().unwrap_or("?"),
            revision.message.as_deref().unwrap_or("").lines().next().unwrap_or("")
        ),
        crate::sources::SourceKind::Bucket => format!("from bucket source {} object version {short}", source.name),
    };
    Origin {
        record: json!({
            "source": source.name,
            "kind": source.kind.as_str(),
            "revision": revision.id,
            "author": revision.author,
            "message": revision.message,
            "config_revision_id": record.id,
        }),
        note,
    }
}
