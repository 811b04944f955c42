//! Model monitors on the local target (`byom_data_quality_monitor`): deploying a stage runs the
//! baseline job and records the monitor with its schedule; each execution (a scheduled window or
//! a run-now) profiles the endpoint's captured traffic in its window and checks it against the
//! baseline, writing Model Monitor's files (docs/MONITORING.md).

use super::{LocalTarget, VARIANT};
use crate::analyzer::capture::{RowLayout, WindowReader};
use crate::analyzer::check::{Violations, check};
use crate::analyzer::constraints::{Constraints, suggest};
use crate::analyzer::statistics::{Statistics, statistics};
use crate::artifacts::{StorageError, location_path};
use crate::domain::plan::MonitorStage;
use crate::domain::spec::MonitorKind;
use crate::store::{MonitorExecutionRecord, MonitorRecord, NewMonitor};
use crate::targets::{StageContext, StepOutcome, TargetError};
use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde_json::{Value, json};

/// Baseline files and capture objects larger than this are refused rather than read.
const MAX_FILE_BYTES: u64 = 1 << 30;

fn storage(what: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::transient(format!("{what}: {e}"))
}

fn path_error(e: StorageError) -> TargetError {
    TargetError::permanent(e.to_string())
}

/// `{bucket}/{prefix}/{parts...}` as an object path.
fn under(location: &crate::domain::values::S3Location, parts: &[&str]) -> Result<Path, TargetError> {
    let root = location_path(location.bucket(), location.prefix()).map_err(path_error)?;
    let mut text = root.to_string();
    for part in parts {
        text = format!("{text}/{part}");
    }
    Path::parse(&text).map_err(|e| TargetError::permanent(format!("not a valid object key {text:?}: {e}")))
}

impl LocalTarget {
    async fn put_json(&self, path: &Path, value: &impl serde::Serialize) -> Result<(), TargetError> {
        let bytes = serde_json::to_vec_pretty(value).expect("analyzer files serialise");
        self.artifacts
            .object_store()
            .put(path, bytes.into())
            .await
            .map(drop)
            .map_err(|e| storage(&format!("writing {path}"), e))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T, TargetError> {
        let bytes = self.artifacts.read_path(path, MAX_FILE_BYTES).await.map_err(|e| match e {
            StorageError::NotFound { .. } => {
                TargetError::not_found(format!("{path} is gone: provision the monitor again"))
            }
            other => storage(&format!("reading {path}"), other),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| TargetError::permanent(format!("{path} is not readable: {e}")))
    }

    /// The data-quality baseline: `baseline_data` streamed through the profiler (memory stays
    /// bounded by the columns, not the rows).
    async fn data_quality_baseline(&self, params: &MonitorStage) -> Result<(Value, Value, u64), TargetError> {
        let key = params.baseline_data.as_str();
        let (_, stream) = self.artifacts.get_asset(key).await.map_err(|e| match e {
            StorageError::NotFound { .. } => TargetError::not_found(format!(
                "baseline_data {key:?} is not in the assets bucket: upload it first (PUT /v1/assets/{key})"
            )),
            other => storage(&format!("reading baseline_data {key:?}"), other),
        })?;
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
            stream.map_err(|e| std::io::Error::other(e.to_string())),
        ));
        let mut profile = tokio::task::spawn_blocking(move || crate::analyzer::profile_csv(reader))
            .await
            .map_err(|e| TargetError::permanent(format!("profiling baseline_data failed: {e}")))?
            .map_err(|e| TargetError::permanent(format!("baseline_data {key:?}: {e}")))?;
        let stats = serde_json::to_value(statistics(&mut profile)).expect("statistics serialise");
        let constraints = serde_json::to_value(suggest(&profile)).expect("constraints serialise");
        Ok((stats, constraints, profile.rows))
    }

    /// The baseline job, then the monitor's record and schedule.
    pub(super) async fn deploy_monitor(
        &self,
        stage: &StageContext,
        params: &MonitorStage,
    ) -> Result<StepOutcome, TargetError> {
        if let MonitorKind::ModelBias(b) = &params.kind {
            let (analysis, headers, rows) = self.bias_baseline(&stage.environment, params, b).await?;
            let job = params.baseline_job_name.as_str();
            let analysis_path = under(&params.baseline_job_output_location, &[job, "analysis.json"])?;
            self.put_json(&analysis_path, &analysis).await?;
            let config = json!({"stage": params, "baseline_analysis": analysis_path.to_string(), "headers": headers});
            return self
                .record_monitor(stage, params, "model_bias", config, rows, &[("baseline_analysis", &analysis_path)])
                .await;
        }
        if let MonitorKind::ModelExplainability(e) = &params.kind {
            let (analysis, headers, rows) = self.explainability_baseline(&stage.environment, params, e).await?;
            let job = params.baseline_job_name.as_str();
            let analysis_path = under(&params.baseline_job_output_location, &[job, "analysis.json"])?;
            self.put_json(&analysis_path, &analysis).await?;
            let config = json!({"stage": params, "baseline_analysis": analysis_path.to_string(), "headers": headers});
            return self
                .record_monitor(
                    stage,
                    params,
                    "model_explainability",
                    config,
                    rows,
                    &[("baseline_analysis", &analysis_path)],
                )
                .await;
        }
        let (stats, constraints, rows, monitor_type) = match &params.kind {
            MonitorKind::DataQuality => {
                let (stats, constraints, rows) = self.data_quality_baseline(params).await?;
                (stats, constraints, rows, "data_quality")
            }
            MonitorKind::ModelQuality(q) => {
                let (stats, constraints, rows) = self.model_quality_baseline(params, q).await?;
                (stats, constraints, rows, "model_quality")
            }
            _ => {
                return Err(TargetError::permanent(
                    "the local target runs data-quality, model-quality and explainability monitors",
                ));
            }
        };
        let job = params.baseline_job_name.as_str();
        let statistics_path = under(&params.baseline_job_output_location, &[job, "statistics.json"])?;
        let constraints_path = under(&params.baseline_job_output_location, &[job, "constraints.json"])?;
        self.put_json(&statistics_path, &stats).await?;
        self.put_json(&constraints_path, &constraints).await?;
        let config = json!({
            "stage": params,
            "baseline_statistics": statistics_path.to_string(),
            "baseline_constraints": constraints_path.to_string(),
        });
        let files = [("baseline_statistics", &statistics_path), ("baseline_constraints", &constraints_path)];
        self.record_monitor(stage, params, monitor_type, config, rows, &files).await
    }

    /// Records the monitor of a stage whose baseline is written, with its schedule.
    async fn record_monitor(
        &self,
        stage: &StageContext,
        params: &MonitorStage,
        monitor_type: &str,
        config: Value,
        rows: u64,
        files: &[(&str, &Path)],
    ) -> Result<StepOutcome, TargetError> {
        let job = params.baseline_job_name.as_str();
        let now = crate::store::now();
        let next_run_at = params.schedule_expression.next_after(now).ok_or_else(|| {
            TargetError::permanent(format!(
                "schedule_expression {} never fires again",
                params.schedule_expression.as_str()
            ))
        })?;
        let monitor = self
            .store
            .save_monitor(&NewMonitor {
                pipeline_id: stage.key.pipeline_id.clone(),
                environment: stage.environment.clone(),
                name: params.monitoring_schedule_name.clone(),
                monitor_type: monitor_type.into(),
                endpoint_name: params.endpoint_name.as_str().to_string(),
                schedule_expression: params.schedule_expression.as_str().to_string(),
                config,
                next_run_at,
            })
            .await
            .map_err(|e| TargetError::transient(e.to_string()))?;
        let mut outputs = json!({
            "monitor_id": monitor.id,
            "monitoring_schedule_name": monitor.name,
            "baseline_job_name": job,
            "baseline_rows": rows,
            "schedule_expression": monitor.schedule_expression,
            "next_run_at": monitor.next_run_at,
        });
        for (name, path) in files {
            outputs[*name] = json!(path.to_string());
        }
        Ok(StepOutcome::Done(outputs))
    }

    /// One execution: the window's captured traffic against the baseline.
    pub(super) async fn run_monitor_execution(
        &self,
        monitor: &MonitorRecord,
        execution: &MonitorExecutionRecord,
    ) -> Result<Value, TargetError> {
        let stage: MonitorStage = serde_json::from_value(monitor.config.0["stage"].clone()).map_err(|e| {
            TargetError::permanent(format!("monitor {} has an unreadable configuration: {e}", monitor.id))
        })?;
        let text = |key: &str| monitor.config.0[key].as_str().unwrap_or_default().to_string();
        let parse = |p: String| Path::parse(&p).map_err(|e| TargetError::permanent(format!("{p}: {e}")));
        let endpoint = stage.endpoint_name.as_str();
        let folder = execution.window_end.format("%Y/%m/%d/%H").to_string();
        let schedule = monitor.name.as_str();
        let output = |file: &str| under(&stage.monitoring_output_location, &[endpoint, schedule, &folder, file]);
        if let MonitorKind::ModelBias(b) = &stage.kind {
            let baseline: Value = self.read_json(&parse(text("baseline_analysis"))?).await?;
            let (files, mut summary) = self.bias_execution(monitor, execution, &stage, b, &baseline).await?;
            let (analysis_path, violations_path) = (output("analysis.json")?, output("constraint_violations.json")?);
            self.put_json(&analysis_path, &files["analysis"]).await?;
            self.put_json(&violations_path, &files["violations"]).await?;
            // Violations name their facet and metric as a data-quality one names its feature.
            if let Some(violations) = summary["violations"].as_array_mut() {
                for v in violations {
                    v["feature_name"] = json!(format!(
                        "{}={} {}",
                        v["facet"].as_str().unwrap_or(""),
                        v["facet_value"].as_str().unwrap_or(""),
                        v["metric_name"].as_str().unwrap_or("")
                    ));
                }
            }
            summary["files"] = json!([analysis_path.to_string(), violations_path.to_string()]);
            return Ok(summary);
        }
        if let MonitorKind::ModelExplainability(e) = &stage.kind {
            let baseline: Value = self.read_json(&parse(text("baseline_analysis"))?).await?;
            let (files, mut summary) = self.explainability_execution(monitor, execution, &stage, e, &baseline).await?;
            let (analysis_path, violations_path) = (output("analysis.json")?, output("constraint_violations.json")?);
            self.put_json(&analysis_path, &files["analysis"]).await?;
            self.put_json(&violations_path, &files["violations"]).await?;
            // Violations name their label as a data-quality one names its feature.
            if let Some(violations) = summary["violations"].as_array_mut() {
                for v in violations {
                    v["feature_name"] = v["label"].clone();
                }
            }
            summary["files"] = json!([analysis_path.to_string(), violations_path.to_string()]);
            return Ok(summary);
        }
        if let MonitorKind::ModelQuality(q) = &stage.kind {
            let constraints: Value = self.read_json(&parse(text("baseline_constraints"))?).await?;
            let (files, mut summary) =
                self.model_quality_execution(monitor, execution, &stage, q, &constraints).await?;
            let (statistics_path, violations_path) =
                (output("statistics.json")?, output("constraint_violations.json")?);
            self.put_json(&statistics_path, &files["statistics"]).await?;
            self.put_json(&violations_path, &files["violations"]).await?;
            // Violations name their metric as a data-quality one names its feature.
            let violations: Vec<Value> = files["violations"]["violations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut v| {
                    v["feature_name"] = v["metric_name"].clone();
                    v
                })
                .collect();
            summary["violations"] = json!(violations);
            summary["files"] = json!([statistics_path.to_string(), violations_path.to_string()]);
            return Ok(summary);
        }
        let baseline: Statistics = self.read_json(&parse(text("baseline_statistics"))?).await?;
        let constraints: Constraints = self.read_json(&parse(text("baseline_constraints"))?).await?;

        let names: Vec<String> = constraints.features.iter().map(|f| f.name.clone()).collect();
        let (start, end) = (execution.window_start, execution.window_end);
        let mut reader = WindowReader::new(RowLayout::default(), Some(start), Some(end), names);
        for object in self.hourly_objects(&stage.data_capture_location, &[endpoint, VARIANT], start, end).await? {
            let bytes = self.read_object(&object).await?;
            let location = object.location.to_string();
            reader = tokio::task::spawn_blocking(move || {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if let Err(e) = reader.add_line(line) {
                        tracing::debug!(object = %location, error = %e, "skipped a capture record");
                    }
                }
                reader
            })
            .await
            .map_err(|e| TargetError::permanent(format!("reading capture failed: {e}")))?;
        }
        let (records, unreadable) = (reader.records, reader.unreadable);
        let mut profile = reader.into_profile();
        let window_stats = statistics(&mut profile);
        let report = check(&baseline, &constraints, &profile).map_err(|e| TargetError::permanent(e.to_string()))?;

        let (statistics_path, violations_path) = (output("statistics.json")?, output("constraint_violations.json")?);
        self.put_json(&statistics_path, &window_stats).await?;
        self.put_json(&violations_path, &Violations { violations: report.violations.clone() }).await?;
        Ok(json!({
            "rows": profile.rows,
            "records": records,
            "unreadable_records": unreadable,
            "violations": report.violations,
            "drift": report.drift,
            "files": [statistics_path.to_string(), violations_path.to_string()],
        }))
    }

    /// The objects filed under `location/<parts>/yyyy/mm/dd/hh/` for every hour `[start, end)`
    /// touches (as capture and ground truth are filed), in order.
    pub(super) async fn hourly_objects(
        &self,
        location: &crate::domain::values::S3Location,
        parts: &[&str],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<object_store::ObjectMeta>, TargetError> {
        let mut out = Vec::new();
        for hour in hours(start, end) {
            let folder = hour.format("%Y/%m/%d/%H").to_string();
            let mut all: Vec<&str> = parts.to_vec();
            all.push(&folder);
            let prefix = under(location, &all)?;
            let mut objects: Vec<object_store::ObjectMeta> = self
                .artifacts
                .object_store()
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| storage(&format!("listing {prefix}"), e))?;
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            out.extend(objects);
        }
        Ok(out)
    }

    pub(super) async fn read_object(&self, object: &object_store::ObjectMeta) -> Result<bytes::Bytes, TargetError> {
        self.artifacts.read_path(&object.location, MAX_FILE_BYTES).await.map_err(|e| match e {
            StorageError::NotFound { .. } => TargetError::transient(format!("{} vanished while read", object.location)),
            other => storage(&format!("reading {}", object.location), other),
        })
    }

    pub(super) async fn teardown_monitor(&self, stage: &StageContext) -> Result<(), TargetError> {
        self.store.delete_monitors(&stage.key.pipeline_id).await.map_err(|e| TargetError::transient(e.to_string()))
    }
}

/// The hours `[start, end)` touches (capture and ground truth are filed by the hour).
fn hours(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut hour = start.duration_trunc(Duration::hours(1)).unwrap_or(start);
    let mut out = Vec::new();
    while hour < end {
        out.push(hour);
        hour += Duration::hours(1);
    }
    out
}
