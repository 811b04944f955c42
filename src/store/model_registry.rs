//! The local target's model registry (migrations `0008_model_registry.sql`): groups, their
//! numbered versions, and every approval decision, each decision written with the version's new
//! status in one transaction.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// SageMaker's `ModelApprovalStatus` values.
pub mod approval {
    pub const PENDING: &str = "PendingManualApproval";
    pub const APPROVED: &str = "Approved";
    pub const REJECTED: &str = "Rejected";
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelPackageGroupRecord {
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelPackageRecord {
    pub group_name: String,
    pub version: i64,
    /// `xgboost` or `onnx`: what the local target evaluates.
    pub framework: String,
    pub framework_version: Option<String>,
    /// The model's asset key.
    pub artifact: String,
    pub description: Option<String>,
    /// `PendingManualApproval`, `Approved` or `Rejected`.
    pub approval_status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelPackageDecisionRecord {
    pub id: String,
    pub group_name: String,
    pub version: i64,
    pub status: String,
    /// Who decided (the caller's name).
    pub actor: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewModelPackage {
    pub group_name: String,
    pub framework: String,
    pub framework_version: Option<String>,
    pub artifact: String,
    pub description: Option<String>,
    pub created_by: String,
}

#[async_trait]
pub trait ModelRegistryStore: Send + Sync {
    /// A new group; `Conflict` when the name is taken.
    async fn create_model_package_group(
        &self,
        name: &str,
        description: Option<&str>,
        actor: &str,
    ) -> Result<ModelPackageGroupRecord, StoreError>;
    async fn model_package_groups(&self) -> Result<Vec<ModelPackageGroupRecord>, StoreError>;
    async fn model_package_group(&self, name: &str) -> Result<Option<ModelPackageGroupRecord>, StoreError>;
    /// The group's next version, `PendingManualApproval`; `NotFound` without the group.
    async fn register_model_package(&self, package: &NewModelPackage) -> Result<ModelPackageRecord, StoreError>;
    async fn model_packages(&self, group: &str) -> Result<Vec<ModelPackageRecord>, StoreError>;
    async fn model_package(&self, group: &str, version: i64) -> Result<Option<ModelPackageRecord>, StoreError>;
    /// Sets the version's approval status and records the decision, in one transaction.
    async fn decide_model_package(
        &self,
        group: &str,
        version: i64,
        status: &str,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<ModelPackageRecord, StoreError>;
    /// The version's decisions, oldest first.
    async fn model_package_decisions(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Vec<ModelPackageDecisionRecord>, StoreError>;
}

macro_rules! impl_model_registry_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::store::ModelRegistryStore for $store {
            async fn create_model_package_group(
                &self,
                name: &str,
                description: Option<&str>,
                actor: &str,
            ) -> Result<crate::store::ModelPackageGroupRecord, StoreError> {
                let created: Option<crate::store::ModelPackageGroupRecord> = sqlx::query_as(
                    "INSERT INTO model_package_groups (name, description, created_by, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING *",
                )
                .bind(name)
                .bind(description)
                .bind(actor)
                .bind(crate::store::now())
                .fetch_optional(&self.pool)
                .await?;
                created.ok_or_else(|| StoreError::Conflict(format!("model package group {name:?} exists")))
            }

            async fn model_package_groups(&self) -> Result<Vec<crate::store::ModelPackageGroupRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM model_package_groups ORDER BY name").fetch_all(&self.pool).await?)
            }

            async fn model_package_group(
                &self,
                name: &str,
            ) -> Result<Option<crate::store::ModelPackageGroupRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM model_package_groups WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn register_model_package(
                &self,
                p: &crate::store::NewModelPackage,
            ) -> Result<crate::store::ModelPackageRecord, StoreError> {
                if self.model_package_group(&p.group_name).await?.is_none() {
                    return Err(StoreError::NotFound(format!("model package group {:?}", p.group_name)));
                }
                // Two registrations at once may pick the same next version: the loser tries again.
                for _ in 0..5 {
                    let now = crate::store::now();
                    let inserted: Result<crate::store::ModelPackageRecord, sqlx::Error> = sqlx::query_as(
                        "INSERT INTO model_packages (group_name, version, framework, framework_version, artifact, \
                         description, approval_status, created_by, created_at, updated_at) \
                         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, 'PendingManualApproval', $6, $7, $7 \
                         FROM model_packages WHERE group_name = $1 RETURNING *",
                    )
                    .bind(&p.group_name)
                    .bind(&p.framework)
                    .bind(&p.framework_version)
                    .bind(&p.artifact)
                    .bind(&p.description)
                    .bind(&p.created_by)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await;
                    match inserted {
                        Ok(record) => return Ok(record),
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(StoreError::Conflict(format!("versions of {:?} are being registered too fast", p.group_name)))
            }

            async fn model_packages(&self, group: &str) -> Result<Vec<crate::store::ModelPackageRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM model_packages WHERE group_name = $1 ORDER BY version")
                    .bind(group)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn model_package(
                &self,
                group: &str,
                version: i64,
            ) -> Result<Option<crate::store::ModelPackageRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM model_packages WHERE group_name = $1 AND version = $2")
                    .bind(group)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn decide_model_package(
                &self,
                group: &str,
                version: i64,
                status: &str,
                actor: &str,
                comment: Option<&str>,
            ) -> Result<crate::store::ModelPackageRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                let updated: Option<crate::store::ModelPackageRecord> = sqlx::query_as(
                    "UPDATE model_packages SET approval_status = $3, updated_at = $4 \
                     WHERE group_name = $1 AND version = $2 RETURNING *",
                )
                .bind(group)
                .bind(version)
                .bind(status)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let updated =
                    updated.ok_or_else(|| StoreError::NotFound(format!("model package {group}/{version}")))?;
                sqlx::query(
                    "INSERT INTO model_package_decisions (id, group_name, version, status, actor, comment, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(group)
                .bind(version)
                .bind(status)
                .bind(actor)
                .bind(comment)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn model_package_decisions(
                &self,
                group: &str,
                version: i64,
            ) -> Result<Vec<crate::store::ModelPackageDecisionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM model_package_decisions WHERE group_name = $1 AND version = $2 ORDER BY id",
                )
                .bind(group)
                .bind(version)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

pub(crate) use impl_model_registry_store;
