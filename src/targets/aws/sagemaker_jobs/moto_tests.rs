//! Each job kind run against moto through the SDK: the requests are accepted as built, a second
//! call finds the job instead of creating another, and the describe answers read back what was
//! sent. moto runs jobs to `Completed` at once (AutoML stays `InProgress`) and has no monitoring
//! schedules, so the schedule check after a baseline is left to the integration tests' AWS front.
//!
//! These live here rather than in `tests/it` because the functions under test are private to
//! the aws target. moto comes from `.ci/requirements.txt` (see `tests/it/support/aws/moto.rs`);
//! a missing moto fails the tests, as it does there.

use super::fixtures::{self, ASSETS, REGION};
use super::{AwsContext, after_deploy, monitors};
use crate::domain::{PipelineType, StageParams};
use crate::targets::ErrorKind;
use crate::targets::aws::clients::Clients;
use crate::targets::{StageContext, StepOutcome, TargetError};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_sagemaker::config::Credentials;
use aws_sdk_sagemaker::types::{ContainerDefinition, ProductionVariant};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const ROLE: &str = "arn:aws:iam::123456789012:role/sagemaker";

/// A `moto_server` on a loopback port of its own choosing, killed on drop.
struct Moto {
    url: String,
    _child: Child,
    _log: tempfile::TempDir,
}

impl Moto {
    async fn start() -> Moto {
        let dir = match std::env::var_os("CI_PYTHON_BIN") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/mlops-venvs/ci/bin"),
        };
        let bin = dir.join("moto_server");
        assert!(
            bin.exists(),
            "moto_server not found at {}: run .ci/run, or install .ci/requirements.txt",
            bin.display()
        );
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("moto.stderr");
        // Port 0: the kernel picks a free one as moto binds it, read back from its log. (A port
        // picked here and released for moto could be taken by another test's moto in between,
        // and this test would then talk to that one: a test once saw another's endpoint so.)
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let http = reqwest::Client::new();
        let started = Instant::now();
        let url = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(port) = listening_port(&log) {
                break format!("http://127.0.0.1:{port}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto exited ({status}): {log}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not start: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        while !http.get(format!("{url}/moto-api/")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not answer on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Moto { url, _child: child, _log: log_dir }
    }

    /// Clients as the target builds them for an emulator, with one attempt per call so an
    /// unexpected error shows at once.
    async fn clients(&self) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .load()
            .await;
        let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            codepipeline: aws_sdk_codepipeline::Client::new(&config),
            sagemaker: aws_sdk_sagemaker::Client::new(&config),
        }
    }
}

/// The port in werkzeug's `Running on http://127.0.0.1:<port>`, once the line is complete.
fn listening_port(log: &str) -> Option<u16> {
    const LISTENING: &str = "Running on http://127.0.0.1:";
    let rest = &log[log.find(LISTENING)? + LISTENING.len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

fn outputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn step(clients: &Clients, stage: &StageContext, outputs: &BTreeMap<String, String>) -> StepOutcome {
    after_deploy(clients, stage, outputs, &fixtures::context()).await.unwrap_or_else(|e| panic!("{e}"))
}

fn finished(progress: StepOutcome) -> Value {
    match progress {
        StepOutcome::Done(v) => v,
        StepOutcome::InProgress(_) => panic!("still waiting"),
    }
}

async fn create_bucket(clients: &Clients, bucket: &str) {
    clients.s3.create_bucket().bucket(bucket).send().await.unwrap();
}

/// A model served by an endpoint, as a realtime stack leaves them.
async fn create_endpoint(clients: &Clients, endpoint: &str, model: &str) {
    let sm = &clients.sagemaker;
    let container = ContainerDefinition::builder().image("xgboost:1").model_data_url("s3://m/model.tar.gz").build();
    sm.create_model().model_name(model).execution_role_arn(ROLE).primary_container(container).send().await.unwrap();
    let variant = ProductionVariant::builder()
        .variant_name("AllTraffic")
        .model_name(model)
        .initial_instance_count(1)
        .instance_type("ml.m5.large".into())
        .build();
    sm.create_endpoint_config()
        .endpoint_config_name(format!("{endpoint}-config"))
        .production_variants(variant)
        .send()
        .await
        .unwrap();
    sm.create_endpoint()
        .endpoint_name(endpoint)
        .endpoint_config_name(format!("{endpoint}-config"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn batch_transform_job() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ByomBatchBuiltin);
    let container = ContainerDefinition::builder().image("xgboost:1").build();
    clients
        .sagemaker
        .create_model()
        .model_name("SageMakerModel-1")
        .execution_role_arn(ROLE)
        .primary_container(container)
        .send()
        .await
        .unwrap();
    let outputs = outputs(&[("SageMakerModelName", "SageMakerModel-1")]);

    assert!(matches!(step(&clients, &stage, &outputs).await, StepOutcome::InProgress(_)), "created");
    let done = finished(step(&clients, &stage, &outputs).await);
    let name = done["transform_job_name"].as_str().unwrap().to_string();
    let StageParams::Batch(b) = &stage.params else { panic!("a batch stage") };
    assert!(name.starts_with(&format!("{}-batch-transform-", b.model_name.to_ascii_lowercase())), "{name}");
    assert_eq!(done["transform_job_status"], "Completed");
    assert_eq!(done["output_location"], "s3://my-bucket/batch/output");

    let job = clients.sagemaker.describe_transform_job().transform_job_name(&name).send().await.unwrap();
    assert_eq!(job.model_name(), Some("SageMakerModel-1"));
    let source = job.transform_input().and_then(|i| i.data_source()).and_then(|d| d.s3_data_source()).unwrap();
    assert_eq!(source.s3_uri(), Some("s3://my-bucket/batch/input/data.csv"));
    assert_eq!(job.transform_output().and_then(|o| o.accept()), Some("text/csv"));

    // Asked again (a resumed worker): the same job, not a second one.
    assert_eq!(finished(step(&clients, &stage, &outputs).await)["transform_job_name"], json!(name));
    let listed = clients.sagemaker.list_transform_jobs().send().await.unwrap();
    assert_eq!(listed.transform_job_summaries().len(), 1);
}

#[tokio::test]
async fn training_job() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ModelTrainingBuiltin);
    let StageParams::Training(t) = &stage.params else { panic!("training") };
    let outputs = outputs(&[("SageMakerRoleArn", ROLE)]);

    assert!(matches!(step(&clients, &stage, &outputs).await, StepOutcome::InProgress(_)), "created");
    let done = finished(step(&clients, &stage, &outputs).await);
    assert_eq!(done["training_job_name"], json!(t.job_name));
    assert_eq!(done["training_job_status"], "Completed");
    assert_eq!(done["output_location"], "s3://mlops-assets/training-output");
    assert_eq!(
        done["model_artifacts"],
        json!(format!("s3://mlops-assets/training-output/{}/output/model.tar.gz", t.job_name))
    );

    let job = clients.sagemaker.describe_training_job().training_job_name(&t.job_name).send().await.unwrap();
    assert_eq!(job.role_arn(), Some(ROLE));
    assert_eq!(job.hyper_parameters().and_then(|h| h.get("num_round")).map(String::as_str), Some("400"));
    let channels: Vec<_> = job.input_data_config().iter().filter_map(|c| c.channel_name()).collect();
    assert_eq!(channels, ["train", "validation"]);
    let checkpoint = format!("s3://mlops-assets/training-output/{}/checkpoint", t.job_name);
    assert_eq!(job.checkpoint_config().and_then(|c| c.s3_uri()), Some(checkpoint.as_str()));
    assert_eq!(job.enable_managed_spot_training(), Some(true));
    let listed = clients.sagemaker.list_training_jobs().send().await.unwrap();
    assert_eq!(listed.training_job_summaries().len(), 1);
}

#[tokio::test]
async fn tuning_job() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ModelTunerBuiltin);
    let outputs = outputs(&[("SageMakerRoleArn", ROLE)]);

    assert!(matches!(step(&clients, &stage, &outputs).await, StepOutcome::InProgress(_)), "created");
    let done = finished(step(&clients, &stage, &outputs).await);
    assert_eq!(done["tuning_job_name"], "churn-tuning-1");
    assert_eq!(done["tuning_job_status"], "Completed");

    let job = clients
        .sagemaker
        .describe_hyper_parameter_tuning_job()
        .hyper_parameter_tuning_job_name("churn-tuning-1")
        .send()
        .await
        .unwrap();
    let config = job.hyper_parameter_tuning_job_config().unwrap();
    assert_eq!(config.resource_limits().and_then(|l| l.max_number_of_training_jobs()), Some(10));
    let ranges = config.parameter_ranges().unwrap();
    assert_eq!(ranges.continuous_parameter_ranges().len(), 3);
    assert_eq!(ranges.categorical_parameter_ranges()[0].values(), ["sgd", "Adam"]);
    let definition = job.training_job_definition().unwrap();
    assert_eq!(definition.role_arn(), Some(ROLE));
    assert_eq!(
        definition.static_hyper_parameters().and_then(|h| h.get("eval_metric")).map(String::as_str),
        Some("auc")
    );
}

#[tokio::test]
async fn automl_v2_job() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ModelAutopilotTraining);
    let StageParams::Autopilot(a) = &stage.params else { panic!("autopilot") };
    let outputs = outputs(&[("SageMakerRoleArn", ROLE)]);

    assert!(matches!(step(&clients, &stage, &outputs).await, StepOutcome::InProgress(_)), "created");
    // moto keeps AutoML jobs InProgress: the second call finds the job and keeps waiting.
    assert!(matches!(step(&clients, &stage, &outputs).await, StepOutcome::InProgress(_)));
    let job = clients.sagemaker.describe_auto_ml_job_v2().auto_ml_job_name(&a.job_name).send().await.unwrap();
    assert_eq!(job.role_arn(), Some(ROLE));
    assert_eq!(job.output_data_config().and_then(|o| o.s3_output_path()), Some("s3://mlops-assets/autopilot-output"));
    let Some(aws_sdk_sagemaker::types::AutoMlProblemTypeConfig::TabularJobConfig(tabular)) =
        job.auto_ml_problem_type_config()
    else {
        panic!("tabular")
    };
    assert_eq!(tabular.target_attribute_name(), Some("churn"));
    assert_eq!(tabular.completion_criteria().and_then(|c| c.max_candidates()), Some(10));
    assert_eq!(job.auto_ml_job_objective().and_then(|o| o.metric_name()).map(|m| m.as_str()), Some("F1"));
}

#[tokio::test]
async fn data_quality_baseline_and_a_stopped_one() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ByomDataQualityMonitor);
    let StageParams::Monitor(m) = &stage.params else { panic!("monitor") };
    let outputs = outputs(&[("MonitorRoleArn", ROLE)]);
    let context = fixtures::context();
    let baseline = || monitors::baseline(&clients, &stage, m, &outputs, &context);

    assert!(matches!(baseline().await.unwrap(), StepOutcome::InProgress(_)), "created");
    let done = finished(baseline().await.unwrap());
    assert_eq!(done["baseline_job_name"], json!(m.baseline_job_name));
    assert_eq!(done["baseline_job_status"], "Completed");
    assert_eq!(done["baseline_output"], json!(format!("s3://my-bucket/monitor/baseline/{}", m.baseline_job_name)));

    let job =
        clients.sagemaker.describe_processing_job().processing_job_name(&m.baseline_job_name).send().await.unwrap();
    assert_eq!(job.role_arn(), Some(ROLE));
    // moto does not keep a processing job's Environment; the unit tests pin it.
    let image = job.app_specification().and_then(|a| a.image_uri()).unwrap();
    assert!(image.ends_with("/sagemaker-model-monitor-analyzer"), "{image}");
    let source = job.processing_inputs()[0].s3_input().and_then(|s| s.s3_uri());
    assert_eq!(source, Some("s3://mlops-assets/monitor/baseline/training-dataset-with-header.csv"));

    // A baseline that ended any other way fails the stage with what SageMaker says.
    clients.sagemaker.stop_processing_job().processing_job_name(&m.baseline_job_name).send().await.unwrap();
    match baseline().await {
        Err(TargetError { kind: ErrorKind::Permanent, message, .. }) => {
            assert!(message.contains("is Stopped"), "{message}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a stopped baseline is not done"),
    }
}

/// With `aws.monitor_image_uri` the data- and model-quality baseline jobs run our analyzer: our
/// image, `mlops analyze`.
#[tokio::test]
async fn a_baseline_runs_our_analyzer_when_configured() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let ours = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-orchestrator:1.0";
    let context = AwsContext { monitor_image_uri: Some(ours.into()), ..fixtures::context() };
    // (moto keeps no job environment: `analyzer_environment`'s unit tests check it.)
    for pipeline_type in [PipelineType::ByomDataQualityMonitor, PipelineType::ByomModelQualityMonitor] {
        let stage = fixtures::stage(pipeline_type);
        let StageParams::Monitor(m) = &stage.params else { panic!("monitor") };
        let outputs = outputs(&[("MonitorRoleArn", ROLE)]);
        assert!(matches!(
            monitors::baseline(&clients, &stage, m, &outputs, &context).await.unwrap(),
            StepOutcome::InProgress(_)
        ));
        let job =
            clients.sagemaker.describe_processing_job().processing_job_name(&m.baseline_job_name).send().await.unwrap();
        let app = job.app_specification().unwrap();
        assert_eq!(app.image_uri(), Some(ours));
        assert_eq!(app.container_arguments(), ["analyze"], "{pipeline_type}");
    }
}

#[tokio::test]
async fn model_bias_baseline_reads_the_header_and_the_endpoints_model() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ByomModelBiasMonitor);
    let StageParams::Monitor(m) = &stage.params else { panic!("monitor") };
    let outputs = outputs(&[("MonitorRoleArn", ROLE)]);
    let context = fixtures::context();
    create_bucket(&clients, ASSETS).await;
    create_bucket(&clients, "my-bucket").await;
    let csv = "credit_risk,age,personal_status_sex,amount\r\n1,45,2,1000\r\n0,30,1,200\r\n";
    clients
        .s3
        .put_object()
        .bucket(ASSETS)
        .key(m.baseline_data.as_str())
        .body(csv.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    create_endpoint(&clients, m.endpoint_name.as_str(), "churn-model-v3").await;

    let baseline = || monitors::baseline(&clients, &stage, m, &outputs, &context);
    assert!(matches!(baseline().await.unwrap(), StepOutcome::InProgress(_)), "created");

    let prefix = format!("monitor/baseline/{}", m.baseline_job_name);
    let read = |key: String| {
        let s3 = clients.s3.clone();
        async move {
            let out =
                s3.get_object().bucket("my-bucket").key(&key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
            serde_json::from_slice::<Value>(&out.body.collect().await.unwrap().into_bytes()).unwrap()
        }
    };
    let job_config = read(format!("{prefix}/analysis_config.json")).await;
    assert_eq!(job_config["headers"], json!(["credit_risk", "age", "personal_status_sex", "amount"]));
    assert_eq!(job_config["label"], "credit_risk");
    assert_eq!(job_config["predictor"]["model_name"], "churn-model-v3");
    assert_eq!(job_config["methods"]["post_training_bias"], json!({"methods": "all"}));
    let monitor_config = read(format!("{prefix}/monitor/analysis_config.json")).await;
    assert_eq!(monitor_config["facet"], json!([{"name_or_index": "age", "value_or_threshold": [40]}]));
    assert!(monitor_config.get("predictor").is_none());

    let job =
        clients.sagemaker.describe_processing_job().processing_job_name(&m.baseline_job_name).send().await.unwrap();
    let image = job.app_specification().and_then(|a| a.image_uri()).unwrap();
    assert!(image.contains("sagemaker-clarify-processing"), "{image}");
    let inputs: Vec<_> = job.processing_inputs().iter().filter_map(|i| i.input_name()).collect();
    assert_eq!(inputs, ["dataset", "analysis_config"]);

    let done = finished(baseline().await.unwrap());
    assert_eq!(done["analysis_config"], json!(format!("s3://my-bucket/{prefix}/monitor/analysis_config.json")));
}

#[tokio::test]
async fn explainability_baseline_fails_clearly_without_the_endpoint() {
    let moto = Moto::start().await;
    let clients = moto.clients().await;
    let stage = fixtures::stage(PipelineType::ByomModelExplainabilityMonitor);
    let StageParams::Monitor(m) = &stage.params else { panic!("monitor") };
    let outputs = outputs(&[("MonitorRoleArn", ROLE)]);
    create_bucket(&clients, ASSETS).await;
    clients
        .s3
        .put_object()
        .bucket(ASSETS)
        .key(m.baseline_data.as_str())
        .body(b"y,a,b\n1,2,3\n".to_vec().into())
        .send()
        .await
        .unwrap();

    match monitors::baseline(&clients, &stage, m, &outputs, &fixtures::context()).await {
        Err(TargetError { kind: ErrorKind::Permanent, message, .. }) => {
            assert!(message.starts_with("DescribeEndpoint:"), "{message}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("no endpoint, no baseline"),
    }
}
