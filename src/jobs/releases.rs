//! Notices deployments the orchestrator did not start — on the aws target a CodePipeline run
//! from the console's "Release change" — and queues each deployed stage's post-deploy jobs
//! (baseline, batch transform, training) for it, as the solution's custom resources and
//! pipeline actions ran them on every release. Every worker process watches; the queue's
//! idempotency key (pipeline, version, stage, release) makes each release run once.

use super::JobPayload;
use crate::domain::PipelineType;
use crate::domain::state::{PipelineState, StageState};
use crate::domain::workflow::{SYSTEM, event_kind};
use crate::store::{DynStore, NewJob, PipelineFilter, StageKey, StoreError};
use crate::targets::DynTarget;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The pipeline types with jobs after their deploy.
fn has_post_deploy_jobs(pipeline_type: PipelineType) -> bool {
    use PipelineType::*;
    matches!(
        pipeline_type,
        ByomBatchBuiltin
            | ByomBatchCustom
            | ByomDataQualityMonitor
            | ByomModelQualityMonitor
            | ByomModelBiasMonitor
            | ByomModelExplainabilityMonitor
            | ModelTrainingBuiltin
            | ModelTunerBuiltin
            | ModelAutopilotTraining
    )
}

/// One look at every active pipeline; returns how many stage runs it queued.
pub async fn watch_once(store: &DynStore, target: &DynTarget, max_attempts: i32) -> Result<usize, StoreError> {
    let mut queued = 0;
    let mut after_id = None;
    loop {
        let filter = PipelineFilter {
            state: Some(PipelineState::Active),
            pipeline_type: None,
            after_id: after_id.clone(),
            limit: 200,
        };
        let page = store.list_pipelines(&filter).await?;
        let Some(last) = page.last() else { return Ok(queued) };
        after_id = Some(last.id.clone());
        for pipeline in &page {
            let Ok(pipeline_type) = pipeline.pipeline_type.parse::<PipelineType>() else { continue };
            if !has_post_deploy_jobs(pipeline_type) {
                continue;
            }
            let stages: Vec<_> = store
                .stages(&pipeline.id)
                .await?
                .into_iter()
                .filter(|s| s.version == pipeline.version && s.state == StageState::Deployed)
                .collect();
            // Releases that finished after the pipeline's own deploy (its first stage's).
            let Some(since) = stages.iter().map(|s| s.updated_at).min() else { continue };
            let releases = match target.foreign_releases(pipeline, since).await {
                Ok(releases) => releases,
                Err(e) => {
                    tracing::warn!(pipeline = %pipeline.id, error = %e, "looking for releases failed; trying again");
                    continue;
                }
            };
            for release in releases {
                for stage in &stages {
                    let payload = JobPayload::RunRelease { version: pipeline.version, release: release.clone() };
                    let before = crate::store::now();
                    let job = store
                        .enqueue_job(NewJob {
                            kind: payload.kind().to_string(),
                            payload: payload.to_json(),
                            max_attempts,
                            run_at: crate::store::now(),
                            idempotency_key: Some(format!(
                                "release:{}:{}:{}:{release}",
                                pipeline.id, pipeline.version, stage.ordinal
                            )),
                            pipeline_id: Some(pipeline.id.clone()),
                            stage_ordinal: Some(stage.ordinal),
                        })
                        .await?;
                    if job.created_at < before {
                        continue; // queued before: this release is known
                    }
                    queued += 1;
                    let key = StageKey {
                        pipeline_id: pipeline.id.clone(),
                        ordinal: stage.ordinal,
                        version: pipeline.version,
                    };
                    let message = format!(
                        "release {release} was started outside the orchestrator; the post-deploy jobs of {} run for it",
                        stage.environment
                    );
                    store.stage_event(&key, event_kind::RELEASE_NOTICED, SYSTEM, &message).await?;
                    tracing::info!(pipeline = %pipeline.id, stage = stage.ordinal, %release, "release noticed");
                }
            }
        }
    }
}

/// Watches every `every` until `stop`.
pub async fn run(store: DynStore, target: DynTarget, every: Duration, max_attempts: i32, stop: CancellationToken) {
    loop {
        if let Err(e) = watch_once(&store, &target, max_attempts).await {
            tracing::warn!(error = %e, "watching for releases failed; trying again");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
