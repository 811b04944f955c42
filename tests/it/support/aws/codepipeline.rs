//! CodePipeline (AWS JSON 1.1: `POST /`, `X-Amz-Target: CodePipeline_20150709.<Op>`): a stateful
//! model of every pipeline created through CloudFormation (moto skips the resource) or through
//! `CreatePipeline`, with the runtime moto lacks.
//!
//! Executions follow CodePipeline's SUPERSEDED mode: a source write starts one; stages run their
//! actions by run order; one execution per stage at a time; a newer execution waiting to enter a
//! stage supersedes an older one waiting there. The clock is the test's: every
//! `GetPipelineState` (when auto-advance is on) or `advance()` moves each running action one
//! step; an action takes `steps_per_action` steps (default 1). When it finishes, a CloudFormation
//! deploy action really deploys (template and configuration from the source zip version, into the
//! action role's account), a source action yields the S3 object version, a manual approval waits
//! `InProgress` with a token for `PutApprovalResult`, and any other action just succeeds.

use super::cloudformation::{self, Via};
use super::front::{DEFAULT_ACCOUNT, Incoming, Model, REGION, Reply, Shared, arn_account, now_epoch, xml_text};
use super::sigv4::{self, Creds};
use axum::http::Method;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Read;

#[derive(Debug, Clone)]
pub struct ActionDef {
    pub name: String,
    pub category: String,
    pub owner: String,
    pub provider: String,
    pub run_order: i64,
    pub config: BTreeMap<String, String>,
    pub role_arn: Option<String>,
    pub input_artifacts: Vec<String>,
    pub output_artifacts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StageDef {
    pub name: String,
    pub actions: Vec<ActionDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    WaitingStack,
    WaitingApproval,
    Done,
}

#[derive(Debug, Clone)]
pub struct ActionRun {
    pub id: String,
    pub status: String,
    pub phase: Phase,
    pub remaining: u32,
    pub summary: Option<String>,
    pub token: Option<String>,
    pub last_change: f64,
    pub last_updated_by: Option<String>,
    pub error: Option<(String, String)>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub revision: Option<String>,
    /// (account, stack, credentials) a deploy action waits on.
    pub stack: Option<(String, String, Creds)>,
}

#[derive(Debug, Clone)]
pub struct SourceRevision {
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
    pub artifact: String,
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub id: String,
    pub status: String,
    pub summary: Option<String>,
    pub started: f64,
    pub updated: f64,
    pub trigger_type: String,
    pub trigger_detail: String,
    pub pipeline_version: i64,
    /// Index of the stage the execution is in (or waiting to enter).
    pub stage: usize,
    pub waiting: bool,
    /// Run order of the running action group.
    pub group: i64,
    pub stage_status: BTreeMap<String, String>,
    pub runs: BTreeMap<(String, String), ActionRun>,
    /// Source action name → revision.
    pub sources: BTreeMap<String, SourceRevision>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub account: String,
    pub name: String,
    /// The stack that declares it (None: created through the API).
    pub stack: Option<String>,
    pub logical_id: String,
    /// The pipeline declaration as `GetPipeline` returns it (camelCase).
    pub decl: Value,
    pub version: i64,
    pub created: f64,
    pub updated: f64,
    pub stages: Vec<StageDef>,
    pub executions: Vec<Execution>,
}

/// A test's view of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    pub name: String,
    pub account: String,
    pub stack: Option<String>,
    pub version: i64,
    pub stages: Vec<String>,
    /// Oldest first.
    pub executions: Vec<ExecutionView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecutionView {
    pub id: String,
    pub status: String,
    pub trigger: String,
    /// Source action → S3 object version.
    pub source_revisions: BTreeMap<String, Option<String>>,
    pub stage: String,
    pub waiting: bool,
    pub actions: Vec<ActionView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionView {
    pub stage: String,
    pub action: String,
    pub status: String,
    pub summary: Option<String>,
    pub token: Option<String>,
    pub error: Option<String>,
    pub last_updated_by: Option<String>,
}

impl ExecutionView {
    pub fn action(&self, name: &str) -> Option<&ActionView> {
        self.actions.iter().find(|a| a.action == name)
    }
}

impl PipelineView {
    pub fn latest(&self) -> Option<&ExecutionView> {
        self.executions.last()
    }
}

impl Pipeline {
    pub fn view(&self) -> PipelineView {
        PipelineView {
            name: self.name.clone(),
            account: self.account.clone(),
            stack: self.stack.clone(),
            version: self.version,
            stages: self.stages.iter().map(|s| s.name.clone()).collect(),
            executions: self
                .executions
                .iter()
                .map(|e| ExecutionView {
                    id: e.id.clone(),
                    status: e.status.clone(),
                    trigger: e.trigger_type.clone(),
                    source_revisions: e.sources.iter().map(|(k, v)| (k.clone(), v.version.clone())).collect(),
                    stage: self.stages.get(e.stage).map(|s| s.name.clone()).unwrap_or_default(),
                    waiting: e.waiting,
                    actions: self
                        .stages
                        .iter()
                        .flat_map(|s| s.actions.iter().map(move |a| (s, a)))
                        .filter_map(|(s, a)| {
                            let run = e.runs.get(&(s.name.clone(), a.name.clone()))?;
                            Some(ActionView {
                                stage: s.name.clone(),
                                action: a.name.clone(),
                                status: run.status.clone(),
                                summary: run.summary.clone(),
                                token: run.token.clone(),
                                error: run.error.as_ref().map(|(_, m)| m.clone()),
                                last_updated_by: run.last_updated_by.clone(),
                            })
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn arn(&self) -> String {
        format!("arn:aws:codepipeline:{REGION}:{}:{}", self.account, self.name)
    }

    fn source_actions(&self) -> Vec<&ActionDef> {
        self.stages
            .first()
            .map(|s| s.actions.iter().filter(|a| a.category == "Source" && a.provider == "S3").collect())
            .unwrap_or_default()
    }
}

fn str_of(v: &Value) -> String {
    super::template::as_string(v)
}

/// A CloudFormation `AWS::CodePipeline::Pipeline`'s resolved Properties → the API's pipeline
/// declaration (camelCase keys; action configuration values are strings).
pub fn declaration_from_cfn(props: &Value, fallback_name: &str) -> Value {
    fn camel(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let mut c = k.chars();
                        let key = c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default();
                        let value = if k == "Configuration" {
                            Value::Object(
                                v.as_object()
                                    .map(|o| o.iter().map(|(k, v)| (k.clone(), json!(str_of(v)))).collect())
                                    .unwrap_or_default(),
                            )
                        } else if k == "RunOrder" || k == "Version" && v.is_number() {
                            json!(str_of(v).parse::<i64>().unwrap_or(1))
                        } else {
                            camel(v)
                        };
                        (key, value)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(camel).collect()),
            other => other.clone(),
        }
    }
    let mut decl = Map::new();
    let name = props.get("Name").map(str_of).filter(|n| !n.is_empty()).unwrap_or_else(|| fallback_name.to_string());
    decl.insert("name".into(), json!(name));
    if let Some(r) = props.get("RoleArn") {
        decl.insert("roleArn".into(), json!(str_of(r)));
    }
    if let Some(s) = props.get("ArtifactStore") {
        decl.insert("artifactStore".into(), camel(s));
    }
    if let Some(list) = props.get("ArtifactStores").and_then(Value::as_array) {
        let stores: Map<String, Value> = list
            .iter()
            .map(|e| {
                (e.get("Region").map(str_of).unwrap_or_default(), camel(e.get("ArtifactStore").unwrap_or(&Value::Null)))
            })
            .collect();
        decl.insert("artifactStores".into(), Value::Object(stores));
    }
    let mut stages = camel(props.get("Stages").unwrap_or(&json!([])));
    for stage in stages.as_array_mut().into_iter().flatten() {
        for action in stage.get_mut("actions").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(obj) = action.as_object_mut() {
                obj.entry("runOrder").or_insert(json!(1));
                if let Some(t) = obj.get_mut("actionTypeId").and_then(Value::as_object_mut)
                    && let Some(v) = t.get("version").cloned()
                {
                    t.insert("version".into(), json!(str_of(&v)));
                }
            }
        }
    }
    decl.insert("stages".into(), stages);
    for (cfn, api) in [("PipelineType", "pipelineType"), ("ExecutionMode", "executionMode")] {
        if let Some(v) = props.get(cfn) {
            decl.insert(api.into(), json!(str_of(v)));
        }
    }
    if let Some(v) = props.get("Variables") {
        decl.insert("variables".into(), camel(v));
    }
    Value::Object(decl)
}

fn stages_of(decl: &Value) -> Vec<StageDef> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.get("name").map(str_of)).collect())
            .unwrap_or_default()
    };
    decl.get("stages")
        .and_then(Value::as_array)
        .map(|stages| {
            stages
                .iter()
                .map(|s| StageDef {
                    name: s.get("name").map(str_of).unwrap_or_default(),
                    actions: s
                        .get("actions")
                        .and_then(Value::as_array)
                        .map(|acts| {
                            acts.iter()
                                .map(|a| {
                                    let t = a.get("actionTypeId").cloned().unwrap_or(Value::Null);
                                    ActionDef {
                                        name: a.get("name").map(str_of).unwrap_or_default(),
                                        category: t.get("category").map(str_of).unwrap_or_default(),
                                        owner: t.get("owner").map(str_of).unwrap_or_default(),
                                        provider: t.get("provider").map(str_of).unwrap_or_default(),
                                        run_order: a.get("runOrder").and_then(Value::as_i64).unwrap_or(1),
                                        config: a
                                            .get("configuration")
                                            .and_then(Value::as_object)
                                            .map(|c| c.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
                                            .unwrap_or_default(),
                                        role_arn: a.get("roleArn").map(str_of),
                                        input_artifacts: strings(a.get("inputArtifacts")),
                                        output_artifacts: strings(a.get("outputArtifacts")),
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Adds or updates a pipeline. A new pipeline starts an execution at once, as CodePipeline does.
pub async fn register(shared: &Shared, model: &mut Model, account: &str, owner: Option<(&str, &str)>, decl: Value) {
    let name = decl.get("name").map(str_of).unwrap_or_default();
    let key = (account.to_string(), name.clone());
    let now = now_epoch();
    if let Some(p) = model.pipelines.get_mut(&key) {
        let mut old = p.decl.clone();
        if let Some(o) = old.as_object_mut() {
            o.remove("version");
        }
        if old != decl {
            p.version += 1;
            p.updated = now;
            p.stages = stages_of(&decl);
            p.decl = decl;
            p.decl["version"] = json!(p.version);
        }
        if let Some((stack, logical)) = owner {
            p.stack = Some(stack.to_string());
            p.logical_id = logical.to_string();
        }
        return;
    }
    let mut p = Pipeline {
        account: account.to_string(),
        name: name.clone(),
        stack: owner.map(|(s, _)| s.to_string()),
        logical_id: owner.map(|(_, l)| l.to_string()).unwrap_or_default(),
        stages: stages_of(&decl),
        decl,
        version: 1,
        created: now,
        updated: now,
        executions: Vec::new(),
    };
    p.decl["version"] = json!(1);
    model.pipelines.insert(key.clone(), p);
    start_execution(shared, model, &key, "CreatePipeline", &format!("arn:aws:iam::{account}:root"), None).await;
}

/// Drops the pipelines of a stack except those named in `keep`.
pub fn unregister_stack(model: &mut Model, account: &str, stack: &str, keep: &[String]) {
    model.pipelines.retain(|(a, n), p| !(a == account && p.stack.as_deref() == Some(stack) && !keep.contains(n)));
}

/// The version id of the latest S3 object (None: absent).
async fn head_version(shared: &Shared, creds: &Creds, bucket: &str, key: &str) -> Option<String> {
    let path = format!("/{}/{}", sigv4::uri_encode(bucket, false), sigv4::uri_encode(key, true));
    let r = shared.moto_send(creds, "s3", Method::HEAD, &path, "", &[], Vec::new()).await;
    if !r.is_success() {
        return None;
    }
    Some(r.header("x-amz-version-id").unwrap_or_else(|| "null".to_string()))
}

/// Starts an execution. `known`: (bucket, key, version) of the write that triggered it.
async fn start_execution(
    shared: &Shared,
    model: &mut Model,
    key: &(String, String),
    trigger_type: &str,
    trigger_detail: &str,
    known: Option<(&str, &str, Option<String>)>,
) -> Option<String> {
    let p = model.pipelines.get(key)?;
    let sources: Vec<(String, String, String, String)> = p
        .source_actions()
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.config.get("S3Bucket").cloned().unwrap_or_default(),
                a.config.get("S3ObjectKey").cloned().unwrap_or_default(),
                a.output_artifacts.first().cloned().unwrap_or_default(),
            )
        })
        .collect();
    let version = p.version;
    let creds = shared.creds_for_account(&key.0).await;
    let mut revisions = BTreeMap::new();
    for (action, bucket, obj, artifact) in sources {
        let v = match &known {
            Some((b, k, v)) if *b == bucket && *k == obj => v.clone().or_else(|| Some("null".into())),
            _ => head_version(shared, &creds, &bucket, &obj).await,
        };
        revisions.insert(action, SourceRevision { bucket, key: obj, version: v, artifact });
    }
    model.next_execution += 1;
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_epoch();
    let steps = model.behaviours.steps_per_action;
    let p = model.pipelines.get_mut(key)?;
    p.executions.push(Execution {
        id: id.clone(),
        status: "InProgress".into(),
        summary: None,
        started: now,
        updated: now,
        trigger_type: trigger_type.into(),
        trigger_detail: trigger_detail.into(),
        pipeline_version: version,
        stage: 0,
        waiting: true,
        group: 0,
        stage_status: BTreeMap::new(),
        runs: BTreeMap::new(),
        sources: revisions,
    });
    settle(p, steps);
    Some(id)
}

/// A write to S3 succeeded: every pipeline whose S3 source is that object starts an execution.
pub async fn source_changed(
    shared: &Shared,
    model: &mut Model,
    account: &str,
    bucket: &str,
    key: &str,
    version: Option<String>,
) {
    let hits: Vec<(String, String)> = model
        .pipelines
        .iter()
        .filter(|((a, _), p)| {
            a == account
                && p.source_actions().iter().any(|s| {
                    s.config.get("S3Bucket").map(String::as_str) == Some(bucket)
                        && s.config.get("S3ObjectKey").map(String::as_str) == Some(key)
                })
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in hits {
        let detail = format!("arn:aws:events:{REGION}:{account}:rule/{}-source-change", k.1);
        start_execution(shared, model, &k, "CloudWatchEvent", &detail, Some((bucket, key, version.clone()))).await;
    }
}

fn new_run(category: &str, steps: u32) -> ActionRun {
    let approval = category == "Approval";
    ActionRun {
        id: uuid::Uuid::new_v4().to_string(),
        status: "InProgress".into(),
        phase: if approval { Phase::WaitingApproval } else { Phase::Running },
        remaining: steps.max(1),
        summary: None,
        token: approval.then(|| uuid::Uuid::new_v4().to_string()),
        last_change: now_epoch(),
        last_updated_by: None,
        error: None,
        external_id: None,
        external_url: None,
        revision: None,
        stack: None,
    }
}

/// Starts the action group with the lowest run order above `after` in the execution's stage;
/// false when there is none.
fn start_group(stages: &[StageDef], e: &mut Execution, after: i64, steps: u32) -> bool {
    let stage = &stages[e.stage];
    let Some(next) = stage.actions.iter().map(|a| a.run_order).filter(|r| *r > after).min() else { return false };
    e.group = next;
    for a in stage.actions.iter().filter(|a| a.run_order == next) {
        e.runs.insert((stage.name.clone(), a.name.clone()), new_run(&a.category, steps));
    }
    true
}

fn stage_busy(execs: &[Execution], stage: usize, except: usize) -> bool {
    execs.iter().enumerate().any(|(j, x)| j != except && x.status == "InProgress" && !x.waiting && x.stage == stage)
}

/// Moves executions through stage boundaries and action groups (no clock step, no effects).
fn settle(p: &mut Pipeline, steps: u32) {
    let now = now_epoch();
    loop {
        let mut changed = false;
        for i in 0..p.executions.len() {
            if p.executions[i].status != "InProgress" {
                continue;
            }
            if p.executions[i].waiting {
                let stage = p.executions[i].stage;
                if stage_busy(&p.executions, stage, i) {
                    continue;
                }
                // Entering: any older execution waiting for the same stage is superseded.
                for j in 0..i {
                    let x = &mut p.executions[j];
                    if x.status == "InProgress" && x.waiting && x.stage == stage {
                        x.status = "Superseded".into();
                        x.updated = now;
                    }
                }
                let e = &mut p.executions[i];
                e.waiting = false;
                e.updated = now;
                e.stage_status.insert(p.stages[stage].name.clone(), "InProgress".into());
                if !start_group(&p.stages, e, i64::MIN, steps) {
                    // An empty stage succeeds at once.
                    e.group = i64::MAX;
                }
                changed = true;
                continue;
            }
            let stage = p.executions[i].stage;
            let stage_def = &p.stages[stage];
            let e = &mut p.executions[i];
            let group: Vec<&ActionRun> = stage_def
                .actions
                .iter()
                .filter(|a| a.run_order == e.group)
                .filter_map(|a| e.runs.get(&(stage_def.name.clone(), a.name.clone())))
                .collect();
            if let Some(failed) = group.iter().find(|r| r.status == "Failed") {
                let msg = failed.error.as_ref().map(|(_, m)| m.clone()).or(failed.summary.clone());
                e.stage_status.insert(stage_def.name.clone(), "Failed".into());
                e.status = "Failed".into();
                e.summary = msg;
                e.updated = now;
                changed = true;
                continue;
            }
            if !group.iter().all(|r| r.status == "Succeeded") {
                continue;
            }
            let g = e.group;
            if g != i64::MAX && start_group(&p.stages, e, g, steps) {
                changed = true;
                continue;
            }
            e.stage_status.insert(stage_def.name.clone(), "Succeeded".into());
            e.updated = now;
            changed = true;
            if stage + 1 >= p.stages.len() {
                e.status = "Succeeded".into();
                continue;
            }
            e.stage = stage + 1;
            e.waiting = true;
            // A newer execution now waits for this stage: older ones waiting there are superseded.
            for j in 0..i {
                let x = &mut p.executions[j];
                if x.status == "InProgress" && x.waiting && x.stage == stage + 1 {
                    x.status = "Superseded".into();
                    x.updated = now;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

enum Outcome {
    Succeeded { summary: Option<String>, external_id: Option<String>, revision: Option<String> },
    Failed(String),
    WaitStack { account: String, stack: String, creds: Creds, stack_id: String },
}

/// Moves every running execution of every pipeline one step.
pub async fn advance_all(shared: &Shared, model: &mut Model) {
    let keys: Vec<(String, String)> = model.pipelines.keys().cloned().collect();
    for k in keys {
        advance(shared, model, &k).await;
    }
}

/// Moves each running action of one pipeline one step; finished actions take effect.
pub async fn advance(shared: &Shared, model: &mut Model, key: &(String, String)) {
    let steps = model.behaviours.steps_per_action;
    let Some(p) = model.pipelines.get_mut(key) else { return };
    let mut work: Vec<(String, usize, ActionDef, bool)> = Vec::new();
    for e in p.executions.iter_mut().filter(|e| e.status == "InProgress" && !e.waiting) {
        let stage = &p.stages[e.stage];
        for a in stage.actions.iter().filter(|a| a.run_order == e.group) {
            let Some(run) = e.runs.get_mut(&(stage.name.clone(), a.name.clone())) else { continue };
            match run.phase {
                Phase::Running => {
                    run.remaining = run.remaining.saturating_sub(1);
                    if run.remaining == 0 {
                        work.push((e.id.clone(), e.stage, a.clone(), false));
                    }
                }
                Phase::WaitingStack => work.push((e.id.clone(), e.stage, a.clone(), true)),
                _ => {}
            }
        }
    }
    for (exec_id, stage_idx, action, polling) in work {
        let Some(p) = model.pipelines.get(key) else { return };
        let Some(e) = p.executions.iter().find(|e| e.id == exec_id) else { continue };
        let stage_name = p.stages[stage_idx].name.clone();
        let run_key = (stage_name, action.name.clone());
        let sources = e.sources.clone();
        let waiting_on = e.runs.get(&run_key).and_then(|r| r.stack.clone());
        let account = p.account.clone();
        let outcome = if polling {
            match waiting_on {
                Some((acc, stack, creds)) => poll_stack(shared, model, &acc, &creds, &stack).await,
                None => Outcome::Failed("lost track of the stack".into()),
            }
        } else {
            match (action.category.as_str(), action.provider.as_str()) {
                ("Source", _) => match sources.get(&action.name) {
                    Some(SourceRevision { version: Some(v), .. }) => {
                        Outcome::Succeeded { summary: None, external_id: Some(v.clone()), revision: Some(v.clone()) }
                    }
                    Some(s) => Outcome::Failed(format!(
                        "The object with key '{}' does not exist in bucket '{}'.",
                        s.key, s.bucket
                    )),
                    None => Outcome::Failed("source not resolved".into()),
                },
                ("Deploy", "CloudFormation") => deploy(shared, model, &account, &action, &sources).await,
                _ => Outcome::Succeeded {
                    summary: Some("simulated by the aws test front".into()),
                    external_id: None,
                    revision: None,
                },
            }
        };
        let Some(p) = model.pipelines.get_mut(key) else { return };
        let Some(e) = p.executions.iter_mut().find(|e| e.id == exec_id) else { continue };
        let Some(run) = e.runs.get_mut(&run_key) else { continue };
        if run.status != "InProgress" {
            continue; // stopped meanwhile
        }
        run.last_change = now_epoch();
        match outcome {
            Outcome::Succeeded { summary, external_id, revision } => {
                run.status = "Succeeded".into();
                run.phase = Phase::Done;
                run.summary = summary;
                if external_id.is_some() {
                    run.external_id = external_id;
                }
                run.revision = revision;
            }
            Outcome::Failed(msg) => {
                run.status = "Failed".into();
                run.phase = Phase::Done;
                run.error = Some(("JobFailed".into(), msg));
            }
            Outcome::WaitStack { account, stack, creds, stack_id } => {
                run.phase = Phase::WaitingStack;
                run.external_id = Some(stack_id.clone());
                run.external_url = Some(format!(
                    "https://console.aws.amazon.com/cloudformation/home?region={REGION}#/stacks/stackinfo?stackId={}",
                    sigv4::uri_encode(&stack_id, false)
                ));
                run.stack = Some((account, stack, creds));
            }
        }
    }
    if let Some(p) = model.pipelines.get_mut(key) {
        settle(p, steps);
    }
}

async fn poll_stack(shared: &Shared, model: &mut Model, account: &str, creds: &Creds, stack: &str) -> Outcome {
    match cloudformation::stack_status(shared, model, account, creds, stack, true).await {
        None => Outcome::Failed(format!("Stack {stack} does not exist")),
        Some((status, reason, stack_id)) => {
            if status.ends_with("_IN_PROGRESS") {
                Outcome::WaitStack { account: account.into(), stack: stack.into(), creds: creds.clone(), stack_id }
            } else if status.contains("ROLLBACK") || status.ends_with("_FAILED") {
                Outcome::Failed(reason.unwrap_or_else(|| format!("Stack {stack} is in {status} state")))
            } else {
                Outcome::Succeeded { summary: None, external_id: Some(stack_id), revision: None }
            }
        }
    }
}

fn error_message(reply: &Reply) -> String {
    xml_text(&reply.text(), "Message").unwrap_or_else(|| format!("{} {}", reply.status, reply.text()))
}

/// A CloudFormation deploy action: template and configuration from the exact source zip
/// version, create/update/delete in moto, in the action role's account.
async fn deploy(
    shared: &Shared,
    model: &mut Model,
    pipeline_account: &str,
    action: &ActionDef,
    sources: &BTreeMap<String, SourceRevision>,
) -> Outcome {
    let cfg = |k: &str| action.config.get(k).cloned();
    let Some(stack) = cfg("StackName") else { return Outcome::Failed("StackName is missing".into()) };
    let mode = cfg("ActionMode").unwrap_or_else(|| "CREATE_UPDATE".into());
    // Cross-account: CodePipeline assumes the action role in the target account.
    let (account, creds) = match action.role_arn.as_deref().and_then(|r| arn_account(r).map(|a| (r, a))) {
        Some((role, acc)) if acc != pipeline_account => match shared.assume_role(role).await {
            Ok(c) => (acc, c),
            Err(e) => return Outcome::Failed(e),
        },
        _ => (pipeline_account.to_string(), shared.creds_for_account(pipeline_account).await),
    };
    let existing = cloudformation::stack_status(shared, model, &account, &creds, &stack, false).await;
    let live = existing.as_ref().filter(|(s, _, _)| s != "DELETE_COMPLETE");
    if mode == "DELETE_ONLY" {
        if live.is_none() {
            return Outcome::Succeeded { summary: None, external_id: None, revision: None };
        }
        let params = vec![("Action".to_string(), "DeleteStack".to_string()), ("StackName".to_string(), stack.clone())];
        let (reply, _) = cloudformation::mutate(shared, model, &account, Via::Creds(creds.clone()), &params).await;
        if !reply.is_success() {
            return Outcome::Failed(error_message(&reply));
        }
        return poll_stack(shared, model, &account, &creds, &stack).await;
    }
    if !matches!(mode.as_str(), "CREATE_UPDATE" | "REPLACE_ON_FAILURE") {
        return Outcome::Failed(format!("ActionMode {mode} is not emulated by the aws test front"));
    }

    // The input artifact is the zip a source action produced.
    let artifact = action.input_artifacts.first().cloned().unwrap_or_default();
    let Some(src) = sources.values().find(|s| s.artifact == artifact || artifact.is_empty()) else {
        return Outcome::Failed(format!("input artifact {artifact} has no source"));
    };
    let path = format!("/{}/{}", sigv4::uri_encode(&src.bucket, false), sigv4::uri_encode(&src.key, true));
    let query = match &src.version {
        Some(v) if v != "null" => format!("versionId={}", sigv4::uri_encode(v, false)),
        _ => String::new(),
    };
    let source_creds = shared.creds_for_account(pipeline_account).await;
    let zip = shared.moto_send(&source_creds, "s3", Method::GET, &path, &query, &[], Vec::new()).await;
    if !zip.is_success() {
        return Outcome::Failed(format!("reading s3://{}/{}: {}", src.bucket, src.key, zip.status));
    }
    let files = match unzip(&zip.body) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("artifact {artifact} is not a zip: {e}")),
    };
    let file_of = |spec: &str| -> Result<String, String> {
        let name = spec.split_once("::").map(|(_, f)| f).unwrap_or(spec);
        files.get(name).cloned().ok_or_else(|| format!("File {name} does not exist in artifact {artifact}"))
    };
    let Some(template_path) = cfg("TemplatePath") else { return Outcome::Failed("TemplatePath is missing".into()) };
    let template_body = match file_of(&template_path) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e),
    };
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    if let Some(spec) = cfg("TemplateConfiguration") {
        let text = match file_of(&spec) {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e),
        };
        let conf: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("TemplateConfiguration {spec} is not valid JSON: {e}")),
        };
        for (k, v) in conf.get("Parameters").and_then(Value::as_object).into_iter().flatten() {
            parameters.insert(k.clone(), str_of(v));
        }
        for (k, v) in conf.get("Tags").and_then(Value::as_object).into_iter().flatten() {
            tags.insert(k.clone(), str_of(v));
        }
    }
    if let Some(overrides) = cfg("ParameterOverrides") {
        match serde_json::from_str::<Value>(&overrides) {
            Ok(Value::Object(o)) => {
                for (k, v) in o {
                    parameters.insert(k, str_of(&v));
                }
            }
            _ => return Outcome::Failed("ParameterOverrides is not a JSON object".into()),
        }
    }

    let failed_state =
        live.filter(|(s, _, _)| s == "ROLLBACK_COMPLETE" || s.ends_with("_FAILED")).map(|(s, _, _)| s.clone());
    let mut create = live.is_none();
    if let Some(state) = failed_state {
        if mode != "REPLACE_ON_FAILURE" {
            let id = live.map(|(_, _, id)| id.clone()).unwrap_or_default();
            return Outcome::Failed(format!("Stack:{id} is in {state} state and can not be updated."));
        }
        // The replacement's delete is part of this deploy: scripted holds and failures are for
        // the create that follows.
        let hold = model.behaviours.holds.remove(&stack);
        let params = vec![("Action".to_string(), "DeleteStack".to_string()), ("StackName".to_string(), stack.clone())];
        let (reply, _) = cloudformation::mutate(shared, model, &account, Via::Creds(creds.clone()), &params).await;
        if let Some(h) = hold {
            model.behaviours.holds.insert(stack.clone(), h);
        }
        if !reply.is_success() {
            return Outcome::Failed(error_message(&reply));
        }
        create = true;
    }
    let mut params = vec![
        ("Action".to_string(), if create { "CreateStack" } else { "UpdateStack" }.to_string()),
        ("Version".to_string(), "2010-05-15".to_string()),
        ("StackName".to_string(), stack.clone()),
        ("TemplateBody".to_string(), template_body),
    ];
    for (i, (k, v)) in parameters.iter().enumerate() {
        params.push((format!("Parameters.member.{}.ParameterKey", i + 1), k.clone()));
        params.push((format!("Parameters.member.{}.ParameterValue", i + 1), v.clone()));
    }
    let capabilities = cfg("Capabilities").unwrap_or_else(|| "CAPABILITY_NAMED_IAM".into());
    for (i, c) in capabilities.split(',').map(str::trim).filter(|c| !c.is_empty()).enumerate() {
        params.push((format!("Capabilities.member.{}", i + 1), c.to_string()));
    }
    if let Some(role) = cfg("RoleArn") {
        params.push(("RoleARN".to_string(), role));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        params.push((format!("Tags.member.{}.Key", i + 1), k.clone()));
        params.push((format!("Tags.member.{}.Value", i + 1), v.clone()));
    }
    let (reply, _) = cloudformation::mutate(shared, model, &account, Via::Creds(creds.clone()), &params).await;
    if !reply.is_success() {
        let msg = error_message(&reply);
        if msg.contains("No updates are to be performed") {
            let id = live.map(|(_, _, id)| id.clone());
            return Outcome::Succeeded { summary: None, external_id: id, revision: None };
        }
        return Outcome::Failed(msg);
    }
    poll_stack(shared, model, &account, &creds, &stack).await
}

fn unzip(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| e.to_string())?;
        if f.is_dir() {
            continue;
        }
        let name = f.name().map(|n| n.to_string()).map_err(|e| e.to_string())?;
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(|e| e.to_string())?;
        files.insert(name, text);
    }
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// The API.

fn not_found(name: &str) -> Reply {
    Reply::json_error(
        "PipelineNotFoundException",
        &format!("Account '{DEFAULT_ACCOUNT}' does not have a pipeline with name '{name}'"),
    )
}

fn action_latest(run: &ActionRun) -> Value {
    let mut v = json!({
        "actionExecutionId": run.id,
        "status": run.status,
        "lastStatusChange": run.last_change,
    });
    for (k, val) in [
        ("summary", &run.summary),
        ("token", &run.token),
        ("lastUpdatedBy", &run.last_updated_by),
        ("externalExecutionId", &run.external_id),
        ("externalExecutionUrl", &run.external_url),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    if let Some((code, message)) = &run.error {
        v["errorDetails"] = json!({ "code": code, "message": message });
    }
    v
}

fn pipeline_state(p: &Pipeline) -> Value {
    let stage_states: Vec<Value> = p
        .stages
        .iter()
        .enumerate()
        .map(|(idx, s)| {
            let mut st = json!({
                "stageName": s.name,
                "inboundTransitionState": { "enabled": true },
            });
            let actions: Vec<Value> = s
                .actions
                .iter()
                .map(|a| {
                    let key = (s.name.clone(), a.name.clone());
                    let mut av = json!({ "actionName": a.name });
                    if let Some(run) = p.executions.iter().rev().find_map(|e| e.runs.get(&key)) {
                        av["latestExecution"] = action_latest(run);
                    }
                    if let Some(rev) = p.executions.iter().rev().find_map(|e| {
                        e.runs.get(&key).filter(|r| r.status == "Succeeded").and_then(|r| r.revision.clone())
                    }) {
                        av["currentRevision"] = json!({ "revisionId": rev });
                    }
                    av
                })
                .collect();
            st["actionStates"] = json!(actions);
            if let Some(e) = p.executions.iter().rev().find(|e| e.stage_status.contains_key(&s.name)) {
                st["latestExecution"] = json!({ "pipelineExecutionId": e.id, "status": e.stage_status[&s.name] });
            }
            let inbound: Vec<Value> = p
                .executions
                .iter()
                .rev()
                .filter(|e| e.status == "InProgress" && e.waiting && e.stage == idx && idx > 0)
                .map(|e| json!({ "pipelineExecutionId": e.id, "status": "InProgress" }))
                .collect();
            if let Some(first) = inbound.first() {
                st["inboundExecution"] = first.clone();
                st["inboundExecutions"] = json!(inbound);
            }
            st
        })
        .collect();
    json!({
        "pipelineName": p.name,
        "pipelineVersion": p.version,
        "stageStates": stage_states,
        "created": p.created,
        "updated": p.updated,
    })
}

fn execution_summary(p: &Pipeline, e: &Execution) -> Value {
    let sources: Vec<Value> = e
        .sources
        .iter()
        .filter_map(|(action, s)| {
            s.version.as_ref().map(|v| json!({ "actionName": action, "revisionId": v, "revisionSummary": format!("s3://{}/{}", s.bucket, s.key) }))
        })
        .collect();
    let _ = p;
    json!({
        "pipelineExecutionId": e.id,
        "status": e.status,
        "startTime": e.started,
        "lastUpdateTime": e.updated,
        "sourceRevisions": sources,
        "trigger": { "triggerType": e.trigger_type, "triggerDetail": e.trigger_detail },
        "executionMode": "SUPERSEDED",
    })
}

fn execution_detail(p: &Pipeline, e: &Execution) -> Value {
    let artifacts: Vec<Value> = e
        .sources
        .values()
        .filter_map(|s| {
            s.version.as_ref().map(|v| {
                json!({
                    "name": s.artifact,
                    "revisionId": v,
                    "revisionSummary": format!("s3://{}/{}", s.bucket, s.key),
                    "created": e.started,
                })
            })
        })
        .collect();
    let mut v = json!({
        "pipelineName": p.name,
        "pipelineVersion": e.pipeline_version,
        "pipelineExecutionId": e.id,
        "status": e.status,
        "artifactRevisions": artifacts,
        "trigger": { "triggerType": e.trigger_type, "triggerDetail": e.trigger_detail },
        "executionMode": "SUPERSEDED",
    });
    if let Some(s) = &e.summary {
        v["statusSummary"] = json!(s);
    }
    v
}

pub async fn handle(shared: &Shared, inc: &Incoming) -> (Reply, bool) {
    let body = inc.json.clone().unwrap_or(json!({}));
    let s = |k: &str| body.get(k).map(str_of).unwrap_or_default();
    let account = inc.account.clone();
    let mut model = shared.model.lock().await;
    match inc.op.as_str() {
        "GetPipelineState" => {
            let key = (account, s("name"));
            if !model.pipelines.contains_key(&key) {
                return (not_found(&key.1), true);
            }
            if model.behaviours.auto_advance {
                advance(shared, &mut model, &key).await;
            }
            (Reply::json(&pipeline_state(&model.pipelines[&key])), true)
        }
        "PutApprovalResult" => (put_approval_result(&mut model, inc, &body), true),
        "GetPipeline" => {
            let key = (account, s("name"));
            match model.pipelines.get(&key) {
                Some(p) => {
                    let out = json!({
                        "pipeline": p.decl,
                        "metadata": { "pipelineArn": p.arn(), "created": p.created, "updated": p.updated },
                    });
                    (Reply::json(&out), true)
                }
                None => (shared.forward(inc).await, false),
            }
        }
        "ListPipelineExecutions" => {
            let key = (account, s("pipelineName"));
            if !model.pipelines.contains_key(&key) {
                return (not_found(&key.1), true);
            }
            // Real pipelines move on whatever one reads: an observation is a clock tick here too.
            if model.behaviours.auto_advance {
                advance(shared, &mut model, &key).await;
            }
            let p = &model.pipelines[&key];
            let max = body.get("maxResults").and_then(Value::as_u64).unwrap_or(100) as usize;
            let list: Vec<Value> = p.executions.iter().rev().take(max).map(|e| execution_summary(p, e)).collect();
            (Reply::json(&json!({ "pipelineExecutionSummaries": list })), true)
        }
        "GetPipelineExecution" => {
            let key = (account, s("pipelineName"));
            let Some(p) = model.pipelines.get(&key) else { return (not_found(&key.1), true) };
            match p.executions.iter().find(|e| e.id == s("pipelineExecutionId")) {
                Some(e) => (Reply::json(&json!({ "pipelineExecution": execution_detail(p, e) })), true),
                None => (
                    Reply::json_error(
                        "PipelineExecutionNotFoundException",
                        &format!("Pipeline execution {} not found", s("pipelineExecutionId")),
                    ),
                    true,
                ),
            }
        }
        "StartPipelineExecution" => {
            let key = (account.clone(), s("name"));
            if !model.pipelines.contains_key(&key) {
                return (not_found(&key.1), true);
            }
            let detail = format!("arn:aws:iam::{account}:user/{}", inc.access_key);
            let id = start_execution(shared, &mut model, &key, "StartPipelineExecution", &detail, None).await;
            (Reply::json(&json!({ "pipelineExecutionId": id })), true)
        }
        "StopPipelineExecution" => {
            let key = (account, s("pipelineName"));
            let steps = model.behaviours.steps_per_action;
            let Some(p) = model.pipelines.get_mut(&key) else { return (not_found(&key.1), true) };
            let id = s("pipelineExecutionId");
            let Some(e) = p.executions.iter_mut().find(|e| e.id == id) else {
                return (
                    Reply::json_error(
                        "PipelineExecutionNotFoundException",
                        &format!("Pipeline execution {id} not found"),
                    ),
                    true,
                );
            };
            if e.status != "InProgress" {
                return (
                    Reply::json_error(
                        "PipelineExecutionNotStoppableException",
                        &format!("Pipeline execution {id} is {} and cannot be stopped", e.status),
                    ),
                    true,
                );
            }
            let now = now_epoch();
            e.status = "Stopped".into();
            e.summary = body.get("reason").map(str_of);
            e.updated = now;
            if !e.waiting
                && let Some(stage) = p.stages.get(e.stage)
            {
                e.stage_status.insert(stage.name.clone(), "Stopped".into());
            }
            for run in e.runs.values_mut().filter(|r| r.status == "InProgress") {
                run.status = "Abandoned".into();
                run.phase = Phase::Done;
                run.last_change = now;
            }
            settle(p, steps);
            (Reply::json(&json!({ "pipelineExecutionId": id })), true)
        }
        "ListPipelines" => {
            let reply = shared.forward(inc).await;
            let mut out = reply.json_body().unwrap_or_else(|| json!({ "pipelines": [] }));
            let known: Vec<String> = out["pipelines"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let mut list = out["pipelines"].as_array().cloned().unwrap_or_default();
            for p in model.pipelines.values().filter(|p| p.account == account && !known.contains(&p.name)) {
                list.push(json!({
                    "name": p.name,
                    "version": p.version,
                    "pipelineType": p.decl.get("pipelineType").cloned().unwrap_or(json!("V1")),
                    "executionMode": "SUPERSEDED",
                    "created": p.created,
                    "updated": p.updated,
                }));
            }
            out["pipelines"] = json!(list);
            (Reply::json(&out), true)
        }
        "CreatePipeline" => {
            let reply = shared.forward(inc).await;
            if reply.is_success()
                && let Some(decl) = body.get("pipeline").cloned()
            {
                let mut decl = decl;
                if let Some(o) = decl.as_object_mut() {
                    o.remove("version");
                }
                register(shared, &mut model, &account, None, decl).await;
            }
            (reply, false)
        }
        "UpdatePipeline" => {
            let mut decl = body.get("pipeline").cloned().unwrap_or(Value::Null);
            if let Some(o) = decl.as_object_mut() {
                o.remove("version");
            }
            let key = (account.clone(), decl.get("name").map(str_of).unwrap_or_default());
            let from_stack = model.pipelines.get(&key).is_some_and(|p| p.stack.is_some());
            if !from_stack {
                let reply = shared.forward(inc).await;
                if reply.is_success() && model.pipelines.contains_key(&key) {
                    register(shared, &mut model, &account, None, decl).await;
                }
                return (reply, false);
            }
            register(shared, &mut model, &account, None, decl).await;
            let p = &model.pipelines[&key];
            (Reply::json(&json!({ "pipeline": p.decl })), true)
        }
        "DeletePipeline" => {
            let key = (account, s("name"));
            match model.pipelines.remove(&key) {
                Some(p) if p.stack.is_some() => (Reply::json(&json!({})), true),
                _ => (shared.forward(inc).await, false),
            }
        }
        _ => (shared.forward(inc).await, false),
    }
}

fn put_approval_result(model: &mut Model, inc: &Incoming, body: &Value) -> Reply {
    let s = |k: &str| body.get(k).map(str_of).unwrap_or_default();
    let (name, stage, action, token) = (s("pipelineName"), s("stageName"), s("actionName"), s("token"));
    let result = body.get("result").cloned().unwrap_or(Value::Null);
    let status = result.get("status").map(str_of).unwrap_or_default();
    let summary = result.get("summary").map(str_of);
    if status != "Approved" && status != "Rejected" {
        return Reply::json_error("ValidationException", "result.status must be Approved or Rejected");
    }
    let steps = model.behaviours.steps_per_action;
    let Some(p) = model.pipelines.get_mut(&(inc.account.clone(), name.clone())) else { return not_found(&name) };
    let Some(stage_def) = p.stages.iter().find(|st| st.name == stage) else {
        return Reply::json_error("StageNotFoundException", &format!("Stage {stage} not found in pipeline {name}"));
    };
    if !stage_def.actions.iter().any(|a| a.name == action && a.category == "Approval") {
        return Reply::json_error(
            "ActionNotFoundException",
            &format!("Approval action {action} not found in stage {stage}"),
        );
    }
    let key = (stage.clone(), action.clone());
    let mut found: Option<&mut ActionRun> = None;
    let mut completed = false;
    for e in p.executions.iter_mut() {
        if let Some(run) = e.runs.get_mut(&key)
            && run.token.as_deref() == Some(token.as_str())
        {
            if run.phase == Phase::WaitingApproval && run.status == "InProgress" && e.status == "InProgress" {
                found = Some(run);
            } else {
                completed = true;
            }
            break;
        }
    }
    let Some(run) = found else {
        if completed {
            return Reply::json_error(
                "ApprovalAlreadyCompletedException",
                &format!("The approval action {action} in stage {stage} has already been completed"),
            );
        }
        return Reply::json_error(
            "InvalidApprovalTokenException",
            &format!("The token for approval action {action} is invalid"),
        );
    };
    let now = now_epoch();
    run.status = if status == "Approved" { "Succeeded".into() } else { "Failed".into() };
    run.phase = Phase::Done;
    run.summary = summary;
    run.last_change = now;
    run.last_updated_by = Some(format!("arn:aws:iam::{}:user/{}", inc.account, inc.access_key));
    settle(p, steps);
    Reply::json(&json!({ "approvedAt": now }))
}
