//! A pure-Rust evaluator for XGBoost tree models saved with `booster.save_model(...)` as JSON
//! (`.json`) or UBJSON (`.ubj`), so the local target can serve SageMaker-style XGBoost models
//! without the C++ library.
//!
//! The numerics follow XGBoost's CPU predictor, not just its maths: features and split
//! conditions are float32, `x < cond` goes left and missing values (NaN) follow the node's
//! default direction, leaf values are summed in float32 in tree order starting from the base
//! margin, and the objective's float32 transform is applied last. The fixture tests
//! (`tests/it/xgboost.rs`) check every supported objective against xgboost's own predictions.
//!
//! Refused with a [`LoadError`] rather than answered wrongly: pickled boosters, the legacy
//! binary format, `gblinear`, categorical features or splits, vector-leaf trees
//! (`multi_strategy="multi_output_tree"`), and objectives not in the supported list.

mod doc;
mod document;
mod forest;
mod objective;
pub(crate) mod shap;
mod tree;
mod ubjson;

use std::fmt;

use forest::Forest;
use objective::Objective;
use tree::Tree;

const RESAVE_HINT: &str = "load it with xgboost in Python and re-save it with \
                           `booster.save_model(\"model.json\")`";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the model file is empty")]
    Empty,
    #[error(
        "the model file is a Python pickle, not an XGBoost model file; pickled boosters cannot \
         be loaded safely outside Python: {RESAVE_HINT}"
    )]
    Pickle,
    #[error(
        "the model file is neither XGBoost JSON nor UBJSON (XGBoost's legacy binary format, \
         as in `.bin` or `.model` files written by older xgboost versions, is not supported): \
         {RESAVE_HINT}"
    )]
    LegacyBinary,
    #[error(
        "the model file is gzip-compressed (a model.tar.gz archive?); extract the model file \
         from it first"
    )]
    Compressed,
    #[error("the model file is not valid JSON: {0}")]
    Json(String),
    #[error("the model file is not valid UBJSON (at byte {offset}): {reason}")]
    Ubjson { offset: usize, reason: String },
    #[error("invalid XGBoost model: `{path}` {reason}")]
    Invalid { path: String, reason: String },
    #[error("unsupported XGBoost model: {feature} cannot be evaluated by the built-in evaluator")]
    Unsupported { feature: String },
    #[error("unsupported XGBoost objective `{name}` (supported: {supported})")]
    UnsupportedObjective { name: String, supported: String },
    #[error("the model is beyond this server's limits: `{path}` {reason} (serving.model_limits.{setting})")]
    TooLarge { path: String, reason: String, setting: &'static str },
}

/// Bounds a model must stay within to be loaded; an untrusted file cannot make the process
/// allocate more than they allow (`serving.model_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelLimits {
    /// `num_class`.
    pub max_classes: usize,
    /// `num_target`.
    pub max_targets: usize,
    pub max_trees: usize,
    /// Nodes of all trees together.
    pub max_nodes: usize,
    /// `num_feature`.
    pub max_features: usize,
    /// Memory the decoded document may take before it becomes trees.
    pub max_memory_bytes: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            max_classes: 10_000,
            max_targets: 10_000,
            max_trees: 1_000_000,
            max_nodes: 200_000_000,
            max_features: 10_000_000,
            max_memory_bytes: 4 * 1024 * 1024 * 1024,
        }
    }
}

/// How the model file was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    Json,
    Ubjson,
}

/// A loaded XGBoost tree ensemble. Immutable after [`Booster::load`], so one instance can
/// serve concurrent requests (it is `Send + Sync`).
pub struct Booster {
    format: ModelFormat,
    objective: Objective,
    objective_name: String,
    num_features: usize,
    /// Margins per row: `num_class` for multi-class models, `num_target` otherwise.
    num_groups: usize,
    /// `base_score` turned into margin space, one per group.
    base_margins: Vec<f32>,
    /// As the model file has them (TreeSHAP walks these).
    trees: Vec<Tree>,
    /// The same trees laid out for prediction.
    forest: Forest,
    /// Output group of each tree (`tree_info`).
    tree_groups: Vec<u32>,
    /// DART's per-tree `weight_drop`.
    tree_weights: Option<Vec<f32>>,
}

impl fmt::Debug for Booster {
    // The trees are too large to print; a summary identifies the model.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Booster")
            .field("format", &self.format)
            .field("objective", &self.objective_name)
            .field("num_features", &self.num_features)
            .field("num_outputs", &self.num_outputs())
            .field("num_trees", &self.trees.len())
            .field("dart", &self.tree_weights.is_some())
            .finish()
    }
}

impl Booster {
    /// Detects the format: XGBoost JSON or UBJSON. Pickled boosters (0x80 protocol byte) and the
    /// legacy binary format give a clear error that says to re-save with
    /// `booster.save_model("model.json")`.
    pub fn load(bytes: &[u8]) -> Result<Booster, LoadError> {
        Self::load_within(bytes, &ModelLimits::default())
    }

    /// [`Booster::load`] within `limits`.
    pub fn load_within(bytes: &[u8], limits: &ModelLimits) -> Result<Booster, LoadError> {
        let format = detect_format(bytes)?;
        let doc = match format {
            ModelFormat::Json => {
                // Every JSON value may become one document node: refuse what cannot fit before
                // building any of it.
                let bound = doc::json_value_bound(bytes).saturating_mul(std::mem::size_of::<doc::Doc>());
                if bound > limits.max_memory_bytes {
                    return Err(LoadError::TooLarge {
                        path: String::new(),
                        reason: format!(
                            "may need up to {bound} bytes of memory to decode, more than {}",
                            limits.max_memory_bytes
                        ),
                        setting: "max_memory_bytes",
                    });
                }
                serde_json::from_slice(bytes).map_err(|e| LoadError::Json(e.to_string()))?
            }
            ModelFormat::Ubjson => ubjson::parse(bytes, limits.max_memory_bytes)
                .map_err(|e| LoadError::Ubjson { offset: e.offset, reason: e.reason })?,
        };
        document::read(&doc, format, limits)
    }

    pub fn format(&self) -> ModelFormat {
        self.format
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// 1 for scalar objectives; num_class for multi:softprob; 1 for multi:softmax (class index);
    /// num_target for multi-output regression.
    pub fn num_outputs(&self) -> usize {
        self.objective.n_outputs(self.num_groups)
    }

    /// Values appended by [`Booster::predict_margin_row`]: one per class or target (so
    /// num_class for multi:softmax too).
    pub fn num_margin_outputs(&self) -> usize {
        self.num_groups
    }

    /// Heap bytes the model holds (its trees, mostly), for bounding the models kept loaded.
    pub fn memory_bytes(&self) -> u64 {
        let trees: usize = self.trees.iter().map(Tree::memory_bytes).sum::<usize>() + self.forest.memory_bytes();
        let extra = self.tree_groups.capacity() * 4 + self.tree_weights.as_ref().map_or(0, |w| w.capacity() * 4);
        (trees + extra + self.base_margins.capacity() * 4 + std::mem::size_of::<Self>()) as u64
    }

    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    pub fn objective(&self) -> &str {
        &self.objective_name
    }

    /// features: one row, f32::NAN = missing; len must equal num_features() (caller checks;
    /// absent trailing features would count as missing, as in a sparse XGBoost row).
    /// Appends num_outputs() values to `out`, already transformed by the objective
    /// (probabilities, class index, exp for poisson...).
    pub fn predict_row(&self, features: &[f32], out: &mut Vec<f64>) {
        self.with_margins(features, |margins| self.objective.transform(margins, out));
    }

    /// Exact SHAP values of one row in margin space (TreeSHAP; xgboost's `pred_contribs`
    /// layout): per output group, one value per feature and then the bias (the base margin plus
    /// each tree's cover-weighted mean). Each group's values sum to its margin. `None` when the
    /// model file keeps no node covers (`sum_hessian`), without which SHAP values are undefined.
    /// Call [`Self::shap_depth_ok`] first: a deeper tree than TreeSHAP walks is refused there.
    pub fn contributions(&self, features: &[f32]) -> Option<Vec<f64>> {
        let width = self.num_features + 1;
        let mut out = vec![0.0; self.num_groups * width];
        for (group, base) in self.base_margins.iter().enumerate() {
            out[group * width + self.num_features] = f64::from(*base);
        }
        for (index, (tree, &group)) in self.trees.iter().zip(&self.tree_groups).enumerate() {
            let scale = self.tree_weights.as_ref().map_or(1.0, |w| f64::from(w[index]));
            let slot = &mut out[group as usize * width..(group as usize + 1) * width];
            if !shap::add_tree(tree, features, scale, slot) {
                return None;
            }
        }
        Some(out)
    }

    /// Whether every tree is shallow enough for TreeSHAP's recursive walk
    /// ([`shap::MAX_DEPTH`]): a model file is untrusted, and a chain of a million splits would
    /// overflow the stack where prediction, a loop, does not care.
    pub fn shap_depth_ok(&self) -> bool {
        self.trees.iter().all(|t| t.depth() <= shap::MAX_DEPTH)
    }

    /// Appends the untransformed margins (num_margin_outputs() values), as xgboost's
    /// `predict(..., output_margin=True)`.
    pub fn predict_margin_row(&self, features: &[f32], out: &mut Vec<f64>) {
        self.with_margins(features, |margins| {
            out.extend(margins.iter().map(|&m| f64::from(m)));
        });
    }

    /// [`Self::predict_row`] for `values.len() / num_features()` rows at once (row-major), with
    /// the same results: each row's margins still add the trees in tree order. Blocks of rows
    /// go through one tree at a time, so the tree stays in cache and the walks of different rows
    /// overlap in the processor.
    pub fn predict_rows(&self, values: &[f32], out: &mut Vec<f64>) {
        const BLOCK: usize = 64;
        const LANES: usize = 8;
        let cols = self.num_features.max(1);
        let groups = self.num_groups;
        let mut margins = vec![0f32; BLOCK * groups];
        for block in values.chunks(BLOCK * cols) {
            let rows = block.len() / cols;
            for row in margins.chunks_mut(groups).take(rows) {
                row.copy_from_slice(&self.base_margins);
            }
            let block_rows: Vec<&[f32]> = block.chunks(cols).collect();
            let lanes = block_rows.chunks_exact(LANES);
            let rest = lanes.remainder();
            let complete: Vec<bool> = lanes.clone().map(|rows| self.forest.complete_rows(rows)).collect();
            for (index, group) in self.tree_groups.iter().map(|&g| g as usize).enumerate() {
                // The tree's group and weight read once for all its rows (the batch's inner loop).
                let weight = self.tree_weights.as_ref().map(|w| w[index]);
                for (lane_block, rows) in lanes.clone().enumerate() {
                    let rows: [&[f32]; LANES] = rows.try_into().expect("chunks_exact gives full chunks");
                    let leaves = self.forest.leaf_values_of_rows(index, rows, complete[lane_block]);
                    for (lane, leaf) in leaves.into_iter().enumerate() {
                        margins[(lane_block * LANES + lane) * groups + group] += match weight {
                            Some(w) => leaf * w,
                            None => leaf,
                        };
                    }
                }
            }
            // Rows short of a full set of lanes go down several trees at once instead.
            let done = block_rows.len() - rest.len();
            for (offset, features) in rest.iter().enumerate() {
                let row = done + offset;
                self.accumulate(features, &mut margins[row * groups..(row + 1) * groups]);
            }
            for row in margins.chunks_mut(groups).take(rows) {
                self.objective.transform(row, out);
            }
        }
    }

    fn with_margins(&self, features: &[f32], f: impl FnOnce(&mut [f32])) {
        // Most models have one output; keep that path free of allocation.
        if self.num_groups == 1 {
            let mut margin = [self.base_margins[0]];
            self.accumulate(features, &mut margin);
            f(&mut margin);
        } else {
            let mut margins = self.base_margins.clone();
            self.accumulate(features, &mut margins);
            f(&mut margins);
        }
    }

    /// Adds each tree's leaf to its group's margin in float32, in tree order, as XGBoost does;
    /// a different order or precision changes the last bits.
    fn accumulate(&self, features: &[f32], margins: &mut [f32]) {
        if let ([margin], None) = (&mut *margins, &self.tree_weights) {
            // One output, no dart weights (most models): no group to look up per tree.
            self.forest.for_each_leaf(features, |_, leaf| *margin += leaf);
        } else {
            self.forest.for_each_leaf(features, |index, leaf| self.add_leaf(index, leaf, margins));
        }
    }

    /// Tree `index`'s leaf added to its group's margin, weighted for a dart booster.
    fn add_leaf(&self, index: usize, leaf: f32, margins: &mut [f32]) {
        let group = self.tree_groups[index] as usize;
        margins[group] += match &self.tree_weights {
            Some(weights) => leaf * weights[index],
            None => leaf,
        };
    }
}

fn detect_format(bytes: &[u8]) -> Result<ModelFormat, LoadError> {
    let Some(&first) = bytes.first() else {
        return Err(LoadError::Empty);
    };
    // Pickle protocols 2-5 open with the PROTO opcode; that is how the SageMaker XGBoost
    // container's `pkl.dump(booster)` models start.
    if first == 0x80 {
        return Err(LoadError::Pickle);
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(LoadError::Compressed);
    }
    let Some(open) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(LoadError::Empty);
    };
    if bytes[open] != b'{' {
        return Err(LoadError::LegacyBinary);
    }
    // After `{`, UBJSON has the type marker of the first key's length (or a container header
    // or no-op); JSON has whitespace, a quote or `}`, never one of these letters.
    Ok(match bytes.get(open + 1) {
        Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#' | b'N') => ModelFormat::Ubjson,
        _ => ModelFormat::Json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A one-feature model: tree 0 is `x0 < 0.5 ? -1 : 1` (missing goes left), tree 1 a leaf.
    fn model(objective: &str) -> Value {
        json!({
            "learner": {
                "attributes": {},
                "feature_names": [],
                "feature_types": [],
                "gradient_booster": {
                    "model": {
                        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "2"},
                        "iteration_indptr": [0, 1, 2],
                        "tree_info": [0, 0],
                        "trees": [tree_json(), leaf_json(0.25)]
                    },
                    "name": "gbtree"
                },
                "learner_model_param": {
                    "base_score": "[5E-1]",
                    "boost_from_average": "1",
                    "num_class": "0",
                    "num_feature": "1",
                    "num_target": "1"
                },
                "objective": {"name": objective}
            },
            "version": [3, 2, 0]
        })
    }

    fn tree_json() -> Value {
        json!({
            "base_weights": [0.0, -1.0, 1.0],
            "categories": [], "categories_nodes": [], "categories_segments": [],
            "categories_sizes": [],
            "default_left": [1, 0, 0],
            "id": 0,
            "left_children": [1, -1, -1],
            "loss_changes": [1.0, 0.0, 0.0],
            "parents": [2147483647, 0, 0],
            "right_children": [2, -1, -1],
            "split_conditions": [0.5, -1.0, 1.0],
            "split_indices": [0, 0, 0],
            "split_type": [0, 0, 0],
            "sum_hessian": [2.0, 1.0, 1.0],
            "tree_param": {"num_deleted": "0", "num_feature": "1", "num_nodes": "3",
                           "size_leaf_vector": "1"}
        })
    }

    fn leaf_json(value: f32) -> Value {
        json!({
            "default_left": [0], "left_children": [-1], "right_children": [-1],
            "split_conditions": [value], "split_indices": [0], "split_type": [0],
            "tree_param": {"num_nodes": "1", "size_leaf_vector": "1"}
        })
    }

    fn load(doc: &serde_json::Value) -> Result<Booster, LoadError> {
        Booster::load(&serde_json::to_vec(doc).unwrap())
    }

    fn set(doc: &mut Value, pointer: &str, value: Value) {
        *doc.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = value;
    }

    fn predict(b: &Booster, row: &[f32]) -> Vec<f64> {
        let mut out = Vec::new();
        b.predict_row(row, &mut out);
        out
    }

    fn margin(b: &Booster, row: &[f32]) -> Vec<f64> {
        let mut out = Vec::new();
        b.predict_margin_row(row, &mut out);
        out
    }

    fn err(doc: &Value) -> String {
        load(doc).unwrap_err().to_string()
    }

    #[test]
    fn loads_and_predicts_a_hand_written_model() {
        let b = load(&model("reg:squarederror")).unwrap();
        assert_eq!(b.format(), ModelFormat::Json);
        assert_eq!((b.num_features(), b.num_outputs(), b.num_trees()), (1, 1, 2));
        assert_eq!(b.objective(), "reg:squarederror");
        assert_eq!(predict(&b, &[0.0]), [0.5 - 1.0 + 0.25]);
        assert_eq!(predict(&b, &[0.5]), [0.5 + 1.0 + 0.25]);
        assert_eq!(predict(&b, &[f32::NAN]), [0.5 - 1.0 + 0.25]);
        // Appends rather than overwrites.
        let mut out = vec![7.0];
        b.predict_row(&[1.0], &mut out);
        assert_eq!(out, [7.0, 1.75]);
    }

    #[test]
    fn logistic_base_score_is_a_probability() {
        let b = load(&model("binary:logistic")).unwrap();
        // base 0.5 is margin 0: margin = 0 + 1 + 0.25.
        assert_eq!(margin(&b, &[1.0]), [1.25]);
        let p = predict(&b, &[1.0])[0];
        assert!((p - 1.0 / (1.0 + (-1.25f64).exp())).abs() < 1e-7, "{p}");
    }

    #[test]
    fn base_score_in_every_spelling() {
        for (spelling, expected) in
            [(json!("5E-1"), 0.5), (json!("[2.5E0]"), 2.5), (json!(" [ 1.5 ] "), 1.5), (json!(3.0), 3.0)]
        {
            let mut doc = model("reg:squarederror");
            set(&mut doc, "/learner/learner_model_param/base_score", spelling.clone());
            let b = load(&doc).unwrap();
            assert_eq!(margin(&b, &[1.0]), [expected + 1.25], "{spelling}");
        }
        let mut doc = model("reg:squarederror");
        doc["learner"]["learner_model_param"].as_object_mut().unwrap().remove("base_score");
        assert_eq!(margin(&load(&doc).unwrap(), &[1.0]), [1.75], "default 0.5");

        let mut doc = model("binary:logistic");
        set(&mut doc, "/learner/learner_model_param/base_score", json!("[1E0]"));
        assert!(err(&doc).contains("between 0 and 1"), "{}", err(&doc));
        set(&mut doc, "/learner/learner_model_param/base_score", json!("[a]"));
        assert!(err(&doc).contains("base_score"), "{}", err(&doc));
        set(&mut doc, "/learner/learner_model_param/base_score", json!("[1E-1,2E-1]"));
        assert!(err(&doc).contains("2 values"), "{}", err(&doc));
    }

    #[test]
    fn old_files_without_iteration_indptr_or_split_type_load() {
        let mut doc = model("reg:squarederror");
        let m = doc["learner"]["gradient_booster"]["model"].as_object_mut().unwrap();
        m.remove("iteration_indptr");
        for t in m["trees"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            t.remove("split_type");
            // Some old writers used booleans for default_left.
            let flags: Vec<bool> = t["default_left"].as_array().unwrap().iter().map(|v| v == 1).collect();
            t.insert("default_left".into(), json!(flags));
        }
        let b = load(&doc).unwrap();
        assert_eq!(predict(&b, &[f32::NAN]), [-0.25]);
    }

    #[test]
    fn multiclass_uses_tree_info_and_softmax() {
        let mut doc = model("multi:softprob");
        set(&mut doc, "/learner/learner_model_param/num_class", json!("2"));
        set(&mut doc, "/learner/gradient_booster/model/tree_info", json!([0, 1]));
        set(&mut doc, "/learner/gradient_booster/model/iteration_indptr", json!([0, 2]));
        let b = load(&doc).unwrap();
        assert_eq!((b.num_outputs(), b.num_margin_outputs()), (2, 2));
        assert_eq!(margin(&b, &[1.0]), [1.5, 0.75]);
        let p = predict(&b, &[1.0]);
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6 && p[0] > p[1], "{p:?}");

        set(&mut doc, "/learner/objective/name", json!("multi:softmax"));
        let b = load(&doc).unwrap();
        assert_eq!((b.num_outputs(), b.num_margin_outputs()), (1, 2));
        assert_eq!(predict(&b, &[1.0]), [0.0]);
        assert_eq!(predict(&b, &[0.0]), [1.0]);

        set(&mut doc, "/learner/learner_model_param/num_class", json!("0"));
        assert!(err(&doc).contains("num_class"), "{}", err(&doc));
    }

    #[test]
    fn dart_scales_each_tree_by_its_weight() {
        let mut doc = model("reg:squarederror");
        let inner = doc["learner"]["gradient_booster"].clone();
        set(&mut doc, "/learner/gradient_booster", json!({"name": "dart", "gbtree": inner, "weight_drop": [0.5, 2.0]}));
        let b = load(&doc).unwrap();
        assert_eq!(margin(&b, &[1.0]), [0.5 + 0.5 + 0.5]);

        set(&mut doc, "/learner/gradient_booster/weight_drop", json!([1.0]));
        assert!(err(&doc).contains("weight_drop"), "{}", err(&doc));
    }

    #[test]
    fn declared_sizes_beyond_the_limits_are_refused_before_allocating() {
        let bytes = |doc: &Value| serde_json::to_vec(doc).unwrap();
        let within = |doc: &Value, limits: ModelLimits| Booster::load_within(&bytes(doc), &limits);
        let too_large = |result: Result<Booster, LoadError>, setting: &str| match result {
            Err(e @ LoadError::TooLarge { .. }) => assert!(e.to_string().contains(setting), "{e}"),
            other => panic!("expected a {setting} refusal, got {other:?}"),
        };
        let doc = model("reg:squarederror");
        let defaults = ModelLimits::default();
        within(&doc, defaults).unwrap();
        too_large(within(&doc, ModelLimits { max_trees: 1, ..defaults }), "max_trees");
        too_large(within(&doc, ModelLimits { max_nodes: 3, ..defaults }), "max_nodes");
        too_large(within(&doc, ModelLimits { max_features: 0, ..defaults }), "max_features");
        too_large(within(&doc, ModelLimits { max_memory_bytes: 1000, ..defaults }), "max_memory_bytes");

        let mut huge = model("multi:softprob");
        set(&mut huge, "/learner/learner_model_param/num_class", json!((1u64 << 40).to_string()));
        too_large(Booster::load(&bytes(&huge)), "serving.model_limits.max_classes");
        let mut targets = model("reg:squarederror");
        set(&mut targets, "/learner/learner_model_param/num_target", json!("100000"));
        too_large(Booster::load(&bytes(&targets)), "max_targets");
    }

    #[test]
    fn unsupported_models_are_named() {
        let mut doc = model("reg:squarederror");
        set(&mut doc, "/learner/gradient_booster/model/trees/0/split_type", json!([1, 0, 0]));
        assert!(err(&doc).contains("categorical splits (tree 0"), "{}", err(&doc));

        let mut doc = model("reg:squarederror");
        set(&mut doc, "/learner/feature_types", json!(["c"]));
        assert!(err(&doc).contains("categorical features"), "{}", err(&doc));

        let mut doc = model("reg:squarederror");
        set(&mut doc, "/learner/gradient_booster/model/trees/1/tree_param/size_leaf_vector", json!("2"));
        assert!(err(&doc).contains("vector-leaf trees"), "{}", err(&doc));

        let mut doc = model("reg:squarederror");
        set(&mut doc, "/learner/gradient_booster", json!({"name": "gblinear", "model": {"weights": [0.1, 0.2]}}));
        assert!(err(&doc).contains("gblinear"), "{}", err(&doc));

        let doc = model("reg:madeup");
        let e = err(&doc);
        assert!(e.contains("`reg:madeup`") && e.contains("binary:logistic"), "{e}");
    }

    #[test]
    fn inconsistent_models_name_the_field() {
        let cases: [(&str, Value, &str); 8] = [
            ("/learner/gradient_booster/model/tree_info", json!([0]), "tree_info"),
            ("/learner/gradient_booster/model/tree_info", json!([0, 3]), "not an output"),
            ("/learner/gradient_booster/model/iteration_indptr", json!([0, 1]), "iteration_indptr"),
            ("/learner/gradient_booster/model/gbtree_model_param/num_trees", json!("3"), "num_trees"),
            ("/learner/gradient_booster/model/trees/0/split_indices", json!([4, 0, 0]), "feature 4"),
            ("/learner/gradient_booster/model/trees/0/left_children", json!([1, -1]), "trees[0].left_children"),
            ("/learner/gradient_booster/model/trees/0/right_children", json!([0, -1, -1]), "reached twice"),
            ("/learner/gradient_booster/model/trees/0/split_conditions", json!([0.5, "x", 1.0]), "split_conditions"),
        ];
        for (pointer, value, expected) in cases {
            let mut doc = model("reg:squarederror");
            set(&mut doc, pointer, value);
            let e = err(&doc);
            assert!(e.contains(expected), "{pointer}: {e}");
        }
        let mut doc = model("reg:squarederror");
        doc["learner"].as_object_mut().unwrap().remove("objective");
        assert!(err(&doc).contains("`learner.objective` is missing"), "{}", err(&doc));
        assert!(err(&json!({"model": 1})).contains("`learner` is missing"));
    }

    #[test]
    fn format_detection() {
        assert!(matches!(Booster::load(b""), Err(LoadError::Empty)));
        assert!(matches!(Booster::load(b"  \n"), Err(LoadError::Empty)));
        assert!(matches!(Booster::load(b"\x80\x04\x95"), Err(LoadError::Pickle)));
        assert!(matches!(Booster::load(b"\x1f\x8b\x08"), Err(LoadError::Compressed)));
        assert!(matches!(Booster::load(b"binf\0\0\0?"), Err(LoadError::LegacyBinary)));
        assert!(matches!(Booster::load(b"{\"learner\": 1"), Err(LoadError::Json(_))));
        assert!(matches!(Booster::load(b"{L\x00"), Err(LoadError::Ubjson { .. })));
        assert_eq!(detect_format(b" \n{ \"a\": 1}").unwrap(), ModelFormat::Json);
        assert_eq!(detect_format(b"{}").unwrap(), ModelFormat::Json);
        assert_eq!(detect_format(b"{L\x00").unwrap(), ModelFormat::Ubjson);
        assert_eq!(detect_format(b"{i\x01a}").unwrap(), ModelFormat::Ubjson);
    }

    #[test]
    fn pickle_and_legacy_messages_say_how_to_resave() {
        for e in [LoadError::Pickle, LoadError::LegacyBinary] {
            assert!(e.to_string().contains("booster.save_model(\"model.json\")"), "{e}");
        }
    }

    #[test]
    fn booster_is_send_sync_and_debug_is_short() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Booster>();
        let dbg = format!("{:?}", load(&model("reg:squarederror")).unwrap());
        assert!(dbg.contains("num_trees: 2") && dbg.len() < 200, "{dbg}");
    }
}
