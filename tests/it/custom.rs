//! `byom_realtime_custom` on the local target: the committed fixture algorithm, built by the
//! image builder, serves a model under SageMaker's container contract as a child process; we
//! proxy and capture its invocations, keep its output as logs, restart it when it dies, refuse an
//! algorithm that never answers `/ping`, and stop it on teardown.

use crate::algorithms::{start_build, zip_folder};
use crate::on_both_stores;
use crate::support::api::fixture;
use crate::support::server::{ADMIN, INVOKER, VIEWER, test_settings};
use crate::support::{Db, TestDb, TestServer};
use crate::walkthrough::read_capture;
use serde_json::{Value, json};
use std::time::Duration;

/// A model archive holding `weights.json`, as the fixture algorithm reads it.
fn model_archive(model: &Value) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    let bytes = serde_json::to_vec(model).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "weights.json", bytes.as_slice()).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// Builds the fixture (without its requirements, to keep the test fast) as `mlops-custom:linear`.
pub(crate) async fn build(server: &TestServer) {
    let zip = zip_folder(&fixture("algorithms/linear"), &[], &["requirements.txt"]);
    assert_eq!(server.put_asset("algorithms/linear.zip", zip).await.status(), 201);
    let id = start_build(server, "algorithms/linear.zip", "mlops-custom", "linear").await;
    server.wait_for_longer(&id, "active").await;
}

/// Provisions a custom endpoint `name-endpoint` running `model`; returns the pipeline id.
pub(crate) async fn provision(server: &TestServer, name: &str, model: &Value) -> String {
    let key = format!("models/{name}/model.tar.gz");
    assert_eq!(server.put_asset(&key, model_archive(model)).await.status(), 201);
    let body = json!({
        "pipeline_type": "byom_realtime_custom",
        "model_name": name,
        // An ECR URI, as in the solution's configs: the registry host is ignored locally.
        "custom_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-custom:linear",
        "model_artifact_location": key,
        "inference_instance": "ml.m5.large",
        "data_capture_location": format!("my-bucket/capture/{name}"),
        "endpoint_name": format!("{name}-endpoint"),
    });
    server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string()
}

/// Processes whose command line mentions `needle`.
pub(crate) fn processes_mentioning(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(needle))
        .count()
}

/// The endpoint's logs once they hold every one of `expected` (the algorithm's output is read
/// every few milliseconds, not line by line); fails after 10 s.
async fn logs_with(server: &TestServer, endpoint: &str, expected: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let logs: Value =
            server.get(&format!("/v1/endpoints/{endpoint}/logs"), VIEWER).send().await.unwrap().json().await.unwrap();
        let lines = logs["lines"].to_string();
        if expected.iter().all(|e| lines.contains(e)) {
            return logs;
        }
        assert!(tokio::time::Instant::now() < deadline, "the logs never held all of {expected:?}: {logs:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_custom_endpoint_serves_captures_logs_and_stops(db: TestDb) {
    let server = TestServer::start(db).await;
    build(&server).await;
    let id = provision(&server, "linear", &json!({"weights": [1.0, 2.0, 3.0], "bias": 0.5})).await;
    let pipeline = server.wait_for(&id, "active").await;
    assert_eq!(pipeline["stages"][0]["outputs"]["algorithm"], "mlops-custom:linear");

    let ok = server.invoke("linear-endpoint", "text/csv", "1,2,3\n0,0,0".into(), INVOKER).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/csv");
    assert_eq!(ok.text().await.unwrap(), "14.5\n0.5\n");
    // The algorithm's own error is SageMaker's ModelError.
    let bad = server.invoke("linear-endpoint", "text/csv", "1,2".into(), INVOKER).await;
    assert_eq!(bad.status(), 424);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["code"], "model_error");
    assert!(problem["detail"].as_str().unwrap().contains("Received client error (400)"), "{problem:#}");

    let logs = logs_with(&server, "linear-endpoint", &["serve: listening on 127.0.0.1:", "POST /invocations"]).await;
    assert_eq!(logs["running_here"], true);
    // From the command line: the newest lines, the last one the last invocation's.
    let cli = crate::cli::mlops(&server, VIEWER, &["logs", "linear-endpoint", "--lines", "2"]).await;
    let printed: Vec<&str> = cli.ok().stdout.lines().collect();
    assert_eq!(printed.len(), 2, "{}", cli.stdout);
    assert!(printed[1].contains("POST /invocations"), "{}", cli.stdout);

    // A restarted replica starts the algorithm on the first invocation (in the background).
    let server = TestServer::start(server.stop().await).await;
    let home = server.db.dir.path().join("data").display().to_string();
    assert_eq!(processes_mentioning(&home), 0, "the stopped server's algorithm stopped with it");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.invoke("linear-endpoint", "text/csv", "1,1,1".into(), INVOKER).await;
        if response.status() == 200 {
            assert_eq!(response.text().await.unwrap(), "6.5\n");
            break;
        }
        assert_eq!(response.status(), 503, "{}", response.text().await.unwrap());
        assert!(tokio::time::Instant::now() < deadline, "the restarted replica never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_mentioning(&home), 1, "one algorithm process runs");
    // The stopped process wrote its algorithm's last lines to the database: any replica shows
    // them beside its own (here the same server after a restart, a process of another name).
    let logs = logs_with(&server, "linear-endpoint", &["POST /invocations"]).await;
    let (here, earlier) = (&logs["replica"], &logs["other_replicas"][0]);
    assert_ne!(earlier["replica"], *here, "{logs:#}");
    let earlier_lines = earlier["lines"].as_array().unwrap();
    // The refused invocation was the earlier process's.
    let refused = "/invocations HTTP/1.1\" 400";
    assert!(earlier_lines.iter().any(|l| l.as_str().unwrap().contains(refused)), "{logs:#}");
    let own = logs["lines"].as_array().unwrap();
    assert!(!own.iter().any(|l| l.as_str().unwrap().contains(refused)), "this process's own lines: {logs:#}");
    let cli = crate::cli::mlops(&server, VIEWER, &["logs", "linear-endpoint"]).await;
    cli.ok()
        .stdout_has(&format!("==> replica {} (this one) <==\n", here.as_str().unwrap()))
        .stdout_has(&format!("==> replica {} (as of ", earlier["replica"].as_str().unwrap()));
    let deleted =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(ADMIN).send().await.unwrap();
    assert!(deleted.status().is_success());
    server.wait_for(&id, "deleted").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while processes_mentioning(&home) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the algorithm still runs after teardown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let capture = server.db.dir.path().join("data/objects/my-bucket/capture/linear/linear-endpoint/AllTraffic");
    let _db = server.stop().await; // keeps the data directory until the end
    let records = read_capture(&capture);
    assert_eq!(records.len(), 2, "the successful invocations are captured: {records:#?}");
    let first = records.iter().find(|r| r["captureData"]["endpointInput"]["data"] == "1,2,3\n0,0,0").expect("first");
    let data = &first["captureData"];
    assert_eq!(data["endpointInput"]["data"], "1,2,3\n0,0,0");
    assert_eq!(data["endpointOutput"]["data"], "14.5\n0.5\n");
    assert_eq!(data["endpointOutput"]["observedContentType"], "text/csv");
}

/// An algorithm that dies is restarted (503 with `Retry-After` meanwhile) and serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_algorithm_is_restarted() {
    let server = TestServer::start(TestDb::new(Db::Sqlite).await).await;
    build(&server).await;
    let id = provision(&server, "fragile", &json!({"weights": [2.0], "bias": 0.0, "crash_after": 2})).await;
    server.wait_for(&id, "active").await;
    for _ in 0..2 {
        let ok = server.invoke("fragile-endpoint", "text/csv", "3".into(), INVOKER).await;
        assert_eq!(ok.text().await.unwrap(), "6.0\n");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut unavailable = 0;
    loop {
        let response = server.invoke("fragile-endpoint", "text/csv", "3".into(), INVOKER).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503, "{}", response.text().await.unwrap());
        assert_eq!(response.headers()["retry-after"], "1");
        unavailable += 1;
        assert!(tokio::time::Instant::now() < deadline, "the algorithm was never restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unavailable > 0, "the restart took some time");
    let logs = logs_with(&server, "fragile-endpoint", &["crashing after 2 invocations", "the algorithm exited"]).await;
    assert!(logs["restarts"].as_u64().unwrap() >= 1, "{logs:#}");
    server.stop().await;
}

/// More invocations of one endpoint at once than `serving.max_concurrent_invocations` are
/// answered 429 with `Retry-After`, not queued; the others are served, and a made-up
/// endpoint name is a 404 whatever the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_endpoint_answers_429_at_once() {
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.serving.max_concurrent_invocations = 2;
    let server = TestServer::start_with(db, settings).await;
    build(&server).await;
    let id = provision(&server, "slow", &json!({"weights": [1.0], "bias": 0.0, "delay_seconds": 1.5})).await;
    server.wait_for(&id, "active").await;

    let calls = (0..5).map(|_| server.invoke("slow-endpoint", "text/csv", "4".into(), INVOKER));
    let (mut served, mut refused) = (0, 0);
    for response in futures::future::join_all(calls).await {
        match response.status().as_u16() {
            200 => {
                assert_eq!(response.text().await.unwrap(), "4.0\n");
                served += 1;
            }
            429 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(response.headers()["content-type"], "application/problem+json");
                let problem: Value = response.json().await.unwrap();
                assert!(problem["detail"].as_str().unwrap().contains("max_concurrent_invocations"), "{problem}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!((served, refused), (2, 3), "two slots, five callers");
    let ok = server.invoke("slow-endpoint", "text/csv", "5".into(), INVOKER).await;
    assert_eq!(ok.status(), 200, "the slots are free again");
    for _ in 0..3 {
        let missing = server.invoke("made-up-endpoint", "text/csv", "1".into(), INVOKER).await;
        assert_eq!(missing.status(), 404);
    }
    server.stop().await;
}

/// An algorithm whose output is not text, in lines longer than a pipe holds, keeps serving:
/// its output is read on (kept as U+FFFD, in pieces), so it never blocks on a full pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_writing_binary_noise_keeps_serving() {
    let server = TestServer::start(TestDb::new(Db::Sqlite).await).await;
    build(&server).await;
    let id = provision(&server, "noisy", &json!({"weights": [2.0], "bias": 0.0, "noise_bytes": 100_000})).await;
    server.wait_for(&id, "active").await;
    for _ in 0..5 {
        let ok = server.invoke("noisy-endpoint", "text/csv", "3".into(), INVOKER).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "6.0\n");
    }
    let logs = logs_with(&server, "noisy-endpoint", &["\u{fffd}\u{fffd}\u{fffd}"]).await;
    let longest = logs["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().chars().count()).max();
    assert_eq!(longest, Some(16 * 1024), "500,000 bytes of noise kept in 16 KiB pieces");
    server.stop().await;
}

/// Waits until `count` processes mention `needle`; fails after 10 s.
async fn until_processes_mentioning(needle: &str, count: usize, why: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while processes_mentioning(needle) != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: {} processes, not {count}",
            processes_mentioning(needle)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What an algorithm starts (a real container's `serve` starts nginx and gunicorn) stops with it:
/// when it crashes and is restarted, and when its endpoint is torn down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_s_own_processes_stop_with_it() {
    let server = TestServer::start(TestDb::new(Db::Sqlite).await).await;
    build(&server).await;
    let model = json!({"weights": [2.0], "bias": 0.0, "crash_after": 2, "spawn_helper": true});
    let id = provision(&server, "parent", &model).await;
    server.wait_for(&id, "active").await;
    let home = server.db.dir.path().join("data").display().to_string();
    until_processes_mentioning(&home, 2, "serve and its helper").await;
    for _ in 0..2 {
        let ok = server.invoke("parent-endpoint", "text/csv", "3".into(), INVOKER).await;
        assert_eq!(ok.text().await.unwrap(), "6.0\n");
    }
    // It crashed after the second answer; once it serves again, its first helper is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.invoke("parent-endpoint", "text/csv", "3".into(), INVOKER).await.status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "the algorithm was never restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_processes_mentioning(&home, 2, "the restarted serve and its own helper only").await;
    let deleted =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(ADMIN).send().await.unwrap();
    assert!(deleted.status().is_success());
    server.wait_for(&id, "deleted").await;
    until_processes_mentioning(&home, 0, "nothing of the algorithm after teardown").await;
    server.stop().await;
}

/// `Cpus_allowed_list` of process (or thread) `pid` (`self` for this process), as /proc shows it.
fn cpus_allowed(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    line.split_whitespace().last().unwrap().to_string()
}

/// With `serving.algorithm_cpus`, the algorithm and every process it starts run on those CPUs
/// only, from their start; the server itself stays where it was.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_runs_on_the_cpus_configured() {
    let everywhere = cpus_allowed("self");
    // The last CPU this process may use: on a machine of several, fewer than all of them.
    let last = everywhere.rsplit([',', '-']).next().unwrap().to_string();
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.serving.algorithm_cpus = Some(mlops::serving::cpus::CpuList::parse(&last).unwrap());
    let server = TestServer::start_with(db, settings).await;
    build(&server).await;
    let id = provision(&server, "pinned", &json!({"weights": [2.0], "bias": 0.0, "spawn_helper": true})).await;
    server.wait_for(&id, "active").await;
    let home = server.db.dir.path().join("data").display().to_string();
    until_processes_mentioning(&home, 2, "serve and its helper").await;
    let ok = server.invoke("pinned-endpoint", "text/csv", "3".into(), INVOKER).await;
    assert_eq!(ok.text().await.unwrap(), "6.0\n");
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let cmdline = std::fs::read(path.join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline).contains(&home).then(|| path.file_name()?.to_str().map(String::from))?
        })
        .collect();
    assert_eq!(pids.len(), 2, "serve and its helper");
    for pid in &pids {
        assert_eq!(cpus_allowed(pid), last, "process {pid} of the algorithm");
    }
    // The server runs in this process: none of its threads was pinned along the way.
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let tid = task.unwrap().file_name().into_string().unwrap();
        assert_eq!(cpus_allowed(&format!("self/task/{tid}")), everywhere, "thread {tid}");
    }
    server.stop().await;
}

/// An algorithm that never answers `/ping` fails the deploy, with its output, and leaves no
/// process behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_that_never_answers_ping_fails_the_deploy() {
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.serving.custom_start_timeout = Duration::from_secs(2);
    let server = TestServer::start_with(db, settings).await;
    build(&server).await;
    let id = provision(&server, "mute", &json!({"weights": [1.0], "bias": 0.0, "never_ready": true})).await;
    let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("did not answer GET /ping with 200 within 2s"), "{error}");
    assert!(error.contains("serve: listening"), "the algorithm's output is in the error: {error}");
    let home = server.db.dir.path().join("data").display().to_string();
    assert_eq!(processes_mentioning(&home), 0);
    server.stop().await;
}

/// `byom_batch_custom`: every object under the prefix goes through the algorithm in mini-batches
/// of whole lines; its answers are the `.out` files. A record it refuses fails the pipeline
/// naming the file and lines. The algorithm runs only while the transform does.
async fn a_custom_batch_transform_runs_the_algorithm(db: TestDb) {
    let server = TestServer::start(db).await;
    build(&server).await;
    let key = "models/linear-batch/model.tar.gz";
    let archive = model_archive(&json!({"weights": [1.0, 2.0, 3.0], "bias": 0.5}));
    assert_eq!(server.put_asset(key, archive).await.status(), 201);
    assert_eq!(server.put_asset("batch/custom/a.csv", b"1,2,3\r\n\n0,0,0\n".to_vec()).await.status(), 201);
    assert_eq!(server.put_asset("batch/custom/more/b.csv", b"1,1,1".to_vec()).await.status(), 201);
    assert_eq!(server.put_asset("batch/bad/c.csv", b"1,1,1\n1,2\n".to_vec()).await.status(), 201);
    let body = |name: &str, input: &str| {
        json!({
            "pipeline_type": "byom_batch_custom",
            "model_name": name,
            "custom_image_uri": "mlops-custom:linear",
            "model_artifact_location": key,
            "inference_instance": "ml.m5.large",
            "batch_inference_data": input,
            "batch_job_output_location": format!("results/{name}"),
        })
    };
    let id = server.provision(&body("linear-batch", "assets/batch/custom")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pipeline = server.wait_for(&id, "active").await;
    assert_eq!(pipeline["stages"][0]["outputs"]["rows"], 3);
    let out = server.db.dir.path().join("data/objects/results/linear-batch");
    assert_eq!(std::fs::read_to_string(out.join("a.csv.out")).unwrap(), "14.5\n0.5\n");
    assert_eq!(std::fs::read_to_string(out.join("more/b.csv.out")).unwrap(), "6.5\n");
    let home = server.db.dir.path().join("data").display().to_string();
    assert_eq!(processes_mentioning(&home), 0, "the algorithm stopped with the transform");

    let id =
        server.provision(&body("linear-bad", "assets/batch/bad")).await["pipeline_id"].as_str().unwrap().to_string();
    let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("assets/batch/bad/c.csv: lines 1-2: the algorithm answered 400: bad row"), "{error}");
    assert!(!server.db.dir.path().join("data/objects/results/linear-bad/c.csv.out").exists());
    server.stop().await;
}

on_both_stores!(a_custom_endpoint_serves_captures_logs_and_stops, a_custom_batch_transform_runs_the_algorithm);

/// dev → staging → prod with a custom algorithm, real-time and batch: each later stage waits for
/// its approval and then runs the model the first stage ran, even after the asset changed.
async fn custom_types_promote_through_environments(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.environments = vec!["dev".into(), "staging".into(), "prod".into()];
    let server = TestServer::start_with(db, settings).await;
    build(&server).await;
    let key = "models/promoted/model.tar.gz";
    let archive = model_archive(&json!({"weights": [1.0, 1.0], "bias": 0.0}));
    assert_eq!(server.put_asset(key, archive).await.status(), 201);
    for env in ["dev", "staging", "prod"] {
        assert_eq!(server.put_asset(&format!("batch/{env}/in.csv"), b"1,2\n3,4\n".to_vec()).await.status(), 201);
    }
    let realtime = json!({
        "pipeline_type": "byom_realtime_custom",
        "model_name": "promoted",
        "custom_image_uri": "mlops-custom:linear",
        "model_artifact_location": key,
        "inference_instance": "ml.m5.large",
        "data_capture_location": "my-bucket/capture/promoted",
        "endpoint_name": "promoted-endpoint",
    });
    let batch = json!({
        "pipeline_type": "byom_batch_custom",
        "model_name": "promoted-batch",
        "custom_image_uri": "mlops-custom:linear",
        "model_artifact_location": key,
        "inference_instance": "ml.m5.large",
        "batch_inference_data": {"dev": "assets/batch/dev", "staging": "assets/batch/staging", "prod": "assets/batch/prod"},
        "batch_job_output_location": {"dev": "out/dev", "staging": "out/staging", "prod": "out/prod"},
    });
    let mut ids = Vec::new();
    for body in [&realtime, &batch] {
        let id = server.provision(body).await["pipeline_id"].as_str().unwrap().to_string();
        server.wait_for(&id, "awaiting_approval").await;
        ids.push(id);
    }
    // A changed asset after dev ran does not reach the later stages.
    let changed = model_archive(&json!({"weights": [10.0, 10.0], "bias": 0.0}));
    assert_eq!(server.put_asset(key, changed).await.status(), 201);
    for id in &ids {
        server.approve_staging_and_prod(id).await;
    }
    for env in ["dev", "staging", "prod"] {
        let ok = server.invoke(&format!("{env}.promoted-endpoint"), "text/csv", "1,2".into(), INVOKER).await;
        assert_eq!(ok.text().await.unwrap(), "3.0\n", "{env} runs dev's model");
        let out = server.db.dir.path().join(format!("data/objects/out/{env}/in.csv.out"));
        assert_eq!(std::fs::read_to_string(out).unwrap(), "3.0\n7.0\n", "{env} transformed with dev's model");
    }
    server.stop().await;
}

on_both_stores!(custom_types_promote_through_environments);
