//! A pipeline's life after it first goes active: re-provisioning with new parameters, failures
//! that name their cause, deletion, and the `/v1` listing and dry run.

use crate::on_both_stores;
use crate::support::api::{csv_rows, fixture_json, realtime_body};
use crate::support::server::{INVOKER, OPERATOR, VIEWER};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

fn first_rows(fixture: &str, n: usize) -> (String, Vec<Value>) {
    let cases = fixture_json(fixture);
    let rows = cases["rows"].as_array().unwrap()[..n].to_vec();
    let predictions = cases["predictions"].as_array().unwrap()[..n].to_vec();
    (csv_rows(&rows), predictions)
}

async fn reprovision_redeploys_and_delete_tears_down(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/a/model.tar.gz", "xgboost/model.tar.gz").await;
    server.upload_fixture("models/b/model.json", "xgboost/base_score_logistic.json").await;
    let id = server.provision(&realtime_body("churn", "models/a/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;
    let (csv, _) = first_rows("xgboost/base_score_logistic.cases.json", 2);
    let before = server.invoke("churn-endpoint", "text/csv", csv.clone(), INVOKER).await.text().await.unwrap();

    // Same type and name, new model (a bare JSON model file this time): version 2, same id.
    let out = server.provision(&realtime_body("churn", "models/b/model.json")).await;
    assert_eq!(out["pipeline_id"], id);
    assert!(out["message"].as_str().unwrap().contains("is already provisioned. Updating template parameters."));
    let p = server.wait_for(&id, "active").await;
    assert_eq!(p["version"], 2);
    assert_eq!(p["stages"][0]["params"]["model"]["artifact"], "models/b/model.json");
    let (_, expected) = first_rows("xgboost/base_score_logistic.cases.json", 2);
    let after = server.invoke("churn-endpoint", "text/csv", csv, INVOKER).await.text().await.unwrap();
    assert_ne!(before, after, "the new model answers");
    let got: Vec<f64> = after.lines().map(|l| l.parse().unwrap()).collect();
    for (g, e) in got.iter().zip(&expected) {
        crate::support::api::assert_close(*g, e[0].as_f64().unwrap(), "redeployed model");
    }
    let endpoint: Value =
        server.get("/v1/endpoints/churn-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(endpoint["revision"], 2);
    assert_eq!(endpoint["state"], "in_service");
    assert_eq!(endpoint["model"]["artifact"], "models/b/model.json");

    let deleted =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(deleted.status(), 202);
    server.wait_for(&id, "deleted").await;
    let gone = server.invoke("churn-endpoint", "text/csv", "1,2".into(), INVOKER).await;
    assert_eq!(gone.status(), 404);
    let list: Value = server.get("/v1/endpoints", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([]));
    let again =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(again.status(), 404);
    server.stop().await;
}

async fn unloadable_models_fail_the_pipeline_with_the_reason(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/pickled", "xgboost/model.pkl").await;
    let pickled = server.provision(&realtime_body("pickled", "models/pickled")).await;
    let p = server.wait_for(pickled["pipeline_id"].as_str().unwrap(), "failed").await;
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains("save_model(\"model.json\")"), "{error}");
    assert_eq!(p["stages"][0]["state"], "failed");

    let missing = server.provision(&realtime_body("missing", "models/nowhere/model.tar.gz")).await;
    let p = server.wait_for(missing["pipeline_id"].as_str().unwrap(), "failed").await;
    assert!(p["last_error"].as_str().unwrap().contains("is not in the assets bucket"), "{p:#}");
    let status = server.compat_status(p["id"].as_str().unwrap()).await;
    let action = &status["stageStates"][1]["actionStates"][0]["latestExecution"];
    assert_eq!(action["status"], "Failed");
    assert!(action["errorDetails"]["message"].as_str().unwrap().contains("is not in the assets bucket"));
    server.stop().await;
}

async fn list_and_dry_run(db: TestDb) {
    let server = TestServer::start(db).await;
    let plan: Value = server
        .post("/v1/pipelines?dry_run=true", OPERATOR)
        .json(&realtime_body("planned", "models/x/model.tar.gz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["stages"][0]["environment"], "default");
    assert_eq!(plan["stages"][0]["params"]["endpoint_name"], "planned-endpoint");
    assert_eq!(plan["stages"][0]["params"]["data_capture_location"], "my-bucket/datacapture/churn");
    assert_eq!(server.db.store.row_counts().await.unwrap(), Default::default(), "a dry run stores nothing");

    for i in 0..5 {
        let response =
            server.post("/v1/pipelines", OPERATOR).json(&realtime_body(&format!("m{i}"), "k/m")).send().await.unwrap();
        assert_eq!(response.status(), 201);
    }
    let again = server.post("/v1/pipelines", OPERATOR).json(&realtime_body("m0", "k/m")).send().await.unwrap();
    assert_eq!(again.status(), 200, "an update is not a creation");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/pipelines?limit=2&cursor={c}"),
            None => "/v1/pipelines?limit=2".to_string(),
        };
        let page: Value = server.get(&path, VIEWER).send().await.unwrap().json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
    let bad = server.get("/v1/pipelines?limit=0", VIEWER).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let filtered: Value = server
        .get("/v1/pipelines?pipeline_type=byom_batch_builtin", VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"], json!([]));
    server.stop().await;
}

async fn a_replaced_asset_does_not_change_a_deployed_endpoint(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/m", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/m")).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    let (csv, expected) = first_rows("xgboost/binary_logistic.cases.json", 3);
    let before = server.invoke("churn-endpoint", "text/csv", csv.clone(), INVOKER).await.text().await.unwrap();

    // Someone overwrites the asset; a restarted replica loads the deployed snapshot, not it.
    server.upload_fixture("models/m", "xgboost/base_score_logistic.json").await;
    let db = server.stop().await;
    let server = TestServer::start(db).await;
    let after = server.invoke("churn-endpoint", "text/csv", csv, INVOKER).await.text().await.unwrap();
    assert_eq!(before, after);
    for (line, want) in after.lines().zip(&expected) {
        crate::support::api::assert_close(line.parse().unwrap(), want[0].as_f64().unwrap(), "snapshot");
    }
    server.stop().await;
}

/// Hostile model files fail the deploy with a clear message, and the server goes on serving.
async fn hostile_models_fail_the_deploy_and_the_server_lives_on(db: TestDb) {
    use flate2::{Compression, write::GzEncoder};
    let mut settings = crate::support::server::test_settings(&db);
    let cap: usize = 8 * 1024 * 1024;
    settings.serving.max_model_bytes = cap as u64;
    settings.serving.model_limits.max_memory_bytes = 64 * 1024 * 1024;
    let server = TestServer::start_with(db, settings).await;

    // A few kilobytes of model.tar.gz that unpack to the size cap (the tar's header and end
    // blocks take the last 4 KiB): a UBJSON array of nulls, which would take 32 bytes of memory
    // per input byte if decoded naively.
    let mut ubjson = b"{i\x07learner[".to_vec();
    ubjson.resize(cap - 4096 - 2, b'Z');
    ubjson.extend_from_slice(b"]}");
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    let mut header = tar::Header::new_gnu();
    header.set_size(ubjson.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "xgboost-model", ubjson.as_slice()).unwrap();
    let bomb = tar.into_inner().unwrap().finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    assert_eq!(server.put_asset("models/bomb", bomb).await.status(), 201);

    // A model declaring 2^40 classes (one base score would be allocated per class).
    let mut huge = fixture_json("xgboost/multi_softprob.json");
    huge["learner"]["learner_model_param"]["num_class"] = json!((1u64 << 40).to_string());
    assert_eq!(server.put_asset("models/huge.json", serde_json::to_vec(&huge).unwrap()).await.status(), 201);

    for (name, key, expected) in [
        ("bomb", "models/bomb", "serving.model_limits.max_memory_bytes"),
        ("huge", "models/huge.json", "serving.model_limits.max_classes"),
    ] {
        let out = server.provision(&realtime_body(name, key)).await;
        let p = server.wait_for(out["pipeline_id"].as_str().unwrap(), "failed").await;
        let error = p["last_error"].as_str().unwrap();
        assert!(error.contains(expected), "{name}: {error}");
    }
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200, "still serving");
    server.stop().await;
}

on_both_stores!(
    hostile_models_fail_the_deploy_and_the_server_lives_on,
    a_replaced_asset_does_not_change_a_deployed_endpoint,
    reprovision_redeploys_and_delete_tears_down,
    unloadable_models_fail_the_pipeline_with_the_reason,
    list_and_dry_run
);
