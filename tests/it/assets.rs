//! The assets API: streamed round trips, size limits that leave nothing behind, keys that try to
//! leave the bucket.

use crate::on_both_stores;
use crate::support::server::{INVOKER, OPERATOR, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use serde_json::Value;

async fn round_trip_limits_and_traversal(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.assets.max_upload_bytes = 64 * 1024;
    let server = TestServer::start_with(db, settings).await;

    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let put = server.put_asset("data/nested/file.bin", body.clone()).await;
    assert_eq!(put.status(), 201);
    let out: Value = put.json().await.unwrap();
    assert_eq!(out["size"], 50_000);
    assert_eq!(out["bucket"], "assets");
    assert_eq!(out["sha256"].as_str().unwrap().len(), 64);
    let got = server.get("/v1/assets/data/nested/file.bin", VIEWER).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-length"], "50000");
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    let too_big = server.put_asset("data/big.bin", vec![7u8; 65 * 1024]).await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(too_big.headers()["content-type"], "application/problem+json");
    assert_eq!(
        server.get("/v1/assets/data/big.bin", VIEWER).send().await.unwrap().status(),
        404,
        "nothing half-written"
    );

    // Sent over a raw socket: HTTP client libraries resolve dot segments before sending, an
    // attacker's client does not.
    let objects = server.db.dir.path().join("data/objects");
    for key in ["a/../../escape", "../outside", "a/%2e%2e/%2e%2e/escape", "a//b", "a/./b", "a%5cb"] {
        let (status, body) = raw(&server, "PUT", &format!("/v1/assets/{key}")).await;
        assert_eq!(status, 400, "{key}: {body}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["errors"][0]["parameter"], "key", "{key}: {problem:#}");
    }
    assert!(!objects.join("outside").exists() && !server.db.dir.path().join("data/escape").exists());
    // Reads cannot leave the bucket either: a file beside it stays unreachable.
    std::fs::write(objects.join("secret.txt"), "not an asset").unwrap();
    for key in ["../secret.txt", "a/../../secret.txt", "%2e%2e/secret.txt", "..%2fsecret.txt"] {
        let (status, body) = raw(&server, "GET", &format!("/v1/assets/{key}")).await;
        assert_eq!(status, 400, "GET {key}: {body}");
        assert!(!body.contains("not an asset"), "GET {key}: {body}");
    }
    // The orchestrator's own objects and folder names are not asset keys.
    for key in ["mlops_provisioned_pipelines/x/template.zip", "_mlops/snapshots/x", "data/folder/"] {
        let put = server.put_asset(key, b"x".to_vec()).await;
        assert_eq!(put.status(), 400, "{key}");
        let problem: Value = put.json().await.unwrap();
        assert_eq!(problem["errors"][0]["parameter"], "key", "{key}: {problem:#}");
    }

    assert_eq!(server.get("/v1/assets/missing", VIEWER).send().await.unwrap().status(), 404);
    let anonymous = server.http.put(server.url("/v1/assets/x")).body("x").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let invoker = server.http.put(server.url("/v1/assets/x")).bearer_auth(INVOKER).body("x").send().await.unwrap();
    assert_eq!(invoker.status(), 403);
    server.stop().await;
}

on_both_stores!(round_trip_limits_and_traversal);

/// `method` with the path exactly as given (and a one-byte body); returns the status and body.
async fn raw(server: &TestServer, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {OPERATOR}\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
