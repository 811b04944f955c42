//! An endpoint's data-capture figures across replicas and restarts. Each process counts in memory
//! what it captures ([`CaptureWriter`]: atomics, nothing on the invocation path touches the
//! database) and adds what it counted since its last report to the store's sums every flush
//! interval and at shutdown. An endpoint's figures are the sums plus what this process has not
//! reported yet, so they are the same whichever replica answers; a process killed without a
//! shutdown loses at most one interval of its counts (never its captured records).

use super::capture::{CaptureStats, CaptureWriter};
use crate::store::{CaptureFigures, DynStore, StoreError};
use std::collections::HashMap;
use tokio::sync::Mutex;

pub struct CaptureFigureReports {
    writer: CaptureWriter,
    store: DynStore,
    /// This process among the replicas (`host::process_name`), numbering its reports.
    replica: String,
    /// Held across a report (snapshot, store, update) so that a reader never sees one half
    /// applied.
    state: Mutex<Reports>,
}

#[derive(Default)]
struct Reports {
    /// Per destination, this process's figures as of its last applied report.
    reported: HashMap<String, CaptureStats>,
    /// The number of the last report made.
    sequence: i64,
    /// A report whose fate is unknown (the store failed to answer): sent again, the same, before
    /// any new one, so that it counts once whether or not it was applied.
    pending: Option<Pending>,
}

struct Pending {
    sequence: i64,
    figures: Vec<CaptureFigures>,
    /// The figures it brings `reported` to.
    now: Vec<(String, CaptureStats)>,
}

/// One destination's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Every process's: the store's sums and what this one has not reported yet.
    pub all: CaptureStats,
    /// This process's since it started.
    pub here: CaptureStats,
}

/// `now - before`, counter by counter (counters only grow).
fn since(now: &CaptureStats, before: &CaptureStats) -> CaptureStats {
    CaptureStats {
        captured: now.captured.saturating_sub(before.captured),
        written: now.written.saturating_sub(before.written),
        dropped: now.dropped.saturating_sub(before.dropped),
        sampled_out: now.sampled_out.saturating_sub(before.sampled_out),
        last_flush: now.last_flush,
    }
}

/// The store's sums with this process's unreported figures added.
fn sum(stored: Option<&CaptureFigures>, unreported: &CaptureStats) -> CaptureStats {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let Some(stored) = stored else { return unreported.clone() };
    CaptureStats {
        captured: count(stored.captured) + unreported.captured,
        written: count(stored.written) + unreported.written,
        dropped: count(stored.dropped) + unreported.dropped,
        sampled_out: count(stored.sampled_out) + unreported.sampled_out,
        last_flush: stored.last_flush.max(unreported.last_flush),
    }
}

fn is_zero(figures: &CaptureStats) -> bool {
    figures.captured == 0 && figures.written == 0 && figures.dropped == 0 && figures.sampled_out == 0
}

impl CaptureFigureReports {
    pub fn new(writer: CaptureWriter, store: DynStore, replica: String) -> Self {
        Self { writer, store, replica, state: Mutex::default() }
    }

    /// Sends `pending` (applied now, or found applied before: either way it counts once).
    async fn send(&self, state: &mut Reports, pending: Pending) -> Result<(), StoreError> {
        let sent = self.store.add_capture_figures(&self.replica, pending.sequence, &pending.figures).await;
        match sent {
            Ok(_) => {
                state.reported.extend(pending.now);
                Ok(())
            }
            Err(e) => {
                state.pending = Some(pending);
                Err(e)
            }
        }
    }

    /// Adds what each destination counted since the last report to the store; how many
    /// destinations had something to add. A report the store failed to answer is sent again,
    /// unchanged, before the next one.
    pub async fn report(&self) -> Result<usize, StoreError> {
        let mut state = self.state.lock().await;
        if let Some(pending) = state.pending.take() {
            self.send(&mut state, pending).await?;
        }
        let now = self.writer.all_stats();
        let reported = &state.reported;
        let figures: Vec<CaptureFigures> = now
            .iter()
            .filter_map(|(key, stats)| {
                // A flush always writes records: a new `last_flush` comes with a `written` count.
                let new = since(stats, reported.get(key).unwrap_or(&CaptureStats::default()));
                (!is_zero(&new)).then(|| CaptureFigures {
                    destination: key.clone(),
                    captured: new.captured as i64,
                    written: new.written as i64,
                    dropped: new.dropped as i64,
                    sampled_out: new.sampled_out as i64,
                    last_flush: new.last_flush,
                })
            })
            .collect();
        if figures.is_empty() {
            return Ok(0);
        }
        let count = figures.len();
        state.sequence += 1;
        let pending = Pending { sequence: state.sequence, figures, now };
        self.send(&mut state, pending).await?;
        Ok(count)
    }

    /// The figures of `destination` (a [`stats_key`]), or of every destination when `None`, by
    /// key: over every process, and this process's since it started.
    pub async fn figures(&self, destination: Option<&str>) -> Result<HashMap<String, Figures>, StoreError> {
        let state = self.state.lock().await;
        let reported = &state.reported;
        let stored: HashMap<String, CaptureFigures> =
            self.store.capture_figures(destination).await?.into_iter().map(|f| (f.destination.clone(), f)).collect();
        let here: HashMap<String, CaptureStats> = self
            .writer
            .all_stats()
            .into_iter()
            .filter(|(key, _)| destination.is_none_or(|wanted| key == wanted))
            .collect();
        let keys: std::collections::BTreeSet<&String> = stored.keys().chain(here.keys()).collect();
        Ok(keys
            .into_iter()
            .map(|key| {
                let mine = here.get(key).cloned().unwrap_or_default();
                let unreported = since(&mine, reported.get(key).unwrap_or(&CaptureStats::default()));
                (key.clone(), Figures { all: sum(stored.get(key), &unreported), here: mine })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn stats(captured: u64, written: u64, dropped: u64, sampled_out: u64, flush: Option<i64>) -> CaptureStats {
        CaptureStats {
            captured,
            written,
            dropped,
            sampled_out,
            last_flush: flush.map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        }
    }

    #[test]
    fn a_report_carries_what_was_counted_since_the_last_one() {
        let new = since(&stats(10, 8, 2, 1, Some(20)), &stats(4, 4, 2, 0, Some(10)));
        assert_eq!(new, stats(6, 4, 0, 1, Some(20)));
    }

    #[test]
    fn totals_add_the_unreported_counts_and_keep_the_latest_flush() {
        let stored = CaptureFigures {
            destination: "b/p/e/AllTraffic".into(),
            captured: 100,
            written: 90,
            dropped: 5,
            sampled_out: 3,
            last_flush: Some(Utc.timestamp_opt(50, 0).unwrap()),
        };
        assert_eq!(sum(Some(&stored), &stats(2, 1, 0, 0, Some(40))), stats(102, 91, 5, 3, Some(50)));
        assert_eq!(sum(Some(&stored), &stats(0, 0, 0, 0, Some(60))), stats(100, 90, 5, 3, Some(60)));
        assert_eq!(sum(None, &stats(2, 1, 0, 0, None)), stats(2, 1, 0, 0, None));
    }
}
