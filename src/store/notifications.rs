//! The notification outbox (migrations `0006_notifications.sql`): undispatched events become
//! notifications with one delivery per channel, each delivery a job; every attempt is logged.
//! The rule deciding what is notified is the caller's (`domain::notifications`), passed in as a
//! function, so the store holds none.

use super::{EventRecord, NewJob, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

/// An event waiting to be dispatched, with its pipeline's name and type and its stage's
/// environment (absent when the pipeline or stage row is gone).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingEvent {
    #[sqlx(flatten)]
    pub event: EventRecord,
    pub pipeline_name: Option<String>,
    pub pipeline_type: Option<String>,
    pub environment: Option<String>,
}

/// A notification to record, with the channels to deliver it over.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub kind: String,
    pub pipeline_id: Option<String>,
    pub event_id: Option<i64>,
    pub subject: String,
    pub body: serde_json::Value,
    /// `(channel name, channel kind)`: one delivery and one job each.
    pub channels: Vec<(String, String)>,
    pub max_attempts: i32,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NotificationRecord {
    pub id: String,
    /// e.g. `pipeline.failed`, `stage.awaiting_approval`, `monitor.violations`, `config.rejected`.
    pub kind: String,
    pub pipeline_id: Option<String>,
    /// The audit event it tells of (none for a rejected config revision).
    pub event_id: Option<i64>,
    pub subject: String,
    /// `text` (what e-mail and SNS carry) and `data` (the webhook payload's `data`).
    #[schema(value_type = Object)]
    pub body: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

pub mod delivery_state {
    pub const PENDING: &str = "pending";
    pub const RETRYING: &str = "retrying";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    /// `webhook`, `sns` or `email`.
    pub channel_kind: String,
    /// `pending`, `retrying`, `delivered` or `failed` (attempts used up).
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryAttemptRecord {
    pub delivery_id: String,
    pub attempt: i32,
    pub succeeded: bool,
    /// What the channel answered: an HTTP status, an SMTP reply, an SNS message id.
    pub response: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

/// One try of a delivery.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub succeeded: bool,
    pub response: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// A failure after which no attempt follows.
    pub last: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub pipeline_id: Option<String>,
    pub kind: Option<String>,
    /// Newest first; rows older than this one (by id, which is time-ordered).
    pub before: Option<String>,
    pub limit: i64,
}

pub type Decide<'a> = dyn Fn(&PendingEvent) -> Vec<NewNotification> + Send + Sync + 'a;

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Reads up to `limit` undispatched events in id order, asks `decide` what each warrants,
    /// and in one transaction records those notifications, one delivery and one
    /// `deliver_notification` job per channel, and marks the events dispatched. Replicas
    /// dispatching at once take disjoint events. Returns how many events it dispatched.
    async fn dispatch_events(&self, limit: i64, decide: &Decide<'_>) -> Result<usize, StoreError>;
    /// Records a notification that tells of no event (a rejected config revision) with its
    /// deliveries and jobs.
    async fn record_notification(&self, notification: &NewNotification) -> Result<NotificationRecord, StoreError>;
    async fn list_notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRecord>, StoreError>;
    async fn notification(&self, id: &str) -> Result<Option<NotificationRecord>, StoreError>;
    async fn deliveries(&self, notification_id: &str) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;
    async fn delivery_attempts(&self, delivery_id: &str) -> Result<Vec<DeliveryAttemptRecord>, StoreError>;
    /// Logs one attempt and moves the delivery to `delivered`, `retrying` or (the last failure)
    /// `failed`. `false`, logging nothing, when it was delivered already.
    async fn record_attempt(&self, delivery_id: &str, attempt: &NewAttempt) -> Result<bool, StoreError>;
}

pub(crate) fn delivery_job(delivery_id: &str, max_attempts: i32) -> NewJob {
    let payload = crate::domain::jobs::JobPayload::DeliverNotification { delivery_id: delivery_id.to_string() };
    NewJob {
        kind: payload.kind().to_string(),
        payload: payload.to_json(),
        max_attempts,
        run_at: crate::store::now(),
        idempotency_key: Some(format!("delivery:{delivery_id}")),
        pipeline_id: None,
        stage_ordinal: None,
    }
}

/// `$lock`: what makes concurrent dispatchers take disjoint events (Postgres: `FOR UPDATE …
/// SKIP LOCKED`; SQLite's `BEGIN IMMEDIATE` serialises them already).
macro_rules! impl_notification_store {
    ($store:ty, $lock:literal) => {
        impl $store {
            async fn insert_notification(
                tx: &mut Tx,
                n: &crate::store::NewNotification,
            ) -> Result<crate::store::NotificationRecord, StoreError> {
                let now = crate::store::now();
                let record: crate::store::NotificationRecord = sqlx::query_as(
                    "INSERT INTO notifications (id, kind, pipeline_id, event_id, subject, body, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&n.kind)
                .bind(&n.pipeline_id)
                .bind(n.event_id)
                .bind(&n.subject)
                .bind(sqlx::types::Json(&n.body))
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
                for (channel, kind) in &n.channels {
                    let delivery_id = uuid::Uuid::now_v7().to_string();
                    sqlx::query(
                        "INSERT INTO notification_deliveries (id, notification_id, channel, channel_kind, state, \
                         attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
                    )
                    .bind(&delivery_id)
                    .bind(&record.id)
                    .bind(channel)
                    .bind(kind)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    Self::insert_job(tx, &crate::store::notifications::delivery_job(&delivery_id, n.max_attempts))
                        .await?;
                }
                Ok(record)
            }
        }

        #[async_trait::async_trait]
        impl crate::store::NotificationStore for $store {
            async fn dispatch_events(
                &self,
                limit: i64,
                decide: &crate::store::notifications::Decide<'_>,
            ) -> Result<usize, StoreError> {
                let mut tx = self.begin_write().await?;
                let pending: Vec<crate::store::PendingEvent> = sqlx::query_as(concat!(
                    "SELECT e.*, p.name AS pipeline_name, p.pipeline_type AS pipeline_type, s.environment AS environment \
                     FROM events e \
                     LEFT JOIN pipelines p ON p.id = e.pipeline_id \
                     LEFT JOIN stages s ON s.pipeline_id = e.pipeline_id AND s.ordinal = e.stage_ordinal \
                     WHERE NOT e.dispatched ORDER BY e.id LIMIT $1",
                    $lock
                ))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if pending.is_empty() {
                    return Ok(0);
                }
                let mut enqueued = false;
                for event in &pending {
                    for notification in decide(event) {
                        enqueued |= !notification.channels.is_empty();
                        Self::insert_notification(&mut tx, &notification).await?;
                    }
                    sqlx::query("UPDATE events SET dispatched = TRUE WHERE id = $1")
                        .bind(event.event.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                if enqueued {
                    self.wake.notify_waiters();
                }
                Ok(pending.len())
            }

            async fn record_notification(
                &self,
                notification: &crate::store::NewNotification,
            ) -> Result<crate::store::NotificationRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let record = Self::insert_notification(&mut tx, notification).await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(record)
            }

            async fn list_notifications(
                &self,
                filter: &crate::store::NotificationFilter,
            ) -> Result<Vec<crate::store::NotificationRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM notifications WHERE ($1 IS NULL OR pipeline_id = $1) AND ($2 IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                )
                .bind(&filter.pipeline_id)
                .bind(&filter.kind)
                .bind(&filter.before)
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn notification(&self, id: &str) -> Result<Option<crate::store::NotificationRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM notifications WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn deliveries(&self, notification_id: &str) -> Result<Vec<crate::store::DeliveryRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM notification_deliveries WHERE notification_id = $1 ORDER BY channel")
                    .bind(notification_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn delivery(&self, id: &str) -> Result<Option<crate::store::DeliveryRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM notification_deliveries WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn delivery_attempts(
                &self,
                delivery_id: &str,
            ) -> Result<Vec<crate::store::DeliveryAttemptRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt")
                    .bind(delivery_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn record_attempt(
                &self,
                delivery_id: &str,
                attempt: &crate::store::NewAttempt,
            ) -> Result<bool, StoreError> {
                use crate::store::notifications::delivery_state;
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                let state = match (attempt.succeeded, attempt.last) {
                    (true, _) => delivery_state::DELIVERED,
                    (false, true) => delivery_state::FAILED,
                    (false, false) => delivery_state::RETRYING,
                };
                let attempts: Option<i32> = sqlx::query_scalar(
                    "UPDATE notification_deliveries SET state = $2, attempts = attempts + 1, last_error = $3, \
                     delivered_at = CASE WHEN $4 THEN $5 ELSE delivered_at END, updated_at = $5 \
                     WHERE id = $1 AND state <> 'delivered' RETURNING attempts",
                )
                .bind(delivery_id)
                .bind(state)
                .bind(&attempt.error)
                .bind(attempt.succeeded)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(attempts) = attempts else { return Ok(false) };
                sqlx::query(
                    "INSERT INTO delivery_attempts (delivery_id, attempt, succeeded, response, error, duration_ms, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(delivery_id)
                .bind(attempts)
                .bind(attempt.succeeded)
                .bind(&attempt.response)
                .bind(&attempt.error)
                .bind(attempt.duration_ms)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_notification_store;
