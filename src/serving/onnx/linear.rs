//! `ai.onnx.ml.LinearClassifier` (logistic regression and linear SVMs from skl2onnx), evaluated
//! as onnxruntime does: scores = X·Wᵀ + b in f32, then the post transform; a binary model with
//! one row of coefficients answers [1 − p, p]. tract has the operator, but its fast sigmoid
//! approximation leaves small probabilities off by several 1e-7, far from onnxruntime's values
//! in relative terms.

use super::scores::{Labels, PostTransform, argmax};
use tract_onnx::pb::NodeProto;

#[derive(Debug, Clone, PartialEq)]
pub struct LinearClassifier {
    /// One row of `features` coefficients per score column.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    pub features: usize,
    post_transform: PostTransform,
    pub labels: Labels,
}

impl LinearClassifier {
    pub fn from_node(node: &NodeProto) -> Result<Self, String> {
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let coefficients = attribute("coefficients").map(|a| a.floats.clone()).unwrap_or_default();
        let intercepts = attribute("intercepts").map(|a| a.floats.clone()).unwrap_or_default();
        let post = attribute("post_transform").map(|a| String::from_utf8_lossy(&a.s).into_owned());
        let post_transform = PostTransform::parse(post.as_deref())?;
        let ints = attribute("classlabels_ints").map(|a| a.ints.clone()).unwrap_or_default();
        let strings: Vec<String> = attribute("classlabels_strings")
            .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
            .unwrap_or_default();
        let labels = match (ints.is_empty(), strings.is_empty()) {
            (false, true) => Labels::Ints(ints),
            (true, false) => Labels::Strings(strings),
            _ => return Err("the classifier needs either integer or string class labels".into()),
        };
        let columns = intercepts.len();
        if columns == 0 || coefficients.is_empty() || coefficients.len() % columns != 0 {
            return Err(format!("{} coefficients do not make rows for {columns} intercepts", coefficients.len()));
        }
        let binary = columns == 1;
        if (binary && labels.len() != 2) || (!binary && labels.len() != columns) {
            return Err(format!("{} class labels for {columns} score columns", labels.len()));
        }
        let features = coefficients.len() / columns;
        Ok(Self { coefficients, intercepts, features, post_transform, labels })
    }

    /// Score columns per row in the output.
    pub fn width(&self) -> usize {
        self.intercepts.len().max(2)
    }

    /// Scores `rows` of exactly `self.features` values.
    pub fn eval(&self, rows: &[f32], scores: &mut Vec<f32>, winners: &mut Vec<usize>) {
        let columns = self.intercepts.len();
        let mut row_scores = vec![0f32; columns];
        for row in rows.chunks_exact(self.features) {
            for (c, score) in row_scores.iter_mut().enumerate() {
                let weights = &self.coefficients[c * self.features..(c + 1) * self.features];
                *score = self.intercepts[c] + row.iter().zip(weights).map(|(x, w)| x * w).sum::<f32>();
            }
            if columns == 1 {
                let raw = row_scores[0];
                let mut p = [raw];
                self.post_transform.apply(&mut p);
                scores.extend_from_slice(&[1.0 - p[0], p[0]]);
                winners.push(usize::from(raw > 0.0));
            } else {
                winners.push(argmax(&row_scores));
                self.post_transform.apply(&mut row_scores);
                scores.extend_from_slice(&row_scores);
            }
        }
    }
}
