//! Kernel SHAP (issue 15) against the `shap` package's KernelExplainer
//! (`tests/fixtures/kernel_shap/make_expected.py`), explaining XGBoost fixture models through our
//! evaluator: exactly when every coalition is enumerated, within the sampling tolerance of
//! docs/MONITORING.md when 2,048 coalitions of 2^30 are drawn.

use crate::support::api::fixture_json;
use mlops::analyzer::kernel_shap::explain;
use mlops::serving::xgboost::Booster;
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

fn booster(name: &str) -> Booster {
    let path = format!("{}/tests/fixtures/xgboost/{name}.json", env!("CARGO_MANIFEST_DIR"));
    Booster::load(&std::fs::read(path).unwrap()).unwrap()
}

/// Our values for the case's records, and shap's.
fn both(case: &Value, seed: u64) -> Vec<(Vec<f64>, Vec<f64>, f64)> {
    let model = booster(case["model"].as_str().unwrap());
    let predict = |rows: &[Vec<f64>]| {
        Ok(rows
            .iter()
            .map(|r| {
                let row: Vec<f32> = r.iter().map(|x| *x as f32).collect();
                let mut out = Vec::new();
                model.predict_row(&row, &mut out);
                out[0]
            })
            .collect::<Vec<f64>>())
    };
    let background = matrix(&case["background"]);
    let budget = case["num_samples"].as_u64().unwrap() as usize;
    let theirs = matrix(&case["shap_values"]);
    matrix(&case["records"])
        .iter()
        .zip(theirs)
        .map(|(record, theirs)| {
            let e = explain(&predict, record, &background, budget, seed).unwrap();
            let expected = case["expected_value"].as_f64().unwrap();
            assert!((e.expected_value - expected).abs() < 1e-6, "{} vs {expected}", e.expected_value);
            (e.shap_values, theirs, e.prediction - e.expected_value)
        })
        .collect()
}

#[test]
fn every_coalition_enumerated_gives_shaps_exact_values() {
    let expected = fixture_json("kernel_shap/expected.json");
    for (ours, theirs, total) in both(&expected["exact"], 1) {
        for (a, b) in ours.iter().zip(&theirs) {
            // Model outputs are float32: both sides see the same ones.
            assert!((a - b).abs() < 1e-9 * total.abs().max(1.0), "ours {ours:?}\nshap {theirs:?}");
        }
        assert!((ours.iter().sum::<f64>() - total).abs() < 1e-9);
    }
}

#[test]
fn a_sampled_budget_stays_within_the_documented_tolerance() {
    let expected = fixture_json("kernel_shap/expected.json");
    let mut worst: f64 = 0.0;
    for seed in [1, 2] {
        for (ours, theirs, total) in both(&expected["sampled"], seed) {
            // Both are estimates from 2,048 of 2^30 coalitions: each value within 5 % of the
            // record's attribution mass Σ|φ| (shap's), and the sums exact.
            let mass: f64 = theirs.iter().map(|v| v.abs()).sum::<f64>().max(1e-12);
            for (a, b) in ours.iter().zip(&theirs) {
                let error = (a - b).abs() / mass;
                worst = worst.max(error);
                assert!(error < 0.05, "seed {seed}: ours {a}, shap {b}, mass {mass}");
            }
            assert!((ours.iter().sum::<f64>() - total).abs() < 1e-9);
            assert!((theirs.iter().sum::<f64>() - total).abs() < 1e-6);
        }
    }
    eprintln!("Kernel SHAP, 2048 of 2^30 coalitions: worst difference {worst:.4} of Σ|φ|");
}

/// `mlops explain`: the command over CSV files gives the aggregate of the same values — Kernel
/// SHAP equal to shap's (every coalition enumerated), TreeSHAP to xgboost's `pred_contribs`.
#[test]
fn the_explain_command_aggregates_the_reference_values() {
    let expected = fixture_json("kernel_shap/expected.json");
    let case = &expected["exact"];
    let dir = tempfile::tempdir().unwrap();
    let csv = |rows: &[Vec<f64>], header: bool| {
        let width = rows[0].len();
        let mut text = if header {
            (0..width).map(|i| format!("x{i}")).collect::<Vec<_>>().join(",") + "\n"
        } else {
            String::new()
        };
        for r in rows {
            text.push_str(&r.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        text
    };
    let records = matrix(&case["records"]);
    std::fs::write(dir.path().join("data.csv"), csv(&records, true)).unwrap();
    std::fs::write(dir.path().join("baseline.csv"), csv(&matrix(&case["background"]), false)).unwrap();
    let model = format!("{}/tests/fixtures/xgboost/reg_squarederror.json", env!("CARGO_MANIFEST_DIR"));
    let run_on = |model: &str, algorithm: &str| -> Value {
        let out = dir.path().join(format!("{algorithm}.json"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
            .args(["explain", "--model", model, "--algorithm", algorithm, "--num-samples", "1022", "--seed", "3"])
            .arg("--data")
            .arg(dir.path().join("data.csv"))
            .arg("--baseline")
            .arg(dir.path().join("baseline.csv"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
    };
    let run = |algorithm: &str| run_on(&model, algorithm);
    let kernel = run("kernel");
    let global = &kernel["explanations"]["kernel_shap"]["label0"]["global_shap_values"];
    let theirs = matrix(&case["shap_values"]);
    for j in 0..records[0].len() {
        let want = theirs.iter().map(|r| r[j].abs()).sum::<f64>() / theirs.len() as f64;
        let got = global[format!("x{j}")].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "x{j}: ours {got}, shap {want}");
    }
    let tree = run("tree");
    let global = &tree["explanations"]["tree_shap"]["label0"]["global_shap_values"];
    let model = Booster::load(&std::fs::read(&model).unwrap()).unwrap();
    for j in 0..records[0].len() {
        let want = records
            .iter()
            .map(|r| model.contributions(&r.iter().map(|x| *x as f32).collect::<Vec<_>>()).unwrap()[j].abs())
            .sum::<f64>()
            / records.len() as f64;
        assert!((global[format!("x{j}")].as_f64().unwrap() - want).abs() < 1e-12, "x{j}");
    }

    // An ONNX tree ensemble (XGBoost converted by onnxmltools): TreeSHAP against the baseline
    // rows solves the game Kernel SHAP enumerates, so the two commands agree (the model answers
    // in float32: to 1e-5 of the largest value).
    let onnx = format!("{}/tests/fixtures/onnx/xgboost_regressor.onnx", env!("CARGO_MANIFEST_DIR"));
    let (kernel, tree) = (run_on(&onnx, "kernel"), run_on(&onnx, "tree"));
    let kernel = &kernel["explanations"]["kernel_shap"]["label0"];
    let tree = &tree["explanations"]["tree_shap"]["label0"];
    let largest = (0..records[0].len())
        .map(|j| tree["global_shap_values"][format!("x{j}")].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(largest > 0.0, "{tree}");
    for j in 0..records[0].len() {
        let (k, t) = (
            kernel["global_shap_values"][format!("x{j}")].as_f64(),
            tree["global_shap_values"][format!("x{j}")].as_f64(),
        );
        assert!((k.unwrap() - t.unwrap()).abs() <= 1e-5 * largest, "x{j}: kernel {k:?}, tree {t:?}");
    }
    assert!((kernel["expected_value"].as_f64().unwrap() - tree["expected_value"].as_f64().unwrap()).abs() < 1e-5);
}
