//! What the `ai.onnx.ml` operators share: class labels, and the post transforms computed as
//! onnxruntime computes them (its logistic keeps precision for large negative scores, its probit
//! uses a closed-form erfinv approximation), so our probabilities agree with its to float
//! rounding rather than to a different formula's.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

/// Class labels of a classifier, as the model names them.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }
}

impl PostTransform {
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        Ok(match text.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return Err(format!("unknown post_transform `{other}`")),
        })
    }

    /// Applies the transform to one row of scores, in place.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Softmax => softmax(row),
            PostTransform::SoftmaxZero => softmax_zero(row),
            PostTransform::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
        }
    }
}

/// The first index of the largest value (as onnxruntime picks a class on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

pub fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax that leaves exact zeros (no vote) near zero, as ONNX defines SOFTMAX_ZERO.
pub fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::MIN, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for v in values.iter_mut() {
        if v.abs() > 1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// `sqrt(2) * erfinv(2p - 1)` with the closed-form erfinv approximation (a = 0.147) that ONNX
/// runtimes use for PROBIT, so the values agree with theirs rather than with an exact erfinv.
pub fn probit(p: f32) -> f32 {
    let x = 2.0 * p - 1.0;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let a = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let b = ln / 0.147;
    std::f32::consts::SQRT_2 * sign * ((a * a - b).sqrt() - a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_cdf_closely() {
        // Φ(1.0) = 0.841344746; the a = 0.147 approximation is good to about 2e-3.
        assert!((probit(0.841_344_7) - 1.0).abs() < 2e-3);
        assert!(probit(0.5).abs() < 1e-6);
    }

    #[test]
    fn logistic_keeps_precision_for_large_negative_scores() {
        assert_eq!(logistic(0.0), 0.5);
        assert!((logistic(-20.0) - 2.061e-9).abs() < 1e-7);
        assert_eq!(logistic(3.0) + logistic(-3.0), 1.0);
    }
}
