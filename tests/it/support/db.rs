//! One throw-away database per test: a SQLite file in a temp dir, or a new Postgres database
//! on the server named by `TEST_DATABASE_URL` / `DATABASE_URL` (default: the local server on
//! 127.0.0.1:5432), dropped when the test ends.

use mlops::store::{DynStore, connect};
use sqlx::Connection;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    pub store: DynStore,
    pub dir: TempDir,
    pg_database: Option<(String, String)>,
}

pub fn postgres_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Same server, another database name.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl TestDb {
    pub async fn new(kind: Db) -> TestDb {
        let db = Self::unmigrated(kind).await;
        db.store.migrate().await.expect("migrate test store");
        db
    }

    /// A fresh database with no schema yet (what `mlops migrate` starts from).
    pub async fn unmigrated(kind: Db) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg_database) = match kind {
            Db::Sqlite => (format!("sqlite://{}", dir.path().join("test.db").display()), None),
            Db::Postgres => {
                let server = postgres_server_url();
                let name = format!("mlops_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
                    panic!(
                        "Postgres is required by the test suite and is not reachable at {server}: {e}. \
                         Start it (.ci/run does) or set TEST_DATABASE_URL."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                (with_database(&server, &name), Some((server, name)))
            }
        };
        let store = connect(&url).await.expect("connect test store");
        TestDb { url, store, dir, pg_database }
    }
}

impl TestDb {
    /// The same database for a second server process (a replica) with a data directory of its
    /// own; dropping it drops nothing.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub fn replica(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            store: self.store.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            pg_database: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg_database.take() else { return };
        // Drop runs outside async context; a small runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}
