//! Objectives: how `base_score` (stored in output space) becomes a margin, and how margins
//! become predictions. The float32 formulas are XGBoost's own (its `ProbToMargin` and
//! `PredTransform`), so results agree to the last bit or so rather than only approximately.

/// The inverse link XGBoost applies to `base_score` when it loads a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    Identity,
    Logit,
    Log,
}

/// What `predict` does to the summed margins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transform {
    Identity,
    Sigmoid,
    Exp,
    /// `binary:hinge`: 1 when the margin is positive, else 0.
    Step,
    /// `multi:softprob`: a probability per class.
    Softmax,
    /// `multi:softmax`: the index of the largest margin.
    ArgMax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Objective {
    pub link: Link,
    pub transform: Transform,
}

/// Objective names accepted by `Objective::from_name`, for error messages.
pub(crate) const SUPPORTED: &[&str] = &[
    "reg:squarederror",
    "reg:linear",
    "reg:squaredlogerror",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "reg:logistic",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "reg:gamma",
    "reg:tweedie",
    "survival:cox",
    "survival:aft",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "multi:softprob",
    "multi:softmax",
];

impl Objective {
    pub(crate) fn from_name(name: &str) -> Option<Objective> {
        use Link as L;
        use Transform as T;
        let (link, transform) = match name {
            "reg:squarederror"
            | "reg:linear"
            | "reg:squaredlogerror"
            | "reg:pseudohubererror"
            | "reg:absoluteerror"
            | "reg:quantileerror"
            | "rank:pairwise"
            | "rank:ndcg"
            | "rank:map" => (L::Identity, T::Identity),
            "reg:logistic" | "binary:logistic" => (L::Logit, T::Sigmoid),
            // logitraw outputs margins, and XGBoost reads its base_score as a margin too.
            "binary:logitraw" => (L::Identity, T::Identity),
            "binary:hinge" => (L::Identity, T::Step),
            "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => (L::Log, T::Exp),
            "multi:softprob" => (L::Identity, T::Softmax),
            "multi:softmax" => (L::Identity, T::ArgMax),
            _ => return None,
        };
        Some(Objective { link, transform })
    }

    pub(crate) fn is_multiclass(self) -> bool {
        matches!(self.transform, Transform::Softmax | Transform::ArgMax)
    }

    /// Turns a stored `base_score` into the margin the trees are added to, or says why the
    /// value cannot be one for this objective.
    pub(crate) fn base_margin(self, base_score: f32) -> Result<f32, &'static str> {
        if !base_score.is_finite() {
            return Err("must be a finite number");
        }
        match self.link {
            Link::Identity => Ok(base_score),
            Link::Logit => {
                if base_score > 0.0 && base_score < 1.0 {
                    // Same float32 expression as XGBoost (not log(p / (1 - p)), which rounds
                    // differently in the last bit).
                    Ok(-(1.0f32 / base_score - 1.0f32).ln())
                } else {
                    Err("must be strictly between 0 and 1 for a logistic objective")
                }
            }
            Link::Log => {
                if base_score > 0.0 {
                    Ok(base_score.ln())
                } else {
                    Err("must be greater than 0 for an objective with a log link")
                }
            }
        }
    }

    /// Number of values `transform` writes for `n_margins` margins.
    pub(crate) fn n_outputs(self, n_margins: usize) -> usize {
        match self.transform {
            Transform::ArgMax => 1,
            _ => n_margins,
        }
    }

    /// Appends the transformed predictions for one row's margins to `out`.
    pub(crate) fn transform(self, margins: &mut [f32], out: &mut Vec<f64>) {
        match self.transform {
            Transform::Identity => out.extend(margins.iter().map(|&m| f64::from(m))),
            Transform::Sigmoid => out.extend(margins.iter().map(|&m| f64::from(sigmoid(m)))),
            Transform::Exp => out.extend(margins.iter().map(|&m| f64::from(m.exp()))),
            Transform::Step => out.extend(margins.iter().map(|&m| if m > 0.0 { 1.0 } else { 0.0 })),
            Transform::Softmax => {
                softmax(margins);
                out.extend(margins.iter().map(|&p| f64::from(p)));
            }
            Transform::ArgMax => out.push(arg_max(margins) as f64),
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// XGBoost's `common::Softmax`: float exponentials summed in double, divided in float.
fn softmax(values: &mut [f32]) {
    let Some(&first) = values.first() else {
        return;
    };
    let max = values.iter().fold(first, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let sum = sum as f32;
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// First index of the largest value, as XGBoost's `FindMaxIndex`.
fn arg_max(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> Objective {
        Objective::from_name(name).unwrap()
    }

    #[test]
    fn every_listed_objective_is_known() {
        for name in SUPPORTED {
            assert!(Objective::from_name(name).is_some(), "{name}");
        }
        assert!(Objective::from_name("reg:made-up").is_none());
    }

    #[test]
    fn base_score_goes_through_the_inverse_link() {
        assert_eq!(obj("binary:logistic").base_margin(0.5), Ok(0.0));
        let m = obj("binary:logistic").base_margin(0.3).unwrap();
        assert!((m - (0.3f32 / 0.7).ln()).abs() < 1e-6);
        assert_eq!(obj("count:poisson").base_margin(1.0), Ok(0.0));
        assert_eq!(obj("reg:squarederror").base_margin(152.5), Ok(152.5));
        assert_eq!(obj("binary:logitraw").base_margin(0.25), Ok(0.25));
        assert!(obj("binary:logistic").base_margin(1.0).is_err());
        assert!(obj("reg:logistic").base_margin(0.0).is_err());
        assert!(obj("reg:gamma").base_margin(-1.0).is_err());
        assert!(obj("reg:squarederror").base_margin(f32::NAN).is_err());
    }

    #[test]
    fn transforms() {
        let mut out = Vec::new();
        obj("binary:logistic").transform(&mut [0.0], &mut out);
        obj("count:poisson").transform(&mut [0.0], &mut out);
        obj("binary:hinge").transform(&mut [0.0, 0.1], &mut out);
        assert_eq!(out, [0.5, 1.0, 0.0, 1.0]);

        out.clear();
        obj("multi:softprob").transform(&mut [1.0, 1.0, 1.0, 1.0], &mut out);
        assert_eq!(out, [0.25; 4]);

        out.clear();
        // Ties go to the first class, as in XGBoost.
        obj("multi:softmax").transform(&mut [0.1, 0.7, 0.7, -1.0], &mut out);
        assert_eq!(out, [1.0]);
        assert_eq!(obj("multi:softmax").n_outputs(4), 1);
        assert_eq!(obj("multi:softprob").n_outputs(4), 4);
    }

    #[test]
    fn softmax_does_not_overflow() {
        let mut v = [1000.0f32, 0.0];
        softmax(&mut v);
        assert_eq!(v, [1.0, 0.0]);
    }
}
