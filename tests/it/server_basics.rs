//! The server as a whole: health, readiness, the spec, Swagger UI, request ids, shutdown.

use crate::on_both_stores;
use crate::support::{TestDb, TestServer};
use futures::StreamExt;

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

/// A client that sends its headers one byte a second is dropped within the header timeout; an
/// idle kept-alive connection is closed after the idle timeout; past the connection cap a
/// client waits until a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_dropped_and_connections_capped() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = crate::support::server::test_settings(&db);
    settings.http.header_read_timeout = Duration::from_secs(2);
    settings.http.idle_timeout = Duration::from_secs(3);
    settings.http.max_connections = 3;
    let server = TestServer::start_with(db, settings).await;
    let addr = server.base.trim_start_matches("http://").to_string();

    // Slowloris: one header byte a second. The server closes the socket within the timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed_after = None;
    for byte in request {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("the server answered a request whose headers never completed"),
            Err(_) => {} // nothing yet: send the next byte
        }
    }
    let closed_after = closed_after.expect("the slow client was never dropped");
    assert!(closed_after < Duration::from_secs(5), "dropped only after {closed_after:?}");

    // Idle keep-alive: one request, then silence; the server closes after the idle timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut response = vec![0u8; 1024];
    let n = idle.read(&mut response).await.unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 200"));
    let quiet = Instant::now();
    let eof = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut response)).await;
    assert!(matches!(eof, Ok(Ok(0)) | Ok(Err(_))), "idle connection left open: {eof:?}");
    let idle_for = quiet.elapsed();
    assert!(idle_for >= Duration::from_millis(2500) && idle_for < Duration::from_secs(6), "{idle_for:?}");

    // The cap: three open connections hold every slot; a fourth client is served only once one
    // of them goes away.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let n = c.read(&mut response).await.unwrap();
        assert!(n > 0);
        held.push(c);
    }
    let fourth = server.http.get(server.url("/healthz")).timeout(Duration::from_millis(800)).send().await;
    assert!(fourth.is_err(), "a fourth connection was served past the cap");
    held.pop();
    let fourth = server.http.get(server.url("/healthz")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(fourth.status(), 200);
    drop(held);
    server.stop().await;
}

/// A body that arrives over `chunks × pause`.
fn trickle(chunks: usize, pause: std::time::Duration, chunk: &'static [u8]) -> reqwest::Body {
    let stream = futures::stream::iter(0..chunks).then(move |_| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(chunk))
    });
    reqwest::Body::wrap_stream(stream)
}

/// `http.request_timeout` ends a request that takes longer (here a body that trickles in) with
/// 503 `timeout` and the request id; asset transfers are not bounded by it, with or without the
/// path prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_timeout_are_answered_503_but_asset_transfers_are_not() {
    use crate::support::server::{OPERATOR, test_settings};
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.http.request_timeout = std::time::Duration::from_millis(700);
    settings.http.path_prefix = Some("/prod".into());
    let server = TestServer::start_with(db, settings).await;
    let pause = std::time::Duration::from_millis(400);

    let started = std::time::Instant::now();
    let slow = server
        .post("/prod/v1/pipelines", OPERATOR)
        .header("content-type", "application/json")
        .header("x-request-id", "slow-body")
        .body(trickle(5, pause, b" "))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 503);
    assert!(started.elapsed() < 5 * pause, "answered at the limit, not when the body ended");
    assert_eq!(slow.headers()["content-type"], "application/problem+json");
    assert_eq!(slow.headers()["x-request-id"], "slow-body");
    let problem: serde_json::Value = slow.json().await.unwrap();
    assert_eq!(problem["code"], "timeout", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("700ms"), "{problem}");

    for path in ["/prod/v1/assets/slow/one.bin", "/v1/assets/slow/two.bin"] {
        let put = server
            .http
            .put(server.url(path))
            .bearer_auth(OPERATOR)
            .body(trickle(4, pause, b"0123456789"))
            .send()
            .await
            .unwrap();
        let status = put.status();
        assert!(status.is_success(), "{path}: {status} {}", put.text().await.unwrap());
        let stored: serde_json::Value = put.json().await.unwrap();
        assert_eq!(stored["size"], 40, "{path}: {stored}");
    }
    server.stop().await;
}

/// Asset transfers have no request timeout (their length depends on their size), so a transfer
/// that stops moving is bounded by `http.idle_timeout` instead: an upload whose bytes stop
/// arriving is answered 408 and nothing is stored; a download the client stops reading is
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_asset_transfers_are_dropped_after_the_idle_timeout() {
    use crate::support::server::{OPERATOR, VIEWER, test_settings};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.http.idle_timeout = Duration::from_secs(1);
    // The connection watchdog looks again at least every half header timeout: 1 s here.
    settings.http.header_read_timeout = Duration::from_secs(2);
    let server = TestServer::start_with(db, settings).await;
    let addr = server.base.trim_start_matches("http://").to_string();

    // Ten of the hundred bytes announced, then nothing.
    let mut upload = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v1/assets/stalled/model.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\n\
         Content-Length: 100\r\n\r\n0123456789"
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), upload.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled upload was kept waiting");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("no bytes of the upload arrived for 1s"), "{answer}");
    let stored = server.get("/v1/assets/stalled/model.bin", VIEWER).send().await.unwrap();
    assert_eq!(stored.status(), 404, "a stalled upload left an asset behind");

    // A download larger than what the sockets buffer, never read.
    let size = 32 << 20;
    let put = server.http.put(server.url("/v1/assets/big.bin")).bearer_auth(OPERATOR).body(vec![7u8; size]);
    assert_eq!(put.send().await.unwrap().status(), 201);
    let mut download = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("GET /v1/assets/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n\r\n");
    download.write_all(head.as_bytes()).await.unwrap();
    // The idle timeout, the watchdog's next look, and a margin for a busy machine.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), download.read_to_end(&mut received)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "a download the client stopped reading was kept open");
    assert!(received.starts_with(b"HTTP/1.1 200 "));
    assert!(received.len() < size, "the whole asset arrived: {} bytes", received.len());
    server.stop().await;
}
