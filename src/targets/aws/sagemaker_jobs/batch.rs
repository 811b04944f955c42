//! `byom_batch_*`: the batch transform job the solution's batch Lambda starts (reference §7.2),
//! over the model the stack created.

use super::{job_step, job_tags, stack_output};
use crate::domain::plan::BatchStage;
use crate::targets::aws::clients::Clients;
use crate::targets::aws::context::AwsContext;
use crate::targets::aws::errors::AwsError;
use crate::targets::{StageContext, StepOutcome, TargetError};
use aws_sdk_sagemaker::operation::create_transform_job::builders::CreateTransformJobInputBuilder;
use aws_sdk_sagemaker::operation::describe_transform_job::DescribeTransformJobOutput;
use aws_sdk_sagemaker::types::{
    AssemblyType, CompressionType, S3DataType, SplitType, Tag, TransformDataSource, TransformInput,
    TransformInstanceType, TransformOutput, TransformResources, TransformS3DataSource,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// SageMaker's limit on transform job names.
const MAX_NAME: usize = 63;
const INFIX: &str = "-batch-transform-";

pub(super) async fn run(
    clients: &Clients,
    stage: &StageContext,
    b: &BatchStage,
    outputs: &BTreeMap<String, String>,
    context: &AwsContext,
) -> Result<StepOutcome, TargetError> {
    let model_name = stack_output(outputs, "SageMakerModelName")?;
    // The name the stack was given as `BatchTransformJobName` (its output, as the solution's).
    let mut name = transform_job_name(&b.model_name, &stage.key.pipeline_id, stage.key.version, stage.key.ordinal);
    if let Some(release) = &stage.release {
        name = super::release_name(&name, release, MAX_NAME);
    }
    let describe = async {
        let out = clients.sagemaker.describe_transform_job().transform_job_name(&name).send().await;
        out.map_err(|e| AwsError::from_sdk("DescribeTransformJob", e))
    };
    let create = async {
        let request = transform_request(&name, model_name, b, job_tags(stage));
        request.send_with(&clients.sagemaker).await.map_err(|e| AwsError::from_sdk("CreateTransformJob", e))?;
        Ok(())
    };
    let status = |job: &DescribeTransformJobOutput| {
        (
            job.transform_job_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            job.failure_reason().map(String::from),
        )
    };
    let Some(job) = job_step("transform job", &name, describe, status, create).await? else {
        return Ok(StepOutcome::InProgress(context.poll_interval));
    };
    let status = job.transform_job_status().map(|s| s.as_str()).unwrap_or_default();
    Ok(StepOutcome::Done(json!({
        "transform_job_name": name,
        "transform_job_status": status,
        "model_name": model_name,
        "output_location": b.batch_job_output_location.uri(),
    })))
}

/// `<model name, lower-cased>-batch-transform-<8 hex>` as the solution names it, but after the
/// request's `model_name` rather than the SageMaker model CloudFormation names (so the name is
/// known before the deploy and the stack outputs it as `BatchTransformJobName`, as the solution's
/// does), and the hex from a SHA-256 of the pipeline version and stage (the solution draws a
/// random UUID, which a resumed worker could not find again). The model name is shortened so the
/// whole fits SageMaker's 63 characters.
pub(crate) fn transform_job_name(model_name: &str, pipeline_id: &str, version: i64, ordinal: i32) -> String {
    let digest = Sha256::new()
        .chain_update(pipeline_id.as_bytes())
        .chain_update([0])
        .chain_update(version.to_string().as_bytes())
        .chain_update([0])
        .chain_update(ordinal.to_string().as_bytes())
        .finalize();
    let hex = &hex::encode(digest)[..8];
    let room = MAX_NAME - INFIX.len() - hex.len();
    let prefix: String = model_name.to_ascii_lowercase().chars().take(room).collect();
    format!("{}{INFIX}{hex}", prefix.trim_end_matches('-'))
}

/// CreateTransformJob as the solution's Lambda sends it: CSV in by line, CSV out by line, one
/// instance; the KMS key encrypts the output and the volume.
pub(super) fn transform_request(
    name: &str,
    model_name: &str,
    b: &BatchStage,
    tags: Vec<Tag>,
) -> CreateTransformJobInputBuilder {
    let kms = b.kms_key_arn.as_ref().map(|k| k.as_str().to_string());
    let source = TransformS3DataSource::builder()
        .s3_data_type(S3DataType::S3Prefix)
        .s3_uri(b.batch_inference_data.uri())
        .build();
    let input = TransformInput::builder()
        .data_source(TransformDataSource::builder().s3_data_source(source).build())
        .content_type("text/csv")
        .split_type(SplitType::Line)
        .compression_type(CompressionType::None)
        .build();
    let output = TransformOutput::builder()
        .s3_output_path(b.batch_job_output_location.uri())
        .accept("text/csv")
        .assemble_with(AssemblyType::Line)
        .set_kms_key_id(kms.clone())
        .build();
    let resources = TransformResources::builder()
        .instance_type(TransformInstanceType::from(b.inference_instance.as_str()))
        .instance_count(1)
        .set_volume_kms_key_id(kms)
        .build();
    aws_sdk_sagemaker::operation::create_transform_job::CreateTransformJobInput::builder()
        .transform_job_name(name)
        .model_name(model_name)
        .transform_input(input)
        .transform_output(output)
        .transform_resources(resources)
        .set_tags(Some(tags))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::domain::PipelineType;
    use crate::domain::StageParams;

    fn batch_stage() -> BatchStage {
        match fixtures::stage_params(PipelineType::ByomBatchBuiltin) {
            StageParams::Batch(b) => b,
            other => panic!("not batch: {other:?}"),
        }
    }

    #[test]
    fn transform_job_names_are_deterministic_per_version_and_fit_sagemaker() {
        let a = transform_job_name("SageMakerModel-AbC123", "p-1", 1, 0);
        assert_eq!(a, transform_job_name("SageMakerModel-AbC123", "p-1", 1, 0));
        assert!(a.starts_with("sagemakermodel-abc123-batch-transform-"), "{a}");
        assert_eq!(a.len(), "sagemakermodel-abc123-batch-transform-".len() + 8);
        assert!(a.rsplit('-').next().unwrap().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, transform_job_name("SageMakerModel-AbC123", "p-1", 2, 0), "a new version runs again");
        assert_ne!(a, transform_job_name("SageMakerModel-AbC123", "p-1", 1, 1), "each stage has its own job");
        assert_ne!(a, transform_job_name("SageMakerModel-AbC123", "p-2", 1, 0));

        // moto and CloudFormation name models `<stack>-<logical id>-<random>`: far too long.
        let long = "mlops-pipeline-churn-xgb-byompipelinebatchbuiltin-SageMakerModel-1A2B3C4D5E6F";
        let name = transform_job_name(long, "p-1", 1, 0);
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("mlops-pipeline-churn-xgb-byompipelineb-batch-transform-"), "{name}");
        // A cut that ends on `-` would give `--`, which SageMaker's name pattern allows, but
        // reads badly; it is trimmed.
        let dashed = transform_job_name(&format!("{}-x", "a".repeat(37)), "p", 1, 0);
        assert!(!dashed.contains("--"), "{dashed}");
    }

    #[test]
    fn transform_request_is_the_solutions() {
        let b = batch_stage();
        let input = transform_request("m-batch-transform-0123abcd", "model-1", &b, vec![]).build().unwrap();
        assert_eq!(input.transform_job_name(), Some("m-batch-transform-0123abcd"));
        assert_eq!(input.model_name(), Some("model-1"));
        let i = input.transform_input().unwrap();
        let s3 = i.data_source().unwrap().s3_data_source().unwrap();
        assert_eq!(s3.s3_uri(), Some("s3://my-bucket/batch/input/data.csv"));
        assert_eq!(s3.s3_data_type(), Some(&S3DataType::S3Prefix));
        assert_eq!(i.content_type(), Some("text/csv"));
        assert_eq!(i.split_type(), Some(&SplitType::Line));
        assert_eq!(i.compression_type(), Some(&CompressionType::None));
        let o = input.transform_output().unwrap();
        assert_eq!(o.s3_output_path(), Some("s3://my-bucket/batch/output"));
        assert_eq!(o.accept(), Some("text/csv"));
        assert_eq!(o.assemble_with(), Some(&AssemblyType::Line));
        assert_eq!(o.kms_key_id(), None);
        let r = input.transform_resources().unwrap();
        assert_eq!(r.instance_type().map(|t| t.as_str()), Some("ml.m5.large"));
        assert_eq!(r.instance_count(), Some(1));
        assert_eq!(r.volume_kms_key_id(), None);
    }

    #[test]
    fn the_kms_key_encrypts_output_and_volume() {
        let mut b = batch_stage();
        let key = "arn:aws:kms:us-east-1:123456789012:key/abcd";
        b.kms_key_arn = Some(crate::domain::values::KmsKeyArn::parse(key).unwrap());
        let input = transform_request("n", "m", &b, vec![]).build().unwrap();
        assert_eq!(input.transform_output().unwrap().kms_key_id(), Some(key));
        assert_eq!(input.transform_resources().unwrap().volume_kms_key_id(), Some(key));
    }
}
