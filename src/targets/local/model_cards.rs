//! Model cards on the local target: every version kept in the database, the overview filled
//! from this server's own pipelines and model registry, exports written as PDF and HTML to the
//! assets bucket's `model_card_exports/`.

use super::model_card_export;
use crate::artifacts::{ArtifactStore, StorageError};
use crate::domain::spec::{ModelSource, PipelineParams, PipelineSpec};
use crate::store::{ModelCardExportRecord, ModelCardStore, ModelCardVersionRecord, StoreError};
use crate::targets::DynTargetStore;
use crate::targets::model_cards::{CardError, CardExport, CardSummary, CardVersion, CardWrite, ModelCards};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A metric file larger than this is refused (SageMaker's whole card content is 100 KB).
const MAX_METRIC_FILE: u64 = 10 << 20;

/// The pipeline types whose model a card can describe, in the order they are looked up.
const MODEL_TYPES: [&str; 4] =
    ["byom_realtime_builtin", "byom_realtime_custom", "byom_batch_builtin", "byom_batch_custom"];

/// SageMaker's ARN shape for a local card (region and account are placeholders, as for the
/// local model registry's packages).
pub fn card_arn(name: &str) -> String {
    format!("arn:aws:sagemaker:us-east-1:000000000000:model-card/{name}")
}

pub struct LocalModelCards {
    cards: Arc<dyn ModelCardStore>,
    store: DynTargetStore,
    artifacts: ArtifactStore,
}

impl LocalModelCards {
    pub fn new(cards: Arc<dyn ModelCardStore>, store: DynTargetStore, artifacts: ArtifactStore) -> Self {
        Self { cards, store, artifacts }
    }

    fn s3(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.artifacts.assets_bucket())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), CardError> {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
        self.artifacts
            .put_asset(key, body, u64::MAX)
            .await
            .map(|_| ())
            .map_err(|e| CardError::Unavailable { what: "the object store", cause: e.to_string() })
    }
}

fn store_error(e: StoreError) -> CardError {
    match e {
        StoreError::NotFound(what) => CardError::NotFound(format!("{what} not found")),
        StoreError::Conflict(why) => CardError::Conflict(why),
        other => CardError::Unavailable { what: "the database", cause: other.to_string() },
    }
}

fn version(record: ModelCardVersionRecord) -> CardVersion {
    CardVersion {
        arn: card_arn(&record.name),
        name: record.name,
        version: record.version,
        status: record.status,
        content: record.content,
        created_at: Some(record.created_at),
        created_by: Some(record.created_by),
        modified_at: Some(record.modified_at),
        modified_by: Some(record.modified_by),
    }
}

fn summary(record: ModelCardVersionRecord) -> CardSummary {
    CardSummary {
        arn: card_arn(&record.name),
        name: record.name,
        version: Some(record.version),
        status: record.status,
        created_at: Some(record.created_at),
        modified_at: Some(record.modified_at),
    }
}

#[async_trait]
impl ModelCards for LocalModelCards {
    async fn model_overview(&self, model_name: &str) -> Result<Map<String, Value>, CardError> {
        let key = model_name.trim().to_ascii_lowercase();
        let mut found = None;
        for pipeline_type in MODEL_TYPES {
            if let Some(record) = self.store.live_pipeline(pipeline_type, &key).await.map_err(store_error)? {
                found = Some(record);
                break;
            }
        }
        let Some(record) = found else {
            return Err(CardError::invalid(
                "/model_overview/model_name",
                format!(
                    "Model details for model {model_name} could not be found: no real-time or batch pipeline has this model_name"
                ),
            ));
        };
        let spec: PipelineSpec = serde_json::from_value(record.spec.0.clone())
            .map_err(|e| CardError::Internal(format!("stored spec of {}: {e}", record.id)))?;
        let (model_name, model) = match spec.params {
            PipelineParams::Realtime(p) => (p.model_name, p.model),
            PipelineParams::Batch(p) => (p.model_name, p.model),
            _ => return Err(CardError::Internal(format!("pipeline {} holds no model", record.id))),
        };
        let (image, artifact) = match model {
            ModelSource::BuiltIn { framework, framework_version, artifact } => {
                (format!("mlops-orchestrator/builtin/{framework}:{framework_version}"), artifact.as_str().to_string())
            }
            ModelSource::CustomImage { image_uri, artifact } => {
                (image_uri.as_str().to_string(), artifact.as_str().to_string())
            }
            ModelSource::Registry { model_package } => {
                let (group, version) = model_package.group_and_version();
                let package =
                    self.store.model_package(group, version).await.map_err(store_error)?.ok_or_else(|| {
                        CardError::invalid(
                            "/model_overview/model_name",
                            format!(
                                "model {model_name} names model package {group}/{version}, which is not registered"
                            ),
                        )
                    })?;
                (format!("mlops-orchestrator/builtin/{}", package.framework), package.artifact)
            }
        };
        let mut overview = Map::new();
        overview.insert("model_name".into(), json!(model_name));
        overview.insert("model_id".into(), json!(record.id));
        overview.insert("model_artifact".into(), json!([self.s3(&artifact)]));
        overview.insert("inference_environment".into(), json!({ "container_image": [image] }));
        Ok(overview)
    }

    /// From the local training or tuning job of that name (its stage outputs; a tuning job's
    /// training job from its `tuning.json`), as the aws target reads DescribeTrainingJob.
    async fn training_job_details(&self, job_name: &str) -> Result<Map<String, Value>, CardError> {
        let not_found = || {
            CardError::invalid(
                "/training_details/training_job_name",
                format!(
                    "training job {job_name}: no model_training_builtin or model_tuner_builtin pipeline on this server \
                     ran it; give `training_job_details` instead"
                ),
            )
        };
        let outputs = self.store.training_outputs(job_name).await.map_err(store_error)?.ok_or_else(not_found)?;
        let text = |key: &str| outputs.get(key).and_then(Value::as_str);
        let mut metrics = outputs.get("final_metrics").cloned().unwrap_or(Value::Null);
        if let Some(summary) = text("summary") {
            // A tuning job, or one of its training jobs: the best one stands for the tuning job.
            let bytes = self
                .artifacts
                .read_asset(summary, MAX_METRIC_FILE)
                .await
                .map_err(|e| CardError::Unavailable { what: "the object store", cause: e.to_string() })?;
            let summary: Value = serde_json::from_slice(&bytes)
                .map_err(|e| CardError::Unavailable { what: "the tuning summary", cause: e.to_string() })?;
            let wanted = if text("tuning_job_name") == Some(job_name) {
                summary["BestTrainingJob"]["TrainingJobName"].as_str().unwrap_or_default().to_string()
            } else {
                job_name.to_string()
            };
            let job = summary["TrainingJobSummaries"]
                .as_array()
                .and_then(|jobs| jobs.iter().find(|j| j["TrainingJobName"] == wanted.as_str()))
                .ok_or_else(not_found)?;
            metrics = job["FinalMetricDataList"].clone();
        }
        let mut details = Map::new();
        details.insert(
            "training_arn".into(),
            json!(format!("arn:aws:sagemaker:us-east-1:000000000000:training-job/{job_name}")),
        );
        let datasets: Vec<String> = ["TrainingDataLocation", "ValidationDataLocation"]
            .iter()
            .filter_map(|k| text(k))
            .map(|k| self.s3(k))
            .collect();
        details.insert("training_datasets".into(), json!(datasets));
        details.insert(
            "training_environment".into(),
            json!({ "container_image": ["mlops-orchestrator/builtin/xgboost"] }),
        );
        let metrics: Vec<Value> = metrics
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| Some(json!({"name": m["MetricName"].as_str()?, "value": m["Value"].as_f64()?})))
                    .collect()
            })
            .unwrap_or_default();
        if !metrics.is_empty() {
            details.insert("training_metrics".into(), json!(metrics));
        }
        Ok(details)
    }

    async fn metric_file(&self, bucket: &str, key: &str) -> Result<Value, CardError> {
        let path = self
            .artifacts
            .location_path(bucket, key)
            .map_err(|e| CardError::invalid("", format!("s3://{bucket}/{key}: {e}")))?;
        let bytes = match self.artifacts.read_path(&path, MAX_METRIC_FILE).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => {
                return Err(CardError::NotFound(format!("no object s3://{bucket}/{key}")));
            }
            Err(StorageError::TooLarge { limit }) => {
                return Err(CardError::invalid("", format!("s3://{bucket}/{key} is larger than {limit} bytes")));
            }
            Err(e) => return Err(CardError::Unavailable { what: "the object store", cause: e.to_string() }),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| CardError::invalid("", format!("s3://{bucket}/{key} is not JSON: {e}")))
    }

    async fn card(&self, name: &str, version_no: Option<i64>) -> Result<Option<CardVersion>, CardError> {
        Ok(self.cards.model_card(name, version_no).await.map_err(store_error)?.map(version))
    }

    async fn create(&self, card: &CardWrite<'_>) -> Result<(), CardError> {
        self.cards.create_model_card(card.name, card.status, card.content, card.actor).await.map_err(store_error)?;
        Ok(())
    }

    async fn update(&self, card: &CardWrite<'_>) -> Result<(), CardError> {
        self.cards.update_model_card(card.name, card.status, card.content, card.actor).await.map_err(store_error)?;
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, CardError> {
        self.cards.delete_model_card(name).await.map_err(store_error)
    }

    async fn list(&self) -> Result<Vec<CardSummary>, CardError> {
        Ok(self.cards.model_cards().await.map_err(store_error)?.into_iter().map(summary).collect())
    }

    async fn versions(&self, name: &str) -> Result<Vec<CardSummary>, CardError> {
        Ok(self.cards.model_card_versions(name).await.map_err(store_error)?.into_iter().map(summary).collect())
    }

    async fn export(&self, name: &str, version_no: i64, job_name: &str, actor: &str) -> Result<CardExport, CardError> {
        let card = self
            .card(name, Some(version_no))
            .await?
            .ok_or_else(|| CardError::NotFound(format!("model card {name} version {version_no} not found")))?;
        if self.cards.model_card_export(job_name).await.map_err(store_error)?.is_some() {
            return Err(CardError::Conflict(format!("export job {job_name:?} exists; choose another export_job_name")));
        }
        let document = model_card_export::document(&card);
        let base = format!("model_card_exports/{name}/{job_name}/{name}");
        let (pdf_key, html_key) = (format!("{base}.pdf"), format!("{base}.html"));
        self.put(&pdf_key, model_card_export::pdf(&document)).await?;
        self.put(&html_key, model_card_export::html(&document).into_bytes()).await?;
        let record = ModelCardExportRecord {
            job_name: job_name.to_string(),
            card_name: name.to_string(),
            version: version_no,
            pdf_key: pdf_key.clone(),
            html_key: html_key.clone(),
            created_by: actor.to_string(),
            created_at: crate::store::now(),
        };
        self.cards.record_model_card_export(&record).await.map_err(store_error)?;
        Ok(CardExport {
            job_name: job_name.to_string(),
            version: version_no,
            pdf: self.s3(&pdf_key),
            html: Some(self.s3(&html_key)),
            status: "Completed".into(),
        })
    }
}
