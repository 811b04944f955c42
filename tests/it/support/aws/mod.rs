//! The aws target's test environment: moto on loopback plus a stateful loopback "AWS front" that
//! fills moto's gaps (CodePipeline runtime, approvals, deploy actions that really deploy,
//! monitoring schedules, scripted stack/endpoint progress, throttling). See
//! `shared/reference/aws-testing.md` for what moto does and does not do.
//!
//! ```ignore
//! let env = AwsTestEnv::start().await;
//! // point the code under test at env.endpoint_url(), region env.region(), credentials testing/testing
//! env.create_versioned_bucket("mlops-assets").await;
//! env.front.hold_stack("my-stack", 3).await;
//! let approvals = env.front.calls_to("codepipeline", "PutApprovalResult");
//! ```
//!
//! The harness speaks the wire protocols itself (no AWS SDK), so it tests the SDK code honestly.

#![allow(dead_code)]

pub mod cloudformation;
pub mod codepipeline;
pub mod front;
pub mod moto;
pub mod sagemaker;
pub mod sigv4;
pub mod template;

#[allow(unused_imports)]
pub use codepipeline::{ActionView, ExecutionView, PipelineView};
#[allow(unused_imports)]
pub use front::{Behaviour, DEFAULT_ACCOUNT, Front, REGION, RecordedCall};
pub use moto::Moto;
pub use sigv4::Creds;

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// moto plus the front, for one test.
pub struct AwsTestEnv {
    pub front: Front,
    pub moto: Moto,
}

impl AwsTestEnv {
    pub async fn start() -> AwsTestEnv {
        let moto = Moto::start().await;
        let front = Front::start(moto.url()).await;
        AwsTestEnv { front, moto }
    }

    /// The single `endpoint_url` for every AWS client of the code under test (S3 needs
    /// `force_path_style(true)`).
    pub fn endpoint_url(&self) -> &str {
        self.front.url()
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    /// moto's default account.
    pub fn account(&self) -> &'static str {
        DEFAULT_ACCOUNT
    }

    /// Dummy credentials (`testing`/`testing`) for moto's default account.
    pub fn creds(&self) -> Creds {
        Creds::testing()
    }

    /// Sets the standard variables so an AWS SDK's default chain finds the dummy credentials.
    /// Process-wide: fine under nextest (one process per test).
    #[allow(unsafe_code)]
    pub fn export_credentials(&self) {
        // SAFETY: the test harness sets these once, before any SDK client reads them.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", REGION);
            std::env::remove_var("AWS_SESSION_TOKEN");
            std::env::remove_var("AWS_PROFILE");
        }
    }

    /// A raw, signed client of the front with the default credentials.
    pub fn client(&self) -> AwsClient {
        AwsClient::new(self.endpoint_url(), Creds::testing())
    }

    /// Wipes moto and the front (model, behaviours, call log).
    pub async fn reset(&self) {
        self.moto.reset().await;
        self.front.reset().await;
    }

    /// Creates a bucket with versioning enabled (the assets bucket must be versioned).
    pub async fn create_versioned_bucket(&self, bucket: &str) {
        let c = self.client();
        let r = c.s3("PUT", bucket, None, "", &[], Vec::new()).await;
        assert!(r.status.is_success(), "CreateBucket {bucket}: {} {}", r.status, r.text());
        let body = r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#;
        let r = c.s3("PUT", bucket, None, "versioning", &[], body.as_bytes().to_vec()).await;
        assert!(r.status.is_success(), "PutBucketVersioning {bucket}: {} {}", r.status, r.text());
    }

    /// Creates an IAM role trusting `service` (e.g. `codepipeline.amazonaws.com`); returns its ARN.
    pub async fn create_role(&self, name: &str, service: &str) -> String {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Principal": { "Service": service }, "Action": "sts:AssumeRole" }],
        });
        let r = self
            .client()
            .query(
                "iam",
                &[("Action", "CreateRole"), ("RoleName", name), ("AssumeRolePolicyDocument", &trust.to_string())],
            )
            .await;
        assert!(r.status.is_success(), "CreateRole {name}: {} {}", r.status, r.text());
        r.xml("Arn").expect("role ARN")
    }

    /// Puts an object; returns its version id.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
        let r = self.client().s3("PUT", bucket, Some(key), "", &[], body).await;
        assert!(r.status.is_success(), "PutObject {bucket}/{key}: {} {}", r.status, r.text());
        r.header("x-amz-version-id")
    }

    /// Moves the pipeline executions `n` steps.
    pub async fn advance(&self, n: u32) {
        for _ in 0..n {
            self.front.advance().await;
        }
    }
}

/// A reply as the harness's raw client sees it.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    /// Text of the first XML element named `tag`.
    pub fn xml(&self, tag: &str) -> Option<String> {
        front::xml_text(&self.text(), tag)
    }

    /// Texts of all XML elements named `tag`.
    pub fn xml_all(&self, tag: &str) -> Vec<String> {
        let text = self.text();
        let Ok(doc) = roxmltree::Document::parse(&text) else { return Vec::new() };
        doc.descendants().filter(|n| n.has_tag_name(tag)).map(|n| n.text().unwrap_or_default().to_string()).collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// `__type` of a JSON error (without a `prefix#`) or `Code` of an XML error.
    pub fn error_code(&self) -> Option<String> {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            return v["__type"].as_str().map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
        }
        self.xml("Code")
    }
}

/// A minimal AWS client speaking the wire protocols (query, JSON 1.1, S3 REST) with SigV4.
#[derive(Clone)]
pub struct AwsClient {
    endpoint: String,
    creds: Creds,
    http: reqwest::Client,
}

fn query_version(service: &str) -> &'static str {
    match service {
        "cloudformation" => "2010-05-15",
        "sts" => "2011-06-15",
        "iam" => "2010-05-08",
        "sns" => "2010-03-31",
        _ => "",
    }
}

impl AwsClient {
    pub fn new(endpoint: &str, creds: Creds) -> AwsClient {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        AwsClient { endpoint: endpoint.trim_end_matches('/').to_string(), creds, http }
    }

    pub fn with_creds(&self, creds: Creds) -> AwsClient {
        AwsClient { creds, ..self.clone() }
    }

    async fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawReply {
        let host = self.endpoint.trim_start_matches("http://");
        let signed =
            sigv4::sign(&self.creds, REGION, service, method, host, path, query, headers, &body, chrono::Utc::now());
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut rb = self.http.request(method.parse().unwrap(), url);
        for (k, v) in headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(signed) {
            rb = rb.header(k, v);
        }
        let resp = rb.body(body).send().await.unwrap_or_else(|e| panic!("{service} {method} {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap().to_vec();
        RawReply { status, headers, body }
    }

    /// A query-protocol call (`Action=…`): CloudFormation, STS, IAM, SNS.
    pub async fn query(&self, service: &str, params: &[(&str, &str)]) -> RawReply {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "Version") {
            pairs.push(("Version", query_version(service)));
        }
        let body = sigv4::encode_form(&pairs);
        self.send(
            service,
            "POST",
            "/",
            "",
            &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
            body.into_bytes(),
        )
        .await
    }

    /// An AWS JSON 1.1 call: `target` like `CodePipeline_20150709.GetPipelineState`.
    pub async fn json(&self, service: &str, target: &str, body: &Value) -> RawReply {
        self.send(
            service,
            "POST",
            "/",
            "",
            &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)],
            body.to_string().into_bytes(),
        )
        .await
    }

    /// A CodePipeline call.
    pub async fn codepipeline(&self, op: &str, body: Value) -> RawReply {
        self.json("codepipeline", &format!("CodePipeline_20150709.{op}"), &body).await
    }

    /// A SageMaker call.
    pub async fn sagemaker(&self, op: &str, body: Value) -> RawReply {
        self.json("sagemaker", &format!("SageMaker.{op}"), &body).await
    }

    /// A CloudFormation call.
    pub async fn cloudformation(&self, params: &[(&str, &str)]) -> RawReply {
        self.query("cloudformation", params).await
    }

    /// A path-style S3 call: `key` None for bucket operations, `subresource` like `versioning`.
    pub async fn s3(
        &self,
        method: &str,
        bucket: &str,
        key: Option<&str>,
        query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawReply {
        let path = match key {
            Some(k) => format!("/{}/{}", sigv4::uri_encode(bucket, false), sigv4::uri_encode(k, true)),
            None => format!("/{}", sigv4::uri_encode(bucket, false)),
        };
        let query = if query.is_empty() || query.contains('=') { query.to_string() } else { format!("{query}=") };
        self.send("s3", method, &path, &query, headers, body).await
    }

    /// STS `AssumeRole`: credentials in the role's account.
    pub async fn assume_role(&self, role_arn: &str) -> Creds {
        let r =
            self.query("sts", &[("Action", "AssumeRole"), ("RoleArn", role_arn), ("RoleSessionName", "test")]).await;
        assert!(r.status.is_success(), "AssumeRole {role_arn}: {} {}", r.status, r.text());
        Creds {
            access_key: r.xml("AccessKeyId").unwrap(),
            secret_key: r.xml("SecretAccessKey").unwrap(),
            session_token: r.xml("SessionToken"),
        }
    }
}

/// A flat zip of (name, contents), like `template.zip`.
pub fn zip_files(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(contents.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}
