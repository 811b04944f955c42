//! The JSON-object fields of the Clarify monitors. The solution passes them to
//! `sagemaker.clarify.BiasConfig(**bias_config)` and friends, so an unknown argument or a wrong
//! type fails there, after deployment; here it fails at the API.

use serde_json::{Map, Value, json};

use super::body::Issues;
use super::errors::FieldErrorCode;
use super::scalars::{Invalid, boolean, integer, probability, quoted, string};
use crate::domain::spec::{ModelScores, ShapBaseline, ShapConfig};
use crate::domain::values::AssetKey;

const BIAS_CONFIG_KEYS: [&str; 4] =
    ["label_values_or_threshold", "facet_name", "facet_values_or_threshold", "group_name"];
const PREDICTED_LABEL_KEYS: [&str; 4] = ["label", "probability", "probability_threshold", "label_headers"];
/// `SHAPConfig`'s arguments, and ours: `algorithm` (`kernel`, Clarify's; `tree`, exact TreeSHAP
/// for tree models on the local target).
const SHAP_CONFIG_KEYS: [&str; 11] = [
    "algorithm",
    "baseline",
    "num_samples",
    "agg_method",
    "use_logit",
    "save_local_shap_values",
    "seed",
    "num_clusters",
    "text_config",
    "image_config",
    "features_to_explain",
];

/// Checks the shape of one argument.
type Check = fn(&Value) -> Result<(), Invalid>;

/// `bias_config`: `label_values_or_threshold` and `facet_name` required.
pub(super) fn bias_config(v: &Value) -> Result<Map<String, Value>, Issues> {
    let map = object(v)?;
    let mut issues = Issues::default();
    unknown_keys(map, &BIAS_CONFIG_KEYS, "BiasConfig", &mut issues);
    for key in ["label_values_or_threshold", "facet_name"] {
        if !map.contains_key(key) {
            issues.push(&[key], required());
        }
    }
    let checks: [(&str, Check); 4] = [
        ("label_values_or_threshold", values_or_threshold),
        ("facet_name", facet_name),
        ("facet_values_or_threshold", facet_values_or_threshold),
        ("group_name", |v| string(v).map(drop)),
    ];
    for (key, check) in checks {
        if let Some(Err(invalid)) = map.get(key).map(check) {
            issues.push(&[key], invalid);
        }
    }
    issues.or_ok(map.clone())
}

/// `model_predicted_label_config`: which output is the label or the probability.
pub(super) fn predicted_label_config(v: &Value) -> Result<Map<String, Value>, Issues> {
    let map = object(v)?;
    let mut issues = Issues::default();
    unknown_keys(map, &PREDICTED_LABEL_KEYS, "ModelPredictedLabelConfig", &mut issues);
    for key in ["label", "probability"] {
        if let Some(Err(invalid)) = map.get(key).map(index_or_name) {
            issues.push(&[key], invalid);
        }
    }
    if let Some(Err(invalid)) = map.get("probability_threshold").map(probability) {
        issues.push(&["probability_threshold"], invalid);
    }
    if let Some(Err(invalid)) = map.get("label_headers").map(strings) {
        issues.push(&["label_headers"], invalid);
    }
    issues.or_ok(map.clone())
}

/// `shap_config`: a string `baseline` is an asset key; integers and booleans are normalised
/// from their string forms.
pub(super) fn shap_config(v: &Value) -> Result<ShapConfig, Issues> {
    let map = object(v)?;
    if map.is_empty() {
        // The solution turns `{}` into an empty `SHAPConfig` parameter, which the template rejects.
        return Err(Invalid::value("must not be empty: give at least a `baseline` or `num_clusters`").into());
    }
    let mut issues = Issues::default();
    unknown_keys(map, &SHAP_CONFIG_KEYS, "SHAPConfig", &mut issues);
    let mut baseline = None;
    let mut options = Map::new();
    for (key, value) in map {
        let checked = match key.as_str() {
            "baseline" => match shap_baseline(value) {
                Ok(b) => {
                    baseline = Some(b);
                    continue;
                }
                Err(invalid) => Err(invalid),
            },
            "num_samples" | "num_clusters" => integer(value, 1..=u32::MAX).map(|n| json!(n)),
            "seed" => integer(value, 0..=u32::MAX).map(|n| json!(n)),
            "use_logit" | "save_local_shap_values" => boolean(value).map(|b| json!(b)),
            "agg_method" => one_of(value, &["mean_abs", "median", "mean_sq"]).map(|_| value.clone()),
            "algorithm" => one_of(value, &["kernel", "tree"]).map(|_| value.clone()),
            "text_config" | "image_config" => object(value).map(|_| value.clone()),
            "features_to_explain" => {
                value.as_array().map(|_| value.clone()).ok_or_else(|| Invalid::expected("an array", value))
            }
            _ => continue,
        };
        match checked {
            Ok(normalised) => {
                options.insert(key.clone(), normalised);
            }
            Err(invalid) => issues.push(&[key], invalid),
        }
    }
    issues.or_ok(ShapConfig { baseline, options })
}

fn shap_baseline(v: &Value) -> Result<ShapBaseline, Invalid> {
    match v {
        Value::String(s) => Ok(ShapBaseline::AssetKey(AssetKey::parse(s)?)),
        Value::Array(rows) if !rows.is_empty() => Ok(ShapBaseline::Rows(rows.clone())),
        Value::Array(_) => Err(Invalid::value("must not be an empty list")),
        _ => Err(Invalid::expected("the key of a CSV in the assets bucket, or a list of rows", v)),
    }
}

/// `model_scores`: an output index, or a JSONPath/header name.
pub(super) fn model_scores(v: &Value) -> Result<ModelScores, Invalid> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(ModelScores::Index)
            .ok_or_else(|| Invalid::value(format!("{n} is not a valid output index"))),
        Value::String(s) if !s.trim().is_empty() => Ok(ModelScores::Name(s.trim().to_string())),
        Value::String(_) => Err(Invalid::value("must not be empty")),
        _ => Err(Invalid::expected("an output index or a JSONPath", v)),
    }
}

/// A JSON object. The solution's own test fixtures pass these as JSON text, which its Lambda
/// then cannot use, so a string gets a pointed message.
pub(super) fn object(v: &Value) -> Result<&Map<String, Value>, Invalid> {
    match v {
        Value::Object(map) => Ok(map),
        Value::String(_) => {
            Err(Invalid::expected("a JSON object (the object itself, not its JSON text in a string)", v))
        }
        _ => Err(Invalid::expected("a JSON object", v)),
    }
}

pub(super) fn unknown_keys(map: &Map<String, Value>, allowed: &[&str], consumer: &str, issues: &mut Issues) {
    for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        issues.push(
            &[key],
            Invalid {
                code: FieldErrorCode::UnknownKey,
                message: format!("not a `{consumer}` argument; accepted: {}", quoted(allowed.iter().copied())),
            },
        );
    }
}

pub(super) fn required() -> Invalid {
    Invalid { code: FieldErrorCode::Required, message: "is required".to_string() }
}

pub(super) fn one_of(v: &Value, allowed: &[&str]) -> Result<(), Invalid> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(s) => Err(Invalid::value(format!("`{s}` is not one of {}", quoted(allowed.iter().copied())))),
        None => Err(Invalid::expected("a string", v)),
    }
}

fn is_scalar_value(v: &Value) -> bool {
    v.is_number() || v.is_string()
}

/// A label value or threshold: a number or string, or a non-empty list of them.
fn values_or_threshold(v: &Value) -> Result<(), Invalid> {
    match v {
        _ if is_scalar_value(v) => Ok(()),
        Value::Array(items) if !items.is_empty() && items.iter().all(is_scalar_value) => Ok(()),
        _ => Err(Invalid::expected("a number, a string, or a non-empty list of numbers and strings", v)),
    }
}

/// One facet per list entry (strings or column indices).
fn facet_name(v: &Value) -> Result<(), Invalid> {
    let single = |v: &Value| v.is_string() || v.is_u64();
    match v {
        _ if single(v) => Ok(()),
        Value::Array(items) if !items.is_empty() && items.iter().all(single) => Ok(()),
        _ => Err(Invalid::expected("a column name or index, or a non-empty list of them", v)),
    }
}

/// Like [`values_or_threshold`], or a list of such lists (one per facet).
fn facet_values_or_threshold(v: &Value) -> Result<(), Invalid> {
    if let Value::Array(items) = v
        && !items.is_empty()
        && items.iter().all(Value::is_array)
    {
        return items.iter().try_for_each(values_or_threshold);
    }
    values_or_threshold(v)
}

fn index_or_name(v: &Value) -> Result<(), Invalid> {
    if v.is_string() || v.is_u64() { Ok(()) } else { Err(Invalid::expected("a column index or name", v)) }
}

fn strings(v: &Value) -> Result<(), Invalid> {
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(()),
        _ => Err(Invalid::expected("a non-empty list of strings", v)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems<T: std::fmt::Debug>(result: Result<T, Issues>) -> Vec<(String, FieldErrorCode)> {
        let issues = result.expect_err("expected problems");
        let mut found: Vec<_> = issues.0.into_iter().map(|(path, invalid)| (path.join("/"), invalid.code)).collect();
        // Map iteration order depends on serde_json's `preserve_order` feature.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn sorted<const N: usize>(mut expected: [(String, FieldErrorCode); N]) -> [(String, FieldErrorCode); N] {
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        expected
    }

    #[test]
    fn bias_config_accepts_the_solution_example() {
        let config = json!({"label_values_or_threshold": [1], "facet_name": "age",
            "facet_values_or_threshold": [40], "group_name": "personal_status_sex"});
        assert_eq!(bias_config(&config).unwrap(), *config.as_object().unwrap());
        let multi_facet = json!({"label_values_or_threshold": 0.5, "facet_name": ["age", 3],
            "facet_values_or_threshold": [[40], ["a", "b"]]});
        assert!(bias_config(&multi_facet).is_ok());
    }

    #[test]
    fn bias_config_problems() {
        assert_eq!(
            problems(bias_config(&json!("{\"facet_name\": \"age\"}"))),
            [("".into(), FieldErrorCode::InvalidType)]
        );
        assert_eq!(
            problems(bias_config(&json!({"facet": "age", "group_name": 3, "label_values_or_threshold": []}))),
            sorted([
                ("facet".into(), FieldErrorCode::UnknownKey),
                ("facet_name".into(), FieldErrorCode::Required),
                ("label_values_or_threshold".into(), FieldErrorCode::InvalidType),
                ("group_name".into(), FieldErrorCode::InvalidType),
            ])
        );
    }

    #[test]
    fn predicted_label_config_checks() {
        assert!(predicted_label_config(&json!({"probability": 0})).is_ok());
        assert!(predicted_label_config(&json!({})).is_ok());
        assert_eq!(
            problems(predicted_label_config(
                &json!({"probability_threshold": 2, "label_headers": [], "label": 1.5, "x": 1})
            )),
            sorted([
                ("x".into(), FieldErrorCode::UnknownKey),
                ("label".into(), FieldErrorCode::InvalidType),
                ("probability_threshold".into(), FieldErrorCode::InvalidValue),
                ("label_headers".into(), FieldErrorCode::InvalidType),
            ])
        );
    }

    #[test]
    fn shap_config_separates_and_normalises() {
        let config = shap_config(&json!({"baseline": "baselines/shap.csv/", "num_samples": "100",
            "agg_method": "mean_abs", "use_logit": "False"}))
        .unwrap();
        assert_eq!(config.baseline, Some(ShapBaseline::AssetKey(AssetKey::parse("baselines/shap.csv").unwrap())));
        assert_eq!(
            Value::Object(config.options),
            json!({"num_samples": 100, "agg_method": "mean_abs", "use_logit": false})
        );

        let rows = shap_config(&json!({"baseline": [[1, 2, 3]]})).unwrap();
        assert!(matches!(rows.baseline, Some(ShapBaseline::Rows(_))));

        assert_eq!(problems(shap_config(&json!({}))), [("".into(), FieldErrorCode::InvalidValue)]);
        assert_eq!(
            problems(shap_config(&json!({"baseline": "../x.csv", "agg_method": "max", "num_samples": 0, "foo": 1}))),
            sorted([
                ("foo".into(), FieldErrorCode::UnknownKey),
                ("agg_method".into(), FieldErrorCode::InvalidValue),
                ("baseline".into(), FieldErrorCode::InvalidValue),
                ("num_samples".into(), FieldErrorCode::InvalidValue),
            ])
        );
    }

    #[test]
    fn model_scores_keep_their_json_type() {
        assert_eq!(model_scores(&json!(0)), Ok(ModelScores::Index(0)));
        assert_eq!(model_scores(&json!("$.scores")), Ok(ModelScores::Name("$.scores".into())));
        assert!(model_scores(&json!(-1)).is_err());
        assert!(model_scores(&json!(" ")).is_err());
        assert!(model_scores(&json!([0])).is_err());
    }
}
