//! Every file the analyzer writes validates against the JSON Schema of its format committed in
//! `docs/schemas/` (documented in docs/MONITORING.md, from the reference's shapes), one test per
//! file; and each schema refuses a damaged copy, so none of them is vacuous.

use mlops::analyzer::check::{Violations, check};
use mlops::analyzer::constraints::suggest;
use mlops::analyzer::model_quality::{self, Example, ProblemType};
use mlops::analyzer::profile_csv;
use mlops::analyzer::statistics::statistics;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{ROOT}/docs/schemas/{name}.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn assert_valid(name: &str, file: &Value) {
    let validator = schema(name);
    let errors: Vec<String> = validator.iter_errors(file).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
}

pub fn assert_refused(name: &str, damaged: &Value) {
    assert!(!schema(name).is_valid(damaged), "{name} accepts a damaged file: {damaged:#}");
}

fn profile(file: &str) -> mlops::analyzer::profile::Profile {
    profile_csv(std::fs::File::open(format!("{ROOT}/tests/fixtures/analyzer/{file}")).unwrap()).unwrap()
}

#[test]
fn data_quality_statistics() {
    let mut baseline = profile("baseline.csv");
    let file = serde_json::to_value(statistics(&mut baseline)).unwrap();
    assert_valid("data-quality-statistics", &file);
    let mut damaged = file.clone();
    damaged["features"][0]["numerical_statistics"]["distribution"]["kll"]["buckets"].as_array_mut().unwrap().pop();
    assert_refused("data-quality-statistics", &damaged);
}

#[test]
fn data_quality_constraints() {
    let file = serde_json::to_value(suggest(&profile("baseline.csv"))).unwrap();
    assert_valid("data-quality-constraints", &file);
    let mut damaged = file.clone();
    damaged["monitoring_config"]["distribution_constraints"]["comparison_method"] = json!("Exact");
    assert_refused("data-quality-constraints", &damaged);
}

#[test]
fn data_quality_violations() {
    let mut baseline = profile("baseline.csv");
    let stats = statistics(&mut baseline);
    let report = check(&stats, &suggest(&baseline), &profile("window_shifted.csv")).unwrap();
    let file = serde_json::to_value(Violations { violations: report.violations }).unwrap();
    assert!(!file["violations"].as_array().unwrap().is_empty());
    assert_valid("data-quality-violations", &file);
    let mut damaged = file.clone();
    damaged["violations"][0]["constraint_check_type"] = json!("drift");
    assert_refused("data-quality-violations", &damaged);
}

fn cases() -> Value {
    serde_json::from_slice(&std::fs::read(format!("{ROOT}/tests/fixtures/analyzer/model_quality.json")).unwrap())
        .unwrap()
}

fn examples(case: &Value) -> Vec<Example> {
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let labels = case["labels"].as_array().unwrap();
    let predictions = case["predictions"].as_array().unwrap();
    let probabilities = case.get("probabilities").and_then(Value::as_array);
    (0..labels.len())
        .map(|i| Example {
            label: text(&labels[i]),
            prediction: text(&predictions[i]),
            probability: probabilities.map(|p| text(&p[i]).parse().unwrap()),
        })
        .collect()
}

const PROBLEMS: [(&str, ProblemType); 3] = [
    ("regression", ProblemType::Regression),
    ("binary", ProblemType::BinaryClassification),
    ("multiclass", ProblemType::MulticlassClassification),
];

#[test]
fn model_quality_statistics() {
    let cases = cases();
    for (name, problem) in PROBLEMS {
        let file = model_quality::statistics(problem, &examples(&cases[name]), "1", "2026-12-03T08:00:00Z").unwrap();
        assert_valid("model-quality-statistics", &file);
        let mut damaged = file.clone();
        damaged["dataset"]["evaluation_time"] = json!("yesterday");
        assert_refused("model-quality-statistics", &damaged);
    }
}

#[test]
fn model_quality_constraints() {
    let cases = cases();
    for (name, problem) in PROBLEMS {
        let stats = model_quality::statistics(problem, &examples(&cases[name]), "1", "2026-12-03T08:00:00Z").unwrap();
        let file = model_quality::suggest_constraints(problem, &stats);
        assert_valid("model-quality-constraints", &file);
        let mut damaged = file.clone();
        let block = damaged.as_object_mut().unwrap().iter_mut().find(|(k, _)| k.ends_with("_constraints")).unwrap().1;
        let first = block.as_object_mut().unwrap().values_mut().next().unwrap();
        first["comparison_operator"] = json!("NotEqual");
        assert_refused("model-quality-constraints", &damaged);
    }
}

#[test]
fn model_quality_violations() {
    let cases = cases();
    let baseline = examples(&cases["binary"]);
    let time = "2026-12-03T08:00:00Z";
    let stats = model_quality::statistics(ProblemType::BinaryClassification, &baseline, "1", time).unwrap();
    let constraints = model_quality::suggest_constraints(ProblemType::BinaryClassification, &stats);
    let flipped: Vec<Example> = baseline
        .iter()
        .map(|e| Example { prediction: if e.prediction == "1" { "0".into() } else { "1".into() }, ..e.clone() })
        .collect();
    let window = model_quality::statistics(ProblemType::BinaryClassification, &flipped, "1", time).unwrap();
    let file = model_quality::violations(ProblemType::BinaryClassification, &window, &constraints);
    assert!(!file["violations"].as_array().unwrap().is_empty());
    assert_valid("model-quality-violations", &file);
    let mut damaged = file.clone();
    damaged["violations"][0]["description"] = json!("worse");
    assert_refused("model-quality-violations", &damaged);
}
