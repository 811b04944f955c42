//! Spellings the solution's users send whose meaning is plain but which SageMaker would not take
//! as they are: read as meant, each with a warning, before validation. The solution passes them
//! on unchanged and its stacks fail at deploy; its own test fixtures use all three (reference
//! §4.1, docs/API.md §10):
//!
//! - an `endpoint_name` with `_`: SageMaker names are letters, digits and hyphens, so no endpoint
//!   can have it and the only endpoint it can mean is the one with `-`;
//! - a bucket/prefix field given as an `s3://` URI (the solution would take `s3:` as the bucket);
//! - a Clarify configuration given as JSON text in a string (the solution would `json.dumps` the
//!   text again, and Clarify would get a string).
//!
//! A value is rewritten only when the rewrite is valid; otherwise it is left for validation to
//! refuse, so the error names what was sent.

use serde_json::{Map, Value};

use crate::domain::names::EndpointName;
use crate::domain::values::S3Location;

/// The bucket/prefix fields (asset keys are keys inside the assets bucket: an `s3://` there
/// names a bucket too, so it stays an error).
const BUCKET_PREFIX_KEYS: &[&str] = &[
    "data_capture_location",
    "batch_inference_data",
    "batch_job_output_location",
    "baseline_job_output_location",
    "monitoring_output_location",
    "monitor_ground_truth_input",
];

/// Clarify's configuration objects.
const CLARIFY_OBJECT_KEYS: &[&str] = &["bias_config", "model_predicted_label_config", "shap_config"];

/// `object` with the plain meanings applied, and a warning for each rewrite; `None` when nothing
/// was rewritten (the caller then reads `object` itself).
pub(super) fn read_as_meant(object: &Map<String, Value>) -> Option<(Map<String, Value>, Vec<String>)> {
    let mut rewritten = object.clone();
    let mut warnings = Vec::new();
    rewrite_strings(&mut rewritten, "endpoint_name", endpoint_name, &mut warnings);
    for key in BUCKET_PREFIX_KEYS {
        rewrite_strings(&mut rewritten, key, bucket_prefix, &mut warnings);
    }
    for key in CLARIFY_OBJECT_KEYS {
        if let Some(Value::String(text)) = rewritten.get(*key)
            && let Ok(Value::Object(parsed)) = serde_json::from_str::<Value>(text)
        {
            rewritten.insert(key.to_string(), Value::Object(parsed));
            warnings.push(format!(
                "`{key}` was JSON text in a string and was read as the object it holds; send the object itself (the solution would pass the text on, and Clarify cannot use it)"
            ));
        }
    }
    (!warnings.is_empty()).then_some((rewritten, warnings))
}

type Rewrite = fn(&str) -> Option<(String, &'static str)>;

/// Applies `rewrite` to `key`'s string, or to each environment's string of a per-environment
/// object.
fn rewrite_strings(object: &mut Map<String, Value>, key: &str, rewrite: Rewrite, warnings: &mut Vec<String>) {
    let mut one = |value: &mut Value, label: String| {
        if let Value::String(text) = value
            && let Some((meant, why)) = rewrite(text)
        {
            warnings.push(format!("{label} `{text}` was read as `{meant}`: {why}"));
            *text = meant;
        }
    };
    match object.get_mut(key) {
        Some(Value::Object(per_environment)) => {
            for (environment, value) in per_environment.iter_mut() {
                one(value, format!("`{key}` for environment `{environment}`"));
            }
        }
        Some(value) => one(value, format!("`{key}`")),
        None => {}
    }
}

fn endpoint_name(text: &str) -> Option<(String, &'static str)> {
    if !text.contains('_') {
        return None;
    }
    let meant = text.trim().to_lowercase().replace('_', "-");
    EndpointName::parse(&meant).ok()?;
    Some((meant, "SageMaker endpoint names hold letters, digits and hyphens, so no endpoint can be named with `_`"))
}

fn bucket_prefix(text: &str) -> Option<(String, &'static str)> {
    let text = text.trim();
    let rest = text.get(5..).filter(|_| text.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://")))?;
    S3Location::parse(rest).ok()?;
    Some((rest.to_string(), "bucket/prefix fields take no `s3://` (the solution would read `s3:` as the bucket)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Option<(Value, Vec<String>)> {
        read_as_meant(body.as_object().unwrap()).map(|(m, w)| (Value::Object(m), w))
    }

    #[test]
    fn plain_bodies_are_not_copied() {
        let body = json!({"endpoint_name": "churn-endpoint", "data_capture_location": "bkt/p",
            "bias_config": {"facet_name": "age"}, "model_artifact_location": "s3://b/model.tar.gz"});
        assert!(read(body).is_none());
    }

    #[test]
    fn the_solutions_fixture_spellings_are_read_as_meant() {
        let (body, warnings) = read(json!({
            "endpoint_name": "Test_Endpoint",
            "monitor_ground_truth_input": "s3://test-bucket/groundtruth",
            "bias_config": "{\"facet_name\": \"age\", \"label_values_or_threshold\": [1]}",
            "model_predicted_label_config": "{\"probability\": 0}",
        }))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "endpoint_name": "test-endpoint",
                "monitor_ground_truth_input": "test-bucket/groundtruth",
                "bias_config": {"facet_name": "age", "label_values_or_threshold": [1]},
                "model_predicted_label_config": {"probability": 0},
            })
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("`endpoint_name` `Test_Endpoint` was read as `test-endpoint`"), "{warnings:?}");
        assert!(warnings[1].starts_with(
            "`monitor_ground_truth_input` `s3://test-bucket/groundtruth` was read as `test-bucket/groundtruth`"
        ));
        assert!(warnings[2].starts_with("`bias_config` was JSON text in a string"), "{warnings:?}");
        assert!(warnings[3].starts_with("`model_predicted_label_config` was JSON text in a string"));
    }

    #[test]
    fn per_environment_values_are_read_one_by_one() {
        let (body, warnings) =
            read(json!({"endpoint_name": {"dev": "dev_ep", "prod": "prod-ep"}, "data_capture_location": {"dev": "S3://bkt/dev", "prod": "bkt/prod"}}))
                .unwrap();
        assert_eq!(body["endpoint_name"], json!({"dev": "dev-ep", "prod": "prod-ep"}));
        assert_eq!(body["data_capture_location"], json!({"dev": "bkt/dev", "prod": "bkt/prod"}));
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].starts_with("`endpoint_name` for environment `dev` `dev_ep`"), "{warnings:?}");
    }

    #[test]
    fn rewrites_that_would_still_be_invalid_are_left_for_validation() {
        // A leading `_` would become a leading `-`; a bad bucket stays bad; text that is no
        // object stays text; other schemes are not guessed at.
        for body in [
            json!({"endpoint_name": "_ep"}),
            json!({"batch_inference_data": "s3://B_ad/x"}),
            json!({"bias_config": "[1, 2]"}),
            json!({"bias_config": "not json"}),
            json!({"batch_inference_data": "https://b/x"}),
        ] {
            assert!(read(body.clone()).is_none(), "{body}");
        }
    }
}
