//! Model cards on the aws target: SageMaker's model-card APIs in the orchestrator's account,
//! the overview filled from `DescribeModel` and training details from `DescribeTrainingJob`
//! (as the solution's SageMaker SDK does), metric files read from S3, and PDF exports through a
//! SageMaker export job writing under the assets bucket's `model_card_exports/`.

use super::clients::Clients;
use super::errors::AwsError;
use crate::targets::UpstreamError;
use crate::targets::model_cards::{CardError, CardExport, CardSummary, CardVersion, CardWrite, ModelCards};
use async_trait::async_trait;
use aws_sdk_sagemaker::types::{ModelCardExportJobStatus, ModelCardExportOutputConfig, ModelCardStatus};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// A metric file larger than this is refused.
const MAX_METRIC_FILE: i64 = 10 << 20;
/// How long an export waits for SageMaker's job (the solution's Lambda waits too, up to its
/// 10-minute timeout); after that the answer says the job is still running.
const EXPORT_WAIT: Duration = Duration::from_secs(120);

pub struct AwsModelCards {
    clients: Clients,
    assets_bucket: String,
    poll: Duration,
}

impl AwsModelCards {
    /// The orchestrator's own account's clients (cards live there, as the solution's do).
    pub(super) fn new(clients: Clients, assets_bucket: &str, poll: Duration) -> Self {
        Self { clients, assets_bucket: assets_bucket.to_string(), poll: poll.min(Duration::from_secs(2)) }
    }
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl From<AwsError> for CardError {
    fn from(e: AwsError) -> Self {
        if e.code.contains("NotFound") {
            CardError::NotFound(e.message)
        } else if e.code == "ConflictException" {
            CardError::Conflict(e.message)
        } else if e.retryable {
            CardError::Unavailable { what: "SageMaker", cause: e.to_string() }
        } else {
            CardError::Upstream(UpstreamError {
                status: e.status.unwrap_or(502),
                operation: e.operation.to_string(),
                code: e.code,
                message: e.message,
            })
        }
    }
}

#[async_trait]
impl ModelCards for AwsModelCards {
    async fn model_overview(&self, model_name: &str) -> Result<Map<String, Value>, CardError> {
        let model = match self.clients.sagemaker.describe_model().model_name(model_name).send().await {
            Ok(model) => model,
            Err(e) => {
                let e = AwsError::from_sdk("DescribeModel", e);
                // SageMaker answers a missing model with a ValidationException.
                if e.message.starts_with("Could not find model") {
                    return Err(CardError::invalid(
                        "/model_overview/model_name",
                        format!(
                            "Model details for model {model_name} could not be found. Make sure the model name is valid."
                        ),
                    ));
                }
                return Err(e.into());
            }
        };
        let artifacts: Vec<String> = if !model.containers().is_empty() {
            model.containers().iter().filter_map(|c| c.model_data_url().map(str::to_string)).collect()
        } else {
            model.primary_container().and_then(|c| c.model_data_url()).map(str::to_string).into_iter().collect()
        };
        let images: Vec<String> =
            model.primary_container().and_then(|c| c.image()).map(str::to_string).into_iter().collect();
        let mut overview = Map::new();
        overview.insert("model_name".into(), json!(model_name));
        overview.insert("model_id".into(), json!(model.model_arn()));
        overview.insert("model_artifact".into(), json!(artifacts));
        overview.insert("inference_environment".into(), json!({ "container_image": images }));
        Ok(overview)
    }

    async fn training_job_details(&self, job_name: &str) -> Result<Map<String, Value>, CardError> {
        let job = self
            .clients
            .sagemaker
            .describe_training_job()
            .training_job_name(job_name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTrainingJob", e))
            .map_err(|e| match CardError::from(e) {
                CardError::NotFound(why) | CardError::Upstream(UpstreamError { message: why, .. }) => {
                    CardError::invalid("/training_details/training_job_name", format!("training job {job_name}: {why}"))
                }
                other => other,
            })?;
        let mut details = Map::new();
        details.insert("training_arn".into(), json!(job.training_job_arn()));
        let datasets: Vec<&str> = job
            .input_data_config()
            .iter()
            .filter_map(|c| c.data_source().and_then(|d| d.s3_data_source()).and_then(|s| s.s3_uri()))
            .collect();
        if !datasets.is_empty() {
            details.insert("training_datasets".into(), json!(datasets));
        }
        if let Some(image) = job.algorithm_specification().and_then(|a| a.training_image()) {
            details.insert("training_environment".into(), json!({ "container_image": [image] }));
        }
        let metrics: Vec<Value> = job
            .final_metric_data_list()
            .iter()
            .filter_map(|m| Some(json!({"name": m.metric_name()?, "value": m.value()?})))
            .collect();
        if !metrics.is_empty() {
            details.insert("training_metrics".into(), json!(metrics));
        }
        Ok(details)
    }

    async fn metric_file(&self, bucket: &str, key: &str) -> Result<Value, CardError> {
        let object = self
            .clients
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetObject", e))
            .map_err(|e| match e.code.as_str() {
                "NoSuchKey" | "NoSuchBucket" => CardError::NotFound(format!("no object s3://{bucket}/{key}")),
                _ => e.into(),
            })?;
        if object.content_length().unwrap_or(0) > MAX_METRIC_FILE {
            return Err(CardError::invalid("", format!("s3://{bucket}/{key} is larger than {MAX_METRIC_FILE} bytes")));
        }
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| CardError::Unavailable { what: "S3", cause: e.to_string() })?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| CardError::invalid("", format!("s3://{bucket}/{key} is not JSON: {e}")))
    }

    async fn card(&self, name: &str, version: Option<i64>) -> Result<Option<CardVersion>, CardError> {
        let mut call = self.clients.sagemaker.describe_model_card().model_card_name(name);
        if let Some(v) = version {
            call = call.model_card_version(i32::try_from(v).unwrap_or(i32::MAX));
        }
        let card = match call.send().await.map_err(|e| AwsError::from_sdk("DescribeModelCard", e)) {
            Ok(card) => card,
            Err(e) if e.code.contains("NotFound") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(CardVersion {
            arn: card.model_card_arn().unwrap_or_default().to_string(),
            name: card.model_card_name().unwrap_or(name).to_string(),
            version: card.model_card_version().map(i64::from).unwrap_or(1),
            status: card.model_card_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            content: card.content().unwrap_or("{}").to_string(),
            created_at: time(card.creation_time()),
            created_by: card.created_by().and_then(|u| u.user_profile_name()).map(str::to_string),
            modified_at: time(card.last_modified_time()),
            modified_by: card.last_modified_by().and_then(|u| u.user_profile_name()).map(str::to_string),
        }))
    }

    async fn create(&self, card: &CardWrite<'_>) -> Result<(), CardError> {
        self.clients
            .sagemaker
            .create_model_card()
            .model_card_name(card.name)
            .content(card.content)
            .model_card_status(ModelCardStatus::from(card.status))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateModelCard", e))?;
        Ok(())
    }

    async fn update(&self, card: &CardWrite<'_>) -> Result<(), CardError> {
        self.clients
            .sagemaker
            .update_model_card()
            .model_card_name(card.name)
            .content(card.content)
            .model_card_status(ModelCardStatus::from(card.status))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateModelCard", e))?;
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, CardError> {
        match self.clients.sagemaker.delete_model_card().model_card_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteModelCard", e);
                if e.code.contains("NotFound") { Ok(false) } else { Err(e.into()) }
            }
        }
    }

    async fn list(&self) -> Result<Vec<CardSummary>, CardError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .clients
                .sagemaker
                .list_model_cards()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListModelCards", e))?;
            out.extend(page.model_card_summaries().iter().map(|c| CardSummary {
                arn: c.model_card_arn().unwrap_or_default().to_string(),
                name: c.model_card_name().unwrap_or_default().to_string(),
                version: None,
                status: c.model_card_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                created_at: time(c.creation_time()),
                modified_at: time(c.last_modified_time()),
            }));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn versions(&self, name: &str) -> Result<Vec<CardSummary>, CardError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .clients
                .sagemaker
                .list_model_card_versions()
                .model_card_name(name)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListModelCardVersions", e))
            {
                Ok(page) => page,
                Err(e) if e.code.contains("NotFound") => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            out.extend(page.model_card_version_summary_list().iter().map(|c| CardSummary {
                arn: c.model_card_arn().unwrap_or_default().to_string(),
                name: c.model_card_name().unwrap_or_default().to_string(),
                version: c.model_card_version().map(i64::from),
                status: c.model_card_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                created_at: time(c.creation_time()),
                modified_at: time(c.last_modified_time()),
            }));
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => {
                    out.sort_by_key(|c| c.version);
                    return Ok(out);
                }
            }
        }
    }

    async fn export(&self, name: &str, version: i64, job_name: &str, _actor: &str) -> Result<CardExport, CardError> {
        let output = format!("s3://{}/model_card_exports", self.assets_bucket);
        let config = ModelCardExportOutputConfig::builder().s3_output_path(&output).build();
        let arn = self
            .clients
            .sagemaker
            .create_model_card_export_job()
            .model_card_name(name)
            .model_card_version(i32::try_from(version).unwrap_or(i32::MAX))
            .model_card_export_job_name(job_name)
            .output_config(config)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateModelCardExportJob", e))?
            .model_card_export_job_arn()
            .unwrap_or_default()
            .to_string();
        let deadline = tokio::time::Instant::now() + EXPORT_WAIT;
        loop {
            let job = self
                .clients
                .sagemaker
                .describe_model_card_export_job()
                .model_card_export_job_arn(&arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeModelCardExportJob", e))?;
            let status = job.status().cloned();
            let pdf = job
                .export_artifacts()
                .and_then(|a| a.s3_export_artifacts())
                .map(str::to_string)
                .unwrap_or_else(|| format!("{output}/{name}/{job_name}/{name}.pdf"));
            match status {
                Some(ModelCardExportJobStatus::Completed) => {
                    return Ok(CardExport {
                        job_name: job_name.to_string(),
                        version,
                        pdf,
                        html: None,
                        status: "Completed".into(),
                    });
                }
                Some(ModelCardExportJobStatus::Failed) => {
                    return Err(CardError::Upstream(UpstreamError {
                        status: 502,
                        operation: "DescribeModelCardExportJob".into(),
                        code: "ExportFailed".into(),
                        message: job.failure_reason().unwrap_or("the export job failed").to_string(),
                    }));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Ok(CardExport {
                        job_name: job_name.to_string(),
                        version,
                        pdf,
                        html: None,
                        status: "InProgress".into(),
                    });
                }
                _ => tokio::time::sleep(self.poll).await,
            }
        }
    }
}
