//! Promotion through dev → staging → prod with manual approvals, on a server configured with
//! three environments.

use crate::on_both_stores;
use crate::support::api::{csv_rows, fixture_json, realtime_body};
use crate::support::server::{ADMIN, APPROVER, INVOKER, OPERATOR, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

async fn start_three_environments(db: TestDb) -> TestServer {
    let mut settings = test_settings(&db);
    settings.environments = vec!["dev".into(), "staging".into(), "prod".into()];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    server
}

async fn approve(server: &TestServer, id: &str, stage: &str, token: &str, decision: &str) -> reqwest::Response {
    let current: serde_json::Value =
        server.get(&format!("/v1/pipelines/{id}"), token).send().await.unwrap().json().await.unwrap();
    let version = current["version"].clone();
    server
        .post(&format!("/v1/pipelines/{id}/stages/{stage}/approval"), token)
        .json(&json!({"decision": decision, "version": version, "comment": format!("{decision} {stage}")}))
        .send()
        .await
        .unwrap()
}

async fn promotion_needs_an_approver_at_each_step(db: TestDb) {
    let server = start_three_environments(db).await;
    let mut body = realtime_body("churn", "models/churn/model.tar.gz");
    body["inference_instance"] = json!({"dev": "ml.m5.large", "staging": "ml.m5.xlarge", "prod": "ml.m5.2xlarge"});
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();

    let p = server.wait_for(&id, "awaiting_approval").await;
    let states: Vec<&str> = p["stages"].as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["deployed", "awaiting_approval", "pending"]);
    assert_eq!(p["stages"][2]["params"]["inference_instance"], "ml.m5.2xlarge", "per-stage values resolved");

    // Endpoints are per environment: dev serves, staging is reserved but not deployed.
    let rows = fixture_json("xgboost/binary_logistic.cases.json")["rows"].as_array().unwrap()[..3].to_vec();
    assert_eq!(server.invoke("dev.churn-endpoint", "text/csv", csv_rows(&rows), INVOKER).await.status(), 200);
    assert_eq!(server.invoke("staging.churn-endpoint", "text/csv", csv_rows(&rows), INVOKER).await.status(), 409);
    assert_eq!(server.invoke("churn-endpoint", "text/csv", csv_rows(&rows), INVOKER).await.status(), 404);

    // The compat status shows the waiting manual approval.
    let status = server.compat_status(&id).await;
    assert_eq!(status["stageStates"][1]["stageName"], "DeployDev");
    assert_eq!(status["stageStates"][1]["actionStates"][1]["actionName"], "DeployStaging");
    assert_eq!(status["stageStates"][1]["actionStates"][1]["latestExecution"]["status"], "InProgress");

    // Operators and viewers may not approve; approvers may.
    for token in [OPERATOR, VIEWER, INVOKER] {
        let refused = approve(&server, &id, "staging", token, "approve").await;
        assert_eq!(refused.status(), 403);
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(approve(&server, &id, "staging", "wrong-token", "approve").await.status(), 401);
    assert_eq!(approve(&server, &id, "prod", APPROVER, "approve").await.status(), 409, "prod is not waiting yet");
    let approved = approve(&server, &id, "staging", APPROVER, "approve").await;
    assert_eq!(approved.status(), 200);

    let p = server.wait_for(&id, "awaiting_approval").await;
    assert_eq!(p["stages"][1]["state"], "deployed");
    assert_eq!(p["stages"][1]["approved_by"], "anna-approver");
    assert_eq!(server.invoke("staging.churn-endpoint", "text/csv", csv_rows(&rows), INVOKER).await.status(), 200);
    assert_eq!(approve(&server, &id, "2", ADMIN, "approve").await.status(), 200, "stages by ordinal; admins approve");
    let p = server.wait_for(&id, "active").await;
    assert!(p["stages"].as_array().unwrap().iter().all(|s| s["state"] == "deployed"));

    let events = server.events(&id).await;
    let approvals: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "stage.approved").collect();
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0]["actor"], "anna-approver");
    assert_eq!(approvals[0]["message"], "approve staging");
    assert_eq!(approvals[1]["actor"], "root");
    let transitions: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "pipeline.state_changed")
        .map(|e| format!("{}->{}", e["from_state"].as_str().unwrap(), e["to_state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        transitions,
        [
            "pending->provisioning",
            "provisioning->awaiting_approval",
            "awaiting_approval->provisioning",
            "provisioning->awaiting_approval",
            "awaiting_approval->provisioning",
            "provisioning->active",
        ]
    );
    // Every stage's own transitions, in order, each with who caused it.
    for (ordinal, want) in [
        (0, vec!["pending->deploying by system", "deploying->deployed by system"]),
        (
            1,
            vec![
                "pending->awaiting_approval by system",
                "awaiting_approval->deploying by anna-approver",
                "deploying->deployed by system",
            ],
        ),
        (
            2,
            vec![
                "pending->awaiting_approval by system",
                "awaiting_approval->deploying by root",
                "deploying->deployed by system",
            ],
        ),
    ] {
        let got: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "stage.state_changed" && e["stage_ordinal"] == ordinal)
            .map(|e| {
                format!(
                    "{}->{} by {}",
                    e["from_state"].as_str().unwrap(),
                    e["to_state"].as_str().unwrap(),
                    e["actor"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(got, want, "stage {ordinal}");
    }
    let deployed = events.as_array().unwrap().iter().filter(|e| e["kind"] == "endpoint.in_service").count();
    assert_eq!(deployed, 3);
    server.stop().await;
}

async fn rejection_stops_promotion(db: TestDb) {
    let server = start_three_environments(db).await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "awaiting_approval").await;
    assert_eq!(approve(&server, &id, "staging", APPROVER, "reject").await.status(), 200);
    let p = server.wait_for(&id, "rejected").await;
    assert_eq!(p["stages"][1]["state"], "rejected");
    assert_eq!(p["stages"][2]["state"], "pending");
    let events = server.events(&id).await;
    let rejected = events.as_array().unwrap().iter().find(|e| e["kind"] == "stage.rejected").unwrap();
    assert_eq!(
        (rejected["actor"].as_str(), rejected["message"].as_str()),
        (Some("anna-approver"), Some("reject staging"))
    );
    // A rejected pipeline can be provisioned again.
    let again = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    assert_eq!(
        again["message"],
        "Pipeline mlops-pipeline-churn-byompipelinerealtimebuiltin-codepipeline is already provisioned. Updating template parameters."
    );
    server.wait_for(&id, "awaiting_approval").await;
    server.stop().await;
}

/// Every later stage deploys the bytes the first stage deployed: replacing the asset after dev
/// changes nothing for staging or prod.
async fn promotion_deploys_the_bytes_the_first_stage_deployed(db: TestDb) {
    let server = start_three_environments(db).await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = server.wait_for(&id, "awaiting_approval").await;
    let dev_sha = p["stages"][0]["outputs"]["model_sha256"].as_str().unwrap().to_string();
    // Someone replaces the artifact while staging waits for its approval.
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/count_poisson.json").await;
    assert_eq!(approve(&server, &id, "staging", APPROVER, "approve").await.status(), 200);
    server.wait_until(&id, |p| p["stages"][2]["state"] == "awaiting_approval").await;
    assert_eq!(approve(&server, &id, "prod", APPROVER, "approve").await.status(), 200);
    let p = server.wait_for(&id, "active").await;
    for stage in 1..3 {
        assert_eq!(p["stages"][stage]["outputs"]["model_sha256"], dev_sha.as_str(), "stage {stage}");
    }
    // The same rows give the same answers in every environment.
    let rows = fixture_json("xgboost/binary_logistic.cases.json")["rows"].as_array().unwrap()[..5].to_vec();
    let mut answers = Vec::new();
    for env in ["dev", "staging", "prod"] {
        let response = server.invoke(&format!("{env}.churn-endpoint"), "text/csv", csv_rows(&rows), INVOKER).await;
        assert_eq!(response.status(), 200);
        answers.push(response.text().await.unwrap());
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    server.stop().await;
}

/// An approval names the version it approves: another version is a 409, none is a 400.
async fn approvals_name_the_version_they_approve(db: TestDb) {
    let server = start_three_environments(db).await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "awaiting_approval").await;
    let url = format!("/v1/pipelines/{id}/stages/staging/approval");
    let missing = server.post(&url, APPROVER).json(&json!({"decision": "approve"})).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/version", "{problem:#}");
    // The operator re-provisions (version 2) while the approver looks at version 1.
    server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    server.wait_until(&id, |p| p["version"] == 2 && p["state"] == "awaiting_approval").await;
    let stale = server.post(&url, APPROVER).json(&json!({"decision": "approve", "version": 1})).send().await.unwrap();
    assert_eq!(stale.status(), 409);
    let problem: Value = stale.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("version 1"), "{problem:#}");
    let p = server.pipeline(&id).await;
    assert_eq!(p["stages"][1]["state"], "awaiting_approval", "the stale decision changed nothing");
    let current = server.post(&url, APPROVER).json(&json!({"decision": "approve", "version": 2})).send().await.unwrap();
    assert_eq!(current.status(), 200);
    server.stop().await;
}

on_both_stores!(
    promotion_needs_an_approver_at_each_step,
    rejection_stops_promotion,
    promotion_deploys_the_bytes_the_first_stage_deployed,
    approvals_name_the_version_they_approve,
);
