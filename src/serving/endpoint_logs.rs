//! Custom endpoints' algorithm output across replicas. Each process keeps its algorithms' lines
//! in memory (`process.rs`); every interval it writes the newest of each endpoint whose algorithm
//! wrote more to its own row in the store, so whichever replica answers
//! `GET /v1/endpoints/{name}/logs` shows every replica's (its own up to now, the others' as of
//! their last write).

use super::endpoints::{EndpointRegistry, Model};
use crate::store::{DynStore, EndpointLogRecord, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Lines a row holds at most, and bytes (the newest that fit).
pub const ROW_LINES: usize = 200;
const ROW_BYTES: usize = 64 * 1024;
/// How often a process rewrites the rows of algorithms that wrote more. An algorithm that logs
/// every request (as most do) would otherwise have its row rewritten at every look: a slower
/// pace bounds the database's write volume to a row per endpoint per replica per interval.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

pub struct EndpointLogReports {
    endpoints: Arc<EndpointRegistry>,
    store: DynStore,
    /// This process among the replicas (`host::process_name`).
    replica: String,
    /// Per endpoint, the line count and restarts written last.
    written: Mutex<HashMap<(String, String), (u64, u32)>>,
}

/// The newest of `lines` (oldest first) within [`ROW_LINES`] and [`ROW_BYTES`].
fn newest(lines: Vec<String>) -> Vec<String> {
    let mut bytes = 0;
    let keep = lines
        .iter()
        .rev()
        .take(ROW_LINES)
        .take_while(|line| {
            bytes += line.len();
            bytes <= ROW_BYTES
        })
        .count();
    let skip = lines.len() - keep;
    lines.into_iter().skip(skip).collect()
}

impl EndpointLogReports {
    pub fn new(endpoints: Arc<EndpointRegistry>, store: DynStore, replica: String) -> Self {
        Self { endpoints, store, replica, written: Mutex::default() }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Writes the rows of the endpoints whose algorithm logged since their last write; how many.
    pub async fn report(&self) -> Result<usize, StoreError> {
        let mut written = self.written.lock().await;
        let mut saved = 0;
        for endpoint in self.endpoints.all_loaded() {
            let Model::Process(process) = &endpoint.model else { continue };
            let key = (endpoint.environment.clone(), endpoint.name.clone());
            let now = (process.lines_logged(), process.restarts());
            if written.get(&key) == Some(&now) {
                continue;
            }
            let record = EndpointLogRecord {
                environment: endpoint.environment.clone(),
                endpoint: endpoint.name.clone(),
                replica: self.replica.clone(),
                restarts: i64::from(now.1),
                lines: newest(process.logs(ROW_LINES)),
                updated_at: crate::store::now(),
            };
            self.store.save_endpoint_logs(&record).await?;
            written.insert(key, now);
            saved += 1;
        }
        Ok(saved)
    }

    /// The endpoint's rows written by other processes, most recent first.
    pub async fn others(&self, environment: &str, endpoint: &str) -> Result<Vec<EndpointLogRecord>, StoreError> {
        let mut rows = self.store.endpoint_logs(environment, endpoint).await?;
        rows.retain(|row| row.replica != self.replica);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_the_newest_lines_that_fit() {
        let lines: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
        let kept = newest(lines);
        assert_eq!((kept.len(), kept[0].as_str(), kept[199].as_str()), (ROW_LINES, "line 100", "line 299"));
        let long = vec!["a".repeat(40 * 1024), "b".repeat(30 * 1024), "c".repeat(30 * 1024)];
        assert_eq!(newest(long).iter().map(|l| &l[..1]).collect::<Vec<_>>(), ["b", "c"]);
        assert!(newest(vec!["x".repeat(ROW_BYTES + 1)]).is_empty());
    }
}
