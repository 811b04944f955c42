//! The model-quality inputs: a baseline CSV of labels and predictions, and a window's captured
//! predictions joined with their ground truth by `inferenceId`, else `eventId` (reference
//! sagemaker-formats.md B.5). Reads lines handed to it; where they come from (the object store,
//! a job's directories) is the caller's business.

use super::capture::{OutputPosition, RowLayout, read_record};
use super::ground_truth::{self, attribute, normalize_label};
use super::model_quality::{Example, ProblemType};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Which values of the endpoint's output are the prediction and its probability.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub problem: ProblemType,
    /// The predicted label (`inference_attribute`): a column index or `$.score`.
    pub inference: Option<String>,
    /// The probability (`probability_attribute`).
    pub probability: Option<String>,
    /// A binary problem's probability at or above this is class `1`.
    pub probability_threshold: Option<f64>,
}

impl Attributes {
    /// The prediction (and probability) in one row of the endpoint's output.
    pub fn predicted(&self, row: &[String]) -> Option<(String, Option<f64>)> {
        let probability =
            self.probability.as_deref().and_then(|a| attribute(row, a)).and_then(|p| p.parse::<f64>().ok());
        let label = match (self.inference.as_deref(), probability, self.probability_threshold) {
            (_, Some(p), Some(threshold)) if self.problem == ProblemType::BinaryClassification => {
                (if p >= threshold { "1" } else { "0" }).to_string()
            }
            (Some(a), _, _) => attribute(row, a)?,
            _ => return None,
        };
        Some((label_of(self.problem, &label), probability))
    }
}

/// A label or prediction as compared: class labels normalised (`1.0` is `1`), regression values
/// as they are.
fn label_of(problem: ProblemType, text: &str) -> String {
    if problem == ProblemType::Regression { text.to_string() } else { normalize_label(text) }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// The baseline CSV cannot be read, or a column it should have is not there.
    #[error("{0}")]
    Baseline(String),
    #[error(
        "no captured prediction in the window has ground truth ({records} captured, {labels} labels read, none matching by inferenceId or eventId)"
    )]
    NothingLabelled { records: usize, labels: u64 },
}

/// The baseline's examples: the columns named `truth`, `inference` and `probability` (by header
/// name or 0-based index) of a CSV with a header row.
pub fn baseline_examples(
    reader: impl std::io::Read,
    problem: ProblemType,
    truth: &str,
    inference: &str,
    probability: Option<&str>,
) -> Result<Vec<Example>, MergeError> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers: Vec<String> =
        csv.headers().map_err(|e| MergeError::Baseline(e.to_string()))?.iter().map(str::to_string).collect();
    let column = |name: &str, field: &str| {
        headers.iter().position(|h| h == name).or_else(|| name.parse().ok().filter(|i| *i < headers.len())).ok_or_else(
            || MergeError::Baseline(format!("{field} {name:?} names no column (columns: {})", headers.join(", "))),
        )
    };
    let truth = column(truth, "baseline_ground_truth_attribute")?;
    let inference = column(inference, "baseline_inference_attribute")?;
    let probability = probability.map(|name| column(name, "baseline_probability_attribute")).transpose()?;
    let mut examples = Vec::new();
    for (line, record) in csv.records().enumerate() {
        let record = record.map_err(|e| MergeError::Baseline(e.to_string()))?;
        let get = |i: usize| record.get(i).unwrap_or("");
        let probability = match probability {
            Some(i) => Some(get(i).parse::<f64>().map_err(|_| {
                MergeError::Baseline(format!("line {}: the probability {:?} is not a number", line + 2, get(i)))
            })?),
            None => None,
        };
        examples.push(Example {
            label: label_of(problem, get(truth)),
            prediction: label_of(problem, get(inference)),
            probability,
        });
    }
    Ok(examples)
}

/// A captured request: its join key, each row's prediction (and probability), its time.
type Captured = (String, Vec<(String, Option<f64>)>, DateTime<Utc>);

/// What the join found, beside the examples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MergeSummary {
    /// Examples (rows) with a label.
    pub rows: usize,
    /// Captured requests in the window.
    pub records: usize,
    pub labelled_records: u64,
    pub merge_rate: f64,
    /// The median time from inference to its label's arrival.
    pub label_delay_seconds: i64,
    pub unreadable_records: u64,
}

/// A labelled example and the request row it was predicted from.
pub type WithInput = (Example, Vec<String>);

/// Joins a window's captured predictions with ground truth.
pub struct Merge {
    attributes: Attributes,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    predictions: Vec<Captured>,
    /// Labels by event id, first record of an id wins, with when it arrived.
    labels: HashMap<String, (Vec<String>, DateTime<Utc>)>,
    labels_read: u64,
    unreadable: u64,
    /// The requests' input rows by key, when kept (the bias monitor's facets are features).
    inputs: Option<HashMap<String, Vec<Vec<String>>>>,
}

impl Merge {
    /// Predictions with `inferenceTime` in `[start, end)` count.
    pub fn new(attributes: Attributes, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            attributes,
            start,
            end,
            predictions: Vec::new(),
            labels: HashMap::new(),
            labels_read: 0,
            unreadable: 0,
            inputs: None,
        }
    }

    /// Keeps each request's input rows too (see [`Self::finish_with_inputs`]).
    pub fn keeping_inputs(mut self) -> Self {
        self.inputs = Some(HashMap::new());
        self
    }

    /// One line of the endpoint's capture.
    pub fn add_capture_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let layout = RowLayout { input: false, output: true, output_position: OutputPosition::Start };
        match read_record(line, layout) {
            Ok(Some(record)) => {
                let Some(time) = record.time.filter(|t| *t >= self.start && *t < self.end) else { return };
                let Some(key) = record.metadata.inference_id.clone().or(record.metadata.event_id.clone()) else {
                    self.unreadable += 1;
                    return;
                };
                let rows: Option<Vec<_>> = record.rows.iter().map(|r| self.attributes.predicted(r)).collect();
                let Some(rows) = rows else {
                    self.unreadable += 1;
                    return;
                };
                if let Some(inputs) = &mut self.inputs {
                    let layout = RowLayout { input: true, output: false, output_position: OutputPosition::Start };
                    match read_record(line, layout) {
                        Ok(Some(input)) if input.rows.len() == rows.len() => {
                            inputs.insert(key.clone(), input.rows);
                        }
                        _ => {
                            self.unreadable += 1;
                            return;
                        }
                    }
                }
                self.predictions.push((key, rows, time));
            }
            Ok(None) => {}
            Err(_) => self.unreadable += 1,
        }
    }

    /// One ground-truth line, which arrived at `received`; unreadable ones are skipped.
    pub fn add_label_line(&mut self, line: &str, received: DateTime<Utc>) {
        if line.trim().is_empty() {
            return;
        }
        if let Ok(truth) = ground_truth::read(line) {
            self.labels_read += 1;
            self.labels.entry(truth.event_id).or_insert((truth.labels, received));
        }
    }

    /// The labelled examples: a request of several rows needs one label per row.
    pub fn finish(self) -> Result<(Vec<Example>, MergeSummary), MergeError> {
        let (examples, summary) = self.finish_with_inputs()?;
        Ok((examples.into_iter().map(|(e, _)| e).collect(), summary))
    }

    /// [`Self::finish`], each example with its input row (empty unless inputs were kept).
    pub fn finish_with_inputs(self) -> Result<(Vec<WithInput>, MergeSummary), MergeError> {
        let mut examples = Vec::new();
        let mut delays: Vec<i64> = Vec::new();
        let mut labelled = 0u64;
        for (key, rows, time) in &self.predictions {
            let Some((truth, received)) = self.labels.get(key) else { continue };
            if truth.len() != rows.len() {
                continue;
            }
            labelled += 1;
            delays.push((*received - *time).num_seconds().max(0));
            let inputs = self.inputs.as_ref().and_then(|i| i.get(key));
            for (i, ((prediction, probability), label)) in rows.iter().zip(truth).enumerate() {
                let example = Example {
                    label: label_of(self.attributes.problem, label),
                    prediction: prediction.clone(),
                    probability: *probability,
                };
                examples.push((example, inputs.and_then(|rows| rows.get(i)).cloned().unwrap_or_default()));
            }
        }
        if examples.is_empty() {
            return Err(MergeError::NothingLabelled { records: self.predictions.len(), labels: self.labels_read });
        }
        delays.sort_unstable();
        let summary = MergeSummary {
            rows: examples.len(),
            records: self.predictions.len(),
            labelled_records: labelled,
            merge_rate: labelled as f64 / self.predictions.len() as f64,
            label_delay_seconds: delays[delays.len() / 2],
            unreadable_records: self.unreadable,
        };
        Ok((examples, summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2026-01-01T10:{minute:02}:00Z").parse().unwrap()
    }

    fn capture(event: &str, inference_id: Option<&str>, minute: u32, output: &str) -> String {
        let mut metadata = serde_json::json!({"eventId": event, "inferenceTime": at(minute).to_rfc3339()});
        if let Some(id) = inference_id {
            metadata["inferenceId"] = id.into();
        }
        serde_json::json!({
            "captureData": {"endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": output, "encoding": "CSV"}},
            "eventMetadata": metadata,
            "eventVersion": "0"
        })
        .to_string()
    }

    fn label(event: &str, data: &str) -> String {
        serde_json::json!({"groundTruthData": {"data": data, "encoding": "CSV"}, "eventMetadata": {"eventId": event}, "eventVersion": "0"}).to_string()
    }

    fn binary() -> Attributes {
        Attributes {
            problem: ProblemType::BinaryClassification,
            inference: Some("0".into()),
            probability: Some("0".into()),
            probability_threshold: Some(0.5),
        }
    }

    #[test]
    fn joins_by_inference_id_else_event_id_within_the_window() {
        let mut merge = Merge::new(binary(), at(0), at(30));
        merge.add_capture_line(&capture("e1", Some("i1"), 5, "0.9"));
        merge.add_capture_line(&capture("e2", None, 6, "0.2"));
        merge.add_capture_line(&capture("e3", None, 7, "0.7"));
        merge.add_capture_line(&capture("e4", None, 45, "0.7")); // after the window
        merge.add_capture_line("not json");
        merge.add_label_line(&label("i1", "1"), at(15));
        merge.add_label_line(&label("e2", "1"), at(26));
        merge.add_label_line(&label("e2", "0"), at(27)); // the first label of an id wins
        merge.add_label_line(&label("e4", "1"), at(50));
        let (examples, summary) = merge.finish().unwrap();
        let pairs: Vec<(&str, &str)> = examples.iter().map(|e| (e.label.as_str(), e.prediction.as_str())).collect();
        assert_eq!(pairs, [("1", "1"), ("1", "0")]);
        assert_eq!((summary.records, summary.labelled_records, summary.unreadable_records), (3, 2, 1));
        assert!((summary.merge_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(summary.label_delay_seconds, 20 * 60, "median of 10 and 20 minutes, upper");
    }

    #[test]
    fn nothing_labelled_is_an_error_with_the_counts() {
        let mut merge = Merge::new(binary(), at(0), at(30));
        merge.add_capture_line(&capture("e1", None, 5, "0.9"));
        merge.add_label_line(&label("other", "1"), at(6));
        assert_eq!(merge.finish().unwrap_err(), MergeError::NothingLabelled { records: 1, labels: 1 });
    }

    #[test]
    fn baseline_columns_by_name_or_index() {
        let csv = "label,prob,pred\n1,0.9,1.0\n0,0.4,0\n";
        let examples =
            baseline_examples(csv.as_bytes(), ProblemType::BinaryClassification, "label", "2", Some("prob")).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!((examples[0].label.as_str(), examples[0].prediction.as_str()), ("1", "1"));
        assert_eq!(examples[1].probability, Some(0.4));
        let error = baseline_examples(csv.as_bytes(), ProblemType::Regression, "truth", "pred", None).unwrap_err();
        assert!(error.to_string().contains("baseline_ground_truth_attribute \"truth\""), "{error}");
        let bad = "label,prob,pred\n1,high,1\n";
        let error = baseline_examples(bad.as_bytes(), ProblemType::BinaryClassification, "label", "pred", Some("prob"))
            .unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
