//! JSON Schemas of the provisioning request, one per pipeline type, for the OpenAPI document.
//! Made from the readers themselves: the keys a type reads are the keys its reader asks for, and
//! its required keys are those it reports missing from a body holding only `pipeline_type`
//! (whatever the server's `use_model_registry` and the monitors' `problem_type`), so the schema
//! and the validation cannot drift apart.

use super::body::{KEYS, PER_STAGE_KEYS};
use super::{FieldErrorCode, RequestContext, keys_read};
use crate::domain::pipeline_type::PipelineType;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The schema of one key's value, as the readers take it.
fn value_schema(key: &str) -> Value {
    let integer = json!({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]});
    let boolean =
        json!({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["True", "False", "true", "false"]}]});
    let single = match key {
        "instance_volume_size"
        | "monitor_max_runtime_seconds"
        | "instance_count"
        | "max_runtime_per_job"
        | "max_wait_time_spot_instances"
        | "job_max_candidates"
        | "total_max_runtime" => integer,
        // The solution's templates take "" for "no limit".
        "baseline_max_runtime_seconds" => json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        "encrypt_inner_traffic" | "use_spot_instances" | "generate_definition_only" => boolean,
        "probability_threshold_attribute" => {
            json!({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string"}]})
        }
        // A column name, index or JSONPath.
        "baseline_inference_attribute"
        | "baseline_ground_truth_attribute"
        | "baseline_probability_attribute"
        | "monitor_inference_attribute"
        | "monitor_probability_attribute"
        | "model_scores" => json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
        "attribute_names" => json!({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}),
        "bias_config"
        | "model_predicted_label_config"
        | "shap_config"
        | "algo_hyperparamaters"
        | "tuner_configs"
        | "hyperparamaters_ranges" => json!({"type": "object"}),
        _ => json!({"type": "string"}),
    };
    if PER_STAGE_KEYS.contains(&key) {
        // One value for every environment, or (on a server with several) one per environment.
        json!({"anyOf": [single, {"type": "object", "additionalProperties": single}]})
    } else {
        single
    }
}

/// `(keys read, keys required)` of a type: the union of what its reader asks for and the
/// intersection of what it requires, over the server settings and problem types that change
/// them.
fn keys(pipeline_type: PipelineType) -> (BTreeSet<&'static str>, BTreeSet<String>) {
    let mut read = BTreeSet::new();
    let mut required: Option<BTreeSet<String>> = None;
    for use_model_registry in [false, true] {
        let ctx = RequestContext { environments: Vec::new(), use_model_registry };
        for problem_type in [None, Some("Regression"), Some("BinaryClassification"), Some("MulticlassClassification")] {
            let mut body = json!({"pipeline_type": pipeline_type.as_str()});
            if let Some(p) = problem_type {
                body["problem_type"] = json!(p);
            }
            let (asked, errors) = keys_read(&body, &ctx);
            read.extend(asked);
            let missing: BTreeSet<String> = errors
                .iter()
                .filter(|e| e.code == FieldErrorCode::Required && e.pointer.matches('/').count() == 1)
                .map(|e| e.pointer.trim_start_matches('/').to_string())
                .collect();
            required = Some(match required {
                None => missing,
                Some(so_far) => so_far.intersection(&missing).cloned().collect(),
            });
        }
    }
    let mut required = required.unwrap_or_default();
    required.insert("pipeline_type".into());
    (read, required)
}

/// The request schema of `pipeline_type`.
pub fn request_schema(pipeline_type: PipelineType) -> Value {
    let (read, required) = keys(pipeline_type);
    let mut properties = serde_json::Map::new();
    for key in &read {
        let mut schema = if *key == "pipeline_type" {
            json!({"type": "string", "enum": [pipeline_type.as_str()]})
        } else {
            value_schema(key)
        };
        if let Some((_, hint)) = KEYS.iter().find(|(k, _)| k == key) {
            schema["description"] = json!(hint);
        }
        properties.insert(key.to_string(), schema);
    }
    json!({
        "type": "object",
        "title": pipeline_type.as_str(),
        "description": format!(
            "A `{}` request. Keys it does not read are ignored with a warning; `null` (and `\"\"` where the solution reads it as unset) counts as absent. Which model keys are required depends on the server's `use_model_registry`, and the monitors' on `problem_type`.",
            pipeline_type.as_str()
        ),
        "properties": properties,
        "required": required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_request;

    #[test]
    fn the_schemas_name_what_the_readers_read_and_require() {
        let realtime = request_schema(PipelineType::ByomRealtimeBuiltin);
        let required: Vec<&str> =
            realtime["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for key in ["pipeline_type", "model_name", "inference_instance", "data_capture_location"] {
            assert!(required.contains(&key), "{key} in {required:?}");
        }
        assert!(!required.contains(&"model_package_name") && !required.contains(&"model_framework"), "{required:?}");
        assert!(realtime["properties"]["endpoint_name"]["anyOf"].is_array(), "per-environment key");
        assert!(realtime["properties"].get("baseline_data").is_none(), "not read by this type");
        let image = request_schema(PipelineType::ByomImageBuilder);
        assert_eq!(
            image["required"],
            json!(["custom_algorithm_docker", "ecr_repo_name", "image_tag", "pipeline_type"])
        );
    }

    /// Every required key, left out, is reported missing by the validation, and a body holding
    /// only the pipeline type is refused naming each of them.
    #[test]
    fn required_keys_are_required_by_the_validation() {
        for t in PipelineType::ALL {
            let schema = request_schema(t);
            let errors =
                parse_request(&json!({"pipeline_type": t.as_str()}), &RequestContext::default()).unwrap_err().0;
            for key in schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()) {
                if key != "pipeline_type" {
                    assert!(errors.iter().any(|e| e.pointer == format!("/{key}")), "{t}: {key} not reported missing");
                }
            }
        }
    }
}
