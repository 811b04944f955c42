//! `byom_data_quality_monitor` on the local target, against a live endpoint: the baseline job on
//! deploy, run-now over captured traffic (clean, then shifted: exactly the shifted features
//! flagged), Model Monitor's files in the object store, events, the `/v1/monitors` resources, and
//! scheduled windows claimed exactly once however many replicas tick.

use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::server::{INVOKER, OPERATOR, VIEWER};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

const ANALYZER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/analyzer");
/// The breast-cancer model takes 30 features; the analyzer fixtures hold the first 10 (the rest
/// are sent as 0).
const FEATURES: usize = 30;

/// The rows of an analyzer fixture CSV (its 10 numeric features), padded to the model's width.
fn rows(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{ANALYZER}/{file}")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').take(10).collect();
            fields.resize(FEATURES, "0");
            fields.join(",")
        })
        .collect()
}

/// Invokes the endpoint with `rows`, seven per request; returns the predictions in order.
async fn invoke_all(server: &TestServer, rows: &[String]) -> Vec<String> {
    let mut predictions = Vec::new();
    for chunk in rows.chunks(7) {
        let response = server.invoke("churn-endpoint", "text/csv", chunk.join("\n"), INVOKER).await;
        assert_eq!(response.status(), 200);
        predictions.extend(response.text().await.unwrap().lines().map(str::to_string));
    }
    predictions
}

fn monitor_body() -> Value {
    json!({
        "pipeline_type": "byom_data_quality_monitor",
        "model_name": "churn",
        "endpoint_name": "churn-endpoint",
        "baseline_data": "monitor/baseline.csv",
        "baseline_job_output_location": "my-bucket/monitor/baseline",
        "data_capture_location": "my-bucket/datacapture/churn",
        "monitoring_output_location": "my-bucket/monitor/output",
        "schedule_expression": "cron(0 * ? * * *)",
        "instance_type": "ml.m5.large",
        "instance_volume_size": "20",
        "monitor_max_runtime_seconds": "1800"
    })
}

/// Captured traffic is written within a flush interval or two; waits until `count` records
/// are in the capture files.
async fn wait_for_capture(server: &TestServer, count: usize) {
    let root = server.db.dir.path().join("data/objects/my-bucket/datacapture/churn/churn-endpoint");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut lines = 0;
        for entry in walk(&root) {
            lines += std::fs::read_to_string(entry).map(|t| t.lines().count()).unwrap_or(0);
        }
        if lines >= count {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {lines} of {count} capture records were written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

async fn run_now(server: &TestServer, monitor: &str, start: &str, end: &str) -> Value {
    let response = server
        .post(&format!("/v1/monitors/{monitor}/executions"), OPERATOR)
        .json(&json!({"start_time": start, "end_time": end}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let execution: Value = response.json().await.unwrap();
    finished(server, monitor, execution["id"].as_str().unwrap()).await
}

async fn finished(server: &TestServer, monitor: &str, execution: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e: Value = server
            .get(&format!("/v1/monitors/{monitor}/executions/{execution}"), VIEWER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !matches!(e["state"].as_str(), Some("pending" | "running")) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "execution never finished: {e:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn a_data_quality_monitor_watches_a_live_endpoint(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/churn.json", "xgboost/binary_logistic.json").await;
    let id = server.provision(&realtime_body("churn", "models/churn.json")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;

    // The baseline: the model's answers on the baseline rows, answer first (Model Monitor's
    // START layout), with a header.
    let baseline_rows = rows("baseline.csv");
    let predictions = invoke_all(&server, &baseline_rows).await;
    let header: Vec<String> =
        std::iter::once("prediction".to_string()).chain((0..FEATURES).map(|i| format!("f{i}"))).collect();
    let mut csv = header.join(",") + "\n";
    for (p, r) in predictions.iter().zip(&baseline_rows) {
        csv.push_str(&format!("{p},{r}\n"));
    }
    assert_eq!(server.put_asset("monitor/baseline.csv", csv.into_bytes()).await.status(), 201);

    let monitor_pipeline = server.provision(&monitor_body()).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&monitor_pipeline, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["baseline_rows"], 569);
    let monitor_id = outputs["monitor_id"].as_str().unwrap().to_string();
    let objects = server.db.dir.path().join("data/objects");
    let baseline_job = outputs["baseline_job_name"].as_str().unwrap();
    let constraints: Value = serde_json::from_slice(
        &std::fs::read(objects.join(format!("my-bucket/monitor/baseline/{baseline_job}/constraints.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(constraints["features"].as_array().unwrap().len(), FEATURES + 1);

    let listed: Value = server.get("/v1/monitors", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"][0]["id"], monitor_id.as_str());
    assert_eq!(listed["items"][0]["schedule_expression"], "cron(0 * ? * * *)");
    assert_eq!(listed["items"][0]["monitor_type"], "data_quality");

    // Clean traffic (a resample of the baseline rows): nothing flagged. Capture times are to the
    // second: a second's pause keeps the baseline's own invocations out of the window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = now();
    invoke_all(&server, &rows("window_same.csv")).await;
    wait_for_capture(&server, (569usize.div_ceil(7)) * 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t1 = now();
    let clean = run_now(&server, &monitor_id, &iso(t0), &iso(t1)).await;
    assert_eq!(clean["state"], "completed", "{clean:#}");
    assert_eq!(clean["rows"], 569);
    assert_eq!(clean["violations"], json!([]));
    assert_eq!(clean["drift"].as_array().unwrap().len(), FEATURES + 1);

    // Shifted traffic: mean radius (f0), mean smoothness (f4) and mean symmetry (f8) moved.
    invoke_all(&server, &rows("window_shifted.csv")).await;
    wait_for_capture(&server, (569usize.div_ceil(7)) * 3).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let shifted = run_now(&server, &monitor_id, &iso(t1), &iso(now())).await;
    assert_eq!(shifted["state"], "completed_with_violations", "{shifted:#}");
    assert_eq!(shifted["rows"], 569);
    let mut flagged: Vec<&str> = shifted["violations"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|v| assert_eq!(v["constraint_check_type"], "baseline_drift_check", "{v}"))
        .map(|v| v["feature_name"].as_str().unwrap())
        .collect();
    flagged.sort();
    // The model's answer moves with its inputs and may be flagged too; no other input may be.
    flagged.retain(|f| *f != "prediction");
    assert_eq!(flagged, ["f0", "f4", "f8"], "{shifted:#}");
    let f0 = shifted["drift"].as_array().unwrap().iter().find(|d| d["feature"] == "f0").unwrap();
    assert_eq!(f0["method"], "linf_robust");
    assert!(f0["why"].as_str().unwrap().contains("above the threshold"), "{f0}");
    for file in shifted["files"].as_array().unwrap() {
        let path = objects.join(file.as_str().unwrap());
        let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(written.is_object(), "{}", path.display());
    }
    assert!(shifted["files"][1].as_str().unwrap().starts_with("my-bucket/monitor/output/churn-endpoint/"));
    let events = server.events(&monitor_pipeline).await;
    let violations: Vec<&Value> =
        events.as_array().unwrap().iter().filter(|e| e["kind"] == "monitor.violations").collect();
    assert_eq!(violations.len(), 1, "{events:#}");
    assert!(violations[0]["message"].as_str().unwrap().contains("f0 (baseline_drift_check)"));

    // A window in the future, or backwards, is refused naming the field.
    let refused = server
        .post(&format!("/v1/monitors/{monitor_id}/executions"), OPERATOR)
        .json(&json!({"start_time": iso(now()), "end_time": iso(now() - chrono::Duration::hours(1))}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/end_time");
    let executions: Value = server
        .get(&format!("/v1/monitors/{monitor_id}/executions"), VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(executions["items"].as_array().unwrap().len(), 2);
    assert_eq!(executions["items"][0]["id"], shifted["id"], "newest first");

    // Scheduled windows: two replicas tick at the same moment, one window is claimed.
    let monitor: Value =
        server.get(&format!("/v1/monitors/{monitor_id}"), VIEWER).send().await.unwrap().json().await.unwrap();
    let next_run: chrono::DateTime<chrono::Utc> = monitor["next_run_at"].as_str().unwrap().parse().unwrap();
    let (a, b) =
        (mlops::store::connect(&server.db.url).await.unwrap(), mlops::store::connect(&server.db.url).await.unwrap());
    let at = next_run + chrono::Duration::seconds(30);
    let delay = Duration::from_secs(10);
    let (x, y) =
        tokio::join!(mlops::jobs::schedules::tick(&a, at, delay, 3), mlops::jobs::schedules::tick(&b, at, delay, 3));
    assert_eq!(x.unwrap() + y.unwrap(), 1, "one replica claims the window");
    assert_eq!(mlops::jobs::schedules::tick(&a, at, delay, 3).await.unwrap(), 0, "and only once");
    let executions: Value = server
        .get(&format!("/v1/monitors/{monitor_id}/executions"), VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheduled = &executions["items"][0];
    assert_eq!(scheduled["origin"], "schedule");
    assert_eq!(scheduled["window_end"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(), next_run);
    assert_eq!(
        scheduled["window_start"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        next_run - chrono::Duration::hours(1),
        "an hourly schedule analyses the hour before it fires"
    );
    let done = finished(&server, &monitor_id, scheduled["id"].as_str().unwrap()).await;
    assert!(matches!(done["state"].as_str(), Some("completed" | "completed_with_violations")), "{done:#}");
    let monitor: Value =
        server.get(&format!("/v1/monitors/{monitor_id}"), VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        monitor["next_run_at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        next_run + chrono::Duration::hours(1)
    );
    a.close().await;
    b.close().await;
    server.stop().await;
}

on_both_stores!(a_data_quality_monitor_watches_a_live_endpoint);
