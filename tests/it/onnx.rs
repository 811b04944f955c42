//! ONNX models evaluated by the local runtime against onnxruntime's own outputs.
//!
//! Fixtures come from `tests/fixtures/onnx/generate.py` (see the README there): each model is
//! `NAME.onnx`, and `NAME.cases.json` holds input rows (null = missing) with onnxruntime's outputs
//! for them, by output name.

use mlops::serving::onnx::OnnxModel;
use serde_json::Value;
use std::fs;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/onnx");

/// Models the generator writes; a missing one fails the suite rather than shrinking it.
const EXPECTED_MODELS: &[&str] = &[
    "gradient_boosting_binary",
    "gradient_boosting_classifier",
    "gradient_boosting_regressor",
    "lightgbm_binary",
    "lightgbm_multiclass",
    "lightgbm_regressor",
    "linear_regression",
    "logistic_binary_zipmap",
    "logistic_multiclass",
    "mlp_classifier",
    "mlp_regressor",
    "random_forest_classifier",
    "random_forest_regressor",
    "xgboost_binary",
    "xgboost_multiclass",
    "xgboost_regressor",
];

fn fixture(file: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{file}");
    fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn matrix(value: &Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(|row| row.as_array().expect("a row").iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
        .collect()
}

struct Case {
    name: String,
    num_features: usize,
    rows: Vec<Vec<f32>>,
    /// What an invocation answers per row: the float output; a binary classifier's positive
    /// class only (see src/serving/onnx/mod.rs).
    expected: Vec<Vec<f64>>,
}

fn case(name: &str) -> Case {
    let doc: Value = serde_json::from_slice(&fixture(&format!("{name}.cases.json"))).unwrap();
    let order: Vec<&str> = doc["output_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let outputs = &doc["outputs"];
    let is_float = |name: &&str| matrix(&outputs[*name]).iter().flatten().any(|v| v.fract() != 0.0);
    let floats: Vec<&str> = order.iter().copied().filter(is_float).collect();
    assert_eq!(floats.len(), 1, "{name}: one float output expected, got {floats:?}");
    let classifier = order.len() > 1;
    let mut expected = matrix(&outputs[floats[0]]);
    if classifier && expected[0].len() == 2 {
        expected = expected.into_iter().map(|row| vec![row[1]]).collect();
    }
    Case {
        name: name.to_string(),
        num_features: doc["num_features"].as_u64().unwrap() as usize,
        rows: matrix(&doc["rows"]).into_iter().map(|r| r.into_iter().map(|v| v as f32).collect()).collect(),
        expected,
    }
}

fn all_cases() -> Vec<Case> {
    let mut names: Vec<String> = fs::read_dir(FIXTURES)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().unwrap().strip_suffix(".cases.json").map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, EXPECTED_MODELS, "the fixture set changed; update EXPECTED_MODELS");
    names.iter().map(|n| case(n)).collect()
}

/// Within 1e-5 relative, or four float32 steps below 1.0 (2^-22) absolute. The absolute floor is
/// onnxruntime's own resolution for a small probability: both runtimes compute it in float32 as
/// 1 − σ(|s|), whose steps near 1 are 2^-24 wide, so below about 0.02 the reference itself is not
/// known to 1e-5 relative (0.000000179 there is three steps, not a precise number).
fn close(got: f64, want: f64) -> bool {
    let diff = (got - want).abs();
    diff <= 1e-5 * want.abs() || diff <= f64::from(2f32.powi(-22)) || (got.is_nan() && want.is_nan())
}

#[test]
fn every_fixture_matches_onnxruntime_in_batches_and_row_by_row() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in all_cases() {
        let model =
            OnnxModel::load(&fixture(&format!("{}.onnx", case.name))).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(model.num_features(), case.num_features, "{}", case.name);
        assert_eq!(model.num_outputs(), case.expected[0].len(), "{}", case.name);
        let values: Vec<f32> = case.rows.iter().flatten().copied().collect();
        let mut batch = Vec::new();
        model.predict_rows(&values, &mut batch).unwrap();
        assert_eq!(batch.len(), case.rows.len() * model.num_outputs(), "{}", case.name);
        for (r, row) in case.rows.iter().enumerate() {
            let mut single = Vec::new();
            model.predict_rows(row, &mut single).unwrap();
            let width = model.num_outputs();
            // Alone or in a batch, a row gets the same answer (to rounding: matrix kernels
            // differ with the number of rows), and both match onnxruntime.
            for (k, (&got, &want)) in single.iter().zip(&case.expected[r]).enumerate() {
                let in_batch = batch[r * width + k];
                compared += 1;
                if !close(got, want) || !close(in_batch, want) {
                    failures.push(format!(
                        "{} row {r} output {k}: ours {got} (in a batch {in_batch}), onnxruntime {want}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {compared} values differ:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 500, "only {compared} values compared");
}

#[test]
fn an_operator_the_runtime_lacks_fails_at_load_naming_it() {
    let error = OnnxModel::load(&fixture("unsupported_svm.onnx")).unwrap_err().to_string();
    assert!(error.contains("`ai.onnx.ml.SVMRegressor`"), "{error}");
}

#[test]
fn damaged_files_fail_at_load() {
    let model = fixture("random_forest_regressor.onnx");
    for bytes in [&model[..model.len() / 2], b"\x08garbage".as_slice(), &[]] {
        assert!(OnnxModel::load(bytes).is_err());
    }
}

// End to end: ONNX models through /provisionpipeline, real-time and batch, on both stores.

mod end_to_end {
    use super::{case, close, fixture};
    use crate::on_both_stores;
    use crate::support::server::{INVOKER, test_settings};
    use crate::support::{TestDb, TestServer};
    use serde_json::{Value, json};

    /// A SageMaker-style model.tar.gz: the ONNX file beside a file that is not the model.
    fn archive(name: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
        for (path, bytes) in
            [("code/README.txt", b"not the model".to_vec()), ("model.onnx", fixture(&format!("{name}.onnx")))]
        {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn csv(rows: &[Vec<f32>]) -> String {
        let line = |r: &Vec<f32>| {
            r.iter().map(|v| if v.is_nan() { String::new() } else { v.to_string() }).collect::<Vec<_>>().join(",")
        };
        rows.iter().map(|r| line(r) + "\n").collect()
    }

    fn assert_answers(text: &str, expected: &[Vec<f64>], what: &str) {
        let got: Vec<Vec<f64>> = text.lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        assert_eq!(got.len(), expected.len(), "{what}: {text}");
        for (r, (g, w)) in got.iter().zip(expected).enumerate() {
            assert_eq!(g.len(), w.len(), "{what} row {r}");
            for (a, b) in g.iter().zip(w) {
                assert!(close(*a, *b), "{what} row {r}: ours {a}, onnxruntime {b}");
            }
        }
    }

    fn realtime(name: &str, framework: &str, key: &str) -> Value {
        json!({
            "pipeline_type": "byom_realtime_builtin",
            "model_name": name,
            "model_framework": framework,
            "model_framework_version": "1",
            "model_artifact_location": key,
            "inference_instance": "ml.m5.large",
            "data_capture_location": format!("my-bucket/capture/{name}"),
            "endpoint_name": format!("{name}-endpoint"),
        })
    }

    fn batch(name: &str, key: &str, input: Value, output: Value) -> Value {
        json!({
            "pipeline_type": "byom_batch_builtin",
            "model_name": name,
            "model_framework": "onnx",
            "model_framework_version": "1",
            "model_artifact_location": key,
            "inference_instance": "ml.m5.large",
            "batch_inference_data": input,
            "batch_job_output_location": output,
        })
    }

    /// One environment: an archived LightGBM classifier (missing values included) answers
    /// CSV and JSON, a bare XGBoost-converted file under `model_framework: xgboost` is detected
    /// as ONNX, a batch transform writes onnxruntime's numbers, and a model with an operator the
    /// runtime lacks fails its deploy naming the operator.
    async fn onnx_models_serve_and_transform(db: TestDb) {
        let server = TestServer::start(db).await;
        let lgbm = case("lightgbm_binary");
        assert_eq!(server.put_asset("models/lgbm/model.tar.gz", archive("lightgbm_binary")).await.status(), 201);
        let id = server.provision(&realtime("lgbm", "onnx", "models/lgbm/model.tar.gz")).await["pipeline_id"]
            .as_str()
            .unwrap()
            .to_string();
        let pipeline = server.wait_for(&id, "active").await;
        let outputs = &pipeline["stages"][0]["outputs"];
        assert_eq!(outputs["framework"], "onnx");
        assert_eq!(outputs["num_features"], 30);
        assert_eq!(outputs["objective"], "onnx classifier: positive-class probability");

        let response = server.invoke("lgbm-endpoint", "text/csv", csv(&lgbm.rows), INVOKER).await;
        assert_eq!(response.status(), 200);
        assert_answers(&response.text().await.unwrap(), &lgbm.expected, "lightgbm_binary over CSV");
        let instances: Vec<Value> = lgbm.rows[..3]
            .iter()
            .map(|r| json!(r.iter().map(|v| if v.is_nan() { Value::Null } else { json!(v) }).collect::<Vec<_>>()))
            .collect();
        let response = server
            .invoke("lgbm-endpoint", "application/json", json!({"instances": instances}).to_string(), INVOKER)
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let scores: Vec<f64> =
            body["predictions"].as_array().unwrap().iter().map(|p| p["score"].as_f64().unwrap()).collect();
        assert_eq!(scores.len(), 3, "{body}");
        for (got, want) in scores.iter().zip(&lgbm.expected) {
            assert!(close(*got, want[0]), "JSON: ours {got}, onnxruntime {}", want[0]);
        }
        let wrong_width = server.invoke("lgbm-endpoint", "text/csv", "1,2,3".into(), INVOKER).await;
        assert_eq!(wrong_width.status(), 400);

        // An ONNX file under the solution's `model_framework: xgboost` runs as what it is.
        let xgb = case("xgboost_multiclass");
        assert_eq!(server.put_asset("models/xgb.onnx", fixture("xgboost_multiclass.onnx")).await.status(), 201);
        let id = server.provision(&realtime("xgb", "xgboost", "models/xgb.onnx")).await["pipeline_id"]
            .as_str()
            .unwrap()
            .to_string();
        let pipeline = server.wait_for(&id, "active").await;
        assert_eq!(pipeline["stages"][0]["outputs"]["framework"], "onnx");
        let response = server.invoke("xgb-endpoint", "text/csv", csv(&xgb.rows), INVOKER).await;
        assert_answers(&response.text().await.unwrap(), &xgb.expected, "xgboost_multiclass over CSV");

        // Batch: every row of the regressor's cases, one .out line each.
        let forest = case("random_forest_regressor");
        assert_eq!(server.put_asset("models/forest.onnx", fixture("random_forest_regressor.onnx")).await.status(), 201);
        assert_eq!(server.put_asset("batch/forest/in.csv", csv(&forest.rows).into_bytes()).await.status(), 201);
        let body = batch("forest", "models/forest.onnx", json!("assets/batch/forest"), json!("results/forest"));
        let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
        server.wait_for(&id, "active").await;
        let out = server.db.dir.path().join("data/objects/results/forest/in.csv.out");
        assert_answers(&std::fs::read_to_string(out).unwrap(), &forest.expected, "random forest batch");

        // Unsupported: the deploy fails naming the operator; the endpoint never goes into service.
        assert_eq!(server.put_asset("models/svm.onnx", fixture("unsupported_svm.onnx")).await.status(), 201);
        let id = server.provision(&realtime("svm", "onnx", "models/svm.onnx")).await["pipeline_id"]
            .as_str()
            .unwrap()
            .to_string();
        let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("`ai.onnx.ml.SVMRegressor`"), "{error}");
        assert_eq!(server.invoke("svm-endpoint", "text/csv", "1".into(), INVOKER).await.status(), 409);

        // `onnx` names what the file must be.
        assert_eq!(
            server
                .put_asset(
                    "models/not-onnx.json",
                    std::fs::read(crate::support::api::fixture("xgboost/binary_logistic.json")).unwrap()
                )
                .await
                .status(),
            201
        );
        let id = server.provision(&realtime("notonnx", "onnx", "models/not-onnx.json")).await["pipeline_id"]
            .as_str()
            .unwrap()
            .to_string();
        let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
        assert!(failed["last_error"].as_str().unwrap().contains("not an ONNX file"), "{failed:#}");
        server.stop().await;
    }

    /// dev → staging → prod, real-time and batch: each later stage runs dev's model after its
    /// approval, even after the asset was replaced.
    async fn onnx_models_promote_through_environments(db: TestDb) {
        let mut settings = test_settings(&db);
        settings.environments = vec!["dev".into(), "staging".into(), "prod".into()];
        let server = TestServer::start_with(db, settings).await;
        let mlp = case("mlp_classifier");
        let key = "models/mlp/model.tar.gz";
        assert_eq!(server.put_asset(key, archive("mlp_classifier")).await.status(), 201);
        for env in ["dev", "staging", "prod"] {
            let put = server.put_asset(&format!("batch/{env}/in.csv"), csv(&mlp.rows[..5]).into_bytes()).await;
            assert_eq!(put.status(), 201);
        }
        let environments = |prefix: &str| json!({"dev": format!("{prefix}/dev"), "staging": format!("{prefix}/staging"), "prod": format!("{prefix}/prod")});
        let bodies =
            [realtime("mlp", "onnx", key), batch("mlp-batch", key, environments("assets/batch"), environments("out"))];
        let mut ids = Vec::new();
        for body in &bodies {
            let id = server.provision(body).await["pipeline_id"].as_str().unwrap().to_string();
            server.wait_for(&id, "awaiting_approval").await;
            ids.push(id);
        }
        // Replaced after dev deployed: the later stages still run dev's bytes.
        assert_eq!(server.put_asset(key, archive("logistic_multiclass")).await.status(), 201);
        for id in &ids {
            server.approve_staging_and_prod(id).await;
        }
        for env in ["dev", "staging", "prod"] {
            let response =
                server.invoke(&format!("{env}.mlp-endpoint"), "text/csv", csv(&mlp.rows[..5]), INVOKER).await;
            assert_answers(&response.text().await.unwrap(), &mlp.expected[..5], &format!("{env} real-time"));
            let out = server.db.dir.path().join(format!("data/objects/out/{env}/in.csv.out"));
            assert_answers(&std::fs::read_to_string(out).unwrap(), &mlp.expected[..5], &format!("{env} batch"));
        }
        server.stop().await;
    }

    on_both_stores!(onnx_models_serve_and_transform, onnx_models_promote_through_environments);
}

/// Exact TreeSHAP of the tree-ensemble fixtures (interventional, against baseline rows) equals
/// Kernel SHAP with every coalition enumerated: both solve the game v(S) = mean over baseline rows
/// z of f(x_S, z_S̄), one exactly by the trees, the other by regression over all 2^8 − 2 coalitions
/// (the records differ from the baseline rows in eight features). The margins are what TreeSHAP
/// explains: a logistic classifier's log-odds, a softmax classifier's per-class scores (checked by
/// their softmax being the model's probabilities), the score itself otherwise.
#[test]
fn tree_shap_of_onnx_ensembles_solves_kernel_shaps_game_exactly() {
    let mut checked = 0;
    for case in all_cases() {
        let model = OnnxModel::load(&fixture(&format!("{}.onnx", case.name))).unwrap();
        let n = case.num_features;
        let trees =
            ["gradient_boosting", "lightgbm", "random_forest", "xgboost"].iter().any(|p| case.name.starts_with(p));
        if !trees {
            let refused = model.tree_shap(0, &[vec![0.0; n]], &[vec![0.0; n]]).err().unwrap_or_default();
            assert!(refused.contains("one tree ensemble"), "{}: {refused}", case.name);
            continue;
        }
        let past_the_end = model.tree_shap(model.num_outputs(), &[vec![0.0; n]], &[vec![0.0; n]]).err();
        assert!(past_the_end.is_some_and(|e| e.contains("answers")), "{}: an output it lacks", case.name);
        let varying = 8.min(n);
        // Missing values only where records and baseline rows differ anyway (Kernel SHAP takes a
        // missing value as differing from every other, itself included).
        let complete: Vec<Vec<f64>> = case
            .rows
            .iter()
            .map(|r| {
                let value = |(j, v): (usize, &f32)| if v.is_nan() && j >= varying { 0.0 } else { f64::from(*v) };
                r.iter().enumerate().map(value).collect()
            })
            .collect();
        for record in &complete[..3] {
            let background: Vec<Vec<f64>> = complete[3..8]
                .iter()
                .map(|z| (0..n).map(|j| if j < varying { z[j] } else { record[j] }).collect())
                .collect();
            let answer = |rows: &[Vec<f64>]| {
                let values: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
                let mut out = Vec::new();
                model.predict_rows(&values, &mut out).unwrap();
                out
            };
            let outputs = model.num_outputs();
            if outputs > 1 {
                let margins: Vec<f64> = (0..outputs)
                    .map(|k| {
                        let (phi, expected) =
                            model.tree_shap(k, &background, std::slice::from_ref(record)).unwrap().explain(record);
                        expected + phi.iter().sum::<f64>()
                    })
                    .collect();
                let total: f64 = margins.iter().map(|m| m.exp()).sum();
                for (k, p) in answer(std::slice::from_ref(record)).iter().enumerate() {
                    assert!((margins[k].exp() / total - p).abs() < 1e-5, "{} class {k}: {margins:?} vs {p}", case.name);
                }
                checked += 1;
                continue;
            }
            let logistic = case.name.ends_with("_binary");
            let margin = |rows: &[Vec<f64>]| -> Result<Vec<f64>, String> {
                Ok(answer(rows).into_iter().map(|p| if logistic { (p / (1.0 - p)).ln() } else { p }).collect())
            };
            let kernel =
                mlops::analyzer::kernel_shap::explain(&margin, record, &background, (1 << varying) - 2, 0).unwrap();
            let (phi, expected) =
                model.tree_shap(0, &background, std::slice::from_ref(record)).unwrap().explain(record);
            // The model answers in float32 (a probability's log-odds carry its rounding): equal to
            // 1e-4 of the record's attribution mass, plus 1e-5.
            let mass: f64 = phi.iter().map(|v| v.abs()).sum();
            for (j, (ours, kernel)) in phi.iter().zip(&kernel.shap_values).enumerate() {
                assert!(
                    (ours - kernel).abs() <= 1e-4 * mass + 1e-5,
                    "{} feature {j}: TreeSHAP {ours}, Kernel SHAP {kernel}",
                    case.name
                );
                if j >= varying {
                    assert_eq!(*ours, 0.0, "{}: a feature equal in every row explains nothing", case.name);
                }
            }
            assert!((expected - kernel.expected_value).abs() <= 1e-4 * expected.abs().max(1.0), "{}", case.name);
            checked += 1;
        }
    }
    assert_eq!(checked, 11 * 3, "every tree fixture's records checked");
}
