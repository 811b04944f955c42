//! `model_autopilot_training` on the local target: Autopilot's job, run here on the training
//! machinery of `training.rs`. `trainers/automl.py` trains XGBoost candidates on a hold-out split
//! (the job's objective, `job_max_candidates` candidates within `max_runtime_per_job` each and
//! `total_max_runtime` in all); the outputs under `<job_output_location>/<job_name>/` are every
//! candidate's `model.tar.gz` (servable by `byom_realtime_builtin` as it is), the split it used,
//! and `result.json` (DescribeAutoMLJob's fields: the best candidate and every candidate's
//! validation metrics) written last.

use super::LocalTarget;
use super::training::{KILL_GRACE, input_dir, read_summary, trainer_files};
use crate::domain::plan::AutopilotStage;
use crate::domain::spec::Choice;
use crate::targets::{StageContext, StepOutcome, TargetError};
use serde_json::json;
use std::time::Duration;

const TRAINER: &str = include_str!("trainers/automl.py");
/// The seed of the split and of the candidates' hyperparameters: the same data gives the same job.
const SEED: u64 = 0;

impl LocalTarget {
    pub(super) async fn deploy_autopilot(
        &self,
        stage: &StageContext,
        params: &AutopilotStage,
    ) -> Result<StepOutcome, TargetError> {
        let a = &params.autopilot;
        let job_name = params.job_name.as_str();
        let python = self.trainer_python(stage).await?;
        let input = input_dir()?;
        let data = self.download_channel("training_data", a.training_data.as_str(), input.path()).await?;
        let count = data.len();
        let files = trainer_files(TRAINER, |output| {
            json!({
                "job_name": job_name,
                "data": data,
                "target": a.target_attribute,
                "problem_type": a.problem_type.map(|p| p.as_str()),
                "objective": a.job_objective.map(|o| o.as_str()),
                "max_candidates": a.job_max_candidates,
                "max_runtime_per_job": a.max_runtime_per_job,
                "total_max_runtime": a.total_max_runtime,
                "definitions_only": a.generate_definition_only,
                "seed": SEED,
                "parent_pid": std::process::id(),
                "output": output,
            })
        })?;
        self.record(stage, "training.started", &format!(
            "AutoML job {job_name} started on this server: {} training file(s) from {}, target `{}`, up to {} candidates",
            count,
            a.training_data,
            a.target_attribute,
            a.job_max_candidates
        ))
        .await;

        let limit = Duration::from_secs(u64::from(a.total_max_runtime)) + KILL_GRACE;
        self.run_trainer(stage, &python, (&files.script, &files.job), limit).await?;

        let result = read_summary(&files.output.join("result.json")).await?;
        let prefix = format!("{}/{job_name}", a.job_output_location.as_str().trim_end_matches('/'));
        let uploaded = self.upload_outputs(&files.output, &prefix, "result.json").await?;
        let best = &result["BestCandidate"];
        let best_model = best["ModelFile"].as_str().map(|file| format!("{prefix}/{file}"));
        let metric = &best["FinalAutoMLJobObjectiveMetric"];
        let message = match &best_model {
            Some(model) => format!(
                "AutoML job {job_name} completed: best candidate {} with {} {} on the validation split; its model is the \
                 asset {model} (model_framework xgboost); {uploaded} files under {prefix}/",
                best["CandidateName"].as_str().unwrap_or_default(),
                metric["MetricName"].as_str().unwrap_or_default(),
                metric["Value"],
            ),
            None => format!("AutoML job {job_name} generated its candidate definitions under {prefix}/ (no training)"),
        };
        self.record(stage, "training.completed", &message).await;
        Ok(StepOutcome::Done(json!({
            "automl_job_name": job_name,
            "automl_job_status": "Completed",
            "output_location": a.job_output_location.as_str(),
            "result": format!("{prefix}/result.json"),
            "problem_type": result["ResolvedAttributes"]["ProblemType"],
            "objective": result["ResolvedAttributes"]["AutoMLJobObjective"]["MetricName"],
            "best_candidate": best["CandidateName"],
            "best_candidate_objective": metric["Value"],
            "best_candidate_model": best_model,
            "candidates": result["Candidates"].as_array().map_or(0, Vec::len),
            // The solution's stack outputs (reference §7.6), for those who read them by name.
            "AutopilotJobName": job_name,
            "AutopilotJobOutputLocation": a.job_output_location.as_str(),
            "TrainingDataLocation": a.training_data.as_str(),
        })))
    }
}
