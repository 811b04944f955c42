//! The local target's model cards (migrations `0009_model_cards.sql`): a card, every version of
//! its content and status, and the exports made of it. A new version is written with the next
//! number in one statement; deleting a card removes its versions in one transaction.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One version of a card.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelCardVersionRecord {
    pub name: String,
    pub version: i64,
    /// SageMaker's `ModelCardStatus`.
    pub status: String,
    /// The content JSON (SageMaker's model-card schema), as a string as SageMaker returns it.
    pub content: String,
    pub modified_by: String,
    pub modified_at: DateTime<Utc>,
    /// The card's, not the version's.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelCardExportRecord {
    pub job_name: String,
    pub card_name: String,
    pub version: i64,
    /// Asset keys of the exported files.
    pub pdf_key: String,
    pub html_key: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ModelCardStore: Send + Sync {
    /// A new card at version 1; `Conflict` when the name is taken.
    async fn create_model_card(
        &self,
        name: &str,
        status: &str,
        content: &str,
        actor: &str,
    ) -> Result<ModelCardVersionRecord, StoreError>;
    /// The card's next version; `NotFound` without the card.
    async fn update_model_card(
        &self,
        name: &str,
        status: &str,
        content: &str,
        actor: &str,
    ) -> Result<ModelCardVersionRecord, StoreError>;
    /// A version of the card (the latest when `None`).
    async fn model_card(&self, name: &str, version: Option<i64>) -> Result<Option<ModelCardVersionRecord>, StoreError>;
    /// Every card's latest version, by name.
    async fn model_cards(&self) -> Result<Vec<ModelCardVersionRecord>, StoreError>;
    /// Every version of the card, oldest first.
    async fn model_card_versions(&self, name: &str) -> Result<Vec<ModelCardVersionRecord>, StoreError>;
    /// `false` when there was no such card.
    async fn delete_model_card(&self, name: &str) -> Result<bool, StoreError>;
    /// `Conflict` when the job name is taken.
    async fn record_model_card_export(&self, export: &ModelCardExportRecord) -> Result<(), StoreError>;
    async fn model_card_export(&self, job_name: &str) -> Result<Option<ModelCardExportRecord>, StoreError>;
}

/// A query of versions with their card's columns (a literal: sqlx takes only static SQL).
macro_rules! version_sql {
    ($filter:literal) => {
        concat!(
            "SELECT v.name, v.version, v.status, v.content, v.modified_by, v.modified_at, c.created_by, \
             c.created_at FROM model_card_versions v JOIN model_cards c ON c.name = v.name ",
            $filter
        )
    };
}

pub(crate) use version_sql;

macro_rules! impl_model_card_store {
    ($store:ty) => {
        impl $store {
            /// Writes a version of a card and reads it back with the card's columns; another
            /// writer that took the number first is a conflict.
            async fn write_card_version(
                tx: &mut Tx,
                name: &str,
                version: i64,
                status: &str,
                content: &str,
                actor: &str,
            ) -> Result<crate::store::ModelCardVersionRecord, StoreError> {
                sqlx::query(
                    "INSERT INTO model_card_versions (name, version, status, content, modified_by, modified_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(name)
                .bind(version)
                .bind(status)
                .bind(content)
                .bind(actor)
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        StoreError::Conflict(format!("model card {name:?} was updated meanwhile; try again"))
                    }
                    other => other.into(),
                })?;
                Ok(sqlx::query_as(crate::store::model_cards::version_sql!("WHERE v.name = $1 AND v.version = $2"))
                    .bind(name)
                    .bind(version)
                    .fetch_one(&mut **tx)
                    .await?)
            }
        }

        #[async_trait::async_trait]
        impl crate::store::ModelCardStore for $store {
            async fn create_model_card(
                &self,
                name: &str,
                status: &str,
                content: &str,
                actor: &str,
            ) -> Result<crate::store::ModelCardVersionRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let created = sqlx::query(
                    "INSERT INTO model_cards (name, created_by, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(actor)
                .bind(crate::store::now())
                .execute(&mut *tx)
                .await?;
                if created.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("model card {name:?} exists")));
                }
                let record = Self::write_card_version(&mut tx, name, 1, status, content, actor).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn update_model_card(
                &self,
                name: &str,
                status: &str,
                content: &str,
                actor: &str,
            ) -> Result<crate::store::ModelCardVersionRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let next: Option<(i64,)> = sqlx::query_as(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM model_card_versions WHERE name = $1 HAVING COUNT(*) > 0",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((version,)) = next else {
                    return Err(StoreError::NotFound(format!("model card {name:?}")));
                };
                let record = Self::write_card_version(&mut tx, name, version, status, content, actor).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn model_card(
                &self,
                name: &str,
                version: Option<i64>,
            ) -> Result<Option<crate::store::ModelCardVersionRecord>, StoreError> {
                let query = match version {
                    Some(_) => crate::store::model_cards::version_sql!("WHERE v.name = $1 AND v.version = $2"),
                    None => {
                        crate::store::model_cards::version_sql!("WHERE v.name = $1 ORDER BY v.version DESC LIMIT 1")
                    }
                };
                let mut q = sqlx::query_as(query).bind(name);
                if let Some(version) = version {
                    q = q.bind(version);
                }
                Ok(q.fetch_optional(&self.pool).await?)
            }

            async fn model_cards(&self) -> Result<Vec<crate::store::ModelCardVersionRecord>, StoreError> {
                Ok(sqlx::query_as(crate::store::model_cards::version_sql!(
                    "WHERE v.version = (SELECT MAX(l.version) FROM model_card_versions l WHERE l.name = v.name) \
                     ORDER BY v.name"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn model_card_versions(
                &self,
                name: &str,
            ) -> Result<Vec<crate::store::ModelCardVersionRecord>, StoreError> {
                Ok(sqlx::query_as(crate::store::model_cards::version_sql!("WHERE v.name = $1 ORDER BY v.version"))
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn delete_model_card(&self, name: &str) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM model_card_versions WHERE name = $1").bind(name).execute(&mut *tx).await?;
                let deleted =
                    sqlx::query("DELETE FROM model_cards WHERE name = $1").bind(name).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(deleted.rows_affected() > 0)
            }

            async fn record_model_card_export(
                &self,
                e: &crate::store::ModelCardExportRecord,
            ) -> Result<(), StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO model_card_exports (job_name, card_name, version, pdf_key, html_key, created_by, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_name) DO NOTHING",
                )
                .bind(&e.job_name)
                .bind(&e.card_name)
                .bind(e.version)
                .bind(&e.pdf_key)
                .bind(&e.html_key)
                .bind(&e.created_by)
                .bind(e.created_at)
                .execute(&self.pool)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("export job {:?} exists", e.job_name)));
                }
                Ok(())
            }

            async fn model_card_export(
                &self,
                job_name: &str,
            ) -> Result<Option<crate::store::ModelCardExportRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM model_card_exports WHERE job_name = $1")
                    .bind(job_name)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}

pub(crate) use impl_model_card_store;
