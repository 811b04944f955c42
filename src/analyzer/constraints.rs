//! `constraints.json` of the data-quality monitor (reference sagemaker-formats.md B.2, B.11):
//! suggested from a baseline profile, read back to check windows against.
//!
//! Defaults where AWS documents two: the thresholds and the comparison method are those the
//! analyzer itself runs with (`datatype_check_threshold` and `domain_content_threshold` 1.0,
//! `Robust`), not the 0.1 of the documentation table (docs/MONITORING.md).

use super::profile::{InferredType, Profile};
use super::statistics::by_popularity;
use serde::{Deserialize, Serialize};

/// Deequ profiles a histogram (and may suggest a domain) only below this many distinct values.
pub const DOMAIN_MAX_VALUES: usize = 120;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub version: f64,
    pub features: Vec<FeatureConstraints>,
    #[serde(default)]
    pub monitoring_config: MonitoringConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConstraints {
    pub name: String,
    pub inferred_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_constraints: Option<NumConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_constraints: Option<StringConstraints>,
    /// Per-feature settings over `monitoring_config` (the docs spell it camelCase, the SageMaker
    /// Python SDK snake_case; both are read).
    #[serde(
        default,
        rename = "monitoringConfigOverrides",
        alias = "monitoring_config_overrides",
        skip_serializing_if = "Option::is_none"
    )]
    pub overrides: Option<Overrides>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumConstraints {
    pub is_non_negative: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringConstraints {
    pub domains: Vec<String>,
}

fn enabled() -> String {
    "Enabled".into()
}
fn one() -> f64 {
    1.0
}
fn tenth() -> f64 {
    0.1
}
fn robust() -> String {
    "Robust".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringConfig {
    #[serde(default = "enabled")]
    pub evaluate_constraints: String,
    #[serde(default = "enabled")]
    pub emit_metrics: String,
    #[serde(default = "one")]
    pub datatype_check_threshold: f64,
    #[serde(default = "one")]
    pub domain_content_threshold: f64,
    #[serde(default)]
    pub distribution_constraints: DistributionConstraints,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionConstraints {
    #[serde(default = "enabled")]
    pub perform_comparison: String,
    #[serde(default = "tenth")]
    pub comparison_threshold: f64,
    #[serde(default = "robust")]
    pub comparison_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_drift_method: Option<String>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            evaluate_constraints: enabled(),
            emit_metrics: enabled(),
            datatype_check_threshold: one(),
            domain_content_threshold: one(),
            distribution_constraints: DistributionConstraints::default(),
        }
    }
}

impl Default for DistributionConstraints {
    fn default() -> Self {
        Self {
            perform_comparison: enabled(),
            comparison_threshold: tenth(),
            comparison_method: robust(),
            categorical_comparison_threshold: Some(tenth()),
            categorical_drift_method: Some("LInfinity".into()),
        }
    }
}

/// A feature's overrides: any key of `monitoring_config`, at the top or inside
/// `distribution_constraints` (the semantics of the object are not documented; this reading is
/// ours, docs/MONITORING.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype_check_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_content_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_drift_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_constraints: Option<Box<Overrides>>,
}

/// The completeness a window must keep: 1 for a complete column, else the baseline's fraction
/// less 1.96 standard errors (a 95 % Wald lower bound), rounded down to two decimals, as Deequ's
/// `RetainCompletenessRule` suggests (clamped at 0 for very sparse columns).
fn suggested_completeness(present: u64, total: u64) -> f64 {
    if total == 0 || present == total {
        return 1.0;
    }
    let p = present as f64 / total as f64;
    let bound = p - 1.96 * (p * (1.0 - p) / total as f64).sqrt();
    ((bound * 100.0).floor() / 100.0).max(0.0)
}

/// The constraints Model Monitor suggests from a baseline profile.
pub fn suggest(profile: &Profile) -> Constraints {
    let features = profile
        .columns
        .iter()
        .map(|column| {
            let inferred = column.inferred_type();
            let numeric = inferred.is_numeric() && column.moments.count > 0;
            let num_constraints = numeric.then_some(NumConstraints { is_non_negative: column.moments.min >= 0.0 });
            // A domain for a small set of String or Integral values that repeat (Deequ's
            // `CategoricalRangeRule`: values seen once are at most a tenth of the distinct ones).
            let string_constraints = column
                .values
                .as_ref()
                .filter(|values| !values.is_empty() && values.len() <= DOMAIN_MAX_VALUES)
                .filter(|_| matches!(inferred, InferredType::String | InferredType::Integral))
                .filter(|values| {
                    let once = values.values().filter(|c| **c == 1).count();
                    once as f64 / values.len() as f64 <= 0.1
                })
                .map(|values| StringConstraints {
                    domains: by_popularity(values).into_iter().map(|(v, _)| v).collect(),
                });
            FeatureConstraints {
                name: column.name.clone(),
                inferred_type: inferred.as_str().to_string(),
                completeness: Some(suggested_completeness(column.present, column.present + column.missing)),
                num_constraints,
                string_constraints,
                overrides: None,
            }
        })
        .collect();
    Constraints { version: 0.0, features, monitoring_config: MonitoringConfig::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_is_a_lower_bound_rounded_down() {
        assert_eq!(suggested_completeness(100, 100), 1.0);
        // p = 0.9, n = 1000: 0.9 − 1.96·sqrt(0.09/1000) = 0.8814… → 0.88
        assert_eq!(suggested_completeness(900, 1000), 0.88);
        assert_eq!(suggested_completeness(1, 1000), 0.0);
    }

    #[test]
    fn domains_only_for_repeating_small_sets() {
        let mut p = Profile::new(&["colour", "id", "price"]);
        for i in 0..300 {
            let colour = ["red", "green", "blue"][i % 3];
            p.add_row([colour, &i.to_string(), &format!("{}.5", i % 7)]);
        }
        let c = suggest(&p);
        assert_eq!(c.features[0].string_constraints.as_ref().unwrap().domains, ["blue", "green", "red"]);
        assert!(c.features[1].string_constraints.is_none(), "every id is seen once");
        assert!(c.features[2].string_constraints.is_none(), "Fractional columns get no domain");
        assert_eq!(c.features[2].num_constraints, Some(NumConstraints { is_non_negative: true }));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["monitoring_config"]["distribution_constraints"]["comparison_method"], "Robust");
        let back: Constraints = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn both_spellings_of_the_overrides_are_read() {
        for key in ["monitoringConfigOverrides", "monitoring_config_overrides"] {
            let json = serde_json::json!({"version": 0.0, "features": [{"name": "a", "inferred_type": "Integral",
                key: {"comparison_threshold": 0.3}}]});
            let c: Constraints = serde_json::from_value(json).unwrap();
            assert_eq!(c.features[0].overrides.as_ref().unwrap().comparison_threshold, Some(0.3), "{key}");
            assert_eq!(c.monitoring_config, MonitoringConfig::default());
        }
    }
}
