//! `byom_image_builder`: build a custom-algorithm image from a zip in the assets bucket.

use serde_json::Value;

use super::body::Body;
use super::identity;
use super::scalars::{Invalid, asset_key, parsed};
use crate::domain::names::{EcrRepoName, ImageTag};
use crate::domain::spec::{ImageBuilderSpec, PipelineParams, PipelineSpec};
use crate::domain::values::AssetKey;

pub(super) fn image_builder(b: &mut Body) -> Option<PipelineSpec> {
    let custom_algorithm_docker = b.required("custom_algorithm_docker", zip_key);
    let ecr_repo_name = b.required("ecr_repo_name", parsed(EcrRepoName::parse));
    let image_tag = b.required("image_tag", parsed(ImageTag::parse));

    let image_tag = image_tag?;
    Some(PipelineSpec {
        pipeline_type: b.pipeline_type,
        name: identity(image_tag.as_str()),
        params: PipelineParams::ImageBuilder(ImageBuilderSpec {
            custom_algorithm_docker: custom_algorithm_docker?,
            ecr_repo_name: ecr_repo_name?,
            image_tag,
        }),
    })
}

/// The build's source: CodePipeline's S3 source action only takes zip archives.
fn zip_key(v: &Value) -> Result<AssetKey, Invalid> {
    let key = asset_key(v)?;
    if key.as_str().to_ascii_lowercase().ends_with(".zip") {
        Ok(key)
    } else {
        Err(Invalid::value(format!("`{key}` must be a `.zip` archive holding a `Dockerfile` and its build context")))
    }
}
