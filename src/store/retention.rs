//! What the retention sweep (`jobs/retention.rs`) deletes, table by table. Each rule keeps what
//! the system still reads: unfinished work, each monitor's newest executions (a violation is
//! notified once while it persists, judged against the previous executions), each config
//! source's newest revision and the one in force, and every delivery not yet ended.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Executions of each monitor kept whatever their age (the "same violations as before" check
/// reads the newest ten).
pub const KEPT_EXECUTIONS: i64 = 10;

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes finished executions created before `before`, but each monitor's
    /// [`KEPT_EXECUTIONS`] newest; how many.
    async fn sweep_monitor_executions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes notifications created before `before` whose every delivery has ended (delivered
    /// or failed), with their deliveries and attempts; how many notifications.
    async fn sweep_notifications(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes config revisions created before `before` that are not being processed, but each
    /// source's newest and the one in force (its newest accepted or unchanged); how many.
    async fn sweep_config_revisions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes endpoint logs last written before `before` whose endpoint no longer exists
    /// (nothing can read them: the logs route answers 404 for it); how many rows.
    async fn sweep_orphaned_endpoint_logs(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Forgets the report numbers of processes that last reported capture figures before
    /// `before` (gone: a live one reports again within an interval); how many.
    async fn sweep_capture_figure_reports(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

macro_rules! impl_retention_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::store::RetentionStore for $store {
            async fn sweep_monitor_executions(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
                let deleted = sqlx::query(
                    "DELETE FROM monitor_executions WHERE finished_at IS NOT NULL AND created_at < $1 \
                     AND id NOT IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                     (PARTITION BY monitor_id ORDER BY created_at DESC, id DESC) AS n FROM monitor_executions) r \
                     WHERE n <= $2)",
                )
                .bind(before)
                .bind(crate::store::retention::KEPT_EXECUTIONS)
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn sweep_notifications(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
                // Deliveries and their attempts go with their notification (ON DELETE CASCADE).
                let deleted = sqlx::query(
                    "DELETE FROM notifications WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM \
                     notification_deliveries d WHERE d.notification_id = notifications.id \
                     AND d.state NOT IN ('delivered', 'failed'))",
                )
                .bind(before)
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn sweep_config_revisions(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
                // Ids are UUIDv7: the greatest is the newest.
                let deleted = sqlx::query(
                    "DELETE FROM config_revisions WHERE created_at < $1 AND state <> 'processing' \
                     AND id NOT IN (SELECT MAX(id) FROM config_revisions GROUP BY source) \
                     AND id NOT IN (SELECT MAX(id) FROM config_revisions \
                     WHERE state IN ('accepted', 'unchanged') GROUP BY source)",
                )
                .bind(before)
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn sweep_orphaned_endpoint_logs(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let deleted = sqlx::query(
                    "DELETE FROM endpoint_logs WHERE updated_at < $1 AND NOT EXISTS (SELECT 1 FROM endpoints e \
                     WHERE e.environment = endpoint_logs.environment AND e.name = endpoint_logs.endpoint)",
                )
                .bind(before)
                .execute(&self.pool)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn sweep_capture_figure_reports(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StoreError> {
                let deleted = sqlx::query("DELETE FROM capture_figure_reports WHERE reported_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(deleted.rows_affected())
            }
        }
    };
}

pub(crate) use impl_retention_store;
