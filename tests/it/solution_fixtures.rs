//! The AWS solution's own test-fixture request bodies (tests/fixtures/solution) on the local
//! target, for real, on both stores: the built-in real-time body serves (and the same body with
//! `endpoint_name` updates it), the built-in batch body transforms its input, the image-builder
//! body builds its algorithm, the custom bodies run the algorithm their `custom_image_uri` names
//! (`custom-image-uri`, i.e. `custom-image-uri:latest`, built first as a user would have pushed
//! it), the AutoML body trains its candidates on `train/data.csv`, and the three monitors watch
//! `test-endpoint` (their `test_endpoint`, `s3://` ground truth and JSON-text bias configuration
//! read as meant, with warnings: docs/API.md §10); the second body asking for endpoint
//! `test-endpoint` gets a 409.

use crate::algorithms::{image_builder_body, zip_folder};
use crate::on_both_stores;
use crate::support::api::{fixture, fixture_json};
use crate::support::server::{INVOKER, OPERATOR};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};

/// The bodies' `model.tar.gz`: the XGBoost fixture model as `xgboost-model` (what the built-in
/// bodies serve) beside `weights.json` (what the fixture algorithm of the custom bodies reads).
fn model_archive(weights: &[f64], bias: f64) -> Vec<u8> {
    let xgboost = std::fs::read(fixture("xgboost/model.tar.gz")).unwrap();
    let mut xgboost_model = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(xgboost.as_slice()));
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("xgboost-model"));
    std::io::Read::read_to_end(&mut entry, &mut xgboost_model).unwrap();
    let weights = serde_json::to_vec(&json!({"weights": weights, "bias": bias})).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (name, bytes) in [("xgboost-model", &xgboost_model), ("weights.json", &weights)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

async fn the_solutions_fixture_bodies_on_the_local_target(db: TestDb) {
    let bodies = fixture_json("solution/bodies.json");
    let mut settings = crate::support::server::test_settings(&db);
    settings.training.python = Some(crate::support::aws::moto::python_bin().join("python").display().to_string());
    let server = TestServer::start_with(db, settings).await;
    let objects = server.db.dir.path().join("data/objects");
    // What the bodies point at: the model (an asset key), the batch input (bucket/key) and the
    // image builder's zip.
    let weights: Vec<f64> = (0..30).map(|i| f64::from(i) / 10.0).collect();
    let bias = 0.5;
    let linear = |row: &[f64]| row.iter().zip(&weights).map(|(v, w)| v * w).sum::<f64>() + bias;
    assert_eq!(server.put_asset("model.tar.gz", model_archive(&weights, bias)).await.status(), 201);
    std::fs::create_dir_all(objects.join("inference")).unwrap();
    let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![f64::from(i % 7); 30]).collect();
    let csv: Vec<String> = rows.iter().map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(",")).collect();
    std::fs::write(objects.join("inference/data.csv"), csv.join("\n") + "\n").unwrap();
    let zip = zip_folder(&fixture("algorithms/linear"), &[], &[]);
    assert_eq!(server.put_asset("custom/custom_image.zip", zip).await.status(), 201);
    // The image the custom bodies name, as their users would have pushed it: an untagged URI
    // means `:latest` (the fixture algorithm without its requirements, to keep this fast).
    let zip = zip_folder(&fixture("algorithms/linear"), &[], &["requirements.txt"]);
    assert_eq!(server.put_asset("custom/latest.zip", zip).await.status(), 201);
    // The AutoML body's training data, with the `target` column it names.
    let training = crate::automl::training_csv(300, "target");
    assert_eq!(server.put_asset("train/data.csv", training.into_bytes()).await.status(), 201);
    let built = server.provision(&image_builder_body("custom/latest.zip", "custom-image-uri", "latest")).await;
    server.wait_for_longer(built["pipeline_id"].as_str().unwrap(), "active").await;

    // The monitors' baseline: the label first, then the 30 features the endpoint's model takes,
    // among them the bias body's facet (`age`) and group (`personal_status_sex`) and the model
    // quality body's prediction column (`0`).
    let mut baseline = String::from("label,0,age,personal_status_sex");
    (4..=30).for_each(|i| baseline += &format!(",f{i}"));
    for i in 0..200u32 {
        let label = u32::from(i % 3 == 0);
        baseline += &format!(
            "\n{label},{},{},{}",
            f64::from(i % 10) / 10.0,
            20 + i % 50,
            ["A91", "A92", "A93"][i as usize % 3]
        );
        (4..=30).for_each(|j| baseline += &format!(",{}", (i * j) % 11));
    }
    baseline.push('\n');
    let key = "model_monitor/training-dataset-with-header.csv";
    assert_eq!(server.put_asset(key, baseline.into_bytes()).await.status(), 201);

    // The monitors watch an endpoint the other bodies deploy: they go last.
    let mut bodies: Vec<(&String, &Value)> = bodies.as_object().unwrap().iter().collect();
    bodies.sort_by_key(|(name, _)| name.ends_with("_monitor"));
    let mut outcomes = Vec::new();
    for (name, body) in bodies {
        if name.ends_with("-multi") {
            continue; // one environment here; tests/it/aws_target.rs runs them multi-account
        }
        let response = server.post("/provisionpipeline", OPERATOR).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        match name.as_str() {
            n if n.ends_with("_monitor") => {
                assert_eq!(status, 200, "{name}: {answer:#}");
                let warnings: Vec<&str> =
                    answer["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
                assert!(
                    warnings[0].starts_with("`endpoint_name` `test_endpoint` was read as `test-endpoint`"),
                    "{warnings:?}"
                );
                let ground_truth =
                    "`monitor_ground_truth_input` `s3://test-bucket/groundtruth` was read as `test-bucket/groundtruth`";
                if n != "byom_data_quality_monitor" {
                    assert!(warnings.iter().any(|w| w.starts_with(ground_truth)), "{warnings:?}");
                }
                if n == "byom_model_bias_monitor" {
                    assert!(warnings.iter().any(|w| w.starts_with("`bias_config` was JSON text")), "{warnings:?}");
                }
            }
            // The built-in body with endpoint_name took `test-endpoint` already (SageMaker too
            // would refuse a second endpoint of that name).
            "byom_realtime_custom-endpoint" => {
                assert_eq!(status, 409, "{name}: {answer:#}");
                assert!(answer["detail"].as_str().unwrap().contains("\"test-endpoint\""), "{answer:#}");
                continue;
            }
            _ => {}
        }
        assert_eq!(status, 200, "{name}: {answer:#}");
        let id = answer["pipeline_id"].as_str().unwrap().to_string();
        server.wait_for_longer(&id, "active").await;
        outcomes.push(name.clone());
        match name.as_str() {
            "byom_realtime_builtin" => {
                let answer = server.invoke("testmodel", "text/csv", vec!["1"; 30].join(","), INVOKER).await;
                assert_eq!(answer.status(), 200);
            }
            "byom_batch_builtin" => {
                let out = std::fs::read_to_string(objects.join("bucket/output/data.csv.out")).unwrap();
                assert_eq!(out.lines().count(), 50);
                assert!(out.lines().all(|p| (0.0..=1.0).contains(&p.parse::<f64>().unwrap())), "{out}");
            }
            // Same output location: the custom transform replaced the built-in one's file.
            "byom_batch_custom" => {
                let out = std::fs::read_to_string(objects.join("bucket/output/data.csv.out")).unwrap();
                let got: Vec<f64> = out.lines().map(|p| p.parse().unwrap()).collect();
                let want: Vec<f64> = rows.iter().map(|r| linear(r)).collect();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-9, "{g} != {w}");
                }
            }
            // `testmodel` is free again: the built-in pipeline's update moved its endpoint.
            "byom_realtime_custom" => {
                let row = vec![2.0; 30];
                let body = row.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
                let answer = server.invoke("testmodel", "text/csv", body, INVOKER).await;
                assert_eq!(answer.status(), 200);
                let p: f64 = answer.text().await.unwrap().trim().parse().unwrap();
                assert!((p - linear(&row)).abs() < 1e-9, "{p}");
            }
            // Each baseline ran on the baseline data against `test-endpoint` (the bias one
            // labelled it with that endpoint's model).
            n if n.ends_with("_monitor") => {
                let outputs = &server.pipeline(&id).await["stages"][0]["outputs"];
                assert_eq!(outputs["baseline_rows"], 200, "{name}: {outputs:#}");
                let schedule = outputs["monitoring_schedule_name"].as_str().unwrap();
                assert!(schedule.starts_with("test-endpoint-"), "{name}: {schedule}");
                let file = |output: &str| {
                    let path = outputs[output].as_str().unwrap_or_else(|| panic!("{name}: no {output}: {outputs:#}"));
                    let bytes = std::fs::read(objects.join(path)).unwrap();
                    serde_json::from_slice::<Value>(&bytes).unwrap()
                };
                if n == "byom_model_bias_monitor" {
                    // The facet the (JSON-text) bias_config names, against the labels [1].
                    let analysis = file("baseline_analysis");
                    let facets = &analysis["post_training_bias_metrics"]["facets"];
                    assert!(facets["age"].is_array(), "{analysis:#}");
                } else {
                    let statistics = file("baseline_statistics");
                    assert_eq!(statistics["dataset"]["item_count"], 200, "{name}: {statistics:#}");
                }
            }
            "model_autopilot_training" => {
                let outputs = &server.pipeline(&id).await["stages"][0]["outputs"];
                assert_eq!(outputs["AutopilotJobName"], "test-job", "{outputs:#}");
                assert_eq!(outputs["AutopilotJobOutputLocation"], "training-output");
                assert_eq!(outputs["candidates"], 10, "job_max_candidates' default");
                let result = crate::automl::get_asset(&server, "training-output/test-job/result.json").await;
                let result: Value = serde_json::from_slice(&result).unwrap();
                assert_eq!(result["BestCandidate"]["CandidateName"], outputs["best_candidate"]);
            }
            _ => {}
        }
    }
    assert_eq!(
        outcomes,
        [
            "byom_batch_builtin",
            "byom_batch_custom",
            "byom_image_builder",
            "byom_realtime_builtin",
            "byom_realtime_builtin-endpoint",
            "byom_realtime_custom",
            "model_autopilot_training",
            "byom_data_quality_monitor",
            "byom_model_bias_monitor",
            "byom_model_quality_monitor"
        ]
    );
    // The update moved the endpoint to the body's endpoint_name.
    let answer = server.invoke("test-endpoint", "text/csv", vec!["1"; 30].join(","), INVOKER).await;
    assert_eq!(answer.status(), 200);
    let p: f64 = answer.text().await.unwrap().trim().parse().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let algorithm =
        server.get("/v1/algorithms/mlops-ecrrep:tree", crate::support::server::VIEWER).send().await.unwrap();
    assert_eq!(algorithm.status(), 200);
    server.stop().await;
}

on_both_stores!(the_solutions_fixture_bodies_on_the_local_target);
