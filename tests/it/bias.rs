//! Clarify's bias metrics (issue 15) against smclarify's own numbers
//! (`tests/fixtures/bias/make_expected.py`): pre- and post-training reports for a categorical
//! facet and a continuous one, on scikit-learn's breast-cancer set with a synthetic sensitive
//! attribute; a window with injected bias is flagged by the drift rule, the unchanged data is not.

use crate::support::api::{fixture, fixture_json};
use mlops::analyzer::bias::{
    BiasData, ColumnType, Metric, MetricOut, Selector, column_type, drift_violations, post_training, pre_training,
    select,
};
use serde_json::Value;

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(name: &str) -> Table {
        let mut reader = csv::Reader::from_path(fixture(&format!("bias/{name}"))).unwrap();
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
        Table { header, rows }
    }

    fn column(&self, name: &str) -> Vec<&str> {
        let i = self.header.iter().position(|h| h == name).unwrap();
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    /// Every numeric column but those named, row by row (the flip test's features).
    fn features_without(&self, skip: &[&str]) -> Vec<Vec<f64>> {
        let keep: Vec<usize> = (0..self.header.len()).filter(|&i| !skip.contains(&self.header[i].as_str())).collect();
        self.rows.iter().map(|r| keep.iter().map(|&i| r[i].parse().unwrap()).collect()).collect()
    }
}

struct Report {
    value_or_threshold: String,
    pre: Vec<Metric>,
    post: Vec<Metric>,
}

fn report(table: &Table, facet: &str, facet_value: &str) -> Report {
    let facet_column = table.column(facet);
    let selector = match column_type(&facet_column, 1) {
        ColumnType::Categorical => Selector::Values(vec![facet_value.to_string()]),
        ColumnType::Continuous => Selector::Above(facet_value.parse().unwrap()),
    };
    let (d, value_or_threshold) = select(&facet_column, &selector).unwrap();
    let positive = Selector::Values(vec!["1".into()]);
    let (label, _) = select(&table.column("label"), &positive).unwrap();
    let (predicted, _) = select(&table.column("prediction"), &positive).unwrap();
    let group: Vec<String> = table.column("age_group").into_iter().map(String::from).collect();
    let features = table.features_without(&[facet, "label", "prediction", "age_group"]);
    let data = BiasData {
        facet: &d,
        label: &label,
        predicted: Some(&predicted),
        group: Some(&group),
        features: Some(&features),
    };
    Report { value_or_threshold, pre: pre_training(&data), post: post_training(&data) }
}

fn assert_matches(ours: &[Metric], expected: &Value, what: &str) {
    let expected = expected.as_array().unwrap();
    let names: Vec<&str> = ours.iter().map(|m| m.name).collect();
    let expected_names: Vec<&str> = expected.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, expected_names, "{what}: the metrics, in Clarify's order");
    for (metric, reference) in ours.iter().zip(expected) {
        let out = serde_json::to_value(MetricOut::from(metric)).unwrap();
        assert_eq!(out["description"], reference["description"], "{what} {}", metric.name);
        match (&metric.value, reference["value"].as_f64()) {
            (Ok(v), Some(r)) => {
                assert!((v - r).abs() <= 1e-12 * r.abs().max(1.0), "{what} {}: ours {v}, smclarify {r}", metric.name)
            }
            (Ok(_), None) => assert_eq!(out["value"], reference["value"], "{what} {}", metric.name),
            (Err(e), _) => {
                assert!(
                    reference["value"].is_null(),
                    "{what} {}: ours failed ({e}), smclarify has {reference}",
                    metric.name
                )
            }
        }
    }
}

#[test]
fn bias_metrics_equal_smclarifys() {
    let expected = fixture_json("bias/expected.json");
    for (name, file) in [("baseline", "breast_cancer_bias.csv"), ("biased_window", "breast_cancer_bias_window.csv")] {
        let table = Table::read(file);
        for (facet, value) in [("sex", "1"), ("age", "55")] {
            let ours = report(&table, facet, value);
            let reference = &expected[name][facet];
            for (stage, metrics) in [("pre_training", &ours.pre), ("post_training", &ours.post)] {
                let entry = &reference[stage][0];
                assert_eq!(entry["value_or_threshold"], ours.value_or_threshold.as_str(), "{name} {facet}");
                assert_matches(metrics, &entry["metrics"], &format!("{name} {facet} {stage}"));
            }
        }
    }
}

#[test]
fn injected_bias_is_flagged_and_unchanged_data_is_not() {
    let baseline = report(&Table::read("breast_cancer_bias.csv"), "sex", "1");
    let window = report(&Table::read("breast_cancer_bias_window.csv"), "sex", "1");
    let flagged: Vec<String> =
        drift_violations("sex", "1", &baseline.post, &window.post).into_iter().map(|v| v.metric_name).collect();
    for metric in ["DPPL", "DI", "CDDPL", "RD", "AD"] {
        // DI moves away from 1 (0.69 → 0.34), which |DI| > |baseline| does not see: Clarify's
        // rule, kept (docs/MONITORING.md).
        if metric == "DI" {
            assert!(!flagged.contains(&metric.to_string()));
            continue;
        }
        assert!(flagged.contains(&metric.to_string()), "{metric} not flagged: {flagged:?}");
    }
    // The same data in another order: nothing moved.
    let mut shuffled = Table::read("breast_cancer_bias.csv");
    shuffled.rows.reverse();
    let again = report(&shuffled, "sex", "1");
    assert_eq!(drift_violations("sex", "1", &baseline.post, &again.post), []);
    assert_eq!(drift_violations("sex", "1", &baseline.pre, &again.pre), []);
}
