//! The `mlops` client commands, run as the real binary against a real server: upload a model,
//! provision and follow it, invoke it, read it as JSON, promote it with approvals, delete it, and
//! get readable errors (field pointers, refused roles, an unreachable server).

use crate::on_both_stores;
use crate::support::api::{assert_close, csv_rows, fixture, fixture_json, realtime_body};
use crate::support::server::{APPROVER, INVOKER, OPERATOR, VIEWER, test_settings};
use crate::support::{Db, TestDb, TestServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const MODEL_KEY: &str = "models/churn/model.tar.gz";

pub struct Run {
    code: i32,
    pub stdout: String,
    stdout_bytes: Vec<u8>,
    stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "mlops failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    fn failed(&self) -> &Self {
        assert_ne!(self.code, 0, "mlops succeeded unexpectedly\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `mlops ARGS --server SERVER [--token TOKEN]` with `stdin` as its input.
async fn mlops_with_input(server: &str, token: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlops"));
    command.args(args).args(["--server", server]);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    for var in ["MLOPS_SERVER", "MLOPS_TOKEN", "MLOPS_CONFIG"] {
        command.env_remove(var);
    }
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().expect("run the mlops binary");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("mlops {args:?} did not finish within 60s"))
        .unwrap();
    Run {
        code: output.status.code().expect("mlops exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stdout_bytes: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub async fn mlops(server: &TestServer, token: &str, args: &[&str]) -> Run {
    mlops_with_input(&server.base, Some(token), args, None).await
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

/// The id from provision's first line, `pipeline  ID (created)`.
fn provisioned_id(run: &Run) -> String {
    let first = run.stdout.lines().next().unwrap_or_default();
    let id = first.strip_prefix("pipeline").and_then(|rest| rest.split_whitespace().next());
    id.unwrap_or_else(|| panic!("no pipeline id in {:?}", run.stdout)).to_string()
}

async fn upload_invoke_inspect_and_delete(db: TestDb) {
    let server = TestServer::start(db).await;
    let dir = tempfile::tempdir().unwrap();
    let model = std::fs::read(fixture("xgboost/model.tar.gz")).unwrap();
    let model_path = fixture("xgboost/model.tar.gz");

    // Upload, streamed; the answer names its size and digest.
    let put = mlops(&server, OPERATOR, &["assets", "put", model_path.to_str().unwrap(), MODEL_KEY]).await;
    put.ok()
        .stdout_has(&format!("key     {MODEL_KEY}\n"))
        .stdout_has(&format!("size    {}\n", model.len()))
        .stdout_has(&format!("sha256  {}\n", hex::encode(Sha256::digest(&model))));

    // Download, to a file and to stdout.
    let copy = dir.path().join("copy.tar.gz");
    mlops(&server, VIEWER, &["assets", "get", MODEL_KEY, "-o", copy.to_str().unwrap()]).await.ok();
    assert_eq!(std::fs::read(&copy).unwrap(), model);
    assert!(!dir.path().join("copy.tar.gz.part").exists());
    let to_stdout = mlops(&server, VIEWER, &["assets", "get", MODEL_KEY]).await;
    assert_eq!(to_stdout.ok().stdout_bytes, model);

    // A dry run shows the plan and stores nothing.
    let body = write_json(dir.path(), "churn.json", &realtime_body("churn", MODEL_KEY));
    let body = body.to_str().unwrap();
    let plan = mlops(&server, OPERATOR, &["provision", "-f", body, "--dry-run"]).await;
    plan.ok()
        .stdout_has("dry run: nothing was stored")
        .stdout_has("stage 0 default\n")
        .stdout_has("    endpoint_name: churn-endpoint\n")
        .stdout_has(&format!("    model.artifact: {MODEL_KEY}\n"));
    let none = mlops(&server, VIEWER, &["pipelines"]).await;
    none.ok().stdout_has("no pipelines");

    // Provision and follow it to active, with every step as an event line.
    let run = mlops(&server, OPERATOR, &["provision", "-f", body, "--wait"]).await;
    run.ok()
        .stdout_has("(created)")
        .stdout_has("pipeline.created                   olga-operator")
        .stdout_has("pipeline   pending → provisioning")
        .stdout_has("default    deploying → deployed")
        .stdout_has("pipeline   provisioning → active")
        .stdout_has("    endpoint_name: churn-endpoint\n");
    let id = provisioned_id(&run);
    assert!(run.stdout.ends_with(&format!("pipeline {id} is active\n")), "{}", run.stdout);
    let events = run.stdout.lines().filter(|l| l.starts_with("20") && l.get(19..22) == Some("Z  ")).count();
    assert_eq!(events, server.events(&id).await.as_array().unwrap().len(), "every event printed once");

    // Invoke with CSV from --data and from stdin; the answer is the endpoint's, byte for byte.
    let cases = fixture_json("xgboost/binary_logistic.cases.json");
    let rows = &cases["rows"].as_array().unwrap()[..3];
    let expected = cases["predictions"].as_array().unwrap();
    let direct = server.invoke("churn-endpoint", "text/csv", csv_rows(rows), INVOKER).await.text().await.unwrap();
    let one = mlops(&server, INVOKER, &["invoke", "churn-endpoint", "--data", &csv_rows(&rows[..1])]).await;
    assert_close(one.ok().stdout.trim().parse().unwrap(), expected[0][0].as_f64().unwrap(), "cli csv row 0");
    let piped = mlops_with_input(
        &server.base,
        Some(INVOKER),
        &["invoke", "churn-endpoint", "--inference-id", "cli-1"],
        Some(csv_rows(rows).as_bytes()),
    )
    .await;
    assert_eq!(piped.ok().stdout, direct);
    let rows_file = dir.path().join("rows.csv");
    std::fs::write(&rows_file, csv_rows(rows)).unwrap();
    let as_json = mlops(
        &server,
        INVOKER,
        &["invoke", "churn-endpoint", "-f", rows_file.to_str().unwrap(), "--accept", "application/json"],
    )
    .await;
    let predictions: Value = serde_json::from_str(&as_json.ok().stdout).unwrap();
    assert_eq!(predictions["predictions"].as_array().unwrap().len(), 3);

    // The endpoint: listed with its model and capture figures (four invocations so far), shown
    // in full, or as the API's JSON; a built-in model has no algorithm logs.
    let listed = mlops(&server, VIEWER, &["endpoints"]).await;
    let lines: Vec<&str> = listed.ok().stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells, ["churn-endpoint", "in_service", "churn", "xgboost", "4", "0", id.as_str()], "{}", listed.stdout);
    let shown = mlops(&server, VIEWER, &["endpoints", "churn-endpoint"]).await;
    shown
        .ok()
        .stdout_has("endpoint     churn-endpoint\n")
        .stdout_has("invoke       POST /v1/endpoints/churn-endpoint/invocations\n")
        .stdout_has(&format!("artifact     {MODEL_KEY} (sha256 "))
        .stdout_has("captured     4 (4 on this replica)\n")
        .stdout_has("dropped      0 (0 on this replica)\n");
    let document: Value =
        serde_json::from_str(&mlops(&server, VIEWER, &["endpoints", "churn-endpoint", "--json"]).await.ok().stdout)
            .unwrap();
    assert_eq!(document["capture"]["this_replica"]["captured"], 4, "{document:#}");
    let logs = mlops(&server, VIEWER, &["logs", "churn-endpoint"]).await;
    logs.ok().stderr_has("no algorithm of churn-endpoint runs or ran on any replica");
    assert!(logs.stdout.is_empty());
    mlops(&server, VIEWER, &["endpoints", "nowhere"]).await.failed().stderr_has("404 Not Found: ");

    // --json is the API's document; the summary is for people.
    let json_run = mlops(&server, VIEWER, &["status", &id, "--json"]).await;
    let document: Value = serde_json::from_str(&json_run.ok().stdout).unwrap();
    assert_eq!(document, server.pipeline(&id).await);
    assert_eq!(document["state"], "active");
    let summary = mlops(&server, VIEWER, &["status", &id]).await;
    summary
        .ok()
        .stdout_has("state     active\n")
        .stdout_has("stage 0 default  deployed\n")
        .stdout_has("    objective: binary:logistic\n");

    let listed = mlops(&server, VIEWER, &["pipelines", "--state", "active", "--type", "byom_realtime_builtin"]).await;
    listed.ok().stdout_has(&id).stdout_has("churn");
    mlops(&server, VIEWER, &["pipelines", "--state", "failed"]).await.ok().stdout_has("no pipelines");

    // Deleting shows the teardown only, not the history before it.
    let deleted = mlops(&server, OPERATOR, &["delete", &id, "--wait"]).await;
    deleted
        .ok()
        .stdout_has("active → deleting")
        .stdout_has("deleting → deleted")
        .stdout_has(&format!("pipeline {id} is deleted"));
    assert!(!deleted.stdout.contains("pipeline.created"), "{}", deleted.stdout);
    server.stop().await;
}

async fn promotion_with_approvals(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.environments = vec!["dev".into(), "staging".into(), "prod".into()];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture(MODEL_KEY, "xgboost/model.tar.gz").await;
    let dir = tempfile::tempdir().unwrap();
    let body = write_json(dir.path(), "churn.json", &realtime_body("churn", MODEL_KEY));

    // Waiting ends at the approval, saying what to run next; that is success.
    let run = mlops(&server, OPERATOR, &["provision", "-f", body.to_str().unwrap(), "--wait"]).await;
    let id = provisioned_id(&run);
    run.ok()
        .stdout_has("dev        deploying → deployed")
        .stdout_has("staging    pending → awaiting_approval")
        .stdout_has(&format!("pipeline {id} is waiting for approval of stage staging"))
        .stdout_has(&format!("mlops approve {id} staging --server {}\n", server.base));

    // Operators may not approve; without a token the CLI says how to give one.
    let refused = mlops(&server, OPERATOR, &["approve", &id, "staging"]).await;
    refused
        .failed()
        .stderr_has("error: 403 Forbidden: ")
        .stderr_has("\"olga-operator\" has role operator, which may not do this");
    let anonymous = mlops_with_input(&server.base, None, &["approve", &id, "staging"], None).await;
    anonymous.failed().stderr_has("401 Unauthorized").stderr_has("pass --token or set MLOPS_TOKEN");
    let early = mlops(&server, APPROVER, &["approve", &id, "prod"]).await;
    early.failed().stderr_has("409 Conflict: ").stderr_has("not awaiting approval");

    let approved = mlops(&server, APPROVER, &["approve", &id, "staging", "--comment", "looks good"]).await;
    approved.ok().stdout_has(&format!("approved stage staging of pipeline {id} version 1 (by anna-approver)"));
    let followed = mlops(&server, VIEWER, &["status", &id, "--wait"]).await;
    followed
        .ok()
        .stdout_has("staging    stage.approved                     anna-approver: looks good")
        .stdout_has("approved by anna-approver")
        .stdout_has("waiting for approval of stage prod");

    // A decision on another version than the current one is refused.
    let stale = mlops(&server, APPROVER, &["approve", &id, "prod", "--version", "7"]).await;
    stale.failed().stderr_has("409 Conflict: ").stderr_has("the decision is for version 7");
    // A rejection ends the wait with a non-zero exit and who rejected it, and why.
    let rejected = mlops(&server, APPROVER, &["approve", &id, "2", "--reject", "--comment", "not before Monday"]).await;
    rejected.ok().stdout_has(&format!("rejected stage prod of pipeline {id} version 1; the pipeline is rejected"));
    let status = mlops(&server, VIEWER, &["status", &id, "--wait", "--json"]).await;
    status.failed().stderr_has(&format!(
        "error: pipeline {id} was rejected: stage prod was rejected by anna-approver: not before Monday"
    ));
    let document: Value = serde_json::from_str(&status.stdout).expect("stdout stays JSON");
    assert_eq!(document["stages"][2]["state"], "rejected");
    server.stop().await;
}

async fn errors_are_readable(db: TestDb) {
    let server = TestServer::start(db).await;
    let dir = tempfile::tempdir().unwrap();

    // Every bad field on its own line, by JSON pointer.
    let mut bad = realtime_body("churn", MODEL_KEY);
    bad["model_name"] = json!(7);
    bad["inference_instance"] = json!(["ml.m5.large"]);
    bad.as_object_mut().unwrap().remove("endpoint_name");
    bad["data_capture_location"] = json!("https://my-bucket/capture");
    let bad = write_json(dir.path(), "bad.json", &bad);
    let run = mlops(&server, OPERATOR, &["provision", "-f", bad.to_str().unwrap()]).await;
    run.failed().stderr_has("error: 400 Bad Request: the request has ");
    let pointers: Vec<&str> =
        run.stderr.lines().filter_map(|l| l.strip_prefix("  ")).filter_map(|l| l.split(':').next()).collect();
    for pointer in ["/model_name", "/inference_instance", "/data_capture_location"] {
        assert!(pointers.contains(&pointer), "{pointer} missing from {pointers:?}\n{}", run.stderr);
    }
    assert!(run.stdout.is_empty());

    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "{\"pipeline_type\": ").unwrap();
    let run = mlops(&server, OPERATOR, &["provision", "-f", not_json.to_str().unwrap()]).await;
    run.failed().stderr_has("not.json is not valid JSON");

    // A pipeline that fails: the wait ends non-zero with the reason.
    let missing = write_json(dir.path(), "missing.json", &realtime_body("ghost", "models/ghost/model.tar.gz"));
    let run = mlops(&server, OPERATOR, &["provision", "-f", missing.to_str().unwrap(), "--wait"]).await;
    run.failed().stdout_has("provisioning → failed").stderr_has("failed: ").stderr_has("is not in the assets bucket");

    mlops(&server, VIEWER, &["status", "no-such-id"]).await.failed().stderr_has("404 Not Found: ");
    mlops(&server, "not-a-token", &["pipelines"])
        .await
        .failed()
        .stderr_has("401 Unauthorized: the bearer token is not valid");
    let run = mlops(&server, INVOKER, &["invoke", "nowhere", "--data", "1,2"]).await;
    run.failed().stderr_has("404 Not Found: ");
    assert!(run.stdout.is_empty());

    // A failed download leaves no file behind.
    let target = dir.path().join("absent.bin");
    let run = mlops(&server, VIEWER, &["assets", "get", "models/absent.bin", "-o", target.to_str().unwrap()]).await;
    run.failed().stderr_has("404 Not Found: ");
    assert!(!target.exists());

    // Nothing listening: the error names the server and how to start one.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = mlops_with_input(&closed, None, &["status", "some-id"], None).await;
    run.failed().stderr_has(&format!("cannot reach the mlops server at {closed}")).stderr_has("mlops serve");
    let run = mlops_with_input("localhost:8080", None, &["pipelines"], None).await;
    run.failed().stderr_has("is not an http:// or https:// URL");
    server.stop().await;
}

/// A `--dev` server takes no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_needs_no_token() {
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.dev = true;
    settings.auth.tokens.clear();
    let server = TestServer::start_with(db, settings).await;
    let run = mlops_with_input(&server.base, None, &["pipelines"], None).await;
    run.ok().stdout_has("no pipelines");
    server.stop().await;
}

on_both_stores!(upload_invoke_inspect_and_delete, promotion_with_approvals);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_readable_on_sqlite() {
    errors_are_readable(TestDb::new(Db::Sqlite).await).await;
}
