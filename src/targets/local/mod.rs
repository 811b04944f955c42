//! The embedded target: this process serves the models itself. An environment is a namespace
//! (endpoint names are per environment). Runs `byom_realtime_builtin` and `byom_batch_builtin`
//! with XGBoost models today; everything else is refused up front with a 422 rather than
//! accepted and failed later.

mod batch;

use super::{StageContext, StepOutcome, Target, TargetError};
use crate::artifacts::{ArtifactStore, StorageError};
use crate::domain::plan::RealtimeStage;
use crate::domain::spec::{ModelSource, PipelineParams, PipelineSpec};
use crate::domain::{PipelineType, StageParams};
use crate::serving::endpoints::{
    CaptureLocation, EndpointConfig, EndpointRegistry, LiveEndpoint, LoadedModel, ModelError,
};
use crate::store::StoreError;
use crate::targets::DynTargetStore;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;

/// SageMaker's single production variant name, which the capture path includes.
pub const VARIANT: &str = "AllTraffic";

pub struct LocalTarget {
    store: DynTargetStore,
    endpoints: Arc<EndpointRegistry>,
    artifacts: ArtifactStore,
}

/// The asset key of a built-in model (the only source `check_supported` lets through).
fn built_in_artifact(model: &ModelSource) -> Result<&str, TargetError> {
    match model {
        ModelSource::BuiltIn { artifact, .. } => Ok(artifact.as_str()),
        _ => Err(TargetError::permanent("the local target runs built-in models only")),
    }
}

/// Whether the local target can run this model source.
fn check_model(model: &ModelSource) -> Result<(), String> {
    match model {
        ModelSource::BuiltIn { framework, .. } if framework.eq_ignore_ascii_case("xgboost") => Ok(()),
        ModelSource::BuiltIn { framework, .. } => Err(format!(
            "the local target runs built-in `xgboost` models; model_framework `{framework}` is not supported yet"
        )),
        ModelSource::Registry { .. } => {
            Err("models from a model registry (model_package_name) need the aws target".into())
        }
        ModelSource::CustomImage { .. } => Err("custom images are not supported by the local target yet".into()),
    }
}

impl LocalTarget {
    pub fn new(store: DynTargetStore, endpoints: Arc<EndpointRegistry>, artifacts: ArtifactStore) -> Self {
        Self { store, endpoints, artifacts }
    }

    /// The model a stage runs. Promotion integrity: a later stage runs the bytes the first stage
    /// ran, not whatever the asset holds by the time it is approved.
    async fn stage_model(&self, stage: &StageContext, artifact: &str) -> Result<LoadedModel, TargetError> {
        if stage.key.ordinal == 0 {
            self.endpoints.snapshot_model(artifact).await.map_err(model_error)
        } else {
            let sha256 = stage
                .promoted_from
                .as_ref()
                .and_then(|outputs| outputs.get("model_sha256"))
                .and_then(|sha| sha.as_str())
                .ok_or_else(|| {
                    TargetError::permanent(format!(
                        "stage {} promotes the first stage's model, but the first stage recorded none",
                        stage.key.ordinal
                    ))
                })?;
            self.endpoints.promoted_model(artifact, sha256).await.map_err(model_error)
        }
    }

    async fn deploy_realtime(&self, stage: &StageContext, params: &RealtimeStage) -> Result<StepOutcome, TargetError> {
        let ModelSource::BuiltIn { framework, artifact, .. } = &params.model else {
            return Err(TargetError::permanent("the local target serves built-in models only"));
        };
        let loaded = self.stage_model(stage, artifact.as_str()).await?;
        let config = EndpointConfig {
            model_name: params.model_name.clone(),
            framework: framework.clone(),
            artifact: artifact.as_str().to_string(),
            artifact_sha256: loaded.sha256.clone(),
            variant: VARIANT.to_string(),
            capture: Some(CaptureLocation {
                bucket: params.data_capture_location.bucket().to_string(),
                prefix: params.data_capture_location.prefix().to_string(),
            }),
            num_features: loaded.booster.num_features(),
            num_outputs: loaded.booster.num_outputs(),
            objective: loaded.booster.objective().to_string(),
        };
        let name = params.endpoint_name.as_str();
        let config_json = serde_json::to_value(&config).expect("endpoint config serialises");
        let record = match self.store.activate_endpoint(&stage.key, &stage.environment, name, config_json).await {
            Ok(record) => record,
            // Re-provisioned meanwhile: this version's deploy is moot, and the job says so.
            Err(StoreError::Conflict(why)) => return Err(TargetError::conflict(why)),
            Err(e) => return Err(TargetError::transient(e.to_string())),
        };
        let outputs = json!({
            "endpoint_name": name,
            "environment": stage.environment,
            "revision": record.revision,
            "model_sha256": loaded.sha256,
            "num_features": config.num_features,
            "objective": config.objective,
            "data_capture_location": params.data_capture_location.as_str(),
        });
        self.endpoints.install(LiveEndpoint {
            environment: stage.environment.clone(),
            name: name.to_string(),
            revision: record.revision,
            metrics: crate::metrics::EndpointMetrics::new(&stage.environment, name),
            config,
            model: loaded.booster,
        });
        Ok(StepOutcome::Done(outputs))
    }
}

fn model_error(e: ModelError) -> TargetError {
    let error = match &e {
        ModelError::Storage { key, source: StorageError::NotFound { .. } } => TargetError::not_found(format!(
            "model artifact {key:?} is not in the assets bucket: upload it first (PUT /v1/assets/{key} or `mlops assets put`)"
        )),
        ModelError::Storage { source: StorageError::Backend(_), .. } | ModelError::Snapshot { .. } => {
            TargetError::transient(e.to_string())
        }
        _ => TargetError::permanent(e.to_string()),
    };
    error.with_source(e)
}

#[async_trait]
impl Target for LocalTarget {
    fn name(&self) -> &'static str {
        "local"
    }

    fn hosts_endpoints(&self) -> bool {
        true
    }

    fn check_supported(&self, spec: &PipelineSpec) -> Result<(), String> {
        match (&spec.pipeline_type, &spec.params) {
            (PipelineType::ByomRealtimeBuiltin, PipelineParams::Realtime(r)) => check_model(&r.model),
            (PipelineType::ByomBatchBuiltin, PipelineParams::Batch(b)) => check_model(&b.model),
            (other, _) => Err(format!(
                "the local target cannot run `{other}` pipelines yet; it runs `byom_realtime_builtin` and \
                 `byom_batch_builtin` (xgboost)",
                other = other.as_str()
            )),
        }
    }

    async fn deploy_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        match &stage.params {
            StageParams::Realtime(params) => self.deploy_realtime(stage, params).await,
            StageParams::Batch(params) => self.deploy_batch(stage, params).await,
            _ => Err(TargetError::permanent("the local target cannot deploy this pipeline type")),
        }
    }

    async fn teardown_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        // The endpoint rows go with the pipeline; this replica drops its loaded model at once,
        // others within their refresh interval.
        if let StageParams::Realtime(params) = &stage.params {
            self.endpoints.forget(&stage.environment, params.endpoint_name.as_str());
        }
        Ok(StepOutcome::Done(json!({})))
    }
}
