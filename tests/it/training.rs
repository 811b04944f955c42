//! `model_training_builtin` with XGBoost on the local target: SageMaker's built-in XGBoost
//! contract (CSV without a header, the label first; `num_round`), trained by xgboost, the model
//! where SageMaker writes it (`<job_output_location>/<job_name>/output/model.tar.gz`), served as
//! xgboost predicts, and the final `validation:auc` what the served model scores; tuning jobs
//! (`model_tuner_builtin`) on the same trainer.

use crate::automl::{dataset, deploy_and_score, get_asset, server_with_trainer, xgboost_predicts};
use crate::on_both_stores;
use crate::support::server::OPERATOR;
use crate::support::{Db, TestDb};
use serde_json::{Value, json};

/// `rows` rows as SageMaker's XGBoost reads CSV: the 0/1 label first, no header.
fn channel(rows: usize, seed_offset: usize) -> String {
    let with_header = dataset(rows + seed_offset, "label", |x, noise| {
        if x[0] + 2.0 * x[1] - x[2] + noise > 0.0 { "1" } else { "0" }.to_string()
    });
    with_header
        .lines()
        .skip(1 + seed_offset)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let mut out = vec![fields[2]];
            out.extend(fields[..2].iter().chain(&fields[3..]));
            out.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn training_body(job_name: &str, train: &str, validation: Option<&str>) -> Value {
    let mut body = json!({
        "pipeline_type": "model_training_builtin",
        "model_name": "churn-xgb",
        "job_name": job_name,
        "training_data": train,
        "job_output_location": "training-output",
        "model_framework": "xgboost",
        "model_framework_version": "1.7-1",
        "algo_hyperparamaters": {"num_round": "40", "objective": "binary:logistic", "eval_metric": "auc", "max_depth": "3"},
    });
    if let Some(v) = validation {
        body["validation_data"] = json!(v);
    }
    body
}

/// A model card whose `training_details.training_job_name` is `job`: its filled-in
/// `training_job_details` (or the problem, when refused).
async fn card_training_details(server: &crate::support::TestServer, card: &str, job: &str) -> (u16, Value) {
    let body = json!({"pipeline_type": "create_model_card", "name": card,
                      "training_details": {"training_job_name": job}});
    let response = server.post("/provisionpipeline", OPERATOR).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    if status != 200 {
        return (status, answer);
    }
    let content: Value = serde_json::from_str(answer["message"]["Content"].as_str().unwrap()).unwrap();
    (status, content["training_details"]["training_job_details"].clone())
}

/// The ROC AUC of `scores` for 0/1 `labels` (Mann–Whitney, ties counted half).
fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    let (mut pairs, mut wins) = (0.0, 0.0);
    for (s1, _) in scores.iter().zip(labels).filter(|(_, l)| **l == 1.0) {
        for (s0, _) in scores.iter().zip(labels).filter(|(_, l)| **l == 0.0) {
            pairs += 1.0;
            wins += if s1 > s0 {
                1.0
            } else if s1 == s0 {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / pairs
}

async fn an_xgboost_training_job_writes_the_model_sagemaker_would(db: TestDb) {
    let server = server_with_trainer(db).await;
    let (train, validation) = (channel(400, 0), channel(100, 400));
    assert_eq!(server.put_asset("training/train.csv", train.into_bytes()).await.status(), 201);
    assert_eq!(server.put_asset("training/validation.csv", validation.clone().into_bytes()).await.status(), 201);
    let body = training_body("churn-xgb-1", "training/train.csv", Some("training/validation.csv"));
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let pipeline = server.wait_for_longer(&id, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["TrainingJobName"], "churn-xgb-1", "{outputs:#}");
    assert_eq!(outputs["TrainingJobOutputLocation"], "training-output");
    assert_eq!(outputs["ValidationDataLocation"], "training/validation.csv");
    assert_eq!(outputs["rounds"], 40);
    let model = "training-output/churn-xgb-1/output/model.tar.gz";
    assert_eq!(outputs["model_artifacts"], model);
    let reported = outputs["final_metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["MetricName"] == "validation:auc")
        .unwrap_or_else(|| panic!("{outputs:#}"))["Value"]
        .as_f64()
        .unwrap();

    let (labels, rows): (Vec<f64>, Vec<&str>) =
        validation.lines().map(|l| l.split_once(',').unwrap()).map(|(l, r)| (l.parse::<f64>().unwrap(), r)).unzip();
    let rows = rows.join("\n");
    let served: Vec<f64> =
        deploy_and_score(&server, model, "churn-trained", &rows).await.into_iter().map(|p| p[0]).collect();
    let reference = xgboost_predicts(&get_asset(&server, model).await, &rows);
    for (ours, theirs) in served.iter().zip(&reference) {
        assert!((ours - theirs).abs() <= 1e-5 * theirs.abs().max(1e-6), "{ours} vs xgboost {theirs}");
    }
    let ours = auc(&served, &labels);
    assert!((ours - reported).abs() < 1e-6, "AUC of the served model {ours}, xgboost reported {reported}");
    assert!(reported > 0.9, "the data is learnable: AUC {reported}");
    // The model registry finds it by the training job's name, where SageMaker would have written it.
    let group = server.post("/v1/model-package-groups", OPERATOR).json(&json!({"name": "churn-trained"})).send().await;
    assert_eq!(group.unwrap().status(), 201);
    let registered = server
        .post("/v1/model-package-groups/churn-trained/packages", OPERATOR)
        .json(&json!({"training_job_name": "churn-xgb-1", "job_output_location": "training-output",
                      "model_framework": "xgboost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().await.unwrap();
    assert_eq!(registered["artifact"], model, "{registered:#}");

    // A model card names the job; its details come from our records, as DescribeTrainingJob's.
    let (status, details) = card_training_details(&server, "trained-card", "churn-xgb-1").await;
    assert_eq!(status, 200, "{details:#}");
    assert_eq!(details["training_arn"], "arn:aws:sagemaker:us-east-1:000000000000:training-job/churn-xgb-1");
    assert_eq!(
        details["training_datasets"],
        json!(["s3://assets/training/train.csv", "s3://assets/training/validation.csv"])
    );
    assert!(
        details["training_metrics"].as_array().unwrap().contains(&json!({"name": "validation:auc", "value": reported}))
    );
    let (status, problem) = card_training_details(&server, "unknown-card", "nobody-trained-this").await;
    assert_eq!((status, problem["errors"][0]["pointer"].as_str()), (400, Some("/training_details/training_job_name")));

    let messages = server.event_messages(&id).await;
    assert!(
        messages.iter().any(|m| m.starts_with("training data: 400 rows (100 to validate), 5 features")),
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.starts_with("trained 40 rounds")), "{messages:#?}");
    server.stop().await;
}

on_both_stores!(an_xgboost_training_job_writes_the_model_sagemaker_would);

/// The served model's AUC on `validation` (label first).
async fn served_auc(server: &crate::support::TestServer, model: &str, endpoint: &str, validation: &str) -> f64 {
    let (labels, rows): (Vec<f64>, Vec<&str>) =
        validation.lines().map(|l| l.split_once(',').unwrap()).map(|(l, r)| (l.parse::<f64>().unwrap(), r)).unzip();
    let served: Vec<f64> =
        deploy_and_score(server, model, endpoint, &rows.join("\n")).await.into_iter().map(|p| p[0]).collect();
    auc(&served, &labels)
}

/// `model_tuner_builtin`: one training job per draw from the ranges (the objective's metric added
/// to what xgboost evaluates, as SageMaker's XGBoost does), each model where SageMaker writes it,
/// the best named by the objective — which is what its model, as we serve it, scores; Grid runs
/// every combination of categorical ranges.
async fn a_tuning_job_trains_each_draw_and_names_the_best(db: TestDb) {
    let server = server_with_trainer(db).await;
    let (train, validation) = (channel(400, 0), channel(100, 400));
    assert_eq!(server.put_asset("training/train.csv", train.into_bytes()).await.status(), 201);
    assert_eq!(server.put_asset("training/validation.csv", validation.clone().into_bytes()).await.status(), 201);
    let mut body = training_body("churn-tuning", "training/train.csv", Some("training/validation.csv"));
    body["pipeline_type"] = json!("model_tuner_builtin");
    body["algo_hyperparamaters"] = json!({"num_round": "30", "objective": "binary:logistic", "eval_metric": "logloss"});
    body["tuner_configs"] = json!({
        "objective_metric_name": "validation:auc", "objective_type": "Maximize", "strategy": "Bayesian",
        "max_jobs": 4, "max_parallel_jobs": 2, "early_stopping_type": "Auto",
    });
    body["hyperparamaters_ranges"] = json!({
        "eta": ["continuous", [0.1, 0.5]],
        "max_depth": ["integer", [1, 6]],
        "optimizer": ["categorical", ["sgd", "Adam"]],
    });
    let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let outputs = server.wait_for_longer(&id, "active").await["stages"][0]["outputs"].clone();
    assert_eq!(outputs["training_jobs"], 4, "{outputs:#}");
    assert_eq!(outputs["TrainingJobName"], "churn-tuning");
    let summary: Value =
        serde_json::from_slice(&get_asset(&server, "training-output/churn-tuning/tuning.json").await).unwrap();
    assert_eq!(summary["StrategyRun"], "Random");
    let jobs = summary["TrainingJobSummaries"].as_array().unwrap();
    let values: Vec<f64> =
        jobs.iter().map(|j| j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "best first: {values:?}");
    for job in jobs {
        let tuned = &job["TunedHyperParameters"];
        let eta: f64 = tuned["eta"].as_str().unwrap().parse().unwrap();
        let depth: i64 = tuned["max_depth"].as_str().unwrap().parse().unwrap();
        assert!((0.1..=0.5).contains(&eta) && (1..=6).contains(&depth), "{tuned}");
        assert!(["sgd", "Adam"].contains(&tuned["optimizer"].as_str().unwrap()), "{tuned}");
        let name = job["TrainingJobName"].as_str().unwrap();
        assert!(name.starts_with("churn-tuning-00"), "{name}");
        let metrics = job["FinalMetricDataList"].as_array().unwrap();
        assert!(metrics.iter().any(|m| m["MetricName"] == "validation:logloss"), "the static eval_metric stays");
    }
    assert_eq!(summary["BestTrainingJob"]["TrainingJobName"], outputs["best_training_job"]);
    let best = outputs["best_model_artifacts"].as_str().unwrap();
    assert_eq!(best, format!("training-output/{}/output/model.tar.gz", outputs["best_training_job"].as_str().unwrap()));
    let ours = served_auc(&server, best, "tuned", &validation).await;
    assert!((ours - values[0]).abs() < 1e-6, "AUC of the served best model {ours}, reported {}", values[0]);
    // A model card naming the tuning job gets its best training job's metrics; naming one of
    // its training jobs, that job's.
    let (status, details) = card_training_details(&server, "tuned-card", "churn-tuning").await;
    assert_eq!(status, 200, "{details:#}");
    assert!(
        details["training_metrics"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "validation:auc", "value": values[0]}))
    );
    let last = jobs.last().unwrap();
    let (_, details) = card_training_details(&server, "last-card", last["TrainingJobName"].as_str().unwrap()).await;
    let last_auc = last["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].clone();
    assert!(
        details["training_metrics"].as_array().unwrap().contains(&json!({"name": "validation:auc", "value": last_auc}))
    );

    let mut grid = body.clone();
    grid["model_name"] = json!("churn-grid");
    grid["job_name"] = json!("churn-grid");
    grid["tuner_configs"] =
        json!({"objective_metric_name": "validation:logloss", "objective_type": "Minimize", "strategy": "Grid"});
    grid["hyperparamaters_ranges"] = json!({"max_depth": ["categorical", ["2", "4", "6"]]});
    let id = server.provision(&grid).await["pipeline_id"].as_str().unwrap().to_string();
    let outputs = server.wait_for_longer(&id, "active").await["stages"][0]["outputs"].clone();
    assert_eq!(outputs["training_jobs"], 3, "every combination: {outputs:#}");
    let summary: Value =
        serde_json::from_slice(&get_asset(&server, "training-output/churn-grid/tuning.json").await).unwrap();
    let mut depths: Vec<&str> = summary["TrainingJobSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["TunedHyperParameters"]["max_depth"].as_str().unwrap())
        .collect();
    depths.sort();
    assert_eq!(depths, ["2", "4", "6"]);
    let losses: Vec<f64> = summary["TrainingJobSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"].as_f64().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "Minimize: best first {losses:?}");
    server.stop().await;
}

on_both_stores!(a_tuning_job_trains_each_draw_and_names_the_best);

/// A header row (SageMaker's XGBoost takes none), a bad hyperparameter and a missing
/// `num_round` each fail the job saying so; tuning and other frameworks are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_training_jobs_fail_saying_why() {
    let server = server_with_trainer(TestDb::new(Db::Sqlite).await).await;
    let with_header = format!("label,a,b,c,d,e\n{}", channel(50, 0));
    assert_eq!(server.put_asset("training/header.csv", with_header.into_bytes()).await.status(), 201);
    assert_eq!(server.put_asset("training/ok.csv", channel(50, 0).into_bytes()).await.status(), 201);
    let mut bad_param = training_body("bad-param", "training/ok.csv", None);
    bad_param["algo_hyperparamaters"]["max_depth"] = json!("-3");
    let mut no_rounds = training_body("no-rounds", "training/ok.csv", None);
    no_rounds["algo_hyperparamaters"].as_object_mut().unwrap().remove("num_round");
    for (body, want) in [
        (
            training_body("header", "training/header.csv", None),
            "training/header.csv, line 1, column 1: 'label' is not a number (the label; the CSV has no header row",
        ),
        (bad_param, "xgboost refused the hyperparameters"),
        (no_rounds, "algo_hyperparamaters has no num_round"),
        (
            training_body("missing", "training/none.csv", None),
            "training_data \"training/none.csv\" is neither an asset",
        ),
    ] {
        let id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
        let failed = server.wait_for_longer(&id, "failed").await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains(want), "{}: {error}", body["job_name"]);
    }
    let mut other = training_body("other", "training/ok.csv", None);
    other["model_framework"] = json!("linear-learner");
    let refused = server.post("/provisionpipeline", OPERATOR).json(&other).send().await.unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("model_framework `linear-learner`"), "{problem:#}");
    server.stop().await;
}
