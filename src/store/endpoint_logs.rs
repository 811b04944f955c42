//! The newest output of custom endpoints' algorithms, per server process (migrations
//! `0011_endpoint_logs.sql`), so that whichever replica answers shows every replica's.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Rows kept per endpoint: its most recent writers (live replicas, and a few that ran before).
pub const KEPT_REPLICAS: i64 = 10;

/// One process's newest lines of one endpoint's algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLogRecord {
    pub environment: String,
    pub endpoint: String,
    /// The process (`host::process_name`).
    pub replica: String,
    /// Restarts of the algorithm on that process.
    pub restarts: i64,
    /// Oldest first.
    pub lines: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait EndpointLogStore: Send + Sync {
    /// Replaces the process's row of the endpoint; beyond the endpoint's [`KEPT_REPLICAS`] most
    /// recently written rows, older ones go.
    async fn save_endpoint_logs(&self, record: &EndpointLogRecord) -> Result<(), StoreError>;
    /// The endpoint's rows, most recently written first.
    async fn endpoint_logs(&self, environment: &str, endpoint: &str) -> Result<Vec<EndpointLogRecord>, StoreError>;
}

macro_rules! impl_endpoint_log_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::store::EndpointLogStore for $store {
            async fn save_endpoint_logs(&self, record: &crate::store::EndpointLogRecord) -> Result<(), StoreError> {
                let lines = serde_json::to_string(&record.lines).expect("strings serialize");
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO endpoint_logs (environment, endpoint, replica, restarts, lines, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (environment, endpoint, replica) DO UPDATE SET \
                     restarts = excluded.restarts, lines = excluded.lines, updated_at = excluded.updated_at",
                )
                .bind(&record.environment)
                .bind(&record.endpoint)
                .bind(&record.replica)
                .bind(record.restarts)
                .bind(lines)
                .bind(record.updated_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM endpoint_logs WHERE environment = $1 AND endpoint = $2 AND replica NOT IN \
                     (SELECT replica FROM endpoint_logs WHERE environment = $1 AND endpoint = $2 \
                     ORDER BY updated_at DESC, replica LIMIT $3)",
                )
                .bind(&record.environment)
                .bind(&record.endpoint)
                .bind(crate::store::endpoint_logs::KEPT_REPLICAS)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn endpoint_logs(
                &self,
                environment: &str,
                endpoint: &str,
            ) -> Result<Vec<crate::store::EndpointLogRecord>, StoreError> {
                let rows: Vec<(String, i64, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT replica, restarts, lines, updated_at FROM endpoint_logs \
                     WHERE environment = $1 AND endpoint = $2 ORDER BY updated_at DESC, replica",
                )
                .bind(environment)
                .bind(endpoint)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(replica, restarts, lines, updated_at)| {
                        let lines = serde_json::from_str(&lines).map_err(|e| {
                            StoreError::Corrupt(format!("endpoint logs of {environment}.{endpoint} from {replica}: {e}"))
                        })?;
                        Ok(crate::store::EndpointLogRecord {
                            environment: environment.to_string(),
                            endpoint: endpoint.to_string(),
                            replica,
                            restarts,
                            lines,
                            updated_at,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_endpoint_log_store;
