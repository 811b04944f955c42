//! `byom_realtime_*` and `byom_batch_*`: a model plus where it serves or transforms.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::body::{Body, pointer};
use super::errors::FieldErrorCode;
use super::identity;
use super::scalars::{Invalid, asset_key, kms_key, model_name, parsed, string};
use crate::domain::names::{EndpointName, MAX_SAGEMAKER_NAME_LEN};
use crate::domain::per_stage::PerStage;
use crate::domain::pipeline_type::PipelineType;
use crate::domain::spec::{BatchSpec, ModelSource, PipelineParams, PipelineSpec, RealtimeSpec};
use crate::domain::values::{ImageUri, InstanceType, ModelPackageArn, S3Location};

pub(super) fn realtime(b: &mut Body) -> Option<PipelineSpec> {
    let pipeline_type = b.pipeline_type;
    // Read in the solution's required-key order, so the first error matches its message.
    let model_name = b.required("model_name", model_name(pipeline_type));
    let inference_instance = b.per_stage_required("inference_instance", parsed(InstanceType::parse));
    let model = model_source(b);
    let data_capture_location = b.per_stage_required("data_capture_location", parsed(S3Location::parse));
    let endpoint_name = b.per_stage_optional("endpoint_name", parsed(EndpointName::parse));
    let kms_key_arn = b.per_stage_optional("kms_key_arn", kms_key);

    let model_name = model_name?;
    let endpoint_name = match endpoint_name? {
        Some(endpoint_name) => endpoint_name,
        // The solution leaves the name to CloudFormation; a predictable name is more useful
        // (monitors must name the endpoint), so default to the model name.
        None => match EndpointName::parse(&model_name) {
            Ok(name) => PerStage::All(name),
            Err(_) => {
                b.error(
                    pointer(&["endpoint_name"]),
                    FieldErrorCode::Required,
                    format!(
                        "`endpoint_name` is required when the model name is longer than {MAX_SAGEMAKER_NAME_LEN} characters: the endpoint is named after the model by default, and SageMaker endpoint names are at most {MAX_SAGEMAKER_NAME_LEN} characters"
                    ),
                );
                return None;
            }
        },
    };
    Some(PipelineSpec {
        pipeline_type,
        name: identity(&model_name),
        params: PipelineParams::Realtime(RealtimeSpec {
            model_name,
            model: model?,
            inference_instance: inference_instance?,
            data_capture_location: data_capture_location?,
            endpoint_name,
            kms_key_arn: kms_key_arn?.unwrap_or(PerStage::All(None)),
        }),
    })
}

pub(super) fn batch(b: &mut Body) -> Option<PipelineSpec> {
    let pipeline_type = b.pipeline_type;
    let model_name = b.required("model_name", model_name(pipeline_type));
    let inference_instance = b.per_stage_required("inference_instance", parsed(InstanceType::parse));
    let model = model_source(b);
    let batch_inference_data = b.per_stage_required("batch_inference_data", parsed(S3Location::parse));
    let batch_job_output_location = b.per_stage_required("batch_job_output_location", parsed(S3Location::parse));
    let kms_key_arn = b.per_stage_optional("kms_key_arn", kms_key);

    let model_name = model_name?;
    Some(PipelineSpec {
        pipeline_type,
        name: identity(&model_name),
        params: PipelineParams::Batch(BatchSpec {
            model_name,
            model: model?,
            inference_instance: inference_instance?,
            batch_inference_data: batch_inference_data?,
            batch_job_output_location: batch_job_output_location?,
            kms_key_arn: kms_key_arn?.unwrap_or(PerStage::All(None)),
        }),
    })
}

/// The model: from the registry when the server uses one, else a built-in algorithm or a
/// custom image by pipeline type, with the artifact in the assets bucket.
fn model_source(b: &mut Body) -> Option<ModelSource> {
    if b.ctx.use_model_registry {
        let model_package = b.required("model_package_name", parsed(ModelPackageArn::parse));
        for key in ["model_framework", "model_framework_version", "custom_image_uri", "model_artifact_location"] {
            b.ignore(key, "the server uses the model registry, so the model comes from `model_package_name`");
        }
        return Some(ModelSource::Registry { model_package: model_package? });
    }
    b.ignore("model_package_name", "the model registry is not enabled on this server");
    match b.pipeline_type {
        PipelineType::ByomRealtimeCustom | PipelineType::ByomBatchCustom => {
            let image_uri = b.required("custom_image_uri", parsed(ImageUri::parse));
            let artifact = b.required("model_artifact_location", asset_key);
            Some(ModelSource::CustomImage { image_uri: image_uri?, artifact: artifact? })
        }
        _ => {
            let framework = b.required("model_framework", framework);
            let framework_version = b.required("model_framework_version", framework_version);
            let artifact = b.required("model_artifact_location", asset_key);
            Some(ModelSource::BuiltIn {
                framework: framework?,
                framework_version: framework_version?,
                artifact: artifact?,
            })
        }
    }
}

/// A SageMaker built-in algorithm name as the SageMaker SDK's image lookup spells it.
pub(super) fn framework(v: &Value) -> Result<String, Invalid> {
    static PATTERN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]*$").expect("static pattern"));
    let s = string(v)?.trim();
    if PATTERN.is_match(s) {
        Ok(s.to_string())
    } else {
        Err(Invalid::value(format!(
            "`{s}` is not a SageMaker built-in algorithm name: lower-case letters, digits, `.`, `_` and `-`, e.g. `xgboost`"
        )))
    }
}

/// An algorithm version such as `1`, `1.2-2` or `0.90-1`; a JSON integer is accepted.
pub(super) fn framework_version(v: &Value) -> Result<String, Invalid> {
    static PATTERN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]*$").expect("static pattern"));
    let s = match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(Invalid::expected("a version string such as `1.2-2`", v)),
    };
    if PATTERN.is_match(&s) {
        Ok(s)
    } else {
        Err(Invalid::value(format!("`{s}` is not a version: letters, digits, `.`, `_` and `-`, e.g. `1.2-2`")))
    }
}
