//! The client subcommands: their flags, and how each answer is shown.

use super::wait::{self, Output};
use super::{Client, Connection, Pipeline};
use anyhow::{Context, bail};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

const INFERENCE_ID_HEADER: &str = "x-amzn-sagemaker-inference-id";

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Provision (or update) a pipeline from a request body file (the AWS solution's mlops-config.json).
    Provision {
        #[command(flatten)]
        connection: Connection,
        /// The request body, JSON.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Validate and show the plan (stages and parameters); store nothing.
        #[arg(long, conflicts_with = "wait")]
        dry_run: bool,
        /// Follow the pipeline until it settles, printing its events as they happen.
        #[arg(long)]
        wait: bool,
    },
    /// Show a pipeline: its state and each stage's state, approval, outputs and errors.
    Status {
        #[command(flatten)]
        connection: Connection,
        /// Pipeline id.
        id: String,
        /// Follow the pipeline until it settles, printing its events as they happen.
        #[arg(long)]
        wait: bool,
        /// Print the API's JSON instead (events of --wait go to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Approve (or reject) the stage waiting for approval.
    Approve {
        #[command(flatten)]
        connection: Connection,
        /// Pipeline id.
        id: String,
        /// The stage: its environment name or 0-based ordinal.
        stage: String,
        /// Reject instead: the pipeline stops at this stage.
        #[arg(long)]
        reject: bool,
        /// Recorded with the decision.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// The pipeline version you decide on (`mlops status` shows it); default: the current
        /// one, read first. The server refuses a decision on any other version.
        #[arg(long, value_name = "N")]
        version: Option<i64>,
    },
    /// Delete a pipeline; its endpoints are torn down.
    Delete {
        #[command(flatten)]
        connection: Connection,
        /// Pipeline id.
        id: String,
        /// Follow the teardown until the pipeline is deleted.
        #[arg(long)]
        wait: bool,
    },
    /// List pipelines, oldest first.
    Pipelines {
        #[command(flatten)]
        connection: Connection,
        /// Only pipelines in this state (e.g. active, failed, awaiting_approval).
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// Only pipelines of this type (e.g. byom_realtime_builtin).
        #[arg(long = "type", value_name = "PIPELINE_TYPE")]
        pipeline_type: Option<String>,
    },
    /// Invoke an endpoint with the payload from -f, --data or stdin; the answer goes to stdout as is.
    Invoke {
        #[command(flatten)]
        connection: Connection,
        /// Endpoint name (`environment.name` on a server with several environments).
        endpoint: String,
        /// Payload type: text/csv, application/json or application/jsonlines.
        #[arg(long, default_value = "text/csv")]
        content_type: String,
        /// Answer type (default: the payload's).
        #[arg(long, value_name = "TYPE")]
        accept: Option<String>,
        /// Recorded as the capture's inferenceId.
        #[arg(long, value_name = "ID")]
        inference_id: Option<String>,
        /// Read the payload from FILE.
        #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with = "data")]
        file: Option<PathBuf>,
        /// The payload itself.
        #[arg(long, value_name = "TEXT")]
        data: Option<String>,
    },
    /// List endpoints, or show one: its model and its capture figures.
    Endpoints {
        #[command(flatten)]
        connection: Connection,
        /// Endpoint name (`environment.name` on a server with several environments); without
        /// one, every endpoint.
        name: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print what a custom endpoint's algorithm wrote (stdout and stderr), as kept by the
    /// replica that answers.
    Logs {
        #[command(flatten)]
        connection: Connection,
        /// Endpoint name (`environment.name` on a server with several environments).
        endpoint: String,
        /// Lines, newest last (1-2000).
        #[arg(long, default_value_t = 200)]
        lines: usize,
    },
    /// Upload and download files of the assets bucket (model artifacts, baselines, data).
    Assets {
        #[command(flatten)]
        connection: Connection,
        #[command(subcommand)]
        command: AssetsCommand,
    },
}

#[derive(clap::Subcommand)]
pub enum AssetsCommand {
    /// Upload LOCAL as KEY, streamed; prints its size and sha256.
    Put {
        /// The local file.
        local: PathBuf,
        /// Key in the assets bucket, e.g. models/churn/model.tar.gz.
        key: String,
    },
    /// Download KEY, streamed, to stdout or FILE.
    Get {
        /// Key in the assets bucket.
        key: String,
        /// Write to FILE instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Provision { connection, file, dry_run, wait } => {
            provision(&Client::new(&connection)?, &file, dry_run, wait).await
        }
        ClientCommand::Status { connection, id, wait, json } => {
            status(&Client::new(&connection)?, &id, wait, json).await
        }
        ClientCommand::Approve { connection, id, stage, reject, comment, version } => {
            approve(&Client::new(&connection)?, &id, &stage, reject, comment, version).await
        }
        ClientCommand::Delete { connection, id, wait } => delete(&Client::new(&connection)?, &id, wait).await,
        ClientCommand::Pipelines { connection, state, pipeline_type } => {
            pipelines(&Client::new(&connection)?, state, pipeline_type).await
        }
        ClientCommand::Invoke { connection, endpoint, content_type, accept, inference_id, file, data } => {
            let payload = read_payload(file, data).await?;
            invoke(&Client::new(&connection)?, &endpoint, &content_type, accept, inference_id, payload).await
        }
        ClientCommand::Endpoints { connection, name, json } => {
            endpoints(&Client::new(&connection)?, name.as_deref(), json).await
        }
        ClientCommand::Logs { connection, endpoint, lines } => logs(&Client::new(&connection)?, &endpoint, lines).await,
        ClientCommand::Assets { connection, command: AssetsCommand::Put { local, key } } => {
            put_asset(&Client::new(&connection)?, &local, &key).await
        }
        ClientCommand::Assets { connection, command: AssetsCommand::Get { key, output } } => {
            get_asset(&Client::new(&connection)?, &key, output.as_deref()).await
        }
    }
}

#[derive(Deserialize)]
struct Plan {
    pipeline_type: String,
    name: String,
    version: i64,
    stages: Vec<PlannedStage>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct PlannedStage {
    ordinal: u32,
    environment: String,
    requires_approval: bool,
    params: Value,
}

async fn provision(client: &Client, file: &Path, dry_run: bool, wait: bool) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(file).await.with_context(|| format!("cannot read {}", file.display()))?;
    let body: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", file.display()))?;
    if dry_run {
        let query = [("dry_run", "true".to_string())];
        let plan: Plan = client.send_json(Method::POST, &["v1", "pipelines"], &query, Some(&body)).await?;
        print_plan(&plan);
        return Ok(());
    }
    let request = client.request(Method::POST, &["v1", "pipelines"])?.json(&body);
    let response = client.send(request).await?;
    let created = response.status() == reqwest::StatusCode::CREATED;
    let pipeline: Pipeline = client.read_json(response).await?;
    let fields = [
        ("pipeline", format!("{} ({})", pipeline.id, if created { "created" } else { "updated" })),
        ("name", format!("{} ({})", pipeline.name, pipeline.pipeline_type)),
        ("state", pipeline.state.clone()),
        ("version", pipeline.version.to_string()),
    ];
    print_fields(&fields);
    for warning in &pipeline.warnings {
        println!("warning: {warning}");
    }
    if wait {
        follow_and_conclude(client, &pipeline.id, false).await?;
    }
    Ok(())
}

fn print_plan(plan: &Plan) {
    println!("dry run: nothing was stored");
    print_fields(&[("name", format!("{} ({})", plan.name, plan.pipeline_type)), ("version", plan.version.to_string())]);
    for stage in &plan.stages {
        let approval = if stage.requires_approval { " (needs approval)" } else { "" };
        println!("stage {} {}{approval}", stage.ordinal, stage.environment);
        for (key, value) in leaves(&stage.params) {
            println!("    {key}: {value}");
        }
    }
    for warning in &plan.warnings {
        println!("warning: {warning}");
    }
}

async fn follow_and_conclude(client: &Client, id: &str, deleted_is_success: bool) -> anyhow::Result<()> {
    let followed = wait::follow(client, id, Output::Stdout).await?;
    print_pipeline(&followed.pipeline);
    wait::conclude(client, &followed, deleted_is_success, Output::Stdout)
}

async fn status(client: &Client, id: &str, wait: bool, json: bool) -> anyhow::Result<()> {
    if !json {
        if wait {
            return follow_and_conclude(client, id, true).await;
        }
        let pipeline: Pipeline = client.get_json(&["v1", "pipelines", id], &[]).await?;
        print_pipeline(&pipeline);
        return Ok(());
    }
    let followed = if wait { Some(wait::follow(client, id, Output::Stderr).await?) } else { None };
    let request = client.request(Method::GET, &["v1", "pipelines", id])?;
    let response = client.send(request).await?;
    let text = response.text().await.map_err(|e| client.transport_error(e))?;
    println!("{text}");
    match followed {
        Some(followed) => wait::conclude(client, &followed, true, Output::Stderr),
        None => Ok(()),
    }
}

fn print_pipeline(p: &Pipeline) {
    let mut fields = vec![
        ("pipeline", p.id.clone()),
        ("name", format!("{} ({}, target {})", p.name, p.pipeline_type, p.target)),
        ("state", p.state.clone()),
        ("version", p.version.to_string()),
        ("created", format!("{} by {}", p.created_at, p.created_by)),
        ("updated", p.updated_at.clone()),
    ];
    if let Some(error) = &p.last_error {
        fields.push(("error", error.clone()));
    }
    print_fields(&fields);
    let env_width = p.stages.iter().map(|s| s.environment.len()).max().unwrap_or(0);
    let state_width = p.stages.iter().map(|s| s.state.len()).max().unwrap_or(0);
    for s in &p.stages {
        let approval = match (&s.approved_by, &s.approved_at) {
            (Some(by), Some(at)) => format!("approved by {by} at {at}"),
            (Some(by), None) => format!("approved by {by}"),
            (None, _) if s.requires_approval && matches!(s.state.as_str(), "pending" | "awaiting_approval") => {
                "needs approval".to_string()
            }
            (None, _) => String::new(),
        };
        let line = format!("stage {} {:<env_width$}  {:<state_width$}  {approval}", s.ordinal, s.environment, s.state);
        println!("{}", line.trim_end());
        for (key, value) in s.outputs.as_ref().map(leaves).unwrap_or_default() {
            println!("    {key}: {value}");
        }
        if let Some(error) = &s.last_error {
            println!("    error: {error}");
        }
    }
}

async fn approve(
    client: &Client,
    id: &str,
    stage: &str,
    reject: bool,
    comment: Option<String>,
    version: Option<i64>,
) -> anyhow::Result<()> {
    let version = match version {
        Some(version) => version,
        None => {
            let current: Pipeline = client.send_json(Method::GET, &["v1", "pipelines", id], &[], None).await?;
            current.version
        }
    };
    let body = json!({ "decision": if reject { "reject" } else { "approve" }, "comment": comment, "version": version });
    let segments = ["v1", "pipelines", id, "stages", stage, "approval"];
    let pipeline: Pipeline = client.send_json(Method::POST, &segments, &[], Some(&body)).await?;
    let decided = pipeline.stages.iter().find(|s| s.environment == stage || s.ordinal.to_string() == stage);
    let environment = decided.map_or(stage, |s| &s.environment);
    if reject {
        println!(
            "rejected stage {environment} of pipeline {} version {version}; the pipeline is {}",
            pipeline.id, pipeline.state
        );
    } else {
        let by = decided.and_then(|s| s.approved_by.as_deref()).unwrap_or("you");
        println!(
            "approved stage {environment} of pipeline {} version {version} (by {by}); the pipeline is {}",
            pipeline.id, pipeline.state
        );
        println!("follow it with: mlops status {} --wait", pipeline.id);
    }
    Ok(())
}

async fn delete(client: &Client, id: &str, wait: bool) -> anyhow::Result<()> {
    let pipeline: Pipeline = client.send_json(Method::DELETE, &["v1", "pipelines", id], &[], None).await?;
    println!("pipeline {} is {}: its endpoints are being torn down", pipeline.id, pipeline.state);
    if wait {
        let followed = wait::follow(client, id, Output::Stdout).await?;
        wait::conclude(client, &followed, true, Output::Stdout)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct PipelineList {
    items: Vec<PipelineSummary>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct PipelineSummary {
    id: String,
    name: String,
    pipeline_type: String,
    state: String,
    version: i64,
    updated_at: String,
}

async fn pipelines(client: &Client, state: Option<String>, pipeline_type: Option<String>) -> anyhow::Result<()> {
    let mut rows = vec![["ID", "NAME", "TYPE", "STATE", "VERSION", "UPDATED"].map(String::from)];
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500".to_string())];
        query.extend(state.clone().map(|s| ("state", s)));
        query.extend(pipeline_type.clone().map(|t| ("pipeline_type", t)));
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let page: PipelineList = client.get_json(&["v1", "pipelines"], &query).await?;
        rows.extend(
            page.items
                .into_iter()
                .map(|p| [p.id, p.name, p.pipeline_type, p.state, p.version.to_string(), p.updated_at]),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if rows.len() == 1 {
        println!("no pipelines");
        return Ok(());
    }
    print_table(&rows);
    Ok(())
}

/// Rows of cells in aligned columns, the first row the heading.
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

#[derive(Deserialize)]
struct EndpointList {
    items: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    id: String,
    pipeline_id: String,
    state: String,
    revision: i64,
    invocation_path: String,
    model: Option<EndpointModel>,
    capture: Option<EndpointCapture>,
    created_at: String,
    updated_at: String,
}

#[derive(Deserialize)]
struct EndpointModel {
    model_name: String,
    framework: String,
    artifact: String,
    artifact_sha256: String,
    data_capture_location: Option<String>,
}

#[derive(Deserialize)]
struct CaptureFigures {
    captured: u64,
    written: u64,
    dropped: u64,
    sampled_out: u64,
    last_flush: Option<String>,
}

#[derive(Deserialize)]
struct EndpointCapture {
    #[serde(flatten)]
    all: CaptureFigures,
    this_replica: CaptureFigures,
}

async fn endpoints(client: &Client, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let segments: Vec<&str> = ["v1", "endpoints"].into_iter().chain(name).collect();
    if json {
        let response = client.send(client.request(Method::GET, &segments)?).await?;
        println!("{}", response.text().await.map_err(|e| client.transport_error(e))?);
        return Ok(());
    }
    if name.is_some() {
        print_endpoint(&client.get_json(&segments, &[]).await?);
        return Ok(());
    }
    let list: EndpointList = client.get_json(&segments, &[]).await?;
    if list.items.is_empty() {
        println!("no endpoints");
        return Ok(());
    }
    let mut rows =
        vec![["ENDPOINT", "STATE", "MODEL", "FRAMEWORK", "CAPTURED", "DROPPED", "PIPELINE"].map(String::from)];
    let or_none = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    rows.extend(list.items.into_iter().map(|e| {
        let (model, framework) = e.model.map(|m| (m.model_name, m.framework)).unzip();
        let (captured, dropped) = e.capture.map(|c| (c.all.captured.to_string(), c.all.dropped.to_string())).unzip();
        [e.id, e.state, or_none(model), or_none(framework), or_none(captured), or_none(dropped), e.pipeline_id]
    }));
    print_table(&rows);
    Ok(())
}

fn print_endpoint(e: &Endpoint) {
    let mut fields = vec![
        ("endpoint", e.id.clone()),
        ("state", e.state.clone()),
        ("revision", e.revision.to_string()),
        ("pipeline", e.pipeline_id.clone()),
        ("invoke", format!("POST {}", e.invocation_path)),
    ];
    if let Some(m) = &e.model {
        fields.push(("model", format!("{} ({})", m.model_name, m.framework)));
        fields.push(("artifact", format!("{} (sha256 {})", m.artifact, m.artifact_sha256)));
        if let Some(location) = &m.data_capture_location {
            fields.push(("capture", location.clone()));
        }
    }
    if let Some(c) = &e.capture {
        // Every replica's, then the answering replica's own in brackets.
        let figure = |all: u64, here: u64| format!("{all} ({here} on this replica)");
        fields.push(("captured", figure(c.all.captured, c.this_replica.captured)));
        fields.push(("written", figure(c.all.written, c.this_replica.written)));
        fields.push(("dropped", figure(c.all.dropped, c.this_replica.dropped)));
        fields.push(("sampled out", figure(c.all.sampled_out, c.this_replica.sampled_out)));
        fields.push(("last flush", c.all.last_flush.clone().unwrap_or_else(|| "never".into())));
    }
    fields.push(("created", e.created_at.clone()));
    fields.push(("updated", e.updated_at.clone()));
    print_fields(&fields);
}

#[derive(Deserialize)]
struct EndpointLogs {
    replica: String,
    running_here: bool,
    restarts: u32,
    lines: Vec<String>,
    other_replicas: Vec<ReplicaLogs>,
}

#[derive(Deserialize)]
struct ReplicaLogs {
    replica: String,
    restarts: i64,
    updated_at: String,
    lines: Vec<String>,
}

/// The answering replica's lines, as they are when no other replica wrote any; else each
/// replica's under a heading, as `tail` heads several files.
async fn logs(client: &Client, endpoint: &str, lines: usize) -> anyhow::Result<()> {
    let query = [("lines", lines.to_string())];
    let logs: EndpointLogs = client.get_json(&["v1", "endpoints", endpoint, "logs"], &query).await?;
    if !logs.running_here && logs.other_replicas.is_empty() {
        // Not an error: a built-in model has no algorithm.
        eprintln!("no algorithm of {endpoint} runs or ran on any replica (built-in models have none)");
        return Ok(());
    }
    let headed = !logs.other_replicas.is_empty();
    let restarted = |n: i64| if n > 0 { format!(", restarted {n} time(s)") } else { String::new() };
    if logs.running_here {
        if headed {
            println!("==> replica {} (this one{}) <==", logs.replica, restarted(logs.restarts.into()));
        } else if logs.restarts > 0 {
            eprintln!("the algorithm was restarted {} time(s) on this replica", logs.restarts);
        }
        logs.lines.iter().for_each(|line| println!("{line}"));
    }
    for other in &logs.other_replicas {
        println!("==> replica {} (as of {}{}) <==", other.replica, other.updated_at, restarted(other.restarts));
        other.lines.iter().for_each(|line| println!("{line}"));
    }
    Ok(())
}

async fn read_payload(file: Option<PathBuf>, data: Option<String>) -> anyhow::Result<Vec<u8>> {
    match (file, data) {
        (Some(file), _) => tokio::fs::read(&file).await.with_context(|| format!("cannot read {}", file.display())),
        (None, Some(data)) => Ok(data.into_bytes()),
        (None, None) => {
            if std::io::stdin().is_terminal() {
                bail!("no payload: give it with -f FILE, --data TEXT, or on stdin");
            }
            let mut payload = Vec::new();
            tokio::io::stdin().read_to_end(&mut payload).await.context("cannot read the payload from stdin")?;
            Ok(payload)
        }
    }
}

async fn invoke(
    client: &Client,
    endpoint: &str,
    content_type: &str,
    accept: Option<String>,
    inference_id: Option<String>,
    payload: Vec<u8>,
) -> anyhow::Result<()> {
    let mut request = client
        .request(Method::POST, &["v1", "endpoints", endpoint, "invocations"])?
        .header(CONTENT_TYPE, content_type)
        .body(payload);
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(id) = inference_id {
        request = request.header(INFERENCE_ID_HEADER, id);
    }
    let response = client.send(request).await?;
    copy_body(client, response, &mut tokio::io::stdout()).await?;
    Ok(())
}

/// `models/churn/model.tar.gz` → `["v1", "assets", "models", "churn", "model.tar.gz"]`.
fn asset_segments(key: &str) -> Vec<&str> {
    ["v1", "assets"].into_iter().chain(key.split('/')).collect()
}

#[derive(Deserialize)]
struct StoredAsset {
    key: String,
    bucket: String,
    size: u64,
    sha256: String,
}

async fn put_asset(client: &Client, local: &Path, key: &str) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(local).await.with_context(|| format!("cannot open {}", local.display()))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let request =
        client.request(Method::PUT, &asset_segments(key))?.header(CONTENT_TYPE, "application/octet-stream").body(body);
    let stored: StoredAsset = client.read_json(client.send(request).await?).await?;
    print_fields(&[
        ("key", stored.key),
        ("bucket", stored.bucket),
        ("size", stored.size.to_string()),
        ("sha256", stored.sha256),
    ]);
    Ok(())
}

async fn get_asset(client: &Client, key: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let response = client.send(client.request(Method::GET, &asset_segments(key))?).await?;
    let Some(path) = output else {
        copy_body(client, response, &mut tokio::io::stdout()).await?;
        return Ok(());
    };
    // Written beside the target and renamed at the end, so a failed download never leaves a
    // truncated file where the real one was (or is expected).
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let mut file =
        tokio::fs::File::create(&partial).await.with_context(|| format!("cannot create {}", partial.display()))?;
    let written = match copy_body(client, response, &mut file).await {
        Ok(n) => n,
        Err(e) => {
            drop(file);
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&partial, path).await.with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {key} to {} ({written} bytes)", path.display());
    Ok(())
}

/// Streams a response body out, chunk by chunk; returns the byte count.
async fn copy_body(client: &Client, response: Response, out: &mut (impl AsyncWrite + Unpin)) -> anyhow::Result<u64> {
    let mut stream = response.bytes_stream();
    let mut written = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| client.transport_error(e))?;
        out.write_all(&chunk).await.context("cannot write the answer")?;
        written += chunk.len() as u64;
    }
    out.flush().await.context("cannot write the answer")?;
    Ok(written)
}

fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        println!("{key:<width$}  {value}");
    }
}

/// `{"model": {"key": "k"}, "n": 3}` → `[("model.key", "k"), ("n", "3")]`; nulls are left out.
fn leaves(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (k, v) in map {
                    walk(if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            Value::String(s) => out.push((prefix, s.clone())),
            other => out.push((prefix, other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(String::new(), value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::leaves;
    use serde_json::json;

    #[test]
    fn leaves_flatten_nested_objects_and_skip_nulls() {
        let value = json!({"family": "realtime", "model": {"key": "m.tar.gz", "sha": null}, "n": 3, "tags": ["a"]});
        let got: Vec<String> = leaves(&value).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(got, ["family=realtime", "model.key=m.tar.gz", "n=3", r#"tags=["a"]"#]);
    }
}
