//! The aws target's state machine (docs/AWS.md §6). Every call of `deploy_stage` takes one step
//! from what AWS reports now and returns `InProgress` while something is still running, so a
//! worker that dies mid-deploy is replaced by one that picks up exactly where things stand: no
//! step is remembered in memory, every step is idempotent (create-if-absent, upload-if-changed).

use super::clients::{AccountClients, Clients};
use super::context::{AwsContext, AwsEnvironment};
use super::errors::AwsError;
use super::{image_uris, package, parameters, pipeline_state, sagemaker_jobs, templates};
use crate::config::Settings;
use crate::domain::names;
use crate::domain::spec::{ModelSource, PipelineSpec};
use crate::domain::{MonitorType, PipelineType, StageParams};
use crate::store::{PipelineRecord, StoreError};
use crate::targets::DynTargetStore;
use crate::targets::codepipeline_state::{FAILED, IN_PROGRESS, PipelineStateOut, SUCCEEDED};
use crate::targets::{Decision, StageContext, StepOutcome, Target, TargetError, UpstreamError};
use async_trait::async_trait;
use aws_sdk_cloudformation::types::{Capability, OnFailure, Parameter, Stack, StackStatus, Tag};
use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The deploy stages of `multi_account_codepipeline.yaml`, in promotion order.
const MULTI_ACCOUNT_STAGES: [&str; 3] = ["Dev", "Staging", "Prod"];

/// Object metadata on `template.zip`: which pipeline and version it holds.
const META_PIPELINE: &str = "mlops-pipeline-id";
const META_VERSION: &str = "mlops-pipeline-version";
/// How every template of ours describes itself (templates/*.yaml), so every stack we made does.
const OUR_DESCRIPTION: &str = "mlops-orchestrator:";

pub struct AwsTarget {
    context: AwsContext,
    clients: AccountClients,
    store: DynTargetStore,
    poll: Duration,
}

/// A stack in a usable final state.
struct ReadyStack {
    id: String,
    outputs: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    /// `UPDATE_ROLLBACK_COMPLETE`: usable, but its last update failed.
    rolled_back: bool,
    /// When it was last created or updated.
    changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a stack stands.
enum StackPhase {
    Missing,
    Busy,
    Ready(ReadyStack),
    /// A failed or rolled-back status (`status`), with the reason.
    Broken {
        status: String,
        why: String,
    },
    Deleted,
}

impl AwsTarget {
    pub async fn new(settings: &Settings, store: DynTargetStore) -> Self {
        let aws = &settings.aws;
        let environments = settings
            .environments
            .iter()
            .filter_map(|name| {
                aws.environments.get(name).map(|e| AwsEnvironment {
                    name: name.clone(),
                    account_id: e.account_id.clone(),
                    deploy_role_arn: e.deploy_role_arn.clone(),
                    action_role_arn: e.action_role_arn.clone(),
                })
            })
            .collect();
        let context = AwsContext {
            region: aws.region.clone(),
            assets_bucket: aws.assets_bucket.clone(),
            blueprint_bucket: aws.blueprint_bucket.clone(),
            ecr_repo_arn: aws.ecr_repo_arn.clone(),
            ecr_repo_name: aws.ecr_repo_name.clone(),
            notification_topic_arn: aws.notification_topic_arn.clone(),
            cloudformation_role_arn: aws.cloudformation_role_arn.clone(),
            use_model_registry: settings.use_model_registry,
            monitor_image_uri: aws.monitor_image_uri.clone(),
            environments,
            poll_interval: aws.poll_interval,
        };
        AwsTarget { context, clients: AccountClients::load(aws).await, store, poll: aws.poll_interval }
    }

    /// Whether this pipeline type goes through the multi-account pipeline (training types and
    /// the image builder deploy once, in the orchestrator's account).
    fn multi(&self, pipeline_type: PipelineType) -> bool {
        parameters::is_multi_account(pipeline_type, &self.context)
    }

    /// Model cards in the orchestrator's account, through this target's clients.
    pub fn model_cards(&self) -> super::model_cards::AwsModelCards {
        super::model_cards::AwsModelCards::new(self.clients.own().clone(), &self.context.assets_bucket, self.poll)
    }

    fn waiting(&self) -> Result<StepOutcome, TargetError> {
        Ok(StepOutcome::InProgress(self.poll))
    }

    /// Clients for the account a stage deploys into.
    async fn stage_clients(&self, stage: &StageContext) -> Clients {
        match self.context.environments.iter().find(|e| e.name == stage.environment) {
            Some(env) if self.multi(stage.pipeline_type) => self.clients.assuming(&env.action_role_arn).await,
            _ => self.clients.own().clone(),
        }
    }

    /// CodePipeline stage and deploy-action names of a stage: the solution's, by position (the
    /// multi-account template names its three deploy stages Dev, Staging and Prod whatever the
    /// environments are called).
    fn stage_names(&self, pipeline_type: PipelineType, ordinal: i32) -> (String, String) {
        if !self.multi(pipeline_type) {
            return ("DeployCloudFormation".into(), "deploy_stack".into());
        }
        let env = MULTI_ACCOUNT_STAGES[ordinal as usize];
        (format!("Deploy{env}"), format!("Deploy{env}StackSet"))
    }

    fn zip_key(stack: &str) -> String {
        names::template_zip_key(stack)
    }

    // ----- template.zip ------------------------------------------------------------------

    /// The zip of this pipeline version in S3 (uploading it if needed); returns its version id.
    async fn ensure_zip(&self, stage: &StageContext, stack: &str) -> Result<String, TargetError> {
        let s3 = &self.clients.own().s3;
        let key = Self::zip_key(stack);
        let version = stage.key.version.to_string();
        if let Some(existing) = self.zip_version(stack).await?
            && existing.0.get(META_PIPELINE) == Some(&stage.key.pipeline_id)
            && existing.0.get(META_VERSION) == Some(&version)
        {
            return Ok(existing.1);
        }
        // Before a version's first upload (not on every poll): a CodePipeline of the solution's
        // would deploy the zip.
        let mut ours = vec![names::wrapper_stack_name(stack)];
        if !self.multi(stage.pipeline_type) {
            ours.push(stack.to_string());
        }
        self.refuse_foreign_stacks(self.clients.own(), &ours).await?;
        let stages = self.store.stages(&stage.key.pipeline_id).await.map_err(store_error)?;
        let mut files = Vec::new();
        for s in stages.iter().filter(|s| s.version == stage.key.version) {
            let params: StageParams = serde_json::from_value(s.params.0.clone())
                .map_err(|e| TargetError::permanent(format!("stage {} has unreadable parameters: {e}", s.ordinal)))?;
            let mut values = parameters::stack_parameters(stage.pipeline_type, &params, &self.context)
                .map_err(|e| TargetError::permanent(e.to_string()))?;
            if let StageParams::Batch(b) = &params {
                // Known before the deploy, so the stack outputs it as the solution's does.
                let job =
                    sagemaker_jobs::batch::transform_job_name(&b.model_name, &s.pipeline_id, s.version, s.ordinal);
                values.push(("BatchTransformJobName".to_string(), job));
            }
            files.push((s.environment.clone(), values));
        }
        let zip = package::template_zip(stage.pipeline_type, &files, self.multi(stage.pipeline_type))
            .map_err(|e| TargetError::permanent(e.to_string()))?;
        let put = s3
            .put_object()
            .bucket(&self.context.assets_bucket)
            .key(&key)
            .body(zip.into())
            .content_type("application/zip")
            .metadata(META_PIPELINE, &stage.key.pipeline_id)
            .metadata(META_VERSION, &version)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutObject", e))?;
        tracing::info!(stack, key, version = stage.key.version, "template.zip uploaded");
        put.version_id()
            .map(str::to_string)
            .ok_or_else(|| TargetError::permanent(format!("bucket {} is not versioned", self.context.assets_bucket)))
    }

    /// The zip's metadata and S3 version id, if it exists.
    async fn zip_version(
        &self,
        stack: &str,
    ) -> Result<Option<(std::collections::HashMap<String, String>, String)>, TargetError> {
        let head = self
            .clients
            .own()
            .s3
            .head_object()
            .bucket(&self.context.assets_bucket)
            .key(Self::zip_key(stack))
            .send()
            .await;
        match head {
            Ok(out) => Ok(Some((
                out.metadata().cloned().unwrap_or_default(),
                out.version_id().unwrap_or_default().to_string(),
            ))),
            Err(e) => {
                let e = AwsError::from_sdk("HeadObject", e);
                if e.status == Some(404) { Ok(None) } else { Err(e.into()) }
            }
        }
    }

    /// The S3 version id of the zip the first stage uploaded.
    async fn uploaded_zip(&self, stack: &str) -> Result<String, TargetError> {
        match self.zip_version(stack).await? {
            Some((_, version)) => Ok(version),
            None => Err(TargetError::permanent(format!("{} vanished from the assets bucket", Self::zip_key(stack)))),
        }
    }

    // ----- stacks ------------------------------------------------------------------------

    /// The stack of that name, if there is one.
    async fn describe_stack(&self, clients: &Clients, name: &str) -> Result<Option<Stack>, TargetError> {
        match clients.cloudformation.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out.stacks().first().cloned()),
            Err(e) => {
                let e = AwsError::from_sdk("DescribeStacks", e);
                if e.is("ValidationError") && e.message.contains("does not exist") { Ok(None) } else { Err(e.into()) }
            }
        }
    }

    async fn stack(&self, clients: &Clients, name: &str) -> Result<StackPhase, TargetError> {
        let Some(stack) = self.describe_stack(clients, name).await? else { return Ok(StackPhase::Missing) };
        Ok(self.phase(clients, stack).await)
    }

    async fn phase(&self, clients: &Clients, stack: Stack) -> StackPhase {
        let id = stack.stack_id().unwrap_or_default().to_string();
        let status = stack.stack_status().cloned().unwrap_or(StackStatus::CreateInProgress);
        match status {
            StackStatus::CreateComplete | StackStatus::UpdateComplete | StackStatus::UpdateRollbackComplete => {
                let outputs = stack
                    .outputs()
                    .iter()
                    .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                    .collect();
                let tags =
                    stack.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                let changed_at = stack
                    .last_updated_time()
                    .or(stack.creation_time())
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                StackPhase::Ready(ReadyStack {
                    id,
                    outputs,
                    tags,
                    rolled_back: status == StackStatus::UpdateRollbackComplete,
                    changed_at,
                })
            }
            StackStatus::DeleteComplete => StackPhase::Deleted,
            s if s.as_str().ends_with("_IN_PROGRESS") => StackPhase::Busy,
            s => {
                let reason = self.failure_reason(clients, &id).await;
                let why = stack.stack_status_reason().map(|r| format!(" ({r})")).unwrap_or_default();
                StackPhase::Broken {
                    status: s.as_str().to_string(),
                    why: format!(
                        "stack {} is {}{why}{}",
                        stack.stack_name().unwrap_or_default(),
                        s.as_str(),
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                }
            }
        }
    }

    /// The first resource failure of a stack, which says more than its status.
    async fn failure_reason(&self, clients: &Clients, stack_id: &str) -> Option<String> {
        let events = clients.cloudformation.describe_stack_events().stack_name(stack_id).send().await.ok()?;
        events
            .stack_events()
            .iter()
            .rev()
            .find(|e| e.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED")))
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.logical_resource_id().unwrap_or_default(),
                    e.resource_status().map(|s| s.as_str()).unwrap_or_default(),
                    e.resource_status_reason().unwrap_or_default()
                )
            })
    }

    /// Refuses to touch a stack of this pipeline's names that mlops-orchestrator did not make —
    /// above all the solution's own `-codepipeline` stack, whose CodePipeline would take our
    /// template.zip from the same key and deploy it (docs/MIGRATION.md). Our stacks are known by
    /// their templates' descriptions, which all start with [`OUR_DESCRIPTION`].
    async fn refuse_foreign_stacks(&self, clients: &Clients, names: &[String]) -> Result<(), TargetError> {
        for name in names {
            let Some(stack) = self.describe_stack(clients, name).await? else { continue };
            if stack.stack_status() == Some(&StackStatus::DeleteComplete) {
                continue;
            }
            let description = stack.description().unwrap_or_default();
            if !description.starts_with(OUR_DESCRIPTION) {
                let shown: String = description.chars().take(100).collect();
                return Err(TargetError::permanent(format!(
                    "stack {name} exists and was not made by mlops-orchestrator (its description: {shown:?}); it is \
                     most likely the AWS MLOps Workload Orchestrator solution's stack for this pipeline. Nothing was \
                     uploaded or deployed: migrate as docs/MIGRATION.md says (provision under a new model_name and \
                     move the traffic, or delete the solution's stacks of this name first; data in S3 is kept)"
                )));
            }
        }
        Ok(())
    }

    /// The `-codepipeline` stack exists and is complete; creates it if absent and records its
    /// StackId as the pipeline's external id (before anything can be lost).
    async fn ensure_wrapper(&self, stage: &StageContext, stack: &str) -> Result<StepOutcome, TargetError> {
        let own = self.clients.own();
        let wrapper = names::wrapper_stack_name(stack);
        match self.stack(own, &wrapper).await? {
            StackPhase::Ready(ready) => {
                self.remember_stack_id(stage, &ready.id).await?;
                Ok(StepOutcome::Done(Value::Null))
            }
            StackPhase::Busy => self.waiting(),
            StackPhase::Broken { why, .. } => Err(TargetError::permanent(why)),
            StackPhase::Missing | StackPhase::Deleted => {
                let body = template_body(templates::wrapper_template_file(self.multi(stage.pipeline_type)))?;
                let parameters = parameters::wrapper_parameters(stage.pipeline_type, stack, &self.context);
                let tags = [Tag::builder().key("stack_name").value(stack).build()];
                if let Some(id) = self.create_stack(&wrapper, body, &parameters, &tags).await? {
                    self.remember_stack_id(stage, &id).await?;
                }
                self.waiting()
            }
        }
    }

    /// `CreateStack` as the orchestrator makes every stack: both IAM capabilities, the
    /// CloudFormation role, failed resources kept for inspection. `None` when the stack exists
    /// already (a resumed worker, or a race): the caller looks again next time.
    async fn create_stack(
        &self,
        name: &str,
        body: &str,
        parameters: &[(String, String)],
        tags: &[Tag],
    ) -> Result<Option<String>, TargetError> {
        let created = self
            .clients
            .own()
            .cloudformation
            .create_stack()
            .stack_name(name)
            .template_body(body)
            .set_parameters(Some(cfn_parameters(parameters)))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .role_arn(&self.context.cloudformation_role_arn)
            .on_failure(OnFailure::DoNothing)
            .set_tags(Some(tags.to_vec()))
            .send()
            .await;
        match created {
            Ok(out) => {
                let id = out.stack_id().unwrap_or_default().to_string();
                tracing::info!(stack.name = %name, stack.id = %id, "stack created");
                Ok(Some(id))
            }
            Err(e) => {
                let e = AwsError::from_sdk("CreateStack", e);
                if e.is("AlreadyExistsException") { Ok(None) } else { Err(e.into()) }
            }
        }
    }

    async fn remember_stack_id(&self, stage: &StageContext, stack_id: &str) -> Result<(), TargetError> {
        match self.store.set_external_id(&stage.key.pipeline_id, stack_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(why)) => Err(TargetError::permanent(why)),
            Err(e) => Err(store_error(e)),
        }
    }

    // ----- CodePipeline ------------------------------------------------------------------

    async fn pipeline_state(&self, stack: &str) -> Result<Option<PipelineStateOut>, TargetError> {
        let name = format!("{stack}-pipeline");
        match self.clients.own().codepipeline.get_pipeline_state().name(&name).send().await {
            Ok(out) => Ok(Some(pipeline_state::from_sdk(&out))),
            Err(e) => {
                let e = AwsError::from_sdk("GetPipelineState", e);
                if e.is("PipelineNotFoundException") { Ok(None) } else { Err(e.into()) }
            }
        }
    }

    /// The deploy action of `stage` in the execution that runs this version's zip.
    fn deploy_action(
        &self,
        stage: &StageContext,
        state: &PipelineStateOut,
        zip_version: &str,
    ) -> Result<StepOutcome, TargetError> {
        let Some(execution) = execution_of(state, zip_version) else { return self.waiting() };
        let (stage_name, action_name) = self.stage_names(stage.pipeline_type, stage.key.ordinal);
        let Some(deploy_stage) = state.stage(&stage_name) else {
            return Err(TargetError::permanent(format!("pipeline {} has no stage {stage_name}", state.pipeline_name)));
        };
        if deploy_stage.execution_id() != Some(execution) {
            return self.waiting();
        }
        let status = deploy_stage.action(&action_name).and_then(|a| a.latest_execution.as_ref());
        match status {
            Some(e) if e.status == SUCCEEDED => Ok(StepOutcome::Done(Value::Null)),
            Some(e) if e.status == IN_PROGRESS => self.waiting(),
            Some(e) => Err(TargetError::permanent(format!(
                "{stage_name}/{action_name} {}: {}",
                e.status,
                e.error_details.as_ref().map(|d| format!("{}: {}", d.code, d.message)).unwrap_or_default()
            ))),
            None => self.waiting(),
        }
    }

    /// Abandons older executions parked at a manual approval: one would hold its stage until
    /// someone decided on a version nobody deploys any more, and this version would wait behind
    /// it. Executions busy deploying are left alone (CodePipeline supersedes them when they leave
    /// their stage; abandoning one mid-update would leave its stack `UPDATE_IN_PROGRESS`).
    async fn stop_superseded(
        &self,
        stage: &StageContext,
        state: &PipelineStateOut,
        zip_version: &str,
    ) -> Result<(), TargetError> {
        if !self.multi(stage.pipeline_type) {
            return Ok(()); // no approvals to park at
        }
        let current = execution_of(state, zip_version);
        for ordinal in 1..MULTI_ACCOUNT_STAGES.len() as i32 {
            let (holding_stage, approval) = self.approval_names(stage.pipeline_type, ordinal);
            let Some(held) = state.stage(&holding_stage) else { continue };
            let Some(execution) = held.latest_execution.as_ref() else { continue };
            let waiting = held
                .action(&approval)
                .and_then(|a| a.latest_execution.as_ref())
                .is_some_and(|e| e.status == IN_PROGRESS);
            if execution.status != IN_PROGRESS || !waiting || current == Some(execution.pipeline_execution_id.as_str())
            {
                continue;
            }
            let stopped = self
                .clients
                .own()
                .codepipeline
                .stop_pipeline_execution()
                .pipeline_name(&state.pipeline_name)
                .pipeline_execution_id(&execution.pipeline_execution_id)
                .abandon(true)
                .reason(format!("superseded by version {}", stage.key.version))
                .send()
                .await;
            match stopped {
                Ok(_) => tracing::info!(
                    pipeline = %state.pipeline_name,
                    execution = %execution.pipeline_execution_id,
                    "superseded execution waiting at {approval} abandoned"
                ),
                Err(e) => {
                    let e = AwsError::from_sdk("StopPipelineExecution", e);
                    // Already stopping or finished meanwhile: what we wanted.
                    if !(e.is("PipelineExecutionNotStoppableException") || e.is("DuplicatedStopRequestException")) {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// The stage holding the manual approval in front of deploy stage `ordinal` (the previous
    /// deploy stage), and the approval action's name.
    fn approval_names(&self, pipeline_type: PipelineType, ordinal: i32) -> (String, String) {
        let (holding_stage, _) = self.stage_names(pipeline_type, ordinal - 1);
        (holding_stage, format!("Deploy{}", MULTI_ACCOUNT_STAGES[ordinal as usize]))
    }

    /// Sends the decision to the manual approval in front of `stage`, in the execution running
    /// this version's zip. `Some(())` once CodePipeline shows that approval settled the way we
    /// asked.
    async fn settle_approval(
        &self,
        stage: &StageContext,
        state: &PipelineStateOut,
        zip_version: &str,
        decision: &Decision,
    ) -> Result<StepOutcome, TargetError> {
        let Some(current) = execution_of(state, zip_version) else { return self.waiting() };
        let (previous_stage, action_name) = self.approval_names(stage.pipeline_type, stage.key.ordinal);
        let (_, previous_deploy) = self.stage_names(stage.pipeline_type, stage.key.ordinal - 1);
        let Some(holding) = state.stage(&previous_stage) else { return self.waiting() };
        if holding.execution_id() != Some(current) {
            return self.waiting(); // this version has not reached the approval yet
        }
        // The approval's state is this execution's only once it changed after this execution's
        // deploy in the same stage finished (one execution holds a stage at a time); before
        // that it still shows an older execution's result.
        let deployed_at = holding
            .action(&previous_deploy)
            .and_then(|a| a.latest_execution.as_ref())
            .filter(|e| e.status == SUCCEEDED)
            .map(|e| e.last_status_change);
        let Some(deployed_at) = deployed_at else { return self.waiting() };
        let execution = holding
            .action(&action_name)
            .and_then(|a| a.latest_execution.as_ref())
            .filter(|e| e.status == IN_PROGRESS || e.last_status_change >= deployed_at);
        let wanted = if decision.approve { SUCCEEDED } else { FAILED };
        match execution {
            Some(e) if e.status == wanted => Ok(StepOutcome::Done(Value::Null)),
            Some(e) if e.status == IN_PROGRESS => {
                let Some(token) = e.token.as_deref() else { return self.waiting() };
                let status = if decision.approve { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
                let verb = if decision.approve { "Approved" } else { "Rejected" };
                let summary = match &decision.comment {
                    Some(c) => format!("{verb} by {}: {c}", decision.actor),
                    None => format!("{verb} by {}", decision.actor),
                };
                let result = ApprovalResult::builder()
                    .summary(summary)
                    .status(status)
                    .build()
                    .map_err(|e| TargetError::permanent(e.to_string()))?;
                self.clients
                    .own()
                    .codepipeline
                    .put_approval_result()
                    .pipeline_name(&state.pipeline_name)
                    .stage_name(&previous_stage)
                    .action_name(&action_name)
                    .result(result)
                    .token(token)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("PutApprovalResult", e))?;
                tracing::info!(pipeline = %state.pipeline_name, action = %action_name, actor = %decision.actor, verb, "approval sent");
                self.waiting()
            }
            Some(e) => Err(TargetError::permanent(format!(
                "the approval {previous_stage}/{action_name} is {} in CodePipeline, not {wanted}",
                e.status
            ))),
            None => self.waiting(),
        }
    }

    // ----- checks ------------------------------------------------------------------------

    /// A model-registry model deploys only once its package version is approved.
    async fn check_model_package(&self, stage: &StageContext) -> Result<(), TargetError> {
        let model = match &stage.params {
            StageParams::Realtime(r) => &r.model,
            StageParams::Batch(b) => &b.model,
            _ => return Ok(()),
        };
        let ModelSource::Registry { model_package } = model else { return Ok(()) };
        let out = self
            .clients
            .own()
            .sagemaker
            .describe_model_package()
            .model_package_name(model_package.as_str())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeModelPackage", e))?;
        let status = out.model_approval_status().map(|s| s.as_str().to_string()).unwrap_or_default();
        if status != "Approved" {
            return Err(TargetError::permanent(format!(
                "model package {} is {status:?}, not Approved: approve it in the model registry, then provision again",
                model_package.as_str()
            )));
        }
        Ok(())
    }

    // ----- the image builder: its stack is the pipeline ------------------------------------

    /// Creates the image-builder stack (or updates it for a new pipeline version, as the solution
    /// does), then waits for a build of its pipeline that started after that change.
    async fn deploy_image_builder(&self, stage: &StageContext, stack: &str) -> Result<StepOutcome, TargetError> {
        let values = parameters::stack_parameters(stage.pipeline_type, &stage.params, &self.context)
            .map_err(|e| TargetError::permanent(e.to_string()))?;
        let version = stage.key.version.to_string();
        let tags = [
            Tag::builder().key("stack_name").value(stack).build(),
            Tag::builder().key(META_VERSION).value(&version).build(),
        ];
        let body = template_body(templates::deployed_template_file(stage.pipeline_type))?;
        let ready = match self.stack(self.clients.own(), stack).await? {
            StackPhase::Busy => return self.waiting(),
            StackPhase::Broken { why, .. } => return Err(TargetError::permanent(why)),
            StackPhase::Missing | StackPhase::Deleted => {
                if let Some(id) = self.create_stack(stack, body, &values, &tags).await? {
                    self.remember_stack_id(stage, &id).await?;
                }
                return self.waiting();
            }
            StackPhase::Ready(ready) => ready,
        };
        self.remember_stack_id(stage, &ready.id).await?;
        let changed_since_start = ready.changed_at.is_some_and(|t| t >= stage.started_at);
        if ready.tags.get(META_VERSION) != Some(&version) {
            // A rollback restores the old tags; one since this stage started is our update failing.
            if ready.rolled_back && changed_since_start {
                let reason = self.failure_reason(self.clients.own(), &ready.id).await;
                return Err(TargetError::permanent(format!(
                    "the update of stack {stack} was rolled back{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )));
            }
            // The one write to a stack that exists: never to one of the solution's.
            self.refuse_foreign_stacks(self.clients.own(), &[stack.to_string()]).await?;
            let updated = self
                .clients
                .own()
                .cloudformation
                .update_stack()
                .stack_name(stack)
                .template_body(body)
                .set_parameters(Some(cfn_parameters(&values)))
                .capabilities(Capability::CapabilityIam)
                .capabilities(Capability::CapabilityNamedIam)
                .role_arn(&self.context.cloudformation_role_arn)
                .set_tags(Some(tags.to_vec()))
                .send()
                .await;
            match updated {
                Ok(_) => {
                    tracing::info!(stack.name = %stack, version, "image-builder stack update started");
                    return self.waiting();
                }
                // Nothing to change (as the solution reports it): the current build stands.
                Err(e) => {
                    let e = AwsError::from_sdk("UpdateStack", e);
                    if !(e.is("ValidationError") && e.message.contains("No updates are to be performed")) {
                        return Err(e.into());
                    }
                }
            }
        }
        match self.build_since(stack, ready.changed_at).await? {
            None => self.waiting(),
            Some(execution) => Ok(StepOutcome::Done(json!({
                "stack_id": ready.id,
                "stack_name": stack,
                "pipeline_name": format!("{stack}-pipeline"),
                "pipeline_execution_id": execution,
                "image_uri": ready.outputs.get("CustomAlgorithmImageURI"),
                "outputs": ready.outputs,
            }))),
        }
    }

    /// The image-builder pipeline's run that started after `since` (starting one if there is
    /// none: the pipeline only re-runs by itself when its source zip changes). `Some(id)` once it
    /// succeeded; a failed run fails the stage with CodePipeline's reason.
    async fn build_since(
        &self,
        stack: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<String>, TargetError> {
        let name = format!("{stack}-pipeline");
        let codepipeline = &self.clients.own().codepipeline;
        let listed = match codepipeline.list_pipeline_executions().pipeline_name(&name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from_sdk("ListPipelineExecutions", e);
                return if e.is("PipelineNotFoundException") { Ok(None) } else { Err(e.into()) };
            }
        };
        let started = |e: &aws_sdk_codepipeline::types::PipelineExecutionSummary| {
            e.start_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        };
        let recent = listed
            .pipeline_execution_summaries()
            .iter()
            .filter(|e| since.is_none_or(|since| started(e).is_some_and(|t| t >= since)))
            .max_by_key(|e| started(e));
        let Some(execution) = recent else {
            // CodePipeline runs a pipeline it has just created (or whose source changed) by
            // itself, and lists the run a moment later: give it a few polls before starting one.
            let grace = chrono::Duration::from_std(self.poll * 3).unwrap_or(chrono::Duration::seconds(30));
            let settled = since.is_none_or(|since| crate::store::now() - since > grace);
            if !settled {
                return Ok(None);
            }
            codepipeline
                .start_pipeline_execution()
                .name(&name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("StartPipelineExecution", e))?;
            tracing::info!(pipeline = %name, "image build started");
            return Ok(None);
        };
        let id = execution.pipeline_execution_id().unwrap_or_default().to_string();
        match execution.status().map(|s| s.as_str()) {
            Some("Succeeded") => Ok(Some(id)),
            Some("InProgress") | Some("Stopping") | None => Ok(None),
            Some(status) => {
                let state = self.pipeline_state(stack).await?;
                let detail = state
                    .iter()
                    .flat_map(|s| &s.stage_states)
                    .flat_map(|s| &s.action_states)
                    .filter_map(|a| a.latest_execution.as_ref()?.error_details.as_ref())
                    .map(|d| d.message.clone())
                    .next()
                    .unwrap_or_default();
                Err(TargetError::permanent(format!("image build {id} of {name} {status}: {detail}")))
            }
        }
    }

    async fn delete_stack(&self, clients: &Clients, name: &str, role_arn: &str) -> Result<StepOutcome, TargetError> {
        match self.stack(clients, name).await? {
            StackPhase::Missing | StackPhase::Deleted => Ok(StepOutcome::Done(Value::Null)),
            StackPhase::Busy => self.waiting(),
            // Deleting again would fail the same way (a resource that cannot go): say why.
            StackPhase::Broken { status, why } if status == "DELETE_FAILED" => Err(TargetError::permanent(why)),
            StackPhase::Ready(_) | StackPhase::Broken { .. } => {
                clients
                    .cloudformation
                    .delete_stack()
                    .stack_name(name)
                    .role_arn(role_arn)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DeleteStack", e))?;
                tracing::info!(stack.name = %name, "stack deletion started");
                self.waiting()
            }
        }
    }

    fn deploy_role(&self, stage: &StageContext) -> &str {
        match self.context.environments.iter().find(|e| e.name == stage.environment) {
            Some(env) if self.multi(stage.pipeline_type) => &env.deploy_role_arn,
            _ => &self.context.cloudformation_role_arn,
        }
    }

    /// GetPipelineState of a pipeline, for `/pipelinestatus`.
    async fn state_of(&self, pipeline: &PipelineRecord) -> Result<Option<PipelineStateOut>, AwsError> {
        let Ok(pipeline_type) = pipeline.pipeline_type.parse::<PipelineType>() else { return Ok(None) };
        // Every pipeline, the image builder's included, is named after its stack.
        let name = format!("{}-pipeline", names::stack_name(pipeline_type, &pipeline.name));
        match self.clients.own().codepipeline.get_pipeline_state().name(&name).send().await {
            Ok(out) => Ok(Some(pipeline_state::from_sdk(&out))),
            Err(e) => {
                let e = AwsError::from_sdk("GetPipelineState", e);
                if e.is("PipelineNotFoundException") { Ok(None) } else { Err(e) }
            }
        }
    }
}

/// The execution running the zip with this S3 version id, once CodePipeline has picked it up.
fn execution_of<'s>(state: &'s PipelineStateOut, zip_version: &str) -> Option<&'s str> {
    let source = state.stage("Source")?;
    let revision = source.action("S3Source")?.current_revision.as_ref()?;
    if revision.revision_id != zip_version {
        return None;
    }
    source.execution_id()
}

fn template_body(file: &str) -> Result<&'static str, TargetError> {
    templates::template(file)
        .ok_or_else(|| TargetError::permanent(format!("template {file} is missing from this build")))
}

fn cfn_parameters(values: &[(String, String)]) -> Vec<Parameter> {
    values.iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect()
}

fn store_error(e: StoreError) -> TargetError {
    TargetError::transient(e.to_string())
}

#[async_trait]
impl Target for AwsTarget {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn check_supported(&self, spec: &PipelineSpec) -> Result<(), String> {
        // Every image URI is resolved from framework + version + region up front, so an unknown
        // one is a 422 at the API instead of a failed stack later.
        use crate::domain::spec::{BatchSpec, PipelineParams, RealtimeSpec};
        let region = &self.context.region;
        let resolved = match &spec.params {
            PipelineParams::Realtime(RealtimeSpec {
                model: ModelSource::BuiltIn { framework, framework_version, .. },
                ..
            })
            | PipelineParams::Batch(BatchSpec {
                model: ModelSource::BuiltIn { framework, framework_version, .. },
                ..
            }) => image_uris::builtin_image_uri(framework, framework_version, region).map(drop),
            PipelineParams::Training(t) => {
                image_uris::builtin_image_uri(&t.model_framework, &t.model_framework_version, region).map(drop)
            }
            PipelineParams::Monitor(m) => match m.kind.monitor_type() {
                MonitorType::DataQuality | MonitorType::ModelQuality if self.context.monitor_image_uri.is_some() => {
                    Ok(())
                }
                MonitorType::DataQuality | MonitorType::ModelQuality => {
                    image_uris::model_monitor_image_uri(region).map(drop)
                }
                MonitorType::ModelBias | MonitorType::ModelExplainability => {
                    image_uris::clarify_image_uri(region).map(drop)
                }
            },
            _ => Ok(()),
        };
        if let PipelineParams::Monitor(m) = &spec.params
            && let crate::domain::spec::MonitorKind::ModelExplainability(e) = &m.kind
            && e.shap_config.options.get("algorithm").and_then(|a| a.as_str()) == Some("tree")
        {
            return Err("shap_config.algorithm `tree` (exact TreeSHAP) runs on the local target only; \
                        Clarify computes Kernel SHAP"
                .into());
        }
        resolved.map_err(|e| e.to_string())
    }

    async fn deploy_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        let stack = names::stack_name(stage.pipeline_type, &stage.pipeline_name);
        if stage.pipeline_type == PipelineType::ByomImageBuilder {
            return self.deploy_image_builder(stage, &stack).await;
        }
        // One GetPipelineState per step: every check below reads the same answer.
        if stage.key.ordinal == 0 {
            self.check_model_package(stage).await?;
            // The zip first: a new CodePipeline starts at once and reads it.
            let zip_version = self.ensure_zip(stage, &stack).await?;
            if let waiting @ StepOutcome::InProgress(_) = self.ensure_wrapper(stage, &stack).await? {
                return Ok(waiting);
            }
            let Some(state) = self.pipeline_state(&stack).await? else { return self.waiting() };
            self.stop_superseded(stage, &state, &zip_version).await?;
            if let waiting @ StepOutcome::InProgress(_) = self.deploy_action(stage, &state, &zip_version)? {
                return Ok(waiting);
            }
        } else {
            // Stages after the first only deploy through an approval, which names its approver.
            let Some(decision) = stage.decision.clone() else {
                return Err(TargetError::permanent(format!(
                    "stage {} deploys only after an approval, and this job carries none",
                    stage.environment
                )));
            };
            let zip_version = self.uploaded_zip(&stack).await?;
            let Some(state) = self.pipeline_state(&stack).await? else { return self.waiting() };
            if let waiting @ StepOutcome::InProgress(_) =
                self.settle_approval(stage, &state, &zip_version, &decision).await?
            {
                return Ok(waiting);
            }
            if let waiting @ StepOutcome::InProgress(_) = self.deploy_action(stage, &state, &zip_version)? {
                return Ok(waiting);
            }
        }
        let clients = self.stage_clients(stage).await;
        let StackPhase::Ready(ReadyStack { id, outputs, .. }) = self.stack(&clients, &stack).await? else {
            return self.waiting();
        };
        match sagemaker_jobs::after_deploy(&clients, stage, &outputs, &self.context).await? {
            waiting @ StepOutcome::InProgress(_) => Ok(waiting),
            StepOutcome::Done(extra) => Ok(StepOutcome::Done(json!({
                "stack_name": stack,
                "stack_id": id,
                "pipeline_name": format!("{stack}-pipeline"),
                "environment": stage.environment,
                "outputs": outputs,
                "sagemaker": extra,
            }))),
        }
    }

    fn has_external_ids(&self) -> bool {
        true
    }

    async fn foreign_releases(
        &self,
        pipeline: &PipelineRecord,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, TargetError> {
        use aws_sdk_codepipeline::types::{PipelineExecutionStatus, TriggerType};
        let pipeline_type: PipelineType = pipeline
            .pipeline_type
            .parse()
            .map_err(|_| TargetError::permanent(format!("unknown pipeline type {}", pipeline.pipeline_type)))?;
        let name = format!("{}-pipeline", names::stack_name(pipeline_type, &pipeline.name));
        let listed = match self.clients.own().codepipeline.list_pipeline_executions().pipeline_name(&name).send().await
        {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from_sdk("ListPipelineExecutions", e);
                return if e.is("PipelineNotFoundException") { Ok(Vec::new()) } else { Err(e.into()) };
            }
        };
        // We start runs of these pipelines only by writing their source zip; a run started
        // through StartPipelineExecution (the console's "Release change", the CLI) is someone
        // else's.
        let mut releases: Vec<(chrono::DateTime<chrono::Utc>, String)> = listed
            .pipeline_execution_summaries()
            .iter()
            .filter(|e| e.status() == Some(&PipelineExecutionStatus::Succeeded))
            .filter(|e| e.trigger().and_then(|t| t.trigger_type()) == Some(&TriggerType::StartPipelineExecution))
            .filter_map(|e| {
                let started =
                    e.start_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))?;
                Some((started, e.pipeline_execution_id()?.to_string()))
            })
            .filter(|(started, _)| *started >= since)
            .collect();
        releases.sort();
        Ok(releases.into_iter().map(|(_, id)| id).collect())
    }

    async fn after_release(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        let stage = sagemaker_jobs::for_release(stage);
        let stack = names::stack_name(stage.pipeline_type, &stage.pipeline_name);
        let clients = self.stage_clients(&stage).await;
        let StackPhase::Ready(ReadyStack { outputs, .. }) = self.stack(&clients, &stack).await? else {
            return self.waiting();
        };
        sagemaker_jobs::after_deploy(&clients, &stage, &outputs, &self.context).await
    }

    async fn reported_state(&self, pipeline: &PipelineRecord) -> Result<Option<PipelineStateOut>, UpstreamError> {
        self.state_of(pipeline).await.map_err(|e| UpstreamError {
            status: e.status.unwrap_or(502),
            operation: e.operation.to_string(),
            code: e.code,
            message: e.message,
        })
    }

    async fn reject_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        let stack = names::stack_name(stage.pipeline_type, &stage.pipeline_name);
        let decision = stage.decision.clone().unwrap_or(Decision {
            approve: false,
            actor: "mlops-orchestrator".into(),
            comment: None,
        });
        let zip_version = self.uploaded_zip(&stack).await?;
        let Some(state) = self.pipeline_state(&stack).await? else { return self.waiting() };
        self.settle_approval(stage, &state, &zip_version, &decision).await
    }

    async fn teardown_stage(&self, stage: &StageContext) -> Result<StepOutcome, TargetError> {
        let stack = names::stack_name(stage.pipeline_type, &stage.pipeline_name);
        // The CodePipeline goes first, so no execution can deploy a stack after it was removed.
        if stage.pipeline_type != PipelineType::ByomImageBuilder {
            let wrapper = names::wrapper_stack_name(&stack);
            let role = &self.context.cloudformation_role_arn;
            if let waiting @ StepOutcome::InProgress(_) = self.delete_stack(self.clients.own(), &wrapper, role).await? {
                return Ok(waiting);
            }
        }
        let clients = self.stage_clients(stage).await;
        self.delete_stack(&clients, &stack, self.deploy_role(stage)).await
    }
}
