//! Pipeline use cases shared by every surface (compat API, `/v1`, CLI through HTTP): validate,
//! plan, store, approve, delete. No HTTP types here; errors are `ApiError` because every caller
//! is an HTTP handler that maps them once.

use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::jobs::Decision;
use crate::domain::workflow::Fact;
use crate::domain::{self, PipelineSpec, Plan, RequestContext, RequestErrors, StageParams};
use crate::error::{ApiError, FieldProblem};
use crate::store::{
    JobPolicy, NewEndpoint, NewPipeline, NewStage, PipelineRecord, PlannedStages, Provisioned, StageRecord,
};
use serde_json::Value;

pub fn request_context(state: &AppState) -> RequestContext {
    RequestContext {
        environments: state.settings.environments.clone(),
        use_model_registry: state.settings.use_model_registry,
    }
}

/// A validated, planned request that has not been stored.
pub struct Planned {
    pub spec: PipelineSpec,
    pub plan: Plan,
    pub warnings: Vec<String>,
    /// The version the pipeline will have once stored (1 when new).
    pub version: i64,
}

pub struct ProvisionResult {
    pub record: PipelineRecord,
    pub created: bool,
    pub warnings: Vec<String>,
}

pub fn bad_request(errors: RequestErrors) -> ApiError {
    let detail = match errors.0.len() {
        1 => errors.0[0].message.clone(),
        n => format!("the request has {n} invalid fields: {}", errors.0[0].message),
    };
    ApiError::BadRequest {
        detail,
        compat_detail: Some(errors.compat_detailed_message()),
        errors: errors
            .0
            .into_iter()
            .map(|e| {
                let code = serde_json::to_value(e.code).ok().and_then(|v| v.as_str().map(String::from));
                FieldProblem::new(&e.pointer, None, &code.unwrap_or_default(), e.message)
            })
            .collect(),
    }
}

/// Validates and plans a request without storing anything (also the `dry_run` answer).
pub async fn plan_request(state: &AppState, body: &Value) -> Result<Planned, ApiError> {
    let ctx = request_context(state);
    let validated = domain::parse_request(body, &ctx).map_err(bad_request)?;
    let spec = validated.spec;
    state.target.check_supported(&spec).map_err(ApiError::Unprocessable)?;
    let existing = state.store.live_pipeline(spec.pipeline_type.as_str(), &spec.name).await?;
    let version = existing.map(|p| p.version + 1).unwrap_or(1);
    let plan = domain::plan(&spec, &ctx, version as u64).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(Planned { spec, plan, warnings: validated.warnings, version })
}

fn job_policy(state: &AppState) -> JobPolicy {
    JobPolicy { max_attempts: state.settings.jobs.max_attempts }
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

pub async fn provision(state: &AppState, principal: &Principal, body: &Value) -> Result<ProvisionResult, ApiError> {
    let planned = plan_request(state, body).await?;
    let spec_json = serde_json::to_value(&planned.spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewPipeline {
        id: uuid::Uuid::now_v7().to_string(),
        name: planned.spec.name.clone(),
        pipeline_type: planned.spec.pipeline_type.as_str().to_string(),
        target: state.target.name().to_string(),
        spec: spec_json,
        request: body.clone(),
        actor: principal.name.clone(),
    };
    // The plan is made again inside the store's transaction, for the version it fixes there:
    // generated names (SageMaker job names) depend on it.
    let ctx = request_context(state);
    let hosts_endpoints = state.target.hosts_endpoints();
    let spec = &planned.spec;
    let planner = move |version: i64| {
        let plan = domain::plan(spec, &ctx, version as u64).map_err(|e| e.to_string())?;
        planned_stages(&plan, hosts_endpoints)
    };
    let provisioned = state.store.provision(new, &planner, job_policy(state)).await?;
    let created = matches!(provisioned, Provisioned::Created(_));
    let record = match provisioned {
        Provisioned::Created(r) | Provisioned::Updated(r) => r,
    };
    tracing::info!(pipeline.id = %record.id, version = record.version, created, actor = %principal.name, "pipeline provisioned");
    Ok(ProvisionResult { record, created, warnings: planned.warnings })
}

/// The pipeline by its id, by the id its target gave it (aws: the wrapper StackId, which the
/// compat API hands out as `pipeline_id`), or by its stack's name.
pub async fn find(state: &AppState, id: &str) -> Result<PipelineRecord, ApiError> {
    if let Some(p) = state.store.pipeline(id).await? {
        return Ok(p);
    }
    if let Some(p) = state.store.pipeline_by_external_id(id).await? {
        return Ok(p);
    }
    // The solution's `/pipelinestatus` also takes the stack's name.
    if let Some((pipeline_type, name)) = domain::names::parse_stack_name(id)
        && let Some(p) = state.store.live_pipeline(pipeline_type.as_str(), &name).await?
    {
        return Ok(p);
    }
    Err(ApiError::NotFound(format!("pipeline {id:?} not found")))
}

/// The id the compat API answers with: the target's own id (aws: the StackId) when it has one,
/// waiting up to `wait` for a new pipeline's first job to create it; else ours (also at once
/// when the pipeline ends without one, e.g. it failed before its stack was created).
pub async fn compat_id(state: &AppState, record: &PipelineRecord, wait: std::time::Duration) -> String {
    if !state.target.has_external_ids() || record.external_id.is_some() {
        return record.external_id.clone().unwrap_or_else(|| record.id.clone());
    }
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        match state.store.pipeline(&record.id).await.ok().flatten() {
            Some(p) if p.external_id.is_some() => return p.external_id.unwrap_or_default(),
            Some(p) if p.state.is_final() => break,
            _ => {}
        }
    }
    record.id.clone()
}

/// Resolves `{stage}` in a URL: an environment name or a 0-based ordinal.
pub fn resolve_stage<'a>(stages: &'a [StageRecord], stage: &str) -> Option<&'a StageRecord> {
    stages.iter().find(|s| s.environment == stage).or_else(|| {
        let ordinal: i32 = stage.parse().ok()?;
        stages.iter().find(|s| s.ordinal == ordinal)
    })
}

pub async fn decide(
    state: &AppState,
    principal: &Principal,
    pipeline_id: &str,
    stage: &str,
    approve: bool,
    comment: Option<String>,
    version: Option<i64>,
) -> Result<PipelineRecord, ApiError> {
    let pipeline = find(state, pipeline_id).await?;
    let stages = state.store.stages(&pipeline.id).await?;
    let stage = resolve_stage(&stages, stage).ok_or_else(|| {
        let known: Vec<_> = stages.iter().map(|s| s.environment.as_str()).collect();
        ApiError::NotFound(format!("pipeline {pipeline_id} has no stage {stage:?} (stages: {})", known.join(", ")))
    })?;
    let decision = Decision { approve, actor: principal.name.clone(), comment };
    let fact = Fact::Decided { ordinal: stage.ordinal, decision, version };
    let record = state.store.apply(&pipeline.id, &fact, job_policy(state)).await?.pipeline;
    tracing::info!(pipeline.id = %record.id, stage = %stage.environment, approve, actor = %principal.name, "approval decided");
    Ok(record)
}

pub async fn delete(state: &AppState, principal: &Principal, pipeline_id: &str) -> Result<PipelineRecord, ApiError> {
    let pipeline = find(state, pipeline_id).await?;
    let fact = Fact::DeleteRequested { actor: principal.name.clone() };
    let record = state.store.apply(&pipeline.id, &fact, job_policy(state)).await?.pipeline;
    tracing::info!(pipeline.id = %record.id, actor = %principal.name, "pipeline deletion requested");
    Ok(record)
}
