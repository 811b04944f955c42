//! Stage parameters for the tests, planned from the shared request fixtures
//! (`tests/fixtures/requests/`) exactly as the API would.

use crate::domain::plan::plan;
use crate::domain::request::{RequestContext, parse_request};
use crate::domain::{PipelineType, StageParams};
use crate::store::StageKey;
use crate::targets::StageContext;
use crate::targets::aws::context::AwsContext;

pub(super) const REGION: &str = "us-east-1";
pub(super) const ASSETS: &str = "mlops-assets";

pub(super) fn request(pipeline_type: PipelineType) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/requests/{}.json", env!("CARGO_MANIFEST_DIR"), pipeline_type.as_str());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The single stage of `body` planned in one environment, at version 1.
pub(super) fn stage_of(body: &serde_json::Value) -> StageContext {
    let spec = parse_request(body, &RequestContext::default()).unwrap_or_else(|e| panic!("{body}: {:?}", e.0)).spec;
    let plan = plan(&spec, &RequestContext::default(), 1).expect("plans");
    let stage = plan.stages.into_iter().next().expect("one stage");
    StageContext {
        key: StageKey { pipeline_id: "pipeline-1".into(), ordinal: 0, version: 1 },
        pipeline_type: spec.pipeline_type,
        pipeline_name: spec.name.clone(),
        environment: stage.environment,
        params: stage.params,
        started_at: chrono::Utc::now(),
        decision: None,
        promoted_from: None,
        checkpoint: None,
        release: None,
    }
}

pub(super) fn stage(pipeline_type: PipelineType) -> StageContext {
    stage_of(&request(pipeline_type))
}

pub(super) fn stage_params(pipeline_type: PipelineType) -> StageParams {
    stage(pipeline_type).params
}

pub(super) fn context() -> AwsContext {
    AwsContext {
        region: REGION.into(),
        assets_bucket: ASSETS.into(),
        blueprint_bucket: "mlops-blueprints".into(),
        ecr_repo_arn: "arn:aws:ecr:us-east-1:123456789012:repository/mlops-ecr-repo".into(),
        ecr_repo_name: "mlops-ecr-repo".into(),
        notification_topic_arn: "arn:aws:sns:us-east-1:123456789012:mlops-notifications".into(),
        cloudformation_role_arn: "arn:aws:iam::123456789012:role/mlops-cloudformation".into(),
        use_model_registry: false,
        monitor_image_uri: None,
        environments: Vec::new(),
        poll_interval: std::time::Duration::from_secs(15),
    }
}
