//! The local target's model registry: groups and numbered versions with SageMaker's
//! `ModelApprovalStatus`; `model_package_name` resolves to an approved version's artifact and
//! framework on the local target (a pending one fails the deploy with the reason); approving
//! needs the approver role and every decision is kept with who made it.

use crate::on_both_stores;
use crate::support::server::{APPROVER, INVOKER, OPERATOR, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = server.post(path, token).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn a_registered_model_serves_once_approved(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.use_model_registry = true;
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn.json", "xgboost/binary_logistic.json").await;

    let (status, group) =
        post(&server, "/v1/model-package-groups", OPERATOR, json!({"name": "churn-models", "description": "churn"}))
            .await;
    assert_eq!(status, 201, "{group:#}");
    assert_eq!((group["name"].as_str(), group["created_by"].as_str()), (Some("churn-models"), Some("olga-operator")));
    assert_eq!(post(&server, "/v1/model-package-groups", OPERATOR, json!({"name": "churn-models"})).await.0, 409);
    let (status, problem) = post(&server, "/v1/model-package-groups", OPERATOR, json!({"name": "churn_models"})).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/name")), "{problem:#}");

    let packages = "/v1/model-package-groups/churn-models/packages";
    let register = json!({"model_artifact_location": "models/churn.json", "model_framework": "xgboost",
        "model_framework_version": "1.7-1", "description": "first"});
    let (status, v1) = post(&server, packages, OPERATOR, register.clone()).await;
    assert_eq!(status, 201, "{v1:#}");
    assert_eq!((v1["version"].as_i64(), v1["approval_status"].as_str()), (Some(1), Some("PendingManualApproval")));
    let arn = v1["model_package_arn"].as_str().unwrap().to_string();
    assert!(arn.ends_with(":model-package/churn-models/1"), "{arn}");
    let (_, v2) = post(&server, packages, OPERATOR, register.clone()).await;
    assert_eq!(v2["version"], 2, "versions are numbered in the group");
    let mut missing = register.clone();
    missing["model_artifact_location"] = json!("models/nowhere.json");
    let (status, problem) = post(&server, packages, OPERATOR, missing).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/model_artifact_location")));
    let mut framework = register.clone();
    framework["model_framework"] = json!("linear-learner");
    let (status, problem) = post(&server, packages, OPERATOR, framework).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/model_framework")));
    assert_eq!(post(&server, "/v1/model-package-groups/nobody/packages", OPERATOR, register).await.0, 404);

    // Deployed while pending: the deploy fails saying why.
    let body = json!({
        "pipeline_type": "byom_realtime_builtin",
        "model_name": "churn",
        "model_package_name": arn,
        "inference_instance": "ml.m5.large",
        "data_capture_location": "my-bucket/datacapture/churn",
        "endpoint_name": "churn-endpoint",
    });
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let failed = server.wait_for(&id, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("churn-models/1 is PendingManualApproval"), "{error}");

    // Approving needs the approver role; the decision is kept with who made it.
    let approval = format!("{packages}/1/approval");
    let decision = json!({"status": "Approved", "comment": "AUC 0.97 on holdout"});
    assert_eq!(post(&server, &approval, OPERATOR, decision.clone()).await.0, 403);
    let (status, problem) = post(&server, &approval, APPROVER, json!({"status": "Fine"})).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/status")));
    let (status, approved) = post(&server, &approval, APPROVER, decision).await;
    assert_eq!(status, 200, "{approved:#}");
    assert_eq!(approved["approval_status"], "Approved");
    let recorded = &approved["decisions"][0];
    assert_eq!(
        (recorded["actor"].as_str(), recorded["status"].as_str(), recorded["comment"].as_str()),
        (Some("anna-approver"), Some("Approved"), Some("AUC 0.97 on holdout"))
    );
    let (_, rejected) = post(&server, &format!("{packages}/2/approval"), APPROVER, json!({"status": "Rejected"})).await;
    assert_eq!(rejected["approval_status"], "Rejected");

    // Approved: the same request deploys the version's artifact, any ARN naming it resolves.
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_until(&id, |p| p["state"] == "active").await;
    let endpoint: Value =
        server.get("/v1/endpoints/churn-endpoint", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(endpoint["model"]["artifact"], "models/churn.json", "{endpoint:#}");
    assert_eq!(endpoint["model"]["framework"], "xgboost");
    let answer = server.invoke("churn-endpoint", "text/csv", vec!["0"; 30].join(","), INVOKER).await;
    assert_eq!(answer.status(), 200);
    let p: f64 = answer.text().await.unwrap().trim().parse().unwrap();
    assert!((0.0..=1.0).contains(&p));

    let listed: Value = server.get(packages, VIEWER).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|v| v["approval_status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Approved", "Rejected"]);

    // From a training job's output, where SageMaker writes it: <job_output_location>/<job>/output.
    let from_job = json!({"training_job_name": "churn-train-7", "job_output_location": "training-output/",
                          "model_framework": "xgboost"});
    let (status, problem) = post(&server, packages, OPERATOR, from_job.clone()).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/training_job_name")), "{problem:#}");
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("training-output/churn-train-7/output/model.tar.gz")
    );
    server.upload_fixture("training-output/churn-train-7/output/model.tar.gz", "xgboost/model.tar.gz").await;
    let (status, v3) = post(&server, packages, OPERATOR, from_job.clone()).await;
    assert_eq!(status, 201, "{v3:#}");
    assert_eq!(
        (v3["version"].as_i64(), v3["artifact"].as_str()),
        (Some(3), Some("training-output/churn-train-7/output/model.tar.gz"))
    );
    let mut both = from_job.clone();
    both["model_artifact_location"] = json!("models/churn.json");
    assert_eq!(post(&server, packages, OPERATOR, both).await.0, 400);
    let mut no_output = from_job;
    no_output.as_object_mut().unwrap().remove("job_output_location");
    let (status, problem) = post(&server, packages, OPERATOR, no_output).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/job_output_location")));

    let groups: Value = server.get("/v1/model-package-groups", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(groups["items"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

on_both_stores!(a_registered_model_serves_once_approved);
