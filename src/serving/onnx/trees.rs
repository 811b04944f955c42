//! The `ai.onnx.ml` tree ensembles (`TreeEnsembleRegressor`, `TreeEnsembleClassifier`), which
//! every converted random forest and gradient-boosted model uses. tract ships a classifier but no
//! regressor, reads `BRANCH_GTE` nodes as leaves, and walks child ids it never checked with
//! unchecked indexing; a model file is untrusted input, so we evaluate both operators ourselves.
//!
//! Everything is checked when the model loads: every child exists in its own tree, every tree is
//! a tree (no node reached twice, so a walk always ends), every leaf weight names a known target
//! or class. Evaluation then follows onnxruntime: float thresholds against float features, scores
//! summed in tree order in f32, the base values added after aggregating, then the post transform
//! (including onnxruntime's two-column answer for binary classifiers scored on one column).

pub(crate) mod shap;

use super::scores::{Labels, PostTransform, argmax, logistic, probit};
use std::collections::HashMap;
use tract_onnx::pb::{AttributeProto, NodeProto};

#[derive(Debug, thiserror::Error)]
#[error("node {node:?} ({op}): {message}")]
pub struct TreeError {
    pub node: String,
    pub op: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    mode: Mode,
    feature: u32,
    threshold: f32,
    nan_goes_true: bool,
    /// Branches: indexes of the children in `Ensemble::nodes`. Leaves: the range of their
    /// weights in `Ensemble::weights`.
    first: u32,
    second: u32,
}

impl Node {
    /// The child a branch sends `x` to.
    fn child(&self, x: f32) -> u32 {
        let goes_true = if x.is_nan() {
            self.nan_goes_true || (self.mode == Mode::Neq) // NaN != t holds, as onnxruntime evaluates it
        } else {
            let t = self.threshold;
            match self.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Leaf => unreachable!("a leaf has no children"),
            }
        };
        if goes_true { self.first } else { self.second }
    }
}

/// One validated tree ensemble, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    nodes: Vec<Node>,
    /// (target or class index, weight) of each leaf, leaf by leaf.
    weights: Vec<(u32, f32)>,
    roots: Vec<u32>,
    /// Targets of a regressor, classes of a classifier: the width of the scores.
    width: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    post_transform: PostTransform,
    /// The classifier's labels; `None` for a regressor.
    pub labels: Option<Labels>,
    /// Two classes but leaf weights for only one of them: onnxruntime scores that one column and
    /// answers with two (see [`Ensemble::finish`]).
    binary_one_column: bool,
    all_weights_non_negative: bool,
    /// The highest feature index a node reads.
    pub max_feature: Option<u32>,
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

impl Ensemble {
    /// Parses and checks a `TreeEnsembleRegressor` or `TreeEnsembleClassifier` node.
    pub fn from_node(node: &NodeProto) -> Result<Self, TreeError> {
        let fail = |message: String| TreeError { node: node.name.clone(), op: node.op_type.clone(), message };
        let classifier = match node.op_type.as_str() {
            "TreeEnsembleClassifier" => true,
            "TreeEnsembleRegressor" => false,
            other => return Err(fail(format!("{other} is not a tree ensemble"))),
        };
        for name in
            ["nodes_values_as_tensor", "base_values_as_tensor", "class_weights_as_tensor", "target_weights_as_tensor"]
        {
            if attribute(node, name).is_some() {
                return Err(fail(format!(
                    "attribute `{name}` (double-precision trees) is not supported; convert the model with float thresholds"
                )));
            }
        }
        let ints = |name: &str| attribute(node, name).map(|a| a.ints.as_slice()).unwrap_or(&[]);
        let floats = |name: &str| attribute(node, name).map(|a| a.floats.as_slice()).unwrap_or(&[]);
        let strings = |name: &str| -> Vec<String> {
            attribute(node, name)
                .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
                .unwrap_or_default()
        };
        let text = |name: &str| attribute(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned());

        let tree_ids = ints("nodes_treeids");
        let node_ids = ints("nodes_nodeids");
        let feature_ids = ints("nodes_featureids");
        let values = floats("nodes_values");
        let true_ids = ints("nodes_truenodeids");
        let false_ids = ints("nodes_falsenodeids");
        let modes = strings("nodes_modes");
        let missing = ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if n == 0 {
            return Err(fail("the ensemble has no nodes".into()));
        }
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", feature_ids.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
            ("nodes_modes", modes.len()),
        ] {
            if len != n {
                return Err(fail(format!("`{name}` has {len} entries, `nodes_treeids` {n}")));
            }
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(fail(format!(
                "`nodes_missing_value_tracks_true` has {} entries, `nodes_treeids` {n}",
                missing.len()
            )));
        }

        let prefix = if classifier { "class" } else { "target" };
        let leaf_tree_ids = ints(&format!("{prefix}_treeids"));
        let leaf_node_ids = ints(&format!("{prefix}_nodeids"));
        let leaf_targets = ints(&format!("{prefix}_ids"));
        let leaf_weights = floats(&format!("{prefix}_weights"));
        let m = leaf_weights.len();
        for (name, len) in
            [("treeids", leaf_tree_ids.len()), ("nodeids", leaf_node_ids.len()), ("ids", leaf_targets.len())]
        {
            if len != m {
                return Err(fail(format!("`{prefix}_{name}` has {len} entries, `{prefix}_weights` {m}")));
            }
        }

        let labels = if classifier {
            let int_labels = ints("classlabels_int64s");
            let string_labels = strings("classlabels_strings");
            Some(match (int_labels.is_empty(), string_labels.is_empty()) {
                (false, true) => Labels::Ints(int_labels.to_vec()),
                (true, false) => Labels::Strings(string_labels),
                (true, true) => return Err(fail("the classifier has no class labels".into())),
                (false, false) => return Err(fail("the classifier has both integer and string labels".into())),
            })
        } else {
            None
        };
        let width = match &labels {
            Some(labels) => labels.len(),
            None => match attribute(node, "n_targets").map(|a| a.i) {
                Some(t) if (1..=1 << 16).contains(&t) => t as usize,
                Some(t) => return Err(fail(format!("`n_targets` is {t}"))),
                None => return Err(fail("`n_targets` is missing".into())),
            },
        };
        let aggregate = match text("aggregate_function").as_deref().unwrap_or("SUM") {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return Err(fail(format!("unknown aggregate_function `{other}`"))),
        };
        if classifier && aggregate != Aggregate::Sum {
            return Err(fail("a classifier sums its trees".into()));
        }
        let post_transform = PostTransform::parse(text("post_transform").as_deref()).map_err(fail)?;
        let base_values = floats("base_values").to_vec();
        if !base_values.is_empty()
            && base_values.len() != width
            && !(classifier && width == 2 && base_values.len() == 1)
        {
            return Err(fail(format!("`base_values` has {} entries for {width} outputs", base_values.len())));
        }

        // Nodes by (tree, node id); trees in order of first appearance of their id.
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        let mut nodes = Vec::with_capacity(n);
        // Trees in order of first appearance, and each tree's position in that order.
        let mut tree_order: Vec<i64> = Vec::new();
        let mut tree_position: HashMap<i64, usize> = HashMap::new();
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => return Err(fail(format!("node {i}: unknown mode `{other}`"))),
            };
            if index.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
                return Err(fail(format!("tree {} has node id {} twice", tree_ids[i], node_ids[i])));
            }
            tree_position.entry(tree_ids[i]).or_insert_with(|| {
                tree_order.push(tree_ids[i]);
                tree_order.len() - 1
            });
            let feature = if mode == Mode::Leaf { 0 } else { feature_ids[i] };
            let feature = u32::try_from(feature).map_err(|_| fail(format!("node {i}: feature id {feature}")))?;
            nodes.push(Node {
                mode,
                feature,
                threshold: values[i],
                nan_goes_true: missing.get(i).is_some_and(|m| *m != 0),
                first: 0,
                second: 0,
            });
        }
        for i in 0..n {
            if nodes[i].mode == Mode::Leaf {
                continue;
            }
            let child = |id: i64| {
                index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                    fail(format!(
                        "node {} of tree {} points to node {id}, which the tree does not have",
                        node_ids[i], tree_ids[i]
                    ))
                })
            };
            nodes[i].first = child(true_ids[i])?;
            nodes[i].second = child(false_ids[i])?;
        }

        // Leaf weights, grouped by leaf.
        let mut by_leaf: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for j in 0..m {
            let leaf = *index.get(&(leaf_tree_ids[j], leaf_node_ids[j])).ok_or_else(|| {
                fail(format!(
                    "a weight names node {} of tree {}, which does not exist",
                    leaf_node_ids[j], leaf_tree_ids[j]
                ))
            })?;
            if nodes[leaf as usize].mode != Mode::Leaf {
                return Err(fail(format!(
                    "a weight names node {} of tree {}, which is a branch",
                    leaf_node_ids[j], leaf_tree_ids[j]
                )));
            }
            let target = leaf_targets[j];
            if target < 0 || target as usize >= width {
                return Err(fail(format!("a weight names output {target} of {width}")));
            }
            by_leaf.entry(leaf).or_default().push((target as u32, leaf_weights[j]));
        }
        let mut weights = Vec::with_capacity(m);
        for (i, node) in nodes.iter_mut().enumerate() {
            if node.mode == Mode::Leaf {
                node.first = weights.len() as u32;
                if let Some(w) = by_leaf.remove(&(i as u32)) {
                    weights.extend(w);
                }
                node.second = weights.len() as u32;
            }
        }

        // Each tree's root is the one node of the tree no branch points to; every node is
        // reached from it exactly once, so every walk ends.
        let mut pointed = vec![false; n];
        for node in nodes.iter().filter(|n| n.mode != Mode::Leaf) {
            pointed[node.first as usize] = true;
            pointed[node.second as usize] = true;
        }
        let mut candidates: Vec<Vec<u32>> = vec![Vec::new(); tree_order.len()];
        for i in (0..n).filter(|&i| !pointed[i]) {
            candidates[tree_position[&tree_ids[i]]].push(i as u32);
        }
        let mut roots = Vec::with_capacity(tree_order.len());
        for (tree, candidates) in tree_order.iter().zip(&candidates) {
            match candidates.as_slice() {
                [root] => roots.push(*root),
                [] => return Err(fail(format!("tree {tree} has no root (its nodes form a cycle)"))),
                _ => return Err(fail(format!("tree {tree} has {} roots", candidates.len()))),
            }
        }
        let mut seen = vec![false; n];
        for root in &roots {
            let mut stack = vec![*root];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i as usize], true) {
                    return Err(fail(format!(
                        "tree {} reaches node {} twice",
                        tree_ids[i as usize], node_ids[i as usize]
                    )));
                }
                let node = nodes[i as usize];
                if node.mode != Mode::Leaf {
                    stack.push(node.first);
                    stack.push(node.second);
                }
            }
        }

        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(fail(format!(
                "node {} of tree {} is not reachable from the tree's root",
                node_ids[i], tree_ids[i]
            )));
        }

        let used_classes: std::collections::BTreeSet<u32> = weights.iter().map(|(c, _)| *c).collect();
        let binary_one_column = classifier && width == 2 && used_classes.len() == 1;
        let all_weights_non_negative = weights.iter().all(|(_, w)| *w >= 0.0);
        let max_feature = nodes.iter().filter(|n| n.mode != Mode::Leaf).map(|n| n.feature).max();
        Ok(Self {
            nodes,
            weights,
            roots,
            width,
            aggregate,
            base_values,
            post_transform,
            labels,
            binary_one_column,
            all_weights_non_negative,
            max_feature,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// The leaf a row ends in, from the tree rooted at `root`.
    fn leaf(&self, root: u32, row: &[f32]) -> &Node {
        let mut node = &self.nodes[root as usize];
        while node.mode != Mode::Leaf {
            node = &self.nodes[node.child(row[node.feature as usize]) as usize];
        }
        node
    }

    /// Scores `rows` (each `num_features` wide, which must exceed [`Ensemble::max_feature`]):
    /// `width` values per row into `scores`, and each row's winning class into `winners` for a
    /// classifier.
    pub fn eval(&self, rows: &[f32], num_features: usize, scores: &mut Vec<f32>, winners: &mut Vec<usize>) {
        let mut acc = vec![0f32; self.width];
        let mut seen = vec![false; self.width];
        for row in rows.chunks_exact(num_features.max(1)) {
            acc.fill(0.0);
            seen.fill(false);
            for root in &self.roots {
                let leaf = self.leaf(*root, row);
                for &(target, weight) in &self.weights[leaf.first as usize..leaf.second as usize] {
                    let (t, slot) = (target as usize, &mut acc[target as usize]);
                    *slot = match (self.aggregate, seen[t]) {
                        (_, false) => weight,
                        (Aggregate::Sum | Aggregate::Average, true) => *slot + weight,
                        (Aggregate::Min, true) => slot.min(weight),
                        (Aggregate::Max, true) => slot.max(weight),
                    };
                    seen[t] = true;
                }
            }
            if self.aggregate == Aggregate::Average {
                let trees = self.roots.len() as f32;
                acc.iter_mut().for_each(|v| *v /= trees);
            }
            let winner = self.finish(&mut acc);
            scores.extend_from_slice(&acc);
            winners.push(winner);
        }
    }

    /// Adds the base values and applies the post transform in place; returns the winning class.
    fn finish(&self, acc: &mut [f32]) -> usize {
        if self.binary_one_column {
            // One column was scored (the class the weights name); onnxruntime answers with two:
            // [1 - s, s] when every weight is non-negative (the sum is taken as a probability, no
            // transform), else [-s, s], or [σ(-s), σ(s)] under LOGISTIC.
            let column = self.weights.first().map_or(0, |(c, _)| *c as usize);
            let s = acc[column] + self.base_values.first().copied().unwrap_or(0.0);
            let (pair, winner) = if self.post_transform == PostTransform::Probit {
                ([1.0 - probit(s), probit(s)], usize::from(probit(s) > 0.5))
            } else if self.all_weights_non_negative {
                ([1.0 - s, s], usize::from(s > 0.5))
            } else if self.post_transform == PostTransform::Logistic {
                ([logistic(-s), logistic(s)], usize::from(s > 0.0))
            } else {
                ([-s, s], usize::from(s > 0.0))
            };
            acc.copy_from_slice(&pair);
            return winner;
        }
        for (v, base) in acc.iter_mut().zip(&self.base_values) {
            *v += base;
        }
        let winner = argmax(acc);
        self.post_transform.apply(acc);
        winner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::attribute_proto::AttributeType;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), ints: v.to_vec(), r#type: AttributeType::Ints as i32, ..Default::default() }
    }
    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            floats: v.to_vec(),
            r#type: AttributeType::Floats as i32,
            ..Default::default()
        }
    }
    fn strings(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            r#type: AttributeType::Strings as i32,
            ..Default::default()
        }
    }
    fn text(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            s: v.as_bytes().to_vec(),
            r#type: AttributeType::String as i32,
            ..Default::default()
        }
    }
    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto { name: name.into(), i: v, r#type: AttributeType::Int as i32, ..Default::default() }
    }

    /// One stump per mode: x0 `mode` 1.0 → true leaf 10, false leaf 20 (a regressor).
    fn stump(mode: &str, extra: Vec<AttributeProto>) -> NodeProto {
        let mut attribute = vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[0, 0, 0]),
            floats("nodes_values", &[1.0, 0.0, 0.0]),
            strings("nodes_modes", &[mode, "LEAF", "LEAF"]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("target_treeids", &[0, 0]),
            ints("target_nodeids", &[1, 2]),
            ints("target_ids", &[0, 0]),
            floats("target_weights", &[10.0, 20.0]),
            int("n_targets", 1),
        ];
        attribute.extend(extra);
        NodeProto { name: "t".into(), op_type: "TreeEnsembleRegressor".into(), attribute, ..Default::default() }
    }

    fn predict(e: &Ensemble, x: f32) -> f32 {
        let (mut scores, mut winners) = (Vec::new(), Vec::new());
        e.eval(&[x], 1, &mut scores, &mut winners);
        scores[0]
    }

    #[test]
    fn every_branch_mode_compares_as_onnx_defines_it() {
        for (mode, below, at, above) in [
            ("BRANCH_LEQ", 10.0, 10.0, 20.0),
            ("BRANCH_LT", 10.0, 20.0, 20.0),
            ("BRANCH_GTE", 20.0, 10.0, 10.0),
            ("BRANCH_GT", 20.0, 20.0, 10.0),
            ("BRANCH_EQ", 20.0, 10.0, 20.0),
            ("BRANCH_NEQ", 10.0, 20.0, 10.0),
        ] {
            let e = Ensemble::from_node(&stump(mode, vec![])).unwrap();
            assert_eq!([predict(&e, 0.5), predict(&e, 1.0), predict(&e, 1.5)], [below, at, above], "{mode}");
        }
    }

    #[test]
    fn missing_values_follow_the_tracked_direction() {
        let e = Ensemble::from_node(&stump("BRANCH_LEQ", vec![])).unwrap();
        assert_eq!(predict(&e, f32::NAN), 20.0);
        let e = Ensemble::from_node(&stump("BRANCH_LEQ", vec![ints("nodes_missing_value_tracks_true", &[1, 0, 0])]))
            .unwrap();
        assert_eq!(predict(&e, f32::NAN), 10.0);
    }

    #[test]
    fn base_values_and_average_apply_after_the_trees() {
        let e = Ensemble::from_node(&stump("BRANCH_LEQ", vec![floats("base_values", &[0.5])])).unwrap();
        assert_eq!(predict(&e, 0.0), 10.5);
        let e = Ensemble::from_node(&stump("BRANCH_LEQ", vec![text("aggregate_function", "AVERAGE")])).unwrap();
        assert_eq!(predict(&e, 0.0), 10.0);
    }

    #[test]
    fn hostile_structures_are_refused_at_load() {
        let mut cyclic = stump("BRANCH_LEQ", vec![]);
        cyclic.attribute[5] = ints("nodes_truenodeids", &[0, 0, 0]);
        let message = Ensemble::from_node(&cyclic).unwrap_err().to_string();
        assert!(message.contains("not reachable"), "{message}");

        let mut dangling = stump("BRANCH_LEQ", vec![]);
        dangling.attribute[6] = ints("nodes_falsenodeids", &[7, 0, 0]);
        let message = Ensemble::from_node(&dangling).unwrap_err().to_string();
        assert!(message.contains("points to node 7"), "{message}");

        let mut bad_target = stump("BRANCH_LEQ", vec![]);
        bad_target.attribute[9] = ints("target_ids", &[0, 3]);
        let message = Ensemble::from_node(&bad_target).unwrap_err().to_string();
        assert!(message.contains("output 3 of 1"), "{message}");

        let message = Ensemble::from_node(&stump("BRANCH_SOMETIMES", vec![])).unwrap_err().to_string();
        assert!(message.contains("BRANCH_SOMETIMES"), "{message}");
    }
}
