//! Notifications (issue 14): signed webhooks checked by the Standard Webhooks reference library,
//! retried until the receiver takes them and then never again; e-mail through a real SMTP server
//! (aiosmtpd); SNS on moto; the delivery log through the API; and a delivery that survives a
//! SIGKILL of the server.

use crate::on_both_stores;
use crate::support::api::realtime_body;
use crate::support::aws::moto::python_bin;
use crate::support::server::{APPROVER, VIEWER, test_settings};
use crate::support::{TestDb, TestServer};
use mlops::config::{EmailChannel, SmtpSecurity, WebhookChannel};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A Python helper from `tests/fixtures/notify/` that prints its port first.
pub struct Helper {
    pub port: u16,
    pub log: PathBuf,
    _child: tokio::process::Child,
}

impl Helper {
    pub async fn start(script: &str, args: &[&str], log: PathBuf) -> Helper {
        let python = python_bin().join("python");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notify").join(script);
        let mut child = tokio::process::Command::new(&python)
            .arg(&path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} (run .ci/run to install the test venv): {e}", python.display()));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{script} printed no port within 30 s"))
            .unwrap()
            .unwrap_or_else(|| panic!("{script} exited; is its venv complete (.ci/requirements.txt)?"));
        Helper { port: first.trim().parse().unwrap(), log, _child: child }
    }

    /// The webhook receiver: verifies with the reference library; fails the first `fail_first`.
    pub async fn receiver(dir: &Path, fail_first: u32) -> Helper {
        let log = dir.join("webhooks.jsonl");
        let fail = fail_first.to_string();
        let path = log.to_str().unwrap().to_string();
        Helper::start("webhook_receiver.py", &[SECRET, &path, "--fail-first", &fail], log).await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn accepted(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["outcome"] == "accepted").collect()
    }

    /// Polls until `ready` holds for the log lines.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.lines();
            if ready(&lines) {
                return lines;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; log so far: {lines:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn webhook(name: &str, url: &str) -> WebhookChannel {
    WebhookChannel {
        name: name.into(),
        url: url.into(),
        secret: Some(SECRET.into()),
        secret_file: None,
        events: vec![],
        pipelines: vec![],
    }
}

pub async fn notifications(server: &TestServer, query: &str) -> Vec<Value> {
    let response = server.get(&format!("/v1/notifications{query}"), VIEWER).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    list["items"].as_array().unwrap().clone()
}

/// The notification kinds received, sorted: deliveries are independent (a retried one arrives
/// after later ones), so receivers order by the payload's `timestamp`, not by arrival.
/// The first notification the query lists, once its deliveries are all settled.
pub async fn delivered(server: &TestServer, query: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = notifications(server, query).await;
        if let Some(first) = listed.first()
            && first["deliveries"].as_array().unwrap().iter().all(|d| d["state"] == "delivered")
        {
            return first.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {listed:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kinds_of(accepted: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = accepted.iter().map(|l| l["body"]["type"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    kinds
}

fn accepted_of(lines: &[Value]) -> Vec<Value> {
    lines.iter().filter(|l| l["outcome"] == "accepted").cloned().collect()
}

fn of_kind<'a>(accepted: &'a [Value], kind: &str) -> &'a Value {
    accepted.iter().find(|l| l["body"]["type"] == kind).unwrap_or_else(|| panic!("no {kind} in {accepted:#?}"))
}

async fn webhooks_are_signed_retried_and_logged(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Helper::receiver(dir.path(), 2).await;
    let mut settings = test_settings(&db);
    settings.environments = vec!["dev".into(), "prod".into()];
    settings.notifications.public_url = Some("https://mlops.example.com/".into());
    settings.notifications.webhooks = vec![webhook("ops", &receiver.url())];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "awaiting_approval").await;
    let lines = receiver.wait_for("provisioned and approval notices", |l| kinds_of(&accepted_of(l)).len() == 2).await;
    // The receiver refused the first two tries of each; nothing was ever badly signed.
    let outcomes: Vec<&str> = lines.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "failed_on_purpose").count(), 4, "{outcomes:?}");
    assert!(!outcomes.contains(&"bad_signature"), "{lines:#?}");

    let accepted = receiver.accepted();
    assert_eq!(kinds_of(&accepted), ["pipeline.provisioned", "stage.awaiting_approval"]);
    let ask = &of_kind(&accepted, "stage.awaiting_approval")["body"]["data"];
    assert_eq!(ask["version"], 1);
    assert_eq!(ask["environment"], "prod");
    assert_eq!(ask["approval_url"], format!("https://mlops.example.com/v1/pipelines/{id}/stages/prod/approval"));
    assert!(ask["text"].as_str().unwrap().contains("version 1 to prod"), "{ask:#}");
    // A retried delivery keeps its webhook-id: the receiver can tell it from a new one.
    let first_id = of_kind(&accepted, "pipeline.provisioned")["headers"]["webhook-id"].as_str().unwrap();
    let tries: Vec<&Value> = lines.iter().filter(|l| l["headers"]["webhook-id"] == first_id).collect();
    assert_eq!(tries.len(), 3, "two refusals and one acceptance: {tries:#?}");

    // The delivery log says the same (recorded a moment after the receiver answered).
    let provisioned = delivered(&server, &format!("?pipeline_id={id}&kind=pipeline.provisioned")).await;
    assert_eq!(provisioned["id"], first_id);
    let delivery = &provisioned["deliveries"][0];
    assert_eq!((delivery["channel"].as_str(), delivery["state"].as_str()), (Some("ops"), Some("delivered")));
    assert_eq!(delivery["attempts"], 3);
    let log: Vec<(bool, &str)> = delivery["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["succeeded"].as_bool().unwrap(), t["response"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(log, [(false, "HTTP 503"), (false, "HTTP 503"), (true, "HTTP 204")]);
    assert!(delivery["log"][0]["error"].as_str().unwrap().contains("503"));

    // Approve: the decision and the active pipeline are told; then the deletion.
    let approved = server
        .post(&format!("/v1/pipelines/{id}/stages/prod/approval"), APPROVER)
        .json(&json!({"decision": "approve", "version": 1, "comment": "ship it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    server.wait_for(&id, "active").await;
    let deleted = server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(APPROVER).send().await;
    assert_eq!(deleted.unwrap().status(), 403, "approvers may not delete");
    let deleted = server
        .http
        .delete(server.url(&format!("/v1/pipelines/{id}")))
        .bearer_auth(crate::support::server::OPERATOR)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    receiver.wait_for("five notices", |l| kinds_of(&accepted_of(l)).len() == 5).await;
    // A while longer: nothing is delivered twice.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let accepted = receiver.accepted();
    assert_eq!(
        kinds_of(&accepted),
        [
            "pipeline.active",
            "pipeline.deleted",
            "pipeline.provisioned",
            "stage.approval_decided",
            "stage.awaiting_approval",
        ]
    );
    let decided = &of_kind(&accepted, "stage.approval_decided")["body"]["data"];
    assert_eq!((decided["decision"].as_str(), decided["comment"].as_str()), (Some("approve"), Some("ship it")));
    assert_eq!(decided["actor"], "anna-approver");
    // Exactly one accepted delivery per notification.
    let mut ids: Vec<&str> = accepted.iter().map(|l| l["headers"]["webhook-id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), accepted.len());
}

on_both_stores!(webhooks_are_signed_retried_and_logged);

/// Only `pipeline.active` and `pipeline.failed`, by e-mail through a real SMTP server; every
/// other notification is recorded with no delivery for this channel.
async fn email_goes_through_smtp(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mail_log = dir.path().join("mail.jsonl");
    let smtp = Helper::start("smtp_server.py", &[mail_log.to_str().unwrap()], mail_log.clone()).await;
    let mut settings = test_settings(&db);
    settings.notifications.email = vec![EmailChannel {
        name: "ops-mail".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port: Some(smtp.port),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        password_file: None,
        from: "MLOps <mlops@example.com>".into(),
        to: vec!["ops@example.com".into(), "Data Team <data@example.com>".into()],
        events: vec!["pipeline.active".into(), "pipeline.failed".into()],
        pipelines: vec![],
    }];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;
    let mails = smtp.wait_for("the mail", |l| !l.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.lines().len(), 1, "one mail: only pipeline.active is wanted");
    let mail = &mails[0];
    assert_eq!(mail["mail_from"], "mlops@example.com");
    assert_eq!(mail["rcpt_tos"], json!(["ops@example.com", "data@example.com"]));
    assert_eq!(mail["subject"], "Pipeline churn is active");
    assert!(mail["body"].as_str().unwrap().contains("Pipeline churn (byom_realtime_builtin) is active."), "{mail:#}");

    let active = delivered(&server, &format!("?pipeline_id={id}&kind=pipeline.active")).await;
    let listed = notifications(&server, &format!("?pipeline_id={id}")).await;
    assert_eq!(mail["message_id"], format!("<{}@mlops-orchestrator>", active["id"].as_str().unwrap()));
    let delivery = &active["deliveries"][0];
    assert_eq!((delivery["channel_kind"].as_str(), delivery["state"].as_str()), (Some("email"), Some("delivered")));
    assert!(delivery["log"][0]["response"].as_str().unwrap().starts_with("SMTP 250"), "{delivery:#}");
    let provisioned = listed.iter().find(|n| n["kind"] == "pipeline.provisioned").unwrap();
    assert_eq!(provisioned["deliveries"], json!([]), "recorded, sent nowhere");
    // The list filters by kind and refuses unknown kinds.
    assert_eq!(notifications(&server, "?kind=pipeline.active").await.len(), 1);
    let bad = server.get("/v1/notifications?kind=pipeline.exploded", VIEWER).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

on_both_stores!(email_goes_through_smtp);

/// The solution's channel: an SNS topic created by name with its e-mail subscription, on moto.
#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_publishes_to_a_topic_on_moto() {
    let env = crate::support::aws::AwsTestEnv::start().await;
    env.export_credentials();
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.notifications.sns = vec![mlops::config::SnsChannel {
        name: "solution-topic".into(),
        topic_arn: None,
        topic_name: Some("mlops-notifications".into()),
        subscribe_email: Some("ops@example.com".into()),
        region: Some(crate::support::aws::REGION.into()),
        endpoint_url: Some(env.moto.url().to_string()),
        events: vec![],
        pipelines: vec!["churn".into()],
    }];
    let server = TestServer::start_with(db, settings).await;
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    server.upload_fixture("models/other/model.tar.gz", "xgboost/model.tar.gz").await;
    let id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = server.provision(&realtime_body("other", "models/other/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for(&id, "active").await;
    server.wait_for(&other, "active").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (topic, sent) = loop {
        let data = env.moto.data().await;
        let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        if let Some(topic) = topics.first() {
            let sent = topic["sent_notifications"].as_array().cloned().unwrap_or_default();
            if sent.len() >= 2 {
                break (topic.clone(), sent);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no SNS messages: {:#}", data["sns"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(topic["arn"].as_str().unwrap().ends_with(":mlops-notifications"), "{topic:#}");
    // sent_notifications rows are [message id, message, subject, attributes, group id].
    let subjects: Vec<&str> = sent.iter().map(|n| n[2].as_str().unwrap_or("")).collect();
    assert_eq!(subjects.len(), 2, "churn's provisioned and active, nothing of `other`: {subjects:?}");
    assert!(subjects.contains(&"Pipeline churn is active"), "{subjects:?}");
    assert!(subjects.contains(&"Pipeline churn provisioned"), "{subjects:?}");
    let active = sent.iter().find(|n| n[2] == "Pipeline churn is active").unwrap();
    assert!(active[1].as_str().unwrap().contains("Pipeline churn (byom_realtime_builtin) is active."));

    let subscriptions = env.moto.data().await["sns"]["Subscription"].clone();
    let emails: Vec<&Value> =
        subscriptions.as_array().map(|s| s.iter().filter(|s| s["protocol"] == "email").collect()).unwrap_or_default();
    assert_eq!(emails.len(), 1, "one e-mail subscription: {subscriptions:#}");
    assert_eq!(emails[0]["endpoint"], "ops@example.com");
    let listed = [delivered(&server, &format!("?pipeline_id={id}&kind=pipeline.active")).await];
    assert!(listed[0]["deliveries"][0]["log"][0]["response"].as_str().unwrap().starts_with("SNS message "));
}
