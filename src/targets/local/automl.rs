//! `model_autopilot_training` on the local target: Autopilot's job, run here. The training data
//! (an asset, or every asset below that key, as Autopilot's S3Prefix input) is copied to a
//! temporary folder and `automl/train.py` trains XGBoost candidates on it in a child Python
//! process (a hold-out split, the job's objective, `job_max_candidates` candidates within
//! `max_runtime_per_job` each and `total_max_runtime` in all). Its outputs land in the assets
//! store under `<job_output_location>/<job_name>/`: every candidate's `model.tar.gz` (the
//! booster as `xgboost-model`, which `byom_realtime_builtin` and `byom_batch_builtin` serve as
//! they are), the split it used, and `result.json` (DescribeAutoMLJob's fields: the best
//! candidate and every candidate's validation metrics) written last.
//!
//! Why a Python child: the candidates are XGBoost boosters trained by xgboost itself (what
//! Autopilot's XGBoost candidates are), and the metrics are scikit-learn's; training them with a
//! hand-written booster would give users a weaker, different model.

use super::LocalTarget;
use crate::artifacts::StorageError;
use crate::domain::plan::AutopilotStage;
use crate::domain::spec::Choice;
use crate::serving::algorithm;
use crate::targets::{StageContext, StepOutcome, TargetError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const TRAINER: &str = include_str!("automl/train.py");
const REQUIREMENTS: &str = include_str!("automl/requirements.txt");
/// Largest output file uploaded (a candidate, the split): bounded by the training data's size.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// The trainer stops itself at `total_max_runtime`; past this much more it is killed.
const KILL_GRACE: Duration = Duration::from_secs(120);
/// Lines of the trainer's stderr kept for the error message.
const STDERR_LINES: usize = 20;
/// The seed of the split and of the candidates' hyperparameters: the same data gives the same job.
const SEED: u64 = 0;

/// One at a time per process: the managed environment is made once.
static MAKING_VENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn storage_error(what: &str, e: StorageError) -> TargetError {
    match e {
        StorageError::Backend(_) => TargetError::transient(format!("{what}: {e}")),
        other => TargetError::permanent(format!("{what}: {other}")),
    }
}

impl LocalTarget {
    pub(super) async fn deploy_autopilot(
        &self,
        stage: &StageContext,
        params: &AutopilotStage,
    ) -> Result<StepOutcome, TargetError> {
        let a = &params.autopilot;
        let job_name = params.job_name.as_str();
        let python = self.trainer_python(stage).await?;
        let work = tempfile::Builder::new()
            .prefix("mlops-automl-")
            .tempdir()
            .map_err(|e| TargetError::transient(format!("making the job's temporary folder: {e}")))?;
        let files = self.download_training_data(a.training_data.as_str(), &work.path().join("input")).await?;
        let output = work.path().join("output");
        let trainer = work.path().join("train.py");
        let job_file = work.path().join("job.json");
        let job = json!({
            "job_name": job_name,
            "data": files,
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
        });
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&output)?;
            std::fs::write(&trainer, TRAINER)?;
            std::fs::write(&job_file, serde_json::to_vec(&job).expect("job serialises"))
        };
        write().map_err(|e| TargetError::transient(format!("writing the job's files: {e}")))?;
        self.record(stage, "training.started", &format!(
            "AutoML job {job_name} started on this server: {} training file(s) from {}, target `{}`, up to {} candidates",
            files.len(),
            a.training_data,
            a.target_attribute,
            a.job_max_candidates
        ))
        .await;

        let limit = Duration::from_secs(u64::from(a.total_max_runtime)) + KILL_GRACE;
        self.run_trainer(stage, &python, &trainer, &job_file, limit).await?;

        let result_file = output.join("result.json");
        let result: Value = std::fs::read(&result_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| TargetError::permanent("the AutoML trainer finished without writing result.json"))?;
        let prefix = format!("{}/{job_name}", a.job_output_location.as_str().trim_end_matches('/'));
        let uploaded = self.upload_outputs(&output, &prefix).await?;
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

    /// `training.python`, or this replica's own environment with the trainer's requirements,
    /// made on first use (a half-made one, from a crash, is made again: `.ready` comes last).
    async fn trainer_python(&self, stage: &StageContext) -> Result<String, TargetError> {
        if let Some(python) = &self.training_python {
            return Ok(python.clone());
        }
        let digest = hex::encode(&Sha256::digest(REQUIREMENTS.as_bytes())[..8]);
        let home = self.algorithms_dir.join(format!("automl-{digest}"));
        let python = home.join("venv/bin/python").display().to_string();
        let ready = home.join(".ready");
        let _one = MAKING_VENV.lock().await;
        if ready.exists() {
            return Ok(python);
        }
        self.record(stage, "training.environment", &format!(
            "making the AutoML trainer's Python environment {} (xgboost, scikit-learn, numpy from the package registry; once per server)",
            home.display()
        ))
        .await;
        let make = async {
            if home.exists() {
                tokio::fs::remove_dir_all(&home).await?;
            }
            tokio::fs::create_dir_all(&home).await?;
            tokio::fs::write(home.join("requirements.txt"), REQUIREMENTS).await
        };
        make.await.map_err(|e| TargetError::transient(format!("making {}: {e}", home.display())))?;
        let log = algorithm::make_venv(&self.python, &home.join("venv"), Some(("requirements.txt", home.as_path())))
            .await
            .map_err(|e| TargetError::permanent(format!("the AutoML trainer's environment: {e}")))?;
        tokio::fs::write(&ready, log).await.map_err(|e| TargetError::transient(e.to_string()))?;
        Ok(python)
    }

    /// Copies the object at `key`, or every object below `key/`, into `dir`; returns the files.
    /// `[{path, name}]`, name being the asset key.
    async fn download_training_data(&self, key: &str, dir: &Path) -> Result<Vec<Value>, TargetError> {
        let objects = self
            .artifacts
            .assets_under(key)
            .await
            .map_err(|e| storage_error(&format!("listing training_data {key:?}"), e))?;
        if objects.is_empty() {
            return Err(TargetError::not_found(format!(
                "training_data {key:?} is neither an asset nor a folder of assets: upload it first (PUT /v1/assets/{key})"
            )));
        }
        tokio::fs::create_dir_all(dir).await.map_err(|e| TargetError::transient(e.to_string()))?;
        let store = self.artifacts.object_store();
        let bucket = format!("{}/", self.artifacts.assets_bucket());
        let mut files = Vec::with_capacity(objects.len());
        for (index, meta) in objects.iter().enumerate() {
            let file = dir.join(format!("{index:05}"));
            // The asset key, which the trainer's messages name.
            let location = meta.location.as_ref();
            let name = location.strip_prefix(&bucket).unwrap_or(location);
            let copy = async {
                let mut stream = store.get(&meta.location).await?.into_stream();
                let mut out = tokio::fs::File::create(&file)
                    .await
                    .map_err(|e| object_store::Error::Generic { store: "local file", source: Box::new(e) })?;
                while let Some(chunk) = stream.try_next().await? {
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| object_store::Error::Generic { store: "local file", source: Box::new(e) })?;
                }
                out.flush().await.map_err(|e| object_store::Error::Generic { store: "local file", source: Box::new(e) })
            };
            copy.await.map_err(|e| TargetError::transient(format!("copying {}: {e}", meta.location)))?;
            files.push(json!({"path": file, "name": name}));
        }
        Ok(files)
    }

    /// Runs the trainer, turning its progress lines into the pipeline's events; fails with the
    /// end of its stderr (bad data: exit status 2, the message names file, line and column).
    async fn run_trainer(
        &self,
        stage: &StageContext,
        python: &str,
        trainer: &Path,
        job_file: &Path,
        limit: Duration,
    ) -> Result<(), TargetError> {
        let mut child = tokio::process::Command::new(python)
            .arg(trainer)
            .arg(job_file)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TargetError::permanent(format!("starting the AutoML trainer with {python}: {e} (see training.python)"))
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let errors = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut tail = std::collections::VecDeque::with_capacity(STDERR_LINES);
            while let Ok(Some(line)) = lines.next_line().await {
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail.into_iter().collect::<Vec<_>>()
        });
        let events = async {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(message) = serde_json::from_str::<Value>(&line).ok().as_ref().and_then(describe_event) {
                    self.record(stage, "training.progress", &message).await;
                }
            }
            child.wait().await
        };
        let status = match tokio::time::timeout(limit, events).await {
            Ok(status) => status.map_err(|e| TargetError::transient(format!("waiting for the AutoML trainer: {e}")))?,
            Err(_) => {
                return Err(TargetError::permanent(format!(
                    "the AutoML trainer ran past total_max_runtime (+{} s) and was stopped",
                    KILL_GRACE.as_secs()
                )));
            }
        };
        let tail = errors.await.unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        if status.code() == Some(2) {
            let why = tail.last().cloned().unwrap_or_default();
            return Err(TargetError::permanent(format!("training_data: {why}")));
        }
        Err(TargetError::permanent(format!("the AutoML trainer failed ({status}):\n{}", tail.join("\n"))))
    }

    /// Uploads every file below `dir` to the asset `prefix/<relative path>`, `result.json` last
    /// (its presence says the job's outputs are complete); returns how many.
    async fn upload_outputs(&self, dir: &Path, prefix: &str) -> Result<usize, TargetError> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut folders = vec![dir.to_path_buf()];
        while let Some(folder) = folders.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| TargetError::transient(e.to_string()))?;
            for entry in entries {
                let path = entry.map_err(|e| TargetError::transient(e.to_string()))?.path();
                if path.is_dir() { folders.push(path) } else { files.push(path) }
            }
        }
        files.sort_by_key(|f| (f.file_name().is_some_and(|n| n == "result.json"), f.clone()));
        for file in &files {
            let relative = file.strip_prefix(dir).expect("below dir").to_string_lossy().replace('\\', "/");
            let key = format!("{prefix}/{relative}");
            let reader = tokio::fs::File::open(file).await.map_err(|e| TargetError::transient(e.to_string()))?;
            let body = tokio_util::io::ReaderStream::new(reader);
            self.artifacts
                .put_asset(&key, body, MAX_OUTPUT_BYTES)
                .await
                .map_err(|e| storage_error(&format!("writing {key}"), e))?;
        }
        Ok(files.len())
    }

    async fn record(&self, stage: &StageContext, kind: &str, message: &str) {
        if let Err(e) = self.store.progress(&stage.key, kind, message).await {
            tracing::warn!(pipeline = %stage.key.pipeline_id, error = %e, "recording training progress failed");
        }
    }
}

/// A progress line of the trainer as an event message.
fn describe_event(event: &Value) -> Option<String> {
    match event["event"].as_str()? {
        "data" => Some(format!(
            "training data: {} rows ({} to train, {} to validate, {} without a target dropped), {} features; problem \
             type {}, objective {}",
            event["rows"],
            event["train_rows"],
            event["validation_rows"],
            event["dropped_without_target"],
            event["features"],
            event["problem_type"].as_str().unwrap_or_default(),
            event["objective"].as_str().unwrap_or_default(),
        )),
        "candidate" => Some(format!(
            "candidate {} of {}: {} {} = {} ({} rounds, {} s)",
            event["number"],
            event["of"],
            event["name"].as_str().unwrap_or_default(),
            event["metric"].as_str().unwrap_or_default(),
            event["value"],
            event["rounds"],
            event["seconds"],
        )),
        "stopped" => Some(format!(
            "stopped after {} candidates: {}",
            event["candidates"],
            event["reason"].as_str().unwrap_or_default()
        )),
        _ => None,
    }
}
