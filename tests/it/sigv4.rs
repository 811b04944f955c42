//! The solution's IAM-signing clients: requests signed by botocore's own SigV4 signer (service
//! `execute-api`, as API Gateway takes them) with an access key configured on the server provision
//! a pipeline, under the solution's stage prefix too (`/prod/provisionpipeline`); a tampered body,
//! a wrong secret, an expired date and an unknown key each get 403 with the reason; the key's role
//! still decides what it may do.

use crate::support::api::realtime_body;
use crate::support::aws::moto::python_bin;
use crate::support::server::{OPERATOR, test_settings};
use crate::support::{Db, TestDb, TestServer};
use mlops::auth::Role;
use mlops::config::AccessKeySettings;
use serde_json::Value;

const KEY_ID: &str = "AKIAMLOPSTEST0000001";
const VIEWER_KEY_ID: &str = "AKIAMLOPSTEST0000002";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYmlopsTEST";

/// Headers botocore's signer adds to `method url body` (signed at `at`, or now).
fn sign(method: &str, url: &str, body: &[u8], key_id: &str, secret: &str, at: Option<&str>) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigv4/sign.py");
    let mut command = std::process::Command::new(python_bin().join("python"));
    command.arg(script).args([method, url]).arg(&body_file).args([key_id, secret, "us-east-1"]);
    if let Some(at) = at {
        command.arg(at);
    }
    let out = command.output().expect("the CI venv's python (run .ci/run, or set CI_PYTHON_BIN)");
    assert!(out.status.success(), "sign.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    headers.into_iter().map(|(k, v)| (k, v.as_str().unwrap().to_string())).collect()
}

async fn send(server: &TestServer, path: &str, body: &[u8], headers: &[(String, String)]) -> (u16, Value) {
    let mut request = server.http.post(server.url(path)).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn botocore_signed_requests_provision_and_tampered_ones_are_refused() {
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = test_settings(&db);
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("portal"), format!("{SECRET}\n")).unwrap();
    std::fs::write(secrets.path().join("dashboard"), SECRET).unwrap();
    settings.auth.access_keys = vec![
        AccessKeySettings {
            name: "portal".into(),
            role: Role::Operator,
            access_key_id: KEY_ID.into(),
            secret_access_key_env: None,
            secret_access_key_file: Some(secrets.path().join("portal")),
        },
        AccessKeySettings {
            name: "dashboard".into(),
            role: Role::Viewer,
            access_key_id: VIEWER_KEY_ID.into(),
            secret_access_key_env: None,
            secret_access_key_file: Some(secrets.path().join("dashboard")),
        },
    ];
    settings.http.path_prefix = Some("/prod".into());
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn.json", "xgboost/binary_logistic.json").await;
    let body = serde_json::to_vec(&realtime_body("churn", "models/churn.json")).unwrap();

    // Signed by botocore, under the API Gateway stage: provisioned, as the portal.
    let url = server.url("/prod/provisionpipeline");
    let headers = sign("POST", &url, &body, KEY_ID, SECRET, None);
    assert!(headers.iter().any(|(k, v)| k == "Authorization" && v.starts_with("AWS4-HMAC-SHA256 ")), "{headers:?}");
    let (status, out) = send(&server, "/prod/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 200, "{out:#}");
    let id = out["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&id, "active").await;
    let events: Value =
        server.get(&format!("/v1/pipelines/{id}/events"), OPERATOR).send().await.unwrap().json().await.unwrap();
    assert!(events.to_string().contains("portal"), "the signer is the actor: {events:#}");
    assert_eq!(pipeline["state"], "active");

    // Without the stage prefix too (the client signs the path it sends).
    let url = server.url("/provisionpipeline");
    let (status, out) =
        send(&server, "/provisionpipeline", &body, &sign("POST", &url, &body, KEY_ID, SECRET, None)).await;
    assert_eq!(status, 200, "{out:#}");

    // The body changed after signing.
    let headers = sign("POST", &server.url("/prod/provisionpipeline"), &body, KEY_ID, SECRET, None);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (status, problem) = send(&server, "/prod/provisionpipeline", &tampered, &headers).await;
    assert_eq!(status, 403, "{problem:#}");
    assert!(problem["detail"].as_str().unwrap().contains("does not match the signature you provided"), "{problem:#}");
    // Signed for another path than the one it is sent to.
    let (status, _) = send(&server, "/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 403);

    // The wrong secret.
    let headers =
        sign("POST", &server.url("/prod/provisionpipeline"), &body, KEY_ID, "not-the-secret-at-all-000", None);
    let (status, problem) = send(&server, "/prod/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().contains("signature we calculated"), "{problem:#}");

    // Signed twenty minutes ago.
    let then = (chrono::Utc::now() - chrono::Duration::minutes(20)).format("%Y%m%dT%H%M%SZ").to_string();
    let headers = sign("POST", &server.url("/prod/provisionpipeline"), &body, KEY_ID, SECRET, Some(&then));
    let (status, problem) = send(&server, "/prod/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().starts_with(&format!("Signature expired: {then}")), "{problem:#}");

    // A key the server does not know.
    let headers = sign("POST", &server.url("/prod/provisionpipeline"), &body, "AKIAUNKNOWN000000000", SECRET, None);
    let (status, problem) = send(&server, "/prod/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().contains("AKIAUNKNOWN000000000"), "{problem:#}");

    // A valid signature by a viewer's key: authenticated, but not allowed to provision.
    let headers = sign("POST", &server.url("/prod/provisionpipeline"), &body, VIEWER_KEY_ID, SECRET, None);
    let (status, problem) = send(&server, "/prod/provisionpipeline", &body, &headers).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().contains("\"dashboard\" has role viewer"), "{problem:#}");
    // ... and allowed to read: the solution's status call, and a signed GET with a query.
    let status_body = serde_json::to_vec(&serde_json::json!({"pipeline_id": id})).unwrap();
    let headers = sign("POST", &server.url("/prod/pipelinestatus"), &status_body, VIEWER_KEY_ID, SECRET, None);
    let (status, out) = send(&server, "/prod/pipelinestatus", &status_body, &headers).await;
    assert_eq!(status, 200, "{out:#}");
    let path = "/prod/v1/pipelines?pipeline_type=byom_realtime_builtin&limit=10";
    let headers = sign("GET", &server.url(path), b"", VIEWER_KEY_ID, SECRET, None);
    let mut request = server.http.get(server.url(path));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let listed: Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed:#}");

    // Bearer tokens still work beside the keys.
    let status = server.get("/prod/v1/pipelines", OPERATOR).send().await.unwrap().status();
    assert_eq!(status, 200);
    server.stop().await;
}
