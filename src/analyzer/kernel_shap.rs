//! Kernel SHAP (Lundberg and Lee 2017) as Clarify runs it (issue 15; reference §C.6): a feature
//! absent from a coalition takes the baseline rows' values, present it keeps the record's; the
//! model's mean output over the baseline rows for each coalition is fitted by a weighted linear
//! regression with the Shapley kernel, constrained so the values add up to
//! f(record) − E[f(baseline)].
//!
//! Coalitions are chosen as the `shap` package's `KernelExplainer` chooses them: features that
//! never differ from the baseline get 0 and are left out; then whole coalition sizes are
//! enumerated from the outside in (1 and M−1 features, then 2 and M−2, …) while the budget
//! covers them, and the rest of the budget is drawn at random (seeded) by size, each draw with its
//! complement. With a budget of 2^M − 2 or more every coalition is enumerated and the values are
//! the exact Shapley values of the baseline-averaged model (`tests/it/kernel_shap.rs` compares
//! them with `shap.KernelExplainer` to 1e-9).

use rand::{RngExt, SeedableRng};
use std::collections::HashMap;

/// Clarify's default budget when `num_samples` is not given: 2M + 2048 (capped at 2^M − 2).
pub fn default_samples(features: usize) -> usize {
    2 * features + 2048
}

/// One record's explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// One value per feature.
    pub shap_values: Vec<f64>,
    /// E[f(baseline)]: the base value the values add to.
    pub expected_value: f64,
    /// f(record).
    pub prediction: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelShapError {
    #[error("the baseline has no rows")]
    NoBaseline,
    #[error("a baseline row has {got} features, the record {want}")]
    Width { got: usize, want: usize },
    #[error("the model answered {got} values for {want} rows")]
    Model { got: usize, want: usize },
    #[error("the model failed: {0}")]
    Failed(String),
}

/// The model: rows in, one output per row (or why it could not answer).
pub type Model<'a> = dyn Fn(&[Vec<f64>]) -> Result<Vec<f64>, String> + 'a;

/// Explains `record` against `baseline` with at most `num_samples` coalitions.
pub fn explain(
    model: &Model<'_>,
    record: &[f64],
    baseline: &[Vec<f64>],
    num_samples: usize,
    seed: u64,
) -> Result<Explanation, KernelShapError> {
    if baseline.is_empty() {
        return Err(KernelShapError::NoBaseline);
    }
    if let Some(row) = baseline.iter().find(|r| r.len() != record.len()) {
        return Err(KernelShapError::Width { got: row.len(), want: record.len() });
    }
    let call = |rows: &[Vec<f64>]| {
        let out = model(rows).map_err(KernelShapError::Failed)?;
        if out.len() == rows.len() { Ok(out) } else { Err(KernelShapError::Model { got: out.len(), want: rows.len() }) }
    };
    let prediction = call(&[record.to_vec()])?[0];
    let expected_value = call(baseline)?.iter().sum::<f64>() / baseline.len() as f64;
    let mut shap_values = vec![0.0; record.len()];
    let varying: Vec<usize> = (0..record.len()).filter(|&j| baseline.iter().any(|b| b[j] != record[j])).collect();
    let m = varying.len();
    let total = prediction - expected_value;
    match m {
        0 => return Ok(Explanation { shap_values, expected_value, prediction }),
        1 => {
            shap_values[varying[0]] = total;
            return Ok(Explanation { shap_values, expected_value, prediction });
        }
        _ => {}
    }

    let coalitions = coalitions(m, num_samples, seed);
    // Every coalition's synthetic rows (one per baseline row), evaluated in one call.
    let mut rows = Vec::with_capacity(coalitions.len() * baseline.len());
    for (mask, _) in &coalitions {
        for b in baseline {
            let mut row = b.clone();
            for (k, &j) in varying.iter().enumerate() {
                if mask[k] {
                    row[j] = record[j];
                }
            }
            rows.push(row);
        }
    }
    let outputs = call(&rows)?;
    let means: Vec<f64> = outputs.chunks(baseline.len()).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();

    // Weighted least squares with Σφ = total, the last varying feature eliminated:
    // y − z_last·total = Σ_{k<last} φ_k (z_k − z_last).
    let last = m - 1;
    let mut xtwx = vec![vec![0.0; last]; last];
    let mut xtwy = vec![0.0; last];
    for ((mask, weight), mean) in coalitions.iter().zip(&means) {
        let z_last = f64::from(u8::from(mask[last]));
        let y = mean - expected_value - z_last * total;
        let x: Vec<f64> = (0..last).map(|k| f64::from(u8::from(mask[k])) - z_last).collect();
        for a in 0..last {
            if x[a] == 0.0 {
                continue;
            }
            xtwy[a] += weight * x[a] * y;
            for b in 0..last {
                xtwx[a][b] += weight * x[a] * x[b];
            }
        }
    }
    let phi = solve(xtwx, xtwy);
    let mut sum = 0.0;
    for (k, value) in phi.iter().enumerate() {
        shap_values[varying[k]] = *value;
        sum += value;
    }
    shap_values[varying[last]] = total - sum;
    Ok(Explanation { shap_values, expected_value, prediction })
}

/// The coalitions (present-feature masks over the `m` varying features) and their kernel
/// weights, summing to 1, chosen as `shap`'s `KernelExplainer` chooses them.
fn coalitions(m: usize, num_samples: usize, seed: u64) -> Vec<(Vec<bool>, f64)> {
    let max = if m >= 30 { usize::MAX } else { (1usize << m) - 2 };
    let budget = num_samples.min(max).max(1);
    let num_sizes = m.div_ceil(2);
    let num_paired = (m - 1) / 2;
    // The Shapley kernel's mass per coalition size s, a size and its complement together:
    // (m−1)/(s(m−s)), normalised.
    let mut weights: Vec<f64> = (1..=num_sizes).map(|s| (m - 1) as f64 / (s * (m - s)) as f64).collect();
    for w in weights.iter_mut().take(num_paired) {
        *w *= 2.0;
    }
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);

    let mut out: Vec<(Vec<bool>, f64)> = Vec::new();
    let mut left = budget as f64;
    let mut remaining = weights.clone();
    let mut complete = 0;
    for s in 1..=num_sizes {
        let paired = s <= num_paired;
        let count = binomial(m, s) * if paired { 2.0 } else { 1.0 };
        // Enumerate the size when the budget's share for it covers every coalition of it.
        if left * remaining[s - 1] / count < 1.0 - 1e-8 {
            break;
        }
        complete += 1;
        left -= count;
        if remaining[s - 1] < 1.0 {
            let spent = remaining[s - 1];
            remaining.iter_mut().for_each(|w| *w /= 1.0 - spent);
        }
        let each = weights[s - 1] / count;
        for subset in subsets(m, s) {
            let mut mask = vec![false; m];
            subset.iter().for_each(|&i| mask[i] = true);
            let complement: Vec<bool> = mask.iter().map(|p| !p).collect();
            out.push((mask, each));
            if paired {
                out.push((complement, each));
            }
        }
    }
    let left = left.max(0.0) as usize;
    if complete == num_sizes || left == 0 {
        return out;
    }

    // The rest drawn at random (seeded): a size by its share of the kernel (a paired draw
    // counts twice, with its complement), then a subset of that size; a repeated draw adds to
    // its weight. The drawn coalitions share the kernel mass the enumerated sizes left.
    let mut shares: Vec<f64> =
        (complete + 1..=num_sizes).map(|s| weights[s - 1] / if s <= num_paired { 2.0 } else { 1.0 }).collect();
    let norm: f64 = shares.iter().sum();
    shares.iter_mut().for_each(|p| *p /= norm);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut counts: HashMap<Vec<bool>, f64> = HashMap::new();
    let mut order: Vec<Vec<bool>> = Vec::new();
    let mut samples_left = left;
    for _ in 0..4 * left {
        if samples_left == 0 {
            break;
        }
        let pick: f64 = rng.random();
        let mut acc = 0.0;
        let mut s = num_sizes;
        for (k, p) in shares.iter().enumerate() {
            acc += p;
            if pick < acc {
                s = complete + 1 + k;
                break;
            }
        }
        let mut indices: Vec<usize> = (0..m).collect();
        for i in 0..s {
            let j = rng.random_range(i..m);
            indices.swap(i, j);
        }
        let mut mask = vec![false; m];
        indices[..s].iter().for_each(|&i| mask[i] = true);
        let complement: Vec<bool> = mask.iter().map(|p| !p).collect();
        let new = !counts.contains_key(&mask);
        if new {
            order.push(mask.clone());
            samples_left -= 1;
        }
        *counts.entry(mask).or_insert(0.0) += 1.0;
        if s <= num_paired && (samples_left > 0 || !new) {
            if new {
                order.push(complement.clone());
                samples_left -= 1;
            }
            *counts.entry(complement).or_insert(0.0) += 1.0;
        }
    }
    let mass_left: f64 = weights[complete..].iter().sum();
    let drawn: f64 = order.iter().map(|k| counts[k]).sum();
    for key in order {
        let w = counts[&key] / drawn * mass_left;
        out.push((key, w));
    }
    out
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Every `k`-subset of 0..n, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..k).collect();
    loop {
        out.push(current.clone());
        let Some(i) = (0..k).rev().find(|&i| current[i] < n - k + i) else { return out };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

/// Solves the small dense system `a x = b` by Gaussian elimination with partial pivoting (an
/// M×M system per record, M the features: a linear-algebra crate would add more than it saves);
/// a singular direction gets 0.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-14 {
            continue;
        }
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let factor = a[row][col] / p;
            if factor == 0.0 {
                continue;
            }
            for (x, y) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= factor * y;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let p = a[row][row];
        if p.abs() < 1e-14 {
            continue;
        }
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / p;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear model's Shapley values are w_j (x_j − mean baseline x_j), exactly.
    #[test]
    fn a_linear_model_gets_its_exact_values() {
        let w = [2.0, -1.0, 0.5, 3.0, 0.0];
        let model = |rows: &[Vec<f64>]| Ok(rows.iter().map(|r| r.iter().zip(&w).map(|(x, w)| x * w).sum()).collect());
        let baseline = vec![vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![1.0, 1.0, 0.0, -1.0, 2.0]];
        let record = [3.0, 2.0, 1.0, 0.0, 9.0];
        for budget in [30, 10] {
            let e = explain(&model, &record, &baseline, budget, 7).unwrap();
            for j in 0..5 {
                let mean = (baseline[0][j] + baseline[1][j]) / 2.0;
                assert!((e.shap_values[j] - w[j] * (record[j] - mean)).abs() < 1e-9, "{budget}: {e:?}");
            }
            let total: f64 = e.shap_values.iter().sum();
            assert!((total + e.expected_value - e.prediction).abs() < 1e-9);
        }
    }

    #[test]
    fn subsets_and_weights() {
        assert_eq!(subsets(4, 2).len(), 6);
        assert_eq!(subsets(3, 3), vec![vec![0, 1, 2]]);
        let all = coalitions(4, 100, 1);
        assert_eq!(all.len(), 14, "2^4 − 2 coalitions");
        let total: f64 = all.iter().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}
