//! Parsers for single JSON values. Each returns the typed value or an [`Invalid`] that says what
//! was expected, without naming the field (the caller adds the field and the pointer).

use std::ops::RangeInclusive;

use serde_json::Value;

use super::errors::FieldErrorCode;
use crate::domain::names::check_model_name;
use crate::domain::pipeline_type::PipelineType;
use crate::domain::spec::Choice;
use crate::domain::values::{AssetKey, InvalidValue, KmsKeyArn};

/// A problem with one value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Invalid {
    pub code: FieldErrorCode,
    pub message: String,
}

impl Invalid {
    pub fn value(message: impl Into<String>) -> Self {
        Self { code: FieldErrorCode::InvalidValue, message: message.into() }
    }

    /// A JSON type mismatch: "expected a string, got a number".
    pub fn expected(what: &str, got: &Value) -> Self {
        Self { code: FieldErrorCode::InvalidType, message: format!("expected {what}, got {}", kind(got)) }
    }
}

impl From<InvalidValue> for Invalid {
    fn from(e: InvalidValue) -> Self {
        Self::value(e.0)
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// "`a`, `b`, `c`" for messages.
pub(super) fn quoted<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

pub(super) fn string(v: &Value) -> Result<&str, Invalid> {
    v.as_str().ok_or_else(|| Invalid::expected("a string", v))
}

/// A string with surrounding whitespace removed (the solution `.strip()`s these); must not be
/// empty.
pub(super) fn text(v: &Value) -> Result<String, Invalid> {
    let s = string(v)?.trim();
    if s.is_empty() {
        return Err(Invalid::value("must not be empty"));
    }
    Ok(s.to_string())
}

/// A column of a CSV or a JSONPath: a non-empty string, or a column index as a JSON integer.
pub(super) fn attribute(v: &Value) -> Result<String, Invalid> {
    match v {
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        Value::String(_) => text(v),
        _ => Err(Invalid::expected("a column name, index or JSONPath as a string (or a column index)", v)),
    }
}

/// A string checked by a value type's parser.
pub(super) fn parsed<T>(parse: fn(&str) -> Result<T, InvalidValue>) -> impl Fn(&Value) -> Result<T, Invalid> {
    move |v| Ok(parse(string(v)?)?)
}

/// `model_name`, trimmed: part of the stack name, so limited by the type's stack postfix.
pub(super) fn model_name(pipeline_type: PipelineType) -> impl Fn(&Value) -> Result<String, Invalid> {
    move |v| {
        let name = string(v)?.trim();
        check_model_name(name, pipeline_type)?;
        Ok(name.to_string())
    }
}

pub(super) fn asset_key(v: &Value) -> Result<AssetKey, Invalid> {
    parsed(AssetKey::parse)(v)
}

/// `kms_key_arn`: an ARN, or an empty string (or null) for "no key".
pub(super) fn kms_key(v: &Value) -> Result<Option<KmsKeyArn>, Invalid> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        _ => Ok(Some(parsed(KmsKeyArn::parse)(v)?)),
    }
}

/// A whole number in `range`, given as a JSON integer or a string of digits (existing
/// configuration files use both).
pub(super) fn integer(v: &Value, range: RangeInclusive<u32>) -> Result<u32, Invalid> {
    let expected = || format!("a whole number from {} to {}", range.start(), range.end());
    let n: u64 = match v {
        Value::Number(n) if n.is_u64() => n.as_u64().unwrap_or_default(),
        Value::Number(n) if n.is_i64() => {
            return Err(Invalid::value(format!("{n} is negative; expected {}", expected())));
        }
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().unwrap_or(u64::MAX),
        Value::String(s) => {
            return Err(Invalid::value(format!("`{s}` is not {}", expected())));
        }
        _ => return Err(Invalid::expected(&expected(), v)),
    };
    match u32::try_from(n) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Invalid::value(format!("{n} is out of range; expected {}", expected()))),
    }
}

/// A signed whole number, as a JSON integer or a string of digits.
pub(super) fn signed_integer(v: &Value) -> Result<i64, Invalid> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        Value::String(s) => s.parse().map_err(|_| Invalid::value(format!("`{s}` is not a whole number"))),
        _ => Err(Invalid::expected("a whole number", v)),
    }
}

/// A finite number, as a JSON number or a numeric string.
pub(super) fn number(v: &Value) -> Result<f64, Invalid> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => return Err(Invalid::expected("a number", v)),
    };
    n.filter(|n| n.is_finite()).ok_or_else(|| Invalid::value(format!("`{}` is not a number", display(v))))
}

/// A probability threshold in [0, 1].
pub(super) fn probability(v: &Value) -> Result<f64, Invalid> {
    let p = number(v)?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(Invalid::value(format!("{p} is not between 0 and 1"))) }
}

/// A boolean, as JSON `true`/`false` or the strings `"True"`/`"False"` the solution's templates
/// take (any case).
pub(super) fn boolean(v: &Value) -> Result<bool, Invalid> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::String(s) => Err(Invalid::value(format!("`{s}` is not a boolean; expected `True` or `False`"))),
        _ => Err(Invalid::expected("`True` or `False`", v)),
    }
}

/// One of a closed set of strings, matched exactly (surrounding whitespace ignored).
pub(super) fn choice<T: Choice>(v: &Value) -> Result<T, Invalid> {
    let s = string(v)?.trim();
    if let Some(c) = T::ALL.iter().find(|c| c.as_str() == s) {
        return Ok(*c);
    }
    let allowed = quoted(T::ALL.iter().map(|c| c.as_str()));
    match T::ALL.iter().find(|c| c.as_str().eq_ignore_ascii_case(s)) {
        Some(c) => Err(Invalid::value(format!(
            "`{s}` is not allowed; did you mean `{}`? (values are case-sensitive)",
            c.as_str()
        ))),
        None => Err(Invalid::value(format!("`{s}` is not one of {allowed}"))),
    }
}

/// Like [`choice`], with the empty string meaning "not set" (as in the solution's templates).
pub(super) fn optional_choice<T: Choice>(v: &Value) -> Result<Option<T>, Invalid> {
    match v.as_str() {
        Some("") => Ok(None),
        _ => choice(v).map(Some),
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The candidate closest to `s` within `max_distance` edits, if any.
pub(super) fn closest<'a>(
    s: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max_distance: usize,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(s, c), c))
        .filter(|(d, _)| *d <= max_distance)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::spec::ProblemType;

    #[test]
    fn integers_accept_numbers_and_digit_strings() {
        assert_eq!(integer(&json!(20), 1..=100), Ok(20));
        assert_eq!(integer(&json!("20"), 1..=100), Ok(20));
        assert_eq!(integer(&json!(0), 1..=100).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(integer(&json!(-5), 1..=100).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(integer(&json!("2 0"), 1..=100).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(integer(&json!(""), 1..=100).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(integer(&json!("99999999999999999999"), 1..=100).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(integer(&json!(20.5), 1..=100).unwrap_err().code, FieldErrorCode::InvalidType);
        assert_eq!(integer(&json!(true), 1..=100).unwrap_err().code, FieldErrorCode::InvalidType);
        assert!(integer(&json!(101), 1..=100).unwrap_err().message.contains("from 1 to 100"));
    }

    #[test]
    fn booleans_accept_solution_strings() {
        assert_eq!(boolean(&json!("True")), Ok(true));
        assert_eq!(boolean(&json!("false")), Ok(false));
        assert_eq!(boolean(&json!(true)), Ok(true));
        assert_eq!(boolean(&json!("yes")).unwrap_err().code, FieldErrorCode::InvalidValue);
        assert_eq!(boolean(&json!(1)).unwrap_err().code, FieldErrorCode::InvalidType);
    }

    #[test]
    fn numbers_and_probabilities() {
        assert_eq!(number(&json!("0.5")), Ok(0.5));
        assert_eq!(probability(&json!(1)), Ok(1.0));
        assert!(probability(&json!(1.5)).is_err());
        assert!(number(&json!("NaN")).is_err());
        assert!(number(&json!("abc")).is_err());
    }

    #[test]
    fn choices_are_case_sensitive_with_a_hint() {
        assert_eq!(choice::<ProblemType>(&json!(" Regression ")), Ok(ProblemType::Regression));
        let err = choice::<ProblemType>(&json!("regression")).unwrap_err();
        assert!(err.message.contains("did you mean `Regression`"), "{}", err.message);
        let err = choice::<ProblemType>(&json!("Clustering")).unwrap_err();
        assert!(err.message.contains("`BinaryClassification`"), "{}", err.message);
        assert_eq!(optional_choice::<ProblemType>(&json!("")), Ok(None));
    }

    #[test]
    fn attributes_and_kms() {
        assert_eq!(attribute(&json!(0)), Ok("0".to_string()));
        assert_eq!(attribute(&json!(" label ")), Ok("label".to_string()));
        assert!(attribute(&json!("")).is_err());
        assert!(attribute(&json!(-1)).is_err());
        assert_eq!(kms_key(&json!("")), Ok(None));
        assert!(kms_key(&json!("not-an-arn")).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("algo_hyperparameters", ["algo_hyperparamaters", "job_name"], 2),
            Some("algo_hyperparamaters")
        );
        assert_eq!(closest("zzz", ["algo_hyperparamaters"], 2), None);
    }
}
