//! The embedded target: this process serves the models itself. An environment is a namespace
//! (endpoint names are per environment). Runs `byom_realtime_builtin` and `byom_batch_builtin`
//! with XGBoost and ONNX models, builds custom algorithms (`byom_image_builder`) and runs them
//! (`byom_realtime_custom`, `byom_batch_custom`), runs the monitors, XGBoost training and
//! tuning (`model_training_builtin`, `model_tuner_builtin`) and AutoML
//! (`model_autopilot_training`); everything else is refused up front with a 422 rather than
//! accepted and failed later.

mod automl;
mod batch;
mod bias;
mod explainability;
mod image_builder;
pub mod model_card_export;
mod model_cards;
pub use model_cards::LocalModelCards;
mod model_quality;
mod monitor;
mod training;

use super::{StageContext, StepOutcome, Target, TargetError};
use crate::artifacts::{ArtifactStore, StorageError};
use crate::domain::plan::RealtimeStage;
use crate::domain::spec::{ModelSource, PipelineParams, PipelineSpec};
use crate::domain::{PipelineType, StageParams};
use crate::serving::endpoints::{
    AlgorithmRef, CaptureLocation, EndpointConfig, EndpointRegistry, LiveEndpoint, LoadedModel, Model, ModelError,
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
    /// Where this replica unpacks custom algorithms and makes their virtual environments.
    algorithms_dir: std::path::PathBuf,
    /// The Python that makes those environments.
    python: String,
    /// `serving.install_timeout`: the longest a Python environment may take to make.
    install_timeout: std::time::Duration,
    /// `training.python`: a Python with the AutoML trainer's requirements; none: its own
    /// environment under `algorithms_dir`.
    training_python: Option<String>,
}

/// The frameworks this process evaluates itself (serving/builtin.rs).
const FRAMEWORKS: [&str; 2] = ["xgboost", "onnx"];

/// Whether the local target can run this model source.
fn check_model(model: &ModelSource) -> Result<(), String> {
    match model {
        ModelSource::BuiltIn { framework, .. } if FRAMEWORKS.iter().any(|f| framework.eq_ignore_ascii_case(f)) => {
            Ok(())
        }
        ModelSource::BuiltIn { framework, .. } => Err(format!(
            "the local target evaluates `xgboost` and `onnx` models; model_framework `{framework}` is not one \
             of them (convert the model to ONNX, e.g. with skl2onnx, and set model_framework to `onnx`)"
        )),
        // Resolved in the local registry when the stage deploys (`LocalTarget::model_artifact`).
        ModelSource::Registry { .. } => Ok(()),
        ModelSource::CustomImage { .. } => Err("custom images are not supported by the local target yet".into()),
    }
}

impl LocalTarget {
    pub fn new(store: DynTargetStore, endpoints: Arc<EndpointRegistry>, artifacts: ArtifactStore) -> Self {
        let algorithms_dir = std::env::temp_dir().join("mlops-algorithms");
        Self {
            store,
            endpoints,
            artifacts,
            algorithms_dir,
            python: "python3".into(),
            install_timeout: std::time::Duration::from_secs(30 * 60),
            training_python: None,
        }
    }

    /// The Python the AutoML trainer runs with (`training.python`); none: an environment of its own.
    pub fn with_training_python(mut self, python: Option<&str>) -> Self {
        self.training_python = python.map(String::from);
        self
    }

    /// Where custom algorithms are unpacked on this replica, and the Python that makes their
    /// virtual environments (`serving.python`) within `install_timeout`.
    pub fn with_algorithms(
        mut self,
        dir: std::path::PathBuf,
        python: &str,
        install_timeout: std::time::Duration,
    ) -> Self {
        self.algorithms_dir = dir;
        self.python = python.to_string();
        self.install_timeout = install_timeout;
        self
    }

    /// The framework and asset key of a model this process evaluates: a built-in model's own, or
    /// a registry version's — which, as SageMaker's `ModelPackageName`, must be `Approved`.
    pub(super) async fn model_artifact(&self, model: &ModelSource) -> Result<(String, String), TargetError> {
        let arn = match model {
            ModelSource::BuiltIn { framework, artifact, .. } => {
                return Ok((framework.clone(), artifact.as_str().to_string()));
            }
            ModelSource::CustomImage { .. } => {
                return Err(TargetError::permanent("a custom image is not a model this process evaluates"));
            }
            ModelSource::Registry { model_package } => model_package,
        };
        let (group, version) = arn.group_and_version();
        let package = self
            .store
            .model_package(group, version)
            .await
            .map_err(|e| TargetError::transient(e.to_string()))?
            .ok_or_else(|| {
                TargetError::permanent(format!(
                    "model package {group}/{version} is not in this server's model registry \
                     (POST /v1/model-package-groups/{group}/packages registers it)"
                ))
            })?;
        if package.approval_status != crate::store::model_registry::approval::APPROVED {
            return Err(TargetError::permanent(format!(
                "model package {group}/{version} is {}: an approver must approve it first \
                 (POST /v1/model-package-groups/{group}/packages/{version}/approval)",
                package.approval_status
            )));
        }
        Ok((package.framework, package.artifact))
    }

    /// The model a stage runs. Promotion integrity: a later stage runs the bytes the first stage
    /// ran, not whatever the asset holds by the time it is approved.
    async fn stage_model(
        &self,
        stage: &StageContext,
        framework: &str,
        artifact: &str,
    ) -> Result<LoadedModel, TargetError> {
        if stage.key.ordinal == 0 {
            self.endpoints.snapshot_model(artifact, framework).await.map_err(model_error)
        } else {
            self.endpoints.promoted_model(artifact, promoted_sha256(stage)?, framework).await.map_err(model_error)
        }
    }

    /// Puts the endpoint in service with `config` and installs `model` on this replica; returns
    /// the endpoint's new revision.
    async fn activate(
        &self,
        stage: &StageContext,
        name: &str,
        config: EndpointConfig,
        model: Model,
    ) -> Result<i64, TargetError> {
        let config_json = serde_json::to_value(&config).expect("endpoint config serialises");
        let record = match self.store.activate_endpoint(&stage.key, &stage.environment, name, config_json).await {
            Ok(record) => record,
            // Re-provisioned meanwhile: this version's deploy is moot, and the job says so.
            Err(StoreError::Conflict(why)) => return Err(TargetError::conflict(why)),
            Err(e) => return Err(TargetError::transient(e.to_string())),
        };
        self.endpoints.install(LiveEndpoint {
            environment: stage.environment.clone(),
            name: name.to_string(),
            revision: record.revision,
            metrics: crate::metrics::EndpointMetrics::new(&stage.environment, name),
            capture_target: Default::default(),
            config,
            model,
        });
        Ok(record.revision)
    }

    async fn deploy_realtime(&self, stage: &StageContext, params: &RealtimeStage) -> Result<StepOutcome, TargetError> {
        if let ModelSource::CustomImage { image_uri, artifact } = &params.model {
            return self.deploy_realtime_custom(stage, params, image_uri.as_str(), artifact.as_str()).await;
        }
        let (framework, artifact) = self.model_artifact(&params.model).await?;
        let loaded = self.stage_model(stage, &framework, &artifact).await?;
        let config = EndpointConfig {
            model_name: params.model_name.clone(),
            // What the file is (an ONNX file under `model_framework: xgboost` runs as ONNX).
            framework: loaded.model.framework().to_string(),
            artifact: artifact.as_str().to_string(),
            artifact_sha256: loaded.sha256.clone(),
            variant: VARIANT.to_string(),
            capture: Some(CaptureLocation {
                bucket: params.data_capture_location.bucket().to_string(),
                prefix: params.data_capture_location.prefix().to_string(),
            }),
            num_features: loaded.model.num_features(),
            num_outputs: loaded.model.num_outputs(),
            objective: loaded.model.objective().to_string(),
            algorithm: None,
        };
        let name = params.endpoint_name.as_str();
        let (num_features, objective) = (config.num_features, config.objective.clone());
        let framework = config.framework.clone();
        let revision = self.activate(stage, name, config, Model::Builtin(loaded.model)).await?;
        Ok(StepOutcome::Done(json!({
            "endpoint_name": name,
            "environment": stage.environment,
            "revision": revision,
            "model_sha256": loaded.sha256,
            "framework": framework,
            "num_features": num_features,
            "objective": objective,
            "data_capture_location": params.data_capture_location.as_str(),
        })))
    }

    /// `byom_realtime_custom`: `custom_image_uri` names an algorithm the image builder
    /// registered (a registry host in front of `repository:tag`, as in an ECR URI, is ignored).
    /// The algorithm is started with the model and must answer `GET /ping` before the endpoint
    /// goes into service.
    async fn deploy_realtime_custom(
        &self,
        stage: &StageContext,
        params: &RealtimeStage,
        image_uri: &str,
        artifact: &str,
    ) -> Result<StepOutcome, TargetError> {
        let capture = CaptureLocation {
            bucket: params.data_capture_location.bucket().to_string(),
            prefix: params.data_capture_location.prefix().to_string(),
        };
        let config = self.custom_config(stage, &params.model_name, image_uri, artifact, Some(capture)).await?;
        let name = params.endpoint_name.as_str();
        // Started before the endpoint goes into service: an algorithm that cannot start fails
        // the deploy and leaves the endpoint as it was.
        let process = self.endpoints.start_custom(&stage.environment, name, &config).await.map_err(model_error)?;
        let algorithm = config.algorithm.clone().expect("a custom config names its algorithm");
        let model_sha256 = config.artifact_sha256.clone();
        let revision = self.activate(stage, name, config, Model::Process(process)).await?;
        Ok(StepOutcome::Done(json!({
            "endpoint_name": name,
            "environment": stage.environment,
            "revision": revision,
            "model_sha256": model_sha256,
            "algorithm": algorithm.name,
            "algorithm_sha256": algorithm.sha256,
            "data_capture_location": params.data_capture_location.as_str(),
        })))
    }

    /// Starts the algorithm `image_uri` names with the stage's model for a batch transform; it
    /// stops when the returned process is dropped. Returns the model's digest too.
    pub(super) async fn start_algorithm(
        &self,
        stage: &StageContext,
        image_uri: &str,
        artifact: &str,
    ) -> Result<(crate::serving::process::ProcessModel, String), TargetError> {
        let config = self.custom_config(stage, &stage.pipeline_name, image_uri, artifact, None).await?;
        let label = format!("batch-{}", stage.key.pipeline_id);
        let process = self.endpoints.start_custom(&stage.environment, &label, &config).await.map_err(model_error)?;
        Ok((process, config.artifact_sha256))
    }

    /// What a custom algorithm runs with: the algorithm `image_uri` names and the stage's model,
    /// snapshotted (a later stage of a promotion runs the first stage's bytes).
    async fn custom_config(
        &self,
        stage: &StageContext,
        model_name: &str,
        image_uri: &str,
        artifact: &str,
        capture: Option<CaptureLocation>,
    ) -> Result<EndpointConfig, TargetError> {
        let name_in_uri = algorithm_name(image_uri);
        let algorithm = self
            .store
            .algorithm(&name_in_uri)
            .await
            .map_err(|e| TargetError::transient(e.to_string()))?
            .ok_or_else(|| {
                TargetError::not_found(format!(
                    "custom_image_uri {image_uri:?} names no algorithm: build `{name_in_uri}` with a byom_image_builder \
                     pipeline first (GET /v1/algorithms lists the built ones)"
                ))
            })?;
        // Promotion integrity, as for built-in models: later stages run the first stage's bytes.
        let model_sha256 = if stage.key.ordinal == 0 {
            let bytes = self.endpoints.read_artifact(artifact).await.map_err(model_error)?;
            self.endpoints.snapshot_bytes(artifact, bytes).await.map_err(model_error)?
        } else {
            promoted_sha256(stage)?.to_string()
        };
        Ok(EndpointConfig {
            model_name: model_name.to_string(),
            framework: "custom".into(),
            artifact: artifact.to_string(),
            artifact_sha256: model_sha256,
            variant: VARIANT.to_string(),
            capture,
            num_features: 0,
            num_outputs: 0,
            objective: String::new(),
            algorithm: Some(AlgorithmRef { name: algorithm.name, sha256: algorithm.sha256 }),
        })
    }
}

/// `repository:tag` of an image URI: a registry host (a first component with `.` or `:`, or
/// `localhost`) is dropped, so an ECR URI from the solution's config names the local build; a
/// URI without a tag means `:latest`, as it does to docker and to ECR.
fn algorithm_name(image_uri: &str) -> std::borrow::Cow<'_, str> {
    let repository = match image_uri.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => image_uri,
    };
    let last = repository.rsplit('/').next().unwrap_or(repository);
    if last.contains(':') || last.contains('@') { repository.into() } else { format!("{repository}:latest").into() }
}

/// The model digest the first stage of this version recorded, which a later stage runs.
fn promoted_sha256(stage: &StageContext) -> Result<&str, TargetError> {
    stage
        .promoted_from
        .as_ref()
        .and_then(|outputs| outputs.get("model_sha256"))
        .and_then(|sha| sha.as_str())
        .ok_or_else(|| {
            TargetError::permanent(format!(
                "stage {} promotes the first stage's model, but the first stage recorded none",
                stage.key.ordinal
            ))
        })
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
            (PipelineType::ByomRealtimeCustom, PipelineParams::Realtime(r)) => match &r.model {
                ModelSource::CustomImage { .. } => Ok(()),
                other => check_model(other),
            },
            (PipelineType::ByomBatchBuiltin, PipelineParams::Batch(b)) => check_model(&b.model),
            (PipelineType::ByomBatchCustom, PipelineParams::Batch(b)) => match &b.model {
                ModelSource::CustomImage { .. } => Ok(()),
                other => check_model(other),
            },
            (PipelineType::ByomImageBuilder, PipelineParams::ImageBuilder(_)) => Ok(()),
            (PipelineType::ModelAutopilotTraining, PipelineParams::Autopilot(_)) => Ok(()),
            (PipelineType::ModelTrainingBuiltin | PipelineType::ModelTunerBuiltin, PipelineParams::Training(t)) => {
                training::check_training(t)
            }
            (
                PipelineType::ByomDataQualityMonitor
                | PipelineType::ByomModelQualityMonitor
                | PipelineType::ByomModelExplainabilityMonitor
                | PipelineType::ByomModelBiasMonitor,
                PipelineParams::Monitor(_),
            ) => Ok(()),
            (other, _) => Err(format!(
                "the local target cannot run `{other}` pipelines yet; it runs the real-time and batch types, \
                 `byom_image_builder`, the monitors, training and AutoML",
                other = other.as_str()
            )),
        }
    }

    async fn deploy_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        match &stage.params {
            StageParams::Realtime(params) => self.deploy_realtime(stage, params).await,
            StageParams::Batch(params) => self.deploy_batch(stage, params).await,
            StageParams::ImageBuilder(spec) => self.deploy_image_builder(stage, spec).await,
            StageParams::Monitor(params) => self.deploy_monitor(stage, params).await,
            StageParams::Autopilot(params) => self.deploy_autopilot(stage, params).await,
            StageParams::Training(params) => self.deploy_training(stage, params).await,
        }
    }

    async fn teardown_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        // The endpoint rows go with the pipeline; this replica drops its loaded model at once,
        // others within their refresh interval.
        match &stage.params {
            StageParams::Realtime(params) => self.endpoints.forget(&stage.environment, params.endpoint_name.as_str()),
            // Unpacked copies stay: content-addressed, they may serve a rebuilt algorithm again.
            StageParams::ImageBuilder(_) => self
                .store
                .delete_algorithms(&stage.key.pipeline_id)
                .await
                .map_err(|e| TargetError::transient(e.to_string()))?,
            StageParams::Monitor(_) => self.teardown_monitor(stage).await?,
            _ => {}
        }
        Ok(StepOutcome::Done(json!({})))
    }

    async fn run_monitor(
        &self,
        monitor: &crate::store::MonitorRecord,
        execution: &crate::store::MonitorExecutionRecord,
    ) -> Result<serde_json::Value, TargetError> {
        self.run_monitor_execution(monitor, execution).await
    }
}

#[cfg(test)]
mod tests {
    use super::algorithm_name;

    #[test]
    fn an_image_uri_names_repository_and_tag_with_latest_by_default() {
        for (uri, name) in [
            ("mlops-ecrrep:tree", "mlops-ecrrep:tree"),
            ("custom-image-uri", "custom-image-uri:latest"),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-ecrrep:tree", "mlops-ecrrep:tree"),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/algo", "team/algo:latest"),
            ("localhost:5000/algo:v2", "algo:v2"),
            ("localhost/algo", "algo:latest"),
            ("team/algo", "team/algo:latest"),
            ("algo@sha256:0123", "algo@sha256:0123"),
        ] {
            assert_eq!(algorithm_name(uri), name, "{uri}");
        }
    }
}
