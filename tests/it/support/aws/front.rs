//! The loopback "AWS front": one axum server that the code under test uses as its single
//! `endpoint_url`. It routes each request by the SigV4 credential scope (`…/REGION/SERVICE/
//! aws4_request`), answers what moto lacks itself (CodePipeline runtime, the CodePipeline and
//! MonitoringSchedule resources of CloudFormation templates, SageMaker monitoring schedules,
//! scripted stack/endpoint progress, throttling) and forwards everything else to moto unchanged.
//!
//! Control for tests: the [`Front`] handle, or the same over HTTP under `/_front/` (not an AWS
//! path): `GET /_front/calls`, `GET /_front/pipelines`, `GET /_front/schedules`,
//! `POST /_front/advance?steps=N`, `POST /_front/behaviour` with a [`Behaviour`] as JSON (e.g.
//! `{"kind": "hold_stack", "stack": "s", "describes": 3}`), `POST /_front/reset`.

use super::sigv4::{self, Creds};
use super::{cloudformation, codepipeline, sagemaker};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// Seconds since the epoch as AWS JSON 1.1 timestamps are written.
pub fn now_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An HTTP answer, from moto or made here.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        headers.insert("x-amzn-requestid", HeaderValue::from_str(&request_id()).unwrap());
        Reply { status, headers, body: body.into() }
    }

    /// An AWS JSON 1.1 answer.
    pub fn json(value: &Value) -> Reply {
        Reply::new(StatusCode::OK, "application/x-amz-json-1.1", value.to_string())
    }

    /// An AWS JSON 1.1 error: HTTP 400 `{"__type": …, "message": …}`.
    pub fn json_error(error_type: &str, message: &str) -> Reply {
        Reply::new(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            json!({ "__type": error_type, "message": message }).to_string(),
        )
    }

    /// An AWS query-protocol error (`<ErrorResponse><Error><Code>…`), as CloudFormation sends.
    pub fn query_error(status: StatusCode, code: &str, message: &str) -> Reply {
        let body = format!(
            "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><Error><Type>Sender</Type>\
             <Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml_escape(code),
            xml_escape(message),
            request_id()
        );
        Reply::new(status, "text/xml", body)
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    fn bad_gateway(message: String) -> Reply {
        Reply::new(StatusCode::BAD_GATEWAY, "text/plain", message)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::from(self.body));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// One request as the front received it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: Method,
    /// The raw (percent-encoded) path.
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub service: String,
    pub op: String,
    pub access_key: String,
    pub account: String,
    /// Query-protocol parameters (URL query plus a form body).
    pub params: Vec<(String, String)>,
    /// A JSON-protocol body.
    pub json: Option<Value>,
}

impl Incoming {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Credentials that make moto pick the caller's account (moto reads the access key only).
    pub fn creds(&self) -> Creds {
        Creds { access_key: self.access_key.clone(), secret_key: "unused".into(), session_token: None }
    }

    /// For S3 path-style requests: (bucket, key), decoded.
    pub fn s3_bucket_key(&self) -> (Option<String>, Option<String>) {
        let path = self.path.trim_start_matches('/');
        if path.is_empty() {
            return (None, None);
        }
        match path.split_once('/') {
            Some((b, k)) if !k.is_empty() => (Some(sigv4::uri_decode(b, false)), Some(sigv4::uri_decode(k, false))),
            Some((b, _)) => (Some(sigv4::uri_decode(b, false)), None),
            None => (Some(sigv4::uri_decode(path, false)), None),
        }
    }

    pub fn query_has(&self, name: &str) -> bool {
        sigv4::parse_query(&self.query).iter().any(|(k, _)| k == name)
    }
}

/// A request the front received, with the answer it gave.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedCall {
    pub seq: u64,
    pub service: String,
    pub op: String,
    pub account: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// JSON body (JSON protocols), the parameters as an object (query protocol), or null.
    pub request: Value,
    /// JSON body, or the text of an XML answer (cut at 64 KiB), or null.
    pub response: Value,
    /// Answered by the front itself (not forwarded to moto as is).
    pub by_front: bool,
}

/// Test-controlled behaviours (also settable as JSON through `POST /_front/behaviour`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behaviour {
    /// The next `count` calls of `service`/`op` (e.g. `cloudformation`/`DescribeStacks`) fail
    /// with throttling (CloudFormation `Throttling`, JSON services `ThrottlingException`,
    /// S3 `SlowDown`).
    Throttle { service: String, op: String, count: u32 },
    /// The next `count` calls of `service`/`op` fail with the AWS error `code` (a client error,
    /// e.g. `AccessDeniedException`), in the service's protocol.
    Fail { service: String, op: String, code: String, count: u32 },
    /// The next create/update/delete of stack `stack` shows `*_IN_PROGRESS` for `describes`
    /// observations (each `DescribeStacks` that includes it, and each poll of a deploy action).
    HoldStack { stack: String, describes: u32 },
    /// The next `CreateStack` of `stack` ends in `ROLLBACK_COMPLETE` with `reason`.
    FailStackCreate { stack: String, reason: String },
    /// The next `UpdateStack` of `stack` ends in `UPDATE_ROLLBACK_COMPLETE` with `reason`.
    FailStackUpdate { stack: String, reason: String },
    /// The next `DeleteStack` of `stack` ends in `DELETE_FAILED` with `reason` (the stack stays).
    FailStackDelete { stack: String, reason: String },
    /// `DescribeEndpoint` of endpoints named `endpoint` (or starting with it when it ends in `*`)
    /// reports these statuses, one per call, then moto's answer (`Failed` adds a FailureReason).
    ScriptEndpoint { endpoint: String, statuses: Vec<String> },
    /// How many clock steps a running (non-approval) action takes; default 1.
    StepsPerAction { steps: u32 },
    /// Whether each `GetPipelineState` advances that pipeline one step; default true.
    AutoAdvance { enabled: bool },
}

#[derive(Debug, Default)]
pub struct Behaviours {
    pub throttles: HashMap<(String, String), u32>,
    pub failures: HashMap<(String, String), (String, u32)>,
    pub holds: HashMap<String, u32>,
    pub fail_create: HashMap<String, String>,
    pub fail_update: HashMap<String, String>,
    pub fail_delete: HashMap<String, String>,
    pub endpoint_scripts: Vec<(String, VecDeque<String>)>,
    pub steps_per_action: u32,
    pub auto_advance: bool,
}

/// Everything the front models, behind one async lock (held across calls to moto, never across
/// a call to the front itself).
#[derive(Debug)]
pub struct Model {
    pub behaviours: Behaviours,
    /// (account, pipeline name) → pipeline.
    pub pipelines: BTreeMap<(String, String), codepipeline::Pipeline>,
    /// (account, stack name) → what the front adds to moto's view of a stack.
    pub stacks: HashMap<(String, String), cloudformation::StackState>,
    /// (account, schedule name) → monitoring schedule.
    pub schedules: BTreeMap<(String, String), sagemaker::Schedule>,
    /// Model-card export job ARN → its `DescribeModelCardExportJob` answer (moto has none).
    pub card_exports: BTreeMap<String, Value>,
    pub next_execution: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            behaviours: Behaviours { steps_per_action: 1, auto_advance: true, ..Default::default() },
            pipelines: BTreeMap::new(),
            stacks: HashMap::new(),
            schedules: BTreeMap::new(),
            card_exports: BTreeMap::new(),
            next_execution: 0,
        }
    }
}

pub struct Shared {
    pub moto_url: String,
    pub http: reqwest::Client,
    pub calls: Mutex<Vec<RecordedCall>>,
    pub model: tokio::sync::Mutex<Model>,
    /// Access key → account, learned from STS `AssumeRole` answers that passed through or that
    /// the front obtained itself; unknown keys are moto's default account.
    pub keys: Mutex<HashMap<String, String>>,
    /// Role ARN → credentials the front assumed for cross-account deploys.
    pub assumed: Mutex<HashMap<String, Creds>>,
    seq: AtomicU64,
    pub log: bool,
}

const HOP_BY_HOP: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

impl Shared {
    pub fn account_of_key(&self, access_key: &str) -> String {
        self.keys.lock().unwrap().get(access_key).cloned().unwrap_or_else(|| DEFAULT_ACCOUNT.to_string())
    }

    /// Sends the request to moto unchanged.
    pub async fn forward(&self, inc: &Incoming) -> Reply {
        let url = if inc.query.is_empty() {
            format!("{}{}", self.moto_url, inc.path)
        } else {
            format!("{}{}?{}", self.moto_url, inc.path, inc.query)
        };
        let mut rb = self.http.request(inc.method.clone(), url);
        for (k, v) in &inc.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                rb = rb.header(k, v);
            }
        }
        match rb.body(inc.body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                let mut reply = Reply { status, headers: HeaderMap::new(), body };
                for (k, v) in &headers {
                    let name = k.as_str();
                    if HOP_BY_HOP.contains(&name) && !(name == "content-length" && inc.method == Method::HEAD) {
                        continue;
                    }
                    reply.headers.append(k.clone(), v.clone());
                }
                reply
            }
            Err(e) => Reply::bad_gateway(format!("aws front: moto unreachable: {e}")),
        }
    }

    /// A query-protocol call (CloudFormation, STS, IAM) of the front's own to moto.
    pub async fn moto_query(&self, creds: &Creds, service: &str, params: &[(String, String)]) -> Reply {
        let body = sigv4::encode_form(params);
        self.moto_send(
            creds,
            service,
            Method::POST,
            "/",
            "",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }

    /// A signed request of the front's own to moto, with its body.
    #[allow(clippy::too_many_arguments)]
    pub async fn moto_send(
        &self,
        creds: &Creds,
        service: &str,
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let body: Bytes = body.into();
        let host = self.moto_url.trim_start_matches("http://").to_string();
        let signed = sigv4::sign(
            creds,
            REGION,
            service,
            method.as_str(),
            &host,
            path,
            query,
            headers,
            &body,
            chrono::Utc::now(),
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.moto_url)
        } else {
            format!("{}{path}?{query}", self.moto_url)
        };
        let mut rb = self.http.request(method.clone(), url);
        for (k, v) in headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(signed) {
            rb = rb.header(k, v);
        }
        match rb.body(body).send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                let mut reply = Reply { status, headers: HeaderMap::new(), body };
                for (k, v) in &headers {
                    if !HOP_BY_HOP.contains(&k.as_str()) {
                        reply.headers.append(k.clone(), v.clone());
                    }
                }
                reply
            }
            Err(e) => Reply::bad_gateway(format!("aws front: moto unreachable: {e}")),
        }
    }

    /// Credentials in the account of `role_arn`: STS `AssumeRole` against moto (moto keys its
    /// state by account and maps the returned access key to the role's account).
    pub async fn assume_role(&self, role_arn: &str) -> Result<Creds, String> {
        if let Some(c) = self.assumed.lock().unwrap().get(role_arn) {
            return Ok(c.clone());
        }
        let params = vec![
            ("Action".to_string(), "AssumeRole".to_string()),
            ("Version".to_string(), "2011-06-15".to_string()),
            ("RoleArn".to_string(), role_arn.to_string()),
            ("RoleSessionName".to_string(), "codepipeline-front".to_string()),
        ];
        let reply = self.moto_query(&Creds::testing(), "sts", &params).await;
        if !reply.is_success() {
            return Err(format!("AssumeRole {role_arn}: {} {}", reply.status, reply.text()));
        }
        let text = reply.text();
        let access_key = xml_text(&text, "AccessKeyId").ok_or("AssumeRole: no AccessKeyId")?;
        let secret_key = xml_text(&text, "SecretAccessKey").ok_or("AssumeRole: no SecretAccessKey")?;
        let session_token = xml_text(&text, "SessionToken");
        let creds = Creds { access_key, secret_key, session_token };
        if let Some(account) = arn_account(role_arn) {
            self.keys.lock().unwrap().insert(creds.access_key.clone(), account);
        }
        self.assumed.lock().unwrap().insert(role_arn.to_string(), creds.clone());
        Ok(creds)
    }

    /// Credentials for an account: `testing` for the default one, else an assumed role there.
    pub async fn creds_for_account(&self, account: &str) -> Creds {
        if account == DEFAULT_ACCOUNT {
            return Creds::testing();
        }
        let known = self.keys.lock().unwrap().iter().find(|(_, a)| a.as_str() == account).map(|(k, _)| k.clone());
        match known {
            Some(access_key) => Creds { access_key, secret_key: "unused".into(), session_token: None },
            None => self
                .assume_role(&format!("arn:aws:iam::{account}:role/aws-front"))
                .await
                .unwrap_or_else(|_| Creds::testing()),
        }
    }

    fn record(&self, mut call: RecordedCall) {
        call.seq = self.seq.fetch_add(1, Ordering::SeqCst);
        if self.log {
            eprintln!(
                "[aws-front] #{} {} {} ({}) -> {}{}",
                call.seq,
                call.service,
                call.op,
                call.account,
                call.status,
                if call.by_front { " [front]" } else { "" }
            );
        }
        self.calls.lock().unwrap().push(call);
    }
}

/// The account of an ARN (`arn:aws:iam::111111111111:role/x` → `111111111111`).
pub fn arn_account(arn: &str) -> Option<String> {
    let a = arn.split(':').nth(4)?;
    (!a.is_empty()).then(|| a.to_string())
}

/// The text of the first element named `tag` in an XML document (unescaped).
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants().find(|n| n.has_tag_name(tag)).map(|n| n.text().unwrap_or_default().to_string())
}

/// The service and operation of a request (for routing, throttling and the call log).
fn identify(
    method: &Method,
    headers: &HeaderMap,
    query: &str,
    body: &Bytes,
) -> (String, String, String, Vec<(String, String)>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let scope = sigv4::scope_of(auth, Some(query));
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let service = match (&scope, target) {
        (Some(s), _) => s.service.clone(),
        (None, Some(t)) if t.starts_with("CodePipeline_") => "codepipeline".into(),
        (None, Some(t)) if t.starts_with("SageMaker.") => "sagemaker".into(),
        _ => String::new(),
    };
    let access_key = scope.map(|s| s.access_key).unwrap_or_default();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut params = Vec::new();
    if service != "s3" && !query.is_empty() {
        params.extend(sigv4::parse_query(query));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params.extend(sigv4::parse_query(&String::from_utf8_lossy(body)));
    }
    let op = if let Some(t) = target {
        t.rsplit('.').next().unwrap_or(t).to_string()
    } else if let Some((_, a)) = params.iter().find(|(k, _)| k == "Action") {
        a.clone()
    } else if service == "s3" {
        String::new() // filled in by s3_op
    } else {
        format!("{method}")
    };
    (service, op, access_key, params)
}

/// A readable name for an S3 REST call (for the call log and throttling only).
fn s3_op(inc: &Incoming) -> String {
    let (bucket, key) = inc.s3_bucket_key();
    let sub = sigv4::parse_query(&inc.query)
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| !k.starts_with("X-Amz-") && !k.starts_with("x-id") && k != "versionId" && k != "prefix")
        .unwrap_or_default();
    let m = inc.method.as_str();
    match (bucket, key) {
        (None, _) => "ListBuckets".into(),
        (Some(_), Some(_)) => match m {
            "GET" => "GetObject".into(),
            "HEAD" => "HeadObject".into(),
            "DELETE" => "DeleteObject".into(),
            "PUT" if inc.header("x-amz-copy-source").is_some() => "CopyObject".into(),
            "PUT" if sub == "partNumber" || sub == "uploadId" => "UploadPart".into(),
            "PUT" => "PutObject".into(),
            "POST" if sub == "uploads" => "CreateMultipartUpload".into(),
            "POST" if sub == "uploadId" => "CompleteMultipartUpload".into(),
            _ => format!("{m}Object"),
        },
        (Some(_), None) => match (m, sub.as_str()) {
            ("PUT", "") => "CreateBucket".into(),
            ("DELETE", "") => "DeleteBucket".into(),
            ("HEAD", _) => "HeadBucket".into(),
            ("GET", "") | ("GET", "list-type") => "ListObjects".into(),
            (m, s) => {
                let mut cs = s.chars();
                let s = cs.next().map(|c| c.to_ascii_uppercase().to_string() + cs.as_str()).unwrap_or_default();
                format!(
                    "{}Bucket{s}",
                    if m == "GET" {
                        "Get"
                    } else if m == "PUT" {
                        "Put"
                    } else {
                        m
                    }
                )
            }
        },
    }
}

fn throttled(service: &str) -> Reply {
    match service {
        "s3" => {
            let mut r = Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your \
                     request rate.</Message><RequestId>{}</RequestId></Error>",
                    request_id()
                ),
            );
            r.headers.remove("x-amzn-requestid");
            r
        }
        "codepipeline" | "sagemaker" | "events" | "ecr" => Reply::json_error("ThrottlingException", "Rate exceeded"),
        _ => Reply::query_error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
    }
}

/// A client error `code` in the service's protocol.
fn failed(service: &str, code: &str) -> Reply {
    let message = format!("injected {code} (test behaviour)");
    match service {
        "codepipeline" | "sagemaker" | "events" | "ecr" => Reply::json_error(code, &message),
        _ => Reply::query_error(StatusCode::FORBIDDEN, code, &message),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 30).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    if let Some(rest) = path.strip_prefix("/_front/") {
        return control(&shared, parts.method, rest, &query, body).await;
    }
    let (service, op, access_key, params) = identify(&parts.method, &parts.headers, &query, &body);
    let account = match parts.headers.get("x-moto-account-id").and_then(|v| v.to_str().ok()) {
        Some(a) => a.to_string(),
        None => shared.account_of_key(&access_key),
    };
    let json = if params.is_empty() && service != "s3" { serde_json::from_slice(&body).ok() } else { None };
    let mut inc = Incoming {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        service,
        op,
        access_key,
        account,
        params,
        json,
    };
    if inc.service == "s3" {
        inc.op = s3_op(&inc);
    }

    let (throttle, failure) = {
        let mut model = shared.model.lock().await;
        let key = (inc.service.clone(), inc.op.clone());
        let throttle = match model.behaviours.throttles.get_mut(&key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let failure = match model.behaviours.failures.get_mut(&key) {
            Some((code, n)) if *n > 0 => {
                *n -= 1;
                Some(code.clone())
            }
            _ => None,
        };
        (throttle, failure)
    };
    let (reply, by_front) = if throttle {
        (throttled(&inc.service), true)
    } else if let Some(code) = failure {
        (failed(&inc.service, &code), true)
    } else {
        match inc.service.as_str() {
            "codepipeline" => codepipeline::handle(&shared, &inc).await,
            "cloudformation" => cloudformation::handle(&shared, &inc).await,
            "sagemaker" => sagemaker::handle(&shared, &inc).await,
            "s3" => (s3(&shared, &inc).await, false),
            "sts" => (sts(&shared, &inc).await, false),
            _ => (shared.forward(&inc).await, false),
        }
    };
    let request = match (&inc.json, inc.params.is_empty()) {
        (Some(j), _) => j.clone(),
        (None, false) => Value::Object(inc.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        _ => Value::Null,
    };
    let response = match reply.json_body() {
        Some(j) => j,
        None if reply.body.len() <= 64 * 1024 && !reply.body.is_empty() && inc.op != "GetObject" => {
            Value::String(reply.text())
        }
        None => Value::Null,
    };
    shared.record(RecordedCall {
        seq: 0,
        service: if inc.service.is_empty() { "-".into() } else { inc.service.clone() },
        op: inc.op.clone(),
        account: inc.account.clone(),
        method: inc.method.to_string(),
        path: inc.path.clone(),
        status: reply.status.as_u16(),
        request,
        response,
        by_front,
    });
    reply.into_response()
}

/// S3 goes to moto; a successful write of a pipeline's source object starts an execution.
async fn s3(shared: &Arc<Shared>, inc: &Incoming) -> Reply {
    let reply = shared.forward(inc).await;
    let writes = matches!(inc.op.as_str(), "PutObject" | "CopyObject" | "CompleteMultipartUpload");
    if writes
        && reply.is_success()
        && let (Some(bucket), Some(key)) = inc.s3_bucket_key()
    {
        let version = reply.header("x-amz-version-id");
        let mut model = shared.model.lock().await;
        codepipeline::source_changed(shared, &mut model, &inc.account, &bucket, &key, version).await;
    }
    reply
}

/// STS goes to moto; the front learns which account an assumed role's access key belongs to.
async fn sts(shared: &Arc<Shared>, inc: &Incoming) -> Reply {
    let reply = shared.forward(inc).await;
    if inc.op.starts_with("AssumeRole") && reply.is_success() {
        let text = reply.text();
        if let (Some(key), Some(arn)) = (xml_text(&text, "AccessKeyId"), inc.param("RoleArn"))
            && let Some(account) = arn_account(arn)
        {
            shared.keys.lock().unwrap().insert(key, account);
        }
    }
    reply
}

async fn control(shared: &Arc<Shared>, method: Method, rest: &str, query: &str, body: Bytes) -> Response {
    let q = sigv4::parse_query(query);
    let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    match (method, rest) {
        (Method::GET, "calls") => {
            let calls: Vec<RecordedCall> = shared
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| get("service").is_none_or(|s| s == c.service))
                .filter(|c| get("op").is_none_or(|o| o == c.op))
                .cloned()
                .collect();
            ok(json!(calls))
        }
        (Method::GET, "pipelines") => {
            let model = shared.model.lock().await;
            ok(json!(model.pipelines.values().map(codepipeline::Pipeline::view).collect::<Vec<_>>()))
        }
        (Method::GET, "schedules") => {
            let model = shared.model.lock().await;
            ok(json!(model.schedules.values().map(sagemaker::Schedule::describe).collect::<Vec<_>>()))
        }
        (Method::POST, "advance") => {
            let steps = get("steps").and_then(|s| s.parse().ok()).unwrap_or(1);
            let mut model = shared.model.lock().await;
            for _ in 0..steps {
                codepipeline::advance_all(shared, &mut model).await;
            }
            ok(json!({ "advanced": steps }))
        }
        (Method::POST, "behaviour") => match serde_json::from_slice::<Behaviour>(&body) {
            Ok(b) => {
                apply_behaviour(&mut *shared.model.lock().await, b);
                ok(json!({ "ok": true }))
            }
            Err(e) => (StatusCode::BAD_REQUEST, format!("bad behaviour: {e}")).into_response(),
        },
        (Method::POST, "reset") => {
            *shared.model.lock().await = Model::new();
            shared.calls.lock().unwrap().clear();
            ok(json!({ "ok": true }))
        }
        _ => (StatusCode::NOT_FOUND, "unknown /_front/ endpoint").into_response(),
    }
}

pub fn apply_behaviour(model: &mut Model, b: Behaviour) {
    let bh = &mut model.behaviours;
    match b {
        Behaviour::Throttle { service, op, count } => {
            bh.throttles.insert((service, op), count);
        }
        Behaviour::Fail { service, op, code, count } => {
            bh.failures.insert((service, op), (code, count));
        }
        Behaviour::HoldStack { stack, describes } => {
            bh.holds.insert(stack, describes);
        }
        Behaviour::FailStackCreate { stack, reason } => {
            bh.fail_create.insert(stack, reason);
        }
        Behaviour::FailStackUpdate { stack, reason } => {
            bh.fail_update.insert(stack, reason);
        }
        Behaviour::FailStackDelete { stack, reason } => {
            bh.fail_delete.insert(stack, reason);
        }
        Behaviour::ScriptEndpoint { endpoint, statuses } => {
            bh.endpoint_scripts.push((endpoint, statuses.into()));
        }
        Behaviour::StepsPerAction { steps } => bh.steps_per_action = steps.max(1),
        Behaviour::AutoAdvance { enabled } => bh.auto_advance = enabled,
    }
}

/// Aborts the server task when the last handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A handle on a running front.
#[derive(Clone)]
pub struct Front {
    url: String,
    pub(crate) shared: Arc<Shared>,
    _task: Arc<AbortOnDrop>,
}

impl Front {
    /// Starts a front on `127.0.0.1:0` forwarding to the moto at `moto_url`.
    pub async fn start(moto_url: &str) -> Front {
        let shared = Arc::new(Shared {
            moto_url: moto_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
            calls: Mutex::new(Vec::new()),
            model: tokio::sync::Mutex::new(Model::new()),
            keys: Mutex::new(HashMap::new()),
            assumed: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
            log: std::env::var("AWS_FRONT_QUIET").is_err(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Front { url, shared, _task: Arc::new(AbortOnDrop(task)) }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The requests for one service and operation, e.g. `("codepipeline", "PutApprovalResult")`.
    pub fn calls_to(&self, service: &str, op: &str) -> Vec<RecordedCall> {
        self.calls().into_iter().filter(|c| c.service == service && c.op == op).collect()
    }

    pub async fn set(&self, b: Behaviour) {
        apply_behaviour(&mut *self.shared.model.lock().await, b);
    }

    pub async fn throttle(&self, service: &str, op: &str, count: u32) {
        self.set(Behaviour::Throttle { service: service.into(), op: op.into(), count }).await
    }

    pub async fn fail(&self, service: &str, op: &str, code: &str, count: u32) {
        self.set(Behaviour::Fail { service: service.into(), op: op.into(), code: code.into(), count }).await
    }

    pub async fn hold_stack(&self, stack: &str, describes: u32) {
        self.set(Behaviour::HoldStack { stack: stack.into(), describes }).await
    }

    pub async fn fail_stack_create(&self, stack: &str, reason: &str) {
        self.set(Behaviour::FailStackCreate { stack: stack.into(), reason: reason.into() }).await
    }

    pub async fn fail_stack_update(&self, stack: &str, reason: &str) {
        self.set(Behaviour::FailStackUpdate { stack: stack.into(), reason: reason.into() }).await
    }

    pub async fn fail_stack_delete(&self, stack: &str, reason: &str) {
        self.set(Behaviour::FailStackDelete { stack: stack.into(), reason: reason.into() }).await
    }

    pub async fn script_endpoint(&self, endpoint: &str, statuses: &[&str]) {
        let statuses = statuses.iter().map(|s| s.to_string()).collect();
        self.set(Behaviour::ScriptEndpoint { endpoint: endpoint.into(), statuses }).await
    }

    pub async fn set_steps_per_action(&self, steps: u32) {
        self.set(Behaviour::StepsPerAction { steps }).await
    }

    pub async fn set_auto_advance(&self, enabled: bool) {
        self.set(Behaviour::AutoAdvance { enabled }).await
    }

    /// Moves every running pipeline execution one step.
    pub async fn advance(&self) {
        let mut model = self.shared.model.lock().await;
        codepipeline::advance_all(&self.shared, &mut model).await;
    }

    /// The pipelines the front models, with their executions and action states.
    pub async fn pipelines(&self) -> Vec<codepipeline::PipelineView> {
        self.shared.model.lock().await.pipelines.values().map(codepipeline::Pipeline::view).collect()
    }

    pub async fn pipeline(&self, name: &str) -> Option<codepipeline::PipelineView> {
        self.pipelines().await.into_iter().find(|p| p.name == name)
    }

    /// The monitoring schedules the front models (as `DescribeMonitoringSchedule` answers).
    pub async fn schedules(&self) -> Vec<Value> {
        self.shared.model.lock().await.schedules.values().map(sagemaker::Schedule::describe).collect()
    }

    /// Forgets the model, the behaviours and the call log (pair with `Moto::reset`).
    pub async fn reset(&self) {
        *self.shared.model.lock().await = Model::new();
        self.shared.calls.lock().unwrap().clear();
        self.shared.assumed.lock().unwrap().clear();
        self.shared.keys.lock().unwrap().clear();
    }
}
