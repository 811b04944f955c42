//! The `mlops` binary as an operator runs it: `serve` as a process of its own, the README's
//! walkthrough word for word with the files in `examples/`, `migrate` before `serve` on Postgres,
//! API and `worker` as separate processes, `healthcheck`, `openapi --check`, a bad setting
//! refused at start, and a graceful stop on SIGTERM that flushes captured traffic.

use crate::support::api::{assert_close, fixture_json};
use crate::support::{Db, TestDb};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `mlops ARGS` with only the given settings in its environment (none inherited from the test
/// runner's `MLOPS_*` or `DATABASE_URL`).
fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlops"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MLOPS_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command.args(args).envs(env.iter().copied()).current_dir(env!("CARGO_MANIFEST_DIR")).kill_on_drop(true);
    command
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command(args, env).output())
        .await
        .unwrap_or_else(|_| panic!("mlops {args:?} still running after 60 s"))
        .expect("run mlops");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A `serve` or `worker` process, its log collected as it runs.
struct Process {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    /// The address `serve` reported it listens on.
    base: Option<String>,
}

impl Process {
    /// Starts `mlops ARGS` (JSON logs) and waits until it logs `ready`.
    async fn start(args: &[&str], env: &[(&str, &str)], ready: &str) -> Process {
        let mut env = env.to_vec();
        env.push(("MLOPS_LOG__FORMAT", "json"));
        let mut child = command(args, &env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
        for mut lines in [Box::pin(stdout) as std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>, Box::pin(stderr)]
            .map(|r| r.lines())
        {
            let (log, tx) = (log.clone(), tx.clone());
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let wait = async {
            while let Some(line) = rx.recv().await {
                if line.contains(ready) {
                    return Some(line);
                }
            }
            None
        };
        let line = match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Some(line)) => line,
            _ => panic!("mlops {args:?} did not log {ready:?}; its log:\n{}", log.lock().unwrap()),
        };
        let base =
            serde_json::from_str::<Value>(&line).ok().and_then(|v| v["listen"].as_str().map(|a| format!("http://{a}")));
        Process { child, log, base }
    }

    fn base(&self) -> &str {
        self.base.as_deref().expect("a serve process")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, as ECS and systemd stop a task; the process must exit 0 within its grace period.
    async fn terminate(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let status = exited.unwrap_or_else(|_| panic!("no exit 30 s after SIGTERM; log:\n{}", self.log())).unwrap();
        // The readers may still be draining the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = self.log();
        assert!(status.success(), "exit status {status} after SIGTERM; log:\n{log}");
        log
    }
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The `# …` lines the README prints under the CSV invocation of its walkthrough.
fn readme_predictions() -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let after = readme.split("/endpoints/breast-cancer/invocations\n").nth(1).expect("the README's CSV invocation");
    let predictions: Vec<String> = after
        .lines()
        .map_while(|l| l.strip_prefix("# ").filter(|v| v.parse::<f64>().is_ok()))
        .map(str::to_string)
        .collect();
    assert_eq!(predictions.len(), 3, "the README shows three predictions");
    predictions
}

async fn wait_active(http: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..300 {
        let pipeline: Value = json_of(http.get(format!("{base}/v1/pipelines/{id}"))).await;
        match pipeline["state"].as_str() {
            Some("active") => return pipeline,
            Some("failed") => panic!("pipeline failed: {pipeline}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("pipeline {id} did not become active");
}

/// README "Two commands" (first) and "Five-minute walkthrough", on SQLite as written (`serve`
/// creates the schema); on Postgres ("On Postgres") with `mlops migrate` first and the API and a
/// `worker` as separate processes. Both start from an empty database.
async fn readme_walkthrough(kind: Db) {
    let db = TestDb::unmigrated(kind).await;
    let data = db.dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let postgres = db.url.starts_with("postgres");
    // Only the shutdown flush writes captured records: the walkthrough's step 5 relies on it.
    let env = [("DATABASE_URL", db.url.as_str()), ("MLOPS_CAPTURE__FLUSH_INTERVAL", "1h")];
    let api_env = [env.as_slice(), if postgres { &[("MLOPS_JOBS__WORKERS", "0")] } else { &[] }].concat();
    let serve = ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
    let serving = "mlops-orchestrator serving";
    // On Postgres the API runs no jobs (`jobs.workers = 0`): only the worker process can deploy.

    let worker = if postgres {
        let (code, out) = run(&serve, &env).await;
        assert_ne!(code, 0, "serve must refuse an empty Postgres schema: {out}");
        assert!(out.contains("run `mlops migrate` first"), "{out}");
        let (code, out) = run(&["migrate", "--data-dir", data_dir], &env).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("migrations applied"), "{out}");
        Some(Process::start(&["worker", "--dev", "--data-dir", data_dir], &env, "job runner started").await)
    } else {
        None
    };
    let server = Process::start(&serve, &api_env, serving).await;
    let base = server.base().to_string();
    assert!(server.log().contains("authentication is OFF"), "the --dev warning is logged:\n{}", server.log());
    let (code, out) = run(&["healthcheck", &base], &[]).await;
    assert_eq!(code, 0, "{out}");
    let http = reqwest::Client::new();
    let example = |file: &str| std::fs::read(repo(&format!("examples/breast-cancer/{file}"))).unwrap();

    // 1. Upload the model.
    let model = example("model.tar.gz");
    let uploaded: Value =
        json_of(http.put(format!("{base}/v1/assets/models/breast-cancer/model.tar.gz")).body(model.clone())).await;
    assert_eq!(uploaded["key"], "models/breast-cancer/model.tar.gz");
    assert_eq!(uploaded["bucket"], "assets");
    assert_eq!(uploaded["size"], model.len());
    assert_eq!(uploaded["sha256"], hex::encode(Sha256::digest(&model)));

    // 2. Provision with the solution's body.
    let provisioned = json_of(http.post(format!("{base}/provisionpipeline")).body(example("mlops-config.json"))).await;
    assert_eq!(provisioned["message"], "success: stack creation started", "{provisioned}");
    let id = provisioned["pipeline_id"].as_str().unwrap().to_string();

    // 3. Active, in both shapes.
    let pipeline = wait_active(&http, &base, &id).await;
    assert_eq!(pipeline["pipeline_type"], "byom_realtime_builtin");
    let status: Value = json_of(http.post(format!("{base}/pipelinestatus")).json(&json!({"pipeline_id": id}))).await;
    assert_eq!(status["stageStates"][1]["stageName"], "DeployCloudFormation");
    assert_eq!(status["stageStates"][1]["actionStates"][0]["latestExecution"]["status"], "Succeeded");
    let events = json_of(http.get(format!("{base}/v1/pipelines/{id}/events"))).await;
    assert!(events.to_string().contains("endpoint.in_service"), "{events}");

    // 4. Score the rows: CSV answers in CSV, JSON in JSON, and they are what the README prints,
    // which are xgboost's own predictions for these rows.
    let printed = readme_predictions();
    let csv = http
        .post(format!("{base}/endpoints/breast-cancer/invocations"))
        .header("content-type", "text/csv")
        .header("x-request-id", "walkthrough-rows")
        .body(example("rows.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let lines: Vec<String> = csv.text().await.unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines, printed, "the README's predictions");
    let cases = fixture_json("xgboost/binary_logistic.cases.json");
    for (i, line) in lines.iter().enumerate() {
        let want = cases["predictions"][i][0].as_f64().unwrap();
        assert_close(line.parse().unwrap(), want, &format!("row {i} against xgboost"));
    }
    let scored: Value = json_of(
        http.post(format!("{base}/v1/endpoints/breast-cancer/invocations"))
            .header("content-type", "application/json")
            .body(example("rows.json")),
    )
    .await;
    let scores: Vec<String> =
        scored["predictions"].as_array().unwrap().iter().map(|p| p["score"].to_string()).collect();
    assert_eq!(scores, printed, "JSON scores");

    // The same with the CLI: a re-provision updates the pipeline; invoke prints the predictions.
    let client = |args: &[&'static str]| [args, &["--server", base.as_str()]].concat();
    let (code, out) =
        run(&client(&["provision", "-f", "examples/breast-cancer/mlops-config.json", "--wait"]), &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(updated)"), "{out}");
    assert!(out.contains("active"), "{out}");
    let (code, out) = run(&client(&["invoke", "breast-cancer", "-f", "examples/breast-cancer/rows.csv"]), &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), printed, "mlops invoke");

    // 5. A clean stop writes every captured invocation.
    let capture = data.join("objects/datacapture/breast-cancer/breast-cancer/AllTraffic");
    assert!(!capture.exists(), "nothing is flushed before shutdown with a 1 h interval");
    let log = server.terminate().await;
    // Log lines are written in batches; the last one, logged just before exit, is there.
    assert!(log.lines().any(|l| l.contains(r#""message":"stopped""#)), "the final log line is written:\n{log}");
    assert_request_lines(&log, &id);
    if let Some(worker) = worker {
        worker.terminate().await;
    }
    let records = crate::walkthrough::read_capture(&capture);
    assert_eq!(records.len(), 3, "two curl invocations and one from the CLI");
    let (code, _) = run(&["healthcheck", &base], &[]).await;
    assert_ne!(code, 0, "healthcheck fails once the server is gone");
}

/// The access line of the walkthrough's CSV invocation, and the request's fields on a line its
/// handler logged (`pipeline provisioned`), in the JSON the server writes.
fn assert_request_lines(log: &str, pipeline_id: &str) {
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished" && l["request"]["id"] == "walkthrough-rows")
        .collect();
    assert_eq!(access.len(), 1, "one access line for the request:\n{log}");
    let access = access[0];
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["status"], 200);
    assert!(access["latency_us"].as_u64().is_some_and(|us| us > 0), "{access}");
    assert_eq!(
        access["request"],
        json!({"method": "POST", "path": "/endpoints/breast-cancer/invocations", "id": "walkthrough-rows"})
    );
    let provisioned = lines
        .iter()
        .find(|l| l["message"] == "pipeline provisioned" && l["pipeline.id"] == pipeline_id)
        .unwrap_or_else(|| panic!("the handler's line:\n{log}"));
    assert_eq!(provisioned["request"]["method"], "POST");
    assert_eq!(provisioned["request"]["path"], "/provisionpipeline");
    let id = provisioned["request"]["id"].as_str().unwrap();
    let access = lines.iter().filter(|l| l["message"] == "request finished" && l["request"]["id"] == id);
    assert_eq!(access.count(), 1, "the id made for the request is the one on its access line:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_on_sqlite() {
    readme_walkthrough(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_on_postgres() {
    readme_walkthrough(Db::Postgres).await;
}

#[tokio::test]
async fn openapi_check_compares_with_the_committed_document() {
    let (code, out) = run(&["openapi", "--check"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("openapi/openapi.json is up to date"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("openapi.json");
    std::fs::write(&stale, "{}\n").unwrap();
    let (code, out) = run(&["openapi", "--check", stale.to_str().unwrap()], &[]).await;
    assert_ne!(code, 0);
    assert!(out.contains("is out of date"), "{out}");
}

#[tokio::test]
async fn a_bad_setting_stops_serve_naming_the_key() {
    let db = TestDb::new(Db::Sqlite).await;
    let data = db.dir.path().join("data");
    let env = [("DATABASE_URL", db.url.as_str()), ("MLOPS_JOBS__WORKERS", "many")];
    let (code, out) =
        run(&["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()], &env).await;
    assert_ne!(code, 0);
    assert!(out.contains("jobs.workers"), "{out}");
}

#[tokio::test]
async fn serve_dev_refuses_a_public_address_and_configured_tokens() {
    let db = TestDb::new(Db::Sqlite).await;
    let data = db.dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let env = [("DATABASE_URL", db.url.as_str())];
    let (code, out) = run(&["serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir", data_dir], &env).await;
    assert_ne!(code, 0);
    assert!(out.contains("listen") && out.contains("loopback"), "{out}");
    let tokens = r#"[{name="ops", role="operator", token="0123456789abcdef0123456789abcdef"}]"#;
    let env = [("DATABASE_URL", db.url.as_str()), ("MLOPS_AUTH__TOKENS", tokens)];
    let (code, out) = run(&["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir], &env).await;
    assert_ne!(code, 0);
    assert!(out.contains("auth.tokens") && out.contains("--dev"), "{out}");
    // Turning authentication off from the environment is refused, naming the key.
    let env = [("DATABASE_URL", db.url.as_str()), ("MLOPS_DEV", "true")];
    let (code, out) = run(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir], &env).await;
    assert_ne!(code, 0);
    assert!(out.contains("dev: authentication can be turned off only with the --dev flag"), "{out}");
}

/// `kill -9` loses at most the capture records of the last flush interval: every record
/// captured more than one interval before the kill is on disk, as OPERATIONS.md §4 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_one_flush_interval_of_capture() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
    let mut server =
        Process::start(&serve, &[("MLOPS_CAPTURE__FLUSH_INTERVAL", "1s")], "mlops-orchestrator serving").await;
    let base = server.base().to_string();
    let http = reqwest::Client::new();
    let example = |file: &str| std::fs::read(repo(&format!("examples/breast-cancer/{file}"))).unwrap();
    let put = http.put(format!("{base}/v1/assets/models/breast-cancer/model.tar.gz")).body(example("model.tar.gz"));
    assert_eq!(put.send().await.unwrap().status(), 201);
    let provisioned = json_of(http.post(format!("{base}/provisionpipeline")).body(example("mlops-config.json"))).await;
    wait_active(&http, &base, provisioned["pipeline_id"].as_str().unwrap()).await;

    let invoke = |id: String| {
        http.post(format!("{base}/v1/endpoints/breast-cancer/invocations"))
            .header("content-type", "text/csv")
            .header("x-amzn-sagemaker-inference-id", id)
            .body(example("rows.csv"))
            .send()
    };
    for i in 0..100 {
        assert_eq!(invoke(format!("early-{i}")).await.unwrap().status(), 200);
    }
    // More than one flush interval: the early records have been flushed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in 0..50 {
        assert_eq!(invoke(format!("late-{i}")).await.unwrap().status(), 200);
    }
    let pid = server.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    server.child.wait().await.unwrap();

    let mut ids = Vec::new();
    let mut folders = vec![data.join("objects/datacapture/breast-cancer")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let record: Value = serde_json::from_str(line).unwrap();
                    ids.push(record["eventMetadata"]["inferenceId"].as_str().unwrap().to_string());
                }
            }
        }
    }
    for i in 0..100 {
        assert!(
            ids.contains(&format!("early-{i}")),
            "early-{i} was captured more than a flush interval before the kill"
        );
    }
    assert!(ids.len() <= 150 && ids.iter().all(|id| id.starts_with("early-") || id.starts_with("late-")), "{ids:?}");
}

/// `kill -9` between an event and its delivery loses nothing: the notification and its delivery
/// job were committed with the event's dispatch, so the restarted server delivers it — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_a_delivery_still_delivers_after_restart() {
    use crate::notifications::{Helper, SECRET};
    let dir = tempfile::tempdir().unwrap();
    let receiver = Helper::receiver(dir.path(), 0).await;
    // Down at first: every try fails, so the deliveries are pending when the server dies.
    let down = dir.path().join("webhooks.jsonl.down");
    std::fs::write(&down, "").unwrap();
    let config = dir.path().join("mlops.toml");
    std::fs::write(
        &config,
        format!("[[notifications.webhooks]]\nname = \"ops\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n", receiver.url()),
    )
    .unwrap();
    let data = dir.path().join("data");
    let serve = ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
    let env = [
        ("MLOPS_CONFIG", config.to_str().unwrap()),
        ("MLOPS_JOBS__RETRY_BASE", "200ms"),
        ("MLOPS_JOBS__RETRY_MAX", "400ms"),
        ("MLOPS_JOBS__LEASE", "4s"),
        ("MLOPS_JOBS__HEARTBEAT", "1s"),
    ];
    let mut server = Process::start(&serve, &env, "mlops-orchestrator serving").await;
    let base = server.base().to_string();
    let http = reqwest::Client::new();
    let example = |file: &str| std::fs::read(repo(&format!("examples/breast-cancer/{file}"))).unwrap();
    let put = http.put(format!("{base}/v1/assets/models/breast-cancer/model.tar.gz")).body(example("model.tar.gz"));
    assert_eq!(put.send().await.unwrap().status(), 201);
    let provisioned = json_of(http.post(format!("{base}/provisionpipeline")).body(example("mlops-config.json"))).await;
    wait_active(&http, &base, provisioned["pipeline_id"].as_str().unwrap()).await;
    let kinds = |lines: &[Value], outcome: &str| {
        let mut kinds: Vec<String> = lines
            .iter()
            .filter(|l| l["outcome"] == outcome)
            .map(|l| l["body"]["type"].as_str().unwrap_or("").to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    receiver.wait_for("failed tries of both notices", |l| kinds(l, "failed_on_purpose").len() == 2).await;

    let pid = server.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    server.child.wait().await.unwrap();
    assert!(receiver.accepted().is_empty());
    std::fs::remove_file(&down).unwrap();

    let server = Process::start(&serve, &env, "mlops-orchestrator serving").await;
    receiver.wait_for("both notices accepted", |l| kinds(l, "accepted").len() == 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let accepted = receiver.accepted();
    assert_eq!(kinds(&accepted, "accepted"), ["pipeline.active", "pipeline.provisioned"]);
    assert_eq!(accepted.len(), 2, "each delivered once: {accepted:#?}");
    server.terminate().await;
}
