//! Checks a window against a baseline's statistics and constraints and writes what
//! `constraint_violations.json` holds (reference sagemaker-formats.md B.3, B.4, B.11), with a
//! per-feature report (the distance, its threshold, and why it was or was not flagged) for the
//! executions API.

use super::constraints::{Constraints, FeatureConstraints, Overrides};
use super::distance::{self, Method};
use super::profile::{ColumnProfile, InferredType, Profile};
use super::statistics::Statistics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub feature_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

/// The drift figures of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// `linf_simple`/`linf_robust`, or `chi_square_statistic`/`chi_square_p_value`.
    pub method: String,
    pub distance: f64,
    pub threshold: f64,
    pub flagged: bool,
    /// Why it was (not) flagged, in a sentence.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub drift: Vec<FeatureDrift>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the baseline statistics of feature {feature:?} hold a sketch that cannot be read: {message}")]
    Sketch { feature: String, message: String },
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p.fract() == 0.0 { format!("{p:.1}%") } else { format!("{p}%") }
}

fn violation(feature: &str, check: &str, description: String) -> Violation {
    Violation { feature_name: feature.to_string(), constraint_check_type: check.to_string(), description }
}

/// The settings that apply to one feature: its overrides over `monitoring_config`.
struct Settings {
    datatype_threshold: f64,
    domain_threshold: f64,
    threshold: f64,
    categorical_threshold: f64,
    method: Method,
    chi_square: bool,
}

fn settings(constraints: &Constraints, feature: &FeatureConstraints) -> Settings {
    let config = &constraints.monitoring_config;
    let distribution = &config.distribution_constraints;
    let empty = Overrides::default();
    let o = feature.overrides.as_ref().unwrap_or(&empty);
    let nested = o.distribution_constraints.as_deref().unwrap_or(&empty);
    let threshold = nested.comparison_threshold.or(o.comparison_threshold).unwrap_or(distribution.comparison_threshold);
    let method = nested
        .comparison_method
        .clone()
        .or(o.comparison_method.clone())
        .unwrap_or(distribution.comparison_method.clone());
    let drift_method = nested
        .categorical_drift_method
        .clone()
        .or(o.categorical_drift_method.clone())
        .or(distribution.categorical_drift_method.clone())
        .unwrap_or_else(|| "LInfinity".into());
    Settings {
        datatype_threshold: o.datatype_check_threshold.unwrap_or(config.datatype_check_threshold),
        domain_threshold: o.domain_content_threshold.unwrap_or(config.domain_content_threshold),
        threshold,
        categorical_threshold: nested
            .categorical_comparison_threshold
            .or(o.categorical_comparison_threshold)
            .or(distribution.categorical_comparison_threshold)
            .unwrap_or(threshold),
        method: if method.eq_ignore_ascii_case("simple") { Method::Simple } else { Method::Robust },
        chi_square: drift_method.eq_ignore_ascii_case("chisquared"),
    }
}

/// Checks `window` against the baseline.
pub fn check(baseline: &Statistics, constraints: &Constraints, window: &Profile) -> Result<Report, CheckError> {
    let mut report = Report { violations: Vec::new(), drift: Vec::new() };
    if !constraints.monitoring_config.evaluate_constraints.eq_ignore_ascii_case("enabled") {
        return Ok(report);
    }
    let columns: BTreeMap<&str, &ColumnProfile> = window.columns.iter().map(|c| (c.name.as_str(), c)).collect();
    let (window_count, baseline_count) = (window.columns.len(), constraints.features.len());
    for feature in constraints.features.iter().filter(|f| !columns.contains_key(f.name.as_str())) {
        report.violations.push(violation(
            &feature.name,
            "missing_column_check",
            format!(
                "There are missing columns in current dataset. Number of columns in current dataset: {window_count}, Number of columns in baseline constraints: {baseline_count}"
            ),
        ));
    }
    let known: std::collections::HashSet<&str> = constraints.features.iter().map(|f| f.name.as_str()).collect();
    for column in window.columns.iter().filter(|c| !known.contains(c.name.as_str())) {
        report.violations.push(violation(
            &column.name,
            "extra_column_check",
            format!(
                "There are extra columns in current dataset. Number of columns in current dataset: {window_count}, Number of columns in baseline constraints: {baseline_count}"
            ),
        ));
    }
    let perform_comparison =
        constraints.monitoring_config.distribution_constraints.perform_comparison.eq_ignore_ascii_case("enabled");
    for feature in &constraints.features {
        let Some(column) = columns.get(feature.name.as_str()) else { continue };
        let s = settings(constraints, feature);
        let name = feature.name.as_str();
        let expected = InferredType::parse(&feature.inferred_type).unwrap_or(InferredType::Unknown);

        if expected != InferredType::Unknown && column.present > 0 {
            let observed = column.type_match(expected);
            if observed < s.datatype_threshold {
                report.violations.push(violation(
                    name,
                    "data_type_check",
                    format!(
                        "Data type match requirement is not met. Expected data type: {}, Expected match: {}. Observed: Only {} of data is {}.",
                        expected.as_str(),
                        percent(s.datatype_threshold),
                        percent(observed),
                        expected.as_str()
                    ),
                ));
            }
        }
        if let Some(required) = feature.completeness {
            let observed = column.completeness();
            if observed < required {
                report.violations.push(violation(
                    name,
                    "completeness_check",
                    format!(
                        "Data completeness requirement is not met. Expected: {} complete. Observed: Only {} of data is complete.",
                        percent(required),
                        percent(observed)
                    ),
                ));
            }
        }
        if let Some(domain) = &feature.string_constraints {
            let total = column.present + column.missing;
            // Nulls count as in the domain (Deequ's isContainedIn).
            let in_domain = match &column.values {
                Some(values) => {
                    let known: u64 =
                        values.iter().filter(|(v, _)| domain.domains.iter().any(|d| d == *v)).map(|(_, c)| *c).sum();
                    Some(if total == 0 { 1.0 } else { (known + column.missing) as f64 / total as f64 })
                }
                None => None,
            };
            match in_domain {
                Some(fraction) if fraction >= s.domain_threshold => {}
                Some(fraction) => report.violations.push(violation(
                    name,
                    "categorical_values_check",
                    format!(
                        "Data does not meet the domain content requirement. Expected: {} of the values in the baseline domain of {} values. Observed: only {} of data is in the domain.",
                        percent(s.domain_threshold),
                        domain.domains.len(),
                        percent(fraction)
                    ),
                )),
                None => report.violations.push(violation(
                    name,
                    "categorical_values_check",
                    format!(
                        "Data does not meet the domain content requirement. The baseline domain has {} values; the current data has more than {} distinct values.",
                        domain.domains.len(),
                        super::profile::MAX_TRACKED_VALUES
                    ),
                )),
            }
        }
        if perform_comparison && let Some(drift) = drift(baseline, name, column, &s)? {
            if drift.flagged {
                report.violations.push(violation(
                    name,
                    "baseline_drift_check",
                    format!("Baseline drift distance: {} exceeds threshold: {}", drift.distance, drift.threshold),
                ));
            }
            report.drift.push(drift);
        }
    }
    Ok(report)
}

/// The feature's drift against its baseline, when both sides have a distribution to compare.
fn drift(
    baseline: &Statistics,
    name: &str,
    column: &ColumnProfile,
    s: &Settings,
) -> Result<Option<FeatureDrift>, CheckError> {
    let Some(base) = baseline.features.iter().find(|f| f.name == name) else { return Ok(None) };
    let method_name = match s.method {
        Method::Simple => "linf_simple",
        Method::Robust => "linf_robust",
    };
    if let Some(sketch) = base.sketch() {
        let sketch = sketch.map_err(|message| CheckError::Sketch { feature: name.to_string(), message })?;
        if column.moments.count == 0 {
            return Ok(None);
        }
        let Some(distance) = distance::numerical(&sketch.ranks(), &column.sketch.ranks(), s.method) else {
            return Ok(None);
        };
        return Ok(Some(linf(name, method_name, distance, s.threshold, "numerical")));
    }
    let (Some(base_counts), Some(values)) = (base.categories(), column.values.as_ref()) else { return Ok(None) };
    let window: BTreeMap<String, f64> = values.iter().map(|(v, c)| (v.clone(), *c as f64)).collect();
    if s.chi_square {
        let Some(test) = distance::chi_square(&base_counts, &window) else { return Ok(None) };
        // Robust (the default) compares the p-value: flagged when the window is that unlikely
        // under the baseline's proportions; Simple compares the statistic (docs/MONITORING.md).
        let drift = match s.method {
            Method::Robust => FeatureDrift {
                feature: name.to_string(),
                method: "chi_square_p_value".into(),
                distance: test.p_value,
                threshold: s.categorical_threshold,
                flagged: test.p_value < s.categorical_threshold,
                why: format!(
                    "chi-square p-value {:.4} ({} degrees of freedom) is {} the threshold {}",
                    test.p_value,
                    test.degrees_of_freedom,
                    if test.p_value < s.categorical_threshold { "below" } else { "not below" },
                    s.categorical_threshold
                ),
            },
            Method::Simple => FeatureDrift {
                feature: name.to_string(),
                method: "chi_square_statistic".into(),
                distance: test.statistic,
                threshold: s.categorical_threshold,
                flagged: test.statistic > s.categorical_threshold,
                why: format!(
                    "chi-square statistic {:.4} is {} the threshold {}",
                    test.statistic,
                    if test.statistic > s.categorical_threshold { "above" } else { "not above" },
                    s.categorical_threshold
                ),
            },
        };
        return Ok(Some(drift));
    }
    let Some(distance) = distance::categorical_linf(&base_counts, &window, s.method) else { return Ok(None) };
    Ok(Some(linf(name, method_name, distance, s.categorical_threshold, "categorical")))
}

fn linf(name: &str, method: &str, distance: f64, threshold: f64, kind: &str) -> FeatureDrift {
    let flagged = distance > threshold;
    FeatureDrift {
        feature: name.to_string(),
        method: method.to_string(),
        distance,
        threshold,
        flagged,
        why: format!(
            "the {kind} {method} distance {distance:.4} is {} the threshold {threshold}",
            if flagged { "above" } else { "not above" }
        ),
    }
}
