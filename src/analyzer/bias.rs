//! Clarify's bias metrics (issue 15; reference `sagemaker-formats.md` §C.3), as the open
//! `smclarify` package computes them — checked against it in `tests/it/bias.rs` on a data set
//! scikit-learn ships (`tests/fixtures/bias/make_expected.py`).
//!
//! Everything reduces to three boolean columns: facet `d` (the sensitive group; `a` is the rest),
//! positive label and positive predicted label. [`Selector`] makes them from a column as
//! smclarify does (categorical values, or a threshold on a continuous column); [`pre_training`]
//! and [`post_training`] compute the metrics, each a value or the reason it has none.

use serde::Serialize;

/// One metric of a report: its value, or why there is none (smclarify's error entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub description: &'static str,
    pub value: Result<f64, String>,
}

/// The columns a bias report reads, one entry per row.
#[derive(Debug, Clone, Copy)]
pub struct BiasData<'a> {
    /// In the sensitive facet (`d`).
    pub facet: &'a [bool],
    /// Observed label is positive.
    pub label: &'a [bool],
    /// Predicted label is positive (post-training metrics only).
    pub predicted: Option<&'a [bool]>,
    /// The group variable of the conditional metrics (CDDL, CDDPL).
    pub group: Option<&'a [String]>,
    /// The rows' other features, numeric (the flip test's neighbours), one row each.
    pub features: Option<&'a [Vec<f64>]>,
}

/// x / y with smclarify's rules: 0/0 = 0, x/0 = ±∞.
fn divide(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        if x == 0.0 {
            0.0
        } else if x < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    } else {
        x / y
    }
}

/// `a - b`, except that +∞ − +∞ is 0 (both groups equally unbounded).
fn difference(a: f64, b: f64) -> f64 {
    if a == b && a == f64::INFINITY { 0.0 } else { a - b }
}

/// Counts of one group (`a` or `d`).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    n: f64,
    /// Observed positive.
    pos: f64,
    /// Predicted positive.
    pred_pos: f64,
    tp: f64,
    fp: f64,
    fn_: f64,
    tn: f64,
}

impl Counts {
    fn of(data: &BiasData<'_>, in_d: bool) -> Counts {
        let mut c = Counts::default();
        for i in 0..data.facet.len() {
            if data.facet[i] != in_d {
                continue;
            }
            let y = data.label[i];
            c.n += 1.0;
            c.pos += f64::from(u8::from(y));
            if let Some(predicted) = data.predicted {
                let p = predicted[i];
                c.pred_pos += f64::from(u8::from(p));
                match (y, p) {
                    (true, true) => c.tp += 1.0,
                    (false, true) => c.fp += 1.0,
                    (true, false) => c.fn_ += 1.0,
                    (false, false) => c.tn += 1.0,
                }
            }
        }
        c
    }

    fn neg(&self) -> f64 {
        self.n - self.pos
    }

    fn pred_neg(&self) -> f64 {
        self.n - self.pred_pos
    }
}

/// Both groups, or the error of an empty one.
fn groups(data: &BiasData<'_>) -> Result<(Counts, Counts), String> {
    let (a, d) = (Counts::of(data, false), Counts::of(data, true));
    if d.n == 0.0 {
        return Err("Facet set is empty".into());
    }
    if a.n == 0.0 {
        return Err("Negated facet set is empty".into());
    }
    Ok((a, d))
}

fn metric(name: &'static str, description: &'static str, value: Result<f64, String>) -> Metric {
    Metric { name, description, value }
}

/// The label distributions of `a` and `d` over the values both hold (negative, positive), as
/// smclarify aligns them for the divergences.
fn aligned(a: &Counts, d: &Counts) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut pa, mut pd) = (Vec::new(), Vec::new());
    for (xa, xd) in [(a.neg(), d.neg()), (a.pos, d.pos)] {
        if xa > 0.0 && xd > 0.0 {
            pa.push(xa / a.n);
            pd.push(xd / d.n);
        }
    }
    if pa.is_empty() {
        return Err("No instance of common facet found, dataset may be too small".into());
    }
    Ok((pa, pd))
}

/// Conditional demographic disparity of `positive` (labels: CDDL; predictions: CDDPL).
fn conditional_disparity(data: &BiasData<'_>, positive: &[bool]) -> Result<f64, String> {
    let group = data.group.filter(|g| !g.is_empty()).ok_or("Group variable is empty or not provided")?;
    if !positive.iter().any(|p| *p) {
        return Err("No positive labels in set".into());
    }
    if positive.iter().all(|p| *p) {
        return Err("No negative labels in set".into());
    }
    // Per group: rows, positives, positives in d, negatives, negatives in d.
    let mut by_group: std::collections::BTreeMap<&str, [f64; 5]> = std::collections::BTreeMap::new();
    for i in 0..positive.len() {
        let c = by_group.entry(group[i].as_str()).or_default();
        c[0] += 1.0;
        if positive[i] {
            c[1] += 1.0;
            c[2] += f64::from(u8::from(data.facet[i]));
        } else {
            c[3] += 1.0;
            c[4] += f64::from(u8::from(data.facet[i]));
        }
    }
    let (mut weighted, mut total) = (0.0, 0.0);
    for [n, pos, pos_d, neg, neg_d] in by_group.values() {
        let accepted = if *pos == 0.0 { 0.0 } else { pos_d / pos };
        let rejected = if *neg == 0.0 { 0.0 } else { neg_d / neg };
        weighted += n * (rejected - accepted);
        total += n;
    }
    Ok(divide(weighted, total))
}

/// Class imbalance, label proportions and divergences, CDDL — in smclarify's (name) order.
pub fn pre_training(data: &BiasData<'_>) -> Vec<Metric> {
    let counts = groups(data);
    let with = |f: &dyn Fn(&Counts, &Counts) -> Result<f64, String>| counts.clone().and_then(|(a, d)| f(&a, &d));
    let divergence = |f: &dyn Fn(&[f64], &[f64]) -> f64| {
        with(&|a, d| {
            let (pa, pd) = aligned(a, d)?;
            Ok(f(&pa, &pd))
        })
    };
    let kl = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(p, q)| p * (p / q).ln()).sum::<f64>();
    vec![
        metric("CDDL", "Conditional Demographic Disparity in Labels (CDDL)", conditional_disparity(data, data.label)),
        metric("CI", "Class Imbalance (CI)", with(&|a, d| Ok((a.n - d.n) / (a.n + d.n)))),
        metric(
            "DPL",
            "Difference in Positive Proportions in Labels (DPL)",
            with(&|a, d| Ok(a.pos / a.n - d.pos / d.n)),
        ),
        metric(
            "JS",
            "Jensen-Shannon Divergence (JS)",
            divergence(&|pa, pd| {
                let m: Vec<f64> = pa.iter().zip(pd).map(|(a, d)| (a + d) / 2.0).collect();
                0.5 * (kl(pa, &m) + kl(pd, &m))
            }),
        ),
        metric("KL", "Kullback-Liebler Divergence (KL)", divergence(&|pa, pd| kl(pa, pd))),
        metric(
            "KS",
            "Kolmogorov-Smirnov Distance (KS)",
            divergence(&|pa, pd| pa.iter().zip(pd).map(|(a, d)| (a - d).abs()).fold(0.0, f64::max)),
        ),
        metric(
            "LP",
            "L-p Norm (LP)",
            divergence(&|pa, pd| pa.iter().zip(pd).map(|(a, d)| (a - d).powi(2)).sum::<f64>().sqrt()),
        ),
        metric(
            "TVD",
            "Total Variation Distance (TVD)",
            divergence(&|pa, pd| 0.5 * pa.iter().zip(pd).map(|(a, d)| (a - d).abs()).sum::<f64>()),
        ),
    ]
}

/// The 13 post-training metrics, in smclarify's (name) order. Needs `data.predicted`.
pub fn post_training(data: &BiasData<'_>) -> Vec<Metric> {
    let Some(predicted) = data.predicted else {
        return Vec::new();
    };
    let counts = groups(data);
    let with = |f: &dyn Fn(&Counts, &Counts) -> f64| counts.clone().map(|(a, d)| f(&a, &d));
    vec![
        metric(
            "AD",
            "Accuracy Difference (AD)",
            with(&|a, d| difference(divide(a.tp + a.tn, a.n), divide(d.tp + d.tn, d.n))),
        ),
        metric(
            "CDDPL",
            "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
            conditional_disparity(data, predicted),
        ),
        metric(
            "DAR",
            "Difference in Acceptance Rates (DAR)",
            with(&|a, d| difference(divide(a.tp, a.pred_pos), divide(d.tp, d.pred_pos))),
        ),
        metric(
            "DCA",
            "Difference in Conditional Acceptance (DCA)",
            with(&|a, d| difference(divide(a.pos, a.pred_pos), divide(d.pos, d.pred_pos))),
        ),
        metric(
            "DCR",
            "Difference in Conditional Rejection (DCR)",
            with(&|a, d| difference(divide(d.neg(), d.pred_neg()), divide(a.neg(), a.pred_neg()))),
        ),
        metric("DI", "Disparate Impact (DI)", with(&|a, d| divide(d.pred_pos / d.n, a.pred_pos / a.n))),
        metric(
            "DPPL",
            "Difference in Positive Proportions in Predicted Labels (DPPL)",
            with(&|a, d| a.pred_pos / a.n - d.pred_pos / d.n),
        ),
        metric(
            "DRR",
            "Difference in Rejection Rates (DRR)",
            with(&|a, d| difference(divide(d.tn, d.pred_neg()), divide(a.tn, a.pred_neg()))),
        ),
        metric("FT", "Flip Test (FT)", flip_test(data, predicted)),
        metric("GE", "Generalized Entropy (GE)", generalized_entropy(data.label, predicted)),
        metric(
            "RD",
            "Recall Difference (RD)",
            with(&|a, d| difference(divide(a.tp, a.tp + a.fn_), divide(d.tp, d.tp + d.fn_))),
        ),
        metric(
            "SD",
            "Specificity Difference (SD)",
            with(&|a, d| difference(divide(d.tn, d.tn + d.fp), divide(a.tn, a.tn + a.fp))),
        ),
        metric("TE", "Treatment Equality (TE)", with(&|a, d| difference(divide(d.fn_, d.fp), divide(a.fn_, a.fp)))),
    ]
}

/// GE with α = 2: benefit b = ŷ − y + 1, GE = Σ((b/b̄)² − 1) / (2n).
fn generalized_entropy(label: &[bool], predicted: &[bool]) -> Result<f64, String> {
    let n = label.len() as f64;
    if label.is_empty() {
        return Err("dataset must be non-empty".into());
    }
    let benefit = |i: usize| f64::from(u8::from(predicted[i])) - f64::from(u8::from(label[i])) + 1.0;
    let mean = (0..label.len()).map(benefit).sum::<f64>() / n;
    if mean == 0.0 {
        return Err("All predicted labels are false negatives. There should be at least one prediction that is not false negative.".into());
    }
    Ok((0..label.len()).map(|i| (benefit(i) / mean).powi(2) - 1.0).sum::<f64>() / (n * 2.0))
}

/// Rows of `a` at least this many give the flip test 5 neighbours; fewer, 1 (smclarify's rule).
const FT_MIN_ROWS_FOR_FIVE: usize = 10;

/// The flip test: a k-nearest-neighbour vote (Euclidean, uniform, k = 5; 1 when `a` has fewer
/// than 10 rows) among `a`'s rows with the model's predictions, for each row of `d`;
/// FT = (#{model 1, neighbours 0} − #{model 0, neighbours 1}) / n_d.
fn flip_test(data: &BiasData<'_>, predicted: &[bool]) -> Result<f64, String> {
    let features = data.features.ok_or("the flip test needs the rows' features")?;
    let a: Vec<usize> = (0..data.facet.len()).filter(|&i| !data.facet[i]).collect();
    let d: Vec<usize> = (0..data.facet.len()).filter(|&i| data.facet[i]).collect();
    if d.is_empty() {
        return Err("Facet set is empty".into());
    }
    if a.is_empty() {
        return Err("Negated Facet set is empty".into());
    }
    let k = if a.len() >= FT_MIN_ROWS_FOR_FIVE { 5 } else { 1 };
    let distance = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let (mut flipped_down, mut flipped_up) = (0i64, 0i64);
    let mut nearest: Vec<(f64, usize)> = Vec::with_capacity(a.len());
    for &row in &d {
        nearest.clear();
        nearest.extend(a.iter().map(|&other| (distance(&features[row], &features[other]), other)));
        // Ties broken by row order, as a stable brute-force search does.
        nearest.select_nth_unstable_by(k - 1, |x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let positive_votes = nearest[..k].iter().filter(|(_, i)| predicted[*i]).count();
        // A tie of votes (even k only) goes to the smaller class, negative.
        let neighbours_say = positive_votes * 2 > k;
        match (predicted[row], neighbours_say) {
            (true, false) => flipped_down += 1,
            (false, true) => flipped_up += 1,
            _ => {}
        }
    }
    Ok(divide((flipped_down - flipped_up) as f64, d.len() as f64))
}

/// A column's values as smclarify sees them: whole numbers, numbers, or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Categorical,
    Continuous,
}

/// smclarify's typing: several given values, or text, make a column categorical; a fractional
/// column is continuous; a whole-number column (or text of whole numbers) is continuous when at
/// least 5 % of its values are distinct.
pub fn column_type(values: &[&str], given: usize) -> ColumnType {
    if given > 1 {
        return ColumnType::Categorical;
    }
    let present: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    let distinct = present.iter().collect::<std::collections::HashSet<_>>().len() as f64;
    let uniqueness = if present.is_empty() { 0.0 } else { distinct / present.len() as f64 };
    let integral = present.iter().all(|v| v.trim().parse::<i64>().is_ok());
    let numeric = present.iter().all(|v| v.trim().parse::<f64>().is_ok());
    if integral {
        if uniqueness >= 0.05 { ColumnType::Continuous } else { ColumnType::Categorical }
    } else if numeric {
        ColumnType::Continuous
    } else {
        ColumnType::Categorical
    }
}

/// Which rows are in: a set of values (categorical), or above a threshold (continuous).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Selector {
    Values(Vec<String>),
    Above(f64),
}

/// The rows `selector` picks from `values`, and how Clarify names the choice
/// (`value_or_threshold`): the values joined with `,`, or the interval `(t, max]`.
pub fn select(values: &[&str], selector: &Selector) -> Result<(Vec<bool>, String), String> {
    match selector {
        Selector::Values(wanted) => {
            let as_number = |v: &str| v.trim().parse::<f64>().ok();
            let picked = values
                .iter()
                .map(|v| {
                    wanted
                        .iter()
                        .any(|w| w == v || matches!((as_number(w), as_number(v)), (Some(a), Some(b)) if a == b))
                })
                .collect();
            Ok((picked, wanted.join(",")))
        }
        Selector::Above(threshold) => {
            let numbers: Vec<Option<f64>> = values.iter().map(|v| v.trim().parse::<f64>().ok()).collect();
            let max = numbers.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
            if !max.is_finite() {
                return Err("the column has no numbers to compare with the threshold".into());
            }
            // The interval (t, max]; when |max| is itself the threshold, (max, t]… is empty, as
            // smclarify's breaks make it.
            let (low, high) =
                if max.abs() == *threshold { (max.min(*threshold), *threshold) } else { (*threshold, max) };
            let integral =
                values.iter().all(|v| v.is_empty() || v.trim().parse::<i64>().is_ok()) && threshold.fract() == 0.0;
            let picked = numbers.iter().map(|x| x.is_some_and(|x| x > low && x <= high)).collect();
            Ok((picked, format!("({}, {}]", interval_bound(low, integral), interval_bound(high, integral))))
        }
    }
}

/// A bound as pandas prints an interval of that column's type: `55` for whole numbers, `55.0`
/// otherwise.
fn interval_bound(x: f64, integral: bool) -> String {
    if integral {
        format!("{}", x as i64)
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// One bias report entry for `analysis.json` (`facets.<name>[i]`).
#[derive(Debug, Clone, Serialize)]
pub struct FacetReport {
    pub value_or_threshold: String,
    pub metrics: Vec<MetricOut>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricOut {
    pub name: String,
    pub description: String,
    /// A number, `"Infinity"`/`"-Infinity"`, or null with `error`.
    pub value: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&Metric> for MetricOut {
    fn from(m: &Metric) -> Self {
        let (value, error) = match &m.value {
            Ok(v) if v.is_infinite() => ((if *v > 0.0 { "Infinity" } else { "-Infinity" }).into(), None),
            Ok(v) => (serde_json::json!(v), None),
            Err(e) => (serde_json::Value::Null, Some(e.clone())),
        };
        MetricOut { name: m.name.to_string(), description: m.description.to_string(), value, error }
    }
}

/// A `bias_drift_check` violation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftViolation {
    pub facet: String,
    pub facet_value: String,
    pub metric_name: String,
    pub constraint_check_type: &'static str,
    pub description: String,
}

/// The metrics of a window that moved farther from 0 than the baseline's (Clarify's rule, C.4:
/// `|current| > |baseline|` for the same facet, value and metric). A metric without a value on
/// either side is not compared.
pub fn drift_violations(
    facet: &str,
    facet_value: &str,
    baseline: &[Metric],
    current: &[Metric],
) -> Vec<DriftViolation> {
    current
        .iter()
        .filter_map(|now| {
            let before = baseline.iter().find(|b| b.name == now.name)?;
            let (Ok(now_value), Ok(before_value)) = (&now.value, &before.value) else { return None };
            (now_value.abs() > before_value.abs()).then(|| DriftViolation {
                facet: facet.to_string(),
                facet_value: facet_value.to_string(),
                metric_name: now.name.to_string(),
                constraint_check_type: "bias_drift_check",
                description: format!(
                    "Metric value {} doesn't meet the baseline constraint requirement {}",
                    number_text(*now_value),
                    number_text(*before_value)
                ),
            })
        })
        .collect()
}

/// As Python prints a float (`repr`), which the violation text quotes.
fn number_text(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let text = format!("{x}");
    if text.contains('.') || text.contains('e') || text.contains("inf") || text.contains("NaN") {
        text
    } else {
        format!("{text}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisions_follow_smclarify() {
        assert_eq!(divide(0.0, 0.0), 0.0);
        assert_eq!(divide(2.0, 0.0), f64::INFINITY);
        assert_eq!(divide(-2.0, 0.0), f64::NEG_INFINITY);
        assert_eq!(difference(f64::INFINITY, f64::INFINITY), 0.0);
    }

    #[test]
    fn columns_are_typed_as_smclarify_types_them() {
        let binary: Vec<&str> = (0..100).map(|i| if i % 2 == 0 { "0" } else { "1" }).collect();
        assert_eq!(column_type(&binary, 1), ColumnType::Categorical);
        let ages: Vec<String> = (0..100).map(|i| (20 + i % 60).to_string()).collect();
        let ages: Vec<&str> = ages.iter().map(String::as_str).collect();
        assert_eq!(column_type(&ages, 1), ColumnType::Continuous);
        assert_eq!(column_type(&ages, 2), ColumnType::Categorical, "several values given");
        assert_eq!(column_type(&["0.5", "1.5"], 1), ColumnType::Continuous);
        assert_eq!(column_type(&["red", "blue"], 1), ColumnType::Categorical);
    }

    #[test]
    fn selections_are_named_as_clarify_names_them() {
        let (picked, name) = select(&["1", "0", "1.0"], &Selector::Values(vec!["1".into()])).unwrap();
        assert_eq!((picked, name.as_str()), (vec![true, false, true], "1"));
        let (picked, name) = select(&["20", "56", "80"], &Selector::Above(55.0)).unwrap();
        assert_eq!((picked, name.as_str()), (vec![false, true, true], "(55, 80]"));
        let (_, name) = select(&["0.5", "2.5"], &Selector::Above(1.0)).unwrap();
        assert_eq!(name, "(1.0, 2.5]");
    }

    #[test]
    fn drift_is_a_metric_farther_from_zero() {
        let m = |name, value: f64| Metric { name, description: "", value: Ok(value) };
        let baseline = [m("DPPL", 0.1), m("TE", 2.0), m("DCR", 0.03)];
        let current = [m("DPPL", -0.05), m("TE", f64::INFINITY), m("DCR", -0.08)];
        let flagged: Vec<_> =
            drift_violations("Sex", "0", &baseline, &current).into_iter().map(|v| v.metric_name).collect();
        assert_eq!(flagged, ["TE", "DCR"]);
        let text = &drift_violations("Sex", "0", &baseline, &current)[1].description;
        assert_eq!(text, "Metric value -0.08 doesn't meet the baseline constraint requirement 0.03");
    }
}
