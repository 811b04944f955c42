//! `byom_model_quality_monitor` on the local target: the baseline from a CSV of predictions and
//! labels, and executions that join the window's captured predictions with ground truth (posted
//! through `POST /v1/ground-truth/{endpoint}` or uploaded under `monitor_ground_truth_input` in
//! SageMaker's layout) by `inferenceId`, else `eventId` (docs/MONITORING.md).

use super::LocalTarget;
use super::VARIANT;
use crate::analyzer::capture::{OutputPosition, RowLayout, read_record};
use crate::analyzer::ground_truth::{self, attribute, normalize_label};
use crate::analyzer::model_quality::{self, Example, ProblemType};
use crate::domain::plan::MonitorStage;
use crate::domain::spec::{ModelQualitySpec, ProblemType as SpecProblem};
use crate::store::{MonitorExecutionRecord, MonitorRecord};
use crate::targets::TargetError;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Labels are read from the window's start up to this long after its end (the label delay
/// allowed).
pub const MAX_LABEL_DELAY_DAYS: i64 = 7;

/// The positive class of binary problems.
const POSITIVE: &str = "1";

pub fn problem(p: SpecProblem) -> ProblemType {
    match p {
        SpecProblem::Regression => ProblemType::Regression,
        SpecProblem::BinaryClassification => ProblemType::BinaryClassification,
        SpecProblem::MulticlassClassification => ProblemType::MulticlassClassification,
    }
}

fn permanent(message: impl Into<String>) -> TargetError {
    TargetError::permanent(message)
}

/// A prediction (and probability) out of one row of the endpoint's output.
fn predicted(q: &ModelQualitySpec, row: &[String]) -> Option<(String, Option<f64>)> {
    let probability =
        q.monitor_probability_attribute.as_deref().and_then(|a| attribute(row, a)).and_then(|p| p.parse::<f64>().ok());
    let label = match (q.monitor_inference_attribute.as_deref(), probability, q.probability_threshold_attribute) {
        (_, Some(p), Some(threshold)) if q.problem_type == SpecProblem::BinaryClassification => {
            (if p >= threshold { "1" } else { "0" }).to_string()
        }
        (Some(a), _, _) => attribute(row, a)?,
        _ => return None,
    };
    let label = if q.problem_type == SpecProblem::Regression { label } else { normalize_label(&label) };
    Some((label, probability))
}

impl LocalTarget {
    /// The baseline: the named columns of `baseline_data` (by header name or 0-based index).
    pub(super) async fn model_quality_baseline(
        &self,
        params: &MonitorStage,
        q: &ModelQualitySpec,
    ) -> Result<(Value, Value, u64), TargetError> {
        let key = params.baseline_data.as_str();
        let bytes = self.artifacts.read_asset(key, 1 << 30).await.map_err(|e| match e {
            crate::artifacts::StorageError::NotFound { .. } => TargetError::not_found(format!(
                "baseline_data {key:?} is not in the assets bucket: upload it first (PUT /v1/assets/{key})"
            )),
            other => TargetError::transient(format!("reading baseline_data {key:?}: {other}")),
        })?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes.as_ref());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let column = |name: &str, field: &str| -> Result<usize, TargetError> {
            headers
                .iter()
                .position(|h| h == name)
                .or_else(|| name.parse().ok().filter(|i| *i < headers.len()))
                .ok_or_else(|| {
                    permanent(format!(
                        "{field} {name:?} names no column of baseline_data (columns: {})",
                        headers.join(", ")
                    ))
                })
        };
        let truth = column(&q.baseline_ground_truth_attribute, "baseline_ground_truth_attribute")?;
        let inference = column(&q.baseline_inference_attribute, "baseline_inference_attribute")?;
        let probability = match &q.baseline_probability_attribute {
            Some(name) => Some(column(name, "baseline_probability_attribute")?),
            None => None,
        };
        let classification = q.problem_type != SpecProblem::Regression;
        let mut examples = Vec::new();
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?;
            let get = |i: usize| record.get(i).unwrap_or("").to_string();
            let normalize = |v: String| if classification { normalize_label(&v) } else { v };
            let probability = match probability {
                Some(i) => Some(get(i).parse::<f64>().map_err(|_| {
                    permanent(format!(
                        "baseline_data {key:?}: line {}: the probability {:?} is not a number",
                        line + 2,
                        get(i)
                    ))
                })?),
                None => None,
            };
            examples.push(Example { label: normalize(get(truth)), prediction: normalize(get(inference)), probability });
        }
        let now = crate::store::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let problem = problem(q.problem_type);
        let statistics = model_quality::statistics(problem, &examples, POSITIVE, &now)
            .map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?;
        let constraints = model_quality::suggest_constraints(problem, &statistics);
        Ok((statistics, constraints, examples.len() as u64))
    }

    /// One execution: the window's predictions joined with their ground truth.
    pub(super) async fn model_quality_execution(
        &self,
        monitor: &MonitorRecord,
        execution: &MonitorExecutionRecord,
        stage: &MonitorStage,
        q: &ModelQualitySpec,
        constraints: &Value,
    ) -> Result<(Value, Value), TargetError> {
        let (start, end) = (execution.window_start, execution.window_end);
        // Captured predictions in the window, by join key.
        let layout = RowLayout { input: false, output: true, output_position: OutputPosition::Start };
        let endpoint = stage.endpoint_name.as_str();
        let capture = &stage.data_capture_location;
        let mut predictions: Vec<Captured> = Vec::new();
        let mut unreadable = 0u64;
        for object in self.hourly_objects(capture, &[endpoint, VARIANT], start, end).await? {
            let bytes = self.read_object(&object).await?;
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                match read_record(line, layout) {
                    Ok(Some(record)) => {
                        let Some(time) = record.time.filter(|t| *t >= start && *t < end) else { continue };
                        let Some(key) = record.metadata.inference_id.clone().or(record.metadata.event_id.clone())
                        else {
                            unreadable += 1;
                            continue;
                        };
                        let rows: Option<Vec<_>> = record.rows.iter().map(|r| predicted(q, r)).collect();
                        match rows {
                            Some(rows) => predictions.push((key, rows, time)),
                            None => unreadable += 1,
                        }
                    }
                    Ok(None) => {}
                    Err(_) => unreadable += 1,
                }
            }
        }
        // Ground truth collected from the window's start on, first record of an event id wins.
        let truth_location = stage
            .monitor_ground_truth_input
            .as_ref()
            .ok_or_else(|| permanent("the monitor has no monitor_ground_truth_input"))?;
        let until = (end + Duration::days(MAX_LABEL_DELAY_DAYS)).min(crate::store::now() + Duration::hours(1));
        let mut labels: HashMap<String, (Vec<String>, DateTime<Utc>)> = HashMap::new();
        let mut labels_read = 0u64;
        for object in self.hourly_objects(truth_location, &[], start, until).await? {
            let bytes = self.read_object(&object).await?;
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                if let Ok(truth) = ground_truth::read(line) {
                    labels_read += 1;
                    labels.entry(truth.event_id).or_insert((truth.labels, object.last_modified));
                }
            }
        }
        let classification = q.problem_type != SpecProblem::Regression;
        let mut examples = Vec::new();
        let mut delays: Vec<i64> = Vec::new();
        let mut labelled = 0u64;
        for (key, rows, time) in &predictions {
            let Some((truth, received)) = labels.get(key) else { continue };
            if truth.len() != rows.len() {
                continue; // a request of several rows needs one label per row
            }
            labelled += 1;
            delays.push((*received - *time).num_seconds().max(0));
            for ((prediction, probability), label) in rows.iter().zip(truth) {
                let label = if classification { normalize_label(label) } else { label.clone() };
                examples.push(Example { label, prediction: prediction.clone(), probability: *probability });
            }
        }
        if examples.is_empty() {
            return Err(permanent(format!(
                "no captured prediction in the window has ground truth ({} captured, {labels_read} labels read, none matching by inferenceId or eventId)",
                predictions.len()
            )));
        }
        delays.sort_unstable();
        let problem = problem(q.problem_type);
        let now = crate::store::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let statistics =
            model_quality::statistics(problem, &examples, POSITIVE, &now).map_err(|e| permanent(e.to_string()))?;
        let violations = model_quality::violations(problem, &statistics, constraints);
        let summary = json!({
            "rows": examples.len(),
            "records": predictions.len(),
            "labelled_records": labelled,
            "merge_rate": labelled as f64 / predictions.len() as f64,
            "label_delay_seconds": delays[delays.len() / 2],
            "unreadable_records": unreadable,
            "monitor": monitor.name,
        });
        Ok((json!({"statistics": statistics, "violations": violations}), summary))
    }
}

/// A captured request: its join key, each row's prediction (and probability), its time.
type Captured = (String, Vec<(String, Option<f64>)>, DateTime<Utc>);
