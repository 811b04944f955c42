//! Revisions of watched config files (migrations `0007_config_sources.sql`): each recorded
//! once per source, claimed while it is processed, and finished with what became of it (and,
//! when refused, its notification in the same transaction).

use super::{NewNotification, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

pub mod revision_state {
    pub const PROCESSING: &str = "processing";
    pub const ACCEPTED: &str = "accepted";
    pub const REJECTED: &str = "rejected";
    pub const UNCHANGED: &str = "unchanged";
    pub const PARTIALLY_APPLIED: &str = "partially_applied";
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConfigRevisionRecord {
    pub id: String,
    /// The config source's name.
    pub source: String,
    /// `git` or `bucket`.
    pub source_kind: String,
    /// The commit SHA, or the object's version id (else its ETag).
    pub revision: String,
    pub content_sha256: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    /// `processing`, `accepted`, `rejected` (nothing provisioned), `unchanged` (the file is as
    /// in the source's previous revision) or `partially_applied` (a later request of a list
    /// failed after earlier ones were provisioned).
    pub state: String,
    /// Field-level errors as the API gives them: `[{pointer, message, code}]`; pointers into a
    /// list of requests start with the request's index.
    #[schema(value_type = Option<Object>)]
    pub errors: Option<Json<serde_json::Value>>,
    /// The pipelines it provisioned: `[{id, name, pipeline_type, version, created, warnings}]`
    /// (`warnings`: what the API's answer would have said, e.g. ignored keys).
    #[schema(value_type = Option<Object>)]
    pub pipelines: Option<Json<serde_json::Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewConfigRevision {
    pub source: String,
    pub source_kind: String,
    pub revision: String,
    pub content_sha256: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
}

/// What `begin_config_revision` found.
#[derive(Debug)]
pub enum Begun {
    /// Ours to process.
    Started(ConfigRevisionRecord),
    /// Recorded already (or being processed elsewhere).
    Seen(ConfigRevisionRecord),
}

#[derive(Debug, Clone, Default)]
pub struct ConfigRevisionFilter {
    pub source: Option<String>,
    pub state: Option<String>,
    /// Newest first; rows older than this one.
    pub before: Option<String>,
    pub limit: i64,
}

/// A claim older than this was left by a process that died while processing it; another takes
/// it over. Processing a revision takes seconds.
pub const ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(2);

#[async_trait]
pub trait ConfigRevisionStore: Send + Sync {
    /// Records the revision as `processing`, or finds it recorded. A `processing` claim older
    /// than [`ABANDONED_AFTER`] is taken over.
    async fn begin_config_revision(&self, revision: &NewConfigRevision) -> Result<Begun, StoreError>;
    /// The source's config in force: its newest `accepted` or `unchanged` revision other than
    /// `except` (a refused one changed nothing).
    async fn previous_config_revision(
        &self,
        source: &str,
        except: &str,
    ) -> Result<Option<ConfigRevisionRecord>, StoreError>;
    /// Records what became of a revision, and its notification in the same transaction.
    async fn finish_config_revision(
        &self,
        id: &str,
        state: &str,
        errors: Option<&serde_json::Value>,
        pipelines: Option<&serde_json::Value>,
        notification: Option<&NewNotification>,
    ) -> Result<ConfigRevisionRecord, StoreError>;
    async fn list_config_revisions(
        &self,
        filter: &ConfigRevisionFilter,
    ) -> Result<Vec<ConfigRevisionRecord>, StoreError>;
    async fn config_revision(&self, id: &str) -> Result<Option<ConfigRevisionRecord>, StoreError>;
    /// Queues a recurring job (one per idempotency key), or re-queues it if it ended (failed,
    /// succeeded or cancelled: e.g. its source was removed from the configuration and is back).
    async fn ensure_recurring_job(&self, job: &super::NewJob) -> Result<(), StoreError>;
}

macro_rules! impl_config_revision_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::store::ConfigRevisionStore for $store {
            async fn begin_config_revision(
                &self,
                r: &crate::store::NewConfigRevision,
            ) -> Result<crate::store::config_revisions::Begun, StoreError> {
                use crate::store::config_revisions::{ABANDONED_AFTER, Begun};
                let now = crate::store::now();
                let inserted: Option<crate::store::ConfigRevisionRecord> = sqlx::query_as(
                    "INSERT INTO config_revisions (id, source, source_kind, revision, content_sha256, author, message, \
                     state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'processing', $8, $8) \
                     ON CONFLICT (source, revision) DO NOTHING RETURNING *",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&r.source)
                .bind(&r.source_kind)
                .bind(&r.revision)
                .bind(&r.content_sha256)
                .bind(&r.author)
                .bind(&r.message)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(record) = inserted {
                    return Ok(Begun::Started(record));
                }
                let existing: crate::store::ConfigRevisionRecord =
                    sqlx::query_as("SELECT * FROM config_revisions WHERE source = $1 AND revision = $2")
                        .bind(&r.source)
                        .bind(&r.revision)
                        .fetch_one(&self.pool)
                        .await?;
                if existing.state != "processing" || existing.updated_at > now - ABANDONED_AFTER {
                    return Ok(Begun::Seen(existing));
                }
                // Taken over with a compare-and-set on the claim's time: one taker wins.
                let taken: Option<crate::store::ConfigRevisionRecord> = sqlx::query_as(
                    "UPDATE config_revisions SET updated_at = $3 WHERE id = $1 AND updated_at = $2 \
                     AND state = 'processing' RETURNING *",
                )
                .bind(&existing.id)
                .bind(existing.updated_at)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match taken {
                    Some(record) => Begun::Started(record),
                    None => Begun::Seen(existing),
                })
            }

            async fn previous_config_revision(
                &self,
                source: &str,
                except: &str,
            ) -> Result<Option<crate::store::ConfigRevisionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM config_revisions WHERE source = $1 AND id <> $2 \
                     AND state IN ('accepted', 'unchanged') ORDER BY id DESC LIMIT 1",
                )
                .bind(source)
                .bind(except)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn finish_config_revision(
                &self,
                id: &str,
                state: &str,
                errors: Option<&serde_json::Value>,
                pipelines: Option<&serde_json::Value>,
                notification: Option<&crate::store::NewNotification>,
            ) -> Result<crate::store::ConfigRevisionRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let record: Option<crate::store::ConfigRevisionRecord> = sqlx::query_as(
                    "UPDATE config_revisions SET state = $2, errors = $3, pipelines = $4, updated_at = $5 \
                     WHERE id = $1 RETURNING *",
                )
                .bind(id)
                .bind(state)
                .bind(errors.map(sqlx::types::Json))
                .bind(pipelines.map(sqlx::types::Json))
                .bind(crate::store::now())
                .fetch_optional(&mut *tx)
                .await?;
                let record = record.ok_or_else(|| StoreError::NotFound(format!("config revision {id}")))?;
                if let Some(notification) = notification {
                    Self::insert_notification(&mut tx, notification).await?;
                }
                tx.commit().await?;
                if notification.is_some() {
                    self.wake.notify_waiters();
                }
                Ok(record)
            }

            async fn list_config_revisions(
                &self,
                filter: &crate::store::ConfigRevisionFilter,
            ) -> Result<Vec<crate::store::ConfigRevisionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM config_revisions WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR state = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                )
                .bind(&filter.source)
                .bind(&filter.state)
                .bind(&filter.before)
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn config_revision(&self, id: &str) -> Result<Option<crate::store::ConfigRevisionRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM config_revisions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn ensure_recurring_job(&self, job: &crate::store::NewJob) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                sqlx::query(
                    "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, idempotency_key, \
                     pipeline_id, stage_ordinal, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, NULL, NULL, $5, $5) \
                     ON CONFLICT (idempotency_key) DO UPDATE SET status = 'queued', attempts = 0, \
                     run_at = excluded.run_at, payload = excluded.payload, locked_by = NULL, lease_until = NULL, \
                     last_error = NULL, updated_at = excluded.updated_at \
                     WHERE jobs.status NOT IN ('queued', 'running')",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&job.kind)
                .bind(sqlx::types::Json(&job.payload))
                .bind(job.max_attempts)
                .bind(now)
                .bind(&job.idempotency_key)
                .execute(&mut *tx)
                .await?;
                Self::notify_jobs(&mut tx).await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(())
            }
        }
    };
}

pub(crate) use impl_config_revision_store;
