//! `mlops-config.json` as a config source holds it (issue 14, reference §9): the body of one
//! `/provisionpipeline` call, or — beyond the solution — a list of them. Errors point into the
//! file: a list's request `i` prefixes its pointers with `/i`.

use super::request::{FieldError, FieldErrorCode};
use serde_json::Value;

/// The requests a config file holds, in order.
pub fn requests(content: &[u8]) -> Result<Vec<Value>, Vec<FieldError>> {
    let whole = |message: String| vec![FieldError::new("", FieldErrorCode::InvalidType, message)];
    let value: Value =
        serde_json::from_slice(content).map_err(|e| whole(format!("the file is not valid JSON: {e}")))?;
    match value {
        Value::Object(_) => Ok(vec![value]),
        Value::Array(items) if items.is_empty() => Err(whole("the list holds no request".into())),
        Value::Array(items) => {
            let bad: Vec<FieldError> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| !item.is_object())
                .map(|(i, _)| {
                    FieldError::new(format!("/{i}"), FieldErrorCode::InvalidType, "each request must be a JSON object")
                })
                .collect();
            if bad.is_empty() { Ok(items) } else { Err(bad) }
        }
        _ => Err(whole("the file must hold a request (a JSON object) or a list of requests".into())),
    }
}

/// `errors` of request `index`, pointing into the file (`list`: the file holds a list).
pub fn in_file(errors: Vec<FieldError>, index: usize, list: bool) -> Vec<FieldError> {
    if !list {
        return errors;
    }
    errors.into_iter().map(|e| FieldError { pointer: format!("/{index}{}", e.pointer), ..e }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_request_or_a_list() {
        assert_eq!(requests(br#"{"pipeline_type": "x"}"#).unwrap(), [json!({"pipeline_type": "x"})]);
        assert_eq!(requests(br#"[{"a": 1}, {"b": 2}]"#).unwrap().len(), 2);
    }

    #[test]
    fn bad_files_point_at_the_problem() {
        assert_eq!(requests(b"{nope").unwrap_err()[0].pointer, "");
        assert_eq!(requests(b"[]").unwrap_err()[0].message, "the list holds no request");
        assert_eq!(requests(b"42").unwrap_err()[0].pointer, "");
        let errors = requests(br#"[{"a": 1}, 3]"#).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.pointer.as_str()).collect::<Vec<_>>(), ["/1"]);
    }

    #[test]
    fn list_errors_are_prefixed_with_the_index() {
        let errors = vec![FieldError::new("/model_name", FieldErrorCode::Required, "m")];
        assert_eq!(in_file(errors.clone(), 2, true)[0].pointer, "/2/model_name");
        assert_eq!(in_file(errors, 2, false)[0].pointer, "/model_name");
    }
}
