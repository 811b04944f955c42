//! `byom_model_explainability_monitor` on the local target (issue 15): the baseline explains
//! `baseline_data`'s rows with Kernel SHAP against `shap_config.baseline`, calling the monitored
//! endpoint's model outside its invocation path (`serving::rows`: a built-in model in this
//! process, a custom algorithm through its own `/invocations` in mini-batches; nothing captured),
//! and writes Clarify's `analysis.json`; each execution explains the window's captured requests
//! the same way and flags labels whose attribution ranking drifted (nDCG below 0.9) in
//! `constraint_violations.json` (docs/MONITORING.md).

use super::LocalTarget;
use super::VARIANT;
use crate::analyzer::attribution;
use crate::analyzer::capture::{RowLayout, read_record};
use crate::domain::plan::MonitorStage;
use crate::domain::spec::{ModelExplainabilitySpec, ModelScores, ShapBaseline};
use crate::serving::endpoints::Model;
use crate::serving::explain::{Analysis, ShapOptions, analysis, empty_analysis};
use crate::serving::rows::RowModel;
use crate::store::{MonitorExecutionRecord, MonitorRecord};
use crate::targets::TargetError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Records explained per baseline or window at most (Clarify explains every record; a window
/// of more is explained on its first records, and the summary says so).
pub const MAX_EXPLAINED_RECORDS: usize = 2000;

fn permanent(message: impl Into<String>) -> TargetError {
    TargetError::permanent(message)
}

/// The monitored endpoint's model and how to explain it.
struct Explainer {
    endpoint: Arc<crate::serving::endpoints::LiveEndpoint>,
    options: ShapOptions,
}

impl Explainer {
    fn method(&self) -> &'static str {
        self.options.method()
    }

    /// Explains the records on a blocking thread (a custom algorithm is called through
    /// `runtime`, in mini-batches).
    async fn explain(
        self,
        headers: Vec<String>,
        records: Vec<Vec<f64>>,
    ) -> Result<(BTreeMap<String, f64>, f64), TargetError> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let model = RowModel::new(&self.endpoint.model, runtime);
            crate::serving::explain::Explainer { model, options: &self.options }
                .explain(&headers, &records)
                .map_err(permanent)
        })
        .await
        .map_err(|err| permanent(format!("the explanation failed: {err}")))?
    }
}

/// Numbers of a CSV (a header row, if any, skipped).
fn numeric_rows(text: &str, what: &str) -> Result<Vec<Vec<f64>>, TargetError> {
    let rows = crate::analyzer::capture::csv_rows(text);
    let numeric = |row: &Vec<String>| row.iter().map(|f| f.trim().parse::<f64>().ok()).collect::<Option<Vec<f64>>>();
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match numeric(row) {
            Some(values) => out.push(values),
            None if i == 0 => {} // a header
            None => return Err(permanent(format!("{what}: row {} has a non-numeric field", i + 1))),
        }
    }
    Ok(out)
}

impl LocalTarget {
    async fn explainer(
        &self,
        environment: &str,
        params: &MonitorStage,
        e: &ModelExplainabilitySpec,
        features: usize,
        fallback_background: &[Vec<f64>],
    ) -> Result<Explainer, TargetError> {
        let endpoint = self.endpoints.get(environment, params.endpoint_name.as_str()).await.map_err(|err| {
            TargetError::transient(format!(
                "the monitored endpoint {} is not serving here: {err}",
                params.endpoint_name.as_str()
            ))
        })?;
        let score = match &e.model_scores {
            None => 0,
            Some(ModelScores::Index(i)) => *i as usize,
            Some(ModelScores::Name(name)) => {
                return Err(permanent(format!(
                    "model_scores {name:?}: the local target's models have no named outputs; give an index"
                )));
            }
        };
        // A custom algorithm's outputs are known from its answers (checked as it is called).
        if let Model::Builtin(model) = &endpoint.model
            && score >= model.num_outputs()
        {
            return Err(permanent(format!("model_scores {score}: the model has {} outputs", model.num_outputs())));
        }
        let options = &e.shap_config.options;
        let background = match &e.shap_config.baseline {
            Some(ShapBaseline::Rows(rows)) => rows
                .iter()
                .map(|row| match row {
                    Value::Array(values) => values.iter().map(|v| v.as_f64()).collect::<Option<Vec<f64>>>(),
                    Value::String(line) => line.split(',').map(|f| f.trim().parse().ok()).collect(),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| permanent("shap_config.baseline: every row must be numbers"))?,
            Some(ShapBaseline::AssetKey(key)) => {
                let bytes = self
                    .artifacts
                    .read_asset(key.as_str(), 1 << 30)
                    .await
                    .map_err(|err| permanent(format!("shap_config.baseline {:?}: {err}", key.as_str())))?;
                numeric_rows(&String::from_utf8_lossy(&bytes), "shap_config.baseline")?
            }
            // Clarify clusters the data when no baseline is given; one cluster here: the mean row.
            None => {
                let n = fallback_background.len().max(1) as f64;
                vec![(0..features).map(|j| fallback_background.iter().map(|r| r[j]).sum::<f64>() / n).collect()]
            }
        };
        if let Some(bad) = background.iter().find(|r| r.len() != features) {
            return Err(permanent(format!(
                "shap_config.baseline rows have {} features; the data has {features}",
                bad.len()
            )));
        }
        Ok(Explainer {
            endpoint,
            options: ShapOptions {
                score,
                use_logit: options.get("use_logit").and_then(Value::as_bool).unwrap_or(false),
                num_samples: options.get("num_samples").and_then(Value::as_u64).map(|n| n as usize),
                seed: options.get("seed").and_then(Value::as_u64).unwrap_or(0),
                agg_method: options.get("agg_method").and_then(Value::as_str).unwrap_or("mean_abs").to_string(),
                background,
                tree: options.get("algorithm").and_then(Value::as_str) == Some("tree"),
            },
        })
    }

    /// The baseline: `baseline_data` (header, label first, then the features) explained.
    pub(super) async fn explainability_baseline(
        &self,
        environment: &str,
        params: &MonitorStage,
        e: &ModelExplainabilitySpec,
    ) -> Result<(Analysis, Vec<String>, u64), TargetError> {
        let key = params.baseline_data.as_str();
        let bytes = self.baseline_data(params).await?;
        let text = String::from_utf8_lossy(&bytes);
        let mut rows = crate::analyzer::capture::csv_rows(&text).into_iter();
        let header = rows.next().ok_or_else(|| permanent(format!("baseline_data {key:?} is empty")))?;
        crate::analyzer::distinct_names(&header).map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?;
        // The solution's convention: the label is the first column.
        let headers: Vec<String> = header.into_iter().skip(1).collect();
        let records: Vec<Vec<f64>> = rows
            .take(MAX_EXPLAINED_RECORDS)
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .skip(1)
                    .map(|f| f.trim().parse::<f64>().ok())
                    .collect::<Option<Vec<f64>>>()
                    .filter(|r| r.len() == headers.len())
                    .ok_or_else(|| permanent(format!("baseline_data {key:?}: row {} is not all numbers", i + 2)))
            })
            .collect::<Result<_, _>>()?;
        let explainer = self.explainer(environment, params, e, headers.len(), &records).await?;
        let count = records.len() as u64;
        let method = explainer.method();
        let (global, expected) = explainer.explain(headers.clone(), records).await?;
        Ok((analysis(method, &global, &headers, expected), headers, count))
    }

    /// One execution: the window's captured requests explained, compared with the baseline.
    pub(super) async fn explainability_execution(
        &self,
        monitor: &MonitorRecord,
        execution: &MonitorExecutionRecord,
        stage: &MonitorStage,
        e: &ModelExplainabilitySpec,
        baseline: &Value,
    ) -> Result<(Value, Value), TargetError> {
        let headers: Vec<String> = monitor.config.0["headers"]
            .as_array()
            .map(|h| h.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let endpoint = stage.endpoint_name.as_str();
        let (start, end) = (execution.window_start, execution.window_end);
        let layout = RowLayout { input: true, output: false, ..RowLayout::default() };
        let (mut records, mut requests, mut unreadable, mut skipped) = (Vec::new(), 0u64, 0u64, 0u64);
        for object in self.hourly_objects(&stage.data_capture_location, &[endpoint, VARIANT], start, end).await? {
            let bytes = self.read_object(&object).await?;
            for line in String::from_utf8_lossy(&bytes).lines() {
                let Ok(Some(captured)) = read_record(line, layout) else {
                    unreadable += 1;
                    continue;
                };
                if captured.time.is_some_and(|t| t < start || t >= end) {
                    continue;
                }
                requests += 1;
                for row in captured.rows {
                    match row.iter().map(|f| f.trim().parse::<f64>().ok()).collect::<Option<Vec<f64>>>() {
                        Some(values) if values.len() == headers.len() && records.len() < MAX_EXPLAINED_RECORDS => {
                            records.push(values)
                        }
                        _ => skipped += 1,
                    }
                }
            }
        }
        let explained = records.len() as u64;
        let current = if records.is_empty() {
            empty_analysis()
        } else {
            let explainer = self.explainer(&monitor.environment, stage, e, headers.len(), &records).await?;
            let method = explainer.method();
            let (global, expected) = explainer.explain(headers.clone(), records).await?;
            analysis(method, &global, &headers, expected)
        };
        let labels = |doc: &Value| -> BTreeMap<String, BTreeMap<String, f64>> {
            // The labels of the method the baseline used (a window uses the same one).
            doc["explanations"]
                .as_object()
                .and_then(|methods| methods.values().next())
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(label, v)| {
                            let values = v["global_shap_values"]
                                .as_object()
                                .map(|m| m.iter().filter_map(|(k, x)| x.as_f64().map(|x| (k.clone(), x))).collect())
                                .unwrap_or_default();
                            (label.clone(), values)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let current = serde_json::to_value(&current).expect("analysis serialises");
        let (before, now) = (labels(baseline), labels(&current));
        let scores: BTreeMap<&String, f64> =
            now.iter().filter_map(|(l, v)| before.get(l).map(|b| (l, attribution::ndcg(b, v)))).collect();
        let violations = if explained == 0 {
            Vec::new()
        } else {
            attribution::violations(&before, &now, attribution::DEFAULT_THRESHOLD)
        };
        let summary = json!({
            "rows": explained,
            "records": requests,
            "unreadable_records": unreadable,
            "rows_not_explained": skipped,
            "ndcg": scores,
            "violations": violations,
        });
        Ok((json!({"analysis": current, "violations": {"version": "1.0", "violations": violations}}), summary))
    }
}
