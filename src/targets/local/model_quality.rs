//! `byom_model_quality_monitor` on the local target: the baseline from a CSV of predictions and
//! labels, and executions that join the window's captured predictions with ground truth (posted
//! through `POST /v1/ground-truth/{endpoint}` or uploaded under `monitor_ground_truth_input` in
//! SageMaker's layout) by `inferenceId`, else `eventId` (docs/MONITORING.md).

use super::LocalTarget;
use super::VARIANT;
use crate::analyzer::merge::{self, Attributes, Merge};
use crate::analyzer::model_quality::{self, ProblemType};
use crate::domain::plan::MonitorStage;
use crate::domain::spec::{ModelQualitySpec, ProblemType as SpecProblem};
use crate::store::{MonitorExecutionRecord, MonitorRecord};
use crate::targets::TargetError;
use chrono::Duration;
use serde_json::{Value, json};

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

fn attributes(q: &ModelQualitySpec) -> Attributes {
    Attributes {
        problem: problem(q.problem_type),
        inference: q.monitor_inference_attribute.clone(),
        probability: q.monitor_probability_attribute.clone(),
        probability_threshold: q.probability_threshold_attribute,
    }
}

impl LocalTarget {
    /// The stage's `baseline_data`, whole.
    pub(super) async fn baseline_data(&self, params: &MonitorStage) -> Result<bytes::Bytes, TargetError> {
        let key = params.baseline_data.as_str();
        self.artifacts.read_asset(key, 1 << 30).await.map_err(|e| match e {
            crate::artifacts::StorageError::NotFound { .. } => TargetError::not_found(format!(
                "baseline_data {key:?} is not in the assets bucket: upload it first (PUT /v1/assets/{key})"
            )),
            other => TargetError::transient(format!("reading baseline_data {key:?}: {other}")),
        })
    }

    /// Feeds `merge` the window's captured requests and the ground truth that arrived from the
    /// window's start until the label delay allowed.
    pub(super) async fn merge_window(
        &self,
        stage: &MonitorStage,
        execution: &MonitorExecutionRecord,
        mut merge: Merge,
    ) -> Result<Merge, TargetError> {
        let (start, end) = (execution.window_start, execution.window_end);
        let endpoint = stage.endpoint_name.as_str();
        for object in self.hourly_objects(&stage.data_capture_location, &[endpoint, VARIANT], start, end).await? {
            let bytes = self.read_object(&object).await?;
            String::from_utf8_lossy(&bytes).lines().for_each(|line| merge.add_capture_line(line));
        }
        let truth_location = stage
            .monitor_ground_truth_input
            .as_ref()
            .ok_or_else(|| permanent("the monitor has no monitor_ground_truth_input"))?;
        let until = (end + Duration::days(MAX_LABEL_DELAY_DAYS)).min(crate::store::now() + Duration::hours(1));
        for object in self.hourly_objects(truth_location, &[], start, until).await? {
            let bytes = self.read_object(&object).await?;
            String::from_utf8_lossy(&bytes).lines().for_each(|line| merge.add_label_line(line, object.last_modified));
        }
        Ok(merge)
    }

    /// The baseline: the named columns of `baseline_data` (by header name or 0-based index).
    pub(super) async fn model_quality_baseline(
        &self,
        params: &MonitorStage,
        q: &ModelQualitySpec,
    ) -> Result<(Value, Value, u64), TargetError> {
        let key = params.baseline_data.as_str();
        let bytes = self.baseline_data(params).await?;
        let problem = problem(q.problem_type);
        let examples = merge::baseline_examples(
            bytes.as_ref(),
            problem,
            &q.baseline_ground_truth_attribute,
            &q.baseline_inference_attribute,
            q.baseline_probability_attribute.as_deref(),
        )
        .map_err(|e| permanent(format!("baseline_data {key:?}: {e}")))?;
        let now = crate::store::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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
        let merge = Merge::new(attributes(q), execution.window_start, execution.window_end);
        let (examples, merged) =
            self.merge_window(stage, execution, merge).await?.finish().map_err(|e| permanent(e.to_string()))?;
        let problem = problem(q.problem_type);
        let now = crate::store::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let statistics =
            model_quality::statistics(problem, &examples, POSITIVE, &now).map_err(|e| permanent(e.to_string()))?;
        let violations = model_quality::violations(problem, &statistics, constraints);
        let mut summary = serde_json::to_value(&merged).expect("the summary serialises");
        summary["monitor"] = json!(monitor.name);
        Ok((json!({"statistics": statistics, "violations": violations}), summary))
    }
}
