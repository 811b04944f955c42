//! SageMaker (AWS JSON 1.1, `X-Amz-Target: SageMaker.<Op>`): moto has no monitoring schedules
//! (every `*MonitoringSchedule*` call fails there) and its endpoints are `InService` at once. The
//! front keeps the schedules (registered from deployed templates, or created through the API) and
//! can script `DescribeEndpoint` statuses; everything else goes to moto.

use super::front::{Incoming, Model, REGION, Reply, Shared, now_epoch};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Schedule {
    pub account: String,
    pub name: String,
    pub stack: Option<String>,
    pub config: Value,
    pub endpoint_name: Option<String>,
    pub status: String,
    pub created: f64,
    pub modified: f64,
}

impl Schedule {
    pub fn arn(&self) -> String {
        format!("arn:aws:sagemaker:{REGION}:{}:monitoring-schedule/{}", self.account, self.name.to_ascii_lowercase())
    }

    fn monitoring_type(&self) -> String {
        self.config.get("MonitoringType").and_then(Value::as_str).unwrap_or("DataQuality").to_string()
    }

    fn job_definition_name(&self) -> Option<String> {
        self.config.get("MonitoringJobDefinitionName").and_then(Value::as_str).map(str::to_string)
    }

    /// The `DescribeMonitoringSchedule` answer.
    pub fn describe(&self) -> Value {
        let mut v = json!({
            "MonitoringScheduleArn": self.arn(),
            "MonitoringScheduleName": self.name,
            "MonitoringScheduleStatus": self.status,
            "MonitoringType": self.monitoring_type(),
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "MonitoringScheduleConfig": self.config,
        });
        if let Some(e) = &self.endpoint_name {
            v["EndpointName"] = json!(e);
        }
        v
    }

    fn summary(&self) -> Value {
        let mut v = json!({
            "MonitoringScheduleName": self.name,
            "MonitoringScheduleArn": self.arn(),
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "MonitoringScheduleStatus": self.status,
            "MonitoringType": self.monitoring_type(),
        });
        if let Some(e) = &self.endpoint_name {
            v["EndpointName"] = json!(e);
        }
        if let Some(j) = self.job_definition_name() {
            v["MonitoringJobDefinitionName"] = json!(j);
        }
        v
    }
}

fn endpoint_of(props: &Value) -> Option<String> {
    props.get("EndpointName").and_then(Value::as_str).map(str::to_string).or_else(|| {
        props
            .pointer("/MonitoringScheduleConfig/MonitoringJobDefinition/MonitoringInputs/0/EndpointInput/EndpointName")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// Registers an `AWS::SageMaker::MonitoringSchedule` from its resolved Properties; returns its name.
pub fn register_from_cfn(model: &mut Model, account: &str, stack: &str, props: &Value, fallback: &str) -> String {
    let name = props.get("MonitoringScheduleName").and_then(Value::as_str).unwrap_or(fallback).to_string();
    let now = now_epoch();
    let key = (account.to_string(), name.clone());
    let config = props.get("MonitoringScheduleConfig").cloned().unwrap_or(json!({}));
    let endpoint_name = endpoint_of(props);
    match model.schedules.get_mut(&key) {
        Some(s) => {
            if s.config != config || s.endpoint_name != endpoint_name {
                s.modified = now;
            }
            s.config = config;
            s.endpoint_name = endpoint_name;
            s.stack = Some(stack.to_string());
        }
        None => {
            model.schedules.insert(
                key,
                Schedule {
                    account: account.to_string(),
                    name: name.clone(),
                    stack: Some(stack.to_string()),
                    config,
                    endpoint_name,
                    status: "Scheduled".into(),
                    created: now,
                    modified: now,
                },
            );
        }
    }
    name
}

pub fn unregister_stack(model: &mut Model, account: &str, stack: &str, keep: &[String]) {
    model.schedules.retain(|(a, n), s| !(a == account && s.stack.as_deref() == Some(stack) && !keep.contains(n)));
}

/// moto keeps model cards but has no export jobs: the front checks the card version exists
/// (asking moto), writes a stand-in PDF where SageMaker writes the real one, and answers the
/// job `Completed`.
async fn create_card_export(shared: &Shared, inc: &Incoming, body: &Value) -> (Reply, bool) {
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (card, job) = (s("ModelCardName"), s("ModelCardExportJobName"));
    let mut describe = inc.clone();
    let question = json!({"ModelCardName": card, "ModelCardVersion": body["ModelCardVersion"]});
    describe.body = question.to_string().into();
    describe.headers.insert("x-amz-target", "SageMaker.DescribeModelCard".parse().unwrap());
    let found = shared.forward(&describe).await;
    if !found.is_success() {
        return (found, true);
    }
    let output = body.pointer("/OutputConfig/S3OutputPath").and_then(Value::as_str).unwrap_or_default();
    let (bucket, prefix) = output.strip_prefix("s3://").and_then(|o| o.split_once('/')).unwrap_or(("", ""));
    let key = format!("{prefix}/{card}/{job}/{card}.pdf");
    let put = shared
        .http
        .put(format!("{}/{bucket}/{key}", shared.moto_url))
        .body("%PDF-1.4 stand-in written by the aws test front\n")
        .send()
        .await;
    if !put.is_ok_and(|r| r.status().is_success()) {
        return (Reply::json_error("ValidationException", &format!("cannot write to {output}")), true);
    }
    let arn =
        format!("arn:aws:sagemaker:{REGION}:{}:model-card/{}/export-job/{job}", inc.account, card.to_ascii_lowercase());
    let now = now_epoch();
    let described = json!({
        "ModelCardExportJobName": job,
        "ModelCardExportJobArn": arn,
        "Status": "Completed",
        "ModelCardName": card,
        "ModelCardVersion": body["ModelCardVersion"],
        "OutputConfig": {"S3OutputPath": output},
        "CreatedAt": now,
        "LastModifiedAt": now,
        "ExportArtifacts": {"S3ExportArtifacts": format!("s3://{bucket}/{key}")},
    });
    shared.model.lock().await.card_exports.insert(arn.clone(), described);
    (Reply::json(&json!({ "ModelCardExportJobArn": arn })), true)
}

fn not_found(name: &str) -> Reply {
    Reply::json_error("ResourceNotFound", &format!("Monitoring Schedule '{name}' does not exist."))
}

pub async fn handle(shared: &Shared, inc: &Incoming) -> (Reply, bool) {
    let body = inc.json.clone().unwrap_or(json!({}));
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let account = inc.account.clone();
    match inc.op.as_str() {
        "CreateMonitoringSchedule" => {
            let mut model = shared.model.lock().await;
            let key = (account.clone(), s("MonitoringScheduleName"));
            if model.schedules.contains_key(&key) {
                return (
                    Reply::json_error("ResourceInUse", &format!("Monitoring Schedule '{}' already exists.", key.1)),
                    true,
                );
            }
            let now = now_epoch();
            let config = body.get("MonitoringScheduleConfig").cloned().unwrap_or(json!({}));
            let sched = Schedule {
                account,
                name: key.1.clone(),
                stack: None,
                endpoint_name: endpoint_of(&body),
                config,
                status: "Scheduled".into(),
                created: now,
                modified: now,
            };
            let arn = sched.arn();
            model.schedules.insert(key, sched);
            (Reply::json(&json!({ "MonitoringScheduleArn": arn })), true)
        }
        "DescribeMonitoringSchedule" => {
            let model = shared.model.lock().await;
            match model.schedules.get(&(account, s("MonitoringScheduleName"))) {
                Some(sc) => (Reply::json(&sc.describe()), true),
                None => (not_found(&s("MonitoringScheduleName")), true),
            }
        }
        "ListMonitoringSchedules" => {
            let model = shared.model.lock().await;
            let mut list: Vec<&Schedule> = model
                .schedules
                .values()
                .filter(|sc| sc.account == account)
                .filter(|sc| {
                    body.get("EndpointName").is_none() || sc.endpoint_name.as_deref() == Some(&s("EndpointName"))
                })
                .filter(|sc| sc.name.contains(&s("NameContains")))
                .filter(|sc| body.get("StatusEquals").is_none() || sc.status == s("StatusEquals"))
                .filter(|sc| {
                    body.get("MonitoringTypeEquals").is_none() || sc.monitoring_type() == s("MonitoringTypeEquals")
                })
                .filter(|sc| {
                    body.get("MonitoringJobDefinitionName").is_none()
                        || sc.job_definition_name().as_deref() == Some(&s("MonitoringJobDefinitionName"))
                })
                .collect();
            list.sort_by(|a, b| b.created.total_cmp(&a.created));
            let out: Vec<Value> = list.iter().map(|sc| sc.summary()).collect();
            (Reply::json(&json!({ "MonitoringScheduleSummaries": out })), true)
        }
        "DeleteMonitoringSchedule" => {
            let mut model = shared.model.lock().await;
            match model.schedules.remove(&(account, s("MonitoringScheduleName"))) {
                Some(_) => (Reply::json(&json!({})), true),
                None => (not_found(&s("MonitoringScheduleName")), true),
            }
        }
        "UpdateMonitoringSchedule" | "StartMonitoringSchedule" | "StopMonitoringSchedule" => {
            let mut model = shared.model.lock().await;
            let Some(sc) = model.schedules.get_mut(&(account, s("MonitoringScheduleName"))) else {
                return (not_found(&s("MonitoringScheduleName")), true);
            };
            sc.modified = now_epoch();
            match inc.op.as_str() {
                "UpdateMonitoringSchedule" => {
                    if let Some(c) = body.get("MonitoringScheduleConfig") {
                        sc.config = c.clone();
                    }
                    (Reply::json(&json!({ "MonitoringScheduleArn": sc.arn() })), true)
                }
                "StartMonitoringSchedule" => {
                    sc.status = "Scheduled".into();
                    (Reply::json(&json!({})), true)
                }
                _ => {
                    sc.status = "Stopped".into();
                    (Reply::json(&json!({})), true)
                }
            }
        }
        "ListMonitoringExecutions" => (Reply::json(&json!({ "MonitoringExecutionSummaries": [] })), true),
        "CreateModelCardExportJob" => create_card_export(shared, inc, &body).await,
        "DescribeModelCardExportJob" => {
            let model = shared.model.lock().await;
            match model.card_exports.get(&s("ModelCardExportJobArn")) {
                Some(job) => (Reply::json(job), true),
                None => (Reply::json_error("ResourceNotFound", "no such model card export job"), true),
            }
        }
        "DescribeEndpoint" => {
            let reply = shared.forward(inc).await;
            if !reply.is_success() {
                return (reply, false);
            }
            let name = s("EndpointName");
            let scripted = {
                let mut model = shared.model.lock().await;
                model
                    .behaviours
                    .endpoint_scripts
                    .iter_mut()
                    .find(|(pattern, statuses)| {
                        !statuses.is_empty()
                            && match pattern.strip_suffix('*') {
                                Some(prefix) => name.starts_with(prefix),
                                None => *pattern == name,
                            }
                    })
                    .and_then(|(_, statuses)| statuses.pop_front())
            };
            match (scripted, reply.json_body()) {
                (Some(status), Some(mut v)) => {
                    if status == "Failed" {
                        v["FailureReason"] = json!("scripted failure (aws test front)");
                    }
                    v["EndpointStatus"] = json!(status);
                    let mut r = Reply::json(&v);
                    r.status = reply.status;
                    (r, true)
                }
                _ => (reply, false),
            }
        }
        _ => (shared.forward(inc).await, false),
    }
}
