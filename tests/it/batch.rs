//! `byom_batch_builtin` on the local target, end to end through `/provisionpipeline`: every input
//! object under the prefix gives one `<name>.out` under the output location whose lines are
//! xgboost's own predictions for the input's lines.

use crate::on_both_stores;
use crate::support::api::{csv_rows, fixture_json};
use crate::support::server::test_settings;
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn batch_body(model_name: &str, key: &str, input: &str, output: &str) -> Value {
    json!({
        "pipeline_type": "byom_batch_builtin",
        "model_name": model_name,
        "model_framework": "xgboost",
        "model_framework_version": "1.2-2",
        "model_artifact_location": key,
        "inference_instance": "ml.m5.large",
        "batch_inference_data": input,
        "batch_job_output_location": output,
    })
}

fn objects_root(server: &TestServer) -> PathBuf {
    server.db.dir.path().join("data/objects")
}

/// The lines of an output object as numbers.
fn read_output(path: &std::path::Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect()).collect()
}

fn assert_predictions(actual: &[Vec<f64>], expected: &[Value]) {
    assert_eq!(actual.len(), expected.len());
    for (row, (got, want)) in actual.iter().zip(expected).enumerate() {
        let want: Vec<f64> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got.len(), want.len(), "row {row}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "row {row}: {got:?} != {want:?}");
        }
    }
}

fn batch_events(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "batch.progress")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// CSV and JSON-lines inputs under a prefix (one in a sub-folder), blank lines and CRLF line
/// ends included: one `.out` per input, lines in input order, xgboost's numbers.
async fn transforms_every_object_under_the_prefix(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let predictions = cases["predictions"].as_array().unwrap();

    let (first, second) = rows.split_at(25);
    let csv = format!("{}\n\n", csv_rows(first).replace('\n', "\r\n"));
    assert_eq!(server.put_asset("batch/iris/part-1.csv", csv.into_bytes()).await.status(), 201);
    let jsonl: String = second.iter().map(|r| format!("{r}\n")).collect();
    assert_eq!(server.put_asset("batch/iris/more/part-2.jsonl", jsonl.into_bytes()).await.status(), 201);

    let body = batch_body("iris", "models/iris.json", "assets/batch/iris", "results/iris/");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for(&id, "active").await;

    let out = objects_root(&server).join("results/iris");
    assert_predictions(&read_output(&out.join("part-1.csv.out")), &predictions[..25]);
    assert_predictions(&read_output(&out.join("more/part-2.jsonl.out")), &predictions[25..]);
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["files"], 2);
    assert_eq!(outputs["rows"], rows.len());
    assert_eq!(outputs["resumed_files"], 0);
    assert_eq!(outputs["batch_job_output_location"], "results/iris");

    let progress = batch_events(&server.events(&id).await);
    assert!(
        progress.iter().any(|m| m.starts_with("1 of 2 files: assets/batch/iris/more/part-2.jsonl")),
        "{progress:?}"
    );
    assert!(progress.iter().any(|m| m.starts_with("2 of 2 files: assets/batch/iris/part-1.csv")), "{progress:?}");
    assert!(
        progress.last().unwrap().starts_with(&format!(
            "batch transform finished: 2 files (0 resumed from an earlier run), {} rows",
            rows.len()
        )),
        "{progress:?}"
    );

    // One object named exactly: only that one, its output named after it.
    let body = batch_body("iris-one", "models/iris.json", "assets/batch/iris/part-1.csv", "results/one");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    let one = objects_root(&server).join("results/one");
    assert_predictions(&read_output(&one.join("part-1.csv.out")), &predictions[..25]);
    assert_eq!(std::fs::read_dir(&one).unwrap().count(), 1);
    server.stop().await;
}

/// An object of many reads and chunks (lines straddling every read): every line's prediction, in
/// input order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_keeps_every_line_in_order() {
    let server = TestServer::start(TestDb::new(crate::support::Db::Sqlite).await).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let predictions = cases["predictions"].as_array().unwrap();
    // About 3.5 MiB: the fixture's rows over and over, so that a line's prediction says which
    // line it was.
    let block = format!("{}\n", csv_rows(rows));
    let repeats = 3_500_000 / block.len() + 1;
    assert_eq!(server.put_asset("batch/large/in.csv", block.repeat(repeats).into_bytes()).await.status(), 201);

    let body = batch_body("iris-large", "models/iris.json", "assets/batch/large", "results/large");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    let expected: Vec<Value> = predictions.iter().cycle().take(predictions.len() * repeats).cloned().collect();
    assert_predictions(&read_output(&objects_root(&server).join("results/large/in.csv.out")), &expected);
    server.stop().await;
}

/// A bad record fails the pipeline with the file, line and column, and leaves no output for
/// that file (the files before it are complete).
async fn a_bad_record_names_file_line_and_column(db: TestDb) {
    let server = TestServer::start(db).await;
    server.upload_fixture("models/iris.json", "xgboost/multi_softprob.json").await;
    assert_eq!(server.put_asset("batch/bad/a.csv", b"5.1,3.5,1.4,0.2\n".to_vec()).await.status(), 201);
    // Many good lines first, so the bad one is scored in a later chunk than the first.
    let mut bad = "6.2,2.9,4.3,1.3\n".repeat(100_000);
    bad.push_str("6.2,2.9,4.3,1.3\n5.9,x,5.1,1.8\n");
    assert_eq!(server.put_asset("batch/bad/b.csv", bad.into_bytes()).await.status(), 201);

    let body = batch_body("iris-bad", "models/iris.json", "assets/batch/bad", "results/bad");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("assets/batch/bad/b.csv: line 100002, column 2: \"x\" is not a number"), "{error}");
    let out = objects_root(&server).join("results/bad");
    assert_eq!(read_output(&out.join("a.csv.out")).len(), 1);
    assert!(!out.join("b.csv.out").exists(), "no half-written output");
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no staging file left behind: {leftovers:?}");

    // Nothing to read is a failure that says so.
    let body = batch_body("iris-none", "models/iris.json", "assets/batch/nothing-here", "results/none");
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
    assert!(failed["last_error"].as_str().unwrap().contains("names no object"), "{failed:#}");
    server.stop().await;
}

/// dev → staging → prod: each environment transforms its own input with the model dev ran,
/// after approval.
async fn promotion_runs_each_environment_with_the_first_stages_model(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.environments = vec!["dev".into(), "staging".into(), "prod".into()];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let cases = fixture_json("xgboost/binary_logistic.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    for env in ["dev", "staging", "prod"] {
        let response = server.put_asset(&format!("batch/{env}/in.csv"), csv_rows(rows).into_bytes()).await;
        assert_eq!(response.status(), 201);
    }
    let mut body = batch_body("churn", "models/churn/model.tar.gz", "", "");
    body["batch_inference_data"] =
        json!({"dev": "assets/batch/dev", "staging": "assets/batch/staging", "prod": "assets/batch/prod"});
    body["batch_job_output_location"] = json!({"dev": "out/dev", "staging": "out/staging", "prod": "out/prod"});
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    server.wait_for(&id, "awaiting_approval").await;
    let root = objects_root(&server);
    assert!(root.join("out/dev/in.csv.out").exists());
    assert!(!root.join("out/staging").exists(), "staging waits for its approval");

    // The asset changes after dev ran: later stages still run the model dev ran.
    assert_eq!(server.put_asset("models/churn/model.tar.gz", b"not a model".to_vec()).await.status(), 201);
    let pipeline = server.approve_staging_and_prod(&id).await;
    let predictions = cases["predictions"].as_array().unwrap();
    for env in ["dev", "staging", "prod"] {
        assert_predictions(&read_output(&root.join(format!("out/{env}/in.csv.out"))), predictions);
    }
    let shas: Vec<&Value> =
        pipeline["stages"].as_array().unwrap().iter().map(|s| &s["outputs"]["model_sha256"]).collect();
    assert!(shas.iter().all(|s| *s == shas[0] && s.is_string()), "{shas:?}");
    server.stop().await;
}

on_both_stores!(transforms_every_object_under_the_prefix);
on_both_stores!(a_bad_record_names_file_line_and_column);
on_both_stores!(promotion_runs_each_environment_with_the_first_stages_model);

/// The store seen by the target, failing every checkpoint save after the first `saves_allowed`
/// (as a crash right after an output object was completed would), and keeping the last saved.
struct CrashingPort {
    saves_allowed: std::sync::atomic::AtomicUsize,
    saved: std::sync::Mutex<Option<Value>>,
    inner: mlops::targets::DynTargetStore,
}

#[async_trait::async_trait]
impl mlops::targets::TargetStore for CrashingPort {
    async fn stages(&self, pipeline_id: &str) -> Result<Vec<mlops::store::StageRecord>, mlops::store::StoreError> {
        self.inner.stages(pipeline_id).await
    }
    async fn set_external_id(&self, pipeline_id: &str, external_id: &str) -> Result<(), mlops::store::StoreError> {
        self.inner.set_external_id(pipeline_id, external_id).await
    }
    async fn activate_endpoint(
        &self,
        key: &mlops::store::StageKey,
        environment: &str,
        name: &str,
        config: Value,
    ) -> Result<mlops::store::EndpointRecord, mlops::store::StoreError> {
        self.inner.activate_endpoint(key, environment, name, config).await
    }
    async fn save_checkpoint(
        &self,
        _key: &mlops::store::StageKey,
        checkpoint: &Value,
    ) -> Result<bool, mlops::store::StoreError> {
        use std::sync::atomic::Ordering;
        if self.saves_allowed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Err(mlops::store::StoreError::Corrupt("the process died here".into()));
        }
        *self.saved.lock().unwrap() = Some(checkpoint.clone());
        Ok(true)
    }
    async fn progress(
        &self,
        _key: &mlops::store::StageKey,
        _kind: &str,
        _message: &str,
    ) -> Result<(), mlops::store::StoreError> {
        Ok(())
    }
    async fn register_algorithm(
        &self,
        pipeline_id: &str,
        name: &str,
        sha256: &str,
        source: &str,
        details: &Value,
    ) -> Result<mlops::store::AlgorithmRecord, mlops::store::StoreError> {
        self.inner.register_algorithm(pipeline_id, name, sha256, source, details).await
    }
    async fn algorithm(&self, name: &str) -> Result<Option<mlops::store::AlgorithmRecord>, mlops::store::StoreError> {
        self.inner.algorithm(name).await
    }
    async fn delete_algorithms(&self, pipeline_id: &str) -> Result<(), mlops::store::StoreError> {
        self.inner.delete_algorithms(pipeline_id).await
    }

    async fn save_monitor(
        &self,
        monitor: &mlops::store::NewMonitor,
    ) -> Result<mlops::store::MonitorRecord, mlops::store::StoreError> {
        self.inner.save_monitor(monitor).await
    }

    async fn delete_monitors(&self, pipeline_id: &str) -> Result<(), mlops::store::StoreError> {
        self.inner.delete_monitors(pipeline_id).await
    }

    async fn model_package(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Option<mlops::store::ModelPackageRecord>, mlops::store::StoreError> {
        self.inner.model_package(group, version).await
    }

    async fn live_pipeline(
        &self,
        pipeline_type: &str,
        name: &str,
    ) -> Result<Option<mlops::store::PipelineRecord>, mlops::store::StoreError> {
        self.inner.live_pipeline(pipeline_type, name).await
    }

    async fn training_outputs(&self, job_name: &str) -> Result<Option<Value>, mlops::store::StoreError> {
        self.inner.training_outputs(job_name).await
    }
}

/// A transform interrupted after its first object resumes from the checkpoint: the finished
/// object is not transformed again, unless its input changed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transform_resumes_from_its_checkpoint() {
    use mlops::domain::StageParams;
    use mlops::domain::plan::BatchStage;
    use mlops::domain::spec::ModelSource;
    use mlops::domain::values::{AssetKey, InstanceType, S3Location};
    use mlops::targets::{StageContext, StepOutcome, Target};

    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let root = db.dir.path().join("objects");
    let artifacts = mlops::artifacts::ArtifactStore::local(&root, "assets").unwrap();
    let model = std::fs::read(crate::support::api::fixture("xgboost/multi_softprob.json")).unwrap();
    std::fs::create_dir_all(root.join("assets/models")).unwrap();
    std::fs::write(root.join("assets/models/iris.json"), model).unwrap();
    let cases = fixture_json("xgboost/multi_softprob.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let predictions = cases["predictions"].as_array().unwrap();
    std::fs::create_dir_all(root.join("assets/in")).unwrap();
    std::fs::write(root.join("assets/in/a.csv"), csv_rows(&rows[..20])).unwrap();
    std::fs::write(root.join("assets/in/b.csv"), csv_rows(&rows[20..])).unwrap();

    let registry = std::sync::Arc::new(mlops::serving::endpoints::EndpointRegistry::new(
        db.store.clone(),
        artifacts.clone(),
        Duration::from_secs(1),
        1 << 30,
        Default::default(),
        mlops::serving::endpoints::Capacity { max_models: 4, max_bytes: 1 << 30, load_wait: Duration::from_secs(1) },
    ));
    let port = std::sync::Arc::new(CrashingPort {
        saves_allowed: 1.into(),
        saved: Default::default(),
        inner: mlops::targets::StorePort::of(&db.store),
    });
    let target = mlops::targets::local::LocalTarget::new(port.clone(), registry, artifacts);
    let mut stage = StageContext {
        key: mlops::store::StageKey { pipeline_id: "p1".into(), ordinal: 0, version: 1 },
        pipeline_type: mlops::domain::PipelineType::ByomBatchBuiltin,
        pipeline_name: "iris".into(),
        environment: "default".into(),
        params: StageParams::Batch(BatchStage {
            model_name: "iris".into(),
            model: ModelSource::BuiltIn {
                framework: "xgboost".into(),
                framework_version: "1.2-2".into(),
                artifact: AssetKey::parse("models/iris.json").unwrap(),
            },
            inference_instance: InstanceType::parse("ml.m5.large").unwrap(),
            batch_inference_data: S3Location::parse("assets/in").unwrap(),
            batch_job_output_location: S3Location::parse("out").unwrap(),
            kms_key_arn: None,
        }),
        started_at: chrono::Utc::now(),
        decision: None,
        promoted_from: None,
        checkpoint: None,
        release: None,
    };

    // First run: a.csv completes and is checkpointed; the process "dies" after b.csv.
    let interrupted = target.deploy_stage(&stage).await;
    assert!(interrupted.is_err(), "{interrupted:?}");
    let checkpoint = port.saved.lock().unwrap().clone().expect("a.csv was checkpointed");
    assert!(checkpoint["files"].get("assets/in/a.csv").is_some(), "{checkpoint:#}");

    // The restarted job resumes: a.csv is not transformed again (its output keeps a marker).
    std::fs::write(root.join("out/a.csv.out"), "marker\n").unwrap();
    port.saves_allowed.store(10, std::sync::atomic::Ordering::SeqCst);
    stage.checkpoint = Some(checkpoint.clone());
    let Ok(StepOutcome::Done(outputs)) = target.deploy_stage(&stage).await else { panic!("resumed run failed") };
    assert_eq!(outputs["resumed_files"], 1, "{outputs:#}");
    assert_eq!(outputs["rows"], rows.len(), "resumed figures count the finished file: {outputs:#}");
    assert_eq!(std::fs::read_to_string(root.join("out/a.csv.out")).unwrap(), "marker\n");
    assert_predictions(&read_output(&root.join("out/b.csv.out")), &predictions[20..]);

    // An input changed since it was checkpointed is transformed again.
    std::fs::write(root.join("assets/in/a.csv"), csv_rows(&rows[..10])).unwrap();
    let Ok(StepOutcome::Done(outputs)) = target.deploy_stage(&stage).await else { panic!("third run failed") };
    assert_eq!(outputs["resumed_files"], 0, "{outputs:#}");
    assert_predictions(&read_output(&root.join("out/a.csv.out")), &predictions[..10]);
}
