//! Real-time endpoints, batch transforms and the custom-algorithm image builder.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::names::{EcrRepoName, EndpointName, ImageTag};
use crate::domain::per_stage::PerStage;
use crate::domain::values::{AssetKey, ImageUri, InstanceType, KmsKeyArn, ModelPackageArn, S3Location};

/// Where the model comes from. Registry on: a model package; off: a built-in algorithm
/// (`*_builtin`) or a custom image (`*_custom`), each with a `model.tar.gz` in the assets bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ModelSource {
    BuiltIn {
        /// SageMaker built-in algorithm, e.g. `xgboost`.
        framework: String,
        /// e.g. `1.2-2`.
        framework_version: String,
        artifact: AssetKey,
    },
    CustomImage {
        image_uri: ImageUri,
        artifact: AssetKey,
    },
    Registry {
        model_package: ModelPackageArn,
    },
}

/// `byom_realtime_builtin` / `byom_realtime_custom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RealtimeSpec {
    /// As given (trimmed); the template's `ModelName`.
    pub model_name: String,
    pub model: ModelSource,
    pub inference_instance: PerStage<InstanceType>,
    pub data_capture_location: PerStage<S3Location>,
    /// Defaults to the lower-cased model name.
    pub endpoint_name: PerStage<EndpointName>,
    pub kms_key_arn: PerStage<Option<KmsKeyArn>>,
}

/// `byom_batch_builtin` / `byom_batch_custom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchSpec {
    pub model_name: String,
    pub model: ModelSource,
    pub inference_instance: PerStage<InstanceType>,
    /// Input CSV object or prefix.
    pub batch_inference_data: PerStage<S3Location>,
    pub batch_job_output_location: PerStage<S3Location>,
    pub kms_key_arn: PerStage<Option<KmsKeyArn>>,
}

/// `byom_image_builder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageBuilderSpec {
    /// Zip with a `Dockerfile` and build context, in the assets bucket.
    pub custom_algorithm_docker: AssetKey,
    pub ecr_repo_name: EcrRepoName,
    pub image_tag: ImageTag,
}
