//! The monitoring-job contract (reference sagemaker-formats.md B.7): what a SageMaker processing
//! job gives the analyzer image — `dataset_format`, `dataset_source`, `output_path`,
//! `start_time`/`end_time`, `baseline_statistics`/`baseline_constraints`,
//! `publish_cloudwatch_metrics`, the endpoint and schedule names — and what it must leave behind.
//!
//! Without baseline files the job is a baselining job: it profiles the dataset and writes
//! `statistics.json` and `constraints.json`. With them it is a monitoring run: it profiles the
//! window (capture records whose `inferenceTime` falls in `[start_time, end_time)`), writes
//! `statistics.json` and `constraint_violations.json`, and with metrics enabled CloudWatch
//! metrics as JSON lines under the metrics directory. `mlops analyze` runs it.

use super::capture::{self, OutputPosition, RowLayout};
use super::check::{Report, check};
use super::constraints::{Constraints, suggest};
use super::merge;
use super::model_quality::{self, ProblemType};
use super::profile::Profile;
use super::statistics::{Statistics, statistics};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Where a SageMaker job's container writes CloudWatch metrics.
pub const DEFAULT_METRICS_DIR: &str = "/opt/ml/output/metrics/cloudwatch";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("`{name}` is required")]
    Missing { name: &'static str },
    #[error("`{name}`: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Check(#[from] super::check::CheckError),
}

/// How the dataset is laid out (`dataset_format`).
#[derive(Debug, Clone)]
pub enum DatasetFormat {
    Csv { header: bool, output_position: OutputPosition },
    JsonLines,
    Capture(RowLayout),
}

/// What the job computes (`analysis_type`).
#[derive(Debug, Clone)]
pub enum Analysis {
    /// `DATA_QUALITY` (the default): statistics and constraints of the features.
    DataQuality,
    /// `MODEL_QUALITY`: predictions against ground truth.
    ModelQuality(ModelQualityEnv),
}

/// A model-quality job's variables. A baselining job reads a CSV with a header whose columns
/// `ground_truth_attribute`, `inference_attribute` and `probability_attribute` name; a monitoring
/// run reads the endpoint's capture (`dataset_source`) and the labels under
/// `ground_truth_source` (SageMaker's ground-truth JSON lines; a file's modification time is
/// when its labels arrived) and joins them by `inferenceId`, else `eventId`.
#[derive(Debug, Clone)]
pub struct ModelQualityEnv {
    /// The problem and where the prediction and probability are (`inference_attribute`,
    /// `probability_attribute`, `probability_threshold_attribute`): the baseline CSV's columns,
    /// or the captured answers' values.
    pub attributes: merge::Attributes,
    pub ground_truth_attribute: Option<String>,
    pub ground_truth_source: Option<PathBuf>,
    /// The positive class of a binary problem (`positive_label`, default `1`).
    pub positive_label: String,
}

#[derive(Debug, Clone)]
pub struct JobEnv {
    pub analysis: Analysis,
    pub dataset_format: DatasetFormat,
    pub dataset_source: PathBuf,
    pub output_path: PathBuf,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub baseline_statistics: Option<PathBuf>,
    pub baseline_constraints: Option<PathBuf>,
    pub publish_cloudwatch_metrics: bool,
    pub endpoint_name: Option<String>,
    pub schedule_name: Option<String>,
    pub metrics_dir: PathBuf,
}

fn parse_time(name: &'static str, text: Option<String>) -> Result<Option<DateTime<Utc>>, JobError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| JobError::Invalid { name, message: format!("{t:?} is not an ISO-8601 time: {e}") })
        })
        .transpose()
}

fn parse_format(text: &str) -> Result<DatasetFormat, JobError> {
    let invalid = |message: String| JobError::Invalid { name: "dataset_format", message };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let position = |v: &Value| match v.get("output_columns_position").and_then(Value::as_str) {
        Some(p) if p.eq_ignore_ascii_case("END") => OutputPosition::End,
        _ => OutputPosition::Start,
    };
    if let Some(csv) = value.get("csv") {
        let header = csv.get("header").and_then(Value::as_bool).unwrap_or(false);
        return Ok(DatasetFormat::Csv { header, output_position: position(csv) });
    }
    if value.get("json").is_some() {
        return Ok(DatasetFormat::JsonLines);
    }
    if let Some(capture) = value.get("sagemakerCaptureJson") {
        let names: Vec<&str> = capture
            .get("captureIndexNames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_else(|| vec!["endpointInput", "endpointOutput"]);
        return Ok(DatasetFormat::Capture(RowLayout {
            input: names.contains(&"endpointInput"),
            output: names.contains(&"endpointOutput"),
            output_position: position(capture),
        }));
    }
    Err(invalid(format!("{text} names no format this analyzer reads (csv, json, sagemakerCaptureJson)")))
}

impl JobEnv {
    /// Reads the contract from variables (`get` is `std::env::var` in the command).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, JobError> {
        let required = |name: &'static str| get(name).filter(|v| !v.is_empty()).ok_or(JobError::Missing { name });
        let path = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let analysis = match get("analysis_type").filter(|v| !v.is_empty()).as_deref() {
            None | Some("DATA_QUALITY") => Analysis::DataQuality,
            Some("MODEL_QUALITY") => {
                let problem_type = required("problem_type")?;
                let problem: ProblemType =
                    serde_json::from_value(Value::String(problem_type.clone())).map_err(|_| JobError::Invalid {
                        name: "problem_type",
                        message: format!(
                            "{problem_type:?} is not Regression, BinaryClassification or MulticlassClassification"
                        ),
                    })?;
                let text = |name: &str| get(name).filter(|v| !v.is_empty());
                let probability_threshold = text("probability_threshold_attribute")
                    .map(|t| {
                        t.parse::<f64>().map_err(|_| JobError::Invalid {
                            name: "probability_threshold_attribute",
                            message: format!("{t:?} is not a number"),
                        })
                    })
                    .transpose()?;
                Analysis::ModelQuality(ModelQualityEnv {
                    attributes: merge::Attributes {
                        problem,
                        inference: text("inference_attribute"),
                        probability: text("probability_attribute"),
                        probability_threshold,
                    },
                    ground_truth_attribute: text("ground_truth_attribute"),
                    ground_truth_source: path("ground_truth_source"),
                    positive_label: text("positive_label").unwrap_or_else(|| "1".into()),
                })
            }
            Some(other) => {
                return Err(JobError::Invalid {
                    name: "analysis_type",
                    message: format!("{other:?} is not DATA_QUALITY or MODEL_QUALITY"),
                });
            }
        };
        Ok(Self {
            analysis,
            dataset_format: parse_format(&required("dataset_format")?)?,
            dataset_source: PathBuf::from(required("dataset_source")?),
            output_path: PathBuf::from(required("output_path")?),
            start_time: parse_time("start_time", get("start_time"))?,
            end_time: parse_time("end_time", get("end_time"))?,
            baseline_statistics: path("baseline_statistics"),
            baseline_constraints: path("baseline_constraints"),
            publish_cloudwatch_metrics: get("publish_cloudwatch_metrics")
                .is_some_and(|v| v.eq_ignore_ascii_case("enabled")),
            endpoint_name: get("sagemaker_endpoint_name").filter(|v| !v.is_empty()),
            schedule_name: get("sagemaker_monitoring_schedule_name").filter(|v| !v.is_empty()),
            metrics_dir: path("MLOPS_CLOUDWATCH_METRICS_DIR").unwrap_or_else(|| PathBuf::from(DEFAULT_METRICS_DIR)),
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobOutcome {
    /// `baseline` or `monitoring`.
    pub mode: &'static str,
    pub rows: u64,
    /// Capture records read in the window, and those that could not be read (skipped, counted).
    pub records: u64,
    pub unreadable_records: u64,
    pub violations: usize,
    pub files: Vec<String>,
    /// Per-feature drift of a monitoring run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// How a model-quality run's predictions met their labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<merge::MergeSummary>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> JobError {
    JobError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// Every file under `dir` (or `dir` itself), in name order.
fn files(dir: &Path) -> Result<Vec<PathBuf>, JobError> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io_error(&d, e))? {
            let path = entry.map_err(|e| io_error(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, JobError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io_error(path, e))
}

fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize, files: &mut Vec<String>) -> Result<(), JobError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).expect("analyzer files serialise");
    // Written beside and renamed: a reader never sees half a file.
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, text).map_err(|e| io_error(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| io_error(&path, e))?;
    files.push(path.display().to_string());
    Ok(())
}

/// Profiles the dataset as `dataset_format` says.
fn profile_dataset(env: &JobEnv, baseline: Option<&Constraints>) -> Result<capture::WindowReader, JobError> {
    let names: Vec<String> = baseline.map(|c| c.features.iter().map(|f| f.name.clone()).collect()).unwrap_or_default();
    let layout = match &env.dataset_format {
        DatasetFormat::Capture(layout) => *layout,
        _ => RowLayout::default(),
    };
    let mut reader = capture::WindowReader::new(layout, env.start_time, env.end_time, names);
    for path in files(&env.dataset_source)? {
        let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
        match &env.dataset_format {
            DatasetFormat::Csv { header, .. } => {
                let mut csv = csv::ReaderBuilder::new().has_headers(*header).flexible(true).from_reader(file);
                if *header && baseline.is_none() {
                    let names: Vec<String> =
                        csv.headers().map_err(|e| io_error(&path, e))?.iter().map(str::to_string).collect();
                    super::distinct_names(&names).map_err(|e| io_error(&path, e))?;
                    reader.set_columns(&names);
                }
                super::for_each_batch(&mut csv, |records| reader.add_records(records))
                    .map_err(|e| io_error(&path, e))?;
            }
            DatasetFormat::Capture(_) => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(|e| io_error(&path, e))?;
                    if let Err(e) = reader.add_line(&line) {
                        tracing::warn!(file = %path.display(), error = %e, "skipped a capture record");
                    }
                }
            }
            DatasetFormat::JsonLines => {
                for line in BufReader::new(file).lines() {
                    let line = line.map_err(|e| io_error(&path, e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let text = |v: Value| match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    match serde_json::from_str::<Value>(&line) {
                        Ok(Value::Object(map)) => {
                            let (keys, values): (Vec<String>, Vec<String>) =
                                map.into_iter().map(|(k, v)| (k, text(v))).unzip();
                            if baseline.is_none() {
                                reader.set_columns(&keys);
                            }
                            reader.add_row(&values);
                        }
                        Ok(Value::Array(items)) => reader.add_row(&items.into_iter().map(text).collect::<Vec<_>>()),
                        _ => reader.unreadable += 1,
                    }
                }
            }
        }
    }
    Ok(reader)
}

/// Runs the job: a baselining job without baseline files, a monitoring run with them.
pub fn run(env: &JobEnv) -> Result<JobOutcome, JobError> {
    if let Analysis::ModelQuality(quality) = &env.analysis {
        return run_model_quality(env, quality);
    }
    let mut files = Vec::new();
    let baseline = match (&env.baseline_statistics, &env.baseline_constraints) {
        (Some(s), Some(c)) => Some((read_json::<Statistics>(s)?, read_json::<Constraints>(c)?)),
        (None, None) => None,
        (Some(_), None) => return Err(JobError::Missing { name: "baseline_constraints" }),
        (None, Some(_)) => return Err(JobError::Missing { name: "baseline_statistics" }),
    };
    let reader = profile_dataset(env, baseline.as_ref().map(|(_, c)| c))?;
    let (records, unreadable) = (reader.records, reader.unreadable);
    let mut profile = reader.into_profile();
    let stats = statistics(&mut profile);
    write_json(&env.output_path, "statistics.json", &stats, &mut files)?;
    let Some((baseline_stats, constraints)) = baseline else {
        write_json(&env.output_path, "constraints.json", &suggest(&profile), &mut files)?;
        return Ok(JobOutcome {
            mode: "baseline",
            rows: profile.rows,
            records,
            unreadable_records: unreadable,
            violations: 0,
            files,
            report: None,
            merge: None,
        });
    };
    let report = check(&baseline_stats, &constraints, &profile)?;
    let violations = super::check::Violations { violations: report.violations.clone() };
    write_json(&env.output_path, "constraint_violations.json", &violations, &mut files)?;
    if env.publish_cloudwatch_metrics {
        files.push(write_metrics(env, &stats, &profile, &report)?);
    }
    Ok(JobOutcome {
        mode: "monitoring",
        rows: profile.rows,
        records,
        unreadable_records: unreadable,
        violations: report.violations.len(),
        files,
        report: Some(report),
        merge: None,
    })
}

/// A model-quality job: the baseline's metrics and constraints, or a window's metrics and
/// violations against `baseline_constraints`.
fn run_model_quality(env: &JobEnv, quality: &ModelQualityEnv) -> Result<JobOutcome, JobError> {
    let mut written = Vec::new();
    let problem = quality.attributes.problem;
    let evaluation_time = env.end_time.unwrap_or_else(Utc::now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let metrics = |examples: &[model_quality::Example]| {
        model_quality::statistics(problem, examples, &quality.positive_label, &evaluation_time)
            .map_err(|e| JobError::Invalid { name: "dataset_source", message: e.to_string() })
    };
    let Some(constraints_path) = &env.baseline_constraints else {
        if !matches!(env.dataset_format, DatasetFormat::Csv { header: true, .. }) {
            return Err(JobError::Invalid {
                name: "dataset_format",
                message: "a model-quality baseline is a CSV with a header: {\"csv\": {\"header\": true}}".into(),
            });
        }
        let column = |name: &'static str, value: &Option<String>| value.clone().ok_or(JobError::Missing { name });
        let truth = column("ground_truth_attribute", &quality.ground_truth_attribute)?;
        let inference = column("inference_attribute", &quality.attributes.inference)?;
        let mut examples = Vec::new();
        for path in files(&env.dataset_source)? {
            let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
            let read = merge::baseline_examples(
                BufReader::new(file),
                problem,
                &truth,
                &inference,
                quality.attributes.probability.as_deref(),
            )
            .map_err(|e| io_error(&path, e))?;
            examples.extend(read);
        }
        let statistics = metrics(&examples)?;
        write_json(&env.output_path, "statistics.json", &statistics, &mut written)?;
        let constraints = model_quality::suggest_constraints(problem, &statistics);
        write_json(&env.output_path, "constraints.json", &constraints, &mut written)?;
        return Ok(JobOutcome {
            mode: "baseline",
            rows: examples.len() as u64,
            records: 0,
            unreadable_records: 0,
            violations: 0,
            files: written,
            report: None,
            merge: None,
        });
    };
    let constraints: Value = read_json(constraints_path)?;
    let truth_source = quality.ground_truth_source.as_ref().ok_or(JobError::Missing { name: "ground_truth_source" })?;
    let start = env.start_time.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let end = env.end_time.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut merged = merge::Merge::new(quality.attributes.clone(), start, end);
    for path in files(&env.dataset_source)? {
        for line in BufReader::new(std::fs::File::open(&path).map_err(|e| io_error(&path, e))?).lines() {
            merged.add_capture_line(&line.map_err(|e| io_error(&path, e))?);
        }
    }
    for path in files(truth_source)? {
        let file = std::fs::File::open(&path).map_err(|e| io_error(&path, e))?;
        let arrived =
            file.metadata().and_then(|m| m.modified()).map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        for line in BufReader::new(file).lines() {
            merged.add_label_line(&line.map_err(|e| io_error(&path, e))?, arrived);
        }
    }
    let (examples, summary) =
        merged.finish().map_err(|e| JobError::Invalid { name: "ground_truth_source", message: e.to_string() })?;
    let statistics = metrics(&examples)?;
    write_json(&env.output_path, "statistics.json", &statistics, &mut written)?;
    let violations = model_quality::violations(problem, &statistics, &constraints);
    write_json(&env.output_path, "constraint_violations.json", &violations, &mut written)?;
    Ok(JobOutcome {
        mode: "monitoring",
        rows: examples.len() as u64,
        records: summary.records as u64,
        unreadable_records: summary.unreadable_records,
        violations: violations["violations"].as_array().map_or(0, Vec::len),
        files: written,
        report: None,
        merge: Some(summary),
    })
}

/// The data-quality metrics Model Monitor publishes (B.7), one PutMetricData datum per line.
fn write_metrics(env: &JobEnv, stats: &Statistics, profile: &Profile, report: &Report) -> Result<String, JobError> {
    let timestamp = env.end_time.unwrap_or_else(Utc::now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dimensions = match (&env.endpoint_name, &env.schedule_name) {
        (Some(endpoint), Some(schedule)) => {
            json!([{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}])
        }
        (None, Some(schedule)) => json!([{"Name": "MonitoringSchedule", "Value": schedule}]),
        _ => json!([]),
    };
    let mut lines = Vec::new();
    for (feature, column) in stats.features.iter().zip(&profile.columns) {
        if let Some(n) = &feature.numerical_statistics {
            lines.push(json!({"MetricName": format!("feature_data_{}", feature.name), "Timestamp": timestamp,
                "Dimensions": dimensions, "StatisticValues": {"SampleCount": n.common.num_present as f64,
                "Sum": n.sum, "Minimum": n.min, "Maximum": n.max}, "Unit": "None"}));
        }
        lines.push(json!({"MetricName": format!("feature_non_null_{}", feature.name), "Timestamp": timestamp,
            "Dimensions": dimensions, "Value": column.completeness(), "Unit": "None"}));
    }
    for drift in &report.drift {
        lines.push(json!({"MetricName": format!("feature_baseline_drift_{}", drift.feature), "Timestamp": timestamp,
            "Dimensions": dimensions, "Value": drift.distance, "Unit": "None"}));
    }
    let dir = &env.metrics_dir;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let path = dir.join("metrics.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).map_err(|e| io_error(&path, e))?;
    Ok(path.display().to_string())
}
