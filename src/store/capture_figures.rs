//! Data-capture figures per capture destination, summed over every server process that captured
//! for it (migrations `0010_capture_figures.sql`, `0012_capture_figure_reports.sql`). Each process
//! adds what it counted since its last report, so replicas never overwrite each other and a
//! restarted process starts from zero without losing the figures before it; reports are numbered
//! per process and applied once.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Figures of one capture destination (`bucket/prefix/endpoint/variant`): what a process adds
/// ([`CaptureFigureStore::add_capture_figures`]), or the sums ([`CaptureFigureStore::capture_figures`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CaptureFigures {
    pub destination: String,
    pub captured: i64,
    pub written: i64,
    pub dropped: i64,
    pub sampled_out: i64,
    /// The latest write of a record; kept when a report has none.
    pub last_flush: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait CaptureFigureStore: Send + Sync {
    /// Adds each destination's figures to its sums, all or none, as report `sequence` of process
    /// `replica`; `false` (and nothing added) when that process's report `sequence` or a later
    /// one was applied already, so a report sent again after a lost answer counts once.
    async fn add_capture_figures(
        &self,
        replica: &str,
        sequence: i64,
        figures: &[CaptureFigures],
    ) -> Result<bool, StoreError>;
    /// The sums of `destination`, or of every destination when `None`.
    async fn capture_figures(&self, destination: Option<&str>) -> Result<Vec<CaptureFigures>, StoreError>;
}

macro_rules! impl_capture_figure_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl crate::store::CaptureFigureStore for $store {
            async fn add_capture_figures(
                &self,
                replica: &str,
                sequence: i64,
                figures: &[crate::store::CaptureFigures],
            ) -> Result<bool, StoreError> {
                // One order for every writer: two replicas' reports lock the rows alike.
                let mut sorted: Vec<_> = figures.iter().collect();
                sorted.sort_by(|a, b| a.destination.cmp(&b.destination));
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                let fresh = sqlx::query(
                    "INSERT INTO capture_figure_reports (replica, sequence, reported_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (replica) DO UPDATE SET sequence = excluded.sequence, \
                     reported_at = excluded.reported_at WHERE capture_figure_reports.sequence < excluded.sequence",
                )
                .bind(replica)
                .bind(sequence)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if fresh.rows_affected() == 0 {
                    return Ok(false);
                }
                for f in sorted {
                    sqlx::query(
                        "INSERT INTO capture_figures \
                         (destination, captured, written, dropped, sampled_out, last_flush, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (destination) DO UPDATE SET \
                         captured = capture_figures.captured + excluded.captured, \
                         written = capture_figures.written + excluded.written, \
                         dropped = capture_figures.dropped + excluded.dropped, \
                         sampled_out = capture_figures.sampled_out + excluded.sampled_out, \
                         last_flush = CASE WHEN capture_figures.last_flush IS NULL \
                         OR capture_figures.last_flush < excluded.last_flush THEN excluded.last_flush \
                         ELSE capture_figures.last_flush END, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&f.destination)
                    .bind(f.captured)
                    .bind(f.written)
                    .bind(f.dropped)
                    .bind(f.sampled_out)
                    .bind(f.last_flush)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn capture_figures(
                &self,
                destination: Option<&str>,
            ) -> Result<Vec<crate::store::CaptureFigures>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT destination, captured, written, dropped, sampled_out, last_flush FROM capture_figures \
                     WHERE $1 IS NULL OR destination = $1 ORDER BY destination",
                )
                .bind(destination)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

pub(crate) use impl_capture_figure_store;
