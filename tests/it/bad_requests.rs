//! Every malformed-request class gets a 4xx `application/problem+json` naming the fields, with
//! the solution's `message`/`detailedMessage`, and stores nothing.

use crate::on_both_stores;
use crate::support::api::{fixture_json, realtime_body};
use crate::support::server::OPERATOR;
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    body: String,
    status: u16,
    pointers: &'static [&'static str],
    detailed: Option<&'static str>,
}

fn with(mut body: Value, changes: Value) -> String {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body.to_string()
}

fn cases() -> Vec<Case> {
    let realtime = realtime_body("churn", "models/churn/model.tar.gz");
    let monitor = fixture_json("requests/byom_data_quality_monitor.json");
    vec![
        Case { name: "not JSON", body: "{\"pipeline_type\": ".into(), status: 400, pointers: &[""], detailed: None },
        Case { name: "empty body", body: String::new(), status: 400, pointers: &[""], detailed: None },
        Case { name: "not an object", body: "[1, 2]".into(), status: 400, pointers: &[""], detailed: None },
        Case {
            name: "unknown pipeline_type",
            body: with(realtime.clone(), json!({"pipeline_type": "byom_realtime"})),
            status: 400,
            pointers: &["/pipeline_type"],
            detailed: Some(
                "Bad request format. Pipeline type not supported. Check documentation for API & config formats",
            ),
        },
        Case {
            name: "missing key",
            body: with(realtime.clone(), json!({"inference_instance": null})),
            status: 400,
            pointers: &["/inference_instance"],
            detailed: Some("Bad request. API body does not have the necessary parameter: inference_instance"),
        },
        Case {
            name: "wrong types, all reported",
            body: with(
                realtime.clone(),
                json!({"model_name": 7, "inference_instance": ["ml.m5.large"], "endpoint_name": {"a": 1}}),
            ),
            status: 400,
            pointers: &["/model_name", "/inference_instance", "/endpoint_name"],
            detailed: None,
        },
        Case {
            name: "per-stage object on a single-environment server",
            body: with(realtime.clone(), json!({"inference_instance": {"dev": "ml.m5.large", "prod": "ml.m5.xlarge"}})),
            status: 400,
            pointers: &["/inference_instance"],
            detailed: None,
        },
        Case {
            name: "bad instance type and a URL for a bucket/prefix",
            body: with(
                realtime.clone(),
                json!({"inference_instance": "m5.large", "data_capture_location": "https://my-bucket/capture"}),
            ),
            status: 400,
            pointers: &["/inference_instance", "/data_capture_location"],
            detailed: None,
        },
        Case {
            name: "path traversal in an asset key",
            body: with(realtime.clone(), json!({"model_artifact_location": "models/../../etc/passwd"})),
            status: 400,
            pointers: &["/model_artifact_location"],
            detailed: None,
        },
        Case {
            name: "bad cron",
            body: with(monitor.clone(), json!({"schedule_expression": "cron(0 25 ? * * *)"})),
            status: 400,
            pointers: &["/schedule_expression"],
            detailed: None,
        },
        Case {
            name: "unsupported problem_type",
            body: with(fixture_json("requests/byom_model_quality_monitor.json"), json!({"problem_type": "Ranking"})),
            status: 400,
            pointers: &["/problem_type"],
            detailed: Some("Bad request format. Unsupported problem_type in byom_model_quality_monitor pipeline"),
        },
        // A shape of the solution's own unit-test fixtures that its presence-only check lets
        // through and Clarify would fail on later (docs/API.md §10); its other such shapes have a
        // plain meaning and are read so (tests/it/solution_fixtures.rs).
        Case {
            name: "an endpoint name with `_` that would still be invalid with `-`",
            body: with(monitor.clone(), json!({"endpoint_name": "_test_endpoint"})),
            status: 400,
            pointers: &["/endpoint_name"],
            detailed: None,
        },
        Case {
            name: "the solution's fixture: an explainability monitor without shap_config",
            body: with(fixture_json("requests/byom_model_explainability_monitor.json"), json!({"shap_config": null})),
            status: 400,
            pointers: &["/shap_config"],
            detailed: None,
        },
        Case {
            name: "valid, but the local target cannot run it",
            body: with(fixture_json("requests/model_tuner_builtin.json"), json!({"model_framework": "linear-learner"})),
            status: 422,
            pointers: &[],
            detailed: None,
        },
        Case {
            name: "valid, but not a model the local target evaluates",
            body: with(realtime, json!({"model_framework": "linear-learner"})),
            status: 422,
            pointers: &[],
            detailed: None,
        },
    ]
}

async fn malformed_requests_are_problems_and_store_nothing(db: TestDb) {
    let server = TestServer::start(db).await;
    for path in ["/provisionpipeline", "/v1/pipelines"] {
        for case in cases() {
            let response = server
                .post(path, OPERATOR)
                .header("content-type", "application/json")
                .body(case.body.clone())
                .send()
                .await
                .unwrap();
            let what = format!("{path} {}", case.name);
            assert_eq!(response.status().as_u16(), case.status, "{what}");
            assert_eq!(response.headers()["content-type"], "application/problem+json", "{what}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], case.status, "{what}");
            assert!(
                problem["type"].is_string() && problem["title"].is_string() && problem["detail"].is_string(),
                "{what}"
            );
            assert!(problem["message"].is_string() && problem["detailedMessage"].is_string(), "{what}: {problem:#}");
            if case.status == 400 {
                assert_eq!(problem["message"], "A BadRequest exception occurred", "{what}");
            }
            let pointers: Vec<&str> = problem["errors"]
                .as_array()
                .map(|e| e.iter().map(|e| e["pointer"].as_str().unwrap()).collect())
                .unwrap_or_default();
            for pointer in case.pointers {
                assert!(pointers.contains(pointer), "{what}: {pointer} not named in {problem:#}");
            }
            if let Some(detailed) = case.detailed {
                assert_eq!(problem["detailedMessage"], detailed, "{what}");
            }
        }
    }
    // A key only this type requires (reference §4.1), left out of the type's valid request.
    for (pipeline_type, key) in TYPE_KEYS {
        let body = with(fixture_json(&format!("requests/{pipeline_type}.json")), json!({ key: null }));
        let response = server.post("/provisionpipeline", OPERATOR).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{pipeline_type} without {key}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        let pointers: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, [format!("/{key}")], "{pipeline_type}: {problem:#}");
        assert_eq!(
            problem["detailedMessage"],
            format!("Bad request. API body does not have the necessary parameter: {key}"),
            "{pipeline_type}"
        );
    }
    let counts = server.db.store.row_counts().await.unwrap();
    assert_eq!(counts, Default::default(), "a rejected request stored something");
    server.stop().await;
}

/// For each pipeline type, a required key that sets it apart from the others.
const TYPE_KEYS: [(&str, &str); 12] = [
    ("byom_realtime_builtin", "model_framework_version"),
    ("byom_realtime_custom", "custom_image_uri"),
    ("byom_batch_builtin", "batch_inference_data"),
    ("byom_batch_custom", "batch_job_output_location"),
    ("byom_data_quality_monitor", "baseline_data"),
    ("byom_model_quality_monitor", "baseline_ground_truth_attribute"),
    ("byom_model_bias_monitor", "bias_config"),
    ("byom_model_explainability_monitor", "shap_config"),
    ("byom_image_builder", "image_tag"),
    ("model_training_builtin", "algo_hyperparamaters"),
    ("model_tuner_builtin", "tuner_configs"),
    ("model_autopilot_training", "target_attribute"),
];

async fn status_of_unknown_pipeline_is_404_and_missing_id_is_400(db: TestDb) {
    let server = TestServer::start(db).await;
    let unknown = server.post("/pipelinestatus", OPERATOR).json(&json!({"pipeline_id": "nope"})).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    let missing = server.post("/pipelinestatus", OPERATOR).json(&json!({})).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/pipeline_id");
    let unknown = server.get("/v1/pipelines/nope", OPERATOR).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    server.stop().await;
}

on_both_stores!(
    malformed_requests_are_problems_and_store_nothing,
    status_of_unknown_pipeline_is_404_and_missing_id_is_400
);
