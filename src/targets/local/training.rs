//! Training on the local target, run by xgboost in a child Python: `model_training_builtin`
//! with `model_framework: xgboost` here, `model_autopilot_training` in `automl.rs`, both on the
//! machinery below. A job's data (an asset, or every asset below the key, as SageMaker's S3Prefix
//! input) is copied to a temporary folder; the trainer embedded in the binary
//! (`trainers/*.py`) runs with a job file, prints progress lines that become the pipeline's events
//! and exits 2 on bad data with a message naming the asset, line and column; its outputs are
//! uploaded under `<job_output_location>/<job_name>/` only once it succeeded, the summary last.
//!
//! Why a Python child: the models are XGBoost boosters trained by xgboost itself (what
//! SageMaker's XGBoost and Autopilot's XGBoost candidates are) and the metrics are xgboost's and
//! scikit-learn's; a hand-written booster would give users a different, weaker model. The models
//! serve as they are through `byom_realtime_builtin` / `byom_batch_builtin`.

use super::LocalTarget;
use crate::artifacts::StorageError;
use crate::domain::plan::TrainingStage;
use crate::domain::spec::TunerSpec;
use crate::serving::algorithm;
use crate::targets::{StageContext, StepOutcome, TargetError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const XGBOOST_TRAINER: &str = include_str!("trainers/xgboost_train.py");
/// What the trainers import, written beside them.
const TRAINER_COMMON: &str = include_str!("trainers/trainer_common.py");
const REQUIREMENTS: &str = include_str!("trainers/requirements.txt");
/// Largest output file uploaded (a model, a data split): bounded by the training data's size.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// The trainers stop themselves at their maximum runtime; past this much more they are killed.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(120);
/// Lines of a trainer's stderr kept for the error message.
const STDERR_LINES: usize = 20;

/// One at a time per process: the managed environment is made once.
static MAKING_VENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn storage_error(what: &str, e: StorageError) -> TargetError {
    match e {
        StorageError::Backend(_) => TargetError::transient(format!("{what}: {e}")),
        other => TargetError::permanent(format!("{what}: {other}")),
    }
}

/// Whether the local target trains this: SageMaker's built-in XGBoost on CSV or LIBSVM from
/// S3Prefix inputs, tuned or not.
pub(super) fn check_training(stage: &crate::domain::spec::TrainingSpec) -> Result<(), String> {
    use crate::domain::spec::{Choice, S3DataType};
    if !stage.model_framework.eq_ignore_ascii_case("xgboost") {
        return Err(format!(
            "the local target trains SageMaker's built-in XGBoost; model_framework `{}` is not it",
            stage.model_framework
        ));
    }
    if content_type(&stage.content_type).is_none() {
        return Err(format!(
            "content_type `{}`: the local target's XGBoost reads `csv` (`text/csv`) or `libsvm` (`text/libsvm`)",
            stage.content_type
        ));
    }
    if stage.s3_data_type != S3DataType::S3Prefix {
        return Err(format!(
            "s3_data_type `{}`: the local target reads S3Prefix inputs (an asset or a folder of assets)",
            stage.s3_data_type.as_str()
        ));
    }
    Ok(())
}

/// What the trainer needs of `model_tuner_builtin`'s `tuner_configs` and ranges, with the
/// defaults the aws target sends (Bayesian, Maximize, one job; Grid: every combination).
fn tuning_job(tuner: &TunerSpec) -> Result<Value, TargetError> {
    let configs = &tuner.tuner_configs;
    let text = |key: &str| configs.get(key).and_then(Value::as_str);
    let metric = text("objective_metric_name")
        .ok_or_else(|| TargetError::permanent("tuner_configs has no objective_metric_name"))?;
    Ok(json!({
        "objective_metric": metric,
        "objective_type": text("objective_type").unwrap_or("Maximize"),
        "strategy": text("strategy").unwrap_or("Bayesian"),
        "max_jobs": configs.get("max_jobs").and_then(Value::as_u64).unwrap_or(1),
        "seed": configs.get("random_seed").and_then(Value::as_u64).unwrap_or(0),
        "ranges": tuner.ranges_in_request_form(),
    }))
}

/// `csv` or `libsvm`, as SageMaker's XGBoost names its content types.
fn content_type(given: &str) -> Option<&'static str> {
    let base = given.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match base.as_str() {
        "csv" | "text/csv" => Some("csv"),
        "libsvm" | "text/libsvm" | "text/x-libsvm" => Some("libsvm"),
        _ => None,
    }
}

/// A fresh temporary folder with the trainer script and its job file in it.
pub(super) struct TrainerFiles {
    /// Where the trainer writes what is uploaded.
    pub output: PathBuf,
    /// Removed when the job's step ends.
    _dir: tempfile::TempDir,
    pub script: PathBuf,
    pub job: PathBuf,
}

/// The summary a trainer writes last (`metrics.json`, `tuning.json`, `result.json`).
pub(super) async fn read_summary(path: &Path) -> Result<Value, TargetError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tokio::fs::read(path)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| TargetError::permanent(format!("the trainer finished without writing {name}")))
}

/// A temporary folder for a job's input data, removed when the job's step ends.
pub(super) fn input_dir() -> Result<tempfile::TempDir, TargetError> {
    tempfile::Builder::new()
        .prefix("mlops-training-data-")
        .tempdir()
        .map_err(|e| TargetError::transient(format!("making the job's temporary folder: {e}")))
}

/// The job file is `job(output folder)`.
pub(super) fn trainer_files(script: &str, job: impl FnOnce(&Path) -> Value) -> Result<TrainerFiles, TargetError> {
    let make = || -> std::io::Result<TrainerFiles> {
        let dir = tempfile::Builder::new().prefix("mlops-training-").tempdir()?;
        let (script_path, job_path, output) =
            (dir.path().join("trainer.py"), dir.path().join("job.json"), dir.path().join("output"));
        std::fs::create_dir_all(&output)?;
        std::fs::write(&script_path, script)?;
        std::fs::write(dir.path().join("trainer_common.py"), TRAINER_COMMON)?;
        std::fs::write(&job_path, serde_json::to_vec(&job(&output)).expect("job serialises"))?;
        Ok(TrainerFiles { output, _dir: dir, script: script_path, job: job_path })
    };
    make().map_err(|e| TargetError::transient(format!("writing the training job's files: {e}")))
}

impl LocalTarget {
    pub(super) async fn deploy_training(
        &self,
        stage: &StageContext,
        params: &TrainingStage,
    ) -> Result<StepOutcome, TargetError> {
        let t = &params.training;
        check_training(t).map_err(TargetError::permanent)?;
        let job_name = params.job_name.as_str();
        let tuning = t.tuner.as_ref().map(tuning_job).transpose()?;
        let python = self.trainer_python(stage).await?;
        let input = input_dir()?;
        let train =
            self.download_channel("training_data", t.training_data.as_str(), &input.path().join("train")).await?;
        let validation = match &t.validation_data {
            Some(key) => {
                self.download_channel("validation_data", key.as_str(), &input.path().join("validation")).await?
            }
            None => Vec::new(),
        };
        let files = trainer_files(XGBOOST_TRAINER, |output| {
            json!({
                "job_name": job_name,
                "train": train,
                "validation": validation,
                "content_type": content_type(&t.content_type),
                "hyperparameters": t.algo_hyperparameters,
                "max_runtime": t.max_runtime_per_job,
                "tuning": tuning,
                "parent_pid": std::process::id(),
                "output": output,
            })
        })?;
        let output = &files.output;
        let what = match &tuning {
            Some(tuning) => format!(
                "tuning job {job_name} started on this server ({} training jobs of SageMaker's built-in XGBoost, run by \
                 xgboost; strategy {}{})",
                if tuning["strategy"] == "Grid" {
                    "every combination as".to_string()
                } else {
                    tuning["max_jobs"].to_string()
                },
                tuning["strategy"].as_str().unwrap_or_default(),
                if tuning["strategy"] == "Grid" { "" } else { " runs as seeded random search, one job at a time" },
            ),
            None => {
                format!("training job {job_name} started on this server (SageMaker's built-in XGBoost, run by xgboost)")
            }
        };
        self.record(
            stage,
            "training.started",
            &format!(
                "{what}: {} training and {} validation file(s){}",
                train.len(),
                validation.len(),
                if t.instance_count > 1 {
                    format!("; instance_count {} runs as one process here", t.instance_count)
                } else {
                    String::new()
                }
            ),
        )
        .await;
        let limit = Duration::from_secs(u64::from(t.max_runtime_per_job)) + KILL_GRACE;
        let limit = match &tuning {
            // The trainer stops each job at max_runtime_per_job; this bounds them all.
            Some(tuning) => limit * u32::try_from(tuning["max_jobs"].as_u64().unwrap_or(1).max(1)).unwrap_or(u32::MAX),
            None => limit,
        };
        self.run_trainer(stage, &python, (&files.script, &files.job), limit).await?;
        if tuning.is_some() {
            return self.finish_tuning(stage, t, job_name, output).await;
        }

        let metrics = read_summary(&output.join("metrics.json")).await?;
        let prefix = format!("{}/{job_name}", t.job_output_location.as_str().trim_end_matches('/'));
        self.upload_outputs(output, &prefix, "metrics.json").await?;
        let model = format!("{prefix}/output/model.tar.gz");
        self.record(stage, "training.completed", &format!(
            "training job {job_name} completed: {} rounds; the model is the asset {model} (model_framework xgboost)",
            metrics["Rounds"]
        ))
        .await;
        Ok(StepOutcome::Done(json!({
            "training_job_name": job_name,
            "training_job_status": "Completed",
            "output_location": t.job_output_location.as_str(),
            "model_artifacts": model,
            "final_metrics": metrics["FinalMetricDataList"],
            "rounds": metrics["Rounds"],
            // The solution's stack outputs (reference §7.5), for those who read them by name.
            "TrainingJobName": job_name,
            "TrainingJobOutputLocation": t.job_output_location.as_str(),
            "TrainingDataLocation": t.training_data.as_str(),
            "ValidationDataLocation": t.validation_data.as_ref().map(|v| v.as_str()),
        })))
    }

    /// Uploads a tuning job's training jobs (`<job_output_location>/<training job>/output/model.tar.gz`,
    /// where SageMaker writes them) and its summary (`<job_output_location>/<job_name>/tuning.json`,
    /// DescribeHyperParameterTuningJob's fields) last.
    async fn finish_tuning(
        &self,
        stage: &StageContext,
        t: &crate::domain::spec::TrainingSpec,
        job_name: &str,
        output: &Path,
    ) -> Result<StepOutcome, TargetError> {
        let summary = read_summary(&output.join(job_name).join("tuning.json")).await?;
        let prefix = t.job_output_location.as_str().trim_end_matches('/');
        self.upload_outputs(output, prefix, "tuning.json").await?;
        let best = &summary["BestTrainingJob"];
        let model = format!("{prefix}/{}", best["ModelArtifact"].as_str().unwrap_or_default());
        let objective = &best["FinalHyperParameterTuningJobObjectiveMetric"];
        self.record(
            stage,
            "training.completed",
            &format!(
                "tuning job {job_name} completed: best training job {} with {} {}; its model is the asset {model} \
             (model_framework xgboost)",
                best["TrainingJobName"].as_str().unwrap_or_default(),
                objective["MetricName"].as_str().unwrap_or_default(),
                objective["Value"],
            ),
        )
        .await;
        Ok(StepOutcome::Done(json!({
            "tuning_job_name": job_name,
            "tuning_job_status": "Completed",
            "output_location": t.job_output_location.as_str(),
            "summary": format!("{prefix}/{job_name}/tuning.json"),
            "best_training_job": best["TrainingJobName"],
            "best_objective": objective,
            "best_model_artifacts": model,
            "training_jobs": summary["TrainingJobSummaries"].as_array().map_or(0, Vec::len),
            // The solution's stack outputs (reference §7.5), for those who read them by name.
            "TrainingJobName": job_name,
            "TrainingJobOutputLocation": t.job_output_location.as_str(),
            "TrainingDataLocation": t.training_data.as_str(),
            "ValidationDataLocation": t.validation_data.as_ref().map(|v| v.as_str()),
        })))
    }

    /// `training.python`, or this replica's own environment with the trainer's requirements,
    /// made on first use (a half-made one, from a crash, is made again: `.ready` comes last).
    pub(super) async fn trainer_python(&self, stage: &StageContext) -> Result<String, TargetError> {
        if let Some(python) = &self.training_python {
            return Ok(python.clone());
        }
        let digest = hex::encode(&Sha256::digest(REQUIREMENTS.as_bytes())[..8]);
        let home = self.algorithms_dir.join(format!("trainers-{digest}"));
        let python = home.join("venv/bin/python").display().to_string();
        let ready = home.join(".ready");
        let _one = MAKING_VENV.lock().await;
        if ready.exists() {
            return Ok(python);
        }
        self.record(stage, "training.environment", &format!(
            "making the trainer's Python environment {} (xgboost, scikit-learn, numpy from the package registry; once per server)",
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
        let requirements = Some(("requirements.txt", home.as_path()));
        let log = algorithm::make_venv(&self.python, &home.join("venv"), requirements, self.install_timeout)
            .await
            // Our own pinned requirements: a failure is the registry or the network, worth a retry.
            .map_err(|e| TargetError::transient(format!("the trainer's environment: {e}")))?;
        tokio::fs::write(&ready, log).await.map_err(|e| TargetError::transient(e.to_string()))?;
        Ok(python)
    }

    /// Copies the asset `key`, or every asset below `key/`, into `dir` (`field` names it in
    /// errors); returns `[{path, name}]`, name being the asset key, as the trainers read them.
    pub(super) async fn download_channel(&self, field: &str, key: &str, dir: &Path) -> Result<Vec<Value>, TargetError> {
        let objects = self
            .artifacts
            .assets_under(key)
            .await
            .map_err(|e| storage_error(&format!("listing {field} {key:?}"), e))?;
        if objects.is_empty() {
            return Err(TargetError::not_found(format!(
                "{field} {key:?} is neither an asset nor a folder of assets: upload it first (PUT /v1/assets/{key})"
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
    pub(super) async fn run_trainer(
        &self,
        stage: &StageContext,
        python: &str,
        (trainer, job_file): (&Path, &Path),
        limit: Duration,
    ) -> Result<(), TargetError> {
        let mut command = tokio::process::Command::new(python);
        command
            .arg(trainer)
            .arg(job_file)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = crate::server::worker_cpus::spawn_child(|| command.spawn()).map_err(|e| {
            TargetError::permanent(format!("starting the trainer with {python}: {e} (see training.python)"))
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
            Ok(status) => status.map_err(|e| TargetError::transient(format!("waiting for the trainer: {e}")))?,
            Err(_) => {
                return Err(TargetError::permanent(format!(
                    "the trainer ran past its maximum runtime (+{} s) and was stopped",
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
            return Err(TargetError::permanent(why));
        }
        Err(TargetError::permanent(format!("the trainer failed ({status}):\n{}", tail.join("\n"))))
    }

    /// Uploads every file below `dir` to the asset `prefix/<relative path>`, `last` last (its
    /// presence says the job's outputs are complete); returns how many.
    pub(super) async fn upload_outputs(&self, dir: &Path, prefix: &str, last: &str) -> Result<usize, TargetError> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut folders = vec![dir.to_path_buf()];
        while let Some(folder) = folders.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| TargetError::transient(e.to_string()))?;
            for entry in entries {
                let path = entry.map_err(|e| TargetError::transient(e.to_string()))?.path();
                if path.is_dir() { folders.push(path) } else { files.push(path) }
            }
        }
        files.sort_by_key(|f| (f.file_name().is_some_and(|n| n == last), f.clone()));
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

    pub(super) async fn record(&self, stage: &StageContext, kind: &str, message: &str) {
        if let Err(e) = self.store.progress(&stage.key, kind, message).await {
            tracing::warn!(pipeline = %stage.key.pipeline_id, error = %e, "recording training progress failed");
        }
    }
}

/// A progress line of a trainer as an event message.
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
        "channels" => Some(format!(
            "training data: {} rows ({} to validate), {} features",
            event["train_rows"], event["validation_rows"], event["features"]
        )),
        "round" => Some(format!("round {} of {}: {}", event["round"], event["of"], metrics(&event["metrics"]))),
        "trained" => Some(format!(
            "trained {} rounds in {} s: {}",
            event["rounds"],
            event["seconds"],
            metrics(&event["metrics"])
        )),
        "tuning_job" => Some(format!(
            "training job {} of {}: {} {} = {}",
            event["number"],
            event["of"],
            event["name"].as_str().unwrap_or_default(),
            event["metric"].as_str().unwrap_or_default(),
            event["value"],
        )),
        "stopped" => Some(format!(
            "stopped after {} candidates: {}",
            event["candidates"],
            event["reason"].as_str().unwrap_or_default()
        )),
        _ => None,
    }
}

/// `{"validation:auc": 0.97, ...}` as `validation:auc 0.97, ...`.
fn metrics(values: &Value) -> String {
    values.as_object().map_or_else(String::new, |m| {
        m.iter().map(|(name, value)| format!("{name} {value}")).collect::<Vec<_>>().join(", ")
    })
}
