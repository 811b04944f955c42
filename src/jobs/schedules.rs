//! Starts monitor executions when their schedules fire. Every worker process ticks; a window is
//! claimed by moving the monitor's `next_run_at` with a compare-and-set in the same transaction
//! that records the execution and queues its job, so however many replicas tick, each window runs
//! once. A window runs `delay` after it closes, so the capture writers' last flush is in it.
//!
//! A schedule missed while no worker ran (the process was down) runs its latest window only, as
//! SageMaker does not back-fill either.

use super::JobPayload;
use crate::domain::cron::CronExpression;
use crate::store::{DynStore, NewExecution, NewJob, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Claims the due windows at `now`; returns the executions it started.
pub async fn tick(
    store: &DynStore,
    now: DateTime<Utc>,
    delay: Duration,
    max_attempts: i32,
) -> Result<usize, StoreError> {
    let closed_before = now - chrono::Duration::from_std(delay).unwrap_or_default();
    let mut started = 0;
    for monitor in store.due_monitors(closed_before).await? {
        let Ok(cron) = CronExpression::parse(&monitor.schedule_expression) else {
            tracing::error!(monitor = %monitor.id, schedule = %monitor.schedule_expression, "unreadable schedule");
            continue;
        };
        // The latest firing at or before the cut-off (fires are on whole minutes), its window,
        // and the next firing after it.
        let Some(fire) = cron.previous_before(closed_before + chrono::Duration::seconds(1)) else { continue };
        let Some(window_start) = cron.previous_before(fire) else { continue };
        let next = cron.next_after(closed_before).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let Some(pipeline) = store.pipeline(&monitor.pipeline_id).await? else { continue };
        let execution_id = uuid::Uuid::now_v7().to_string();
        let payload = JobPayload::RunMonitor { version: pipeline.version, execution_id: execution_id.clone() };
        let execution = NewExecution {
            id: execution_id,
            monitor_id: monitor.id.clone(),
            origin: "schedule".into(),
            window_start,
            window_end: fire,
            job: NewJob {
                kind: payload.kind().to_string(),
                payload: payload.to_json(),
                max_attempts,
                // Due at once (by the store's clock, whatever `now` the caller decides with).
                run_at: crate::store::now(),
                idempotency_key: Some(format!("monitor:{}:{}", monitor.id, fire.to_rfc3339())),
                pipeline_id: Some(monitor.pipeline_id.clone()),
                stage_ordinal: None,
            },
        };
        if store.claim_scheduled_execution(monitor.next_run_at, next, &execution).await?.is_some() {
            tracing::info!(monitor = %monitor.name, window_start = %window_start, window_end = %fire, "monitor execution scheduled");
            started += 1;
        }
    }
    Ok(started)
}

/// Ticks every `every` until `stop`.
pub async fn run(store: DynStore, every: Duration, delay: Duration, max_attempts: i32, stop: CancellationToken) {
    loop {
        if let Err(e) = tick(&store, crate::store::now(), delay, max_attempts).await {
            tracing::warn!(error = %e, "starting scheduled monitor executions failed; trying again");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
