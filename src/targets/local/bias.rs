//! `byom_model_bias_monitor` on the local target (issue 15): the baseline labels
//! `baseline_data` (label first, then the features) with the monitored endpoint's model, called
//! outside its invocation path (`serving::rows`), and writes Clarify's bias `analysis.json` (pre-
//! and post-training metrics per facet, as smclarify computes them); each execution joins the
//! window's captured requests with their ground truth (as the model-quality monitor does, keeping
//! the inputs: the facets are features), computes the same metrics and writes `bias_drift_check`
//! violations where a metric moved farther from 0 than the baseline's (docs/MONITORING.md).

use super::LocalTarget;
use crate::analyzer::bias::{
    self, BiasData, ColumnType, DriftViolation, FacetReport, Metric, MetricOut, Selector, column_type, select,
};
use crate::analyzer::merge::{Attributes, Merge};
use crate::analyzer::model_quality::ProblemType;
use crate::domain::plan::MonitorStage;
use crate::domain::spec::ModelBiasSpec;
use crate::serving::rows::RowModel;
use crate::store::{MonitorExecutionRecord, MonitorRecord};
use crate::targets::TargetError;
use serde_json::{Map, Value, json};

/// The metrics of one facet value: (facet, value, pre- and post-training metrics).
type FacetMetrics = (String, String, Vec<Metric>);

/// Baseline rows labelled at most (memory and time stay bounded; the summary says how many).
pub const MAX_BASELINE_ROWS: usize = 100_000;

fn permanent(message: impl Into<String>) -> TargetError {
    TargetError::permanent(message)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One facet of `bias_config`: its column and the values (or threshold) of its sensitive group;
/// none given: each value in turn against the rest.
struct Facet {
    name: String,
    values: Vec<String>,
}

/// `bias_config` as Clarify's `BiasConfig` takes it.
struct Config {
    label_values: Vec<String>,
    facets: Vec<Facet>,
    group: Option<String>,
}

fn config(b: &ModelBiasSpec) -> Result<Config, TargetError> {
    let c = &b.bias_config;
    let label_values = strings(c.get("label_values_or_threshold").unwrap_or(&Value::Null));
    if label_values.is_empty() {
        return Err(permanent("bias_config.label_values_or_threshold is empty"));
    }
    let names = strings(c.get("facet_name").unwrap_or(&Value::Null));
    let values = c.get("facet_values_or_threshold").cloned().unwrap_or(Value::Null);
    // One facet takes a list of values; several take a list of lists, by position.
    let per_facet: Vec<Vec<String>> = match (&values, names.len()) {
        (Value::Null, n) => vec![Vec::new(); n],
        (Value::Array(items), 1) if !items.iter().any(Value::is_array) => vec![strings(&values)],
        (Value::Array(items), n) if items.len() == n => items.iter().map(strings).collect(),
        _ => {
            return Err(permanent("bias_config.facet_values_or_threshold must give one list of values per facet_name"));
        }
    };
    let facets = names.into_iter().zip(per_facet).map(|(name, values)| Facet { name, values }).collect();
    let group = c.get("group_name").map(text);
    Ok(Config { label_values, facets, group })
}

/// The rows of a bias analysis: the features by column, the labels and the predicted labels.
struct Rows {
    headers: Vec<String>,
    features: Vec<Vec<String>>,
    labels: Vec<String>,
    predicted: Vec<String>,
}

impl Rows {
    fn column(&self, name: &str) -> Result<Vec<&str>, String> {
        let j = self.headers.iter().position(|h| h == name).ok_or_else(|| format!("no column {name:?}"))?;
        Ok(self.features.iter().map(|r| r.get(j).map(String::as_str).unwrap_or("")).collect())
    }
}

/// Clarify's bias `analysis.json` for `rows`, and the metrics by (facet, value) for the checks.
fn analyse(rows: &Rows, config: &Config, label_name: &str) -> Result<(Value, Vec<FacetMetrics>), String> {
    let label_refs: Vec<&str> = rows.labels.iter().map(String::as_str).collect();
    let label_selector = match column_type(&label_refs, config.label_values.len()) {
        ColumnType::Categorical => Selector::Values(config.label_values.clone()),
        ColumnType::Continuous => Selector::Above(
            config.label_values[0].parse().map_err(|_| "a continuous label needs a numeric threshold".to_string())?,
        ),
    };
    let (label, label_value) = select(&label_refs, &label_selector)?;
    let predicted_refs: Vec<&str> = rows.predicted.iter().map(String::as_str).collect();
    let (predicted, _) = select(&predicted_refs, &label_selector)?;
    let group: Option<Vec<String>> = match &config.group {
        Some(name) => Some(rows.column(name)?.into_iter().map(String::from).collect()),
        None => None,
    };
    let (mut pre_facets, mut post_facets) = (Map::new(), Map::new());
    let mut checked = Vec::new();
    for facet in &config.facets {
        let column = rows.column(&facet.name)?;
        let j = rows.headers.iter().position(|h| h == &facet.name).unwrap_or(usize::MAX);
        // The flip test's features: every numeric column but the facet (NaN if not a number).
        let features: Vec<Vec<f64>> = rows
            .features
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(k, _)| *k != j)
                    .map(|(_, v)| v.trim().parse().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let selectors: Vec<Selector> = if facet.values.is_empty() {
            let mut seen: Vec<String> = Vec::new();
            for v in &column {
                if !seen.iter().any(|s| s == v) {
                    seen.push(v.to_string());
                }
            }
            seen.into_iter().map(|v| Selector::Values(vec![v])).collect()
        } else {
            match column_type(&column, facet.values.len()) {
                ColumnType::Categorical => vec![Selector::Values(facet.values.clone())],
                ColumnType::Continuous => vec![Selector::Above(
                    facet.values[0].parse().map_err(|_| format!("facet {}: a numeric threshold", facet.name))?,
                )],
            }
        };
        let (mut pre_entries, mut post_entries) = (Vec::new(), Vec::new());
        for selector in selectors {
            let (d, value) = select(&column, &selector)?;
            let data = BiasData {
                facet: &d,
                label: &label,
                predicted: Some(&predicted),
                group: group.as_deref(),
                features: Some(&features),
            };
            let (pre, post) = (bias::pre_training(&data), bias::post_training(&data));
            let entry = |metrics: &[Metric]| FacetReport {
                value_or_threshold: value.clone(),
                metrics: metrics.iter().map(MetricOut::from).collect(),
            };
            pre_entries.push(entry(&pre));
            post_entries.push(entry(&post));
            checked.push((facet.name.clone(), value.clone(), pre.into_iter().chain(post).collect()));
        }
        pre_facets.insert(facet.name.clone(), json!(pre_entries));
        post_facets.insert(facet.name.clone(), json!(post_entries));
    }
    let section = |facets: Map<String, Value>| json!({"label": label_name, "label_value_or_threshold": label_value, "facets": facets});
    let analysis = json!({
        "version": "1.0",
        "post_training_bias_metrics": section(post_facets),
        "pre_training_bias_metrics": section(pre_facets),
    });
    Ok((analysis, checked))
}

/// The metrics of a written `analysis.json`, by (facet, value): values back as numbers
/// (`"Infinity"` as ∞), a null one as its error.
fn metrics_of(analysis: &Value) -> Vec<FacetMetrics> {
    let mut out: Vec<FacetMetrics> = Vec::new();
    for section in ["pre_training_bias_metrics", "post_training_bias_metrics"] {
        let Some(facets) = analysis[section]["facets"].as_object() else { continue };
        for (facet, entries) in facets {
            for entry in entries.as_array().into_iter().flatten() {
                let value = entry["value_or_threshold"].as_str().unwrap_or("").to_string();
                let metrics: Vec<Metric> = entry["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        let name = m["name"].as_str()?;
                        let name: &'static str = bias_metric_name(name)?;
                        let value = match &m["value"] {
                            Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
                            Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
                            Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
                            _ => Err(m["error"].as_str().unwrap_or("no value").to_string()),
                        };
                        Some(Metric { name, description: "", value })
                    })
                    .collect();
                match out.iter_mut().find(|(f, v, _)| f == facet && v == &value) {
                    Some((_, _, all)) => all.extend(metrics),
                    None => out.push((facet.clone(), value, metrics)),
                }
            }
        }
    }
    out
}

/// The static name of a metric Clarify reports.
fn bias_metric_name(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 21] = [
        "CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD", "AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR",
        "FT", "GE", "RD", "SD", "TE",
    ];
    NAMES.into_iter().find(|n| *n == name)
}

fn problem(b: &ModelBiasSpec) -> ProblemType {
    super::model_quality::problem(b.problem_type)
}

impl LocalTarget {
    /// The baseline: `baseline_data` labelled by the endpoint's model, analysed.
    pub(super) async fn bias_baseline(
        &self,
        environment: &str,
        params: &MonitorStage,
        b: &ModelBiasSpec,
    ) -> Result<(Value, Vec<String>, u64), TargetError> {
        let config = config(b)?;
        let key = params.baseline_data.as_str();
        let bytes = self.baseline_data(params).await?;
        let mut table = crate::analyzer::capture::csv_rows(&String::from_utf8_lossy(&bytes)).into_iter();
        let header = table.next().ok_or_else(|| permanent(format!("baseline_data {key:?} is empty")))?;
        crate::analyzer::distinct_names(&header).map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?;
        let label_name = header.first().cloned().unwrap_or_default();
        let headers: Vec<String> = header.into_iter().skip(1).collect();
        let (mut labels, mut features) = (Vec::new(), Vec::new());
        for row in table.take(MAX_BASELINE_ROWS) {
            let mut row = row.into_iter();
            labels.push(row.next().unwrap_or_default());
            features.push(row.collect::<Vec<String>>());
        }
        let endpoint = self.endpoints.get(environment, params.endpoint_name.as_str()).await.map_err(|err| {
            TargetError::transient(format!(
                "the monitored endpoint {} is not serving here: {err}",
                params.endpoint_name
            ))
        })?;
        // Predicted labels: the score at `probability` (index, default 0) at or above
        // `probability_threshold` (default 0.5) is the positive class `1` — the rule the
        // executions apply to captured scores (`merge::Attributes`), so baseline and windows
        // agree (Clarify documents "above"; a score exactly at the threshold is where they differ).
        let predicted_config = b.model_predicted_label_config.clone().unwrap_or_default();
        let score =
            predicted_config.get("probability").or(predicted_config.get("label")).and_then(Value::as_u64).unwrap_or(0)
                as usize;
        let threshold = predicted_config
            .get("probability_threshold")
            .and_then(Value::as_f64)
            .or(b.probability_threshold_attribute)
            .unwrap_or(0.5);
        let by_probability = predicted_config.get("label").is_none();
        // Scored in this process (a custom algorithm through its own `/invocations`, in
        // mini-batches): the baseline's rows are not endpoint traffic and are not captured.
        let numbers: Vec<Vec<f64>> =
            features.iter().map(|row| row.iter().map(|v| v.trim().parse().unwrap_or(f64::NAN)).collect()).collect();
        let runtime = tokio::runtime::Handle::current();
        let scores = tokio::task::spawn_blocking(move || RowModel::new(&endpoint.model, runtime).score(&numbers))
            .await
            .map_err(|e| permanent(format!("predicting baseline_data failed: {e}")))?
            .map_err(|e| permanent(format!("predicting baseline_data: {e}")))?;
        if score >= scores.width {
            return Err(permanent(format!(
                "model_predicted_label_config: score {score} asked; the model answers {} per row",
                scores.width
            )));
        }
        let predicted: Vec<String> = scores
            .column(score)
            .into_iter()
            .map(|s| if by_probability { (if s >= threshold { "1" } else { "0" }).to_string() } else { format!("{s}") })
            .collect();
        let rows = Rows { headers: headers.clone(), features, labels, predicted };
        let count = rows.labels.len() as u64;
        let (analysis, _) =
            analyse(&rows, &config, &label_name).map_err(|e| permanent(format!("bias baseline: {e}")))?;
        Ok((analysis, headers, count))
    }

    /// One execution: captured predictions joined with ground truth, analysed and checked.
    pub(super) async fn bias_execution(
        &self,
        monitor: &MonitorRecord,
        execution: &MonitorExecutionRecord,
        stage: &MonitorStage,
        b: &ModelBiasSpec,
        baseline: &Value,
    ) -> Result<(Value, Value), TargetError> {
        let config = config(b)?;
        let headers: Vec<String> = monitor.config.0["headers"]
            .as_array()
            .map(|h| h.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let attributes = Attributes {
            problem: problem(b),
            inference: b.monitor_inference_attribute.clone(),
            probability: b.monitor_probability_attribute.clone(),
            probability_threshold: b.probability_threshold_attribute.or(Some(0.5)),
        };
        let merge = Merge::new(attributes, execution.window_start, execution.window_end).keeping_inputs();
        let (examples, merged) = self
            .merge_window(stage, execution, merge)
            .await?
            .finish_with_inputs()
            .map_err(|e| permanent(e.to_string()))?;
        let mut rows = Rows { headers, features: Vec::new(), labels: Vec::new(), predicted: Vec::new() };
        for (example, input) in examples {
            rows.labels.push(example.label);
            rows.predicted.push(example.prediction);
            rows.features.push(input);
        }
        let label_name = baseline["post_training_bias_metrics"]["label"].as_str().unwrap_or("label").to_string();
        let (analysis, current) =
            analyse(&rows, &config, &label_name).map_err(|e| permanent(format!("bias analysis: {e}")))?;
        let before = metrics_of(baseline);
        let mut violations: Vec<DriftViolation> = Vec::new();
        for (facet, value, now) in &current {
            if let Some((_, _, then)) = before.iter().find(|(f, v, _)| f == facet && v == value) {
                violations.extend(bias::drift_violations(facet, value, then, now));
            }
        }
        let mut summary = serde_json::to_value(&merged).expect("the summary serialises");
        summary["monitor"] = json!(monitor.name);
        summary["violations"] = json!(violations);
        Ok((json!({"analysis": analysis, "violations": {"version": "1.0", "violations": violations}}), summary))
    }
}
