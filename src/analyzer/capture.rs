//! Rows out of SageMaker's data-capture records (reference sagemaker-formats.md B.6): one JSON
//! line per invocation, its input and output each `CSV`, `JSON` or `BASE64` encoded, any number of
//! rows per request. A row the data-quality analyzer sees is the output's fields and the input's
//! (Model Monitor's `output_columns_position`, `START` by default) for each request row.
//!
//! What a payload holds is read from its content type: CSV lines; JSON `{"instances": [...]}`,
//! a bare array of rows, `{"predictions": [...]}` or JSON lines; each row an array of values, one
//! value, or an object (`{"features": [...]}`, else its `score`, else all its values by key).

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "captureData")]
    capture_data: CaptureData,
    #[serde(rename = "eventMetadata", default)]
    event_metadata: EventMetadata,
}

#[derive(Debug, Deserialize)]
struct CaptureData {
    #[serde(rename = "endpointInput")]
    endpoint_input: Option<Payload>,
    #[serde(rename = "endpointOutput")]
    endpoint_output: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "observedContentType", default)]
    observed_content_type: String,
    data: String,
    encoding: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventMetadata {
    #[serde(rename = "eventId", default)]
    pub event_id: Option<String>,
    #[serde(rename = "inferenceId", default)]
    pub inference_id: Option<String>,
    #[serde(rename = "inferenceTime", default)]
    pub inference_time: Option<String>,
    #[serde(rename = "invocationSource", default)]
    pub invocation_source: Option<String>,
}

/// Where the output's fields go in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputPosition {
    Start,
    End,
}

/// Which parts of a record make a row (`captureIndexNames`).
#[derive(Debug, Clone, Copy)]
pub struct RowLayout {
    pub input: bool,
    pub output: bool,
    pub output_position: OutputPosition,
}

impl Default for RowLayout {
    fn default() -> Self {
        Self { input: true, output: true, output_position: OutputPosition::Start }
    }
}

/// One capture record, read.
#[derive(Debug)]
pub struct CapturedRows {
    pub rows: Vec<Vec<String>>,
    pub time: Option<DateTime<Utc>>,
    pub metadata: EventMetadata,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not a capture record: {0}")]
    Json(String),
    #[error("{part}: {message}")]
    Payload { part: &'static str, message: String },
    #[error("the output has {output} rows for {input} input rows")]
    RowCount { input: usize, output: usize },
}

/// Reads one capture line. `Ok(None)` for shadow-variant traffic, which the analyzer skips (B.9).
pub fn read_record(line: &str, layout: RowLayout) -> Result<Option<CapturedRows>, CaptureError> {
    let record: Record = serde_json::from_str(line).map_err(|e| CaptureError::Json(e.to_string()))?;
    if record.event_metadata.invocation_source.as_deref() == Some("ShadowExperiment") {
        return Ok(None);
    }
    let time = record
        .event_metadata
        .inference_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let part = |payload: &Option<Payload>,
                name: &'static str,
                wanted: bool|
     -> Result<Option<Vec<Vec<String>>>, CaptureError> {
        match (wanted, payload) {
            (false, _) | (true, None) => Ok(None),
            (true, Some(p)) => {
                payload_rows(p).map(Some).map_err(|message| CaptureError::Payload { part: name, message })
            }
        }
    };
    let input = part(&record.capture_data.endpoint_input, "endpointInput", layout.input)?;
    let output = part(&record.capture_data.endpoint_output, "endpointOutput", layout.output)?;
    let rows = match (input, output) {
        (Some(input), Some(output)) => {
            if input.len() != output.len() {
                return Err(CaptureError::RowCount { input: input.len(), output: output.len() });
            }
            input
                .into_iter()
                .zip(output)
                .map(|(i, o)| match layout.output_position {
                    OutputPosition::Start => o.into_iter().chain(i).collect(),
                    OutputPosition::End => i.into_iter().chain(o).collect(),
                })
                .collect()
        }
        (Some(rows), None) | (None, Some(rows)) => rows,
        (None, None) => Vec::new(),
    };
    Ok(Some(CapturedRows { rows, time, metadata: record.event_metadata }))
}

fn payload_rows(payload: &Payload) -> Result<Vec<Vec<String>>, String> {
    let bytes: Vec<u8> = match payload.encoding.as_str() {
        "CSV" | "JSON" => payload.data.clone().into_bytes(),
        "BASE64" => base64::engine::general_purpose::STANDARD
            .decode(payload.data.as_bytes())
            .map_err(|e| format!("not valid base64: {e}"))?,
        other => return Err(format!("unknown encoding {other:?}")),
    };
    let text = String::from_utf8(bytes).map_err(|_| "the payload is not UTF-8 text".to_string())?;
    let content_type = payload.observed_content_type.to_ascii_lowercase();
    let is_json = payload.encoding == "JSON" || content_type.contains("json");
    if is_json { json_rows(&text) } else { Ok(csv_rows(&text)) }
}

/// CSV lines without a header, blank lines skipped.
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    reader
        .records()
        .filter_map(Result::ok)
        .filter(|r| !(r.len() == 1 && r[0].trim().is_empty()))
        .map(|r| r.iter().map(|f| f.trim().to_string()).collect())
        .collect()
}

fn json_rows(text: &str) -> Result<Vec<Vec<String>>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok(document_rows(&value)),
        // JSON lines: one row per line.
        Err(_) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).map(|v| row(&v)).map_err(|e| format!("not JSON: {e}")))
            .collect(),
    }
}

fn document_rows(value: &Value) -> Vec<Vec<String>> {
    match value {
        Value::Object(map) => {
            for key in ["instances", "predictions", "inputs"] {
                if let Some(Value::Array(items)) = map.get(key) {
                    return items.iter().map(row).collect();
                }
            }
            vec![row(value)]
        }
        // A list of rows, or one row of plain values.
        Value::Array(items) if items.iter().any(|i| i.is_array() || i.is_object()) => items.iter().map(row).collect(),
        _ => vec![row(value)],
    }
}

fn row(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(field).collect(),
        Value::Object(map) => {
            if let Some(Value::Array(features)) = map.get("features") {
                features.iter().map(field).collect()
            } else if let Some(score) = map.get("score") {
                vec![field(score)]
            } else {
                map.values().map(field).collect()
            }
        }
        other => vec![field(other)],
    }
}

fn field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Column names for `width` fields: the baseline's, position by position, then `_c<i>`.
pub fn column_names(width: usize, baseline: &[String]) -> Vec<String> {
    (0..width).map(|i| baseline.get(i).cloned().unwrap_or_else(|| format!("_c{i}"))).collect()
}

/// Profiles the rows of capture records that fall in a window (`inferenceTime` in
/// `[start, end)`; records without a time are taken), naming columns after the baseline's
/// features. Records that cannot be read are skipped and counted.
pub struct WindowReader {
    layout: RowLayout,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    baseline: Vec<String>,
    profile: Option<super::profile::Profile>,
    /// Records read in the window.
    pub records: u64,
    /// Records that could not be read.
    pub unreadable: u64,
}

impl WindowReader {
    pub fn new(
        layout: RowLayout,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        baseline: Vec<String>,
    ) -> Self {
        Self { layout, start, end, baseline, profile: None, records: 0, unreadable: 0 }
    }

    /// Adds one capture line; the error of an unreadable one (already counted) is returned for
    /// the log.
    pub fn add_line(&mut self, line: &str) -> Result<(), CaptureError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        match read_record(line, self.layout) {
            Ok(Some(record)) => {
                let in_window =
                    record.time.is_none_or(|t| self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t < e));
                if in_window {
                    self.records += 1;
                    for fields in &record.rows {
                        self.add_row(fields);
                    }
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.unreadable += 1;
                Err(e)
            }
        }
    }

    /// Adds one row of fields (the first row sets the columns: at least the baseline's).
    pub fn add_row(&mut self, fields: &[String]) {
        self.profile_for(fields.len()).add_row(fields.iter().map(String::as_str));
    }

    /// [`Self::add_row`] for a batch of CSV records, profiled column by column in parallel.
    pub fn add_records(&mut self, records: &[csv::StringRecord]) {
        let Some(first) = records.first() else { return };
        self.profile_for(first.len()).add_records(records);
    }

    /// The profile, started with `width` columns (at least the baseline's) by the first row.
    fn profile_for(&mut self, width: usize) -> &mut super::profile::Profile {
        let width = width.max(self.baseline.len());
        let baseline = &self.baseline;
        self.profile.get_or_insert_with(|| super::profile::Profile::new(&column_names(width, baseline)))
    }

    /// Starts the profile with these columns (a CSV header) unless rows came first.
    pub fn set_columns(&mut self, names: &[String]) {
        if self.profile.is_none() {
            self.profile = Some(super::profile::Profile::new(names));
        }
    }

    /// The window's profile (the baseline's columns, empty, when no row came).
    pub fn into_profile(self) -> super::profile::Profile {
        self.profile.unwrap_or_else(|| super::profile::Profile::new(&self.baseline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(input: (&str, &str, &str), output: (&str, &str, &str)) -> String {
        serde_json::json!({"captureData": {
            "endpointInput": {"observedContentType": input.0, "mode": "INPUT", "data": input.1, "encoding": input.2},
            "endpointOutput": {"observedContentType": output.0, "mode": "OUTPUT", "data": output.1, "encoding": output.2}},
            "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-12-03T07:15:00Z"}, "eventVersion": "0"})
        .to_string()
    }

    #[test]
    fn csv_json_and_base64_records_give_output_then_input_rows() {
        let layout = RowLayout::default();
        let csv = read_record(&record(("text/csv", "1,2\n3,4\n", "CSV"), ("text/csv", "0.1\n0.9\n", "CSV")), layout)
            .unwrap()
            .unwrap();
        assert_eq!(csv.rows, [["0.1", "1", "2"], ["0.9", "3", "4"]]);
        assert_eq!(csv.time.unwrap().to_rfc3339(), "2026-12-03T07:15:00+00:00");

        let json = read_record(
            &record(
                ("application/json", r#"{"instances": [[1, "a"], {"features": [2, null]}]}"#, "JSON"),
                ("application/json", r#"{"predictions": [{"score": 0.5}, {"score": 0.25}]}"#, "JSON"),
            ),
            layout,
        )
        .unwrap()
        .unwrap();
        assert_eq!(json.rows, [["0.5", "1", "a"], ["0.25", "2", ""]]);

        let encoded = base64::engine::general_purpose::STANDARD.encode("5,6");
        let b64 =
            read_record(&record(("text/csv", &encoded, "BASE64"), ("text/csv", "1", "CSV")), layout).unwrap().unwrap();
        assert_eq!(b64.rows, [["1", "5", "6"]]);

        let end = RowLayout { output_position: OutputPosition::End, ..layout };
        let rows =
            read_record(&record(("text/csv", "1,2", "CSV"), ("text/csv", "9", "CSV")), end).unwrap().unwrap().rows;
        assert_eq!(rows, [["1", "2", "9"]]);
    }

    #[test]
    fn mismatched_and_shadow_records() {
        let layout = RowLayout::default();
        let error = read_record(&record(("text/csv", "1\n2\n", "CSV"), ("text/csv", "0", "CSV")), layout).unwrap_err();
        assert!(error.to_string().contains("1 rows for 2 input rows"), "{error}");
        let mut shadow: Value =
            serde_json::from_str(&record(("text/csv", "1", "CSV"), ("text/csv", "0", "CSV"))).unwrap();
        shadow["eventMetadata"]["invocationSource"] = "ShadowExperiment".into();
        assert!(read_record(&shadow.to_string(), layout).unwrap().is_none());
        assert!(read_record("{not json", layout).is_err());
    }
}
