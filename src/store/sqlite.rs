//! SQLite backend: the embedded default. Writers take `BEGIN IMMEDIATE` so a transaction never
//! has to upgrade a read lock (the classic SQLITE_BUSY deadlock); jobs wake in-process.

use super::sql_store::impl_sql_store;
use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct SqliteStore {
    pool: SqlitePool,
    wake: Arc<Notify>,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    const CLAIM_JOBS_SQL: &'static str = include_str!("sql/sqlite/claim_jobs.sql");
    // BEGIN IMMEDIATE already holds the database's write lock: no row locks needed.
    const LOCK_PIPELINE_SQL: &'static str = "SELECT * FROM pipelines WHERE id = $1";
    const LOCK_LIVE_PIPELINE_SQL: &'static str =
        "SELECT * FROM pipelines WHERE pipeline_type = $1 AND name = $2 AND state <> 'deleted'";
    const LOCK_JOB_SQL: &'static str = "SELECT * FROM jobs WHERE id = $1 AND locked_by = $2 AND status = 'running'";

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        Ok(Self { pool, wake: Arc::new(Notify::new()) })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// One machine, one clock.
    async fn clock<'e, E: sqlx::Executor<'e, Database = sqlx::Sqlite>>(
        _executor: E,
    ) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        Ok(crate::store::now())
    }

    /// In-process wake-ups are sent after commit by the callers; nothing to do in the transaction.
    async fn notify_jobs(_tx: &mut Tx) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);
super::config_revisions::impl_config_revision_store!(SqliteStore);
super::model_registry::impl_model_registry_store!(SqliteStore);
super::model_cards::impl_model_card_store!(SqliteStore);
super::retention::impl_retention_store!(SqliteStore);
super::capture_figures::impl_capture_figure_store!(SqliteStore);
super::endpoint_logs::impl_endpoint_log_store!(SqliteStore);
super::notifications::impl_notification_store!(SqliteStore, "");
