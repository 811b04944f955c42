//! The `deliver_notification` job: one notification over one channel. Each try is logged on the
//! delivery; a delivery recorded as delivered is never sent again (a job re-run after a crash
//! finds it so and stops). A crash between the channel's answer and that record can repeat a
//! send: receivers drop it by the notification id (`webhook-id`, Message-ID).

use super::{Channels, Message};
use crate::jobs::{JobHandler, JobOutcome, JobPayload};
use crate::store::notifications::delivery_state;
use crate::store::{DynStore, JobRecord, NewAttempt};
use async_trait::async_trait;

pub struct DeliveryJobs {
    store: DynStore,
    channels: Channels,
}

impl DeliveryJobs {
    pub fn new(store: DynStore, channels: Channels) -> Self {
        Self { store, channels }
    }

    async fn deliver(&self, job: &JobRecord, delivery_id: &str) -> Result<JobOutcome, String> {
        let Some(delivery) = self.store.delivery(delivery_id).await.map_err(|e| e.to_string())? else {
            return Ok(JobOutcome::Done); // its notification was deleted
        };
        if delivery.state == delivery_state::DELIVERED || delivery.state == delivery_state::FAILED {
            return Ok(JobOutcome::Done);
        }
        let notification = self
            .store
            .notification(&delivery.notification_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("notification {} vanished", delivery.notification_id))?;
        let last = job.attempts + 1 >= job.max_attempts;
        let started = std::time::Instant::now();
        let sent = match self.channels.get(&delivery.channel) {
            Some(channel) => {
                let body = &notification.body.0;
                let message = Message {
                    id: &notification.id,
                    kind: &notification.kind,
                    subject: &notification.subject,
                    text: body["text"].as_str().unwrap_or(""),
                    data: &body["data"],
                    created_at: notification.created_at,
                };
                channel.send(&message).await
            }
            None => Err(super::SendError::permanent(format!(
                "channel {:?} is no longer configured on this server",
                delivery.channel
            ))),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let attempt = match &sent {
            Ok(response) => {
                NewAttempt { succeeded: true, response: Some(response.clone()), error: None, duration_ms, last: true }
            }
            Err(e) => NewAttempt {
                succeeded: false,
                response: e.response.clone(),
                error: Some(e.message.clone()),
                duration_ms,
                last: last || e.permanent,
            },
        };
        self.store.record_attempt(delivery_id, &attempt).await.map_err(|e| e.to_string())?;
        Ok(match sent {
            Ok(_) => JobOutcome::Done,
            Err(e) if e.permanent => JobOutcome::Fail(e.message),
            Err(e) => JobOutcome::Retry(e.message),
        })
    }
}

#[async_trait]
impl JobHandler for DeliveryJobs {
    async fn run(&self, job: &JobRecord) -> JobOutcome {
        match JobPayload::parse(&job.kind, &job.payload.0) {
            Ok(JobPayload::DeliverNotification { delivery_id }) => {
                self.deliver(job, &delivery_id).await.unwrap_or_else(JobOutcome::Retry)
            }
            Ok(other) => JobOutcome::Fail(format!("not a delivery job: {}", other.kind())),
            Err(e) => JobOutcome::Fail(e.to_string()),
        }
    }
}
