//! Config sources (issue 14): `mlops-config.json` from a real Git repository (commit, amend,
//! push to a bare repository, push webhooks signed as GitHub and GitLab sign them) and from a
//! configuration bucket (the local store, and S3 on moto). A commit provisions exactly as
//! `POST /provisionpipeline` does; a changed one updates; an invalid one is a rejected revision
//! with the API's field errors and a notification.

use crate::notifications::{Helper, webhook};
use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::server::{OPERATOR, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use hmac::{Hmac, Mac};
use mlops::config::{BucketSource, GitSource};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;

const HOOK_SECRET: &str = "push-secret-0123456789";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-12-03T10:00:00Z")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working copy whose `origin` is a bare repository, as a team's setup would be.
struct Repo {
    work: std::path::PathBuf,
    remote: std::path::PathBuf,
}

impl Repo {
    fn new(dir: &Path) -> Repo {
        let (work, remote) = (dir.join("work"), dir.join("remote.git"));
        std::fs::create_dir_all(&work).unwrap();
        git(dir, &["init", "--quiet", "--bare", "-b", "main", remote.to_str().unwrap()]);
        git(&work, &["init", "--quiet", "-b", "main"]);
        git(&work, &["config", "user.name", "Ann Author"]);
        git(&work, &["config", "user.email", "ann@example.com"]);
        git(&work, &["remote", "add", "origin", remote.to_str().unwrap()]);
        Repo { work, remote }
    }

    /// Commits `config` as mlops-config.json; returns the commit SHA.
    fn commit(&self, config: &Value, message: &str, amend: bool) -> String {
        std::fs::write(self.work.join("mlops-config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
        git(&self.work, &["add", "mlops-config.json"]);
        let mut args = vec!["commit", "--quiet", "-m", message];
        if amend {
            // Back to the parent's file is an empty change; the amended commit is still new.
            args.extend(["--amend", "--allow-empty"]);
        }
        git(&self.work, &args);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn push(&self, force: bool) {
        let mut args = vec!["push", "--quiet", "origin", "main"];
        if force {
            args.push("--force");
        }
        git(&self.work, &args);
    }
}

fn github_push(branch: &str, secret: &str) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "ref": format!("refs/heads/{branch}"),
        "after": "0000000000000000000000000000000000000000",
        "repository": {"full_name": "team/models", "clone_url": "https://example.com/team/models.git"},
    }))
    .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    (body, format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

async fn send_github(server: &TestServer, branch: &str, secret: &str) -> reqwest::Response {
    let (body, signature) = github_push(branch, secret);
    server
        .http
        .post(server.url("/v1/git/webhook"))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn revisions(server: &TestServer, query: &str) -> Vec<Value> {
    let response = server.get(&format!("/v1/config/revisions{query}"), VIEWER).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

/// Waits until the source has recorded `count` finished revisions; returns the newest.
async fn revision_number(server: &TestServer, count: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let items = revisions(server, "").await;
        let finished: Vec<&Value> = items.iter().filter(|r| r["state"] != "processing").collect();
        if finished.len() >= count {
            assert_eq!(finished.len(), count, "more revisions than expected: {items:#?}");
            return finished[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "waiting for revision {count}: {items:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pipeline_of(server: &TestServer, revision: &Value) -> Value {
    let id = revision["pipelines"][0]["id"].as_str().unwrap_or_else(|| panic!("no pipeline in {revision:#}"));
    server.pipeline(id).await
}

async fn a_git_repository_provisions_its_commits(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    let receiver = Helper::receiver(dir.path(), 0).await;
    let mut settings = test_settings(&db);
    settings.config_sources.git = vec![GitSource {
        name: "models-repo".into(),
        url: repo.remote.to_str().unwrap().into(),
        branch: "main".into(),
        path: "mlops-config.json".into(),
        // Only the start-up fetch and pushes fetch in this test.
        poll_interval: Duration::from_secs(3600),
        webhook_secret: Some(HOOK_SECRET.into()),
        webhook_secret_file: None,
    }];
    settings.notifications.webhooks = vec![webhook("ops", &receiver.url())];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let sources: Value = server.get("/v1/config/sources", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(sources["items"][0]["name"], "models-repo");
    assert_eq!(sources["items"][0]["webhook"], true);

    // A commit, pushed, and the push's webhook: provisioned as the API would.
    let body = realtime_body("churn", "models/churn/model.tar.gz");
    let first = repo.commit(&body, "Add the churn endpoint", false);
    repo.push(false);
    let response = send_github(&server, "main", HOOK_SECRET).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["triggered"], json!(["models-repo"]));
    let revision = revision_number(&server, 1).await;
    assert_eq!(revision["state"], "accepted", "{revision:#}");
    assert_eq!(revision["revision"], first);
    assert_eq!(revision["source_kind"], "git");
    assert_eq!(revision["author"], "Ann Author <ann@example.com>");
    assert_eq!(revision["message"], "Add the churn endpoint");
    assert_eq!(revision["pipelines"][0]["created"], true);
    let pipeline = pipeline_of(&server, &revision).await;
    let id = pipeline["id"].as_str().unwrap().to_string();
    server.wait_for(&id, "active").await;
    let pipeline = server.pipeline(&id).await;
    assert_eq!(pipeline["origin"]["revision"], first);
    assert_eq!(pipeline["origin"]["author"], "Ann Author <ann@example.com>");
    assert_eq!(pipeline["created_by"], "git:models-repo");
    let events = server.events(&id).await;
    let created = &events.as_array().unwrap()[0];
    assert_eq!(created["kind"], "pipeline.created");
    assert_eq!(created["actor"], "git:models-repo");
    assert_eq!(
        created["message"],
        format!(
            "from git source models-repo commit {} by Ann Author <ann@example.com>: Add the churn endpoint",
            &first[..12]
        )
    );

    assert_eq!(revision["pipelines"][0]["warnings"], json!([]));

    // A second commit with changed parameters: the same pipeline, version 2. A spelling the
    // solution's users write is read as meant, and the revision says so, as the API's answer
    // would.
    let mut changed = body.clone();
    changed["inference_instance"] = json!("ml.m5.xlarge");
    changed["data_capture_location"] = json!(format!("s3://{}", body["data_capture_location"].as_str().unwrap()));
    let second = repo.commit(&changed, "Bigger instances", false);
    repo.push(false);
    assert_eq!(send_github(&server, "main", HOOK_SECRET).await.status(), 202);
    let revision = revision_number(&server, 2).await;
    assert_eq!((revision["state"].as_str(), revision["revision"].as_str()), (Some("accepted"), Some(second.as_str())));
    assert_eq!(revision["pipelines"][0]["id"], id.as_str());
    assert_eq!(
        (revision["pipelines"][0]["version"].as_i64(), revision["pipelines"][0]["created"].as_bool()),
        (Some(2), Some(false))
    );
    let warning = revision["pipelines"][0]["warnings"][0].as_str().unwrap_or_else(|| panic!("{revision:#}"));
    assert!(warning.starts_with("`data_capture_location` `s3://"), "{warning}");
    let pipeline = server.wait_for(&id, "active").await;
    assert_eq!(pipeline["stages"][0]["params"]["inference_instance"], "ml.m5.xlarge");

    // An invalid commit, pushed: a badly signed webhook changes nothing...
    let mut invalid = changed.clone();
    invalid["inference_instance"] = json!("m5.large");
    invalid.as_object_mut().unwrap().remove("model_artifact_location");
    let third = repo.commit(&invalid, "Oops", false);
    repo.push(false);
    let refused = send_github(&server, "main", "not-the-secret").await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let unsigned =
        server.http.post(server.url("/v1/git/webhook")).body(github_push("main", HOOK_SECRET).0).send().await;
    assert_eq!(unsigned.unwrap().status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(revisions(&server, "").await.len(), 2, "a refused push fetches nothing");
    // ...a push to another branch is verified and ignored...
    let other = send_github(&server, "feature", HOOK_SECRET).await;
    assert_eq!(other.status(), 200);
    assert_eq!(other.json::<Value>().await.unwrap()["triggered"], json!([]));
    // ...and GitLab's token header triggers the fetch: a rejected revision with field errors.
    let gitlab = server
        .http
        .post(server.url("/v1/git/webhook?source=models-repo"))
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", HOOK_SECRET)
        .json(&json!({"object_kind": "push", "ref": "refs/heads/main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gitlab.status(), 202);
    let revision = revision_number(&server, 3).await;
    assert_eq!((revision["state"].as_str(), revision["revision"].as_str()), (Some("rejected"), Some(third.as_str())));
    let mut pointers: Vec<&str> =
        revision["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/inference_instance", "/model_artifact_location"], "{revision:#}");
    // The same errors the API gives for that body.
    let api =
        server.http.post(server.url("/v1/pipelines?dry_run=true")).bearer_auth(OPERATOR).json(&invalid).send().await;
    let problem: Value = api.unwrap().json().await.unwrap();
    let api_messages: Vec<&Value> = problem["errors"].as_array().unwrap().iter().map(|e| &e["message"]).collect();
    for error in revision["errors"].as_array().unwrap() {
        assert!(api_messages.contains(&&error["message"]), "{error} not among {api_messages:?}");
    }
    assert_eq!(server.pipeline(&id).await["version"], 2, "nothing provisioned");
    // People are told.
    let told =
        receiver.wait_for("the rejection notice", |l| l.iter().any(|l| l["body"]["type"] == "config.rejected")).await;
    let notice = told.iter().find(|l| l["body"]["type"] == "config.rejected").unwrap();
    assert_eq!(notice["body"]["data"]["revision"], third);
    assert_eq!(notice["body"]["data"]["errors"].as_array().unwrap().len(), 2);
    assert!(notice["body"]["data"]["text"].as_str().unwrap().contains("/inference_instance"), "{notice:#}");

    // Amended back to the config in force and force-pushed: a new commit, nothing to change.
    let amended = repo.commit(&changed, "Bigger instances, again", true);
    repo.push(true);
    assert_eq!(send_github(&server, "main", HOOK_SECRET).await.status(), 202);
    let revision = revision_number(&server, 4).await;
    assert_eq!(
        (revision["state"].as_str(), revision["revision"].as_str()),
        (Some("unchanged"), Some(amended.as_str()))
    );
    assert_eq!(server.pipeline(&id).await["version"], 2);
    // The list filters by state.
    assert_eq!(revisions(&server, "?state=rejected").await.len(), 1);
    let bad = server.get("/v1/config/revisions?state=bogus", VIEWER).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

on_both_stores!(a_git_repository_provisions_its_commits);

/// A configuration bucket on the local object store, written through the assets API: the
/// object's ETag plays the commit's role.
async fn a_config_bucket_provisions_its_uploads(db: TestDb) {
    let mut settings = test_settings(&db);
    settings.config_sources.buckets = vec![BucketSource {
        name: "config-bucket".into(),
        bucket: "assets".into(),
        key: "config/mlops-config.json".into(),
        poll_interval: Duration::from_millis(200),
        s3: None,
    }];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let server = &server;
    let upload = |config: Value| async move {
        let put = server.put_asset("config/mlops-config.json", serde_json::to_vec(&config).unwrap()).await;
        assert_eq!(put.status(), 201);
    };
    bucket_cases(server, upload, &realtime_body("churn", "models/churn/model.tar.gz")).await;
}

on_both_stores!(a_config_bucket_provisions_its_uploads);

/// Upload → provisioned; changed upload → updated; invalid upload → rejected with field errors
/// and a notification.
async fn bucket_cases<F, Fut>(server: &TestServer, upload: F, body: &Value)
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    upload(body.clone()).await;
    let revision = revision_number(server, 1).await;
    assert_eq!(revision["state"], "accepted", "{revision:#}");
    assert_eq!(revision["source_kind"], "bucket");
    let pipeline = pipeline_of(server, &revision).await;
    let id = pipeline["id"].as_str().unwrap().to_string();
    assert_eq!(pipeline["origin"]["revision"], revision["revision"]);
    server.wait_for(&id, "active").await;

    let mut changed = body.clone();
    changed["inference_instance"] = json!("ml.m5.xlarge");
    upload(changed).await;
    let second = revision_number(server, 2).await;
    assert_eq!(second["state"], "accepted", "{second:#}");
    assert_ne!(second["revision"], revision["revision"]);
    assert_eq!(second["pipelines"][0]["version"], 2);

    upload(json!([body, {"pipeline_type": "byom_realtime_builtin"}])).await;
    let third = revision_number(server, 3).await;
    assert_eq!(third["state"], "rejected", "{third:#}");
    let pointers: Vec<&str> =
        third["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert!(pointers.iter().all(|p| p.starts_with("/1/")), "errors point into the list's second request: {pointers:?}");
    assert!(pointers.contains(&"/1/model_name"), "{pointers:?}");
    assert_eq!(server.pipeline(&id).await["version"], 2, "a list is all or nothing");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let told = crate::notifications::notifications(server, "?kind=config.rejected").await;
        if let Some(notice) = told.first() {
            assert_eq!(notice["body"]["data"]["source"], third["source"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no config.rejected notification");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The solution's current path: a `mlops-config.json` uploaded to an S3 bucket (moto, with
/// versioning: the version id plays the commit's role).
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_config_bucket_provisions_its_uploads() {
    let env = crate::support::aws::AwsTestEnv::start().await;
    env.export_credentials();
    env.create_versioned_bucket("team-mlops-config").await;
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.config_sources.buckets = vec![BucketSource {
        name: "s3-config".into(),
        bucket: "team-mlops-config".into(),
        key: "mlops-config.json".into(),
        poll_interval: Duration::from_millis(300),
        s3: Some(mlops::config::BucketS3 {
            region: crate::support::aws::REGION.into(),
            endpoint_url: Some(env.moto.url().to_string()),
        }),
    }];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let client = &env.client();
    let upload = |config: Value| async move {
        let body = serde_json::to_vec(&config).unwrap();
        let reply = client.s3("PUT", "team-mlops-config", Some("mlops-config.json"), "", &[], body).await;
        assert!(reply.status.is_success(), "PutObject: {}", reply.status);
    };
    bucket_cases(&server, upload, &realtime_body("churn", "models/churn/model.tar.gz")).await;
    let items = revisions(&server, "").await;
    // Version ids, not ETags: moto's versioned bucket gives each upload one.
    assert!(items.iter().all(|r| r["revision"].as_str().unwrap().len() > 20), "{items:#?}");
}
