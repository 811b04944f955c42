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
        let (hot, cold) = if n.goes_left(self.row) { (n.left, n.right) } else { (n.right, n.left) };
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

/// The deepest tree TreeSHAP explains (its walk recurses once per level; real models are far
/// shallower, XGBoost's default being 6).
pub const MAX_DEPTH: usize = 1000;

/// Adds one tree's SHAP values for `row` to `phi` (one per feature, then the bias), each leaf
/// scaled by `scale` (DART's tree weight). `false` when the tree has no covers.
pub(crate) fn add_tree(tree: &Tree, row: &[f32], scale: f64, phi: &mut [f64]) -> bool {
    if tree.covers().is_empty() || tree.depth() > MAX_DEPTH {
        return false;
    }
    let bias = phi.len() - 1;
    phi[bias] += tree.expected_value() * scale;
    match tree.leaf_tables() {
        Some(tables) => tables.add(tree, row, scale, phi),
        None => add_by_walking(tree, row, scale, phi),
    }
    true
}

/// The recursive algorithm itself: every leaf's path extended and unwound for this row.
fn add_by_walking(tree: &Tree, row: &[f32], scale: f64, phi: &mut [f64]) {
    let mut walk = Walk { tree, row, scale, phi, paths: vec![Vec::with_capacity(16)] };
    walk.recurse(0, 0, 1.0, 1.0, usize::MAX);
}

/// Distinct features on a leaf's path up to which the leaf gets tables: 2^d patterns of d values.
const MAX_TABLE_FEATURES: usize = 12;
/// Table values a tree may hold (8 bytes each); a larger tree is walked instead.
const MAX_TABLE_VALUES: usize = 1 << 21;

/// Fast TreeSHAP (Yang, "Fast TreeSHAP: Accelerating SHAP Value Computation for Trees", 2021,
/// its second algorithm): what a leaf adds to each feature on its path depends on the row only
/// through which of those features the row follows the path on, so the algorithm above is run
/// once per leaf and per such pattern, ahead of time; explaining a row is then a lookup per leaf.
/// Built the first time a tree is explained, kept with it.
#[derive(Clone, Debug)]
pub(crate) struct LeafTables {
    leaves: Vec<LeafTable>,
}

#[derive(Clone, Debug)]
struct LeafTable {
    /// The distinct features split on from the root to the leaf, in order of first split.
    features: Vec<u32>,
    /// Each split on the path: the node, whether the path goes left, the feature's position.
    splits: Vec<(u32, bool, u8)>,
    /// For every pattern (bit k set: the row follows the path at every split on feature k), what
    /// the leaf adds to each feature: `values[pattern * d + k]`.
    values: Vec<f64>,
}

impl LeafTables {
    /// Tables for every leaf of `tree`, or `None` when a path is too long to tabulate.
    pub(crate) fn build(tree: &Tree) -> Option<LeafTables> {
        let mut leaves = Vec::new();
        let mut total = 0usize;
        let mut stack = vec![(0usize, Vec::<(u32, bool)>::new())];
        while let Some((index, path)) = stack.pop() {
            let node = tree.node(index);
            if !node.is_leaf() {
                for (child, left) in [(node.left, true), (node.right, false)] {
                    let mut next = path.clone();
                    next.push((index as u32, left));
                    stack.push((child as usize, next));
                }
                continue;
            }
            let leaf = LeafTable::build(tree, &path, f64::from(node.value))?;
            total += leaf.values.len();
            if total > MAX_TABLE_VALUES {
                return None;
            }
            leaves.push(leaf);
        }
        Some(LeafTables { leaves })
    }

    fn add(&self, tree: &Tree, row: &[f32], scale: f64, phi: &mut [f64]) {
        for leaf in &self.leaves {
            let d = leaf.features.len();
            let mut pattern = (1usize << d) - 1;
            for &(node, left, position) in &leaf.splits {
                if tree.node(node as usize).goes_left(row) != left {
                    pattern &= !(1 << position);
                }
            }
            let values = &leaf.values[pattern * d..(pattern + 1) * d];
            for (feature, value) in leaf.features.iter().zip(values) {
                phi[*feature as usize] += scale * value;
            }
        }
    }
}

impl LeafTable {
    fn build(tree: &Tree, path: &[(u32, bool)], value: f64) -> Option<LeafTable> {
        let covers = tree.covers();
        let (mut features, mut zeros, mut splits) = (Vec::<u32>::new(), Vec::<f64>::new(), Vec::new());
        for &(node, left) in path {
            let n = tree.node(node as usize);
            let (cover, child) = (f64::from(covers[node as usize]), if left { n.left } else { n.right });
            let fraction = if cover > 0.0 { f64::from(covers[child as usize]) / cover } else { 0.0 };
            let position = match features.iter().position(|f| *f == n.feature) {
                Some(k) => {
                    zeros[k] *= fraction;
                    k
                }
                None => {
                    features.push(n.feature);
                    zeros.push(fraction);
                    features.len() - 1
                }
            };
            splits.push((node, left, position as u8));
        }
        let d = features.len();
        if d > MAX_TABLE_FEATURES {
            return None;
        }
        let mut values = vec![0.0; (1 << d) * d];
        let mut elements = Vec::with_capacity(d + 1);
        for pattern in 0..1usize << d {
            elements.clear();
            extend(&mut elements, 1.0, 1.0, usize::MAX);
            for (k, zero) in zeros.iter().enumerate() {
                extend(&mut elements, *zero, f64::from(u8::from(pattern >> k & 1 == 1)), k);
            }
            for k in 0..d {
                let e = elements[k + 1];
                values[pattern * d + e.feature] = unwound_sum(&elements, k + 1) * (e.one - e.zero) * value;
            }
        }
        Some(LeafTable { features, splits, values })
    }
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

    /// A hostile chain of splits far deeper than any real tree: loaded without recursing and
    /// refused by TreeSHAP, never walked (the walk recurses once per level).
    #[test]
    fn a_tree_deeper_than_the_walk_takes_is_refused() {
        // Split 2i goes left to split 2i + 2 and right to leaf 2i + 1; the chain ends in a leaf.
        let depth = 100_000u32;
        let mut chain = Vec::new();
        for i in 0..depth {
            chain.push(Node::split(0, i as f32, 2 * i + 2, 2 * i + 1, false));
            chain.push(Node::leaf(1.0));
        }
        chain.push(Node::leaf(2.0));
        let covers = vec![1.0; chain.len()];
        let tree = Tree::new(chain, 1).unwrap().with_covers(covers);
        assert!(tree.depth() > MAX_DEPTH);
        assert_eq!(tree.leaf_value(&[-1.0]), 2.0, "it still predicts");
        let mut phi = vec![0.0; 2];
        assert!(!add_tree(&tree, &[0.5], 1.0, &mut phi), "refused");
    }

    /// The tables give what walking the tree gives, pattern by pattern.
    #[test]
    fn tables_agree_with_walking() {
        // Unbalanced, x0 split twice on one path, missing values both ways.
        let tree = Tree::new(
            vec![
                Node::split(0, 0.5, 1, 2, false),
                Node::split(1, 2.0, 3, 4, true),
                Node::split(0, 0.8, 5, 6, true),
                Node::split(0, 0.2, 7, 8, false),
                Node::leaf(-1.5),
                Node::leaf(3.0),
                Node::split(2, 0.0, 9, 10, false),
                Node::leaf(1.0),
                Node::leaf(2.0),
                Node::leaf(0.25),
                Node::leaf(-4.0),
            ],
            3,
        )
        .unwrap()
        .with_covers(vec![20.0, 12.0, 8.0, 7.0, 5.0, 3.0, 5.0, 2.0, 5.0, 1.0, 4.0]);
        let tables = LeafTables::build(&tree).expect("a small tree is tabulated");
        let values = [f32::NAN, -1.0, 0.1, 0.5, 0.9, 2.0, 3.0];
        for a in values {
            for b in values {
                for c in values {
                    let row = [a, b, c];
                    let (mut walked, mut looked_up) = (vec![0.0; 4], vec![0.0; 4]);
                    add_by_walking(&tree, &row, 0.5, &mut walked);
                    tables.add(&tree, &row, 0.5, &mut looked_up);
                    for (w, t) in walked.iter().zip(&looked_up) {
                        assert!((w - t).abs() < 1e-12, "{row:?}: {walked:?} vs {looked_up:?}");
                    }
                }
            }
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
