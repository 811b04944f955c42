//! Every tree of a booster laid out again for the prediction walks.
//!
//! A [`Tree`] keeps XGBoost's nodes as the model file numbers them (TreeSHAP reads them).
//! Prediction walks one of two copies, both branch-free (a walk's direction is arithmetic, so
//! it never mispredicts on the data) and walked several at a time, so the processor overlaps
//! their loads:
//!
//! - [`Complete`], when the trees are shallow enough: each tree padded out to a complete binary
//!   tree of the forest's depth, so a node's children are found by arithmetic (`2p + 1 + right`)
//!   and every walk takes the same number of steps; the trees of a chunk interleaved, so the
//!   chunk's walks share one base address and keep one position each. On the benchmark's model
//!   (100 trees of depth 4) a row costs 8.3 k instructions this way against 12.6 k linked
//!   (callgrind).
//! - [`Linked`], for any shape: the nodes renumbered breadth first, so a split's right child is
//!   its left one plus one, and a leaf leads to itself.
//!
//! Rows in which a split may meet a missing value (NaN, or a row shorter than the features the
//! splits read) take a walk that honours each split's default direction; complete rows skip
//! that test.

use super::tree::Tree;

/// Trees one row walks side by side in the complete layout (more lanes ran out of registers and
/// cost more: callgrind, 8 lanes 9.4 k instructions a row against 8.6 k with 4, as first written).
const TREE_LANES: usize = 4;

/// Trees one row walks side by side in the linked layout.
const LINKED_LANES: usize = 8;

/// Padding the complete layout may add: at most this many times the model's own nodes.
const MAX_PADDING: usize = 4;

/// Deeper forests are always linked (a complete tree of depth 24 has 16 M leaves).
const MAX_COMPLETE_DEPTH: usize = 24;

#[derive(Clone, Debug)]
pub(crate) struct Forest {
    trees: usize,
    layout: Layout,
}

#[derive(Clone, Debug)]
enum Layout {
    Complete(Complete),
    Linked(Linked),
}

impl Forest {
    /// The complete layout when the padding stays within [`MAX_PADDING`], else the linked one.
    /// Fails when the nodes are more than `u32` indices can tell apart.
    pub(crate) fn new(trees: &[Tree]) -> Result<Forest, String> {
        let layout = match Complete::new(trees) {
            Some(complete) => Layout::Complete(complete),
            None => Layout::Linked(Linked::new(trees)?),
        };
        Ok(Forest { trees: trees.len(), layout })
    }

    #[cfg(test)]
    fn linked(trees: &[Tree]) -> Forest {
        Forest { trees: trees.len(), layout: Layout::Linked(Linked::new(trees).unwrap()) }
    }

    #[cfg(test)]
    fn is_complete(&self) -> bool {
        matches!(self.layout, Layout::Complete(_))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.trees
    }

    /// Heap bytes the forest holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        match &self.layout {
            Layout::Complete(c) => c.memory_bytes(),
            Layout::Linked(l) => l.memory_bytes(),
        }
    }

    /// Calls `add(tree, leaf)` for every tree in order with the leaf `row` reaches in it. NaN,
    /// or a feature past the end of `row`, is missing and takes the split's default direction.
    #[inline]
    pub(crate) fn for_each_leaf(&self, row: &[f32], mut add: impl FnMut(usize, f32)) {
        match &self.layout {
            Layout::Complete(c) => {
                let complete = c.complete_row(row);
                for chunk in 0..self.trees.div_ceil(TREE_LANES) {
                    let leaves =
                        if complete { c.chunk_leaves::<false>(chunk, row) } else { c.chunk_leaves::<true>(chunk, row) };
                    for (lane, leaf) in leaves.into_iter().enumerate() {
                        let tree = chunk * TREE_LANES + lane;
                        // The last chunk's padding trees are walked but not added.
                        if tree < self.trees {
                            add(tree, leaf);
                        }
                    }
                }
            }
            Layout::Linked(l) => {
                let mut tree = 0;
                while tree + LINKED_LANES <= self.trees {
                    for leaf in l.leaf_values_of_trees::<LINKED_LANES>(tree, row) {
                        add(tree, leaf);
                        tree += 1;
                    }
                }
                for tree in tree..self.trees {
                    add(tree, l.leaf_value(tree, row));
                }
            }
        }
    }

    /// Whether no split can meet a missing value in any of `rows`: checked once for a block of
    /// rows, then told to [`Self::leaf_values_of_rows`] for every tree.
    pub(crate) fn complete_rows(&self, rows: &[&[f32]]) -> bool {
        match &self.layout {
            Layout::Complete(c) => rows.iter().all(|row| c.complete_row(row)),
            Layout::Linked(_) => false,
        }
    }

    /// The leaves `ROWS` rows reach in tree `tree` (a batch), side by side; `complete`: what
    /// [`Self::complete_rows`] says of them.
    pub(crate) fn leaf_values_of_rows<const ROWS: usize>(
        &self,
        tree: usize,
        rows: [&[f32]; ROWS],
        complete: bool,
    ) -> [f32; ROWS] {
        match &self.layout {
            Layout::Complete(c) if complete => c.rows_leaves::<ROWS, false>(tree, rows),
            Layout::Complete(c) => c.rows_leaves::<ROWS, true>(tree, rows),
            Layout::Linked(l) => l.leaf_values_of_rows(tree, rows),
        }
    }
}

/// One split of the complete layout. Below a leaf, padding splits send every value left (a NaN
/// condition, missing values left) down to the leaf's copies.
#[derive(Clone, Copy, Debug)]
struct Split {
    feature: u32,
    /// `x >= cond` goes right (XGBoost's `x < cond` goes left). A NaN condition of the model
    /// file, which sends every value right in XGBoost, is -inf here.
    cond: f32,
}

const PADDING: Split = Split { feature: 0, cond: f32::NAN };

#[derive(Clone, Debug)]
struct Complete {
    depth: u32,
    /// One more than the highest feature a split reads (at least 1: padding reads feature 0).
    features_read: usize,
    /// Chunk `c` of [`TREE_LANES`] trees, position `p` (the root 0, its children at `2p + 1`
    /// and `2p + 2`), lane `l`: `(c * inner + p) * TREE_LANES + l`, `inner` = 2^depth - 1.
    splits: Vec<Split>,
    /// Whether a missing value goes right at each split (same indices as `splits`).
    missing_right: Vec<bool>,
    /// Leaf `k` of the last level at `(c * 2^depth + k) * TREE_LANES + l`.
    leaves: Vec<f32>,
}

impl Complete {
    /// `None` when the padding would exceed [`MAX_PADDING`] times the model's nodes.
    fn new(trees: &[Tree]) -> Option<Complete> {
        let depth = trees.iter().map(Tree::depth).max().unwrap_or(0);
        let nodes: usize = trees.iter().map(Tree::len).sum();
        let lanes = trees.len().div_ceil(TREE_LANES) * TREE_LANES;
        let width = 1usize << depth.min(MAX_COMPLETE_DEPTH);
        if depth > MAX_COMPLETE_DEPTH || lanes.checked_mul(width)? > MAX_PADDING * nodes.max(16) {
            return None;
        }
        let inner = width - 1;
        let mut complete = Complete {
            depth: depth as u32,
            features_read: 1,
            splits: vec![PADDING; lanes * inner],
            missing_right: vec![false; lanes * inner],
            leaves: vec![0.0; lanes * width],
        };
        let mut stack = Vec::new();
        for (index, tree) in trees.iter().enumerate() {
            let (chunk, lane) = (index / TREE_LANES, index % TREE_LANES);
            // (node, its position in the complete tree, its level)
            stack.push((0usize, 0usize, 0usize));
            while let Some((node, position, level)) = stack.pop() {
                let node = tree.node(node);
                if node.is_leaf() {
                    // Its copies fill the last level below it, where the padding leads.
                    let span = 1usize << (depth - level);
                    let first = ((position + 1) << (depth - level)) - 1 - inner;
                    for leaf in first..first + span {
                        complete.leaves[(chunk * width + leaf) * TREE_LANES + lane] = node.value;
                    }
                } else {
                    let at = (chunk * inner + position) * TREE_LANES + lane;
                    let cond = if node.value.is_nan() { f32::NEG_INFINITY } else { node.value };
                    complete.splits[at] = Split { feature: node.feature, cond };
                    complete.missing_right[at] = !node.default_left;
                    complete.features_read = complete.features_read.max(node.feature as usize + 1);
                    stack.push((node.left as usize, 2 * position + 1, level + 1));
                    stack.push((node.right as usize, 2 * position + 2, level + 1));
                }
            }
        }
        Some(complete)
    }

    fn memory_bytes(&self) -> usize {
        self.splits.capacity() * std::mem::size_of::<Split>()
            + self.missing_right.capacity()
            + self.leaves.capacity() * 4
    }

    /// Whether no split can meet a missing value in `row`.
    #[inline]
    fn complete_row(&self, row: &[f32]) -> bool {
        row.get(..self.features_read).is_some_and(|read| !read.iter().any(|x| x.is_nan()))
    }

    /// The leaves of chunk `chunk`'s trees for `row` (MISSING: `row` may miss values).
    #[inline(always)]
    fn chunk_leaves<const MISSING: bool>(&self, chunk: usize, row: &[f32]) -> [f32; TREE_LANES] {
        self.walk::<TREE_LANES, MISSING>(chunk, std::array::from_fn(|lane| (lane, row)))
    }

    /// The leaves of tree `tree` for `ROWS` rows.
    fn rows_leaves<const ROWS: usize, const MISSING: bool>(&self, tree: usize, rows: [&[f32]; ROWS]) -> [f32; ROWS] {
        self.walk::<ROWS, MISSING>(tree / TREE_LANES, rows.map(|row| (tree % TREE_LANES, row)))
    }

    /// Walks side by side in chunk `chunk`, each of one of its trees (by lane) for one row.
    #[inline(always)]
    fn walk<const N: usize, const MISSING: bool>(&self, chunk: usize, walks: [(usize, &[f32]); N]) -> [f32; N] {
        let inner = (1usize << self.depth) - 1;
        // The chunk's own splits, sliced once: one bounds check a step, against a length the
        // compiler keeps in a register.
        let span = inner * TREE_LANES;
        let (splits, missing_right) =
            (&self.splits[chunk * span..][..span], &self.missing_right[chunk * span..][..span]);
        let mut at = [0usize; N];
        for _ in 0..self.depth {
            for (position, (lane, row)) in at.iter_mut().zip(walks) {
                let i = *position * TREE_LANES + lane;
                let right = goes_right::<MISSING>(splits[i], || missing_right[i], row);
                *position = 2 * *position + 1 + usize::from(right);
            }
        }
        let leaves = &self.leaves[chunk * (span + TREE_LANES)..][..span + TREE_LANES];
        std::array::from_fn(|walk| leaves[(at[walk] - inner) * TREE_LANES + walks[walk].0])
    }
}

/// Whether `split` sends `row` right (MISSING: `row` may miss values, which then go right when
/// `missing_right` says so; otherwise every feature a split reads is in `row`).
#[inline(always)]
fn goes_right<const MISSING: bool>(split: Split, missing_right: impl FnOnce() -> bool, row: &[f32]) -> bool {
    if MISSING {
        let x = row.get(split.feature as usize).copied().unwrap_or(f32::NAN);
        (x >= split.cond) | (x.is_nan() & missing_right())
    } else {
        row[split.feature as usize] >= split.cond
    }
}

/// The high bit of [`Step::feature`]: a missing value goes right.
const MISSING_RIGHT: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Step {
    /// The split's feature, [`MISSING_RIGHT`] set when a missing value goes right.
    feature: u32,
    /// `x >= cond` goes right. A leaf's is NaN, which no value reaches, and its `left` is
    /// itself: a walk that has arrived stays where it is.
    cond: f32,
    left: u32,
}

#[derive(Clone, Debug, Default)]
struct Linked {
    steps: Vec<Step>,
    /// Each step's leaf value (0 for splits), read once a walk ends.
    values: Vec<f32>,
    /// Each tree's root and depth (splits on its longest path).
    roots: Vec<u32>,
    depths: Vec<u32>,
}

impl Linked {
    fn new(trees: &[Tree]) -> Result<Linked, String> {
        let mut linked = Linked::default();
        let mut queue = std::collections::VecDeque::new();
        for tree in trees {
            linked.roots.push(index(linked.steps.len())?);
            linked.depths.push(u32::try_from(tree.depth()).map_err(|_| too_many())?);
            // Breadth first from the root: a split's children are queued, and so numbered, one
            // after the other. Only reachable nodes are visited (Tree::new checked there is
            // one path to each).
            queue.push_back(0usize);
            while let Some(node) = queue.pop_front() {
                let node = tree.node(node);
                let own = index(linked.steps.len())?;
                let step = if node.is_leaf() {
                    linked.values.push(node.value);
                    Step { feature: 0, cond: f32::NAN, left: own }
                } else {
                    if node.feature & MISSING_RIGHT != 0 {
                        return Err(format!("splits on feature {}, more than can be told apart here", node.feature));
                    }
                    linked.values.push(0.0);
                    let left = index(linked.steps.len() + queue.len() + 1)?;
                    queue.push_back(node.left as usize);
                    queue.push_back(node.right as usize);
                    let cond = if node.value.is_nan() { f32::NEG_INFINITY } else { node.value };
                    let missing = if node.default_left { 0 } else { MISSING_RIGHT };
                    Step { feature: node.feature | missing, cond, left }
                };
                linked.steps.push(step);
            }
        }
        index(linked.steps.len())?;
        Ok(linked)
    }

    fn memory_bytes(&self) -> usize {
        self.steps.capacity() * std::mem::size_of::<Step>()
            + (self.values.capacity() + self.roots.capacity() + self.depths.capacity()) * 4
    }

    /// Where a walk at `at` goes for `row`: a split's child, or a leaf itself.
    #[inline(always)]
    fn next(&self, at: u32, row: &[f32]) -> u32 {
        let step = self.steps[at as usize];
        let x = row.get((step.feature & !MISSING_RIGHT) as usize).copied().unwrap_or(f32::NAN);
        let right = (x >= step.cond) | (x.is_nan() & (step.feature & MISSING_RIGHT != 0));
        step.left + u32::from(right)
    }

    fn leaf_value(&self, tree: usize, row: &[f32]) -> f32 {
        let [leaf] = self.walk([(self.roots[tree], row)], self.depths[tree]);
        leaf
    }

    /// Trees `first..first + LANES` for one row.
    fn leaf_values_of_trees<const LANES: usize>(&self, first: usize, row: &[f32]) -> [f32; LANES] {
        let depth = self.depths[first..first + LANES].iter().copied().max().unwrap_or(0);
        self.walk(std::array::from_fn(|lane| (self.roots[first + lane], row)), depth)
    }

    /// Tree `tree` for `ROWS` rows.
    fn leaf_values_of_rows<const ROWS: usize>(&self, tree: usize, rows: [&[f32]; ROWS]) -> [f32; ROWS] {
        self.walk(rows.map(|row| (self.roots[tree], row)), self.depths[tree])
    }

    /// Walks side by side, each from a root for one row, level by level, at most `depth` steps.
    #[inline(always)]
    fn walk<const N: usize>(&self, walks: [(u32, &[f32]); N], depth: u32) -> [f32; N] {
        let mut at = walks.map(|(root, _)| root);
        for _ in 0..depth {
            let mut moved = false;
            for (position, (_, row)) in at.iter_mut().zip(walks) {
                let next = self.next(*position, row);
                moved |= next != *position;
                *position = next;
            }
            // Every walk on a leaf: shallower paths than the deepest one end early (a linked
            // forest has deep, unbalanced trees).
            if !moved {
                break;
            }
        }
        at.map(|i| self.values[i as usize])
    }
}

fn index(i: usize) -> Result<u32, String> {
    u32::try_from(i).map_err(|_| too_many())
}

fn too_many() -> String {
    format!("has more than {} nodes in all, more than a model can hold here", u32::MAX)
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};

    use super::super::tree::{Node, Tree};
    use super::*;

    type Rng = rand::rngs::StdRng;

    /// A random tree over `features` features, up to `max_depth` deep and unbalanced, its nodes
    /// numbered in a shuffled order (XGBoost's are not breadth first after pruning), with
    /// unreachable leftovers, NaN and infinite conditions and both default directions.
    fn random_tree(rng: &mut Rng, features: u32, max_depth: usize) -> Tree {
        fn grow(rng: &mut Rng, shape: &mut Vec<Option<(usize, usize)>>, depth: usize, max: usize) -> usize {
            let me = shape.len();
            shape.push(None);
            if depth < max && rng.random_range(0..10) < 7 {
                let left = grow(rng, shape, depth + 1, max);
                let right = grow(rng, shape, depth + 1, max);
                shape[me] = Some((left, right));
            }
            me
        }
        let mut shape = Vec::new();
        grow(rng, &mut shape, 0, max_depth);
        // Node 0 stays the root; the others, and a few leftovers, go to shuffled slots.
        let total = shape.len() + rng.random_range(0..3);
        let mut slots: Vec<u32> = (1..total as u32).collect();
        for i in (1..slots.len()).rev() {
            slots.swap(i, rng.random_range(0..=i));
        }
        let slot = |i: usize| if i == 0 { 0 } else { slots[i - 1] };
        let mut nodes = vec![Node::split(features + 9, 0.0, 1000, 2000, false); total];
        let conds = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -1.0, 0.0, 0.5, 1.0, 2.0];
        for (i, s) in shape.iter().enumerate() {
            nodes[slot(i) as usize] = match s {
                Some((l, r)) => Node::split(
                    rng.random_range(0..features),
                    conds[rng.random_range(0..conds.len())],
                    slot(*l),
                    slot(*r),
                    rng.random_bool(0.5),
                ),
                None => Node::leaf(rng.random_range(-4.0f32..4.0)),
            };
        }
        Tree::new(nodes, features as usize).expect("a valid tree")
    }

    /// Values at and around the conditions above, infinities, and NaN when `missing`.
    fn random_row(rng: &mut Rng, features: usize, missing: bool) -> Vec<f32> {
        let values = [f32::NEG_INFINITY, f32::INFINITY, -1.0, 0.0, 0.5, 1.0, 2.0];
        (0..features)
            .map(|_| match rng.random_range(0..10) {
                0 if missing => f32::NAN,
                1..=4 => values[rng.random_range(0..values.len())],
                _ => rng.random_range(-3.0f32..3.0),
            })
            .collect()
    }

    fn leaves(forest: &Forest, row: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        forest.for_each_leaf(row, |tree, leaf| {
            assert_eq!(tree, out.len(), "trees in order");
            out.push(leaf);
        });
        out
    }

    #[test]
    fn every_walk_reaches_the_leaf_the_model_file_leads_to() {
        let mut rng = Rng::seed_from_u64(12);
        let mut layouts = [0, 0];
        for round in 0..400 {
            let features = rng.random_range(1..6);
            let count = rng.random_range(1..20);
            let trees: Vec<Tree> = (0..count).map(|_| random_tree(&mut rng, features, round % 9)).collect();
            let chosen = Forest::new(&trees).unwrap();
            layouts[usize::from(chosen.is_complete())] += 1;
            for forest in [chosen, Forest::linked(&trees)] {
                assert_eq!(forest.len(), trees.len());
                for _ in 0..30 {
                    // Complete rows, rows with NaN, and shorter rows (absent features are missing).
                    let missing = rng.random_bool(0.5);
                    let full = random_row(&mut rng, features as usize, missing);
                    let row = if rng.random_bool(0.2) { &full[..rng.random_range(0..full.len())] } else { &full[..] };
                    let expected: Vec<f32> = trees.iter().map(|t| t.leaf_value(row)).collect();
                    assert_eq!(leaves(&forest, row), expected, "{row:?}");
                }
                for (i, tree) in trees.iter().enumerate() {
                    let missing = rng.random_bool(0.5);
                    let rows: Vec<Vec<f32>> =
                        (0..8).map(|_| random_row(&mut rng, features as usize, missing)).collect();
                    let rows: [&[f32]; 8] = std::array::from_fn(|lane| rows[lane].as_slice());
                    let complete = forest.complete_rows(&rows);
                    if !missing || !forest.is_complete() {
                        assert_eq!(complete, forest.is_complete(), "rows without NaN are complete ones");
                    }
                    assert_eq!(
                        forest.leaf_values_of_rows(i, rows, complete),
                        rows.map(|row| tree.leaf_value(row)),
                        "tree {i}"
                    );
                }
            }
        }
        assert!(layouts.iter().all(|n| *n > 50), "both layouts chosen often: {layouts:?}");
    }

    #[test]
    fn shallow_forests_are_complete_and_a_long_chain_is_linked() {
        let stump = || Tree::new(vec![Node::split(0, 0.5, 1, 2, true), Node::leaf(1.0), Node::leaf(2.0)], 1).unwrap();
        assert!(Forest::new(&[stump(), stump(), stump()]).unwrap().is_complete());
        // A chain of 40 splits, each with a leaf on the right: 2^40 leaves if completed.
        let mut nodes = Vec::new();
        for i in 0..40 {
            nodes.push(Node::split(0, i as f32, 2 * i + 2, 2 * i + 1, true));
            nodes.push(Node::leaf(i as f32));
        }
        nodes.push(Node::leaf(-1.0));
        let chain = Tree::new(nodes, 1).unwrap();
        let forest = Forest::new(&[stump(), chain]).unwrap();
        assert!(!forest.is_complete());
        assert_eq!(leaves(&forest, &[2.5]), [2.0, 0.0]);
        assert_eq!(leaves(&forest, &[-7.0]), [1.0, -1.0]);
        assert_eq!(leaves(&forest, &[f32::NAN]), [1.0, -1.0]);
    }

    #[test]
    fn linked_siblings_are_side_by_side_and_leaves_lead_to_themselves() {
        // x0 < 0.5 ? (x1 < 2 ? 1 : 2) : 3, numbered depth first: its left split's children are
        // not next to each other there.
        let nodes = vec![
            Node::split(0, 0.5, 1, 4, false),
            Node::split(1, 2.0, 2, 3, true),
            Node::leaf(1.0),
            Node::leaf(2.0),
            Node::leaf(3.0),
        ];
        let Layout::Linked(linked) =
            Forest::linked(&[Tree::new(nodes, 2).unwrap(), Tree::new(vec![Node::leaf(-0.25)], 0).unwrap()]).layout
        else {
            unreachable!()
        };
        let lefts: Vec<u32> = linked.steps.iter().map(|s| s.left).collect();
        assert_eq!(lefts, [1, 3, 2, 3, 4, 5], "root, its split and leaf, the split's leaves, the second tree");
        assert_eq!(linked.roots, [0, 5]);
        assert_eq!(linked.depths, [2, 0]);
        assert_eq!(linked.values, [0.0, 0.0, 3.0, 1.0, 2.0, -0.25]);
        for leaf in [2, 3, 4, 5] {
            for x in [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, 0.0] {
                assert_eq!(linked.next(leaf, &[x, x]), leaf);
            }
        }
    }
}
