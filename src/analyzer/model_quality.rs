//! The model-quality monitor's metrics (reference sagemaker-formats.md B.5, B.11): predictions
//! against ground truth for Regression, BinaryClassification and MulticlassClassification, in
//! the shape of its `statistics.json`, the constraints it suggests, and the violations a window
//! raises against them. The arithmetic is scikit-learn's (tests compare with it).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProblemType {
    Regression,
    BinaryClassification,
    MulticlassClassification,
}

impl ProblemType {
    /// The key prefix of the statistics and constraints blocks.
    fn key(self) -> &'static str {
        match self {
            ProblemType::Regression => "regression",
            ProblemType::BinaryClassification => "binary_classification",
            ProblemType::MulticlassClassification => "multiclass_classification",
        }
    }
}

/// One labelled prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The ground truth: a number for regression, a class label otherwise.
    pub label: String,
    /// The predicted value or class label.
    pub prediction: String,
    /// The positive class's probability (binary), when the model gives one.
    pub probability: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("no labelled predictions to evaluate")]
    Empty,
    #[error("record {index}: {field} {value:?} is not a number")]
    NotANumber { index: usize, field: &'static str, value: String },
}

/// Below this many examples the standard deviations are the string "NaN" (B.5).
pub const STD_DEV_MIN_SAMPLES: usize = 200;

/// What Model Monitor reports per metric: the value and, from 200 examples up, the standard
/// deviation over 5 random 80 % subsamples.
fn metric(value: f64, std_dev: Option<f64>) -> Value {
    json!({"value": value, "standard_deviation": std_dev.map_or(json!("NaN"), |s| json!(s))})
}

/// Scalar metrics of one problem type, computed on a set of examples.
fn scalars(
    problem: ProblemType,
    examples: &[Example],
    positive: &str,
) -> Result<BTreeMap<&'static str, f64>, QualityError> {
    match problem {
        ProblemType::Regression => regression(examples),
        ProblemType::BinaryClassification => Ok(binary(examples, positive)),
        ProblemType::MulticlassClassification => Ok(multiclass(examples)),
    }
}

fn numbers(examples: &[Example]) -> Result<(Vec<f64>, Vec<f64>), QualityError> {
    let parse = |index: usize, field: &'static str, value: &str| {
        value.trim().parse::<f64>().map_err(|_| QualityError::NotANumber { index, field, value: value.to_string() })
    };
    let mut truth = Vec::with_capacity(examples.len());
    let mut predicted = Vec::with_capacity(examples.len());
    for (i, e) in examples.iter().enumerate() {
        truth.push(parse(i, "label", &e.label)?);
        predicted.push(parse(i, "prediction", &e.prediction)?);
    }
    Ok((truth, predicted))
}

fn regression(examples: &[Example]) -> Result<BTreeMap<&'static str, f64>, QualityError> {
    let (y, p) = numbers(examples)?;
    let n = y.len() as f64;
    let mae = y.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let sse: f64 = y.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum();
    let mse = sse / n;
    let mean = y.iter().sum::<f64>() / n;
    let sst: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
    // scikit-learn's r2_score: 1 for a perfect fit of a constant, 0 for an imperfect one.
    let r2 = if sst == 0.0 { if sse == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - sse / sst };
    Ok(BTreeMap::from([("mae", mae), ("mse", mse), ("rmse", mse.sqrt()), ("r2", r2)]))
}

/// scikit-learn's F-beta with zero_division = 0.
fn f_beta(precision: f64, recall: f64, beta: f64) -> f64 {
    let b2 = beta * beta;
    let denominator = b2 * precision + recall;
    if denominator == 0.0 { 0.0 } else { (1.0 + b2) * precision * recall / denominator }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Counts of a binary confusion matrix for `positive`.
struct Counts {
    tp: f64,
    fp: f64,
    tn: f64,
    fn_: f64,
}

fn counts(examples: &[Example], positive: &str, predict: impl Fn(&Example) -> bool) -> Counts {
    let mut c = Counts { tp: 0.0, fp: 0.0, tn: 0.0, fn_: 0.0 };
    for e in examples {
        match (e.label == positive, predict(e)) {
            (true, true) => c.tp += 1.0,
            (false, true) => c.fp += 1.0,
            (false, false) => c.tn += 1.0,
            (true, false) => c.fn_ += 1.0,
        }
    }
    c
}

fn binary(examples: &[Example], positive: &str) -> BTreeMap<&'static str, f64> {
    let c = counts(examples, positive, |e| e.prediction == positive);
    let n = examples.len() as f64;
    let precision = ratio(c.tp, c.tp + c.fp);
    let recall = ratio(c.tp, c.tp + c.fn_);
    // The best constant classifier always predicts the positive label (B.11).
    let positives = c.tp + c.fn_;
    let constant_precision = positives / n;
    let constant_recall = if positives > 0.0 { 1.0 } else { 0.0 };
    let mut m = BTreeMap::from([
        ("precision", precision),
        ("recall", recall),
        ("accuracy", (c.tp + c.tn) / n),
        ("true_positive_rate", recall),
        ("true_negative_rate", ratio(c.tn, c.tn + c.fp)),
        ("false_positive_rate", ratio(c.fp, c.fp + c.tn)),
        ("false_negative_rate", ratio(c.fn_, c.fn_ + c.tp)),
        ("f0_5", f_beta(precision, recall, 0.5)),
        ("f1", f_beta(precision, recall, 1.0)),
        ("f2", f_beta(precision, recall, 2.0)),
        ("precision_best_constant_classifier", constant_precision),
        ("recall_best_constant_classifier", constant_recall),
        ("accuracy_best_constant_classifier", constant_precision),
        ("f0_5_best_constant_classifier", f_beta(constant_precision, constant_recall, 0.5)),
        ("f1_best_constant_classifier", f_beta(constant_precision, constant_recall, 1.0)),
        ("f2_best_constant_classifier", f_beta(constant_precision, constant_recall, 2.0)),
    ]);
    if let Some(auc) = roc(examples, positive).map(|r| r.auc) {
        m.insert("auc", auc);
    }
    m
}

/// The ROC curve (scikit-learn's `roc_curve(drop_intermediate=False)`) and its area.
struct Roc {
    false_positive_rates: Vec<f64>,
    true_positive_rates: Vec<f64>,
    auc: f64,
}

/// (score, is positive) pairs sorted by descending score; `None` without probabilities or with
/// one class only (scikit-learn refuses both).
fn scored(examples: &[Example], positive: &str) -> Option<Vec<(f64, bool)>> {
    let mut scored: Vec<(f64, bool)> =
        examples.iter().map(|e| e.probability.map(|p| (p, e.label == positive))).collect::<Option<_>>()?;
    let positives = scored.iter().filter(|s| s.1).count();
    if positives == 0 || positives == scored.len() {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(scored)
}

fn roc(examples: &[Example], positive: &str) -> Option<Roc> {
    let scored = scored(examples, positive)?;
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let negatives = scored.len() as f64 - positives;
    let (mut fpr, mut tpr) = (vec![0.0], vec![0.0]);
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, (score, is_positive)) in scored.iter().enumerate() {
        if *is_positive {
            tp += 1.0
        } else {
            fp += 1.0
        }
        // One point per distinct threshold (after the last example holding it).
        if scored.get(i + 1).is_none_or(|next| next.0 != *score) {
            fpr.push(fp / negatives);
            tpr.push(tp / positives);
        }
    }
    let auc = fpr.windows(2).zip(tpr.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum();
    Some(Roc { false_positive_rates: fpr, true_positive_rates: tpr, auc })
}

/// scikit-learn's `precision_recall_curve` (1.9): precisions and recalls at every distinct threshold, by increasing threshold,
/// ending with (1, 0).
fn precision_recall(examples: &[Example], positive: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let scored = scored(examples, positive)?;
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let (mut precisions, mut recalls) = (Vec::new(), Vec::new());
    let (mut tp, mut predicted) = (0.0, 0.0);
    for (i, (score, is_positive)) in scored.iter().enumerate() {
        predicted += 1.0;
        if *is_positive {
            tp += 1.0;
        }
        if scored.get(i + 1).is_none_or(|next| next.0 != *score) {
            precisions.push(tp / predicted);
            recalls.push(tp / positives);
        }
    }
    precisions.reverse();
    recalls.reverse();
    precisions.push(1.0);
    recalls.push(0.0);
    Some((precisions, recalls))
}

fn multiclass(examples: &[Example]) -> BTreeMap<&'static str, f64> {
    let n = examples.len() as f64;
    let classes: BTreeSet<&str> = examples.iter().map(|e| e.label.as_str()).collect();
    let (mut precision, mut recall, mut f05, mut f1, mut f2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut correct = 0.0;
    for class in &classes {
        let c = counts(examples, class, |e| e.prediction == *class);
        let weight = (c.tp + c.fn_) / n;
        let (p, r) = (ratio(c.tp, c.tp + c.fp), ratio(c.tp, c.tp + c.fn_));
        precision += weight * p;
        recall += weight * r;
        f05 += weight * f_beta(p, r, 0.5);
        f1 += weight * f_beta(p, r, 1.0);
        f2 += weight * f_beta(p, r, 2.0);
        correct += c.tp;
    }
    // Our best constant classifier predicts the most frequent true class (B.11 documents only the
    // binary one; docs/MONITORING.md). Its weighted metrics are that class's share.
    let mut frequency: BTreeMap<&str, usize> = BTreeMap::new();
    for e in examples {
        *frequency.entry(e.label.as_str()).or_default() += 1;
    }
    let top = frequency.values().max().copied().unwrap_or(0) as f64 / n;
    let constant_f = |beta: f64| top * f_beta(top, 1.0, beta);
    BTreeMap::from([
        ("accuracy", correct / n),
        ("weighted_precision", precision),
        ("weighted_recall", recall),
        ("weighted_f0_5", f05),
        ("weighted_f1", f1),
        ("weighted_f2", f2),
        ("accuracy_best_constant_classifier", top),
        ("weighted_precision_best_constant_classifier", top * top),
        ("weighted_recall_best_constant_classifier", top),
        ("weighted_f0_5_best_constant_classifier", constant_f(0.5)),
        ("weighted_f1_best_constant_classifier", constant_f(1.0)),
        ("weighted_f2_best_constant_classifier", constant_f(2.0)),
    ])
}

/// A small deterministic generator for the subsamples (xorshift64*): the same data gives the
/// same standard deviations on every run and replica.
struct Subsampler(u64);

impl Subsampler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random 80 % of `examples`, without replacement (partial Fisher–Yates).
    fn subsample(&mut self, examples: &[Example]) -> Vec<Example> {
        let mut index: Vec<usize> = (0..examples.len()).collect();
        let take = examples.len() * 4 / 5;
        for i in 0..take {
            let j = i + (self.next() % (index.len() - i) as u64) as usize;
            index.swap(i, j);
        }
        index[..take].iter().map(|i| examples[*i].clone()).collect()
    }
}

/// The model-quality `statistics.json`: `version`, `dataset` and the problem's metrics block.
pub fn statistics(
    problem: ProblemType,
    examples: &[Example],
    positive: &str,
    evaluation_time: &str,
) -> Result<Value, QualityError> {
    if examples.is_empty() {
        return Err(QualityError::Empty);
    }
    let values = scalars(problem, examples, positive)?;
    let std_devs: Option<BTreeMap<&str, f64>> = if examples.len() >= STD_DEV_MIN_SAMPLES {
        let mut sampler = Subsampler(0x9E37_79B9_7F4A_7C15);
        let mut runs: Vec<BTreeMap<&str, f64>> = Vec::new();
        for _ in 0..5 {
            runs.push(scalars(problem, &sampler.subsample(examples), positive)?);
        }
        Some(
            values
                .keys()
                .map(|k| {
                    let xs: Vec<f64> = runs.iter().filter_map(|r| r.get(k).copied()).collect();
                    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
                    (*k, var.sqrt())
                })
                .collect(),
        )
    } else {
        None
    };
    let mut block = Map::new();
    for (name, value) in &values {
        block.insert(name.to_string(), metric(*value, std_devs.as_ref().and_then(|s| s.get(name).copied())));
    }
    if problem != ProblemType::Regression {
        block.insert("confusion_matrix".into(), confusion_matrix(examples));
    }
    if problem == ProblemType::BinaryClassification {
        if let Some(r) = roc(examples, positive) {
            block.insert(
                "receiver_operating_characteristic_curve".into(),
                json!({"false_positive_rates": r.false_positive_rates, "true_positive_rates": r.true_positive_rates}),
            );
        }
        if let Some((precisions, recalls)) = precision_recall(examples, positive) {
            block.insert("precision_recall_curve".into(), json!({"precisions": precisions, "recalls": recalls}));
        }
    }
    Ok(json!({
        "version": 0.0,
        "dataset": {"item_count": examples.len(), "evaluation_time": evaluation_time},
        format!("{}_metrics", problem.key()): block,
    }))
}

/// actual label → predicted label → count (the outer key is the actual label, B.11).
fn confusion_matrix(examples: &[Example]) -> Value {
    let labels: BTreeSet<&str> = examples.iter().flat_map(|e| [e.label.as_str(), e.prediction.as_str()]).collect();
    let mut matrix: BTreeMap<&str, BTreeMap<&str, u64>> =
        labels.iter().map(|a| (*a, labels.iter().map(|p| (*p, 0)).collect())).collect();
    for e in examples {
        *matrix
            .get_mut(e.label.as_str())
            .and_then(|row| row.get_mut(e.prediction.as_str()))
            .expect("both labels listed") += 1;
    }
    json!(matrix)
}

/// Whether a larger value of the metric is better (its constraint is `LessThanThreshold`).
fn larger_is_better(metric: &str) -> bool {
    !matches!(metric, "mae" | "mse" | "rmse" | "false_positive_rate" | "false_negative_rate")
}

/// The constraints suggested from baseline statistics: each headline metric may not get worse
/// than its baseline value.
pub fn suggest_constraints(problem: ProblemType, statistics: &Value) -> Value {
    let block = &statistics[format!("{}_metrics", problem.key())];
    let mut constraints = Map::new();
    let headline: &[&str] = match problem {
        ProblemType::Regression => &["mae", "mse", "rmse", "r2"],
        ProblemType::BinaryClassification => &[
            "recall",
            "precision",
            "accuracy",
            "true_positive_rate",
            "true_negative_rate",
            "false_positive_rate",
            "false_negative_rate",
            "auc",
            "f0_5",
            "f1",
            "f2",
        ],
        ProblemType::MulticlassClassification => {
            &["accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5", "weighted_f1", "weighted_f2"]
        }
    };
    for name in headline {
        if let Some(value) = block[*name]["value"].as_f64() {
            let operator = if larger_is_better(name) { "LessThanThreshold" } else { "GreaterThanThreshold" };
            constraints.insert(name.to_string(), json!({"threshold": value, "comparison_operator": operator}));
        }
    }
    json!({"version": 0.0, format!("{}_constraints", problem.key()): constraints})
}

/// The violations of a window's statistics against constraints:
/// `{"violations": [{"metric_name", "constraint_check_type", "description"}]}`.
pub fn violations(problem: ProblemType, statistics: &Value, constraints: &Value) -> Value {
    let block = &statistics[format!("{}_metrics", problem.key())];
    let mut out = Vec::new();
    if let Some(map) = constraints[format!("{}_constraints", problem.key())].as_object() {
        for (name, constraint) in map {
            let (Some(threshold), Some(operator), Some(value)) = (
                constraint["threshold"].as_f64(),
                constraint["comparison_operator"].as_str(),
                block[name]["value"].as_f64(),
            ) else {
                continue;
            };
            let violated = match operator {
                "LessThanThreshold" => value < threshold,
                "GreaterThanThreshold" => value > threshold,
                _ => false,
            };
            if violated {
                out.push(json!({
                    "metric_name": name,
                    "constraint_check_type": operator,
                    "description": format!("Metric {name} with {value} was {operator} {threshold}"),
                }));
            }
        }
    }
    json!({"violations": out})
}
