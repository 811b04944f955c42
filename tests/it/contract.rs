//! Contract fuzzing: schemathesis (pinned in `.ci/requirements.txt`) generates requests from the
//! served OpenAPI document and checks every answer against it, on a live server with
//! authentication on. Time-bounded; never skipped (a missing schemathesis fails the test).

use crate::support::api::realtime_body;
use crate::support::server::ADMIN;
use crate::support::{Db, TestDb, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_conforms_to_its_openapi_document_under_fuzzing() {
    let bin = crate::support::aws::moto::python_bin().join("schemathesis");
    assert!(
        bin.exists(),
        "schemathesis not found at {}. Install it with\n    ~/.cache/mlops-venvs/ci/bin/pip install -r .ci/requirements.txt\n\
         or run .ci/run, or point CI_PYTHON_BIN at a directory holding it.",
        bin.display()
    );
    let server = TestServer::start(TestDb::new(Db::Sqlite).await).await;
    // Something to find: a deployed pipeline with an endpoint.
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;

    let work = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&bin)
        .current_dir(work.path())
        .args([
            "run",
            &format!("{}/openapi.json", server.base),
            "--header",
            &format!("Authorization: Bearer {ADMIN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
            "--max-time",
            "60",
            "--workers",
            "2",
            "--seed",
            "20261202",
            "--warnings",
            "off",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run schemathesis");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found contract failures:\n{report}");
    assert!(report.contains("passed"), "schemathesis ran no test case:\n{report}");
    server.stop().await;
}
