//! SDK clients for the orchestrator's own account, and for each environment's account through
//! the environment's `action_role_arn` (for describes and deletes of what the pipeline deployed
//! there).

use crate::config::AwsSettings;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::collections::HashMap;
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub sagemaker: aws_sdk_sagemaker::Client,
}

impl Clients {
    fn new(config: &SdkConfig, emulated: bool) -> Self {
        // Emulators answer on one host: S3 must address buckets by path, not by subdomain.
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(emulated).build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            codepipeline: aws_sdk_codepipeline::Client::new(config),
            sagemaker: aws_sdk_sagemaker::Client::new(config),
        }
    }
}

pub struct AccountClients {
    base: SdkConfig,
    emulated: bool,
    own: Clients,
    by_role: Mutex<HashMap<String, Clients>>,
}

impl AccountClients {
    pub async fn load(settings: &AwsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(settings.region.clone()));
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        let emulated = settings.endpoint_url.is_some();
        let own = Clients::new(&base, emulated);
        AccountClients { base, emulated, own, by_role: Mutex::new(HashMap::new()) }
    }

    /// The orchestrator's account.
    pub fn own(&self) -> &Clients {
        &self.own
    }

    /// Clients acting as `role_arn` (another account's role trusted by ours).
    pub async fn assuming(&self, role_arn: &str) -> Clients {
        let mut cache = self.by_role.lock().await;
        if let Some(clients) = cache.get(role_arn) {
            return clients.clone();
        }
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("mlops-orchestrator")
            .configure(&self.base)
            .build()
            .await;
        let config = self
            .base
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(provider))
            .build();
        let clients = Clients::new(&config, self.emulated);
        cache.insert(role_arn.to_string(), clients.clone());
        clients
    }
}
