//! Invocation edge cases and capture durability, on a deployed endpoint.

use crate::on_both_stores;
use crate::support::api::{csv_rows, fixture_json, realtime_body};
use crate::support::server::{INVOKER, OPERATOR, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use crate::walkthrough::read_capture;
use serde_json::{Value, json};
use std::time::Duration;

async fn deployed(db: TestDb, configure: impl FnOnce(&mut mlops::Settings)) -> TestServer {
    let mut settings = test_settings(&db);
    configure(&mut settings);
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    let id =
        server.provision(&realtime_body("iris", "models/iris.json")).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    server
}

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.unwrap()
}

async fn bad_bodies_name_row_and_column(db: TestDb) {
    let server = deployed(db, |_| {}).await;
    let p = problem(
        server.invoke("iris-endpoint", "text/csv", "5.1,3.5,1.4,0.2\n6.2,abc,4.3,1.3".into(), INVOKER).await,
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("row 2, column 2"), "{p:#}");
    assert_eq!(p["errors"][0]["pointer"], "/rows/2/columns/2");
    let p = problem(server.invoke("iris-endpoint", "text/csv", "5.1,3.5,1.4".into(), INVOKER).await, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("row 1"), "{p:#}");
    let p = problem(
        server.invoke("iris-endpoint", "application/json", "{\"instances\": [[1, 2, \"x\", 4]]}".into(), INVOKER).await,
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("column 3"), "{p:#}");
    problem(server.invoke("iris-endpoint", "application/x-protobuf", "x".into(), INVOKER).await, 415).await;
    let not_acceptable = server
        .http
        .post(server.url("/v1/endpoints/iris-endpoint/invocations"))
        .bearer_auth(INVOKER)
        .header("content-type", "text/csv")
        .header("accept", "image/png")
        .body("5.1,3.5,1.4,0.2")
        .send()
        .await
        .unwrap();
    problem(not_acceptable, 406).await;
    problem(server.invoke("nope", "text/csv", "1".into(), INVOKER).await, 404).await;
    problem(server.invoke("iris-endpoint", "text/csv", "5.1,3.5,1.4,0.2".into(), OPERATOR).await, 403).await;

    // Missing values and softprob: one line of class probabilities per row.
    let ok = server.invoke("iris-endpoint", "text/csv", "5.1,,1.4,0.2\n6.2,2.9,4.3,1.3".into(), INVOKER).await;
    assert_eq!(ok.status(), 200);
    let text = ok.text().await.unwrap();
    let lines: Vec<Vec<f64>> = text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(lines.len(), 2);
    for probabilities in &lines {
        assert_eq!(probabilities.len(), 3);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
    server.stop().await;
}

/// A large body (scored on the blocking pool) answers exactly what the same rows answer one by
/// one inline, and a bad row in it is still named.
async fn large_bodies_score_like_small_ones(db: TestDb) {
    let server = deployed(db, |_| {}).await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let mut expected = Vec::new();
    for row in rows {
        let one = server.invoke("iris-endpoint", "text/csv", csv_rows(std::slice::from_ref(row)), INVOKER).await;
        expected.push(one.text().await.unwrap());
    }
    let repeat = 64 * 1024 / csv_rows(rows).len() + 1;
    let all: Vec<Value> = (0..repeat).flat_map(|_| rows.iter().cloned()).collect();
    let body = csv_rows(&all);
    assert!(body.len() >= 64 * 1024);
    let response = server.invoke("iris-endpoint", "text/csv", body.clone(), INVOKER).await;
    assert_eq!(response.status(), 200);
    let answer = response.text().await.unwrap();
    assert_eq!(answer, expected.concat().repeat(repeat));
    let bad = body.replacen("5.1", "x", 1);
    problem(server.invoke("iris-endpoint", "text/csv", bad, INVOKER).await, 400).await;
    server.stop().await;
}

async fn payload_limit_is_sagemakers(db: TestDb) {
    let server = deployed(db, |s| s.serving.max_request_bytes = 1000).await;
    let rows = "5.1,3.5,1.4,0.2\n".repeat(100); // 1600 bytes
    problem(server.invoke("iris-endpoint", "text/csv", rows, INVOKER).await, 413).await;
    // The same without a declared length (chunked, frame by frame): counted as it arrives.
    let streamed = |frames: usize| {
        let row = bytes::Bytes::from_static(b"5.1,3.5,1.4,0.2\n");
        let stream = futures::stream::iter((0..frames).map(move |_| Ok::<_, std::io::Error>(row.clone())));
        server
            .http
            .post(server.url("/v1/endpoints/iris-endpoint/invocations"))
            .bearer_auth(INVOKER)
            .header("content-type", "text/csv")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
    };
    // The server answers as soon as the limit is passed and closes the connection, so the
    // client, still sending, may see that first: either way the body is refused, never scored.
    match streamed(100).await {
        Ok(refused) => {
            problem(refused, 413).await;
        }
        Err(cut) => assert!(cut.is_request() && !cut.is_timeout(), "{cut:?}"),
    }
    // Under the limit in several frames: the frames joined, every row scored.
    let answer = streamed(40).await.unwrap();
    assert_eq!(answer.status(), 200);
    let one = server.invoke("iris-endpoint", "text/csv", "5.1,3.5,1.4,0.2\n".into(), INVOKER).await;
    assert_eq!(answer.text().await.unwrap(), one.text().await.unwrap().repeat(40));
    server.stop().await;
}

async fn clean_shutdown_loses_no_captured_record(db: TestDb) {
    // A long flush interval: only the shutdown flush can write these records.
    let server = deployed(db, |s| s.capture.flush_interval = Duration::from_secs(3600)).await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let mut calls = Vec::new();
    for i in 0..120 {
        let row = csv_rows(&rows[i % rows.len()..i % rows.len() + 1]);
        let http = server.http.clone();
        let url = server.url("/v1/endpoints/iris-endpoint/invocations");
        calls.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(INVOKER)
                .header("content-type", "text/csv")
                .header("x-amzn-sagemaker-inference-id", format!("call-{i}"))
                .body(row)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let capture_dir = server.db.dir.path().join("data/objects/my-bucket/datacapture/churn/iris-endpoint/AllTraffic");
    assert!(!capture_dir.exists(), "nothing flushed before shutdown");
    let endpoint: serde_json::Value =
        server.get("/v1/endpoints/iris-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(endpoint["capture"]["captured"], 120, "{endpoint:#}");
    assert_eq!(endpoint["capture"]["dropped"], 0);
    assert_eq!(endpoint["capture"]["written"], 0);
    let _db = server.stop().await;
    let records = read_capture(&capture_dir);
    assert_eq!(records.len(), 120, "every invocation captured exactly once");
    let mut ids: Vec<String> =
        records.iter().map(|r| r["eventMetadata"]["inferenceId"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120, "no invocation captured twice");
    assert!(records.iter().all(|r| r["captureData"]["endpointOutput"]["encoding"] == "CSV"));
    let event_ids: std::collections::HashSet<_> =
        records.iter().map(|r| r["eventMetadata"]["eventId"].clone()).collect();
    assert_eq!(event_ids.len(), 120);
    assert_eq!(records[0]["eventVersion"], json!("0"));
}

/// The solution's inference API (`{"payload", "content_type"}` in, the prediction text out) on
/// every real-time endpoint: the same answers as `/invocations`, a JSON payload sent
/// JSON-encoded, missing fields named, the invoker role needed, and every call captured.
async fn the_solutions_inference_api_answers_and_is_captured(db: TestDb) {
    let server = deployed(db, |_| {}).await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let csv = csv_rows(&rows[0..3]);
    let direct = server.invoke("iris-endpoint", "text/csv", csv.clone(), INVOKER).await.text().await.unwrap();
    let endpoint: Value = server.get("/v1/endpoints/iris-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    let path = endpoint["inference_path"].as_str().unwrap().to_string();
    assert_eq!(path, "/v1/endpoints/iris-endpoint/inference");
    let inference = |body: Value, token: &'static str| {
        let request = server.post(&path, token).json(&body);
        async move { request.send().await.unwrap() }
    };
    let answer = inference(json!({"payload": csv, "content_type": "text/csv"}), INVOKER).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), direct, "the same prediction text as /invocations");
    let instances: Vec<&Value> = rows[0..3].iter().collect();
    let answer =
        inference(json!({"payload": {"instances": instances}, "content_type": "application/json"}), INVOKER).await;
    assert_eq!(answer.status(), 200);
    let predictions: Value = answer.json().await.unwrap();
    assert_eq!(predictions["predictions"].as_array().map(Vec::len), Some(3), "{predictions:#}");

    let missing = problem(inference(json!({"content_type": "text/csv"}), INVOKER).await, 400).await;
    assert_eq!(missing["errors"][0]["pointer"], "/payload");
    let missing = problem(inference(json!({"payload": csv}), INVOKER).await, 400).await;
    assert_eq!(missing["errors"][0]["pointer"], "/content_type");
    let bad_row = problem(inference(json!({"payload": "1,x", "content_type": "text/csv"}), INVOKER).await, 400).await;
    assert!(bad_row["errors"][0]["pointer"].as_str().unwrap().starts_with("/rows/"), "{bad_row:#}");
    assert_eq!(inference(json!({"payload": csv, "content_type": "text/csv"}), VIEWER).await.status(), 403);

    let capture_dir = server.db.dir.path().join("data/objects/my-bucket/datacapture/churn/iris-endpoint/AllTraffic");
    let _db = server.stop().await;
    let records = read_capture(&capture_dir);
    assert_eq!(records.len(), 3, "the direct call and both inference calls: {records:#?}");
    let json_record =
        records.iter().find(|r| r["captureData"]["endpointInput"]["observedContentType"] == "application/json");
    assert!(json_record.is_some(), "{records:#?}");
}

/// Past its byte budget capture drops records instead of slowing invocations, and counts them:
/// captured + dropped = served, exactly; what was captured is what is written.
async fn capture_drops_are_counted_never_silent(db: TestDb) {
    const CALLS: usize = 60;
    let server = deployed(db, |s| {
        s.capture.flush_interval = Duration::from_secs(3600);
        s.capture.max_buffered_bytes = 4096;
    })
    .await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    for i in 0..CALLS {
        let row = csv_rows(&rows[i % rows.len()..i % rows.len() + 1]);
        let response = server.invoke("iris-endpoint", "text/csv", row, INVOKER).await;
        assert_eq!(response.status(), 200, "an invocation never fails for capture");
    }
    let endpoint: serde_json::Value =
        server.get("/v1/endpoints/iris-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    let (captured, dropped) =
        (endpoint["capture"]["captured"].as_u64().unwrap(), endpoint["capture"]["dropped"].as_u64().unwrap());
    assert_eq!(captured + dropped, CALLS as u64, "{endpoint:#}");
    assert!(dropped > 0 && captured > 0, "{endpoint:#}");
    let capture_dir = server.db.dir.path().join("data/objects/my-bucket/datacapture/churn/iris-endpoint/AllTraffic");
    let _db = server.stop().await;
    assert_eq!(read_capture(&capture_dir).len() as u64, captured);
}

/// `capture.sampling_percentage = 0` captures nothing and says so.
async fn sampling_leaves_invocations_out_and_counts_them(db: TestDb) {
    let server = deployed(db, |s| s.capture.sampling_percentage = 0.0).await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    for _ in 0..5 {
        assert_eq!(server.invoke("iris-endpoint", "text/csv", csv_rows(&rows[..1]), INVOKER).await.status(), 200);
    }
    let endpoint: serde_json::Value =
        server.get("/v1/endpoints/iris-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(endpoint["capture"]["sampled_out"], 5, "{endpoint:#}");
    assert_eq!(endpoint["capture"]["captured"], 0);
    server.stop().await;
}

/// A replica that has not loaded the model answers 503 with `Retry-After` while it loads in the
/// background (here: `model_load_wait = 0`, so no request waits), then serves it.
async fn models_load_in_the_background(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.serving.model_load_wait = Duration::ZERO;
    let server = TestServer::start_with(db, settings.clone()).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    let id =
        server.provision(&realtime_body("iris", "models/iris.json")).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    let row = csv_rows(&fixture_json("xgboost/multi_softprob.cases.json")["rows"].as_array().unwrap()[..1]);
    let expected = server.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await.text().await.unwrap();

    // A fresh process has nothing loaded.
    let server = TestServer::start_with(server.stop().await, settings).await;
    let loading = server.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await;
    assert_eq!(loading.headers()["retry-after"], "1");
    let p = problem(loading, 503).await;
    assert_eq!(p["code"], "model_loading", "{p:#}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = server.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await;
        if response.status() == 200 {
            assert_eq!(response.text().await.unwrap(), expected);
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(tokio::time::Instant::now() < deadline, "the model never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// With room for one model, serving another endpoint unloads the least recently used one, which
/// loads again when it is called (model loads counted in the metrics).
async fn least_recently_used_models_are_unloaded(db: TestDb) {
    use crate::metrics::{any_loopback_port, sample, scrape};
    let mut settings = test_settings(&db);
    settings.serving.max_loaded_models = 1;
    settings.metrics.listen = any_loopback_port();
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    for name in ["first", "second"] {
        let id = server.provision(&realtime_body(name, "models/iris.json")).await["pipeline_id"]
            .as_str()
            .unwrap()
            .to_string();
        server.wait_for(&id, "active").await;
    }
    let loads = || async { sample(&scrape(&server).await, "mlops_model_loads_total", &[("outcome", "ok")]) };
    assert_eq!(loads().await, Some(2.0), "each deploy loads its model once");
    let row = csv_rows(&fixture_json("xgboost/multi_softprob.cases.json")["rows"].as_array().unwrap()[..1]);
    let call = |name: &'static str| {
        let row = row.clone();
        let server = &server;
        async move { assert_eq!(server.invoke(&format!("{name}-endpoint"), "text/csv", row, INVOKER).await.status(), 200) }
    };
    call("second").await;
    assert_eq!(loads().await, Some(2.0), "the last deployed stays loaded");
    call("first").await;
    assert_eq!(loads().await, Some(3.0), "the first was unloaded when the second loaded");
    call("first").await;
    assert_eq!(loads().await, Some(3.0));
    call("second").await;
    assert_eq!(loads().await, Some(4.0));
    let text = scrape(&server).await;
    assert_eq!(sample(&text, "mlops_model_evictions_total", &[]), Some(3.0), "{text}");
    server.stop().await;
}

/// A name the database lacks is remembered for `serving.endpoint_refresh`: asked again within
/// it, a replica answers 404 without looking (so an endpoint deployed through another replica
/// meanwhile is served there once the interval has passed); one deployed through the replica
/// itself is served at once. Names no endpoint can have are 404 too.
async fn unknown_endpoints_are_remembered_for_the_refresh_interval(db: TestDb) {
    let refresh = Duration::from_secs(5);
    let replica_db = db.replica();
    let shared_objects = db.dir.path().join("shared-objects");
    let settings = |db: &TestDb| {
        let mut s = test_settings(db);
        s.assets.root = Some(shared_objects.clone());
        s.serving.endpoint_refresh = refresh;
        s
    };
    let (first_settings, mut second_settings) = (settings(&db), settings(&replica_db));
    // An API-only replica: the deploy job runs on the first (with workers on both, either may).
    second_settings.jobs.workers = 0;
    let first = TestServer::start_with(db, first_settings).await;
    let second = TestServer::start_with(replica_db, second_settings).await;
    let row = csv_rows(&fixture_json("xgboost/multi_softprob.cases.json")["rows"].as_array().unwrap()[..1]);

    // Each replica remembers the name from some moment between these two.
    let before = tokio::time::Instant::now();
    for name in ["iris-endpoint", "Iris-Endpoint", "no_such_name", &"e".repeat(64)] {
        for server in [&first, &second] {
            let p = problem(server.invoke(name, "text/csv", row.clone(), INVOKER).await, 404).await;
            assert!(p["detail"].as_str().unwrap().contains("not found"), "{p:#}");
        }
    }
    let after = tokio::time::Instant::now();
    first.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    let id =
        first.provision(&realtime_body("iris", "models/iris.json")).await["pipeline_id"].as_str().unwrap().to_string();
    first.wait_for(&id, "active").await;
    assert_eq!(
        first.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await.status(),
        200,
        "the replica that deployed it serves it at once"
    );
    let meanwhile = second.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await.status();
    if before.elapsed() < refresh {
        assert_eq!(meanwhile, 404, "the other replica remembers the name as unknown");
    }
    tokio::time::sleep_until(after + refresh).await;
    let response = second.invoke("iris-endpoint", "text/csv", row.clone(), INVOKER).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    second.stop().await;
    first.stop().await;
}

on_both_stores!(
    unknown_endpoints_are_remembered_for_the_refresh_interval,
    models_load_in_the_background,
    least_recently_used_models_are_unloaded,
    bad_bodies_name_row_and_column,
    payload_limit_is_sagemakers,
    large_bodies_score_like_small_ones,
    clean_shutdown_loses_no_captured_record,
    capture_drops_are_counted_never_silent,
    sampling_leaves_invocations_out_and_counts_them,
    the_solutions_inference_api_answers_and_is_captured,
);
