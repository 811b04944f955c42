//! The AWS solution's own test-fixture request bodies (tests/fixtures/solution) on the local
//! target, for real, on both stores: the built-in real-time body serves (and the same body with
//! `endpoint_name` updates it), the built-in batch body transforms its input, the image-builder
//! body builds its algorithm; the rest get what docs/API.md §10 says — the monitors a 400 naming
//! `endpoint_name`, AutoML a 422 (no training here), the custom bodies a failed deploy naming
//! the algorithm their made-up `custom_image_uri` does not name, and the second body asking for
//! endpoint `test-endpoint` a 409.

use crate::algorithms::zip_folder;
use crate::on_both_stores;
use crate::support::api::{fixture, fixture_json};
use crate::support::server::{INVOKER, OPERATOR};
use crate::support::{TestDb, TestServer};
use serde_json::Value;

async fn the_solutions_fixture_bodies_on_the_local_target(db: TestDb) {
    let bodies = fixture_json("solution/bodies.json");
    let server = TestServer::start(db).await;
    let objects = server.db.dir.path().join("data/objects");
    // What the bodies point at: the model (an asset key), the batch input (bucket/key) and the
    // image builder's zip.
    server.upload_fixture("model.tar.gz", "xgboost/model.tar.gz").await;
    std::fs::create_dir_all(objects.join("inference")).unwrap();
    let rows: Vec<String> = (0..50).map(|i| vec![format!("{}", i % 7); 30].join(",")).collect();
    std::fs::write(objects.join("inference/data.csv"), rows.join("\n") + "\n").unwrap();
    let zip = zip_folder(&fixture("algorithms/linear"), &[], &[]);
    assert_eq!(server.put_asset("custom/custom_image.zip", zip).await.status(), 201);

    let mut outcomes = Vec::new();
    for (name, body) in bodies.as_object().unwrap() {
        if name.ends_with("-multi") {
            continue; // one environment here; tests/it/aws_target.rs runs them multi-account
        }
        let response = server.post("/provisionpipeline", OPERATOR).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        match name.as_str() {
            n if n.ends_with("_monitor") => {
                assert_eq!(status, 400, "{name}: {answer:#}");
                assert_eq!(answer["errors"][0]["pointer"], "/endpoint_name", "{name}: {answer:#}");
                continue;
            }
            "model_autopilot_training" => {
                assert_eq!(status, 422, "{name}: {answer:#}");
                continue;
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
        if name.starts_with("byom_realtime_custom") || name.starts_with("byom_batch_custom") {
            let failed = server.wait_for(&id, "failed").await;
            let error = failed["last_error"].as_str().unwrap();
            assert!(error.contains("custom_image_uri \"custom-image-uri\" names no algorithm"), "{name}: {error}");
            continue;
        }
        server.wait_for(&id, "active").await;
        outcomes.push(name.clone());
        if name == "byom_realtime_builtin" {
            let answer = server.invoke("testmodel", "text/csv", vec!["1"; 30].join(","), INVOKER).await;
            assert_eq!(answer.status(), 200);
        }
    }
    assert_eq!(
        outcomes,
        ["byom_batch_builtin", "byom_image_builder", "byom_realtime_builtin", "byom_realtime_builtin-endpoint"]
    );
    // The update moved the endpoint to the body's endpoint_name.
    let answer = server.invoke("test-endpoint", "text/csv", vec!["1"; 30].join(","), INVOKER).await;
    assert_eq!(answer.status(), 200);
    let p: f64 = answer.text().await.unwrap().trim().parse().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let out = std::fs::read_to_string(objects.join("bucket/output/data.csv.out")).unwrap();
    assert_eq!(out.lines().count(), 50);
    let algorithm =
        server.get("/v1/algorithms/mlops-ecrrep:tree", crate::support::server::VIEWER).send().await.unwrap();
    assert_eq!(algorithm.status(), 200);
    server.stop().await;
}

on_both_stores!(the_solutions_fixture_bodies_on_the_local_target);
