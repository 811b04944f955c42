//! Shared test harness: a fresh database per test on either backend, and a macro that runs one
//! test body on both.

pub mod api;
pub mod aws;
pub mod db;
pub mod server;

pub use db::{Db, TestDb};
pub use server::TestServer;

/// Declares `mod NAME { fn sqlite(); fn postgres(); }` running `async fn NAME(db: TestDb)` on a
/// fresh database of each kind. Postgres is never skipped: without it the test fails loudly.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::TestDb::new($crate::support::Db::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::TestDb::new($crate::support::Db::Postgres).await).await
            }
        }
    )*};
}
