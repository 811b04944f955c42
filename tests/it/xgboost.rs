//! The pure-Rust XGBoost evaluator against xgboost's own predictions.
//!
//! Fixtures come from `tests/fixtures/xgboost/generate.py` (see the README there): each model is
//! saved as `NAME.json` and `NAME.ubj`, and `NAME.cases.json` holds input rows (null = missing)
//! with xgboost's `predict` and `predict(output_margin=True)` results for them.

use std::fs;

use mlops::serving::model_archive::extract_model_file;
use mlops::serving::xgboost::{Booster, LoadError, ModelFormat};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xgboost");

/// Models the generator writes; a missing one fails the suite rather than shrinking it.
const EXPECTED_MODELS: &[&str] = &[
    "base_score_logistic",
    "base_score_poisson",
    "binary_hinge",
    "binary_logistic",
    "binary_logitraw",
    "count_poisson",
    "dart",
    "missing_values",
    "multi_softmax",
    "multi_softprob",
    "multi_softprob_digits",
    "multi_target",
    "random_forest",
    "rank_ndcg",
    "rank_pairwise",
    "reg_absoluteerror",
    "reg_gamma",
    "reg_logistic",
    "reg_pseudohubererror",
    "reg_quantileerror",
    "reg_squarederror",
    "reg_squaredlogerror",
    "reg_tweedie",
    "survival_aft",
    "survival_cox",
];

fn fixture(file: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{file}");
    fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

struct Cases {
    name: String,
    objective: String,
    num_features: usize,
    rows: Vec<Vec<f32>>,
    predictions: Vec<Vec<f64>>,
    margins: Vec<Vec<f64>>,
}

fn numbers(value: &Value, what: &str) -> Vec<Vec<f64>> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap_or_else(|| panic!("{what} row is not an array"))
                .iter()
                // null is a missing feature; the inputs are float32 values written exactly.
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

fn cases(name: &str) -> Cases {
    let doc: Value = serde_json::from_slice(&fixture(&format!("{name}.cases.json")))
        .unwrap_or_else(|e| panic!("{name}.cases.json: {e}"));
    Cases {
        name: name.to_owned(),
        objective: doc["objective"].as_str().unwrap().to_owned(),
        num_features: doc["num_features"].as_u64().unwrap() as usize,
        rows: numbers(&doc["rows"], "rows")
            .into_iter()
            .map(|row| row.into_iter().map(|v| v as f32).collect())
            .collect(),
        predictions: numbers(&doc["predictions"], "predictions"),
        margins: numbers(&doc["margins"], "margins"),
    }
}

fn all_cases() -> Vec<Cases> {
    let mut names: Vec<String> = fs::read_dir(FIXTURES)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".cases.json").map(str::to_owned)
        })
        .collect();
    names.sort();
    for expected in EXPECTED_MODELS {
        assert!(names.iter().any(|n| n == expected), "fixture {expected} is missing");
    }
    names.iter().map(|n| cases(n)).collect()
}

fn load(file: &str) -> Booster {
    Booster::load(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Within 1e-6 relative (so a zero must be exactly zero).
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-6 * want.abs()
}

/// Compares every row of every fixture model in one format; reports all mismatches at once.
fn check_format(ext: &str, format: ModelFormat) {
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut not_bit_identical = 0;
    for case in all_cases() {
        let file = format!("{}.{ext}", case.name);
        let booster = load(&file);
        assert_eq!(booster.format(), format, "{file}");
        for (r, row) in case.rows.iter().enumerate() {
            let mut got = Vec::new();
            booster.predict_row(row, &mut got);
            let mut got_margin = Vec::new();
            booster.predict_margin_row(row, &mut got_margin);
            for (what, got, want) in
                [("prediction", &got, &case.predictions[r]), ("margin", &got_margin, &case.margins[r])]
            {
                if got.len() != want.len() {
                    failures.push(format!("{file} row {r}: {} {what} values, xgboost gave {}", got.len(), want.len()));
                    continue;
                }
                for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
                    compared += 1;
                    // xgboost computes in float32; compare there too.
                    if g as f32 != w as f32 {
                        not_bit_identical += 1;
                    }
                    if !close(g, w) {
                        failures
                            .push(format!("{file} row {r} output {k} {what}: got {g}, xgboost {w} (diff {:e})", g - w));
                    }
                }
            }
        }
    }
    assert!(compared > 2000, "only {compared} values compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} values differ from xgboost:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The evaluator mirrors XGBoost's float32 arithmetic, so nearly every value is the same
    // float32; a change of summation order or formula shows up here before it breaks the
    // tolerance above. (A platform libm may round an exp or log differently now and then.)
    assert!(
        not_bit_identical * 100 <= compared,
        "{not_bit_identical} of {compared} values are not bit-identical to xgboost's float32"
    );
}

#[test]
fn json_models_match_xgboost_on_every_fixture_row() {
    check_format("json", ModelFormat::Json);
}

#[test]
fn ubjson_models_match_xgboost_on_every_fixture_row() {
    check_format("ubj", ModelFormat::Ubjson);
}

#[test]
fn json_and_ubjson_give_bit_identical_results() {
    for case in all_cases() {
        let json = load(&format!("{}.json", case.name));
        let ubj = load(&format!("{}.ubj", case.name));
        for (r, row) in case.rows.iter().enumerate() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            json.predict_margin_row(row, &mut a);
            ubj.predict_margin_row(row, &mut b);
            assert_eq!(a, b, "{} row {r}", case.name);
        }
    }
}

/// Scoring many rows at once (tree by tree over blocks of rows, as batch transform does) gives
/// exactly what scoring them one by one gives, for every fixture: more rows than a block, and a
/// last block cut short.
#[test]
fn predicting_rows_in_blocks_is_bit_identical_to_one_by_one() {
    for case in all_cases() {
        let booster = load(&format!("{}.json", case.name));
        let mut rows: Vec<&Vec<f32>> = Vec::new();
        while rows.len() < 150 {
            rows.extend(case.rows.iter());
        }
        let mut one_by_one = Vec::new();
        let mut values = Vec::new();
        for row in &rows {
            booster.predict_row(row, &mut one_by_one);
            values.extend_from_slice(row);
        }
        let mut blocked = Vec::new();
        booster.predict_rows(&values, &mut blocked);
        assert_eq!(blocked.len(), one_by_one.len(), "{}", case.name);
        for (k, (b, o)) in blocked.iter().zip(&one_by_one).enumerate() {
            assert!(b.to_bits() == o.to_bits() || (b.is_nan() && o.is_nan()), "{} value {k}: {b} vs {o}", case.name);
        }
    }
}

#[test]
fn fixture_metadata_matches() {
    for case in all_cases() {
        let b = load(&format!("{}.json", case.name));
        let name = &case.name;
        assert_eq!(b.objective(), case.objective, "{name}");
        assert_eq!(b.num_features(), case.num_features, "{name}");
        assert_eq!(b.num_outputs(), case.predictions[0].len(), "{name}");
        assert_eq!(b.num_margin_outputs(), case.margins[0].len(), "{name}");
        assert!(case.rows.iter().all(|r| r.len() == b.num_features()), "{name}");
        assert!(b.num_trees() > 0, "{name}");
    }
    let dart = load("dart.json");
    assert!(format!("{dart:?}").contains("dart: true"));
    let rf = load("random_forest.json");
    assert_eq!(rf.num_trees(), 20, "4 parallel trees x 5 rounds");
}

#[test]
fn fixture_rows_cover_missing_values_and_split_thresholds() {
    let case = cases("missing_values");
    let with_nan = case.rows.iter().filter(|r| r.iter().any(|v| v.is_nan())).count();
    assert!(with_nan >= 8, "{with_nan} rows with missing values");
    assert!(case.rows.iter().any(|r| r.iter().all(|v| v.is_nan())));
    // Softmax output is a class index; softprob outputs sum to one.
    let softmax = cases("multi_softmax");
    assert!(softmax.predictions.iter().all(|p| p[0].fract() == 0.0));
    let softprob = load("multi_softprob_digits.json");
    let mut out = Vec::new();
    softprob.predict_row(&cases("multi_softprob_digits").rows[0], &mut out);
    assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{out:?}");
}

fn assert_resave_hint(err: &LoadError) {
    let message = err.to_string();
    assert!(message.contains("booster.save_model(\"model.json\")"), "message does not say how to re-save: {message}");
}

#[test]
fn pickled_booster_is_rejected_with_a_resave_hint() {
    let bytes = fixture("model.pkl");
    assert_eq!(bytes[0], 0x80, "the fixture is a pickle");
    let err = Booster::load(&bytes).unwrap_err();
    assert!(matches!(err, LoadError::Pickle), "{err}");
    assert!(err.to_string().contains("pickle"), "{err}");
    assert_resave_hint(&err);
}

/// The start of a legacy binary model: `LearnerModelParamLegacy` (base_score f32, num_feature
/// u32, num_class i32, ...; 136 bytes), then the objective and booster names; xgboost 1.x-2.x
/// put `binf` in front. xgboost 3.2, which makes the fixtures, can no longer write this format,
/// so the test builds the header itself.
fn legacy_binary_model() -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0.5f32.to_le_bytes());
    bytes.extend_from_slice(&30u32.to_le_bytes());
    bytes.extend_from_slice(&0i32.to_le_bytes());
    bytes.resize(136, 0);
    for name in ["binary:logistic", "gbtree"] {
        bytes.extend_from_slice(&(name.len() as u64).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes.extend_from_slice(&[0u8; 64]);
    bytes
}

#[test]
fn legacy_binary_models_are_rejected_with_a_resave_hint() {
    let mut with_magic = b"binf".to_vec();
    with_magic.extend(legacy_binary_model());
    for bytes in [legacy_binary_model(), with_magic] {
        let err = Booster::load(&bytes).unwrap_err();
        assert!(matches!(err, LoadError::LegacyBinary), "{err}");
        assert!(err.to_string().contains("legacy binary"), "{err}");
        assert_resave_hint(&err);
    }
}

#[test]
fn unsupported_models_are_rejected_naming_the_feature() {
    for (file, feature) in [
        ("unsupported_categorical.json", "categorical"),
        ("unsupported_gblinear.json", "gblinear"),
        ("unsupported_vector_leaf.json", "vector-leaf"),
    ] {
        let err = Booster::load(&fixture(file)).unwrap_err();
        assert!(matches!(err, LoadError::Unsupported { .. }), "{file}: {err}");
        assert!(err.to_string().contains(feature), "{file}: {err}");
    }
}

#[test]
fn model_archive_yields_the_breast_cancer_model() {
    let archive = fixture("model.tar.gz");
    let model = extract_model_file(&archive).unwrap();
    assert_eq!(model, fixture("binary_logistic.json"));
    let booster = Booster::load(&model).unwrap();
    let case = cases("binary_logistic");
    let mut out = Vec::new();
    booster.predict_row(&case.rows[0], &mut out);
    assert!(close(out[0], case.predictions[0][0]));

    // Unarchived models pass through, and the evaluator says what to do with an archive.
    let bare = fixture("binary_logistic.ubj");
    assert_eq!(extract_model_file(&bare).unwrap(), bare);
    assert!(matches!(Booster::load(&archive), Err(LoadError::Compressed)));
}

/// A tiny deterministic generator, so the corruption test needs no extra crate.
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn truncated_or_corrupted_models_fail_without_panicking() {
    for file in ["multi_softprob.json", "multi_softprob.ubj", "dart.ubj"] {
        let bytes = fixture(file);
        for cut in [1, 2, 9, 100, bytes.len() / 3, bytes.len() - 1] {
            assert!(Booster::load(&bytes[..cut]).is_err(), "{file} cut at {cut}");
        }
        let mut state = 42;
        for _ in 0..300 {
            let mut corrupted = bytes.clone();
            for _ in 0..4 {
                let at = lcg(&mut state) as usize % corrupted.len();
                corrupted[at] = lcg(&mut state) as u8;
            }
            // Loading may succeed (a changed split value) or fail, but must not panic, and a
            // model that loads must predict without panicking.
            if let Ok(b) = Booster::load(&corrupted) {
                let mut out = Vec::new();
                b.predict_row(&vec![f32::NAN; b.num_features()], &mut out);
                b.predict_row(&vec![1.0; b.num_features()], &mut out);
            }
        }
    }
}

/// Exact TreeSHAP against xgboost's own `pred_contribs` (`contribs.py`), for every fixture model
/// in both formats. xgboost accumulates SHAP values in float32 and we in float64, so values agree
/// to float32 rounding, scaled by the sum of magnitudes the trees add up (bias terms included);
/// every group's values still sum to its margin.
#[test]
fn tree_shap_equals_xgboost_pred_contribs() {
    let mut compared = 0;
    let mut worst: f64 = 0.0;
    for case in all_cases() {
        let doc: Value = serde_json::from_slice(&fixture(&format!("{}.contribs.json", case.name))).unwrap();
        let expected: Vec<Vec<Vec<f64>>> =
            doc["contribs"].as_array().unwrap().iter().map(|row| numbers(row, "contribs")).collect();
        for ext in ["json", "ubj"] {
            let booster = load(&format!("{}.{ext}", case.name));
            for (r, row) in case.rows.iter().enumerate() {
                let got = booster.contributions(row).unwrap_or_else(|| panic!("{}: no covers", case.name));
                let width = case.num_features + 1;
                assert_eq!(got.len(), expected[r].len() * width, "{} row {r}: groups × (features + 1)", case.name);
                for (group, want) in expected[r].iter().enumerate() {
                    let ours = &got[group * width..(group + 1) * width];
                    let scale = want.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
                    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
                        let error = (a - b).abs() / scale;
                        worst = worst.max(error);
                        assert!(
                            error <= 1e-6,
                            "{} ({ext}) row {r} group {group} feature {i}: ours {a}, xgboost {b}",
                            case.name
                        );
                        compared += 1;
                    }
                    // Local accuracy: the values add up to the margin.
                    let total: f64 = ours.iter().sum();
                    let margin = case.margins[r][group];
                    assert!(
                        (total - margin).abs() <= 1e-5 * margin.abs().max(1.0),
                        "{} row {r}: Σφ {total} vs margin {margin}",
                        case.name
                    );
                }
            }
        }
    }
    assert!(compared > 50_000, "compared only {compared} values");
    eprintln!("TreeSHAP: {compared} values, worst relative difference {worst:e}");
}
