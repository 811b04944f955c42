//! Small client helpers over the real HTTP API, for the end-to-end tests.

use super::TestServer;
use super::server::{ADMIN, APPROVER, OPERATOR, VIEWER};
use serde_json::{Value, json};
use std::time::Duration;

pub fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(path)).unwrap()).unwrap()
}

/// The AWS solution's own realtime body, pointing at `key`.
pub fn realtime_body(model_name: &str, key: &str) -> Value {
    json!({
        "pipeline_type": "byom_realtime_builtin",
        "model_name": model_name,
        "model_framework": "xgboost",
        "model_framework_version": "1.2-2",
        "model_artifact_location": key,
        "inference_instance": "ml.m5.large",
        "data_capture_location": "my-bucket/datacapture/churn",
        "endpoint_name": format!("{model_name}-endpoint"),
    })
}

impl TestServer {
    pub async fn put_asset(&self, key: &str, bytes: Vec<u8>) -> reqwest::Response {
        self.http.put(self.url(&format!("/v1/assets/{key}"))).bearer_auth(OPERATOR).body(bytes).send().await.unwrap()
    }

    pub async fn upload_fixture(&self, key: &str, fixture_path: &str) {
        let response = self.put_asset(key, std::fs::read(fixture(fixture_path)).unwrap()).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    pub async fn provision(&self, body: &Value) -> Value {
        let response =
            self.http.post(self.url("/provisionpipeline")).bearer_auth(OPERATOR).json(body).send().await.unwrap();
        let status = response.status();
        let out: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{out:#}");
        out
    }

    /// Approves staging, waits for prod to ask, approves prod, and waits for the pipeline to be
    /// active (a dev → staging → prod pipeline whose dev stage has deployed).
    pub async fn approve_staging_and_prod(&self, id: &str) -> Value {
        for stage in ["staging", "prod"] {
            let version = self.pipeline(id).await["version"].clone();
            let approved = self
                .post(&format!("/v1/pipelines/{id}/stages/{stage}/approval"), APPROVER)
                .json(&json!({"decision": "approve", "version": version}))
                .send()
                .await
                .unwrap();
            assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
            if stage == "staging" {
                self.wait_for(id, "awaiting_approval").await;
            }
        }
        self.wait_for(id, "active").await
    }

    pub async fn pipeline(&self, id: &str) -> Value {
        let response =
            self.http.get(self.url(&format!("/v1/pipelines/{id}"))).bearer_auth(VIEWER).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until the pipeline reaches `state`; fails at once when it settles elsewhere
    /// (a final state, or waiting for an approval nobody will give).
    pub async fn wait_for(&self, id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.pipeline(id).await;
            let current = p["state"].as_str().unwrap();
            if current == state {
                return p;
            }
            if ["active", "failed", "rejected", "deleted", "awaiting_approval"].contains(&current) {
                let events = self.events(id).await;
                panic!("pipeline {id} settled in {current}, expected {state}: {p:#}\nevents: {events:#}");
            }
            assert!(tokio::time::Instant::now() < deadline, "pipeline {id} never reached {state}: {p:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// As [`Self::wait_for`], for slow steps (installing packages): two minutes at most.
    pub async fn wait_for_longer(&self, id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let p = self.pipeline(id).await;
            if p["state"] == state {
                return p;
            }
            if ["active", "failed", "rejected", "deleted"].contains(&p["state"].as_str().unwrap()) {
                panic!("pipeline {id} settled in {}, expected {state}: {p:#}", p["state"]);
            }
            assert!(tokio::time::Instant::now() < deadline, "pipeline {id} never reached {state}: {p:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until `ready` holds for the pipeline (10 s at most).
    pub async fn wait_until(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.pipeline(id).await;
            if ready(&p) {
                return p;
            }
            assert!(tokio::time::Instant::now() < deadline, "pipeline {id} never got there: {p:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /pipelinestatus`: the CodePipeline-shaped state.
    pub async fn compat_status(&self, id: &str) -> Value {
        let response = self.post("/pipelinestatus", VIEWER).json(&json!({"pipeline_id": id})).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn events(&self, id: &str) -> Value {
        let response =
            self.http.get(self.url(&format!("/v1/pipelines/{id}/events"))).bearer_auth(ADMIN).send().await.unwrap();
        response.json::<Value>().await.unwrap()["items"].clone()
    }

    /// The messages of the pipeline's events, oldest first (events without one left out).
    pub async fn event_messages(&self, id: &str) -> Vec<String> {
        let events = self.events(id).await;
        events.as_array().unwrap().iter().filter_map(|e| e["message"].as_str().map(String::from)).collect()
    }

    pub async fn invoke(&self, endpoint: &str, content_type: &str, body: String, token: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/endpoints/{endpoint}/invocations")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Fixture rows as CSV lines (missing values as empty fields, as SageMaker's container takes them).
pub fn csv_rows(rows: &[Value]) -> String {
    rows.iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| if v.is_null() { String::new() } else { v.to_string() })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-6 * expected.abs();
    assert!((actual - expected).abs() <= tolerance, "{what}: got {actual}, xgboost says {expected}");
}
