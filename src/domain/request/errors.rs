//! What a rejected request reports: one [`FieldError`] per bad field, and the solution's
//! `detailedMessage` for the compat API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One problem with one field of the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// RFC 6901 pointer into the body, e.g. `/inference_instance/dev`; `""` is the whole body.
    pub pointer: String,
    /// Plain English: names the field and what is expected.
    pub message: String,
    pub code: FieldErrorCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldErrorCode {
    /// A key the pipeline type needs is absent (or null).
    Required,
    /// Wrong JSON type: a string where an object belongs, a fraction where a whole number does.
    InvalidType,
    /// Right type, wrong value: out of range, wrong shape, not one of the allowed values.
    InvalidValue,
    UnknownPipelineType,
    /// `problem_type` missing or unsupported on a model quality, bias or explainability monitor.
    UnsupportedProblemType,
    /// An object of per-environment values where only one value is accepted.
    PerStageNotAllowed,
    /// A per-environment object whose keys are not exactly the configured environments.
    PerStageEnvironments,
    /// A key inside a JSON-object field (e.g. `bias_config`) that its consumer does not accept.
    UnknownKey,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, code: FieldErrorCode, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into(), code }
    }
}

/// Every problem found in a request, in the order the solution would report the first of them:
/// unsupported `problem_type`, then missing keys in the solution's order, then everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, thiserror::Error)]
#[serde(transparent)]
#[error("{}", self.compat_detailed_message())]
pub struct RequestErrors(pub Vec<FieldError>);

impl RequestErrors {
    /// The compat API's `detailedMessage`: the solution's exact text where it has one for the
    /// first problem (reference §4.1), otherwise the first problem's message.
    pub fn compat_detailed_message(&self) -> String {
        let Some(first) = self.0.first() else {
            return String::new();
        };
        if first.pointer == "/pipeline_type" {
            return "Bad request format. Pipeline type not supported. Check documentation for API & config formats"
                .to_string();
        }
        match first.code {
            FieldErrorCode::UnsupportedProblemType => {
                "Bad request format. Unsupported problem_type in byom_model_quality_monitor pipeline".to_string()
            }
            // Only top-level keys: the solution never looks inside objects.
            FieldErrorCode::Required if first.pointer.matches('/').count() == 1 => format!(
                "Bad request. API body does not have the necessary parameter: {}",
                unescape(&first.pointer[1..])
            ),
            _ => first.message.clone(),
        }
    }
}

/// Escapes one RFC 6901 reference token.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(pointer: &str, code: FieldErrorCode) -> RequestErrors {
        RequestErrors(vec![
            FieldError::new(pointer, code, "first message"),
            FieldError::new("/other", FieldErrorCode::Required, "second"),
        ])
    }

    #[test]
    fn compat_messages_use_the_solution_strings() {
        assert_eq!(
            errors("/model_artifact_location", FieldErrorCode::Required).compat_detailed_message(),
            "Bad request. API body does not have the necessary parameter: model_artifact_location"
        );
        for code in [FieldErrorCode::Required, FieldErrorCode::UnknownPipelineType, FieldErrorCode::InvalidType] {
            assert_eq!(
                errors("/pipeline_type", code).compat_detailed_message(),
                "Bad request format. Pipeline type not supported. Check documentation for API & config formats"
            );
        }
        assert_eq!(
            errors("/problem_type", FieldErrorCode::UnsupportedProblemType).compat_detailed_message(),
            "Bad request format. Unsupported problem_type in byom_model_quality_monitor pipeline"
        );
        assert_eq!(
            errors("/bias_config/facet_name", FieldErrorCode::Required).compat_detailed_message(),
            "first message"
        );
        assert_eq!(
            errors("/inference_instance", FieldErrorCode::InvalidValue).compat_detailed_message(),
            "first message"
        );
        assert_eq!(RequestErrors(vec![]).compat_detailed_message(), "");
    }

    #[test]
    fn serialises_as_a_list_with_snake_case_codes() {
        let json = serde_json::to_value(errors("", FieldErrorCode::PerStageNotAllowed)).unwrap();
        assert_eq!(json[0]["code"], "per_stage_not_allowed");
        assert_eq!(json[1]["pointer"], "/other");
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(escape("a/b~c"), "a~1b~0c");
        assert_eq!(unescape("a~1b~0c"), "a/b~c");
    }
}
