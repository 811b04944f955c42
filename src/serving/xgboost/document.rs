//! Reads XGBoost's model document (the same tree of values whether it came from JSON or
//! UBJSON; schema in `doc/model.schema` of dmlc/xgboost) into a checked `Booster`.

use super::doc::Doc;
use super::forest::Forest;
use super::objective::{self, Objective};
use super::tree::{Node, Tree};
use super::{Booster, LoadError, ModelFormat, ModelLimits};

/// A value and where it sits in the document, so errors can name the field.
struct At<'a> {
    value: &'a Doc,
    path: String,
}

impl<'a> At<'a> {
    fn root(value: &'a Doc) -> At<'a> {
        At { value, path: String::new() }
    }

    fn invalid(&self, reason: impl Into<String>) -> LoadError {
        LoadError::Invalid { path: self.path.clone(), reason: reason.into() }
    }

    fn opt(&self, key: &str) -> Option<At<'a>> {
        let value = self.value.get(key)?;
        Some(At { value, path: join(&self.path, key) })
    }

    fn get(&self, key: &str) -> Result<At<'a>, LoadError> {
        if !self.value.is_object() {
            return Err(self.invalid("is not an object"));
        }
        self.opt(key).ok_or_else(|| LoadError::Invalid { path: join(&self.path, key), reason: "is missing".into() })
    }

    fn str(&self) -> Result<&'a str, LoadError> {
        self.value.as_str().ok_or_else(|| self.invalid("is not a string"))
    }

    fn array(&self) -> Result<&'a [Doc], LoadError> {
        self.value.as_list().ok_or_else(|| self.invalid("is not an array of objects or strings"))
    }

    fn len(&self) -> Result<usize, LoadError> {
        self.value.len().ok_or_else(|| self.invalid("is not an array"))
    }

    fn items(&self) -> Result<Vec<At<'a>>, LoadError> {
        Ok(self
            .array()?
            .iter()
            .enumerate()
            .map(|(i, value)| At { value, path: format!("{}[{i}]", self.path) })
            .collect())
    }

    /// XGBoost writes most parameters as strings ("30"); accept plain numbers too.
    fn param_usize(&self) -> Result<usize, LoadError> {
        let parsed = match self.value {
            Doc::Str(s) => s.trim().parse::<usize>().ok(),
            Doc::Int(n) => usize::try_from(*n).ok(),
            _ => None,
        };
        parsed.ok_or_else(|| self.invalid("is not a non-negative integer"))
    }

    fn f32s(&self) -> Result<Vec<f32>, LoadError> {
        match self.value.f32s() {
            Some(Ok(v)) => Ok(v),
            Some(Err(i)) => Err(self.invalid(format!("[{i}] is not a finite number"))),
            None => Err(self.invalid("is not an array")),
        }
    }

    fn i64s(&self) -> Result<Vec<i64>, LoadError> {
        match self.value.integers() {
            Some(Ok(v)) => Ok(v),
            Some(Err(i)) => Err(self.invalid(format!("[{i}] is not an integer"))),
            None => Err(self.invalid("is not an array")),
        }
    }

    /// `default_left` is 0/1 integers in current XGBoost, booleans in some older writers.
    fn flags(&self) -> Result<Vec<bool>, LoadError> {
        let flag = |i: usize, v: i64| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid(format!("[{i}] is not 0, 1, true or false"))),
        };
        match self.value {
            Doc::Bytes(v) => v.iter().enumerate().map(|(i, &b)| flag(i, i64::from(b))).collect(),
            Doc::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Doc::Bool(b) => Ok(*b),
                    Doc::Int(n) => flag(i, *n),
                    _ => Err(self.invalid(format!("[{i}] is not 0, 1, true or false"))),
                })
                .collect(),
            other => match other.integers() {
                Some(Ok(v)) => v.into_iter().enumerate().map(|(i, n)| flag(i, n)).collect(),
                Some(Err(i)) => Err(self.invalid(format!("[{i}] is not 0, 1, true or false"))),
                None => Err(self.invalid("is not an array")),
            },
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

fn unsupported(feature: impl Into<String>) -> LoadError {
    LoadError::Unsupported { feature: feature.into() }
}

pub(super) fn read(doc: &Doc, format: ModelFormat, limits: &ModelLimits) -> Result<Booster, LoadError> {
    let learner = At::root(doc).get("learner")?;

    let objective_name = learner.get("objective")?.get("name")?.str()?.to_owned();
    let Some(objective) = Objective::from_name(&objective_name) else {
        return Err(LoadError::UnsupportedObjective {
            name: objective_name,
            supported: objective::SUPPORTED.join(", "),
        });
    };

    let params = learner.get("learner_model_param")?;
    let num_features = params.get("num_feature")?.param_usize()?;
    let num_class = match params.opt("num_class") {
        Some(v) => v.param_usize()?,
        None => 0,
    };
    let num_target = match params.opt("num_target") {
        Some(v) => v.param_usize()?,
        None => 1,
    };
    for (key, value, limit, setting) in [
        ("num_feature", num_features, limits.max_features, "max_features"),
        ("num_class", num_class, limits.max_classes, "max_classes"),
        ("num_target", num_target, limits.max_targets, "max_targets"),
    ] {
        if value > limit {
            let reason = format!("is {value}, more than {limit}");
            return Err(LoadError::TooLarge { path: join(&params.path, key), reason, setting });
        }
    }
    let num_groups = if objective.is_multiclass() {
        if num_class == 0 {
            return Err(params.invalid(format!("num_class must be at least 1 for `{objective_name}`")));
        }
        num_class
    } else {
        // XGBoost's output length: one margin per class or per target.
        num_class.max(num_target).max(1)
    };

    let base_margins = match params.opt("base_score") {
        Some(at) => base_margins(&at, objective, num_groups)?,
        // Writers that omit base_score used XGBoost's default, 0.5.
        None => {
            let m = objective
                .base_margin(0.5)
                .map_err(|reason| params.invalid(format!("default base_score 0.5 {reason}")))?;
            vec![m; num_groups]
        }
    };

    if let Some(types) = learner.opt("feature_types")
        && types.len()? > 0
        && types.array()?.iter().any(|t| t.as_str() == Some("c"))
    {
        return Err(unsupported("categorical features (`feature_types` contains \"c\")"));
    }

    let booster = learner.get("gradient_booster")?;
    let (model, weights_at) = match booster.get("name")?.str()? {
        "gbtree" => (booster.get("model")?, None),
        "dart" => (booster.get("gbtree")?.get("model")?, Some(booster.get("weight_drop")?)),
        "gblinear" => {
            return Err(unsupported("the `gblinear` booster (only the tree boosters gbtree and dart can be served)"));
        }
        other => return Err(unsupported(format!("the `{other}` booster"))),
    };

    if let Some(enc) = model.opt("cats").and_then(|cats| cats.opt("enc"))
        && enc.len()? > 0
    {
        return Err(unsupported("categorical features (the model has a category encoder)"));
    }

    let trees_at = model.get("trees")?;
    let count = trees_at.len()?;
    if count > limits.max_trees {
        return Err(too_large(&trees_at, format!("holds {count} trees, more than {}", limits.max_trees), "max_trees"));
    }
    let mut nodes_left = limits.max_nodes;
    let trees = trees_at
        .items()?
        .iter()
        .enumerate()
        .map(|(i, at)| read_tree(at, i, num_features, &mut nodes_left, limits.max_nodes))
        .collect::<Result<Vec<_>, _>>()?;

    if let Some(n) = model.opt("gbtree_model_param").and_then(|param| param.opt("num_trees")) {
        let declared = n.param_usize()?;
        if declared != trees.len() {
            return Err(n.invalid(format!("is {declared} but the model holds {} trees", trees.len())));
        }
    }

    let info_at = model.get("tree_info")?;
    let info = info_at.i64s()?;
    if info.len() != trees.len() {
        return Err(info_at.invalid(format!("has {} entries for {} trees", info.len(), trees.len())));
    }
    let mut tree_groups = Vec::with_capacity(info.len());
    for (i, &g) in info.iter().enumerate() {
        match u32::try_from(g) {
            Ok(g) if (g as usize) < num_groups => tree_groups.push(g),
            _ => {
                return Err(
                    info_at.invalid(format!("[{i}] = {g} is not an output of this model (it has {num_groups})"))
                );
            }
        }
    }

    if let Some(indptr_at) = model.opt("iteration_indptr") {
        check_indptr(&indptr_at.i64s()?, trees.len()).map_err(|r| indptr_at.invalid(r))?;
    }

    let tree_weights = match weights_at {
        None => None,
        Some(at) => {
            let weights = at.f32s()?;
            if weights.len() != trees.len() {
                return Err(at.invalid(format!("has {} weights for {} trees", weights.len(), trees.len())));
            }
            Some(weights)
        }
    };

    let forest = Forest::new(&trees).map_err(|reason| too_large(&trees_at, reason, "max_nodes"))?;
    Ok(Booster {
        format,
        objective,
        objective_name,
        num_features,
        num_groups,
        base_margins,
        trees,
        forest,
        tree_groups,
        tree_weights,
    })
}

/// `base_score` is a string: "5E-1" in XGBoost < 3.1, "[5E-1]" or one value per output
/// ("[1E-1,2E-1,7E-1]") in newer versions. Older writers may use a plain number.
fn base_margins(at: &At<'_>, objective: Objective, num_groups: usize) -> Result<Vec<f32>, LoadError> {
    let scores: Vec<f32> = match at.value {
        Doc::Int(_) | Doc::Float(_) => vec![at.value.as_f64().unwrap_or(f64::NAN) as f32],
        Doc::Str(s) => {
            let inner = s.trim();
            let inner = inner.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(inner);
            let mut scores = Vec::new();
            for part in inner.split(',') {
                // Rust parses the decimal straight to float32, as XGBoost does.
                match part.trim().parse::<f32>() {
                    Ok(v) => scores.push(v),
                    Err(_) => {
                        return Err(at.invalid(format!("{s:?} is not a number or a list of numbers")));
                    }
                }
            }
            scores
        }
        _ => return Err(at.invalid("is not a string or a number")),
    };
    let scores = match scores.len() {
        1 => vec![scores[0]; num_groups],
        n if n == num_groups => scores,
        n => {
            return Err(at.invalid(format!("has {n} values but the model has {num_groups} outputs")));
        }
    };
    scores
        .into_iter()
        .map(|s| objective.base_margin(s).map_err(|reason| at.invalid(format!("value {s} {reason}"))))
        .collect()
}

fn check_indptr(indptr: &[i64], n_trees: usize) -> Result<(), String> {
    if indptr.first() != Some(&0) {
        return Err("must start at 0".into());
    }
    if indptr.windows(2).any(|w| w[0] > w[1]) {
        return Err("must not decrease".into());
    }
    if indptr.last().and_then(|&n| usize::try_from(n).ok()) != Some(n_trees) {
        return Err(format!("must end at the number of trees ({n_trees})"));
    }
    Ok(())
}

fn too_large(at: &At<'_>, reason: String, setting: &'static str) -> LoadError {
    LoadError::TooLarge { path: at.path.clone(), reason, setting }
}

fn read_tree(
    at: &At<'_>,
    index: usize,
    num_features: usize,
    nodes_left: &mut usize,
    max_nodes: usize,
) -> Result<Tree, LoadError> {
    if at.opt("leaf_weights").is_some() {
        return Err(vector_leaf(index));
    }
    let mut num_nodes = None;
    if let Some(param) = at.opt("tree_param") {
        if let Some(size) = param.opt("size_leaf_vector")
            && size.param_usize()? > 1
        {
            return Err(vector_leaf(index));
        }
        if let Some(n) = param.opt("num_nodes") {
            num_nodes = Some(n.param_usize()?);
        }
    }
    if let Some(split_type) = at.opt("split_type")
        && split_type.i64s()?.iter().any(|&t| t != 0)
    {
        return Err(unsupported(format!("categorical splits (tree {index} has one)")));
    }

    let left_at = at.get("left_children")?;
    let right_at = at.get("right_children")?;
    let feature_at = at.get("split_indices")?;
    let cond_at = at.get("split_conditions")?;
    let default_at = at.get("default_left")?;
    let left = left_at.i64s()?;
    let right = right_at.i64s()?;
    let features = feature_at.i64s()?;
    let conds = cond_at.f32s()?;
    let default_left = default_at.flags()?;

    let n = num_nodes.unwrap_or(left.len());
    match nodes_left.checked_sub(n) {
        Some(left) => *nodes_left = left,
        None => {
            return Err(too_large(at, format!("takes the model past {max_nodes} nodes in all"), "max_nodes"));
        }
    }
    for (field, len) in [
        (&left_at, left.len()),
        (&right_at, right.len()),
        (&feature_at, features.len()),
        (&cond_at, conds.len()),
        (&default_at, default_left.len()),
    ] {
        if len != n {
            return Err(field.invalid(format!("has {len} entries for {n} nodes")));
        }
    }

    // u32::MAX is the leaf marker inside `Node`, so it is not a valid index here.
    let index_u32 = |v: i64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        if left[i] == -1 {
            nodes.push(Node::leaf(conds[i]));
            continue;
        }
        let (Some(l), Some(r)) = (index_u32(left[i]), index_u32(right[i])) else {
            return Err(at.invalid(format!("node {i} has invalid children ({}, {})", left[i], right[i])));
        };
        let Some(feature) = index_u32(features[i]) else {
            return Err(feature_at.invalid(format!("[{i}] = {} is not a feature index", features[i])));
        };
        nodes.push(Node::split(feature, conds[i], l, r, default_left[i]));
    }
    let tree = Tree::new(nodes, num_features).map_err(|reason| at.invalid(reason))?;
    // Covers are for explanations only: a model without them (or with odd ones) still predicts.
    match at.opt("sum_hessian").map(|h| h.f32s()) {
        Some(Ok(covers)) => Ok(tree.with_covers(covers)),
        _ => Ok(tree),
    }
}

fn vector_leaf(index: usize) -> LoadError {
    unsupported(format!("vector-leaf trees (multi_strategy=\"multi_output_tree\", tree {index})"))
}
