//! Exact SHAP values of a tree ensemble: the path-dependent TreeSHAP of Lundberg, Erion and Lee
//! ("Consistent Individualized Feature Attribution for Tree Ensembles", 2018, Algorithm 2), the
//! algorithm behind XGBoost's `pred_contribs`. A feature "absent" from a coalition follows both
//! children of a split on it, weighted by the training cover (`sum_hessian`) each child got.
//! Polynomial in depth per tree, deterministic — unlike Kernel SHAP's sampling (issue 15: the
//! explainability monitor's exact option for tree models). Checked against xgboost's own
//! `pred_contribs` in `tests/it/xgboost.rs`.

use super::tree::Tree;

/// One element of the path of unique features from the root (the paper's `m`).
#[derive(Clone, Copy, Debug)]
struct PathElement {
    /// The feature split on (`usize::MAX` for the root's placeholder).
    feature: usize,
    /// Fraction of the cover that flows this way when the feature is absent.
    zero: f64,
    /// 1 when the row goes this way (the feature present), else 0.
    one: f64,
    /// The permutation weight.
    weight: f64,
}

/// Adds the split on `feature` to the path (EXTEND): every permutation weight is spread between
/// coalitions without and with it.
fn extend(path: &mut Vec<PathElement>, zero: f64, one: f64, feature: usize) {
    let depth = path.len();
    path.push(PathElement { feature, zero, one, weight: if depth == 0 { 1.0 } else { 0.0 } });
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / (depth + 1) as f64;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / (depth + 1) as f64;
    }
}

/// Removes element `index` from the path (UNWIND), undoing its EXTEND.
fn unwind(path: &mut Vec<PathElement>, index: usize) {
    let depth = path.len() - 1;
    let PathElement { one, zero, .. } = path[index];
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else {
            path[i].weight = path[i].weight * (depth + 1) as f64 / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
    path.pop();
}

/// The total permutation weight the path would have with element `index` unwound.
fn unwound_sum(path: &[PathElement], index: usize) -> f64 {
    let depth = path.len() - 1;
    let PathElement { one, zero, .. } = path[index];
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else {
            total += path[i].weight / zero / ((depth - i) as f64 / (depth + 1) as f64);
        }
    }
    total
}

struct Walk<'a> {
    tree: &'a Tree,
    row: &'a [f32],
    scale: f64,
    phi: &'a mut [f64],
    /// One path buffer per depth, reused: a node's children start from a copy of its path
    /// (no allocation per node once the buffers have grown).
    paths: Vec<Vec<PathElement>>,
}

impl Walk<'_> {
    /// Walks `node`, whose parent's path is in `paths[level]`.
    fn recurse(&mut self, level: usize, node: usize, zero: f64, one: f64, feature: usize) {
        let mut path = std::mem::take(&mut self.paths[level]);
        self.visit(level, &mut path, node, zero, one, feature);
        self.paths[level] = path;
    }

    fn visit(&mut self, level: usize, path: &mut Vec<PathElement>, node: usize, zero: f64, one: f64, feature: usize) {
        extend(path, zero, one, feature);
        let n = *self.tree.node(node);
        if n.is_leaf() {
            let value = f64::from(n.value) * self.scale;
            for i in 1..path.len() {
                let w = unwound_sum(path, i);
                let e = path[i];
                self.phi[e.feature] += w * (e.one - e.zero) * value;
            }
            return;
        }
        let split = n.feature as usize;
        let x = self.row.get(split).copied().unwrap_or(f32::NAN);
        let go_left = if x.is_nan() { n.default_left } else { x < n.value };
        let (hot, cold) = if go_left { (n.left, n.right) } else { (n.right, n.left) };
        let covers = self.tree.covers();
        let cover = f64::from(covers[node]);
        let fraction = |child: u32| if cover > 0.0 { f64::from(covers[child as usize]) / cover } else { 0.0 };
        // A feature split on higher up: its earlier split is undone, its fractions carried on.
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        if let Some(k) = path.iter().position(|e| e.feature == split) {
            incoming_zero = path[k].zero;
            incoming_one = path[k].one;
            unwind(path, k);
        }
        if self.paths.len() <= level + 1 {
            self.paths.push(Vec::with_capacity(path.len() + 1));
        }
        for (child, zero, one) in
            [(hot, fraction(hot) * incoming_zero, incoming_one), (cold, fraction(cold) * incoming_zero, 0.0)]
        {
            let next = &mut self.paths[level + 1];
            next.clear();
            next.extend_from_slice(path);
            self.recurse(level + 1, child as usize, zero, one, split);
        }
    }
}

/// The cover-weighted mean leaf value of a subtree: what the tree predicts with every feature
/// absent (its share of the bias term). The tree keeps its root's (computed once with its covers).
pub(crate) fn expected_value(tree: &Tree, node: usize) -> f64 {
    let n = tree.node(node);
    if n.is_leaf() {
        return f64::from(n.value);
    }
    let covers = tree.covers();
    let (l, r) = (n.left as usize, n.right as usize);
    let (cl, cr) = (f64::from(covers[l]), f64::from(covers[r]));
    if cl + cr == 0.0 {
        return 0.0;
    }
    (cl * expected_value(tree, l) + cr * expected_value(tree, r)) / (cl + cr)
}

/// Adds one tree's SHAP values for `row` to `phi` (one per feature, then the bias), each leaf
/// scaled by `scale` (DART's tree weight). `false` when the tree has no covers.
pub(crate) fn add_tree(tree: &Tree, row: &[f32], scale: f64, phi: &mut [f64]) -> bool {
    if tree.covers().is_empty() {
        return false;
    }
    let bias = phi.len() - 1;
    phi[bias] += tree.expected_value() * scale;
    let mut walk = Walk { tree, row, scale, phi, paths: vec![Vec::with_capacity(16)] };
    walk.recurse(0, 0, 1.0, 1.0, usize::MAX);
    true
}

#[cfg(test)]
mod tests {
    use super::super::tree::Node;
    use super::*;

    /// x0 < 0.5 ? (x1 < 2 ? 1 : 2) : 3, covers 10 = 6 (4 + 2) + 4.
    fn sample() -> Tree {
        Tree::new(
            vec![
                Node::split(0, 0.5, 1, 2, false),
                Node::split(1, 2.0, 3, 4, true),
                Node::leaf(3.0),
                Node::leaf(1.0),
                Node::leaf(2.0),
            ],
            2,
        )
        .unwrap()
        .with_covers(vec![10.0, 6.0, 4.0, 4.0, 2.0])
    }

    /// Shapley values by their definition: every coalition, the tree's expectation with the
    /// absent features integrated out by cover.
    fn brute_force(tree: &Tree, row: &[f32]) -> Vec<f64> {
        fn value(tree: &Tree, node: usize, row: &[f32], present: &[bool]) -> f64 {
            let n = tree.node(node);
            if n.is_leaf() {
                return f64::from(n.value);
            }
            let f = n.feature as usize;
            if present[f] {
                let go_left = if row[f].is_nan() { n.default_left } else { row[f] < n.value };
                value(tree, if go_left { n.left } else { n.right } as usize, row, present)
            } else {
                let c = tree.covers();
                let (l, r) = (n.left as usize, n.right as usize);
                (f64::from(c[l]) * value(tree, l, row, present) + f64::from(c[r]) * value(tree, r, row, present))
                    / f64::from(c[l] + c[r])
            }
        }
        let m = row.len();
        let factorial = |k: usize| (1..=k).product::<usize>() as f64;
        let mut phi = vec![0.0; m + 1];
        for i in 0..m {
            for mask in 0..(1usize << m) {
                if mask & (1 << i) != 0 {
                    continue;
                }
                let present: Vec<bool> = (0..m).map(|j| mask & (1 << j) != 0).collect();
                let mut with = present.clone();
                with[i] = true;
                let s = present.iter().filter(|p| **p).count();
                let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
                phi[i] += weight * (value(tree, 0, row, &with) - value(tree, 0, row, &present));
            }
        }
        phi[m] = value(tree, 0, row, &vec![false; m]);
        phi
    }

    #[test]
    fn equals_the_shapley_definition_and_sums_to_the_prediction() {
        let tree = sample();
        for row in [[0.1, 1.0], [0.1, 3.0], [0.9, 1.0], [f32::NAN, 3.0], [0.2, f32::NAN]] {
            let mut phi = vec![0.0; 3];
            assert!(add_tree(&tree, &row, 1.0, &mut phi));
            let expected = brute_force(&tree, &row);
            for (a, b) in phi.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-12, "{row:?}: {phi:?} vs {expected:?}");
            }
            let total: f64 = phi.iter().sum();
            assert!((total - f64::from(tree.leaf_value(&row))).abs() < 1e-12, "{row:?}");
        }
    }

    #[test]
    fn a_feature_split_twice_is_counted_once() {
        // x0 < 0.5 ? (x0 < 0.2 ? 1 : 2) : 4
        let tree = Tree::new(
            vec![
                Node::split(0, 0.5, 1, 2, false),
                Node::split(0, 0.2, 3, 4, false),
                Node::leaf(4.0),
                Node::leaf(1.0),
                Node::leaf(2.0),
            ],
            1,
        )
        .unwrap()
        .with_covers(vec![8.0, 4.0, 4.0, 1.0, 3.0]);
        for row in [[0.1f32], [0.3], [0.9]] {
            let mut phi = vec![0.0; 2];
            add_tree(&tree, &row, 1.0, &mut phi);
            let expected = brute_force(&tree, &row);
            assert!((phi[0] - expected[0]).abs() < 1e-12 && (phi[1] - expected[1]).abs() < 1e-12, "{phi:?}");
        }
    }
}
