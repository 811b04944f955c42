//! Turns audit events into notifications. Every worker runs it; the store hands each event to
//! one dispatcher only and records its notifications, deliveries and delivery jobs in the
//! transaction that marks it dispatched — so an event committed before a crash is told after
//! the restart, and never twice.

use super::Channels;
use crate::domain::notifications::{EventFacts, for_event};
use crate::store::{DynStore, NewNotification, PendingEvent, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 200;

/// The notifications one event warrants (at most one today).
fn decide(channels: &Channels, pending: &PendingEvent) -> Vec<NewNotification> {
    let e = &pending.event;
    let facts = EventFacts {
        event_id: e.id,
        pipeline_id: &e.pipeline_id,
        pipeline_name: pending.pipeline_name.as_deref().unwrap_or(&e.pipeline_id),
        pipeline_type: pending.pipeline_type.as_deref().unwrap_or("?"),
        environment: pending.environment.as_deref(),
        kind: &e.kind,
        from_state: e.from_state.as_deref(),
        to_state: e.to_state.as_deref(),
        actor: &e.actor,
        message: e.message.as_deref(),
        details: e.details.as_ref().map(|d| &d.0),
    };
    for_event(&facts)
        .map(|draft| channels.notification(draft, Some(&e.pipeline_id), pending.pipeline_name.as_deref(), Some(e.id)))
        .into_iter()
        .collect()
}

/// Dispatches every event waiting now; returns how many.
pub async fn dispatch_pending(store: &DynStore, channels: &Channels) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store.dispatch_events(BATCH, &|pending| decide(channels, pending)).await?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
    }
}

/// Dispatches every `every`, and whenever a job is queued (most events come with one), until
/// `stop`.
pub async fn run(store: DynStore, channels: Channels, every: Duration, stop: CancellationToken) {
    let wake = store.job_wakeup();
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match dispatch_pending(&store, &channels).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "events dispatched"),
            Err(e) => tracing::warn!(error = %e, "dispatching events to notifications failed; trying again"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut notified => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}
