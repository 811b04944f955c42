//! Exact SHAP values of an ONNX tree ensemble: interventional TreeSHAP (Lundberg et al., "From
//! local explanations to global understanding with explainable AI for trees", 2020) against
//! background rows. ONNX trees keep no training covers, so the path-dependent TreeSHAP that
//! explains XGBoost files (`xgboost::shap`) is undefined for them; the interventional game needs
//! only the background, and it is the game Kernel SHAP samples: a coalition S is worth the mean
//! over background rows z of f(x_S, z_S̄). These values are therefore what Kernel SHAP converges to
//! with the same baseline rows, computed exactly (`tests/it/onnx.rs` checks them against our Kernel
//! SHAP with every coalition enumerated).
//!
//! For one record x, one background row z and one tree, a leaf is reached by the coalitions that
//! hold every feature A on which x's path left z's, and none of the features B on which z's path
//! left x's (a feature in both: never). That leaf's game `1[A ⊆ S, B ∩ S = ∅]` has the Shapley
//! values (a−1)! b! / (a+b)! for each feature of A and −a! (b−1)! / (a+b)! for each of B, so a walk
//! down the union of both paths, forking where x and z part, sums them exactly.

use super::{Aggregate, Ensemble, Mode, Node};

/// Features the current walk has committed to: in the coalition (x's side) or out (z's).
#[derive(Default)]
struct Sides {
    present: Vec<u32>,
    absent: Vec<u32>,
}

/// The deepest tree explained (the walk recurses once per level; a model file is untrusted).
pub const MAX_DEPTH: usize = 1000;

impl Ensemble {
    /// Splits on the longest path from a root to a leaf (a loop: any depth is measured safely).
    pub fn max_depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack: Vec<(u32, usize)> = self.roots.iter().map(|r| (*r, 0)).collect();
        while let Some((index, depth)) = stack.pop() {
            let node = &self.nodes[index as usize];
            if node.mode == Mode::Leaf {
                deepest = deepest.max(depth);
            } else {
                stack.push((node.first, depth + 1));
                stack.push((node.second, depth + 1));
            }
        }
        deepest
    }

    /// Whether the trees' scores add up (`SUM` or `AVERAGE`), which SHAP values need.
    pub fn is_additive(&self) -> bool {
        matches!(self.aggregate, Aggregate::Sum | Aggregate::Average)
    }

    /// The scored column behind output column `output` of the ensemble's answer (a binary
    /// classifier scored on one column answers both of its columns from that one).
    pub fn scored_column(&self, output: usize) -> usize {
        if self.binary_one_column { self.weights.first().map_or(0, |(c, _)| *c as usize) } else { output }
    }

    /// The score of `column` before the post transform: the trees' sum (or mean) plus the base
    /// value, as [`Ensemble::eval`] computes it, in f64.
    pub fn raw_score(&self, row: &[f32], column: usize) -> f64 {
        let sum: f64 = self.roots.iter().map(|root| self.leaf_value(self.leaf(*root, row), column)).sum();
        self.scale() * sum + self.base_value(column)
    }

    /// Interventional SHAP values of `record` for the pre-transform score of `column`, against
    /// `background` (rows as wide as the record): one value per feature, and the expected score
    /// over the background, which they add up from.
    pub fn interventional_shap(&self, record: &[f32], background: &[Vec<f32>], column: usize) -> (Vec<f64>, f64) {
        let mut phi = vec![0.0; record.len()];
        let mut sides = Sides::default();
        let scale = self.scale() / background.len().max(1) as f64;
        for z in background {
            for root in &self.roots {
                self.walk(*root, record, z, column, scale, &mut sides, &mut phi);
            }
        }
        let expected =
            background.iter().map(|z| self.raw_score(z, column)).sum::<f64>() / background.len().max(1) as f64;
        (phi, expected)
    }

    fn scale(&self) -> f64 {
        if self.aggregate == Aggregate::Average { 1.0 / self.roots.len().max(1) as f64 } else { 1.0 }
    }

    fn base_value(&self, column: usize) -> f64 {
        let index = if self.binary_one_column { 0 } else { column };
        self.base_values.get(index).copied().map_or(0.0, f64::from)
    }

    /// What a leaf adds to `column`.
    fn leaf_value(&self, leaf: &Node, column: usize) -> f64 {
        self.weights[leaf.first as usize..leaf.second as usize]
            .iter()
            .filter(|(target, _)| *target as usize == column)
            .map(|(_, w)| f64::from(*w))
            .sum()
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(&self, index: u32, x: &[f32], z: &[f32], column: usize, scale: f64, sides: &mut Sides, phi: &mut [f64]) {
        let node = &self.nodes[index as usize];
        if node.mode == Mode::Leaf {
            let value = scale * self.leaf_value(node, column);
            if value == 0.0 {
                return;
            }
            let (a, b) = (sides.present.len(), sides.absent.len());
            // C(a+b, a) as a product: no factorial overflows however deep the tree.
            let choose = (1..=a).fold(1.0, |c, i| c * (b + i) as f64 / i as f64);
            for f in &sides.present {
                phi[*f as usize] += value / (a as f64 * choose);
            }
            for f in &sides.absent {
                phi[*f as usize] -= value / (b as f64 * choose);
            }
            return;
        }
        let feature = node.feature;
        let (to_x, to_z) = (node.child(x[feature as usize]), node.child(z[feature as usize]));
        if to_x == to_z || sides.present.contains(&feature) {
            self.walk(to_x, x, z, column, scale, sides, phi);
        } else if sides.absent.contains(&feature) {
            self.walk(to_z, x, z, column, scale, sides, phi);
        } else {
            sides.present.push(feature);
            self.walk(to_x, x, z, column, scale, sides, phi);
            sides.present.pop();
            sides.absent.push(feature);
            self.walk(to_z, x, z, column, scale, sides, phi);
            sides.absent.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stumps on features 0 and 1 and a depth-2 tree on both (x0 ≤ 0.5, then x1 ≤ 0.5),
    /// summed, base 1.
    fn ensemble() -> Ensemble {
        let branch = |feature, first, second| Node {
            mode: Mode::Leq,
            feature,
            threshold: 0.5,
            nan_goes_true: false,
            first,
            second,
        };
        let leaf = |from: u32| Node {
            mode: Mode::Leaf,
            feature: 0,
            threshold: 0.0,
            nan_goes_true: false,
            first: from,
            second: from + 1,
        };
        let nodes = vec![
            branch(0, 1, 2), // tree 0
            leaf(0),
            leaf(1),
            branch(1, 4, 5), // tree 1
            leaf(2),
            leaf(3),
            branch(0, 7, 8), // tree 2
            branch(1, 9, 10),
            leaf(4),
            leaf(5),
            leaf(6),
        ];
        Ensemble {
            nodes,
            weights: vec![(0, 1.0), (0, 3.0), (0, -2.0), (0, 2.0), (0, 5.0), (0, 10.0), (0, 20.0)],
            roots: vec![0, 3, 6],
            width: 1,
            aggregate: Aggregate::Sum,
            base_values: vec![1.0],
            post_transform: crate::serving::onnx::scores::PostTransform::None,
            labels: None,
            binary_one_column: false,
            all_weights_non_negative: false,
            max_feature: Some(1),
        }
    }

    /// The Shapley values of v(S) = mean_z f(x_S, z_S̄) by their definition, over every coalition.
    fn by_definition(e: &Ensemble, x: &[f32], background: &[Vec<f32>]) -> Vec<f64> {
        let m = x.len();
        let value = |s: usize| {
            background
                .iter()
                .map(|z| {
                    let row: Vec<f32> = (0..m).map(|j| if s >> j & 1 == 1 { x[j] } else { z[j] }).collect();
                    e.raw_score(&row, 0)
                })
                .sum::<f64>()
                / background.len() as f64
        };
        let fact = |n: usize| (1..=n).product::<usize>() as f64;
        (0..m)
            .map(|i| {
                (0..1usize << m)
                    .filter(|s| s >> i & 1 == 0)
                    .map(|s| {
                        let size = s.count_ones() as usize;
                        fact(size) * fact(m - size - 1) / fact(m) * (value(s | 1 << i) - value(s))
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn depth_is_the_longest_path() {
        assert_eq!(ensemble().max_depth(), 2);
    }

    #[test]
    fn values_are_the_shapley_values_of_the_interventional_game() {
        let e = ensemble();
        let background = vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.2, 0.9], vec![f32::NAN, 1.0]];
        for x in [[0.0f32, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, f32::NAN]] {
            let (phi, expected) = e.interventional_shap(&x, &background, 0);
            let want = by_definition(&e, &x, &background);
            for (got, want) in phi.iter().zip(&want) {
                assert!((got - want).abs() < 1e-12, "{x:?}: {phi:?} vs {want:?}");
            }
            let total = expected + phi.iter().sum::<f64>();
            assert!((total - e.raw_score(&x, 0)).abs() < 1e-12, "they add up to f(x)");
        }
    }
}
