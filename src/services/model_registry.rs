//! The local target's model registry (issue 16): model package groups and numbered versions
//! with SageMaker's `ModelApprovalStatus`. A version is registered `PendingManualApproval`; an
//! approver decides (every decision kept, with who and why); `model_package_name` in a
//! real-time or batch request then resolves to the version's artifact and framework on the local
//! target, once it is `Approved` — as SageMaker's registry does for the aws target.

use super::ServiceError;
use crate::artifacts::{ArtifactStore, StorageError};
use crate::auth::Principal;
use crate::domain::{AssetKey, FieldErrorCode};
use crate::store::model_registry::approval;
use crate::store::{
    DynStore, ModelPackageDecisionRecord, ModelPackageGroupRecord, ModelPackageRecord, NewModelPackage,
};
use serde_json::Value;

/// The frameworks the local target evaluates (serving/builtin.rs).
const FRAMEWORKS: [&str; 2] = ["xgboost", "onnx"];

/// A version as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelPackageView {
    /// What `model_package_name` names it by: SageMaker's ARN shape (the local target resolves
    /// any model package ARN by its group and version; region and account are placeholders).
    pub model_package_arn: String,
    #[serde(flatten)]
    pub package: ModelPackageRecord,
    /// Approval decisions, oldest first.
    pub decisions: Vec<ModelPackageDecisionRecord>,
}

/// SageMaker's ARN of a local version.
pub fn package_arn(group: &str, version: i64) -> String {
    format!("arn:aws:sagemaker:us-east-1:000000000000:model-package/{group}/{version}")
}

/// An optional string field; `None` when absent or null.
fn text(body: &Value, key: &str) -> Result<Option<String>, ServiceError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ServiceError::invalid(
            &format!("/{key}"),
            FieldErrorCode::InvalidType,
            format!("`{key}` must be a string"),
        )),
    }
}

fn required(body: &Value, key: &str, example: &str) -> Result<String, ServiceError> {
    text(body, key)?.filter(|s| !s.is_empty()).ok_or_else(|| {
        ServiceError::invalid(
            &format!("/{key}"),
            FieldErrorCode::Required,
            format!("`{key}` is required, e.g. {example}"),
        )
    })
}

/// SageMaker's pattern for a model package group name.
fn check_group_name(name: &str, pointer: &str) -> Result<(), ServiceError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            pointer,
            FieldErrorCode::InvalidValue,
            format!(
                "`{name}` is not a model package group name: 1-63 letters, digits and hyphens, no hyphen at either end"
            ),
        ))
    }
}

#[derive(Clone)]
pub struct ModelRegistryService {
    store: DynStore,
    artifacts: ArtifactStore,
}

impl ModelRegistryService {
    pub fn new(store: DynStore, artifacts: ArtifactStore) -> Self {
        Self { store, artifacts }
    }

    pub async fn create_group(
        &self,
        caller: &Principal,
        body: &Value,
    ) -> Result<ModelPackageGroupRecord, ServiceError> {
        let name = required(body, "name", "`churn-models`")?;
        check_group_name(&name, "/name")?;
        let description = text(body, "description")?;
        Ok(self.store.create_model_package_group(&name, description.as_deref(), &caller.name).await?)
    }

    pub async fn groups(&self) -> Result<Vec<ModelPackageGroupRecord>, ServiceError> {
        Ok(self.store.model_package_groups().await?)
    }

    async fn group(&self, name: &str) -> Result<ModelPackageGroupRecord, ServiceError> {
        self.store
            .model_package_group(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("model package group {name:?} not found")))
    }

    /// Registers the group's next version from an asset the local target can evaluate.
    pub async fn register(
        &self,
        caller: &Principal,
        group: &str,
        body: &Value,
    ) -> Result<ModelPackageView, ServiceError> {
        self.group(group).await?;
        let (artifact, pointer) = artifact_of(body)?;
        let field = &pointer[1..];
        let artifact = AssetKey::parse(&artifact)
            .map_err(|e| ServiceError::invalid(pointer, FieldErrorCode::InvalidValue, format!("`{field}`: {e}")))?;
        let framework = required(body, "model_framework", "`xgboost`")?.to_ascii_lowercase();
        if !FRAMEWORKS.contains(&framework.as_str()) {
            return Err(ServiceError::invalid(
                "/model_framework",
                FieldErrorCode::InvalidValue,
                format!("`model_framework`: `{framework}` is not one the local target evaluates (`xgboost`, `onnx`)"),
            ));
        }
        match self.artifacts.asset_meta(artifact.as_str()).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => {
                let hint = if pointer == "/training_job_name" {
                    "the training job has not written its model there (yet)"
                } else {
                    "upload it first"
                };
                return Err(ServiceError::invalid(
                    pointer,
                    FieldErrorCode::InvalidValue,
                    format!("`{field}`: no asset `{}`: {hint}", artifact.as_str()),
                ));
            }
            Err(e) => return Err(ServiceError::Unavailable { what: "the artifact store", cause: e.to_string() }),
        }
        let package = NewModelPackage {
            group_name: group.to_string(),
            framework,
            framework_version: text(body, "model_framework_version")?,
            artifact: artifact.as_str().to_string(),
            description: text(body, "description")?,
            created_by: caller.name.clone(),
        };
        let record = self.store.register_model_package(&package).await?;
        Ok(view(record, Vec::new()))
    }

    pub async fn packages(&self, group: &str) -> Result<Vec<ModelPackageView>, ServiceError> {
        self.group(group).await?;
        let mut out = Vec::new();
        for record in self.store.model_packages(group).await? {
            let decisions = self.store.model_package_decisions(group, record.version).await?;
            out.push(view(record, decisions));
        }
        Ok(out)
    }

    pub async fn package(&self, group: &str, version: i64) -> Result<ModelPackageView, ServiceError> {
        let record = self
            .store
            .model_package(group, version)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("model package {group}/{version} not found")))?;
        let decisions = self.store.model_package_decisions(group, version).await?;
        Ok(view(record, decisions))
    }

    /// Approves or rejects a version (`{"status": "Approved" | "Rejected", "comment": …}`), as
    /// `UpdateModelPackage` sets `ModelApprovalStatus`; the caller is recorded.
    pub async fn decide(
        &self,
        caller: &Principal,
        group: &str,
        version: i64,
        body: &Value,
    ) -> Result<ModelPackageView, ServiceError> {
        let status = required(body, "status", "`Approved`")?;
        if ![approval::APPROVED, approval::REJECTED, approval::PENDING].contains(&status.as_str()) {
            return Err(ServiceError::invalid(
                "/status",
                FieldErrorCode::InvalidValue,
                format!("`status`: `{status}` is not `Approved`, `Rejected` or `PendingManualApproval`"),
            ));
        }
        let comment = text(body, "comment")?;
        self.package(group, version).await?;
        self.store.decide_model_package(group, version, &status, &caller.name, comment.as_deref()).await?;
        self.package(group, version).await
    }
}

/// Where a version's model is: `model_artifact_location`, or a SageMaker training job's output
/// — `training_job_name` under `job_output_location`, where SageMaker (and our aws target's
/// training pipelines) write `<job_output_location>/<job name>/output/model.tar.gz` in the assets
/// bucket. Answers the asset key and the pointer of the field it came from.
fn artifact_of(body: &Value) -> Result<(String, &'static str), ServiceError> {
    let location = text(body, "model_artifact_location")?.filter(|s| !s.is_empty());
    let job = text(body, "training_job_name")?.filter(|s| !s.is_empty());
    match (location, job) {
        (Some(_), Some(_)) => Err(ServiceError::invalid(
            "/training_job_name",
            FieldErrorCode::InvalidValue,
            "give `model_artifact_location` or `training_job_name` (with `job_output_location`), not both",
        )),
        (Some(location), None) => Ok((location, "/model_artifact_location")),
        (None, Some(job)) => {
            crate::domain::JobName::parse(&job).map_err(|e| {
                ServiceError::invalid(
                    "/training_job_name",
                    FieldErrorCode::InvalidValue,
                    format!("`training_job_name`: {e}"),
                )
            })?;
            let output = required(body, "job_output_location", "`training-output` (the training pipeline's)")?;
            Ok((format!("{}/{job}/output/model.tar.gz", output.trim_end_matches('/')), "/training_job_name"))
        }
        (None, None) => Err(ServiceError::invalid(
            "/model_artifact_location",
            FieldErrorCode::Required,
            "`model_artifact_location` is required, e.g. `models/churn/model.tar.gz` (or `training_job_name` with `job_output_location`)",
        )),
    }
}

fn view(package: ModelPackageRecord, decisions: Vec<ModelPackageDecisionRecord>) -> ModelPackageView {
    ModelPackageView { model_package_arn: package_arn(&package.group_name, package.version), package, decisions }
}
