//! What the aws target's pure parts need to know about the installation (docs/AWS.md §1): the
//! buckets, the ECR repository, the notification topic, the CloudFormation role and, with three
//! environments, each environment's account and roles. Plain data, filled from the configuration.

/// The installation the templates deploy into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsContext {
    /// The orchestrator's region: built-in image URIs are resolved for it.
    pub region: String,
    /// Versioned bucket for `template.zip`, model artifacts and pipeline artifacts.
    pub assets_bucket: String,
    pub blueprint_bucket: String,
    /// Custom algorithm images; deployed SageMaker roles may pull from this repository only.
    pub ecr_repo_arn: String,
    pub ecr_repo_name: String,
    /// Pipeline, approval and job notifications go here.
    pub notification_topic_arn: String,
    /// The role CloudFormation deploys our stacks with (single account).
    pub cloudformation_role_arn: String,
    /// The solution's `UseModelRegistry`.
    pub use_model_registry: bool,
    /// `aws.monitor_image_uri`: our analyzer's image, run instead of the prebuilt one.
    pub monitor_image_uri: Option<String>,
    /// In promotion order; exactly three for a multi-account installation, else empty.
    pub environments: Vec<AwsEnvironment>,
    /// How long a step that is still waiting on AWS asks to wait before the next look.
    pub poll_interval: std::time::Duration,
}

/// One account of a multi-account installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEnvironment {
    /// The environment's name, e.g. `dev`.
    pub name: String,
    pub account_id: String,
    /// The role CloudFormation deploys with in that account.
    pub deploy_role_arn: String,
    /// The role in that account CodePipeline assumes to run the deploy action.
    pub action_role_arn: String,
}
