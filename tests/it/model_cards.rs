//! Model cards on the local target: the solution's six operations through `/provisionpipeline`
//! and the `/v1/model-cards` resources, on both stores. The overview is filled from our own
//! pipeline, evaluation metrics from a Model Monitor statistics file, every version is kept,
//! content outside SageMaker's schema is refused naming the field, and an export is a PDF that
//! an independent reader (pypdf) opens: page count, title, text.

use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::aws::moto::python_bin;
use crate::support::server::{OPERATOR, VIEWER};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

async fn compat(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    let response = server.post("/provisionpipeline", token).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.get(path, VIEWER).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn asset(server: &TestServer, key: &str) -> Vec<u8> {
    let response = server.get(&format!("/v1/assets/{key}"), VIEWER).send().await.unwrap();
    assert_eq!(response.status(), 200, "{key}");
    response.bytes().await.unwrap().to_vec()
}

/// pypdf's reading of a PDF: `{pages, title, text: [...]}`.
fn read_pdf(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.pdf");
    std::fs::write(&path, bytes).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model_cards/read_pdf.py");
    let out = std::process::Command::new(python_bin().join("python"))
        .arg(script)
        .arg(&path)
        .output()
        .expect("the CI venv's python (run .ci/run, or set CI_PYTHON_BIN)");
    assert!(out.status.success(), "read_pdf.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn schema_errors(content: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("../../docs/schemas/model-card.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator.iter_errors(content).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// Problems of a `/provisionpipeline` answer against the committed OpenAPI document's schema.
fn answer_problems(answer: &Value) -> Vec<String> {
    let document: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let schema = json!({"$ref": "#/components/schemas/ProvisionAnswer", "components": document["components"]});
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator.iter_errors(answer).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

fn content_of(described: &Value) -> Value {
    serde_json::from_str(described["Content"].as_str().expect("Content is a string, as SageMaker's")).unwrap()
}

async fn the_six_operations_on_the_local_target(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/churn.json", "xgboost/binary_logistic.json").await;
    let id = server.provision(&realtime_body("churn", "models/churn.json")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A Model Monitor model-quality statistics file, as the solution's users point cards at.
    let statistics = json!({"version": 0.0, "dataset": {"item_count": 200},
        "binary_classification_metrics": {
            "accuracy": {"value": 0.915, "standard_deviation": 0.0021},
            "auc": {"value": 0.97, "standard_deviation": 0.0012},
            "confusion_matrix": {"0": {"0": 90, "1": 7}, "1": {"0": 10, "1": 93}}}});
    assert_eq!(server.put_asset("evaluation/statistics.json", statistics.to_string().into_bytes()).await.status(), 201);

    let create = json!({
        "pipeline_type": "create_model_card",
        "name": "churn-card",
        "model_overview": {"model_name": "churn", "model_description": "Who will leave next quarter",
                           "model_creator": "growth team", "ignored_key": "dropped as the solution drops it"},
        "intended_uses": {"purpose_of_model": "Churn prevention", "risk_rating": "Medium"},
        "training_details": {"objective_function": {"function": "Maximize", "facet": "AUC"},
                             "training_observations": "converged after 80 rounds",
                             "training_job_details": {"training_arn": "local-training-1",
                                                      "training_datasets": ["s3://assets/data/train.csv"],
                                                      "training_metrics": [{"name": "train:auc", "value": 0.98}]}},
        "evaluation_details": [
            {"name": "holdout", "metric_file_s3_url": "s3://assets/evaluation/statistics.json",
             "metric_type": "binary_classification"},
            {"name": "manual", "evaluation_observation": "checked by hand",
             "metric_groups": [{"name": "fairness", "metric_data": [{"name": "DPPL", "type": "number", "value": 0.02}]}]},
        ],
        "additional_information": {"custom_details": {"department": "marketing"}},
    });
    // Bad content is refused naming the field, and nothing is stored.
    let mut bad = create.clone();
    bad["intended_uses"]["risk_rating"] = json!("Extreme");
    bad["training_details"]["objective_function"]["facet"] = json!("F1");
    let (status, problem) = compat(&server, OPERATOR, bad).await;
    assert_eq!(status, 400, "{problem:#}");
    let pointers: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().filter_map(|e| e["pointer"].as_str()).collect();
    assert_eq!(pointers, ["/intended_uses/risk_rating", "/training_details/objective_function/facet"]);
    let mut unknown_model = create.clone();
    unknown_model["model_overview"]["model_name"] = json!("nobody");
    let (status, problem) = compat(&server, OPERATOR, unknown_model).await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/model_overview/model_name")));
    let mut missing_file = create.clone();
    missing_file["evaluation_details"][0]["metric_file_s3_url"] = json!("s3://assets/evaluation/none.json");
    let (status, problem) = compat(&server, OPERATOR, missing_file).await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (400, Some("/evaluation_details/0/metric_file_s3_url")),
        "{problem:#}"
    );
    assert_eq!(compat(&server, VIEWER, create.clone()).await.0, 403);
    let (_, listed) = compat(&server, OPERATOR, json!({"pipeline_type": "list_model_cards"})).await;
    assert_eq!(listed["message"]["ModelCardSummaries"], json!([]));

    // create_model_card answers with DescribeModelCard, as the solution does.
    let (status, created) = compat(&server, OPERATOR, create.clone()).await;
    assert_eq!(status, 200, "{created:#}");
    let described = &created["message"];
    assert_eq!(described["ModelCardName"], "churn-card");
    assert_eq!(described["ModelCardVersion"], 1);
    assert_eq!(described["ModelCardStatus"], "Draft", "the solution's default status");
    assert!(described["ModelCardArn"].as_str().unwrap().ends_with(":model-card/churn-card"));
    let content = content_of(described);
    assert_eq!(schema_errors(&content), Vec::<String>::new());
    let overview = &content["model_overview"];
    assert_eq!(overview["model_id"], id.as_str(), "filled from our pipeline");
    assert_eq!(overview["model_name"], "churn");
    assert_eq!(overview["model_artifact"], json!(["s3://assets/models/churn.json"]));
    assert_eq!(
        overview["inference_environment"]["container_image"],
        json!(["mlops-orchestrator/builtin/xgboost:1.2-2"])
    );
    assert_eq!(overview["model_creator"], "growth team");
    assert!(overview.get("ignored_key").is_none());
    let holdout = &content["evaluation_details"][0];
    assert_eq!(holdout["name"], "holdout");
    let metrics = holdout["metric_groups"][0]["metric_data"].as_array().unwrap();
    let auc = metrics.iter().find(|m| m["name"] == "auc").unwrap();
    assert_eq!((auc["type"].as_str(), auc["value"].as_f64()), (Some("number"), Some(0.97)));
    let matrix = metrics.iter().find(|m| m["name"] == "confusion_matrix").unwrap();
    assert_eq!(matrix["value"], json!([[90, 7], [10, 93]]));
    assert_eq!(content["training_details"]["objective_function"]["function"]["facet"], "AUC");
    assert_eq!(compat(&server, OPERATOR, create.clone()).await.0, 409, "the name is taken");

    // update_model_card: a new version; sections not given stay.
    let long_caveats = "Retrain monthly; the model drifts with seasonal pricing campaigns.\n".repeat(30);
    let (status, updated) = compat(
        &server,
        OPERATOR,
        json!({"pipeline_type": "update_model_card", "name": "churn-card", "status": "PendingReview",
               "additional_information": {"caveats_and_recommendations": long_caveats}}),
    )
    .await;
    assert_eq!(status, 200, "{updated:#}");
    assert_eq!(
        (updated["message"]["ModelCardVersion"].as_i64(), updated["message"]["ModelCardStatus"].as_str()),
        (Some(2), Some("PendingReview"))
    );
    let content2 = content_of(&updated["message"]);
    assert_eq!(content2["model_overview"], content["model_overview"]);
    assert_eq!(
        content2["additional_information"]["custom_details"],
        Value::Null,
        "a given section replaces the card's"
    );
    let (status, _) = compat(
        &server,
        OPERATOR,
        json!({"pipeline_type": "update_model_card", "name": "nobody", "status": "Approved"}),
    )
    .await;
    assert_eq!(status, 404);

    // describe / list, and the /v1 resources beside them.
    let (_, described) =
        compat(&server, OPERATOR, json!({"pipeline_type": "describe_model_card", "name": "churn-card"})).await;
    assert_eq!(described["message"]["ModelCardVersion"], 2);
    let (_, listed) = compat(&server, OPERATOR, json!({"pipeline_type": "list_model_cards"})).await;
    let summaries = listed["message"]["ModelCardSummaries"].as_array().unwrap();
    assert_eq!((summaries.len(), summaries[0]["ModelCardStatus"].as_str()), (1, Some("PendingReview")));
    let (_, versions) = get(&server, "/v1/model-cards/churn-card/versions").await;
    let statuses: Vec<&str> =
        versions["items"].as_array().unwrap().iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Draft", "PendingReview"]);
    let (_, first) = get(&server, "/v1/model-cards/churn-card/versions/1").await;
    assert_eq!(
        (first["content"]["intended_uses"]["risk_rating"].as_str(), first["modified_by"].as_str()),
        (Some("Medium"), Some("olga-operator"))
    );
    assert_eq!(get(&server, "/v1/model-cards/churn-card/versions/9").await.0, 404);

    // export_model_card: a PDF (and HTML) under the assets bucket's model_card_exports/.
    let (status, exported) = compat(
        &server,
        OPERATOR,
        json!({"pipeline_type": "export_model_card", "name": "churn-card", "export_job_name": "churn-card-v1",
               "model_card_version": "1"}),
    )
    .await;
    assert_eq!(status, 200, "{exported:#}");
    assert_eq!(
        exported["message"],
        "Model card with the name: churn-card has been exported to s3://assets/model_card_exports"
    );
    let pdf = read_pdf(&asset(&server, "model_card_exports/churn-card/churn-card-v1/churn-card.pdf").await);
    assert_eq!(pdf["title"], "churn-card");
    let pages = pdf["pages"].as_u64().unwrap();
    assert!((1..=2).contains(&pages), "{pdf:#}");
    let first = pdf["text"][0].as_str().unwrap();
    for expected in
        ["churn-card", "version 1", "Draft", "Model overview", "Churn prevention", &format!("page 1 of {pages}")]
    {
        assert!(first.contains(expected), "{expected:?} not on the first page:\n{first}");
    }
    let all: String = pdf["text"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for expected in ["Evaluation details", "holdout", "auc", "0.97", "Department", "marketing"] {
        assert!(all.contains(expected), "{expected:?} not in the document:\n{all}");
    }
    assert_eq!(
        compat(
            &server,
            OPERATOR,
            json!({"pipeline_type": "export_model_card", "name": "churn-card",
        "export_job_name": "churn-card-v1"})
        )
        .await
        .0,
        409,
        "the export job name is taken"
    );

    // The latest version, with its long caveats, runs over several pages.
    let response = server.post("/v1/model-cards/churn-card/exports", OPERATOR).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let export: Value = response.json().await.unwrap();
    assert_eq!(export["version"], 2);
    let key = export["pdf"].as_str().unwrap().strip_prefix("s3://assets/").unwrap().to_string();
    let pdf = read_pdf(&asset(&server, &key).await);
    let pages = pdf["pages"].as_u64().unwrap();
    assert!(pages >= 3, "{pages} pages");
    let last = pdf["text"][pages as usize - 1].as_str().unwrap();
    assert!(last.contains(&format!("page {pages} of {pages}")), "{last}");
    let html_key = export["html"].as_str().unwrap().strip_prefix("s3://assets/").unwrap().to_string();
    let html = String::from_utf8(asset(&server, &html_key).await).unwrap();
    assert!(html.contains("<title>churn-card</title>") && html.contains("Retrain monthly"), "{html}");

    // Each answer is one of the two documented shapes (a card's message, or a pipeline's).
    let pipeline = server.provision(&realtime_body("churn", "models/churn.json")).await;
    for answer in [&created, &listed, &exported, &pipeline] {
        assert_eq!(answer_problems(answer), Vec::<String>::new(), "{answer:#}");
    }

    // delete_model_card: gone, versions and all.
    let (status, deleted) =
        compat(&server, OPERATOR, json!({"pipeline_type": "delete_model_card", "name": "churn-card"})).await;
    assert_eq!(
        (status, deleted["message"].as_str()),
        (200, Some("Model card with the name: churn-card has been deleted"))
    );
    assert_eq!(answer_problems(&deleted), Vec::<String>::new());
    assert_eq!(
        compat(&server, OPERATOR, json!({"pipeline_type": "describe_model_card", "name": "churn-card"})).await.0,
        404
    );
    assert_eq!(get(&server, "/v1/model-cards/churn-card/versions").await.0, 404);
    assert_eq!(get(&server, "/v1/model-cards").await.1["items"], json!([]));
    server.stop().await;
}

on_both_stores!(the_six_operations_on_the_local_target);
