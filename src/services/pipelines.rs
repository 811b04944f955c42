//! Pipeline use cases shared by every surface (compat API, `/v1`, CLI through HTTP): validate,
//! plan, store, approve, delete, read. The service holds only what it uses (the store, the
//! target, the request context and job policy) and answers with typed [`ServiceError`]s, which
//! `error.rs` maps to HTTP.

use super::ServiceError;
use crate::auth::Principal;
use crate::domain::jobs::Decision;
use crate::domain::workflow::Fact;
use crate::domain::{self, PipelineSpec, Plan, RequestContext, StageParams, names};
use crate::store::{
    DynStore, EventRecord, JobPolicy, NewEndpoint, NewPipeline, NewStage, PipelineFilter, PipelineRecord,
    PlannedStages, Provisioned, StageRecord,
};
use crate::targets::DynTarget;
use crate::targets::codepipeline_state::{self, PipelineStateOut};
use serde_json::Value;
use std::time::Duration;

/// A validated, planned request that has not been stored.
pub struct Planned {
    pub spec: PipelineSpec,
    pub plan: Plan,
    pub warnings: Vec<String>,
    /// The version the pipeline will have once stored (1 when new).
    pub version: i64,
}

/// Where a request came from, when not from the API: a config source's revision.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Recorded on the pipeline (`source`, `kind`, `revision`, `author`, `message`).
    pub record: Value,
    /// Said in the provisioning event, e.g. `from git repo commit 1a2b3c4 by Ann: msg`.
    pub note: String,
}

pub struct ProvisionResult {
    pub record: PipelineRecord,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// A pipeline with its current stages.
pub struct PipelineView {
    pub record: PipelineRecord,
    pub stages: Vec<StageRecord>,
}

#[derive(Clone)]
pub struct PipelineService {
    store: DynStore,
    target: DynTarget,
    ctx: RequestContext,
    jobs: JobPolicy,
    /// How long the compat API waits for the target's own id of a new pipeline.
    external_id_wait: Duration,
}

impl PipelineService {
    pub fn new(
        store: DynStore,
        target: DynTarget,
        ctx: RequestContext,
        jobs: JobPolicy,
        external_id_wait: Duration,
    ) -> Self {
        Self { store, target, ctx, jobs, external_id_wait }
    }

    /// A valid request this server's target can run.
    fn validate(&self, body: &Value) -> Result<domain::ValidatedRequest, ServiceError> {
        let validated = domain::parse_request(body, &self.ctx).map_err(ServiceError::Invalid)?;
        self.target.check_supported(&validated.spec).map_err(ServiceError::Unsupported)?;
        Ok(validated)
    }

    /// Validates and plans a request without storing anything (the `dry_run` answer).
    pub async fn plan(&self, body: &Value) -> Result<Planned, ServiceError> {
        let validated = self.validate(body)?;
        let spec = validated.spec;
        let existing = self.store.live_pipeline(spec.pipeline_type.as_str(), &spec.name).await?;
        let version = existing.map(|p| p.version + 1).unwrap_or(1);
        let plan =
            domain::plan(&spec, &self.ctx, version as u64).map_err(|e| ServiceError::Unsupported(e.to_string()))?;
        Ok(Planned { spec, plan, warnings: validated.warnings, version })
    }

    pub async fn provision(&self, principal: &Principal, body: &Value) -> Result<ProvisionResult, ServiceError> {
        self.provision_from(principal, body, None).await
    }

    /// As [`Self::provision`], for a request read from a config source's revision.
    pub async fn provision_from(
        &self,
        principal: &Principal,
        body: &Value,
        origin: Option<&Origin>,
    ) -> Result<ProvisionResult, ServiceError> {
        // Planned once, inside the store's transaction, for the version fixed there.
        let planned = self.validate(body)?;
        let new = NewPipeline {
            id: uuid::Uuid::now_v7().to_string(),
            name: planned.spec.name.clone(),
            pipeline_type: planned.spec.pipeline_type.as_str().to_string(),
            target: self.target.name().to_string(),
            spec: serde_json::to_value(&planned.spec).map_err(|e| ServiceError::Internal(e.to_string()))?,
            request: body.clone(),
            actor: principal.name.clone(),
            origin: origin.map(|o| o.record.clone()),
            origin_note: origin.map(|o| o.note.clone()),
        };
        // Generated names (SageMaker job names) depend on the version.
        let hosts_endpoints = self.target.hosts_endpoints();
        let (spec, ctx) = (&planned.spec, &self.ctx);
        let planner = move |version: i64| {
            let plan = domain::plan(spec, ctx, version as u64).map_err(|e| e.to_string())?;
            planned_stages(&plan, hosts_endpoints)
        };
        let provisioned = self.store.provision(new, &planner, self.jobs).await?;
        let created = matches!(provisioned, Provisioned::Created(_));
        let record = match provisioned {
            Provisioned::Created(r) | Provisioned::Updated(r) => r,
        };
        tracing::info!(pipeline.id = %record.id, version = record.version, created, actor = %principal.name, "pipeline provisioned");
        Ok(ProvisionResult { record, created, warnings: planned.warnings })
    }

    /// The pipeline by its id, by the id its target gave it (aws: the wrapper StackId, which the
    /// compat API hands out as `pipeline_id`), or by its stack's name.
    pub async fn find(&self, id: &str) -> Result<PipelineRecord, ServiceError> {
        if let Some(p) = self.store.pipeline(id).await? {
            return Ok(p);
        }
        if let Some(p) = self.store.pipeline_by_external_id(id).await? {
            return Ok(p);
        }
        // The solution's `/pipelinestatus` also takes the stack's name.
        if let Some((pipeline_type, name)) = names::parse_stack_name(id)
            && let Some(p) = self.store.live_pipeline(pipeline_type.as_str(), &name).await?
        {
            return Ok(p);
        }
        Err(ServiceError::NotFound(format!("pipeline {id:?} not found")))
    }

    /// The pipeline and its stages.
    pub async fn view(&self, id: &str) -> Result<PipelineView, ServiceError> {
        let record = self.find(id).await?;
        self.with_stages(record).await
    }

    pub async fn with_stages(&self, record: PipelineRecord) -> Result<PipelineView, ServiceError> {
        let stages = self.store.stages(&record.id).await?;
        Ok(PipelineView { record, stages })
    }

    /// One page of pipelines (a `limit + 1`-th row tells there is a next page).
    pub async fn list(&self, filter: &PipelineFilter) -> Result<Vec<PipelineRecord>, ServiceError> {
        Ok(self.store.list_pipelines(filter).await?)
    }

    pub async fn events(&self, id: &str, after: Option<i64>, limit: i64) -> Result<Vec<EventRecord>, ServiceError> {
        let pipeline = self.find(id).await?;
        Ok(self.store.events(&pipeline.id, after, limit).await?)
    }

    /// The pipeline in CodePipeline's `GetPipelineState` shape: the target's own answer when it
    /// has one (aws), else our stages rendered so.
    pub async fn codepipeline_state(&self, id: &str) -> Result<PipelineStateOut, ServiceError> {
        let pipeline = self.find(id).await?;
        if let Some(reported) = self.target.reported_state(&pipeline).await.map_err(ServiceError::Upstream)? {
            return Ok(reported);
        }
        let stages = self.store.stages(&pipeline.id).await?;
        // The CodePipeline's name on the aws target, so both targets answer alike.
        let name = match pipeline.pipeline_type.parse() {
            Ok(t) => format!("{}-pipeline", names::stack_name(t, &pipeline.name)),
            Err(_) => pipeline.name.clone(),
        };
        Ok(codepipeline_state::render(&pipeline, &stages, name))
    }

    /// The id the compat API answers with: the target's own id (aws: the StackId) when it has
    /// one, waiting a while for a new pipeline's first job to create it; else ours (also at once
    /// when the pipeline ends without one, e.g. it failed before its stack was created).
    pub async fn compat_id(&self, record: &PipelineRecord) -> String {
        if !self.target.has_external_ids() || record.external_id.is_some() {
            return record.external_id.clone().unwrap_or_else(|| record.id.clone());
        }
        let deadline = tokio::time::Instant::now() + self.external_id_wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.store.pipeline(&record.id).await.ok().flatten() {
                Some(p) if p.external_id.is_some() => return p.external_id.unwrap_or_default(),
                Some(p) if p.state.is_final() => break,
                _ => {}
            }
        }
        record.id.clone()
    }

    /// Approves or rejects the stage (`stage`: environment name or 0-based ordinal) of the
    /// pipeline's `version`.
    pub async fn decide(
        &self,
        principal: &Principal,
        pipeline_id: &str,
        stage: &str,
        approve: bool,
        comment: Option<String>,
        version: Option<i64>,
    ) -> Result<PipelineView, ServiceError> {
        let pipeline = self.find(pipeline_id).await?;
        let stages = self.store.stages(&pipeline.id).await?;
        let stage = resolve_stage(&stages, stage).ok_or_else(|| {
            let known: Vec<_> = stages.iter().map(|s| s.environment.as_str()).collect();
            ServiceError::NotFound(format!(
                "pipeline {pipeline_id} has no stage {stage:?} (stages: {})",
                known.join(", ")
            ))
        })?;
        let decision = Decision { approve, actor: principal.name.clone(), comment };
        let fact = Fact::Decided { ordinal: stage.ordinal, decision, version };
        let record = self.store.apply(&pipeline.id, &fact, self.jobs).await?.pipeline;
        tracing::info!(pipeline.id = %record.id, stage = %stage.environment, approve, actor = %principal.name, "approval decided");
        self.with_stages(record).await
    }

    pub async fn delete(&self, principal: &Principal, pipeline_id: &str) -> Result<PipelineView, ServiceError> {
        let pipeline = self.find(pipeline_id).await?;
        let fact = Fact::DeleteRequested { actor: principal.name.clone() };
        let record = self.store.apply(&pipeline.id, &fact, self.jobs).await?.pipeline;
        tracing::info!(pipeline.id = %record.id, actor = %principal.name, "pipeline deletion requested");
        self.with_stages(record).await
    }
}

/// The stages (and, on a target that serves them, the endpoint names) of a plan, as stored.
fn planned_stages(plan: &Plan, hosts_endpoints: bool) -> Result<PlannedStages, String> {
    let mut planned = PlannedStages::default();
    for stage in &plan.stages {
        if let StageParams::Realtime(realtime) = &stage.params
            && hosts_endpoints
        {
            planned.endpoints.push(NewEndpoint {
                environment: stage.environment.clone(),
                name: realtime.endpoint_name.as_str().to_string(),
                stage_ordinal: stage.ordinal as i32,
            });
        }
        planned.stages.push(NewStage {
            environment: stage.environment.clone(),
            requires_approval: stage.requires_approval,
            params: serde_json::to_value(&stage.params).map_err(|e| e.to_string())?,
        });
    }
    Ok(planned)
}

/// Resolves `{stage}` in a URL: an environment name or a 0-based ordinal.
pub fn resolve_stage<'a>(stages: &'a [StageRecord], stage: &str) -> Option<&'a StageRecord> {
    stages.iter().find(|s| s.environment == stage).or_else(|| {
        let ordinal: i32 = stage.parse().ok()?;
        stages.iter().find(|s| s.ordinal == ordinal)
    })
}
