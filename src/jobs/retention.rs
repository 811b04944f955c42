//! Deletes what has outlived its retention (`[retention]`): finished monitor executions, ended
//! notifications with their delivery logs, old config revisions; and, whatever the settings,
//! endpoint logs of endpoints that are gone and report numbers of processes that are gone.
//! Every worker process sweeps; the deletes are idempotent, so replicas sweeping at once only
//! repeat each other's work.

use crate::config::RetentionSettings;
use crate::store::{DynStore, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one sweep deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub monitor_executions: u64,
    pub notifications: u64,
    pub config_revisions: u64,
    pub endpoint_logs: u64,
    pub capture_figure_reports: u64,
}

/// How long the logs of a deleted endpoint stay: a replica that had not yet seen the deletion
/// may write its row once more meanwhile.
const ORPHANED_LOGS_AGE: chrono::Duration = chrono::Duration::hours(1);
/// How long a process's last capture-figures report number is kept: far beyond the few seconds
/// in which it may send that report again.
const REPORT_NUMBERS_AGE: chrono::Duration = chrono::Duration::days(7);

/// `now - keep`, or `None` for a retention of zero (keep forever).
fn cutoff(now: DateTime<Utc>, keep: Duration) -> Option<DateTime<Utc>> {
    if keep.is_zero() {
        return None;
    }
    // A retention longer than the calendar reaches keeps everything too.
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    Some(now.checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC))
}

pub async fn sweep_once(
    store: &DynStore,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    if let Some(before) = cutoff(now, settings.monitor_executions) {
        swept.monitor_executions = store.sweep_monitor_executions(before).await?;
    }
    if let Some(before) = cutoff(now, settings.notifications) {
        swept.notifications = store.sweep_notifications(before).await?;
    }
    if let Some(before) = cutoff(now, settings.config_revisions) {
        swept.config_revisions = store.sweep_config_revisions(before).await?;
    }
    swept.endpoint_logs = store.sweep_orphaned_endpoint_logs(now - ORPHANED_LOGS_AGE).await?;
    swept.capture_figure_reports = store.sweep_capture_figure_reports(now - REPORT_NUMBERS_AGE).await?;
    Ok(swept)
}

/// Sweeps every `settings.interval` until `stop`.
pub async fn run(store: DynStore, settings: RetentionSettings, stop: CancellationToken) {
    loop {
        match sweep_once(&store, &settings, crate::store::now()).await {
            Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "retention sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_of_zero_keeps_everything() {
        let now = Utc::now();
        assert_eq!(cutoff(now, Duration::ZERO), None);
        assert_eq!(cutoff(now, Duration::from_secs(3600)), Some(now - chrono::Duration::hours(1)));
        assert!(cutoff(now, Duration::MAX).is_some_and(|c| c < now), "a huge retention is the distant past");
    }
}
