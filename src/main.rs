use anyhow::Context;
use clap::{Parser, Subcommand};
use mlops::config::{Overrides, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// mimalloc rather than glibc's malloc: a served invocation makes a few dozen small allocations
// across the runtime's worker threads, which glibc pays for in arena locking and consolidation
// (9 % of a loaded server's CPU, measured); mimalloc's thread-local free lists make those cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mlops-orchestrator: provision, promote, serve and monitor ML pipelines.
#[derive(Parser)]
#[command(name = "mlops", version, about)]
struct Cli {
    /// Configuration file (TOML); every key can also be set with MLOPS_* env vars.
    #[arg(long, global = true, env = "MLOPS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
struct ServerFlags {
    /// Address to listen on [config: listen, env: MLOPS_LISTEN; default 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the SQLite file and local artifacts [env: MLOPS_DATA_DIR; default ./mlops-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run without authentication (every caller is an admin); loopback only, no tokens configured.
    #[arg(long)]
    dev: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run job workers.
    Serve(ServerFlags),
    /// Run job workers only (no API).
    Worker(ServerFlags),
    /// Apply database migrations.
    Migrate(ServerFlags),
    /// Print the OpenAPI document, or with --check compare it with a file.
    Openapi {
        /// Fail if this file (default: openapi/openapi.json) differs from the generated document.
        #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "openapi/openapi.json")]
        check: Option<PathBuf>,
    },
    /// Exit 0 when the server at URL answers /healthz (for container HEALTHCHECKs).
    Healthcheck {
        #[arg(default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Run the drift analyzer as a SageMaker monitoring or baselining job: inputs, outputs and
    /// settings come from the job's environment (`dataset_format`, `dataset_source`,
    /// `output_path`, `start_time`, `end_time`, `baseline_statistics`, `baseline_constraints`,
    /// `publish_cloudwatch_metrics`, ...; docs/MONITORING.md). Prints what it did as JSON.
    Analyze,
    /// Explain a model file's outputs over a CSV (a header row, then the features) as the
    /// explainability monitor does: Kernel SHAP against baseline rows, or exact TreeSHAP of a
    /// tree model (XGBoost, or an ONNX tree ensemble against the baseline rows); writes Clarify's
    /// analysis.json and prints a summary as JSON.
    Explain(mlops::serving::explain::ExplainArgs),
    #[command(flatten)]
    Client(mlops::client::ClientCommand),
}

fn load(config: Option<&std::path::Path>, flags: &ServerFlags) -> anyhow::Result<Settings> {
    let overrides = Overrides { listen: flags.listen, data_dir: flags.data_dir.clone(), dev: flags.dev };
    let settings = Settings::load(config, &overrides)?;
    mlops::telemetry::init(&settings.log);
    Ok(settings)
}

/// How many tasks a runtime worker runs between two non-blocking looks at socket and timer
/// events (tokio's `event_interval`, 61 by default). An invocation is a short task woken by its
/// socket; looking every other task, a busy worker finds the next requests itself rather than
/// leaving them to the worker parked on the event queue, which must first be woken. Measured
/// (wrk, 2 cores, alternating runs): 20-30 % more invocations a second at 8 connections, ~5 %
/// more at 32 and 64, `/healthz` 5-10 % more; 1 was no better than 2, 5 already worse.
const RUNTIME_EVENT_INTERVAL: u32 = 2;

fn main() -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(RUNTIME_EVENT_INTERVAL)
        .on_thread_start(mlops::server::worker_cpus::free_this_thread)
        .on_thread_park(mlops::server::worker_cpus::on_worker_park)
        .build()?
        .block_on(async_main())
}

async fn async_main() -> anyhow::Result<ExitCode> {
    let result = run(Cli::parse()).await;
    // Log lines are written in batches: the last ones go out before the process ends (and
    // before the error, if any, that Rust prints once main returns).
    mlops::telemetry::flush();
    result
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        // Client errors are for people at a terminal: one readable message, no debug chain.
        Command::Client(command) => {
            if let Err(e) = mlops::client::run(command).await {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Serve(flags) => {
            let settings = load(config, &flags)?;
            let serving = &settings.serving;
            if let Some(cpus) =
                mlops::server::worker_cpus::pin_workers(serving.pin_workers, serving.algorithm_cpus.as_ref())
            {
                tracing::info!(?cpus, "runtime workers kept one per CPU (serving.pin_workers)");
            }
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            mlops::start(settings, listener, mlops::app::shutdown_signal()).await?;
        }
        Command::Worker(flags) => {
            let mut settings = load(config, &flags)?;
            settings.jobs.workers = settings.jobs.workers.max(1);
            mlops::app::run_workers(settings, mlops::app::shutdown_signal()).await?;
        }
        Command::Migrate(flags) => {
            let settings = load(config, &flags.clone())?;
            std::fs::create_dir_all(&settings.data_dir)?;
            let store = mlops::store::connect(&settings.database_url()).await?;
            store.migrate().await?;
            println!("migrations applied");
        }
        Command::Analyze => {
            // Logs to stderr: stdout carries the outcome.
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
            let mut env = mlops::analyzer::job::JobEnv::from_vars(|name| std::env::var(name).ok())?;
            let _labels = fetch_ground_truth(&mut env).await?;
            let outcome = mlops::analyzer::job::run(&env)?;
            println!("{}", serde_json::to_string(&outcome)?);
        }
        Command::Explain(args) => {
            let summary = mlops::serving::explain::explain_files(&args).map_err(|e| anyhow::anyhow!(e))?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Openapi { check } => {
            let generated = mlops::openapi::document_json();
            match check {
                None => print!("{generated}"),
                Some(file) => {
                    let committed =
                        std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                    if committed != generated {
                        anyhow::bail!(
                            "{} is out of date: regenerate it with `cargo run -- openapi > {}`",
                            file.display(),
                            file.display()
                        );
                    }
                    println!("{} is up to date", file.display());
                }
            }
        }
        Command::Healthcheck { url } => {
            let url = format!("{}/healthz", url.trim_end_matches('/'));
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await
                .with_context(|| format!("{url} did not answer"))?;
            anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A model-quality run whose `ground_truth_source` is an `s3://` prefix (what the aws target's job
/// definition gives our image) reads the labels that arrived since the window started from a
/// local copy; the returned folder is removed when dropped.
async fn fetch_ground_truth(env: &mut mlops::analyzer::job::JobEnv) -> anyhow::Result<Option<tempfile::TempDir>> {
    let mlops::analyzer::job::Analysis::ModelQuality(quality) = &mut env.analysis else { return Ok(None) };
    let Some(uri) = quality.ground_truth_source.as_ref().and_then(|p| p.to_str()).filter(|p| p.starts_with("s3://"))
    else {
        return Ok(None);
    };
    #[cfg(feature = "aws")]
    {
        let uri = uri.to_string();
        let dir = tempfile::Builder::new().prefix("mlops-ground-truth-").tempdir()?;
        let copied = mlops::artifacts::download_prefix(&uri, env.start_time, dir.path())
            .await
            .with_context(|| format!("`ground_truth_source` {uri}"))?;
        tracing::info!(ground_truth_source = %uri, objects = copied, "ground truth copied");
        quality.ground_truth_source = Some(dir.path().to_path_buf());
        Ok(Some(dir))
    }
    #[cfg(not(feature = "aws"))]
    anyhow::bail!("`ground_truth_source` {uri}: reading S3 needs the build with the aws feature")
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
