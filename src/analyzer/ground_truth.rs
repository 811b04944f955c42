//! Ground-truth records (reference sagemaker-formats.md B.5): one JSON line per labelled
//! inference, `{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId":
//! "…"}, "eventVersion": "0"}`, joined to captured inferences by their `inferenceId` (when the
//! caller sent one) or else their `eventId`.

use base64::Engine;
use serde_json::Value;

/// One label (or one label per row of a multi-row request).
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub event_id: String,
    pub labels: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GroundTruthError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`groundTruthData.encoding` {0:?} is not CSV, JSON or BASE64")]
    Encoding(String),
}

/// Reads one ground-truth line.
pub fn read(line: &str) -> Result<GroundTruth, GroundTruthError> {
    let value: Value = serde_json::from_str(line).map_err(|e| GroundTruthError::Json(e.to_string()))?;
    let event_id = value["eventMetadata"]["eventId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or(GroundTruthError::Missing("eventMetadata.eventId"))?
        .to_string();
    let data = &value["groundTruthData"]["data"];
    let text = match data {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(GroundTruthError::Missing("groundTruthData.data")),
    };
    let encoding = value["groundTruthData"]["encoding"].as_str().unwrap_or("CSV");
    let text = match encoding {
        "CSV" => text,
        "JSON" => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items.iter().map(field).collect::<Vec<_>>().join("\n"),
            Ok(other) => field(&other),
            Err(_) => text,
        },
        "BASE64" => String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| GroundTruthError::Encoding(encoding.into()))?,
        )
        .into_owned(),
        other => return Err(GroundTruthError::Encoding(other.to_string())),
    };
    // "We assume `data` only consists of label": one per line (a multi-row request's labels).
    let labels =
        text.lines().map(|l| l.split(',').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()).collect();
    Ok(GroundTruth { event_id, labels })
}

fn field(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value an attribute names in one row of an endpoint's output (as [`super::capture`] reads
/// it): a column index (`"0"`), or `score` / `$.score` for the score of a JSON answer (its first
/// value). `None` when the row has no such value.
pub fn attribute(row: &[String], attribute: &str) -> Option<String> {
    let attribute = attribute.trim();
    if let Ok(index) = attribute.parse::<usize>() {
        return row.get(index).cloned();
    }
    match attribute.trim_start_matches("$.").trim_start_matches('$') {
        "score" | "predictions" => row.first().cloned(),
        _ => None,
    }
}

/// A class label as compared: `1.0` and `1` are the same class.
pub fn normalize_label(label: &str) -> String {
    let label = label.trim();
    match label.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sagemakers_records() {
        let line = r#"{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "aaaa"}, "eventVersion": "0"}"#;
        assert_eq!(read(line).unwrap(), GroundTruth { event_id: "aaaa".into(), labels: vec!["1".into()] });
        let json = r#"{"groundTruthData": {"data": "[0, 1]", "encoding": "JSON"}, "eventMetadata": {"eventId": "b"}}"#;
        assert_eq!(read(json).unwrap().labels, ["0", "1"]);
        assert_eq!(
            read(r#"{"groundTruthData": {"data": "1"}}"#).unwrap_err(),
            GroundTruthError::Missing("eventMetadata.eventId")
        );
        assert!(read("{").is_err());
    }

    #[test]
    fn attributes_name_a_column_or_the_score() {
        let row = vec!["0.9".to_string(), "1".to_string()];
        assert_eq!(attribute(&row, "1").as_deref(), Some("1"));
        assert_eq!(attribute(&row, "$.score").as_deref(), Some("0.9"));
        assert_eq!(attribute(&row, "7"), None);
        assert_eq!(attribute(&row, "predicted_label"), None);
        assert_eq!((normalize_label("1.0"), normalize_label("cat")), ("1".to_string(), "cat".to_string()));
    }
}
