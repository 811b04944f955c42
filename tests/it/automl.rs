//! `model_autopilot_training` on the local target: XGBoost candidates trained by xgboost itself
//! (the CI venv's, via `training.python`), the best chosen by the job's objective on the
//! hold-out split, its model served by `byom_realtime_builtin` — predictions equal xgboost's own
//! for that file, and the reported objective equals the metric recomputed from what we serve.
//! Bad data fails the pipeline with the file, line and column.

use crate::on_both_stores;
use crate::support::aws::moto::python_bin;
use crate::support::server::{INVOKER, VIEWER, test_settings};
use crate::support::{Db, TestDb, TestServer};
use serde_json::{Value, json};

/// A learnable binary problem with labels `no`/`yes`, the target in the middle of the header and
/// a few missing values: `yes` when x0 + 2·x1 − x2 (+ noise) > 0.
pub fn training_csv(rows: usize, target: &str) -> String {
    dataset(rows, target, |x, noise| if x[0] + 2.0 * x[1] - x[2] + noise > 0.0 { "yes" } else { "no" }.to_string())
}

/// `rows` rows of five features in [-1, 1) and the target `label(features, noise)` as the third
/// column; a linear congruential generator keeps them the same on every run.
pub fn dataset(rows: usize, target: &str, label: impl Fn(&[f64], f64) -> String) -> String {
    let mut state: u64 = 42;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut out = format!("a,b,{target},c,d,e\n");
    for i in 0..rows {
        let x: Vec<f64> = (0..5).map(|_| next()).collect();
        let y = label(&x, 0.2 * next());
        let field = |j: usize| if i % 23 == 0 && j == 3 { String::new() } else { format!("{:.6}", x[j]) };
        out.push_str(&format!("{},{},{y},{},{},{}\n", field(0), field(1), field(2), field(3), field(4)));
    }
    out
}

fn autopilot_body(candidates: u32) -> Value {
    json!({
        "pipeline_type": "model_autopilot_training",
        "model_name": "churn",
        "job_name": "churn-automl",
        "training_data": "train/churn.csv",
        "target_attribute": "churned",
        "job_output_location": "automl-output",
        "job_max_candidates": candidates.to_string(),
    })
}

pub async fn server_with_trainer(db: TestDb) -> TestServer {
    let mut settings = test_settings(&db);
    settings.training.python = Some(python_bin().join("python").display().to_string());
    TestServer::start_with(db, settings).await
}

pub async fn get_asset(server: &TestServer, key: &str) -> Vec<u8> {
    let response = server.get(&format!("/v1/assets/{key}"), VIEWER).send().await.unwrap();
    assert_eq!(response.status(), 200, "{key}");
    response.bytes().await.unwrap().to_vec()
}

/// Deploys the XGBoost model at asset `model` as endpoint `endpoint` and returns its answers for
/// `rows` (CSV lines without labels): one list of outputs per row.
pub async fn deploy_and_score(server: &TestServer, model: &str, endpoint: &str, rows: &str) -> Vec<Vec<f64>> {
    let mut body = crate::support::api::realtime_body(endpoint, model);
    body["endpoint_name"] = json!(endpoint);
    let deployed = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&deployed, "active").await;
    let answer = server.invoke(endpoint, "text/csv", rows.to_string(), INVOKER).await;
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// xgboost's own predictions for `model.tar.gz`'s booster on CSV feature rows.
pub fn xgboost_predicts(model_tar_gz: &[u8], rows_csv: &str) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.tar.gz"), model_tar_gz).unwrap();
    std::fs::write(dir.path().join("rows.csv"), rows_csv).unwrap();
    let script = r#"
import json, sys, tarfile, numpy as np, xgboost as xgb
d = sys.argv[1]
tarfile.open(d + "/model.tar.gz").extractall(d, filter="data")
booster = xgb.Booster(model_file=d + "/xgboost-model")
rows = [[float(v) if v else np.nan for v in line.split(",")] for line in open(d + "/rows.csv").read().splitlines()]
print(json.dumps(booster.predict(xgb.DMatrix(np.asarray(rows))).tolist()))
"#;
    let out = std::process::Command::new(python_bin().join("python"))
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .expect("the CI venv's python (run .ci/run, or set CI_PYTHON_BIN)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn an_automl_job_trains_candidates_and_its_best_model_serves(db: TestDb) {
    let server = server_with_trainer(db).await;
    let csv = training_csv(500, "churned");
    assert_eq!(server.put_asset("train/churn.csv", csv.into_bytes()).await.status(), 201);
    let id = server.provision(&autopilot_body(4)).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for_longer(&id, "active").await;

    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["AutopilotJobName"], "churn-automl", "{outputs:#}");
    assert_eq!(outputs["AutopilotJobOutputLocation"], "automl-output");
    assert_eq!(outputs["problem_type"], "BinaryClassification");
    assert_eq!(outputs["objective"], "F1", "Autopilot's default for binary problems");
    assert_eq!(outputs["candidates"], 4);
    let result: Value =
        serde_json::from_slice(&get_asset(&server, "automl-output/churn-automl/result.json").await).unwrap();
    assert_eq!(result["Labels"], json!(["no", "yes"]));
    assert_eq!(result["FeatureNames"], json!(["a", "b", "c", "d", "e"]));
    assert_eq!(result["Rows"], json!({"train": 400, "validation": 100, "dropped_without_target": 0}));
    // Candidates best first; the best is the outputs' and the highest F1.
    let values: Vec<f64> = result["Candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["FinalAutoMLJobObjectiveMetric"]["Value"].as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 4);
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    assert_eq!(result["BestCandidate"]["CandidateName"], outputs["best_candidate"]);
    let best_f1 = values[0];
    assert!(best_f1 > 0.85, "the data is learnable: F1 {best_f1}");

    // The best model serves as a built-in XGBoost model.
    let model_key = outputs["best_candidate_model"].as_str().unwrap().to_string();
    assert!(model_key.starts_with("automl-output/churn-automl/candidates/"), "{model_key}");

    // Its answers on the validation split equal xgboost's for the same file, and give the F1
    // the job reported.
    let validation =
        String::from_utf8(get_asset(&server, "automl-output/churn-automl/data/validation.csv").await).unwrap();
    let mut lines = validation.lines();
    assert_eq!(lines.next(), Some("churned,a,b,c,d,e"));
    let (labels, rows): (Vec<&str>, Vec<&str>) = lines.map(|l| l.split_once(',').unwrap()).unzip();
    let rows_csv = rows.join("\n");
    let served: Vec<f64> =
        deploy_and_score(&server, &model_key, "churn-best", &rows_csv).await.into_iter().map(|p| p[0]).collect();
    let reference = xgboost_predicts(&get_asset(&server, &model_key).await, &rows_csv);
    assert_eq!(served.len(), reference.len());
    for (ours, theirs) in served.iter().zip(&reference) {
        assert!((ours - theirs).abs() <= 1e-5 * theirs.abs().max(1e-6), "{ours} vs xgboost {theirs}");
    }
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (p, label) in served.iter().zip(&labels) {
        match (*p >= 0.5, *label == "yes") {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            _ => {}
        }
    }
    let f1 = 2.0 * tp / (2.0 * tp + fp + fn_);
    assert!((f1 - best_f1).abs() < 1e-12, "F1 of the served model {f1}, reported {best_f1}");

    let messages = server.event_messages(&id).await;
    assert!(
        messages.iter().any(|m| m.starts_with("training data: 500 rows (400 to train, 100 to validate")),
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.starts_with("candidate 4 of 4: churn-automl-xgb-004 F1 = ")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("completed: best candidate")), "{messages:#?}");
    server.stop().await;
}

async fn an_automl_job_with_bad_data_fails_naming_where(db: TestDb) {
    let server = server_with_trainer(db).await;
    // Line `line` (1-based, the header is line 1) of the training data, changed by `edit`.
    let edited = |line: usize, edit: &dyn Fn(&mut Vec<String>)| {
        let mut lines: Vec<String> = training_csv(100, "churned").lines().map(String::from).collect();
        let mut fields: Vec<String> = lines[line - 1].split(',').map(String::from).collect();
        edit(&mut fields);
        lines[line - 1] = fields.join(",");
        lines.join("\n")
    };
    let bad_field = edited(8, &|fields| fields[3] = "high".into());
    let csv = edited(2, &|fields| fields.insert(0, "abc".into()));
    for (key, data, body_target, want) in [
        ("train/word.csv", bad_field, "churned", "train/word.csv, line 8, column 4 ('c'): 'high' is not a number"),
        ("train/short.csv", csv, "churned", "train/short.csv, line 2: 7 fields where the header has 6"),
        (
            "train/no-target.csv",
            training_csv(100, "churned"),
            "label",
            "train/no-target.csv, line 1: target_attribute 'label' is not a column of the header (columns: a, b, churned, c, d, e)",
        ),
    ] {
        assert_eq!(server.put_asset(key, data.into_bytes()).await.status(), 201);
        let mut body = autopilot_body(1);
        body["training_data"] = json!(key);
        body["target_attribute"] = json!(body_target);
        body["model_name"] = json!(key.trim_start_matches("train/").trim_end_matches(".csv"));
        body["job_name"] = json!(format!("job-{}", body["model_name"].as_str().unwrap()));
        let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
        let failed = server.wait_for_longer(&id, "failed").await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains(want), "{key}: {error}");
    }
    // Nothing is written for a failed job.
    for job in ["job-word", "job-short", "job-no-target"] {
        let result = server.get(&format!("/v1/assets/automl-output/{job}/result.json"), VIEWER).send().await.unwrap();
        assert_eq!(result.status(), 404, "{job}");
    }
    server.stop().await;
}

/// Runs an AutoML job on `csv` (target `y`) with two candidates, serves its best model and
/// returns the job's result, the validation split's targets and what the endpoint answers for its
/// rows (one list of outputs per row).
async fn train_and_serve(server: &TestServer, name: &str, csv: String) -> (Value, Vec<String>, Vec<Vec<f64>>) {
    let key = format!("train/{name}.csv");
    assert_eq!(server.put_asset(&key, csv.into_bytes()).await.status(), 201);
    let mut body = autopilot_body(2);
    body["model_name"] = json!(name);
    body["job_name"] = json!(name);
    body["training_data"] = json!(key);
    body["target_attribute"] = json!("y");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let outputs = server.wait_for_longer(&id, "active").await["stages"][0]["outputs"].clone();
    let result: Value =
        serde_json::from_slice(&get_asset(server, &format!("automl-output/{name}/result.json")).await).unwrap();
    let model = outputs["best_candidate_model"].as_str().unwrap();
    let validation =
        String::from_utf8(get_asset(server, &format!("automl-output/{name}/data/validation.csv")).await).unwrap();
    let (targets, rows): (Vec<String>, Vec<String>) =
        validation.lines().skip(1).map(|l| l.split_once(',').unwrap()).map(|(t, r)| (t.into(), r.into())).unzip();
    let served = deploy_and_score(server, model, &format!("{name}-best"), &rows.join("\n")).await;
    (result, targets, served)
}

/// Regression (MSE) and multiclass (accuracy) jobs: the objective the job reports is what its
/// best model, as we serve it, scores on the validation split; a definitions-only job trains
/// nothing.
async fn regression_multiclass_and_definitions_only(db: TestDb) {
    let server = server_with_trainer(db).await;

    let csv = dataset(300, "y", |x, noise| format!("{:.6}", 3.0 * x[0] - 2.0 * x[1] + 0.1 * noise));
    let (result, targets, served) = train_and_serve(&server, "regression", csv).await;
    assert_eq!(
        result["ResolvedAttributes"],
        json!({"ProblemType": "Regression", "AutoMLJobObjective": {"MetricName": "MSE"}})
    );
    assert_eq!(result["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["Type"], "Minimize");
    let mse = targets.iter().zip(&served).map(|(t, p)| (t.parse::<f64>().unwrap() - p[0]).powi(2)).sum::<f64>()
        / targets.len() as f64;
    let reported = result["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["Value"].as_f64().unwrap();
    assert!((mse - reported).abs() <= 1e-6 * reported, "MSE of the served model {mse}, reported {reported}");
    assert!(reported < 0.1, "the data is learnable: MSE {reported}");

    let csv = dataset(300, "y", |x, noise| {
        let s = x[0] + x[1] + noise;
        if s < -0.4 {
            "low"
        } else if s < 0.4 {
            "mid"
        } else {
            "high"
        }
        .to_string()
    });
    let (result, targets, served) = train_and_serve(&server, "classes", csv).await;
    assert_eq!(result["ResolvedAttributes"]["ProblemType"], "MulticlassClassification");
    assert_eq!(result["Labels"], json!(["high", "low", "mid"]));
    let labels: Vec<&str> = result["Labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let right = targets
        .iter()
        .zip(&served)
        .filter(|(t, p)| {
            assert_eq!(p.len(), 3, "one probability per class");
            let best = (0..3).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
            labels[best] == t.as_str()
        })
        .count();
    let accuracy = right as f64 / targets.len() as f64;
    let reported = result["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["Value"].as_f64().unwrap();
    assert!((accuracy - reported).abs() < 1e-12, "accuracy of the served model {accuracy}, reported {reported}");

    let mut body = autopilot_body(3);
    body["generate_definition_only"] = json!("True");
    body["job_name"] = json!("definitions");
    assert_eq!(server.put_asset("train/churn.csv", training_csv(100, "churned").into_bytes()).await.status(), 201);
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let outputs = server.wait_for_longer(&id, "active").await["stages"][0]["outputs"].clone();
    assert_eq!(outputs["best_candidate_model"], Value::Null, "{outputs:#}");
    let result: Value =
        serde_json::from_slice(&get_asset(&server, "automl-output/definitions/result.json").await).unwrap();
    let statuses: Vec<&Value> =
        result["Candidates"].as_array().unwrap().iter().map(|c| &c["CandidateStatus"]).collect();
    assert_eq!(statuses, [&json!("NotStarted"); 3]);
    assert_eq!(result["AutoMLJobSecondaryStatus"], "CandidateDefinitionsGenerated");
    server.stop().await;
}

on_both_stores!(an_automl_job_trains_candidates_and_its_best_model_serves);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_multiclass_and_definitions_only_jobs() {
    regression_multiclass_and_definitions_only(TestDb::new(Db::Sqlite).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_training_data_fails_the_job_naming_file_line_and_column() {
    an_automl_job_with_bad_data_fails_naming_where(TestDb::new(Db::Sqlite).await).await
}

/// Without `training.python` the server makes the trainer's environment itself (the pinned
/// requirements from the package registry) and trains with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_training_python_the_server_makes_its_own_environment() {
    let db = TestDb::new(Db::Sqlite).await;
    let data_dir = db.dir.path().join("data");
    let server = TestServer::start(db).await;
    assert_eq!(server.put_asset("train/churn.csv", training_csv(100, "churned").into_bytes()).await.status(), 201);
    let id = server.provision(&autopilot_body(1)).await["pipeline_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let pipeline = loop {
        let p = server.pipeline(&id).await;
        if ["active", "failed"].contains(&p["state"].as_str().unwrap()) {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {}", p["state"]);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(pipeline["state"], "active", "{pipeline:#}");
    let made: Vec<_> =
        std::fs::read_dir(data_dir.join("algorithms")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(made.iter().any(|n| n.to_string_lossy().starts_with("trainers-")), "{made:?}");
    let events = server.events(&id).await;
    assert!(
        events.as_array().unwrap().iter().any(|e| e["message"].as_str().unwrap_or("").contains("Python environment")),
        "{events:#}"
    );
    server.stop().await;
}

/// The README's "Training on this machine": the example's data and config train, and the best
/// candidate separates the example's classes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_training_example_trains() {
    let server = server_with_trainer(TestDb::new(Db::Sqlite).await).await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/breast-cancer");
    let data = std::fs::read(examples.join("train.csv")).unwrap();
    assert_eq!(server.put_asset("data/breast-cancer/train.csv", data).await.status(), 201);
    let body: Value = serde_json::from_slice(&std::fs::read(examples.join("autopilot-config.json")).unwrap()).unwrap();
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for_longer(&id, "active").await;
    let result: Value =
        serde_json::from_slice(&get_asset(&server, "automl/breast-cancer-automl/result.json").await).unwrap();
    assert_eq!(result["Labels"], json!(["benign", "malignant"]));
    assert_eq!(result["Candidates"].as_array().map(Vec::len), Some(5));
    let f1 = result["BestCandidate"]["FinalAutoMLJobObjectiveMetric"]["Value"].as_f64().unwrap();
    assert!(f1 > 0.9, "F1 {f1}");
    server.stop().await;
}
