//! `byom_batch_builtin` on the local target: a batch transform of every input object, as
//! SageMaker's transform job does for the solution (one `<input name>.out` per input, under the
//! output location, keeping the input's path below its prefix).
//!
//! Resumable: after each object the stage's checkpoint records it (with the input's ETag and
//! size), so a job restarted after a crash skips what is finished and unchanged; an output object
//! appears only once complete (see `serving::batch`). Progress goes to the pipeline's events.

use super::LocalTarget;
use crate::artifacts::location_path;
use crate::domain::plan::BatchStage;
use crate::serving::batch::{BatchError, Scorer, TransformStats, transform_object};
use crate::targets::{StageContext, StepOutcome, TargetError};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a long object's running figures go to the events.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The stage checkpoint: the input objects already transformed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    files: BTreeMap<String, DoneFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DoneFile {
    /// The input as it was when transformed: a changed input is transformed again.
    e_tag: Option<String>,
    size: u64,
    output: String,
    stats: TransformStats,
}

/// One input object and where its output goes.
struct Input {
    meta: ObjectMeta,
    output: Path,
}

fn storage_error(what: String, e: impl std::fmt::Display) -> TargetError {
    TargetError::transient(format!("{what}: {e}"))
}

/// The objects to transform: the object the location names, or else every object under it as a
/// prefix (objects under the output location excepted, so outputs are never read back).
async fn inputs(store: &Arc<dyn ObjectStore>, params: &BatchStage) -> Result<Vec<Input>, TargetError> {
    let input = &params.batch_inference_data;
    let output = &params.batch_job_output_location;
    let invalid = |e: crate::artifacts::StorageError| TargetError::permanent(e.to_string());
    let input_root = location_path(input.bucket(), input.prefix()).map_err(invalid)?;
    let output_root = location_path(output.bucket(), output.prefix()).map_err(invalid)?;
    let out_path = |relative: &str| Path::parse(format!("{output_root}/{relative}.out")).map_err(|e| invalid_key(&e));

    match store.head(&input_root).await {
        Ok(meta) => {
            let name = meta.location.filename().unwrap_or_default().to_string();
            return Ok(vec![Input { output: out_path(&name)?, meta }]);
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(storage_error(format!("reading {}", input.as_str()), e)),
    }
    let mut listed: Vec<ObjectMeta> = futures::TryStreamExt::try_collect(store.list(Some(&input_root)))
        .await
        .map_err(|e| storage_error(format!("listing {}", input.as_str()), e))?;
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    let mut inputs = Vec::new();
    for meta in listed {
        if meta.location.prefix_matches(&output_root) {
            continue;
        }
        let relative: Vec<String> = meta
            .location
            .prefix_match(&input_root)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        inputs.push(Input { output: out_path(&relative.join("/"))?, meta });
    }
    if inputs.is_empty() {
        return Err(TargetError::not_found(format!(
            "batch_inference_data {:?} names no object and no object is under it",
            input.as_str()
        )));
    }
    Ok(inputs)
}

fn invalid_key(e: &object_store::path::Error) -> TargetError {
    TargetError::permanent(format!("batch output name is not a valid object key: {e}"))
}

fn batch_error(e: BatchError) -> TargetError {
    match &e {
        BatchError::Storage { source: object_store::Error::NotFound { .. }, .. } => {
            TargetError::not_found(e.to_string())
        }
        _ if e.is_transient() => TargetError::transient(e.to_string()),
        _ => TargetError::permanent(e.to_string()),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl LocalTarget {
    pub(super) async fn deploy_batch(
        &self,
        stage: &StageContext,
        params: &BatchStage,
    ) -> Result<StepOutcome, TargetError> {
        // A custom algorithm runs for the length of the transform and stops with it.
        let (scorer, model_sha256) = match &params.model {
            crate::domain::spec::ModelSource::CustomImage { image_uri, artifact } => {
                let (process, sha256) = self.start_algorithm(stage, image_uri.as_str(), artifact.as_str()).await?;
                (Scorer::Process(Arc::new(process)), sha256)
            }
            model => {
                let (framework, artifact) = self.model_artifact(model).await?;
                let loaded = self.stage_model(stage, &framework, &artifact).await?;
                (Scorer::Builtin(Arc::new(loaded.model)), loaded.sha256)
            }
        };
        let store = self.artifacts.object_store();
        let inputs = inputs(&store, params).await?;
        let mut checkpoint: Checkpoint =
            stage.checkpoint.as_ref().and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
        let parallelism = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);

        let (mut total, mut resumed) = (TransformStats::default(), 0usize);
        for (index, input) in inputs.iter().enumerate() {
            let name = input.meta.location.to_string();
            if let Some(done) = checkpoint.files.get(&name)
                && done.e_tag == input.meta.e_tag
                && done.size == input.meta.size
                && store.head(&input.output).await.is_ok()
            {
                add(&mut total, done.stats);
                resumed += 1;
                continue;
            }
            let stats = self.transform_reporting(stage, &store, &scorer, input, parallelism).await?;
            add(&mut total, stats);
            checkpoint.files.insert(
                name.clone(),
                DoneFile {
                    e_tag: input.meta.e_tag.clone(),
                    size: input.meta.size,
                    output: input.output.to_string(),
                    stats,
                },
            );
            let saved = serde_json::to_value(&checkpoint).expect("checkpoint serialises");
            match self.store.save_checkpoint(&stage.key, &saved).await {
                Ok(true) => {}
                Ok(false) => return Err(TargetError::conflict("the pipeline was provisioned again meanwhile")),
                Err(e) => return Err(TargetError::transient(e.to_string())),
            }
            let message = format!(
                "{} of {} files: {name} → {} ({} rows, {} read); {} rows so far",
                index + 1,
                inputs.len(),
                input.output,
                stats.rows,
                mib(stats.bytes_in),
                total.rows
            );
            self.report(stage, &message).await;
        }
        let message = format!(
            "batch transform finished: {} files ({} resumed from an earlier run), {} rows, {} read, {} written",
            inputs.len(),
            resumed,
            total.rows,
            mib(total.bytes_in),
            mib(total.bytes_out)
        );
        self.report(stage, &message).await;
        Ok(StepOutcome::Done(json!({
            "batch_inference_data": params.batch_inference_data.as_str(),
            "batch_job_output_location": params.batch_job_output_location.as_str(),
            "model_sha256": model_sha256,
            "files": inputs.len(),
            "resumed_files": resumed,
            "rows": total.rows,
            "bytes_in": total.bytes_in,
            "bytes_out": total.bytes_out,
        })))
    }

    /// Transforms one object, writing its running figures to the events every
    /// [`PROGRESS_EVERY`] while it lasts.
    async fn transform_reporting(
        &self,
        stage: &StageContext,
        store: &Arc<dyn ObjectStore>,
        scorer: &Scorer,
        input: &Input,
        parallelism: usize,
    ) -> Result<TransformStats, TargetError> {
        let (sender, mut receiver) = tokio::sync::watch::channel(TransformStats::default());
        let name = input.meta.location.to_string();
        let reporter = {
            let (this_store, key, name, size) = (self.store.clone(), stage.key.clone(), name.clone(), input.meta.size);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    if receiver.has_changed().is_err() {
                        return;
                    }
                    let now = *receiver.borrow_and_update();
                    let message = format!("{name}: {} rows, {} of {} read", now.rows, mib(now.bytes_in), mib(size));
                    if let Err(e) = this_store.progress(&key, "batch.progress", &message).await {
                        tracing::warn!(error = %e, "recording batch progress failed");
                    }
                }
            })
        };
        let report = move |stats: TransformStats| {
            sender.send_replace(stats);
        };
        let result =
            transform_object(store, scorer.clone(), &input.meta.location, &input.output, parallelism, &report).await;
        reporter.abort();
        result.map_err(batch_error)
    }

    async fn report(&self, stage: &StageContext, message: &str) {
        if let Err(e) = self.store.progress(&stage.key, "batch.progress", message).await {
            tracing::warn!(pipeline = %stage.key.pipeline_id, error = %e, "recording batch progress failed");
        }
    }
}

fn add(total: &mut TransformStats, stats: TransformStats) {
    total.rows += stats.rows;
    total.bytes_in += stats.bytes_in;
    total.bytes_out += stats.bytes_out;
}
