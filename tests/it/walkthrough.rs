//! The README walkthrough, end to end on both stores: upload a real XGBoost model, provision
//! with the AWS solution's own body, watch it become active, invoke it with CSV and JSON, and
//! find every request captured in SageMaker's format.

use crate::on_both_stores;
use crate::support::api::{assert_close, csv_rows, fixture_json, realtime_body};
use crate::support::server::INVOKER;
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

async fn provision_invoke_and_capture(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;

    let out = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    assert_eq!(out["message"], "success: stack creation started");
    let id = out["pipeline_id"].as_str().unwrap().to_string();

    let pipeline = server.wait_for(&id, "active").await;
    assert_eq!(pipeline["stages"][0]["state"], "deployed");
    assert_eq!(pipeline["stages"][0]["outputs"]["endpoint_name"], "churn-endpoint");
    assert_eq!(pipeline["stages"][0]["outputs"]["objective"], "binary:logistic");

    let status = server.compat_status(&id).await;
    assert_eq!(status["stageStates"][1]["stageName"], "DeployCloudFormation");
    assert_eq!(status["stageStates"][1]["actionStates"][0]["latestExecution"]["status"], "Succeeded");
    assert_eq!(status["pipelineName"], "mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline");
    // The solution's /pipelinestatus also takes the stack's name (deployed or wrapper stack).
    for stack in [
        "mlops-pipeline-churn-byompipelinerealtimebuiltin",
        "mlops-pipeline-churn-BYOMPipelineRealtimeBuiltIn-codepipeline",
    ] {
        assert_eq!(server.compat_status(stack).await, status, "{stack}");
    }

    let cases = fixture_json("xgboost/binary_logistic.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let expected = cases["predictions"].as_array().unwrap();

    // CSV in, CSV out (one prediction per line).
    let response = server.invoke("churn-endpoint", "text/csv", csv_rows(rows), INVOKER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(response.headers()["x-amzn-invoked-production-variant"], "AllTraffic");
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), rows.len());
    for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
        assert_close(line.parse().unwrap(), want[0].as_f64().unwrap(), &format!("csv row {i}"));
    }

    // JSON in ({"instances": …} and a bare list of rows), JSON out; the SageMaker path too.
    for body in [json!({"instances": rows}), Value::Array(rows.clone())] {
        let response = server
            .http
            .post(server.url("/endpoints/churn-endpoint/invocations"))
            .bearer_auth(INVOKER)
            .header("content-type", "application/json")
            .header("x-amzn-sagemaker-inference-id", "req-42")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let predictions: Value = response.json().await.unwrap();
        let scores = predictions["predictions"].as_array().unwrap();
        assert_eq!(scores.len(), rows.len());
        for (i, (score, want)) in scores.iter().zip(expected).enumerate() {
            assert_close(score["score"].as_f64().unwrap(), want[0].as_f64().unwrap(), &format!("json row {i}"));
        }
    }

    // CSV in, JSON out through Accept.
    let response = server
        .http
        .post(server.url("/v1/endpoints/churn-endpoint/invocations"))
        .bearer_auth(INVOKER)
        .header("content-type", "text/csv")
        .header("accept", "application/json")
        .body(csv_rows(&rows[..1]))
        .send()
        .await
        .unwrap();
    let one: Value = response.json().await.unwrap();
    assert_close(one["predictions"][0]["score"].as_f64().unwrap(), expected[0][0].as_f64().unwrap(), "accept json");

    let data_dir = server.db.dir.path().join("data");
    let db = server.stop().await; // a clean shutdown flushes the capture buffers
    let captured = read_capture(&data_dir.join("objects/my-bucket/datacapture/churn/churn-endpoint/AllTraffic"));
    assert_eq!(captured.len(), 4, "every invocation is captured once");
    // The CSV request answered in CSV (the other CSV request asked for JSON back).
    let csv = captured
        .iter()
        .find(|r| {
            r["captureData"]["endpointInput"]["encoding"] == "CSV"
                && r["captureData"]["endpointOutput"]["encoding"] == "CSV"
        })
        .unwrap();
    assert_eq!(csv["captureData"]["endpointInput"]["observedContentType"], "text/csv");
    assert_eq!(csv["captureData"]["endpointInput"]["mode"], "INPUT");
    assert_eq!(csv["captureData"]["endpointInput"]["data"], csv_rows(rows));
    assert_eq!(csv["captureData"]["endpointOutput"]["mode"], "OUTPUT");
    assert_eq!(csv["captureData"]["endpointOutput"]["data"], text);
    assert_eq!(csv["eventVersion"], "0");
    assert!(csv["eventMetadata"].get("inferenceId").is_none());
    let with_id: Vec<_> = captured.iter().filter(|r| r["eventMetadata"]["inferenceId"] == "req-42").collect();
    assert_eq!(with_id.len(), 2);
    assert_eq!(with_id[0]["captureData"]["endpointInput"]["encoding"], "JSON");
    let time = csv["eventMetadata"]["inferenceTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 20, "ISO-8601 to the second: {time}");
    drop(db);
}

/// Every capture record under `dir` (`yyyy/mm/dd/hh/*.jsonl`).
pub fn read_capture(dir: &std::path::Path) -> Vec<Value> {
    let mut records = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_eq!(path.extension().unwrap(), "jsonl");
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                assert_eq!(relative.split('/').count(), 5, "yyyy/mm/dd/hh/file: {relative}");
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    records.push(serde_json::from_str(line).unwrap());
                }
            }
        }
    }
    records
}

on_both_stores!(provision_invoke_and_capture);
