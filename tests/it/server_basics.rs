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
