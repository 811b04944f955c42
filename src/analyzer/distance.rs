//! The distances `baseline_drift_check` compares with its thresholds, as Deequ's `Distance`
//! computes them (reference sagemaker-formats.md B.4, B.11).
//!
//! - Numbers: the largest difference between the two CDFs, read off the two KLL sketches at
//!   every value either holds (`linf_simple`, a two-sample Kolmogorov–Smirnov statistic);
//!   `linf_robust` subtracts `c_α·sqrt((n + m)/(n·m))` with Deequ's c_α = 1.8 (α ≈ 0.003), so
//!   only a difference larger than the sampling noise of the two sizes counts.
//! - Categories: the largest difference between the two probability mass functions, with the
//!   same simple/robust choice; or Pearson's chi-square goodness of fit of the window against
//!   the baseline's proportions, after Deequ's regrouping of small categories.

use super::kll::Ranks;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::BTreeMap;

/// Deequ's default c(α), for α ≈ 0.003 (Knuth, TAOCP vol. 2, §3.3.1 eq. 15).
pub const C_ALPHA: f64 = 1.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Simple,
    Robust,
}

/// `max(0, linf − c_α·sqrt((n + m)/(n·m)))` for Robust; `linf` for Simple.
fn select(linf: f64, n: f64, m: f64, method: Method) -> f64 {
    match method {
        Method::Simple => linf,
        Method::Robust => (linf - C_ALPHA * ((n + m) / (n * m)).sqrt()).max(0.0),
    }
}

/// The numeric distance between a baseline and a window sketch; `None` when either is empty.
pub fn numerical(baseline: &Ranks, window: &Ranks, method: Method) -> Option<f64> {
    let (n, m) = (baseline.total() as f64, window.total() as f64);
    if n == 0.0 || m == 0.0 {
        return None;
    }
    let mut linf: f64 = 0.0;
    for key in baseline.keys().chain(window.keys()) {
        let diff = (baseline.rank(key) as f64 / n - window.rank(key) as f64 / m).abs();
        linf = linf.max(diff);
    }
    Some(select(linf, n, m, method))
}

/// The L∞ distance between two categorical distributions (value → count); `None` when either
/// is empty.
pub fn categorical_linf(
    baseline: &BTreeMap<String, f64>,
    window: &BTreeMap<String, f64>,
    method: Method,
) -> Option<f64> {
    let (n, m): (f64, f64) = (baseline.values().sum(), window.values().sum());
    if n == 0.0 || m == 0.0 {
        return None;
    }
    let mut linf: f64 = 0.0;
    for key in baseline.keys().chain(window.keys()) {
        let p = baseline.get(key).copied().unwrap_or(0.0) / n;
        let q = window.get(key).copied().unwrap_or(0.0) / m;
        linf = linf.max((p - q).abs());
    }
    Some(select(linf, n, m, method))
}

/// Pearson's chi-square test of the window's counts against the baseline's proportions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub degrees_of_freedom: usize,
    pub p_value: f64,
}

/// Deequ's `categoricalChiSquareTest`: window categories the baseline lacks are dropped, the
/// expected counts are the baseline's scaled to the window's total, small categories are merged
/// (smallest into the next smallest) until every expected count is ≥ 10 for two categories, or
/// at most ⌊0.2·k⌋ of k are below 5; `None` when fewer than two categories remain.
pub fn chi_square(baseline: &BTreeMap<String, f64>, window: &BTreeMap<String, f64>) -> Option<ChiSquare> {
    let observed_total: f64 = window.iter().filter(|(k, _)| baseline.contains_key(*k)).map(|(_, v)| v).sum();
    let expected_total: f64 = baseline.values().sum();
    if expected_total == 0.0 {
        return None;
    }
    // (expected, observed) per category, in the baseline's order.
    let mut groups: Vec<(String, f64, f64)> = baseline
        .iter()
        .map(|(k, e)| (k.clone(), e / expected_total * observed_total, window.get(k).copied().unwrap_or(0.0)))
        .collect();
    loop {
        if groups.len() < 2 {
            return None;
        }
        let (threshold, allowed) =
            if groups.len() == 2 { (10.0, 0) } else { (5.0, (0.2 * groups.len() as f64) as usize) };
        if groups.iter().filter(|g| g.1 < threshold).count() <= allowed {
            break;
        }
        let smallest = argmin(&groups);
        let (_, expected, observed) = groups.remove(smallest);
        let next = argmin(&groups);
        groups[next].1 += expected;
        groups[next].2 += observed;
    }
    // Spark's ChiSqTest goodness of fit: expected rescaled to the observed total (a no-op here
    // unless rounding moved it), an expected 0 with observations makes the statistic infinite.
    let observed_sum: f64 = groups.iter().map(|g| g.2).sum();
    let expected_sum: f64 = groups.iter().map(|g| g.1).sum();
    let scale = if (observed_sum - expected_sum).abs() < 1e-7 { 1.0 } else { observed_sum / expected_sum };
    let mut statistic = 0.0;
    for (_, expected, observed) in &groups {
        let expected = expected * scale;
        if expected == 0.0 {
            if *observed > 0.0 {
                statistic = f64::INFINITY;
            }
            continue;
        }
        statistic += (observed - expected).powi(2) / expected;
    }
    let degrees_of_freedom = groups.len() - 1;
    let p_value = if statistic.is_infinite() {
        0.0
    } else {
        let distribution = ChiSquared::new(degrees_of_freedom as f64).expect("at least one degree of freedom");
        1.0 - distribution.cdf(statistic)
    };
    Some(ChiSquare { statistic, degrees_of_freedom, p_value })
}

/// The first category with the smallest expected count (Scala's `minBy` keeps the first).
fn argmin(groups: &[(String, f64, f64)]) -> usize {
    let mut best = 0;
    for (i, g) in groups.iter().enumerate() {
        if g.1 < groups[best].1 {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::kll::KllSketch;

    fn sketch(values: impl IntoIterator<Item = f64>) -> Ranks {
        let mut s = KllSketch::new();
        values.into_iter().for_each(|v| s.update(v));
        s.ranks()
    }

    #[test]
    fn identical_samples_are_zero_apart_and_disjoint_ones_one() {
        let a = sketch((0..1000).map(f64::from));
        assert_eq!(numerical(&a, &a, Method::Simple), Some(0.0));
        let b = sketch((2000..3000).map(f64::from));
        assert_eq!(numerical(&a, &b, Method::Simple), Some(1.0));
        let robust = numerical(&a, &b, Method::Robust).unwrap();
        assert!((robust - (1.0 - 1.8 * (2000.0f64 / 1e6).sqrt())).abs() < 1e-12, "{robust}");
    }

    #[test]
    fn categorical_linf_is_the_largest_probability_difference() {
        let base: BTreeMap<String, f64> = [("a".into(), 50.0), ("b".into(), 50.0)].into();
        let window: BTreeMap<String, f64> = [("a".into(), 10.0), ("c".into(), 10.0)].into();
        assert_eq!(categorical_linf(&base, &window, Method::Simple), Some(0.5));
    }

    #[test]
    fn chi_square_regroups_small_categories_first() {
        let base: BTreeMap<String, f64> = [("a".into(), 500.0), ("b".into(), 480.0), ("c".into(), 20.0)].into();
        let window: BTreeMap<String, f64> = [("a".into(), 50.0), ("b".into(), 48.0), ("c".into(), 2.0)].into();
        // c's expected count (2) is below 5 and ⌊0.6⌋ = 0 may be: c merges into b.
        let result = chi_square(&base, &window).unwrap();
        assert_eq!(result.degrees_of_freedom, 1);
        assert!(result.statistic.abs() < 1e-9 && (result.p_value - 1.0).abs() < 1e-9, "{result:?}");
    }
}
