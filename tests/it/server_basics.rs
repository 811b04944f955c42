//! The server as a whole: health, readiness, the spec, Swagger UI, request ids, shutdown.

use crate::on_both_stores;
use crate::support::{TestDb, TestServer};

async fn health_readiness_docs_and_request_ids(db: TestDb) {
    let server = TestServer::start(db).await;
    let health = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = server.get("/readyz", crate::support::server::VIEWER).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "ready");
    let spec: serde_json::Value =
        server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let docs = server.http.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui"), "Swagger UI is served from vendored assets");
    let sent = server.http.get(server.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(sent.headers()["x-request-id"], "abc-123", "a caller's request id is kept");
    server.stop().await;
}

on_both_stores!(health_readiness_docs_and_request_ids);

/// With the database gone, `/readyz` says so without the driver's words (they name hosts,
/// databases and users); the cause is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_failure_names_no_database_internals() {
    use sqlx::Connection;
    let db = TestDb::new(crate::support::Db::Postgres).await;
    let name = db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
    let server = TestServer::start(db).await;
    let mut admin = sqlx::PgConnection::connect(&crate::support::db::postgres_server_url()).await.unwrap();
    let sql = |s: String| sqlx::query(sqlx::AssertSqlSafe(s));
    sql(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).execute(&mut admin).await.unwrap();
    sql(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        .execute(&mut admin)
        .await
        .unwrap();
    let ready = server.get("/readyz", crate::support::server::VIEWER).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["detail"], "the database is not reachable", "{body}");
    for leak in [name.as_str(), "postgres", "connection", "terminat", "sqlx", "error returned"] {
        assert!(!body.to_lowercase().contains(leak), "{leak:?} in {body}");
    }
    sql(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).execute(&mut admin).await.unwrap();
    server.stop().await;
}
