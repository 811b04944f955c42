//! Two replicas on one Postgres with their object root in one S3 bucket (moto): a pipeline
//! deployed through one is served by both, and every record either captures lands in the bucket.

use crate::support::api::{csv_rows, fixture_json, realtime_body};
use crate::support::aws::AwsTestEnv;
use crate::support::server::{INVOKER, test_settings};
use crate::support::{Db, TestDb, TestServer};
use mlops::config::S3Root;

const BUCKET: &str = "mlops-objects";
const CAPTURE: &str = "root/my-bucket/datacapture/churn/churn-endpoint/AllTraffic/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_an_s3_object_root() {
    let aws = AwsTestEnv::start().await;
    aws.export_credentials();
    aws.create_versioned_bucket(BUCKET).await;
    let db = TestDb::new(Db::Postgres).await;
    let replica_db = db.replica();
    let settings = |db: &TestDb| {
        let mut s = test_settings(db);
        s.assets.s3 = Some(S3Root {
            bucket: BUCKET.into(),
            prefix: "root/".into(),
            region: aws.region().into(),
            endpoint_url: Some(aws.endpoint_url().into()),
        });
        s
    };
    let (first_settings, second_settings) = (settings(&db), settings(&replica_db));
    let first = TestServer::start_with(db, first_settings).await;
    let second = TestServer::start_with(replica_db, second_settings).await;

    first.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = first.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    first.wait_for(&id, "active").await;
    // No object on either replica's disk: the second reads the model's snapshot from the bucket.
    for server in [&first, &second] {
        assert!(!server.db.dir.path().join("data/objects").exists());
    }

    let cases = fixture_json("xgboost/binary_logistic.cases.json");
    let rows = cases["rows"].as_array().unwrap();
    let mut served: usize = 0;
    for (i, row) in rows.iter().enumerate() {
        let server = if i % 2 == 0 { &first } else { &second };
        let response = server.invoke("churn-endpoint", "text/csv", csv_rows(std::slice::from_ref(row)), INVOKER).await;
        assert_eq!(response.status(), 200, "replica {}", i % 2);
        let got: f64 = response.text().await.unwrap().trim().parse().unwrap();
        let want = cases["predictions"][i][0].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-6, "row {i}: {got} != {want}");
        served += 1;
    }
    // Capture figures are the endpoint's, whichever replica answers: each adds its counts to the
    // database every flush interval (200 ms here).
    let figures = |server: &TestServer| {
        let request = server.get("/v1/endpoints/churn-endpoint", crate::support::server::VIEWER);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["capture"].clone() }
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for (server, own) in [(&first, served.div_ceil(2)), (&second, served / 2)] {
        loop {
            let capture = figures(server).await;
            assert_eq!(capture["this_replica"]["captured"], own, "{capture:#}");
            if capture["captured"] == served && capture["written"] == served {
                assert_eq!(capture["dropped"], 0, "{capture:#}");
                assert!(capture["last_flush"].is_string(), "{capture:#}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the replicas' figures never added up: {capture:#}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // A clean stop flushes each replica's capture buffer.
    second.stop().await;
    let db = first.stop().await;
    // A restarted replica starts counting from zero; the endpoint's figures stay.
    let restarted_settings = settings(&db);
    let restarted = TestServer::start_with(db, restarted_settings).await;
    let capture = figures(&restarted).await;
    assert_eq!(
        (capture["captured"].as_u64(), capture["this_replica"]["captured"].as_u64()),
        (Some(served as u64), Some(0))
    );
    restarted.stop().await;

    let client = aws.client();
    let listing = client.s3("GET", BUCKET, None, &format!("list-type=2&prefix={CAPTURE}"), &[], Vec::new()).await;
    let keys = listing.xml_all("Key");
    assert!(keys.len() >= 2, "each replica wrote its own capture objects: {keys:?}");
    let mut records = 0;
    for key in &keys {
        let object = client.s3("GET", BUCKET, Some(key), "", &[], Vec::new()).await;
        assert!(object.status.is_success(), "{key}: {}", object.status);
        for line in object.text().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(record["captureData"]["endpointInput"]["observedContentType"], "text/csv");
            records += 1;
        }
    }
    assert_eq!(records, served, "every captured record is in the bucket");
}
