//! The `mlops` client commands (`provision`, `status`, `approve`, `delete`, `pipelines`, `invoke`,
//! `assets`): a small HTTP client over the `/v1` API. Error answers (`application/problem+json`)
//! become readable errors; connection failures name the server.

pub mod commands;
pub mod wait;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

pub use commands::{ClientCommand, run};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// JSON calls are small; uploads, downloads and invocations get no overall limit because their
/// bodies may be large.
const JSON_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and how to authenticate; shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// URL of the mlops server.
    #[arg(long, env = "MLOPS_SERVER", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,
    /// Bearer token (not needed by a `serve --dev` server).
    #[arg(long, env = "MLOPS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// As the user wrote it, for messages and for the commands we suggest.
    server: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connection: &Connection) -> anyhow::Result<Client> {
        let server = connection.server.trim_end_matches('/').to_string();
        let mut base = Url::parse(&server)
            .map_err(|e| anyhow!("--server {server:?} is not a URL ({e}); expected e.g. {DEFAULT_SERVER}"))?;
        match base.scheme() {
            "http" | "https" => {}
            _ => bail!("--server {server:?} is not an http:// or https:// URL; expected e.g. {DEFAULT_SERVER}"),
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            bail!("--server {server:?} has no host; expected e.g. {DEFAULT_SERVER}");
        }
        // A server behind a path prefix (`http://host/mlops`) keeps it.
        base.path_segments_mut().map_err(|()| anyhow!("--server {server:?} cannot take a path"))?.pop_if_empty();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("mlops/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let token = connection.token.clone().filter(|t| !t.is_empty());
        Ok(Client { http, base, server, token })
    }

    /// The server URL as given by the user.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `segments` are joined as path segments, each percent-encoded, so ids, stage names and
    /// asset keys with odd characters stay one segment each.
    pub fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            bail!("{bad:?} cannot be part of a URL path (in {:?})", segments.join("/"));
        }
        let mut url = self.base.clone();
        url.path_segments_mut().map_err(|()| anyhow!("{} cannot take a path", self.server))?.extend(segments);
        Ok(url)
    }

    pub fn request(&self, method: Method, segments: &[&str]) -> anyhow::Result<RequestBuilder> {
        let request = self.http.request(method, self.url(segments)?);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// Sends the request; any non-2xx answer becomes an [`ApiProblem`] error.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(ApiProblem::read(response, self.token.is_some()).await.into())
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let request = self.request(Method::GET, segments)?.query(query).timeout(JSON_TIMEOUT);
        self.read_json(self.send(request).await?).await
    }

    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut request = self.request(method, segments)?.query(query).timeout(JSON_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.read_json(self.send(request).await?).await
    }

    pub async fn read_json<T: DeserializeOwned>(&self, response: Response) -> anyhow::Result<T> {
        let url = response.url().clone();
        let bytes = response.bytes().await.map_err(|e| self.transport_error(e))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{url} answered with an unexpected body"))
    }

    pub fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        let cause = root_cause(&e);
        if e.is_connect() {
            anyhow!(
                "cannot reach the mlops server at {}: {cause}\n  \
                 is it running? start one with `mlops serve` (`mlops serve --dev` for a local one without tokens), \
                 or point --server / MLOPS_SERVER at it",
                self.server
            )
        } else if e.is_timeout() {
            anyhow!("the mlops server at {} did not answer in time: {cause}", self.server)
        } else {
            anyhow!("request to the mlops server at {} failed: {cause}", self.server)
        }
    }
}

/// reqwest wraps the useful message (e.g. "Connection refused") a few levels deep.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// An error answer from the API: an RFC 9457 problem, or whatever a proxy in between sent.
#[derive(Debug)]
pub struct ApiProblem {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Said when the server wants a token and none was given.
    pub hint: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub pointer: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

impl ApiProblem {
    async fn read(response: Response, sent_token: bool) -> ApiProblem {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ProblemBody>(&text).ok().filter(|p| p.title.is_some() || p.detail.is_some());
        let reason = status.canonical_reason().unwrap_or("Error").to_string();
        let (title, detail, errors) = match body {
            Some(p) => (p.title.unwrap_or(reason), p.detail.unwrap_or_default(), p.errors),
            // Not from mlops (a proxy, or another server at that address): show the start of it.
            None => (reason, text.trim().chars().take(300).collect(), Vec::new()),
        };
        let hint = (status == reqwest::StatusCode::UNAUTHORIZED && !sent_token)
            .then_some("no token was sent: pass --token or set MLOPS_TOKEN");
        ApiProblem { status: status.as_u16(), title, detail, errors, hint }
    }
}

impl fmt::Display for ApiProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        for e in &self.errors {
            // A body-level error usually repeats the detail word for word.
            if e.pointer.is_empty() && e.message == self.detail {
                continue;
            }
            let pointer = if e.pointer.is_empty() { "(body)" } else { e.pointer.as_str() };
            write!(f, "\n  {pointer}: {}", e.message)?;
        }
        if let Some(hint) = self.hint {
            write!(f, "\n  {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiProblem {}

/// The parts of `GET /v1/pipelines/{id}` the commands show.
#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub pipeline_type: String,
    #[serde(default)]
    pub target: String,
    pub state: String,
    pub version: i64,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub ordinal: i32,
    pub environment: String,
    pub state: String,
    #[serde(default)]
    pub requires_approval: bool,
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
    #[serde(default)]
    pub outputs: Option<Value>,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: i64,
    pub stage_ordinal: Option<i32>,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub actor: String,
    pub message: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Deserialize)]
pub struct EventPage {
    pub items: Vec<Event>,
    pub next_after: Option<i64>,
}
