//! The feature-attribution drift check's nDCG (issue 15) against scikit-learn's `ndcg_score`
//! (`tests/fixtures/attribution/make_expected.py`): random, tied, shuffled, reversed and noisy
//! rankings of 2 to 60 features.

use crate::support::api::fixture_json;
use mlops::analyzer::attribution::{DEFAULT_THRESHOLD, ndcg, violations};
use std::collections::BTreeMap;

fn named(values: &serde_json::Value) -> BTreeMap<String, f64> {
    values.as_array().unwrap().iter().enumerate().map(|(i, v)| (format!("f{i:02}"), v.as_f64().unwrap())).collect()
}

#[test]
fn ndcg_equals_scikit_learns() {
    let expected = fixture_json("attribution/expected.json");
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let mut flagged = 0;
    for (i, case) in cases.iter().enumerate() {
        let (baseline, current) = (named(&case["baseline"]), named(&case["current"]));
        let want = case["ndcg"].as_f64().unwrap();
        let got = ndcg(&baseline, &current);
        assert!((got - want).abs() < 1e-12, "case {i}: ours {got}, scikit-learn {want}");
        let found = violations(
            &[("label0".to_string(), baseline)].into(),
            &[("label0".to_string(), current)].into(),
            DEFAULT_THRESHOLD,
        );
        assert_eq!(found.len(), usize::from(want < DEFAULT_THRESHOLD), "case {i}");
        flagged += found.len();
    }
    assert!(flagged > 0 && flagged < cases.len(), "the cases cover both sides of the threshold");
}
