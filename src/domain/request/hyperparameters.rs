//! The training types' JSON fields: static hyperparameters, tuner settings, tuning ranges, and
//! `attribute_names`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::body::Issues;
use super::clarify::{object, one_of, required};
use super::scalars::{Invalid, integer, number, signed_integer, string, text};
use crate::domain::spec::HyperparameterRange;

/// SageMaker's limit on values of one categorical range.
const MAX_CATEGORICAL_VALUES: usize = 30;

/// `algo_hyperparamaters`: a non-empty object of scalar values (the template requires at least
/// one `name: value`).
pub(super) fn static_hyperparameters(v: &Value) -> Result<Map<String, Value>, Issues> {
    let map = object(v)?;
    if map.is_empty() {
        return Err(Invalid::value("must name at least one hyperparameter, e.g. `{\"num_round\": 100}`").into());
    }
    let mut issues = Issues::default();
    for (name, value) in map {
        if name.trim().is_empty() {
            issues.push(&[name], Invalid::value("hyperparameter names must not be empty"));
        } else if !(value.is_string() || value.is_number() || value.is_boolean()) {
            issues.push(&[name], Invalid::expected("a string, number or boolean", value));
        }
    }
    issues.or_ok(map.clone())
}

/// `tuner_configs`: `HyperparameterTuner` arguments. The ones with a fixed form are checked
/// (and integers normalised); any other argument is passed through.
pub(super) fn tuner_configs(v: &Value) -> Result<Map<String, Value>, Issues> {
    let map = object(v)?;
    let mut issues = Issues::default();
    let mut configs = map.clone();
    match map.get("objective_metric_name") {
        None => issues.push(&["objective_metric_name"], required()),
        Some(name) => {
            if let Err(invalid) = text(name) {
                issues.push(&["objective_metric_name"], invalid);
            }
        }
    }
    let choices: [(&str, &[&str]); 3] = [
        ("strategy", &["Bayesian", "Random", "Hyperband", "Grid"]),
        ("objective_type", &["Maximize", "Minimize"]),
        ("early_stopping_type", &["Off", "Auto"]),
    ];
    for (key, allowed) in choices {
        if let Some(Err(invalid)) = map.get(key).map(|v| one_of(v, allowed)) {
            issues.push(&[key], invalid);
        }
    }
    let mut limits = [None, None];
    for (slot, key) in limits.iter_mut().zip(["max_jobs", "max_parallel_jobs"]) {
        match map.get(key).map(|v| integer(v, 1..=u32::MAX)) {
            Some(Ok(n)) => {
                configs.insert(key.to_string(), json!(n));
                *slot = Some(n);
            }
            Some(Err(invalid)) => issues.push(&[key], invalid),
            None => {}
        }
    }
    if let [Some(max_jobs), Some(parallel)] = limits
        && parallel > max_jobs
    {
        issues.push(&["max_parallel_jobs"], Invalid::value(format!("{parallel} exceeds `max_jobs` ({max_jobs})")));
    }
    if let Some(definitions) = map.get("metric_definitions") {
        metric_definitions(definitions, &mut issues);
    }
    issues.or_ok(configs)
}

/// `[{"Name": ..., "Regex": ...}, ...]`
fn metric_definitions(v: &Value, issues: &mut Issues) {
    let Some(items) = v.as_array() else {
        issues.push(&["metric_definitions"], Invalid::expected("an array of `{\"Name\", \"Regex\"}` objects", v));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(definition) = item.as_object() else {
            issues.push(&["metric_definitions", &index], Invalid::expected("an object with `Name` and `Regex`", item));
            continue;
        };
        for key in ["Name", "Regex"] {
            match definition.get(key).map(text) {
                None => issues.push(&["metric_definitions", &index, key], required()),
                Some(Err(invalid)) => issues.push(&["metric_definitions", &index, key], invalid),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// `hyperparamaters_ranges`: `{name: ["continuous"|"integer", [min, max]] |
/// ["categorical", [values...]]}`.
pub(super) fn ranges(v: &Value) -> Result<BTreeMap<String, HyperparameterRange>, Issues> {
    let map = object(v)?;
    if map.is_empty() {
        return Err(
            Invalid::value("must give at least one range, e.g. `{\"eta\": [\"continuous\", [0.1, 0.5]]}`").into()
        );
    }
    let mut issues = Issues::default();
    let mut ranges = BTreeMap::new();
    for (name, value) in map {
        match range(value) {
            Ok(range) => {
                ranges.insert(name.clone(), range);
            }
            Err((at, invalid)) => {
                let mut path = vec![name.as_str()];
                path.extend(at);
                issues.push(&path, invalid);
            }
        }
    }
    issues.or_ok(ranges)
}

/// One range, or the problem and where it is below the range.
fn range(v: &Value) -> Result<HyperparameterRange, (Vec<&'static str>, Invalid)> {
    const SHAPE: &str = "`[\"continuous\" or \"integer\", [min, max]]` or `[\"categorical\", [values...]]`";
    let here = |invalid| (Vec::new(), invalid);
    let (kind, bounds) = match v.as_array().map(Vec::as_slice) {
        Some([kind, bounds]) => (kind, bounds),
        _ => return Err(here(Invalid::expected(SHAPE, v))),
    };
    let kind = string(kind).map_err(|invalid| (vec!["0"], invalid))?;
    let values = bounds.as_array().ok_or_else(|| (vec!["1"], Invalid::expected("an array", bounds)))?;
    let at_bounds = |invalid| (vec!["1"], invalid);
    match kind {
        "continuous" | "integer" => {
            let [min, max] = values.as_slice() else {
                return Err(at_bounds(Invalid::value(format!("a {kind} range needs exactly `[min, max]`"))));
            };
            let range = if kind == "continuous" {
                let (min, max) = (number(min), number(max));
                let (min, max) = (min.map_err(at_bounds)?, max.map_err(at_bounds)?);
                (min < max).then_some(HyperparameterRange::Continuous { min, max })
            } else {
                let (min, max) = (signed_integer(min), signed_integer(max));
                let (min, max) = (min.map_err(at_bounds)?, max.map_err(at_bounds)?);
                (min < max).then_some(HyperparameterRange::Integer { min, max })
            };
            range.ok_or_else(|| at_bounds(Invalid::value("min must be less than max")))
        }
        "categorical" => {
            if values.is_empty() || values.len() > MAX_CATEGORICAL_VALUES {
                return Err(at_bounds(Invalid::value(format!(
                    "a categorical range needs 1 to {MAX_CATEGORICAL_VALUES} values"
                ))));
            }
            values
                .iter()
                .map(|value| match value {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(at_bounds(Invalid::expected("strings or numbers", other))),
                })
                .collect::<Result<_, _>>()
                .map(|values| HyperparameterRange::Categorical { values })
        }
        other => Err((
            vec!["0"],
            Invalid::value(format!("`{other}` is not a range type: `continuous`, `integer` or `categorical`")),
        )),
    }
}

/// A list of attribute names, as a JSON array or as the JSON text of one (the template's form);
/// the empty string is the empty list.
pub(super) fn attribute_names(v: &Value) -> Result<Vec<String>, Invalid> {
    let expected = "a list of attribute names such as `[\"source-ref\", \"class\"]`";
    let list = match v {
        Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        Value::String(s) => {
            serde_json::from_str::<Value>(s).map_err(|_| Invalid::value(format!("`{s}` is not {expected}")))?
        }
        other => other.clone(),
    };
    match list {
        Value::Array(items) => {
            items.iter().map(|item| text(item).map_err(|_| Invalid::value(format!("expected {expected}")))).collect()
        }
        other => Err(Invalid::expected(expected, &other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ranges_parse_the_solution_example() {
        let parsed = ranges(&json!({
            "eta": ["continuous", [0.1, 0.5]],
            "gamma": ["continuous", [0, 5]],
            "max_depth": ["integer", ["1", 15]],
            "optimizer": ["categorical", ["sgd", "Adam", 3]],
        }))
        .unwrap();
        assert_eq!(parsed["eta"], HyperparameterRange::Continuous { min: 0.1, max: 0.5 });
        assert_eq!(parsed["gamma"], HyperparameterRange::Continuous { min: 0.0, max: 5.0 });
        assert_eq!(parsed["max_depth"], HyperparameterRange::Integer { min: 1, max: 15 });
        assert_eq!(
            parsed["optimizer"],
            HyperparameterRange::Categorical { values: vec!["sgd".into(), "Adam".into(), "3".into()] }
        );
    }

    #[test]
    fn range_problems_point_inside_the_range() {
        let paths = |v: Value| -> Vec<String> {
            let mut found: Vec<String> =
                ranges(&v).unwrap_err().0.into_iter().map(|(path, _)| path.join("/")).collect();
            found.sort();
            found
        };
        assert_eq!(
            paths(json!({
                "a": ["continuous", [5, 1]],
                "b": ["integer", [1.5, 3]],
                "c": ["uniform", [1, 2]],
                "d": ["categorical", []],
                "e": "continuous",
                "f": ["continuous", [1, 2, 3]],
            })),
            ["a/1", "b/1", "c/0", "d/1", "e", "f/1"]
        );
        assert!(ranges(&json!({})).is_err());
        let too_many: Vec<Value> = (0..31).map(|i| json!(i)).collect();
        assert!(ranges(&json!({"c": ["categorical", too_many]})).is_err());
    }

    #[test]
    fn tuner_configs_check_known_arguments() {
        let configs = tuner_configs(&json!({"objective_metric_name": "validation:auc",
            "strategy": "Bayesian", "objective_type": "Maximize", "max_jobs": "10",
            "max_parallel_jobs": 2, "early_stopping_type": "Auto", "random_seed": 7}))
        .unwrap();
        assert_eq!(configs["max_jobs"], json!(10));
        assert_eq!(configs["random_seed"], json!(7));

        let mut paths: Vec<String> = tuner_configs(&json!({"strategy": "Greedy",
            "max_jobs": 2, "max_parallel_jobs": 3,
            "metric_definitions": [{"Name": "auc"}, 5]}))
        .unwrap_err()
        .0
        .into_iter()
        .map(|(path, _)| path.join("/"))
        .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "max_parallel_jobs",
                "metric_definitions/0/Regex",
                "metric_definitions/1",
                "objective_metric_name",
                "strategy"
            ]
        );
    }

    #[test]
    fn static_hyperparameters_are_scalars() {
        assert!(static_hyperparameters(&json!({"num_round": 400, "eta": "0.3", "verbose": true})).is_ok());
        assert!(static_hyperparameters(&json!({})).is_err());
        assert!(static_hyperparameters(&json!({"nested": {"a": 1}})).is_err());
        assert!(static_hyperparameters(&json!("{\"num_round\": 1}")).is_err());
    }

    #[test]
    fn attribute_names_from_list_or_json_text() {
        assert_eq!(attribute_names(&json!(["source-ref", "class"])).unwrap(), ["source-ref", "class"]);
        assert_eq!(attribute_names(&json!("[\"source-ref\"]")).unwrap(), ["source-ref"]);
        assert_eq!(attribute_names(&json!("")).unwrap(), Vec::<String>::new());
        assert!(attribute_names(&json!("source-ref")).is_err());
        assert!(attribute_names(&json!([1])).is_err());
    }
}
