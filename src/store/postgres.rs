//! Postgres backend: the production store for many replicas. Jobs are claimed with
//! `FOR UPDATE SKIP LOCKED` and replicas wake each other with `LISTEN/NOTIFY`.

use super::sql_store::impl_sql_store;
use super::*;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const JOBS_CHANNEL: &str = "mlops_jobs";

pub struct PostgresStore {
    pool: PgPool,
    wake: Arc<Notify>,
    listener: JoinHandle<()>,
}

impl PostgresStore {
    const BACKEND: Backend = Backend::Postgres;
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    const CLAIM_JOBS_SQL: &'static str = include_str!("sql/postgres/claim_jobs.sql");
    const LOCK_PIPELINE_SQL: &'static str = "SELECT * FROM pipelines WHERE id = $1 FOR UPDATE";
    const LOCK_LIVE_PIPELINE_SQL: &'static str =
        "SELECT * FROM pipelines WHERE pipeline_type = $1 AND name = $2 AND state <> 'deleted' FOR UPDATE";
    const LOCK_JOB_SQL: &'static str =
        "SELECT * FROM jobs WHERE id = $1 AND locked_by = $2 AND status = 'running' FOR UPDATE";

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        let wake = Arc::new(Notify::new());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(JOBS_CHANNEL).await?;
        let listener = tokio::spawn(forward_notifications(listener, wake.clone()));
        Ok(Self { pool, wake, listener })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// Leases are set and judged by the database's clock, so replicas whose clocks drift cannot
    /// reap each other's live jobs.
    async fn clock<'e, E: sqlx::Executor<'e, Database = sqlx::Postgres>>(
        executor: E,
    ) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
        sqlx::query_scalar("SELECT CURRENT_TIMESTAMP").fetch_one(executor).await
    }

    /// Delivered to every listening replica when the transaction commits.
    async fn notify_jobs(tx: &mut Tx) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, '')").bind(JOBS_CHANNEL).execute(&mut **tx).await?;
        Ok(())
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn forward_notifications(mut listener: PgListener, wake: Arc<Notify>) {
    loop {
        match listener.recv().await {
            Ok(_) => wake.notify_waiters(),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                // recv() reconnects on the next call; workers still poll meanwhile.
                tracing::warn!(error = %e, "job notification listener lost its connection");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres);
super::config_revisions::impl_config_revision_store!(PostgresStore);
super::model_registry::impl_model_registry_store!(PostgresStore);
super::model_cards::impl_model_card_store!(PostgresStore);
super::retention::impl_retention_store!(PostgresStore);
super::capture_figures::impl_capture_figure_store!(PostgresStore);
super::endpoint_logs::impl_endpoint_log_store!(PostgresStore);
super::notifications::impl_notification_store!(PostgresStore, " FOR UPDATE OF e SKIP LOCKED");
