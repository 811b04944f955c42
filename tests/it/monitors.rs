//! `byom_data_quality_monitor` on the local target, against a live endpoint: the baseline job on
//! deploy, run-now over captured traffic (clean, then shifted: exactly the shifted features
//! flagged), Model Monitor's files in the object store, events, the `/v1/monitors` resources, and
//! scheduled windows claimed exactly once however many replicas tick.

use crate::analyzer_formats::{assert_refused, assert_valid};
use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::server::{INVOKER, OPERATOR, VIEWER};
use crate::support::{Db, TestDb, TestServer};
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

/// GET as a viewer, the body as JSON.
async fn get_json(server: &TestServer, path: &str) -> Value {
    server.get(path, VIEWER).send().await.unwrap().json().await.unwrap()
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
        let e: Value = get_json(server, &format!("/v1/monitors/{monitor}/executions/{execution}")).await;
        if !matches!(e["state"].as_str(), Some("pending" | "running")) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "execution never finished: {e:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fires the monitor's schedule once (a replica's tick just after `next_run_at`) and waits for
/// the execution it claims: the hour before the schedule fired, analysed as a run-now window is.
async fn scheduled_execution(server: &TestServer, monitor: &str) -> Value {
    let record: Value = get_json(server, &format!("/v1/monitors/{monitor}")).await;
    let next_run: chrono::DateTime<chrono::Utc> = record["next_run_at"].as_str().unwrap().parse().unwrap();
    let store = mlops::store::connect(&server.db.url).await.unwrap();
    let at = next_run + chrono::Duration::seconds(30);
    let claimed = mlops::jobs::schedules::tick(&store, at, Duration::from_secs(10), 3).await.unwrap();
    store.close().await;
    assert!(claimed >= 1, "the schedule fired no execution of {monitor}");
    let executions: Value = get_json(server, &format!("/v1/monitors/{monitor}/executions")).await;
    let scheduled = executions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["origin"] == "schedule")
        .unwrap_or_else(|| panic!("no scheduled execution: {executions:#}"))
        .clone();
    let window_end: chrono::DateTime<chrono::Utc> = scheduled["window_end"].as_str().unwrap().parse().unwrap();
    assert_eq!(window_end, next_run);
    finished(server, monitor, scheduled["id"].as_str().unwrap()).await
}

/// Whether the scheduled `execution`'s window holds all of `[from, to)` (a run that crossed a
/// full hour splits its traffic between two windows).
fn window_holds(execution: &Value, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> bool {
    let at = |key: &str| execution[key].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    at("window_start") <= from && to <= at("window_end")
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A server with `churn-endpoint` serving the breast-cancer XGBoost fixture (capture on).
async fn live_endpoint(db: TestDb) -> TestServer {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/churn.json", "xgboost/binary_logistic.json").await;
    let body = realtime_body("churn", "models/churn.json");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    server
}

async fn a_data_quality_monitor_watches_a_live_endpoint(db: TestDb) {
    let server = live_endpoint(db).await;

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

    let listed: Value = get_json(&server, "/v1/monitors").await;
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

    // People are told of violations once while they persist: the same window again finds the
    // same violations, and no second notification goes out.
    let again = run_now(&server, &monitor_id, &iso(t1), &iso(now())).await;
    assert_eq!(again["state"], "completed_with_violations");
    let events = server.events(&monitor_pipeline).await;
    let details: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "monitor.violations")
        .map(|e| &e["details"]["repeated"])
        .collect();
    assert_eq!(details, [&json!(false), &json!(true)], "{events:#}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let told = loop {
        let told = crate::notifications::notifications(&server, "?kind=monitor.violations").await;
        if !told.is_empty() {
            break told;
        }
        assert!(tokio::time::Instant::now() < deadline, "no violation notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Longer than the dispatch interval (1 s): the repeat's event has been dispatched too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(crate::notifications::notifications(&server, "?kind=monitor.violations").await.len(), 1);
    let data = &told[0]["body"]["data"];
    assert_eq!(data["execution_id"], shifted["id"]);
    assert!(told[0]["body"]["text"].as_str().unwrap().contains("f0"), "{told:#?}");

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
    let executions: Value = get_json(&server, &format!("/v1/monitors/{monitor_id}/executions")).await;
    assert_eq!(executions["items"].as_array().unwrap().len(), 3);
    assert_eq!(executions["items"][0]["id"], again["id"], "newest first");

    // Scheduled windows: two replicas tick at the same moment, one window is claimed.
    let monitor: Value = get_json(&server, &format!("/v1/monitors/{monitor_id}")).await;
    let next_run: chrono::DateTime<chrono::Utc> = monitor["next_run_at"].as_str().unwrap().parse().unwrap();
    let (a, b) =
        (mlops::store::connect(&server.db.url).await.unwrap(), mlops::store::connect(&server.db.url).await.unwrap());
    let at = next_run + chrono::Duration::seconds(30);
    let delay = Duration::from_secs(10);
    let (x, y) =
        tokio::join!(mlops::jobs::schedules::tick(&a, at, delay, 3), mlops::jobs::schedules::tick(&b, at, delay, 3));
    assert_eq!(x.unwrap() + y.unwrap(), 1, "one replica claims the window");
    assert_eq!(mlops::jobs::schedules::tick(&a, at, delay, 3).await.unwrap(), 0, "and only once");
    let executions: Value = get_json(&server, &format!("/v1/monitors/{monitor_id}/executions")).await;
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
    let monitor: Value = get_json(&server, &format!("/v1/monitors/{monitor_id}")).await;
    assert_eq!(
        monitor["next_run_at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        next_run + chrono::Duration::hours(1)
    );
    a.close().await;
    b.close().await;
    server.stop().await;
}

on_both_stores!(a_data_quality_monitor_watches_a_live_endpoint);

/// The CSV rows and labels of a `model_quality.json` case.
fn rows_and_labels(case: &Value) -> (Vec<String>, Vec<String>) {
    let rows = case["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","))
        .collect();
    let labels = case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    (rows, labels)
}

/// One request per row, with inference ids `<prefix>-<row>` (what ground truth joins on).
async fn invoke_with_ids(server: &TestServer, rows: &[String], prefix: &str) {
    for (i, row) in rows.iter().enumerate() {
        let response = server
            .http
            .post(server.url("/v1/endpoints/churn-endpoint/invocations"))
            .bearer_auth(INVOKER)
            .header("content-type", "text/csv")
            .header("x-amzn-sagemaker-inference-id", format!("{prefix}-{i}"))
            .body(row.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// `byom_model_quality_monitor` on a live endpoint: the baseline's metrics and an execution's
/// over captured predictions joined with ground truth posted through the API (by inference id,
/// sent twice: idempotent) equal scikit-learn's; a window with worse labels violates the
/// suggested constraints.
async fn a_model_quality_monitor_joins_ground_truth(db: TestDb) {
    let server = live_endpoint(db).await;
    let case: Value =
        serde_json::from_slice(&std::fs::read(format!("{ANALYZER}/model_quality.json")).unwrap()).unwrap();
    let case = &case["endpoint_binary"];
    let (rows, labels) = rows_and_labels(case);
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();

    // The baseline: the endpoint's answers on the rows, with the labels.
    let probabilities = invoke_all(&server, &rows).await;
    let mut csv = "label,prediction,probability\n".to_string();
    for (p, label) in probabilities.iter().zip(&labels) {
        let predicted = if p.parse::<f64>().unwrap() >= 0.5 { 1 } else { 0 };
        csv.push_str(&format!("{label},{predicted},{p}\n"));
    }
    assert_eq!(server.put_asset("monitor/mq-baseline.csv", csv.into_bytes()).await.status(), 201);
    let body = json!({
        "pipeline_type": "byom_model_quality_monitor",
        "model_name": "churn",
        "endpoint_name": "churn-endpoint",
        "baseline_data": "monitor/mq-baseline.csv",
        "baseline_job_output_location": "my-bucket/monitor/mq-baseline",
        "data_capture_location": "my-bucket/datacapture/churn",
        "monitoring_output_location": "my-bucket/monitor/mq-output",
        "schedule_expression": "cron(0 * ? * * *)",
        "instance_type": "ml.m5.large",
        "instance_volume_size": "20",
        "monitor_max_runtime_seconds": "1800",
        "problem_type": "BinaryClassification",
        "baseline_inference_attribute": "prediction",
        "baseline_probability_attribute": "probability",
        "baseline_ground_truth_attribute": "label",
        "monitor_probability_attribute": "0",
        "probability_threshold_attribute": "0.5",
        "monitor_ground_truth_input": "my-bucket/monitor/groundtruth",
    });
    let monitor_pipeline = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let outputs = server.wait_for(&monitor_pipeline, "active").await["stages"][0]["outputs"].clone();
    let monitor_id = outputs["monitor_id"].as_str().unwrap().to_string();
    let objects = server.db.dir.path().join("data/objects");
    let read = |path: &str| -> Value { serde_json::from_slice(&std::fs::read(objects.join(path)).unwrap()).unwrap() };
    let baseline = read(outputs["baseline_statistics"].as_str().unwrap());
    let expected = case["metrics"].as_object().unwrap();
    for (name, want) in expected {
        let got = baseline["binary_classification_metrics"][name]["value"].as_f64().unwrap();
        assert!((got - want.as_f64().unwrap()).abs() < 1e-9, "baseline {name}: ours {got}, scikit-learn {want}");
    }

    // Traffic with inference ids, then their labels (sent twice).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = now();
    invoke_with_ids(&server, &rows, "row").await;
    let baseline_records = rows.len().div_ceil(7);
    wait_for_capture(&server, baseline_records + rows.len()).await;
    let truth = truth_lines(&labels, "row");
    for _ in 0..2 {
        let posted = server.post("/v1/ground-truth/churn-endpoint", INVOKER).body(truth.clone()).send().await.unwrap();
        assert_eq!(posted.status(), 202, "{}", posted.text().await.unwrap());
    }
    let bad = server
        .post("/v1/ground-truth/churn-endpoint", INVOKER)
        .body("{\"groundTruthData\": {}}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = server.post("/v1/ground-truth/nope", INVOKER).body(truth.clone()).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t1 = now();
    let clean = run_now(&server, &monitor_id, &iso(t0), &iso(t1)).await;
    assert_eq!(clean["state"], "completed", "{clean:#}");
    assert_eq!(clean["rows"], rows.len());
    let statistics = read(clean["files"][0].as_str().unwrap());
    for (name, want) in expected {
        let got = statistics["binary_classification_metrics"][name]["value"].as_f64().unwrap();
        assert!((got - want.as_f64().unwrap()).abs() < 1e-9, "window {name}: ours {got}, scikit-learn {want}");
    }
    let execution: Value =
        get_json(&server, &format!("/v1/monitors/{monitor_id}/executions/{}", clean["id"].as_str().unwrap())).await;
    assert_eq!(execution["rows"], rows.len());
    assert_eq!(execution["labelled_records"], rows.len());
    assert_eq!(execution["merge_rate"], 1.0, "every prediction has its label");
    assert!(execution["label_delay_seconds"].as_i64().unwrap() >= 0);

    // A worse window: the same predictions, every other label flipped.
    invoke_with_ids(&server, &rows, "worse").await;
    wait_for_capture(&server, baseline_records + 2 * rows.len()).await;
    let flipped: Vec<&str> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| if i % 2 == 0 { if *l == "1" { "0" } else { "1" } } else { l })
        .collect();
    let worse = truth_lines(&flipped, "worse");
    let posted = server.post("/v1/ground-truth/churn-endpoint", INVOKER).body(worse).send().await.unwrap();
    assert_eq!(posted.status(), 202);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bad_window = run_now(&server, &monitor_id, &iso(t1), &iso(now())).await;
    assert_eq!(bad_window["state"], "completed_with_violations", "{bad_window:#}");
    let f1 = bad_window["violations"].as_array().unwrap().iter().find(|v| v["feature_name"] == "f1").expect("f1 fell");
    assert_eq!(f1["constraint_check_type"], "LessThanThreshold");
    assert!(f1["description"].as_str().unwrap().starts_with("Metric f1 with "), "{f1}");
    server.stop().await;
}

on_both_stores!(a_model_quality_monitor_joins_ground_truth);

/// `byom_model_explainability_monitor` on a live endpoint: the baseline explains the baseline
/// rows with Kernel SHAP through the endpoint's model and writes Clarify's `analysis.json`; a
/// window of the same traffic keeps the ranking (nDCG 1), a window whose most important features
/// are pinned to the SHAP baseline loses it and is flagged.
async fn an_explainability_monitor_ranks_the_features_of_live_traffic(db: TestDb) {
    let server = live_endpoint(db).await;
    let baseline_rows: Vec<String> = rows("baseline.csv").into_iter().take(120).collect();
    let parsed: Vec<Vec<f64>> =
        baseline_rows.iter().map(|r| r.split(',').map(|f| f.parse().unwrap()).collect()).collect();
    let mean: Vec<f64> =
        (0..FEATURES).map(|j| parsed.iter().map(|r| r[j]).sum::<f64>() / parsed.len() as f64).collect();
    let header: Vec<String> =
        std::iter::once("label".to_string()).chain((0..FEATURES).map(|i| format!("f{i}"))).collect();
    let mut csv = header.join(",") + "\n";
    for r in &baseline_rows {
        csv.push_str(&format!("0,{r}\n"));
    }
    assert_eq!(server.put_asset("monitor/explain-baseline.csv", csv.into_bytes()).await.status(), 201);
    let mut body = monitor_body();
    body["pipeline_type"] = json!("byom_model_explainability_monitor");
    body["baseline_data"] = json!("monitor/explain-baseline.csv");
    body["problem_type"] = json!("BinaryClassification");
    body["monitor_inference_attribute"] = json!("0");
    body["model_scores"] = json!(0);
    body["shap_config"] = json!({"baseline": [mean], "num_samples": 400, "seed": 7, "agg_method": "mean_abs"});
    let monitor_pipeline = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&monitor_pipeline, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["baseline_rows"], 120, "{outputs:#}");
    let monitor_id = outputs["monitor_id"].as_str().unwrap().to_string();
    let objects = server.db.dir.path().join("data/objects");
    let text = std::fs::read_to_string(objects.join(outputs["baseline_analysis"].as_str().unwrap())).unwrap();
    let analysis: Value = serde_json::from_str(&text).unwrap();
    assert_valid("model-explainability-analysis", &analysis);
    let mut damaged = analysis.clone();
    damaged["explanations"]["kernel_shap"]["label0"].as_object_mut().unwrap().remove("expected_value");
    assert_refused("model-explainability-analysis", &damaged);
    let label0 = &analysis["explanations"]["kernel_shap"]["label0"];
    let global = label0["global_shap_values"].as_object().unwrap();
    assert_eq!(global.len(), FEATURES);
    // Written in header order, as Clarify writes them.
    let positions: Vec<usize> = header[1..].iter().map(|h| text.find(&format!("\"{h}\":")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "features in header order:\n{text}");
    // The base value is the model's answer on the SHAP baseline row.
    let mean_row = mean.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let t_mean = now() - chrono::Duration::seconds(1);
    let at_mean: f64 = invoke_all(&server, &[mean_row]).await[0].parse().unwrap();
    assert!((label0["expected_value"].as_f64().unwrap() - at_mean).abs() < 1e-6, "{label0}");
    let mut ranked: Vec<(&String, f64)> = global.iter().map(|(k, v)| (k, v.as_f64().unwrap())).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert!(ranked[0].1 > 0.0 && ranked.iter().all(|(_, v)| *v >= 0.0), "{ranked:?}");

    // The same traffic: the same ranking.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = now();
    invoke_all(&server, &baseline_rows).await;
    wait_for_capture(&server, 120usize.div_ceil(7) + 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t1 = now();
    let same = run_now(&server, &monitor_id, &iso(t0), &iso(t1)).await;
    assert_eq!(same["state"], "completed", "{same:#}");
    assert_eq!(same["rows"], 120);
    assert_eq!(same["violations"], json!([]));
    assert!((same["ndcg"]["label0"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{same:#}");

    // The three most important features pinned at the SHAP baseline: they explain nothing now.
    let top: Vec<usize> = ranked[..3].iter().map(|(k, _)| k[1..].parse().unwrap()).collect();
    let pinned: Vec<String> = parsed
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for &j in &top {
                r[j] = mean[j];
            }
            r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
        })
        .collect();
    invoke_all(&server, &pinned).await;
    wait_for_capture(&server, 120usize.div_ceil(7) * 2 + 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let drifted = run_now(&server, &monitor_id, &iso(t1), &iso(now())).await;
    assert_eq!(drifted["state"], "completed_with_violations", "{drifted:#}");
    let violation = &drifted["violations"][0];
    assert_eq!(violation["constraint_check_type"], "feature_attribution_drift_check");
    assert_eq!(violation["feature_name"], "label0", "a violation names its label");
    assert!(drifted["ndcg"]["label0"].as_f64().unwrap() < 0.9, "{drifted:#}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(objects.join(drifted["files"][1].as_str().unwrap())).unwrap()).unwrap();
    assert_valid("model-explainability-violations", &written);
    let mut damaged = written.clone();
    damaged["violations"][0]["metric_name"] = json!("lime");
    assert_refused("model-explainability-violations", &damaged);
    let window: Value =
        serde_json::from_slice(&std::fs::read(objects.join(drifted["files"][0].as_str().unwrap())).unwrap()).unwrap();
    assert_valid("model-explainability-analysis", &window);
    let entry = &written["violations"][0];
    assert_eq!(entry["constraint_check_type"], "feature_attribution_drift_check");
    assert_eq!((entry["label"].as_str(), entry["metric_name"].as_str()), (Some("label0"), Some("shap")));
    assert!(entry["description"].as_str().unwrap().starts_with("Feature attribution drift 0."), "{entry}");

    // Exact TreeSHAP instead (ours, beyond Clarify): the same monitor re-provisioned with
    // `algorithm: tree` explains in margin space, deterministically; the same traffic again
    // keeps its ranking.
    body["shap_config"]["algorithm"] = json!("forest");
    let bad = server.post("/v1/pipelines?dry_run=true", OPERATOR).json(&body).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/shap_config/algorithm", "{problem:#}");
    body["shap_config"]["algorithm"] = json!("tree");
    server.provision(&body).await;
    let pipeline = server.wait_until(&monitor_pipeline, |p| p["version"] == 2 && p["state"] == "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    let text = std::fs::read_to_string(objects.join(outputs["baseline_analysis"].as_str().unwrap())).unwrap();
    let tree: Value = serde_json::from_str(&text).unwrap();
    assert_valid("model-explainability-analysis", &tree);
    let label0 = &tree["explanations"]["tree_shap"]["label0"];
    assert_eq!(label0["global_shap_values"].as_object().unwrap().len(), FEATURES, "{text}");
    let monitor_id = outputs["monitor_id"].as_str().unwrap().to_string();
    let again = run_now(&server, &monitor_id, &iso(t0), &iso(t1)).await;
    assert_eq!(again["state"], "completed", "{again:#}");
    assert!((again["ndcg"]["label0"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{again:#}");

    // The schedule fires: the hour before it, with the clean and the pinned traffic in it, and
    // the three pinned features' attributions halved at most: the ranking drifted.
    let scheduled = scheduled_execution(&server, &monitor_id).await;
    assert!(matches!(scheduled["state"].as_str(), Some("completed" | "completed_with_violations")), "{scheduled:#}");
    if window_holds(&scheduled, t_mean, now()) {
        assert_eq!(scheduled["rows"], 241, "the mean row, the clean and the pinned traffic: {scheduled:#}");
        assert!(scheduled["ndcg"]["label0"].as_f64().unwrap() < 1.0, "{scheduled:#}");
    }
    server.stop().await;
}

on_both_stores!(an_explainability_monitor_ranks_the_features_of_live_traffic);

/// Ground-truth records for `labels`, by inference ids `<prefix>-<i>`.
fn truth_lines(labels: &[&str], prefix: &str) -> String {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"groundTruthData": {"data": l, "encoding": "CSV"}, "eventMetadata": {"eventId": format!("{prefix}-{i}")}, "eventVersion": "0"}).to_string() + "\n")
        .collect()
}

/// A binary bias monitor of `churn-endpoint` on `baseline`, the facet `facet` > `threshold`;
/// labels 1 are positive, and so are scores of 0.5 and above.
fn bias_monitor_body(baseline: &str, facet: &str, threshold: i64) -> Value {
    let mut body = monitor_body();
    body["pipeline_type"] = json!("byom_model_bias_monitor");
    body["baseline_data"] = json!(baseline);
    body["problem_type"] = json!("BinaryClassification");
    body["monitor_probability_attribute"] = json!("0");
    body["probability_threshold_attribute"] = json!(0.5);
    body["monitor_ground_truth_input"] = json!("my-bucket/monitor/groundtruth");
    body["bias_config"] =
        json!({"label_values_or_threshold": [1], "facet_name": facet, "facet_values_or_threshold": [threshold]});
    body["model_predicted_label_config"] = json!({"probability": 0});
    body
}

/// `byom_model_bias_monitor` on a live endpoint: the baseline labels `baseline_data` with the
/// endpoint's model and writes Clarify's bias `analysis.json` (a continuous facet, `f0` > 14);
/// a window of the same traffic and labels changes nothing, a window whose labels were flipped
/// for the facet's rows is flagged with `bias_drift_check` violations.
async fn a_bias_monitor_flags_a_window_with_injected_bias(db: TestDb) {
    let server = live_endpoint(db).await;
    let case: Value =
        serde_json::from_slice(&std::fs::read(format!("{ANALYZER}/model_quality.json")).unwrap()).unwrap();
    let (rows, labels) = rows_and_labels(&case["endpoint_binary"]);
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let header: Vec<String> =
        std::iter::once("label".to_string()).chain((0..FEATURES).map(|i| format!("f{i}"))).collect();
    let mut csv = header.join(",") + "\n";
    for (row, label) in rows.iter().zip(&labels) {
        csv.push_str(&format!("{label},{row}\n"));
    }
    assert_eq!(server.put_asset("monitor/bias-baseline.csv", csv.into_bytes()).await.status(), 201);
    let body = bias_monitor_body("monitor/bias-baseline.csv", "f0", 14);
    let monitor_pipeline = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&monitor_pipeline, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["baseline_rows"], rows.len(), "{outputs:#}");
    let monitor_id = outputs["monitor_id"].as_str().unwrap().to_string();
    let objects = server.db.dir.path().join("data/objects");
    let analysis: Value =
        serde_json::from_slice(&std::fs::read(objects.join(outputs["baseline_analysis"].as_str().unwrap())).unwrap())
            .unwrap();
    let post = &analysis["post_training_bias_metrics"];
    assert_eq!((post["label"].as_str(), post["label_value_or_threshold"].as_str()), (Some("label"), Some("1")));
    let entry = &post["facets"]["f0"][0];
    let max_f0 = rows.iter().map(|r| r.split(',').next().unwrap().parse::<f64>().unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(entry["value_or_threshold"], format!("(14.0, {max_f0:?}]"));
    let names: Vec<&str> = entry["metrics"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "FT", "GE", "RD", "SD", "TE"]);
    assert_eq!(analysis["pre_training_bias_metrics"]["facets"]["f0"][0]["metrics"].as_array().unwrap().len(), 8);
    assert_valid("model-bias-analysis", &analysis);
    let mut damaged = analysis.clone();
    damaged["post_training_bias_metrics"]["facets"]["f0"][0]["metrics"][0]["value"] = json!("high");
    assert_refused("model-bias-analysis", &damaged);
    // DPPL from the endpoint's own answers: the baseline labelled the rows with the model.
    let predictions = invoke_all(&server, &rows).await;
    let (mut a, mut d) = ((0.0, 0.0), (0.0, 0.0));
    for (row, p) in rows.iter().zip(&predictions) {
        let positive = f64::from(u8::from(p.parse::<f64>().unwrap() >= 0.5));
        let group = if row.split(',').next().unwrap().parse::<f64>().unwrap() > 14.0 { &mut d } else { &mut a };
        group.0 += 1.0;
        group.1 += positive;
    }
    let dppl =
        entry["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "DPPL").unwrap()["value"].as_f64().unwrap();
    assert!((dppl - (a.1 / a.0 - d.1 / d.0)).abs() < 1e-12, "{dppl}");

    // The same traffic and labels: nothing moved.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = now();
    invoke_with_ids(&server, &rows, "same").await;
    let truth = truth_lines(&labels, "same");
    assert_eq!(server.post("/v1/ground-truth/churn-endpoint", INVOKER).body(truth).send().await.unwrap().status(), 202);
    let before = rows.len().div_ceil(7);
    wait_for_capture(&server, before + rows.len()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t1 = now();
    let same = run_now(&server, &monitor_id, &iso(t0), &iso(t1)).await;
    assert_eq!(same["state"], "completed", "{same:#}");
    assert_eq!(same["violations"], json!([]));

    // The labels of the facet's rows flipped: the model now errs against them.
    invoke_with_ids(&server, &rows, "flip").await;
    let flipped: Vec<&str> = rows
        .iter()
        .zip(&labels)
        .map(|(row, l)| {
            let in_facet = row.split(',').next().unwrap().parse::<f64>().unwrap() > 14.0;
            if in_facet { if *l == "1" { "0" } else { "1" } } else { l }
        })
        .collect();
    let truth = truth_lines(&flipped, "flip");
    assert_eq!(server.post("/v1/ground-truth/churn-endpoint", INVOKER).body(truth).send().await.unwrap().status(), 202);
    wait_for_capture(&server, before + 2 * rows.len()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let biased = run_now(&server, &monitor_id, &iso(t1), &iso(now())).await;
    assert_eq!(biased["state"], "completed_with_violations", "{biased:#}");
    let flagged: Vec<&str> =
        biased["violations"].as_array().unwrap().iter().map(|v| v["feature_name"].as_str().unwrap()).collect();
    assert!(flagged.iter().any(|f| f.ends_with(" AD")), "accuracy difference grew: {flagged:?}");
    assert!(flagged.iter().all(|f| f.starts_with("f0=(14.0, ")), "{flagged:?}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(objects.join(biased["files"][1].as_str().unwrap())).unwrap()).unwrap();
    let first = &written["violations"][0];
    assert_eq!(
        (first["facet"].as_str(), first["constraint_check_type"].as_str()),
        (Some("f0"), Some("bias_drift_check"))
    );
    assert_valid("model-bias-violations", &written);
    let mut damaged = written.clone();
    damaged["violations"][0]["constraint_check_type"] = json!("drift");
    assert_refused("model-bias-violations", &damaged);
    let window: Value =
        serde_json::from_slice(&std::fs::read(objects.join(biased["files"][0].as_str().unwrap())).unwrap()).unwrap();
    assert_valid("model-bias-analysis", &window);
    assert!(first["description"].as_str().unwrap().contains("doesn't meet the baseline constraint requirement"));

    // The schedule fires: the hour before it holds both windows' traffic and ground truth.
    let scheduled = scheduled_execution(&server, &monitor_id).await;
    assert!(matches!(scheduled["state"].as_str(), Some("completed" | "completed_with_violations")), "{scheduled:#}");
    if window_holds(&scheduled, t0, now()) {
        assert_eq!(scheduled["rows"], biased["rows"].as_u64().unwrap() * 2, "{scheduled:#}");
    }
    server.stop().await;
}

on_both_stores!(a_bias_monitor_flags_a_window_with_injected_bias);

/// The Clarify monitors of a custom algorithm's endpoint call the algorithm itself, on its own
/// `/invocations` in mini-batches, outside the endpoint (nothing of it captured). The fixture
/// algorithm is linear, so Kernel SHAP is exact there: φ_j = w_j (x_j − b_j) against the
/// baseline row b, and the bias baseline's predicted labels are w·x + c ≥ 0.5.
async fn clarify_monitors_call_a_custom_algorithm_outside_its_endpoint(db: TestDb) {
    let server = TestServer::start(db).await;
    crate::custom::build(&server).await;
    let (weights, bias) = ([1.5, -2.0, 0.5], 0.25);
    let id = crate::custom::provision(&server, "linear", &json!({"weights": weights, "bias": bias})).await;
    server.wait_for(&id, "active").await;
    let rows: Vec<[f64; 3]> = (0..60)
        .map(|i| {
            let i = f64::from(i);
            [(i * 0.37) % 3.0, (i * 0.61) % 2.0 - 1.0, (i * 1.3) % 5.0]
        })
        .collect();
    let score = |r: &[f64; 3]| r.iter().zip(weights).map(|(x, w)| w * x).sum::<f64>() + bias;
    let labels: Vec<u8> = rows.iter().enumerate().map(|(i, r)| u8::from((score(r) >= 0.5) != (i % 5 == 0))).collect();
    let mut csv = "label,f0,f1,f2\n".to_string();
    for (r, l) in rows.iter().zip(&labels) {
        csv.push_str(&format!("{l},{},{},{}\n", r[0], r[1], r[2]));
    }
    assert_eq!(server.put_asset("monitor/linear.csv", csv.into_bytes()).await.status(), 201);
    let mean: Vec<f64> = (0..3).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64).collect();
    let mut body = monitor_body();
    body["model_name"] = json!("linear");
    body["endpoint_name"] = json!("linear-endpoint");
    body["data_capture_location"] = json!("my-bucket/capture/linear");
    body["baseline_data"] = json!("monitor/linear.csv");
    body["problem_type"] = json!("BinaryClassification");

    // Explainability: every coalition of three features enumerated, so the values are exact.
    let mut explain = body.clone();
    explain["pipeline_type"] = json!("byom_model_explainability_monitor");
    explain["monitor_inference_attribute"] = json!("0");
    explain["model_scores"] = json!(0);
    explain["shap_config"] = json!({"baseline": [mean], "num_samples": 6, "agg_method": "mean_abs"});
    let explain_pipeline = server.provision(&explain).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&explain_pipeline, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    let objects = server.db.dir.path().join("data/objects");
    let analysis: Value =
        serde_json::from_slice(&std::fs::read(objects.join(outputs["baseline_analysis"].as_str().unwrap())).unwrap())
            .unwrap();
    assert_valid("model-explainability-analysis", &analysis);
    let label0 = &analysis["explanations"]["kernel_shap"]["label0"];
    let expected_value = mean.iter().zip(weights).map(|(m, w)| m * w).sum::<f64>() + bias;
    assert!((label0["expected_value"].as_f64().unwrap() - expected_value).abs() < 1e-9, "{label0}");
    let exact = |rows: &[[f64; 3]], j: usize| {
        rows.iter().map(|r| (weights[j] * (r[j] - mean[j])).abs()).sum::<f64>() / rows.len() as f64
    };
    for j in 0..3 {
        let ours = label0["global_shap_values"][format!("f{j}")].as_f64().unwrap();
        assert!((ours - exact(&rows, j)).abs() < 1e-9, "f{j}: {ours} vs {}", exact(&rows, j));
    }

    // Bias: the baseline labelled by the algorithm (facet f0 > 1.5).
    let mut bias_body = body.clone();
    bias_body["pipeline_type"] = json!("byom_model_bias_monitor");
    bias_body["monitor_probability_attribute"] = json!("0");
    bias_body["probability_threshold_attribute"] = json!(0.5);
    bias_body["monitor_ground_truth_input"] = json!("my-bucket/monitor/groundtruth");
    bias_body["bias_config"] =
        json!({"label_values_or_threshold": [1], "facet_name": "f0", "facet_values_or_threshold": [1.5]});
    bias_body["model_predicted_label_config"] = json!({"probability": 0});
    let bias_pipeline = server.provision(&bias_body).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&bias_pipeline, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["baseline_rows"], rows.len(), "{outputs:#}");
    let analysis: Value =
        serde_json::from_slice(&std::fs::read(objects.join(outputs["baseline_analysis"].as_str().unwrap())).unwrap())
            .unwrap();
    assert_valid("model-bias-analysis", &analysis);
    let (mut a, mut d) = ((0.0, 0.0), (0.0, 0.0));
    for r in &rows {
        let group = if r[0] > 1.5 { &mut d } else { &mut a };
        group.0 += 1.0;
        group.1 += f64::from(u8::from(score(r) >= 0.5));
    }
    let metrics = analysis["post_training_bias_metrics"]["facets"]["f0"][0]["metrics"].as_array().unwrap();
    let dppl = metrics.iter().find(|m| m["name"] == "DPPL").unwrap()["value"].as_f64().unwrap();
    assert!((dppl - (a.1 / a.0 - d.1 / d.0)).abs() < 1e-12, "DPPL {dppl}");

    // Neither baseline went through the endpoint: nothing was captured.
    let capture = objects.join("my-bucket/capture/linear/linear-endpoint");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(walk(&capture).is_empty(), "the monitors' calls were captured: {:?}", walk(&capture));

    // A window of live traffic through the endpoint, explained through the algorithm again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = now();
    let lines: Vec<String> = rows.iter().map(|r| format!("{},{},{}", r[0], r[1], r[2])).collect();
    for chunk in lines.chunks(6) {
        let response = server.invoke("linear-endpoint", "text/csv", chunk.join("\n"), INVOKER).await;
        assert_eq!(response.status(), 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while walk(&capture).iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum::<usize>() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "the traffic was not captured");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let monitor_id = server.wait_for(&explain_pipeline, "active").await["stages"][0]["outputs"]["monitor_id"]
        .as_str()
        .unwrap()
        .to_string();
    let window = run_now(&server, &monitor_id, &iso(t0), &iso(now())).await;
    assert_eq!(window["state"], "completed", "{window:#}");
    assert_eq!(window["rows"], 60);
    assert!((window["ndcg"]["label0"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{window:#}");
    server.stop().await;
}

on_both_stores!(clarify_monitors_call_a_custom_algorithm_outside_its_endpoint);

/// Every monitor's baseline names each feature once: a baseline CSV whose header repeats a name
/// fails the deploy naming both columns (before any endpoint is called).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_naming_a_column_twice_fails_the_deploy() {
    let server = TestServer::start(TestDb::new(Db::Sqlite).await).await;
    let csv = "label,f0,f1,f0\n1,2,3,4\n0,5,6,7\n";
    assert_eq!(server.put_asset("monitor/twice.csv", csv.as_bytes().to_vec()).await.status(), 201);
    let data_quality = monitor_body();
    let bias = bias_monitor_body("monitor/twice.csv", "f1", 3);
    let mut explainability = monitor_body();
    explainability["pipeline_type"] = json!("byom_model_explainability_monitor");
    explainability["problem_type"] = json!("BinaryClassification");
    explainability["monitor_inference_attribute"] = json!("0");
    explainability["model_scores"] = json!(0);
    explainability["shap_config"] = json!({"baseline": [[1, 1, 1]], "num_samples": 10});
    for mut body in [data_quality, bias, explainability] {
        body["baseline_data"] = json!("monitor/twice.csv");
        let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
        let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("the header row names \"f0\" twice (columns 2 and 4)"),
            "{}: {error}",
            body["pipeline_type"]
        );
    }
    server.stop().await;
}
