//! CloudFormation (AWS query protocol: form `Action=CreateStack&…`, XML answers). Everything goes
//! to moto; the front adds what moto lacks:
//! - stacks whose template holds `AWS::CodePipeline::Pipeline` / `AWS::SageMaker::MonitoringSchedule`
//!   (moto skips both) register them with the pipeline / schedule models, and drop them on delete;
//! - scripted progress and failure: `DescribeStacks` held in `*_IN_PROGRESS` for N observations,
//!   creates ending in `ROLLBACK_COMPLETE`, updates in `UPDATE_ROLLBACK_COMPLETE`, deletes in
//!   `DELETE_FAILED` (moto is synchronous and never fails a stack that way);
//! - updates of a stack in `ROLLBACK_COMPLETE`/`DELETE_FAILED` are refused as AWS refuses them.

use super::front::{Incoming, Model, REGION, Reply, Shared, request_id, xml_escape, xml_text};
use super::sigv4::Creds;
use super::template::{self, Ctx};
use super::{codepipeline, sagemaker};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackOp {
    Create,
    Update,
    Delete,
}

/// What the front adds to moto's view of one stack.
#[derive(Debug, Clone)]
pub struct StackState {
    pub stack_id: String,
    pub last_op: StackOp,
    /// Observations left that show `*_IN_PROGRESS`.
    pub hold: u32,
    /// A final status (and reason) shown instead of moto's once the hold is over.
    pub outcome: Option<(String, String)>,
    /// moto's `<member>` for the stack as it was before a delete (to show DELETE_IN_PROGRESS after
    /// moto has already forgotten the name).
    pub snapshot: Option<String>,
    pub deleted: bool,
    /// When the stack was last updated (`LastUpdatedTime`, which moto never reports).
    pub updated: Option<String>,
}

impl StackState {
    fn updated(stack_id: String, hold: Option<u32>, outcome: Option<(String, String)>, at: Option<String>) -> Self {
        StackState {
            stack_id,
            last_op: StackOp::Update,
            hold: hold.unwrap_or(0),
            outcome,
            snapshot: None,
            deleted: false,
            updated: at,
        }
    }

    /// One observation of the stack: the status the front shows instead of moto's, if any.
    pub fn observe(&mut self) -> Option<(String, Option<String>)> {
        if self.hold > 0 {
            self.hold -= 1;
            let s = match self.last_op {
                StackOp::Create => "CREATE_IN_PROGRESS",
                StackOp::Update => "UPDATE_IN_PROGRESS",
                StackOp::Delete => "DELETE_IN_PROGRESS",
            };
            return Some((s.to_string(), None));
        }
        self.outcome.clone().map(|(s, r)| (s, Some(r)))
    }
}

/// How a mutation reaches moto: the caller's request as it is, or a request of the front's own.
pub enum Via<'a> {
    Request(&'a Incoming),
    Creds(Creds),
}

impl Via<'_> {
    fn creds(&self) -> Creds {
        match self {
            Via::Request(inc) => inc.creds(),
            Via::Creds(c) => c.clone(),
        }
    }
}

/// `arn:aws:cloudformation:…:stack/NAME/uuid` or `NAME` → `NAME`.
pub fn stack_name_of(s: &str) -> String {
    if s.starts_with("arn:") { s.split('/').nth(1).unwrap_or(s).to_string() } else { s.to_string() }
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub async fn handle(shared: &Shared, inc: &Incoming) -> (Reply, bool) {
    match inc.op.as_str() {
        "CreateStack" | "UpdateStack" | "DeleteStack" => {
            let mut model = shared.model.lock().await;
            mutate(shared, &mut model, &inc.account, Via::Request(inc), &inc.params).await
        }
        "DescribeStacks" => {
            let mut model = shared.model.lock().await;
            describe(shared, &mut model, inc).await
        }
        _ => (shared.forward(inc).await, false),
    }
}

async fn send(shared: &Shared, via: &Via<'_>, params: &[(String, String)]) -> Reply {
    match via {
        Via::Request(inc) => shared.forward(inc).await,
        Via::Creds(c) => shared.moto_query(c, "cloudformation", params).await,
    }
}

fn empty_response(action: &str) -> Reply {
    Reply::new(
        StatusCode::OK,
        "text/xml",
        format!(
            "<{action}Response xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ResponseMetadata>\
             <RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
            request_id()
        ),
    )
}

/// `CreateStack` / `UpdateStack` / `DeleteStack`, from a caller or from a deploy action.
/// Returns the answer and whether the front changed it.
pub async fn mutate(
    shared: &Shared,
    model: &mut Model,
    account: &str,
    via: Via<'_>,
    params: &[(String, String)],
) -> (Reply, bool) {
    let action = param(params, "Action").unwrap_or_default().to_string();
    let name = stack_name_of(param(params, "StackName").unwrap_or_default());
    let key = (account.to_string(), name.clone());
    let creds = via.creds();
    match action.as_str() {
        "CreateStack" => {
            let hold = model.behaviours.holds.remove(&name);
            let fail = model.behaviours.fail_create.remove(&name);
            let reply = send(shared, &via, params).await;
            if !reply.is_success() {
                // The scripted behaviour is for a create that happens.
                if let Some(h) = hold {
                    model.behaviours.holds.insert(name.clone(), h);
                }
                if let Some(f) = fail {
                    model.behaviours.fail_create.insert(name.clone(), f);
                }
                return (reply, false);
            }
            let stack_id = xml_text(&reply.text(), "StackId").unwrap_or_default();
            let scripted = hold.is_some() || fail.is_some();
            let failed = fail.is_some();
            model.stacks.insert(
                key,
                StackState {
                    stack_id,
                    last_op: StackOp::Create,
                    hold: hold.unwrap_or(0),
                    outcome: fail.map(|r| ("ROLLBACK_COMPLETE".to_string(), r)),
                    snapshot: None,
                    deleted: false,
                    updated: None,
                },
            );
            if !failed {
                register(shared, model, account, &creds, &name).await;
            }
            (reply, scripted)
        }
        "UpdateStack" => {
            if let Some(st) = model.stacks.get(&key)
                && !st.deleted
                && let Some((status, _)) = &st.outcome
                && (status == "ROLLBACK_COMPLETE" || status == "DELETE_FAILED")
            {
                let msg = format!("Stack:{} is in {status} state and can not be updated.", st.stack_id);
                return (Reply::query_error(StatusCode::BAD_REQUEST, "ValidationError", &msg), true);
            }
            let hold = model.behaviours.holds.remove(&name);
            let fail = model.behaviours.fail_update.remove(&name);
            let updated = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            if let Some(reason) = fail {
                // A rolled-back update leaves the stack as it was (template, parameters, tags):
                // moto never sees it.
                let snapshot = member_snapshot(shared, &creds, &name).await;
                let Some(stack_id) = snapshot.as_deref().and_then(|m| xml_text(m, "StackId")) else {
                    let msg = format!("Stack with id {name} does not exist");
                    return (Reply::query_error(StatusCode::BAD_REQUEST, "ValidationError", &msg), true);
                };
                let body = format!(
                    "<UpdateStackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><UpdateStackResult>\
                     <StackId>{}</StackId></UpdateStackResult><ResponseMetadata><RequestId>{}</RequestId>\
                     </ResponseMetadata></UpdateStackResponse>",
                    xml_escape(&stack_id),
                    request_id()
                );
                let outcome = Some(("UPDATE_ROLLBACK_COMPLETE".to_string(), reason));
                model.stacks.insert(key, StackState::updated(stack_id, hold, outcome, updated));
                return (Reply::new(StatusCode::OK, "text/xml", body), true);
            }
            let reply = send(shared, &via, params).await;
            if !reply.is_success() {
                if let Some(h) = hold {
                    model.behaviours.holds.insert(name.clone(), h);
                }
                return (reply, false);
            }
            let stack_id = xml_text(&reply.text(), "StackId").unwrap_or_default();
            let scripted = hold.is_some();
            model.stacks.insert(key, StackState::updated(stack_id, hold, None, updated));
            register(shared, model, account, &creds, &name).await;
            (reply, scripted)
        }
        "DeleteStack" => {
            let hold = model.behaviours.holds.remove(&name);
            let snapshot = member_snapshot(shared, &creds, &name).await;
            if let Some(reason) = model.behaviours.fail_delete.remove(&name) {
                let stack_id = snapshot.as_deref().and_then(|m| xml_text(m, "StackId")).unwrap_or_default();
                model.stacks.insert(
                    key,
                    StackState {
                        stack_id,
                        last_op: StackOp::Delete,
                        hold: hold.unwrap_or(0),
                        outcome: Some(("DELETE_FAILED".to_string(), reason)),
                        snapshot,
                        deleted: false,
                        updated: None,
                    },
                );
                return (empty_response("DeleteStack"), true);
            }
            let reply = send(shared, &via, params).await;
            if !reply.is_success() {
                if let Some(h) = hold {
                    model.behaviours.holds.insert(name.clone(), h);
                }
                return (reply, false);
            }
            if let Some(snapshot) = snapshot {
                let stack_id = xml_text(&snapshot, "StackId").unwrap_or_default();
                model.stacks.insert(
                    key,
                    StackState {
                        stack_id,
                        last_op: StackOp::Delete,
                        hold: hold.unwrap_or(0),
                        outcome: None,
                        snapshot: Some(snapshot),
                        deleted: true,
                        updated: None,
                    },
                );
            }
            codepipeline::unregister_stack(model, account, &name, &[]);
            sagemaker::unregister_stack(model, account, &name, &[]);
            (reply, hold.is_some())
        }
        _ => (send(shared, &via, params).await, false),
    }
}

/// moto's `<member>…</member>` for a live stack, or None.
async fn member_snapshot(shared: &Shared, creds: &Creds, name: &str) -> Option<String> {
    let reply = shared
        .moto_query(
            creds,
            "cloudformation",
            &[("Action".into(), "DescribeStacks".into()), ("StackName".into(), name.into())],
        )
        .await;
    if !reply.is_success() {
        return None;
    }
    let text = reply.text();
    let doc = roxmltree::Document::parse(&text).ok()?;
    let member =
        doc.descendants().find(|n| n.has_tag_name("member") && n.parent().is_some_and(|p| p.has_tag_name("Stacks")))?;
    Some(text[member.range()].to_string())
}

/// Replaces `StackStatus` (and sets `StackStatusReason`) in the `Stacks` members of a
/// `DescribeStacks` answer as `decide(name, stack_id)` says. Returns the new XML and whether
/// anything changed.
fn rewrite_statuses(
    xml: &str,
    mut decide: impl FnMut(&str, &str) -> Option<(String, Option<String>)>,
) -> (String, bool) {
    let Ok(doc) = roxmltree::Document::parse(xml) else { return (xml.to_string(), false) };
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for member in
        doc.descendants().filter(|n| n.has_tag_name("member") && n.parent().is_some_and(|p| p.has_tag_name("Stacks")))
    {
        let child = |tag: &str| member.children().find(|c| c.has_tag_name(tag));
        let name = child("StackName").and_then(|n| n.text()).unwrap_or_default();
        let id = child("StackId").and_then(|n| n.text()).unwrap_or_default();
        let Some((status, reason)) = decide(name, id) else { continue };
        let Some(status_node) = child("StackStatus") else { continue };
        let mut replacement = format!("<StackStatus>{}</StackStatus>", xml_escape(&status));
        if let Some(reason_node) = child("StackStatusReason") {
            let r = reason.clone().unwrap_or_default();
            edits.push((reason_node.range(), format!("<StackStatusReason>{}</StackStatusReason>", xml_escape(&r))));
        } else if let Some(r) = &reason {
            replacement.push_str(&format!("<StackStatusReason>{}</StackStatusReason>", xml_escape(r)));
        }
        edits.push((status_node.range(), replacement));
    }
    if edits.is_empty() {
        return (xml.to_string(), false);
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = xml.to_string();
    for (range, text) in edits {
        out.replace_range(range, &text);
    }
    (out, true)
}

/// Adds `LastUpdatedTime` to the `Stacks` members of a `DescribeStacks` answer for the stacks
/// `updated(name, stack_id)` knows an update time of.
fn add_last_updated(xml: &str, updated: impl Fn(&str, &str) -> Option<String>) -> (String, bool) {
    let Ok(doc) = roxmltree::Document::parse(xml) else { return (xml.to_string(), false) };
    let mut edits: Vec<(usize, String)> = Vec::new();
    for member in
        doc.descendants().filter(|n| n.has_tag_name("member") && n.parent().is_some_and(|p| p.has_tag_name("Stacks")))
    {
        let child = |tag: &str| member.children().find(|c| c.has_tag_name(tag));
        let name = child("StackName").and_then(|n| n.text()).unwrap_or_default();
        let id = child("StackId").and_then(|n| n.text()).unwrap_or_default();
        let Some(time) = updated(name, id) else { continue };
        if child("LastUpdatedTime").is_some() {
            continue;
        }
        let Some(status) = child("StackStatus") else { continue };
        edits.push((status.range().start, format!("<LastUpdatedTime>{time}</LastUpdatedTime>")));
    }
    if edits.is_empty() {
        return (xml.to_string(), false);
    }
    edits.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let mut out = xml.to_string();
    for (at, text) in edits {
        out.insert_str(at, &text);
    }
    (out, true)
}

async fn describe(shared: &Shared, model: &mut Model, inc: &Incoming) -> (Reply, bool) {
    let reply = shared.forward(inc).await;
    let account = inc.account.clone();
    let requested = inc.param("StackName").map(stack_name_of);
    if !reply.is_success() {
        // moto forgets a deleted stack's name at once; while a delete is held, show the snapshot.
        if let Some(name) = requested
            && reply.text().contains("does not exist")
            && let Some(st) = model.stacks.get_mut(&(account, name))
            && st.deleted
            && st.hold > 0
            && let Some(snapshot) = st.snapshot.clone()
        {
            let status = st.observe();
            let xml = format!(
                "<DescribeStacksResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><DescribeStacksResult>\
                 <Stacks>{snapshot}</Stacks></DescribeStacksResult><ResponseMetadata><RequestId>{}</RequestId>\
                 </ResponseMetadata></DescribeStacksResponse>",
                request_id()
            );
            let (xml, _) = rewrite_statuses(&xml, |_, _| status.clone());
            return (Reply::new(StatusCode::OK, "text/xml", xml), true);
        }
        return (reply, false);
    }
    let text = reply.text();
    let (xml, statuses) = rewrite_statuses(&text, |name, id| {
        let st = model.stacks.get_mut(&(account.clone(), name.to_string()))?;
        if !st.stack_id.is_empty() && st.stack_id != id {
            return None;
        }
        st.observe()
    });
    let (xml, times) = add_last_updated(&xml, |name, id| {
        let st = model.stacks.get(&(account.clone(), name.to_string()))?;
        if !st.stack_id.is_empty() && st.stack_id != id {
            return None;
        }
        st.updated.clone()
    });
    let changed = statuses || times;
    if !changed {
        return (reply, false);
    }
    let mut reply = reply;
    reply.body = xml.into();
    (reply, true)
}

/// Registers the CodePipeline pipelines and SageMaker monitoring schedules of a stack moto has
/// just created or updated (moto skips both resource types), resolving their properties against
/// the stack's parameters; drops those the template no longer has.
pub async fn register(shared: &Shared, model: &mut Model, account: &str, creds: &Creds, stack: &str) {
    let call =
        |action: &str| vec![("Action".to_string(), action.to_string()), ("StackName".to_string(), stack.to_string())];
    let t = shared.moto_query(creds, "cloudformation", &call("GetTemplate")).await;
    let Some(body) = xml_text(&t.text(), "TemplateBody") else { return };
    let tpl = match template::parse(&body) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("[aws-front] stack {stack}: {e}");
            return;
        }
    };
    let pipelines = template::resources_of_type(&tpl, "AWS::CodePipeline::Pipeline");
    let schedules = template::resources_of_type(&tpl, "AWS::SageMaker::MonitoringSchedule");
    if pipelines.is_empty() && schedules.is_empty() {
        codepipeline::unregister_stack(model, account, stack, &[]);
        sagemaker::unregister_stack(model, account, stack, &[]);
        return;
    }
    let d = shared.moto_query(creds, "cloudformation", &call("DescribeStacks")).await.text();
    let mut given = HashMap::new();
    let mut stack_id = String::new();
    if let Ok(doc) = roxmltree::Document::parse(&d) {
        stack_id =
            doc.descendants().find(|n| n.has_tag_name("StackId")).and_then(|n| n.text()).unwrap_or_default().into();
        if let Some(ps) = doc.descendants().find(|n| n.has_tag_name("Parameters")) {
            for m in ps.children().filter(|c| c.has_tag_name("member")) {
                let get = |t: &str| m.children().find(|c| c.has_tag_name(t)).and_then(|c| c.text()).unwrap_or_default();
                given.insert(get("ParameterKey").to_string(), get("ParameterValue").to_string());
            }
        }
    }
    let r = shared.moto_query(creds, "cloudformation", &call("DescribeStackResources")).await.text();
    let mut physical = HashMap::new();
    if let Ok(doc) = roxmltree::Document::parse(&r) {
        for m in doc.descendants().filter(|n| n.has_tag_name("member")) {
            let get = |t: &str| m.children().find(|c| c.has_tag_name(t)).and_then(|c| c.text()).map(str::to_string);
            if let (Some(l), Some(p)) = (get("LogicalResourceId"), get("PhysicalResourceId")) {
                physical.insert(l, p);
            }
        }
    }
    let ctx = Ctx::new(&tpl, &given, stack, &stack_id, account, REGION, physical);
    let suffix = || uuid::Uuid::new_v4().simple().to_string()[..12].to_ascii_uppercase();

    let mut kept = Vec::new();
    for (logical, res) in pipelines {
        if !ctx.resource_enabled(res) {
            continue;
        }
        let props = res.get("Properties").and_then(|p| ctx.resolve(p)).unwrap_or(Value::Null);
        let existing = model
            .pipelines
            .values()
            .find(|p| p.account == account && p.stack.as_deref() == Some(stack) && p.logical_id == logical)
            .map(|p| p.name.clone());
        let fallback = existing.unwrap_or_else(|| format!("{stack}-{logical}-{}", suffix()));
        let decl = codepipeline::declaration_from_cfn(&props, &fallback);
        let name = decl["name"].as_str().unwrap_or_default().to_string();
        codepipeline::register(shared, model, account, Some((stack, logical)), decl).await;
        kept.push(name);
    }
    codepipeline::unregister_stack(model, account, stack, &kept);

    let mut kept = Vec::new();
    for (logical, res) in schedules {
        if !ctx.resource_enabled(res) {
            continue;
        }
        let mut props = res.get("Properties").and_then(|p| ctx.resolve(p)).unwrap_or(Value::Null);
        // DescribeMonitoringSchedule names the endpoint of the job definition it runs.
        if props.get("EndpointName").is_none()
            && let Some(endpoint) = job_definition_endpoint(&tpl, &ctx, &props)
        {
            props["EndpointName"] = Value::String(endpoint);
        }
        let fallback = format!("{stack}-{logical}");
        kept.push(sagemaker::register_from_cfn(model, account, stack, &props, &fallback));
    }
    sagemaker::unregister_stack(model, account, stack, &kept);
}

/// The endpoint of the template's job definition that a schedule's `MonitoringJobDefinitionName`
/// names (moto skips job definitions too).
fn job_definition_endpoint(tpl: &Value, ctx: &Ctx<'_>, schedule: &Value) -> Option<String> {
    let wanted = schedule.pointer("/MonitoringScheduleConfig/MonitoringJobDefinitionName")?.as_str()?;
    fn find_endpoint(v: &Value) -> Option<String> {
        match v {
            Value::Object(m) => m
                .get("EndpointInput")
                .and_then(|e| e.get("EndpointName"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| m.values().find_map(find_endpoint)),
            Value::Array(a) => a.iter().find_map(find_endpoint),
            _ => None,
        }
    }
    let resources = tpl.get("Resources")?.as_object()?;
    resources.iter().find_map(|(logical, res)| {
        let ty = res.get("Type")?.as_str()?;
        if !(ty.starts_with("AWS::SageMaker::") && ty.ends_with("JobDefinition")) {
            return None;
        }
        let name = ctx.resolve(&serde_json::json!({ "Ref": logical }))?;
        if name.as_str().and_then(|n| n.rsplit('/').next()) != Some(wanted.rsplit('/').next().unwrap_or(wanted)) {
            return None;
        }
        find_endpoint(&ctx.resolve(res.get("Properties")?)?)
    })
}

/// Status, reason and StackId of a stack as a deploy action sees it: the front's view (`consume`:
/// counts as one observation of a hold; else only a scripted final status), then moto's.
/// None: the stack does not exist.
pub async fn stack_status(
    shared: &Shared,
    model: &mut Model,
    account: &str,
    creds: &Creds,
    stack: &str,
    consume: bool,
) -> Option<(String, Option<String>, String)> {
    let reply = shared
        .moto_query(
            creds,
            "cloudformation",
            &[("Action".into(), "DescribeStacks".into()), ("StackName".into(), stack.into())],
        )
        .await;
    let key = (account.to_string(), stack.to_string());
    if !reply.is_success() {
        let st = model.stacks.get_mut(&key)?;
        if consume && st.deleted && st.hold > 0 {
            let (s, r) = st.observe()?;
            return Some((s, r, st.stack_id.clone()));
        }
        return None;
    }
    let text = reply.text();
    let moto_status = xml_text(&text, "StackStatus").unwrap_or_default();
    let moto_reason = xml_text(&text, "StackStatusReason");
    let stack_id = xml_text(&text, "StackId").unwrap_or_default();
    match model.stacks.get_mut(&key).filter(|st| st.stack_id.is_empty() || st.stack_id == stack_id) {
        Some(st) => {
            let seen = if consume { st.observe() } else { st.outcome.clone().map(|(s, r)| (s, Some(r))) };
            match seen {
                Some((s, r)) => Some((s, r, stack_id)),
                None => Some((moto_status, moto_reason, stack_id)),
            }
        }
        None => Some((moto_status, moto_reason, stack_id)),
    }
}
