//! One regression tree in a flat node array, walked exactly as XGBoost's CPU predictor does.

/// Marks a leaf in `Node::left`.
const LEAF: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Node {
    pub left: u32,
    pub right: u32,
    pub feature: u32,
    /// Split condition for an internal node, the leaf value for a leaf (XGBoost stores both
    /// in `split_conditions`).
    pub value: f32,
    pub default_left: bool,
}

impl Node {
    pub(crate) fn leaf(value: f32) -> Node {
        Node { left: LEAF, right: LEAF, feature: 0, value, default_left: false }
    }

    pub(crate) fn split(feature: u32, cond: f32, left: u32, right: u32, default_left: bool) -> Node {
        Node { left, right, feature, value: cond, default_left }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.left == LEAF
    }

    /// Whether a split sends `row` left: NaN (or a feature past the end of the row) is missing
    /// and takes the default direction; `x < cond` goes left, as in XGBoost. (Prediction,
    /// [`super::forest::Forest`], keeps its own branch-free form of the rule; the tests hold it
    /// to this one.)
    #[inline]
    pub(crate) fn goes_left(&self, row: &[f32]) -> bool {
        let x = row.get(self.feature as usize).copied().unwrap_or(f32::NAN);
        if x.is_nan() { self.default_left } else { x < self.value }
    }
}

/// A tree whose shape has been checked: every child index is in range and every node is
/// reachable from the root along one path only, so a walk from the root ends and never panics.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// Splits on the longest path from the root to a leaf.
    depth: usize,
    /// Each node's cover (`sum_hessian`: the training weight that reached it), which TreeSHAP
    /// weighs the paths by; empty when the model file has none.
    covers: Vec<f32>,
    /// The cover-weighted mean leaf (TreeSHAP's share of the bias), once covers are known.
    expected: f64,
    /// Fast TreeSHAP's tables, built the first time the tree is explained (`None` inside: the
    /// tree is too deep to tabulate and is walked).
    leaf_tables: std::sync::OnceLock<Option<super::shap::LeafTables>>,
}

impl Tree {
    /// Heap bytes the tree holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.covers.capacity() * 4
    }

    /// Checks that the nodes reachable from node 0 form a tree whose splits use features below
    /// `num_features`. Unreachable nodes (XGBoost keeps pruned nodes in the arrays) are allowed.
    pub(crate) fn new(nodes: Vec<Node>, num_features: usize) -> Result<Tree, String> {
        if nodes.is_empty() {
            return Err("has no nodes".into());
        }
        let mut seen = vec![false; nodes.len()];
        let mut stack = vec![(0usize, 0usize)];
        let mut depth = 0;
        while let Some((i, at_depth)) = stack.pop() {
            depth = depth.max(at_depth);
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice (the nodes do not form a tree)"));
            }
            let node = &nodes[i];
            if node.is_leaf() {
                if !node.value.is_finite() {
                    return Err(format!("leaf {i} has a non-finite value"));
                }
                continue;
            }
            if node.feature as usize >= num_features {
                return Err(format!(
                    "node {i} splits on feature {} but the model has {num_features} features",
                    node.feature
                ));
            }
            for child in [node.left, node.right] {
                if child as usize >= nodes.len() {
                    return Err(format!("node {i} has child {child} outside the {} nodes", nodes.len()));
                }
                stack.push((child as usize, at_depth + 1));
            }
        }
        Ok(Tree { nodes, depth, covers: Vec::new(), expected: 0.0, leaf_tables: Default::default() })
    }

    /// Keeps the nodes' covers for TreeSHAP when they fit (one per node, each finite and
    /// non-negative) and the tree is not deeper than TreeSHAP walks (its expected value is
    /// computed recursively, here, at load: a hostile chain of splits must not overflow the
    /// stack); otherwise the tree predicts as before and cannot be explained exactly.
    pub(crate) fn with_covers(mut self, covers: Vec<f32>) -> Tree {
        let fits = covers.len() == self.nodes.len() && covers.iter().all(|c| c.is_finite() && *c >= 0.0);
        if fits && self.depth <= super::shap::MAX_DEPTH {
            self.covers = covers;
            self.expected = super::shap::expected_value(&self, 0);
        }
        self
    }

    /// Splits on the longest path from the root to a leaf.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    pub(crate) fn covers(&self) -> &[f32] {
        &self.covers
    }

    pub(crate) fn expected_value(&self) -> f64 {
        self.expected
    }

    pub(crate) fn leaf_tables(&self) -> Option<&super::shap::LeafTables> {
        self.leaf_tables.get_or_init(|| super::shap::LeafTables::build(self)).as_ref()
    }

    /// Nodes, reachable or not.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The leaf value for one row; NaN (or a feature past the end of `features`) is missing.
    /// `x < cond` goes left, as in XGBoost, so a value equal to the condition goes right. (The
    /// reference the tests hold the prediction walks of [`super::forest::Forest`] to.)
    #[cfg(test)]
    pub(crate) fn leaf_value(&self, features: &[f32]) -> f32 {
        let mut node = &self.nodes[0];
        while !node.is_leaf() {
            node = &self.nodes[if node.goes_left(features) { node.left } else { node.right } as usize];
        }
        node.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x0 < 0.5 ? (x1 < 2 ? 1 : 2) : 3, missing x0 goes right, missing x1 goes left.
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
    }

    #[test]
    fn walks_with_strict_less_than_and_default_directions() {
        let t = sample();
        assert_eq!(t.leaf_value(&[0.0, 0.0]), 1.0);
        assert_eq!(t.leaf_value(&[0.0, 2.0]), 2.0, "equal to the condition goes right");
        assert_eq!(t.leaf_value(&[0.5, 0.0]), 3.0);
        assert_eq!(t.leaf_value(&[f32::NAN, 0.0]), 3.0);
        assert_eq!(t.leaf_value(&[0.0, f32::NAN]), 1.0);
        assert_eq!(t.leaf_value(&[0.0]), 1.0, "absent trailing features are missing");
        assert_eq!(t.leaf_value(&[f32::NEG_INFINITY, f32::INFINITY]), 2.0);
    }

    #[test]
    fn single_leaf_tree() {
        let t = Tree::new(vec![Node::leaf(-0.25)], 0).unwrap();
        assert_eq!(t.leaf_value(&[]), -0.25);
    }

    #[test]
    fn rejects_malformed_shapes() {
        let cycle = vec![Node::split(0, 1.0, 0, 1, false), Node::leaf(0.0)];
        assert!(Tree::new(cycle, 1).unwrap_err().contains("reached twice"));

        let shared = vec![Node::split(0, 1.0, 1, 1, false), Node::leaf(0.0)];
        assert!(Tree::new(shared, 1).unwrap_err().contains("reached twice"));

        let out_of_range = vec![Node::split(0, 1.0, 1, 7, false), Node::leaf(0.0)];
        assert!(Tree::new(out_of_range, 1).unwrap_err().contains("outside"));

        let bad_feature = vec![Node::split(3, 1.0, 1, 2, false), Node::leaf(0.0), Node::leaf(1.0)];
        assert!(Tree::new(bad_feature, 2).unwrap_err().contains("feature 3"));

        assert!(Tree::new(vec![Node::leaf(f32::INFINITY)], 1).unwrap_err().contains("non-finite"));
        assert!(Tree::new(Vec::new(), 1).unwrap_err().contains("no nodes"));
    }

    #[test]
    fn unreachable_nodes_are_ignored() {
        // Node 2 is a pruned leftover pointing nowhere sensible.
        let nodes = vec![Node::leaf(1.0), Node::leaf(2.0), Node::split(9, 0.0, 100, 200, false)];
        assert_eq!(Tree::new(nodes, 1).unwrap().leaf_value(&[0.0]), 1.0);
    }
}
