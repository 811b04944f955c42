//! The aws target end to end: the real server and worker, the real AWS SDK clients, moto for
//! the services it emulates and the loopback front for what it lacks (CodePipeline runtime,
//! approvals, monitoring schedules). See docs/AWS.md §7.

use crate::support::api::{fixture_json, realtime_body};
use crate::support::aws::AwsTestEnv;
use crate::support::server::{APPROVER, OPERATOR, VIEWER, test_settings};
use crate::support::{Db, TestDb, TestServer};
use mlops::config::{AwsEnvironmentSettings, TargetKind};
use serde_json::{Value, json};
use std::time::Duration;

const ASSETS: &str = "mlops-assets-test";
const BLUEPRINTS: &str = "mlops-blueprints-test";
const ACCOUNTS: [(&str, &str); 3] = [("dev", "111111111111"), ("staging", "222222222222"), ("prod", "333333333333")];

struct AwsWorld {
    env: AwsTestEnv,
    cloudformation_role: String,
}

async fn world() -> AwsWorld {
    let env = AwsTestEnv::start().await;
    env.export_credentials();
    env.create_versioned_bucket(ASSETS).await;
    env.create_versioned_bucket(BLUEPRINTS).await;
    // The bucket the request fixtures capture, baseline and write to.
    env.create_versioned_bucket("my-bucket").await;
    let cloudformation_role = env.create_role("mlops-cloudformation", "cloudformation.amazonaws.com").await;
    AwsWorld { env, cloudformation_role }
}

fn aws_settings(world: &AwsWorld, db: &TestDb, environments: &[&str]) -> mlops::Settings {
    let mut s = test_settings(db);
    s.target = TargetKind::Aws;
    s.environments = environments.iter().map(|e| e.to_string()).collect();
    s.jobs.lease = Duration::from_secs(2);
    s.jobs.heartbeat = Duration::from_millis(500);
    let aws = &mut s.aws;
    aws.region = world.env.region().into();
    aws.endpoint_url = Some(world.env.endpoint_url().into());
    aws.assets_bucket = ASSETS.into();
    aws.blueprint_bucket = BLUEPRINTS.into();
    aws.cloudformation_role_arn = world.cloudformation_role.clone();
    aws.notification_topic_arn = format!("arn:aws:sns:us-east-1:{}:mlops-notifications", world.env.account());
    aws.ecr_repo_arn = format!("arn:aws:ecr:us-east-1:{}:repository/mlops-ecr-repo", world.env.account());
    aws.ecr_repo_name = "mlops-ecr-repo".into();
    aws.poll_interval = Duration::from_millis(100);
    aws.stack_id_wait = Duration::from_secs(15);
    for (name, account) in ACCOUNTS.iter().filter(|(n, _)| environments.len() > 1 && environments.contains(n)) {
        aws.environments.insert(
            name.to_string(),
            AwsEnvironmentSettings {
                account_id: account.to_string(),
                deploy_role_arn: format!("arn:aws:iam::{account}:role/mlops-deploy"),
                action_role_arn: format!("arn:aws:iam::{account}:role/mlops-pipeline-action"),
            },
        );
    }
    s
}

/// A recorded call as text, to look for names and values in it.
fn call_text(call: &crate::support::aws::RecordedCall) -> String {
    serde_json::to_string(&call.request).unwrap()
}

/// `/v1/pipelines/{id}` takes a StackId too; it contains '/', so it is escaped.
fn escaped(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

async fn wait_by_stack_id(server: &TestServer, stack_id: &str, state: &str) -> Value {
    server.wait_for(&our_id(server, stack_id).await, state).await
}

/// Our id of the pipeline the compat API answered with `stack_id`.
async fn our_id(server: &TestServer, stack_id: &str) -> String {
    let p: Value =
        server.get(&format!("/v1/pipelines/{}", escaped(stack_id)), VIEWER).send().await.unwrap().json().await.unwrap();
    p["id"].as_str().unwrap_or_else(|| panic!("no pipeline for {stack_id}: {p:#}")).to_string()
}

/// moto never finishes an AutoML job: waits until one was started (the pipeline waits on it).
async fn automl_job_started(world: &AwsWorld) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while world.env.front.calls_to("sagemaker", "CreateAutoMLJobV2").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the AutoML job was never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stack_status(world: &AwsWorld, account: Option<&str>, name: &str) -> Option<String> {
    let client = match account {
        None => world.env.client(),
        Some(account) => {
            let creds =
                world.env.client().assume_role(&format!("arn:aws:iam::{account}:role/mlops-pipeline-action")).await;
            world.env.client().with_creds(creds)
        }
    };
    let reply = client.cloudformation(&[("Action", "DescribeStacks"), ("StackName", name)]).await;
    reply.status.is_success().then(|| reply.xml("StackStatus")).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_account_realtime_pipeline_deploys_and_deletes() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    let server = TestServer::start_with(db, settings).await;

    // On the aws target the assets API is the S3 assets bucket.
    server.upload_fixture("models/churn/model.tar.gz", "xgboost/model.tar.gz").await;
    let head = world.env.client().s3("HEAD", ASSETS, Some("models/churn/model.tar.gz"), "", &[], Vec::new()).await;
    assert!(head.status.is_success(), "the model is in the S3 assets bucket: {}", head.status);
    let back = server.get("/v1/assets/models/churn/model.tar.gz", VIEWER).send().await.unwrap();
    assert_eq!(
        back.bytes().await.unwrap().len(),
        std::fs::metadata(crate::support::api::fixture("xgboost/model.tar.gz")).unwrap().len() as usize
    );

    let out = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    assert_eq!(out["message"], "success: stack creation started");
    let stack_id = out["pipeline_id"].as_str().unwrap().to_string();
    assert!(
        stack_id.starts_with("arn:aws:cloudformation:us-east-1:")
            && stack_id.contains(":stack/mlops-pipeline-churn-byompipelinerealtimebuiltin-codepipeline/"),
        "the compat API answers with the wrapper StackId: {stack_id}"
    );
    let pipeline = wait_by_stack_id(&server, &stack_id, "active").await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["stack_name"], "mlops-pipeline-churn-byompipelinerealtimebuiltin");
    assert_eq!(outputs["sagemaker"]["endpoint_status"], "InService");

    // The endpoint lives in SageMaker, not in this process.
    let endpoints: Value = server.get("/v1/endpoints", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(endpoints["items"], json!([]));

    // The CodePipeline the wrapper created has the solution's structure.
    let view = world
        .env
        .front
        .pipeline("mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline")
        .await
        .expect("pipeline registered");
    let stages = view.stages.clone();
    assert_eq!(stages, ["Source", "DeployCloudFormation"]);
    assert_eq!(
        stack_status(&world, None, "mlops-pipeline-churn-byompipelinerealtimebuiltin").await.as_deref(),
        Some("CREATE_COMPLETE"),
        "the deploy action deployed the realtime stack"
    );

    // /pipelinestatus answers with CodePipeline's own state, by StackId or by our id.
    for id in [stack_id.as_str(), pipeline["id"].as_str().unwrap()] {
        let status = server.compat_status(id).await;
        assert_eq!(status["pipelineName"], "mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline");
        assert_eq!(status["stageStates"][1]["actionStates"][0]["actionName"], "deploy_stack");
        assert_eq!(status["stageStates"][1]["actionStates"][0]["latestExecution"]["status"], "Succeeded");
    }

    // Re-provisioning uploads a new zip; the pipeline runs again.
    let mut update = realtime_body("churn", "models/churn/model.tar.gz");
    update["inference_instance"] = json!("ml.m5.xlarge");
    let again = server.provision(&update).await;
    assert_eq!(again["pipeline_id"], stack_id.as_str());
    assert_eq!(
        again["message"],
        "Pipeline mlops-pipeline-churn-byompipelinerealtimebuiltin-codepipeline is already provisioned. Updating template parameters."
    );
    let p = server.wait_for(pipeline["id"].as_str().unwrap(), "active").await;
    assert_eq!(p["version"], 2);
    let executions =
        world.env.front.pipeline("mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline").await.unwrap().executions;
    assert!(executions.len() >= 2, "the new zip started a new execution");
    let creates = world.env.front.calls_to("cloudformation", "CreateStack");
    let wrapper_creates = creates.iter().filter(|c| call_text(c).contains("-codepipeline")).count();
    assert_eq!(wrapper_creates, 1, "one wrapper stack, reused on update");

    // Delete removes both stacks.
    let id = p["id"].as_str().unwrap();
    let deleted =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(deleted.status(), 202);
    server.wait_for(id, "deleted").await;
    for stack in [
        "mlops-pipeline-churn-byompipelinerealtimebuiltin",
        "mlops-pipeline-churn-byompipelinerealtimebuiltin-codepipeline",
    ] {
        let status = stack_status(&world, None, stack).await;
        assert!(status.is_none() || status.as_deref() == Some("DELETE_COMPLETE"), "{stack} is {status:?}");
    }
    server.stop().await;
}

async fn approve(server: &TestServer, id: &str, stage: &str, token: &str, decision: &str) -> reqwest::StatusCode {
    let current: serde_json::Value =
        server.get(&format!("/v1/pipelines/{id}"), token).send().await.unwrap().json().await.unwrap();
    let version = current["version"].clone();
    server
        .post(&format!("/v1/pipelines/{id}/stages/{stage}/approval"), token)
        .json(&json!({"decision": decision, "version": version, "comment": format!("{decision} {stage}")}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_account_promotion_goes_through_codepipeline_approvals() {
    let world = world().await;
    let db = TestDb::new(Db::Postgres).await;
    let settings = aws_settings(&world, &db, &["dev", "staging", "prod"]);
    let server = TestServer::start_with(db, settings).await;

    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = wait_by_stack_id(&server, &stack_id, "awaiting_approval").await;
    let id = p["id"].as_str().unwrap().to_string();
    let view = world.env.front.pipeline("mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline").await.unwrap();
    let stages = view.stages.clone();
    assert_eq!(stages, ["Source", "DeployDev", "DeployStaging", "DeployProd"]);
    assert_eq!(
        stack_status(&world, Some("111111111111"), "mlops-pipeline-churn-byompipelinerealtimebuiltin").await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_status(&world, Some("222222222222"), "mlops-pipeline-churn-byompipelinerealtimebuiltin").await,
        None
    );

    assert_eq!(approve(&server, &id, "staging", OPERATOR, "approve").await, 403);
    assert_eq!(approve(&server, &id, "staging", APPROVER, "approve").await, 200);
    let p = server.wait_for(&id, "awaiting_approval").await;
    assert_eq!(p["stages"][1]["state"], "deployed");
    let approvals = world.env.front.calls_to("codepipeline", "PutApprovalResult");
    assert_eq!(approvals.len(), 1);
    let sent = call_text(&approvals[0]);
    assert!(sent.contains("Approved by anna-approver: approve staging"), "{sent}");
    assert!(sent.contains("DeployStaging"), "{sent}");
    assert_eq!(
        stack_status(&world, Some("222222222222"), "mlops-pipeline-churn-byompipelinerealtimebuiltin").await.as_deref(),
        Some("CREATE_COMPLETE")
    );

    assert_eq!(approve(&server, &id, "prod", APPROVER, "approve").await, 200);
    server.wait_for(&id, "active").await;
    assert_eq!(
        stack_status(&world, Some("333333333333"), "mlops-pipeline-churn-byompipelinerealtimebuiltin").await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    let events = server.events(&id).await;
    let approved: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "stage.approved").collect();
    assert_eq!(approved.len(), 2);
    assert!(approved.iter().all(|e| e["actor"] == "anna-approver"));
    let stage_steps: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "stage.state_changed")
        .map(|e| format!("{}:{}", e["stage_ordinal"], e["to_state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stage_steps,
        [
            "0:deploying",
            "0:deployed",
            "1:awaiting_approval",
            "1:deploying",
            "1:deployed",
            "2:awaiting_approval",
            "2:deploying",
            "2:deployed"
        ],
        "every step of the promotion is in the events"
    );

    // Delete, by the StackId the compat API gave: the wrapper and the stack in every account go.
    let deleted = server
        .http
        .delete(server.url(&format!("/v1/pipelines/{}", escaped(&stack_id))))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    server.wait_for(&id, "deleted").await;
    let stack = "mlops-pipeline-churn-byompipelinerealtimebuiltin";
    for account in [None, Some("111111111111"), Some("222222222222"), Some("333333333333")] {
        let status = stack_status(&world, account, stack).await;
        assert!(status.is_none() || status.as_deref() == Some("DELETE_COMPLETE"), "{stack} in {account:?}: {status:?}");
    }
    let wrapper = stack_status(&world, None, &format!("{stack}-codepipeline")).await;
    assert!(wrapper.is_none() || wrapper.as_deref() == Some("DELETE_COMPLETE"), "wrapper: {wrapper:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_account_rejection_stops_the_codepipeline() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &["dev", "staging", "prod"]);
    let server = TestServer::start_with(db, settings).await;
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = wait_by_stack_id(&server, &stack_id, "awaiting_approval").await["id"].as_str().unwrap().to_string();
    assert_eq!(approve(&server, &id, "staging", APPROVER, "reject").await, 200);
    server.wait_for(&id, "rejected").await;
    // The rejection reaches CodePipeline (its job runs after the API answers).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls = world.env.front.calls_to("codepipeline", "PutApprovalResult");
        if let Some(call) = calls.first() {
            let sent = call_text(call);
            assert!(sent.contains("Rejected") && sent.contains("Rejected by anna-approver: reject staging"), "{sent}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rejection never reached CodePipeline");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack_status(&world, Some("222222222222"), "mlops-pipeline-churn-byompipelinerealtimebuiltin").await,
        None
    );
    // CodePipeline's execution stopped at the rejected approval.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let execution = loop {
        let view = world.env.front.pipeline("mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline").await.unwrap();
        let execution = view.executions.last().unwrap().clone();
        if execution.status != "InProgress" {
            break execution;
        }
        assert!(tokio::time::Instant::now() < deadline, "the execution is still running: {execution:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(execution.status, "Failed", "{execution:?}");
    let approval = execution.actions.iter().find(|a| a.action == "DeployStaging").unwrap();
    assert_eq!(approval.status, "Failed", "{approval:?}");
    assert!(execution.actions.iter().all(|a| a.action != "DeployStagingStackSet"), "staging never deployed");
    let events = server.events(&id).await;
    let rejected: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "stage.rejected").collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["actor"], "anna-approver");
    assert_eq!(rejected[0]["stage_ordinal"], 1);
    server.stop().await;
}

/// A new version provisioned while the old one waits at an approval replaces it: the old
/// execution is abandoned and the approval that follows deploys the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_replaces_one_waiting_for_approval() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &["dev", "staging", "prod"]);
    let server = TestServer::start_with(db, settings).await;
    let pipeline = "mlops-pipeline-churn-byompipelinerealtimebuiltin-pipeline";
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = wait_by_stack_id(&server, &stack_id, "awaiting_approval").await["id"].as_str().unwrap().to_string();
    let first = world.env.front.pipeline(pipeline).await.unwrap().executions.last().unwrap().id.clone();

    let mut update = realtime_body("churn", "models/churn/model.tar.gz");
    update["inference_instance"] = json!("ml.m5.xlarge");
    server.provision(&update).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let p = server.pipeline(&id).await;
        if p["version"] == 2 && p["state"] == "awaiting_approval" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "version 2 never reached the approval: {p:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = world.env.front.pipeline(pipeline).await.unwrap();
    let old = view.executions.iter().find(|e| e.id == first).unwrap();
    assert_eq!(old.status, "Stopped", "the old execution was abandoned: {old:?}");
    let stops = world.env.front.calls_to("codepipeline", "StopPipelineExecution");
    assert_eq!(stops.len(), 1);
    assert!(call_text(&stops[0]).contains(&first) && call_text(&stops[0]).contains("superseded by version 2"));
    assert!(world.env.front.calls_to("codepipeline", "PutApprovalResult").is_empty(), "nobody decided yet");

    assert_eq!(approve(&server, &id, "staging", APPROVER, "approve").await, 200);
    let p = server.wait_for(&id, "awaiting_approval").await;
    assert_eq!(p["stages"][1]["state"], "deployed");
    let approvals = world.env.front.calls_to("codepipeline", "PutApprovalResult");
    assert_eq!(approvals.len(), 1, "one approval, sent to the new execution");
    let newest = world.env.front.pipeline(pipeline).await.unwrap().executions.last().unwrap().clone();
    assert_ne!(newest.id, first);
    let staging = newest.actions.iter().find(|a| a.action == "DeployStagingStackSet").unwrap();
    assert_eq!(staging.status, "Succeeded", "staging deployed by the new execution: {newest:?}");
    server.stop().await;
}

/// Throttled calls are retried (by the SDK, then by the job with backoff); the pipeline gets there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_are_retried() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    // More than the SDK's own three attempts, so the job's retry is needed too.
    for (service, op) in [
        ("s3", "PutObject"),
        ("cloudformation", "DescribeStacks"),
        ("codepipeline", "GetPipelineState"),
        ("sagemaker", "DescribeEndpoint"),
    ] {
        world.env.front.throttle(service, op, 5).await;
    }
    let server = TestServer::start_with(db, settings).await;
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = wait_by_stack_id(&server, &stack_id, "active").await;
    assert_eq!(p["stages"][0]["outputs"]["sagemaker"]["endpoint_status"], "InService");
    for (service, op) in [
        ("s3", "PutObject"),
        ("cloudformation", "DescribeStacks"),
        ("codepipeline", "GetPipelineState"),
        ("sagemaker", "DescribeEndpoint"),
    ] {
        let calls = world.env.front.calls_to(service, op);
        let throttled = calls
            .iter()
            .filter(|c| ["Throttling", "SlowDown"].iter().any(|code| c.response.to_string().contains(code)))
            .count();
        assert_eq!(throttled, 5, "{service} {op} was throttled five times");
        assert!(calls.iter().any(|c| (200..300).contains(&c.status)), "{service} {op} then succeeded");
    }
    server.stop().await;
}

/// An AWS error that is not worth retrying fails the stage with its code; on `/pipelinestatus`
/// it is a problem+json carrying the AWS code, as the solution answers a boto3 ClientError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_keep_their_code() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    let server = TestServer::start_with(db, settings).await;
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_by_stack_id(&server, &stack_id, "active").await;

    world.env.front.fail("codepipeline", "GetPipelineState", "AccessDeniedException", 1).await;
    let response = server.post("/pipelinestatus", VIEWER).json(&json!({"pipeline_id": stack_id})).send().await.unwrap();
    assert_eq!(response.status(), 400, "the AWS error's own status, as the solution answers");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "AccessDeniedException", "{problem:#}");
    assert_eq!(problem["message"], "A boto3 ClientError occurred");
    assert!(problem["detail"].as_str().unwrap().contains("GetPipelineState"), "{problem:#}");
    assert_eq!(server.compat_status(&stack_id).await["stageStates"][1]["stageName"], "DeployCloudFormation");

    // Denied at CreateStack: no retry, the stage fails naming the call and the code.
    world.env.front.fail("cloudformation", "CreateStack", "AccessDenied", 1).await;
    let mut other = realtime_body("fraud", "models/churn/model.tar.gz");
    other["endpoint_name"] = json!("fraud-endpoint");
    let id = server.provision(&other).await["pipeline_id"].as_str().unwrap().to_string();
    let p = server.wait_for(&id, "failed").await;
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains("CreateStack") && error.contains("AccessDenied"), "{error}");
    let creates = world.env.front.calls_to("cloudformation", "CreateStack");
    assert_eq!(creates.iter().filter(|c| call_text(c).contains("fraud")).count(), 1, "not retried");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_polling_without_a_second_stack() {
    let world = world().await;
    let db = TestDb::new(Db::Postgres).await;
    let settings = aws_settings(&world, &db, &[]);
    let wrapper = "mlops-pipeline-churn-byompipelinerealtimebuiltin-codepipeline";
    world.env.front.hold_stack(wrapper, 40).await;
    let server = TestServer::start_with(db, settings.clone()).await;
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stack_id.starts_with("arn:aws:cloudformation"), "{stack_id}");
    // The worker is polling the held stack when the server dies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = server.kill().await;

    let server = TestServer::start_with(db, settings).await;
    let p = wait_by_stack_id(&server, &stack_id, "active").await;
    assert_eq!(p["stages"][0]["state"], "deployed");
    let creates = world.env.front.calls_to("cloudformation", "CreateStack");
    assert_eq!(creates.iter().filter(|c| call_text(c).contains(wrapper)).count(), 1, "no second wrapper stack");
    let pipelines: Value = server.get("/v1/pipelines", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(pipelines["items"].as_array().unwrap().len(), 1, "no second pipeline");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stack_fails_the_pipeline_with_the_reason() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    world
        .env
        .front
        .fail_stack_create(
            "mlops-pipeline-churn-byompipelinerealtimebuiltin",
            "Resource handler returned message: quota exceeded",
        )
        .await;
    let server = TestServer::start_with(db, settings).await;
    let stack_id = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await["pipeline_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = wait_by_stack_id(&server, &stack_id, "failed").await;
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains("deploy_stack") && error.contains("quota exceeded"), "{error}");
    server.stop().await;
}

/// An endpoint the monitors can watch: moto ignores explicit names in templates, so it is made
/// through the API, as its owner would have made it.
async fn an_existing_endpoint(world: &AwsWorld, endpoint: &str, model: &str) {
    let c = world.env.client();
    let role = world.env.create_role(&format!("{endpoint}-role"), "sagemaker.amazonaws.com").await;
    let image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";
    let config = format!("{endpoint}-config");
    for (op, body) in [
        ("CreateModel", json!({"ModelName": model, "ExecutionRoleArn": role, "PrimaryContainer": {"Image": image}})),
        (
            "CreateEndpointConfig",
            json!({"EndpointConfigName": config, "ProductionVariants": [{"VariantName": "AllTraffic",
                "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]}),
        ),
        ("CreateEndpoint", json!({"EndpointName": endpoint, "EndpointConfigName": config})),
    ] {
        let reply = c.sagemaker(op, body).await;
        assert!(reply.status.is_success(), "{op}: {}", reply.text());
    }
}

/// Every pipeline type provisions on moto through the front, from the request fixtures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pipeline_type_provisions() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = aws_settings(&world, &db, &[]);
    settings.jobs.workers = 4;
    let server = TestServer::start_with(db, settings).await;
    // What the fixtures point at in the assets bucket (the Clarify baselines read the CSV header).
    for key in ["monitor/baseline/training-dataset-with-header.csv", "monitor/baseline/shap-baseline.csv"] {
        world.env.put_object(ASSETS, key, b"label,age,income\n1,35,52000\n0,51,61000\n".to_vec()).await;
    }
    let build_context = crate::support::aws::zip_files(&[("Dockerfile", "FROM python:3.11-slim\n")]);
    world.env.put_object(ASSETS, "custom/custom_image.zip", build_context).await;
    an_existing_endpoint(&world, "churn-endpoint", "churn-model").await;
    let types = [
        "byom_realtime_builtin",
        "byom_realtime_custom",
        "byom_batch_builtin",
        "byom_batch_custom",
        "byom_data_quality_monitor",
        "byom_model_quality_monitor",
        "byom_model_bias_monitor",
        "byom_model_explainability_monitor",
        "byom_image_builder",
        "model_training_builtin",
        "model_tuner_builtin",
        "model_autopilot_training",
    ];
    let mut ids = Vec::new();
    for t in types {
        let body = fixture_json(&format!("requests/{t}.json"));
        let out = server.provision(&body).await;
        ids.push((t, out["pipeline_id"].as_str().unwrap().to_string()));
    }
    for (t, stack_id) in ids {
        let id = our_id(&server, &stack_id).await;
        if t == "model_autopilot_training" {
            automl_job_started(&world).await;
            let p = server.pipeline(&id).await;
            assert_eq!(p["state"], "provisioning", "{p:#}");
            assert_eq!(p["stages"][0]["state"], "deploying");
            continue;
        }
        let p = server.wait_for(&id, "active").await;
        assert_eq!(p["pipeline_type"], t);
        let outputs = &p["stages"][0]["outputs"];
        match t {
            // The solution's output names: the job the orchestrator started is the one the stack names.
            "byom_batch_builtin" | "byom_batch_custom" => assert_eq!(
                outputs["outputs"]["BatchTransformJobName"], outputs["sagemaker"]["transform_job_name"],
                "{t}: {outputs:#}"
            ),
            "byom_realtime_builtin" | "byom_realtime_custom" => {
                assert!(
                    outputs["outputs"]["InferenceApiUrl"].as_str().is_some_and(|u| u.ends_with("/inference")),
                    "{t}: {outputs:#}"
                )
            }
            "model_training_builtin" | "model_tuner_builtin" => {
                assert_eq!(outputs["outputs"]["TrainingJobName"], outputs["outputs"]["JobName"], "{t}: {outputs:#}")
            }
            _ => {}
        }
    }
    // Each type deployed its own stack.
    let creates = world.env.front.calls_to("cloudformation", "CreateStack");
    for t in types {
        let postfix =
            mlops::domain::PipelineType::ALL.iter().find(|p| p.as_str() == t).unwrap().stack_postfix().to_lowercase();
        assert!(creates.iter().any(|c| call_text(c).contains(&postfix)), "no stack for {t}");
    }
    server.stop().await;
}

/// The image builder's stack is its pipeline: a new version updates the stack and waits for a
/// build that started after the update; an update CloudFormation rolls back fails the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_builder_rebuilds_for_each_version() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    let server = TestServer::start_with(db, settings).await;
    let build_context = crate::support::aws::zip_files(&[("Dockerfile", "FROM python:3.11-slim\n")]);
    world.env.put_object(ASSETS, "custom/custom_image.zip", build_context.clone()).await;
    world.env.put_object(ASSETS, "custom/custom_image_v2.zip", build_context).await;
    // The image tag names the pipeline; a new build context makes a new version of it.
    let mut body = fixture_json("requests/byom_image_builder.json");
    let out = server.provision(&body).await;
    assert_eq!(out["message"], "success: stack creation started");
    let stack_id = out["pipeline_id"].as_str().unwrap().to_string();
    let p = wait_by_stack_id(&server, &stack_id, "active").await;
    let id = p["id"].as_str().unwrap().to_string();
    let stack = p["stages"][0]["outputs"]["stack_name"].as_str().unwrap().to_string();
    let first_build = p["stages"][0]["outputs"]["pipeline_execution_id"].as_str().unwrap().to_string();

    body["custom_algorithm_docker"] = json!("custom/custom_image_v2.zip");
    let again = server.provision(&body).await;
    assert_eq!(again["message"], format!("Pipeline {stack} is being updated."));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let p = loop {
        let p = server.pipeline(&id).await;
        if p["version"] == 2 && p["state"] == "active" {
            break p;
        }
        assert_ne!(p["state"], "failed", "{p:#}");
        assert!(tokio::time::Instant::now() < deadline, "version 2 never became active: {p:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let second_build = p["stages"][0]["outputs"]["pipeline_execution_id"].as_str().unwrap();
    assert_ne!(second_build, first_build, "version 2 waited for a build of its own");
    let updates = world.env.front.calls_to("cloudformation", "UpdateStack");
    assert_eq!(updates.len(), 1);
    assert!(call_text(&updates[0]).contains("custom_image_v2.zip"), "the update carries the new build context");

    world.env.front.fail_stack_update(&stack, "Resource handler returned message: repository not found").await;
    body["custom_algorithm_docker"] = json!("custom/custom_image.zip");
    server.provision(&body).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let p = loop {
        let p = server.pipeline(&id).await;
        if p["version"] == 3 && p["state"] == "failed" {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "version 3 did not fail: {p:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains("rolled back"), "{error}");
    assert_eq!(world.env.front.calls_to("cloudformation", "UpdateStack").len(), 2, "no update after the rollback");
    server.stop().await;
}

/// With the model registry on, a package deploys only once it is approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_package_must_be_approved() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = aws_settings(&world, &db, &[]);
    settings.use_model_registry = true;
    let server = TestServer::start_with(db, settings).await;
    let c = world.env.client();
    let reply = c.sagemaker("CreateModelPackageGroup", json!({"ModelPackageGroupName": "churn-models"})).await;
    assert!(reply.status.is_success(), "{}", reply.text());
    let image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";
    let reply = c
        .sagemaker(
            "CreateModelPackage",
            json!({
                "ModelPackageGroupName": "churn-models",
                "ModelApprovalStatus": "PendingManualApproval",
                "InferenceSpecification": {
                    "Containers": [{"Image": image, "ModelDataUrl": format!("s3://{ASSETS}/models/churn/model.tar.gz")}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            }),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text());
    let package = reply.json()["ModelPackageArn"].as_str().unwrap().to_string();

    let mut body = fixture_json("requests/registry/byom_realtime_builtin.json");
    body["model_package_name"] = json!(package);
    let stack_id = server.provision(&body).await["pipeline_id"].as_str().unwrap().to_string();
    let p = wait_by_stack_id(&server, &stack_id, "failed").await;
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains("PendingManualApproval") && error.contains("not Approved"), "{error}");

    let reply =
        c.sagemaker("UpdateModelPackage", json!({"ModelPackageArn": package, "ModelApprovalStatus": "Approved"})).await;
    assert!(reply.status.is_success(), "{}", reply.text());
    server.provision(&body).await;
    let p = server.wait_for(p["id"].as_str().unwrap(), "active").await;
    assert_eq!(p["version"], 2);
    server.stop().await;
}

/// Re-provisioning a name whose stacks the solution made: its `-codepipeline` stack is not ours
/// (not our template's description), so the pipeline fails naming it and docs/MIGRATION.md, and
/// nothing is uploaded that the solution's CodePipeline would deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapper_stack_made_by_the_solution_is_refused() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    let stack = "mlops-pipeline-churn-byompipelinerealtimebuiltin";
    let wrapper = format!("{stack}-codepipeline");
    let solutions = json!({
        "Description": "(SO0136) - The AWS MLOps Workload Orchestrator solution: single-account pipeline",
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    })
    .to_string();
    let created = world
        .env
        .client()
        .cloudformation(&[("Action", "CreateStack"), ("StackName", &wrapper), ("TemplateBody", &solutions)])
        .await;
    assert!(created.status.is_success(), "{}", String::from_utf8_lossy(&created.body));
    let server = TestServer::start_with(db, settings).await;
    let out = server.provision(&realtime_body("churn", "models/churn/model.tar.gz")).await;
    let id = out["pipeline_id"].as_str().unwrap().to_string();
    assert!(!id.starts_with("arn:"), "no stack of ours was created: {out:#}");
    let p = server.wait_for(&id, "failed").await;
    let error = p["last_error"].as_str().unwrap();
    assert!(error.contains(&format!("stack {wrapper} exists and was not made by mlops-orchestrator")), "{error}");
    assert!(error.contains("docs/MIGRATION.md"), "{error}");
    let zip = format!("mlops_provisioned_pipelines/{stack}/template.zip");
    let head = world.env.client().s3("HEAD", ASSETS, Some(&zip), "", &[], Vec::new()).await;
    assert_eq!(head.status.as_u16(), 404, "no template.zip for the solution's CodePipeline to deploy");
    assert_eq!(stack_status(&world, None, &wrapper).await.as_deref(), Some("CREATE_COMPLETE"), "left as it was");
    server.stop().await;
}

/// The six model-card operations call SageMaker's model-card APIs (moto keeps the cards; the
/// front stands in for export jobs): the overview comes from `DescribeModel`, metrics from a
/// statistics file in S3, and the export writes under the assets bucket's `model_card_exports/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_card_operations_call_sagemakers_model_card_apis() {
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let settings = aws_settings(&world, &db, &[]);
    let server = TestServer::start_with(db, settings).await;
    let compat = |body: Value| {
        let request = server.post("/provisionpipeline", crate::support::server::OPERATOR).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let role = world.env.create_role("mlops-sagemaker", "sagemaker.amazonaws.com").await;
    let image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";
    let artifact = format!("s3://{ASSETS}/models/churn/model.tar.gz");
    let model = world
        .env
        .client()
        .sagemaker(
            "CreateModel",
            json!({"ModelName": "churn-model", "ExecutionRoleArn": role,
                   "PrimaryContainer": {"Image": image, "ModelDataUrl": artifact}}),
        )
        .await;
    assert!(model.status.is_success(), "{}", model.text());
    let statistics = json!({"version": 0.0, "regression_metrics": {
        "mae": {"value": 0.31, "standard_deviation": 0.002}, "r2": {"value": 0.82, "standard_deviation": 0.004}}});
    world.env.put_object(ASSETS, "evaluation/statistics.json", statistics.to_string().into_bytes()).await;

    let create = json!({
        "pipeline_type": "create_model_card",
        "name": "churn-card",
        "model_overview": {"model_name": "churn-model", "model_description": "Who will leave"},
        "intended_uses": {"purpose_of_model": "Churn prevention", "risk_rating": "Low"},
        "evaluation_details": [{"name": "holdout", "metric_type": "regression",
                                "metric_file_s3_url": format!("s3://{ASSETS}/evaluation/statistics.json")}],
    });
    let mut unknown = create.clone();
    unknown["model_overview"]["model_name"] = json!("no-such-model");
    let (status, problem) = compat(unknown).await;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (400, Some("/model_overview/model_name")),
        "{problem:#}"
    );

    let (status, created) = compat(create.clone()).await;
    assert_eq!(status, 200, "{created:#}");
    let described = &created["message"];
    assert_eq!(
        (described["ModelCardName"].as_str(), described["ModelCardVersion"].as_i64()),
        (Some("churn-card"), Some(1))
    );
    let content: Value = serde_json::from_str(described["Content"].as_str().unwrap()).unwrap();
    let overview = &content["model_overview"];
    assert!(overview["model_id"].as_str().unwrap().ends_with(":model/churn-model"), "{overview:#}");
    assert_eq!(overview["inference_environment"]["container_image"], json!([image]));
    assert_eq!(overview["model_artifact"], json!([artifact]));
    let metrics = &content["evaluation_details"][0]["metric_groups"][0];
    assert_eq!(metrics["name"], "regression_metrics");
    assert_eq!(metrics["metric_data"][2], json!({"name": "r2", "type": "number", "value": 0.82}));
    let sent = &world.env.front.calls_to("sagemaker", "CreateModelCard")[0].request;
    assert_eq!(sent["ModelCardStatus"], "Draft");
    assert_eq!(serde_json::from_str::<Value>(sent["Content"].as_str().unwrap()).unwrap(), content);
    assert_eq!(compat(create).await.0, 409, "SageMaker's ConflictException");

    let (status, updated) =
        compat(json!({"pipeline_type": "update_model_card", "name": "churn-card", "status": "Approved"})).await;
    assert_eq!(status, 200, "{updated:#}");
    assert_eq!(
        (updated["message"]["ModelCardVersion"].as_i64(), updated["message"]["ModelCardStatus"].as_str()),
        (Some(2), Some("Approved"))
    );
    let sent = &world.env.front.calls_to("sagemaker", "UpdateModelCard")[0].request;
    assert_eq!(serde_json::from_str::<Value>(sent["Content"].as_str().unwrap()).unwrap(), content, "sections kept");
    let (_, listed) = compat(json!({"pipeline_type": "list_model_cards"})).await;
    assert_eq!(listed["message"]["ModelCardSummaries"][0]["ModelCardName"], "churn-card", "{listed:#}");
    let versions: Value =
        server.get("/v1/model-cards/churn-card/versions", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(versions["items"].as_array().map(Vec::len), Some(2), "{versions:#}");

    let (status, exported) = compat(json!({"pipeline_type": "export_model_card", "name": "churn-card",
        "export_job_name": "churn-card-export"}))
    .await;
    assert_eq!(status, 200, "{exported:#}");
    assert_eq!(
        exported["message"],
        format!("Model card with the name: churn-card has been exported to s3://{ASSETS}/model_card_exports")
    );
    let job = &world.env.front.calls_to("sagemaker", "CreateModelCardExportJob")[0].request;
    assert_eq!(
        (job["ModelCardName"].as_str(), job["ModelCardVersion"].as_i64(), job["ModelCardExportJobName"].as_str()),
        (Some("churn-card"), Some(2), Some("churn-card-export"))
    );
    assert_eq!(job["OutputConfig"]["S3OutputPath"], format!("s3://{ASSETS}/model_card_exports"));
    let pdf = "model_card_exports/churn-card/churn-card-export/churn-card.pdf";
    assert!(world.env.client().s3("HEAD", ASSETS, Some(pdf), "", &[], Vec::new()).await.status.is_success());

    let (status, deleted) = compat(json!({"pipeline_type": "delete_model_card", "name": "churn-card"})).await;
    assert_eq!(
        (status, deleted["message"].as_str()),
        (200, Some("Model card with the name: churn-card has been deleted"))
    );
    assert_eq!(compat(json!({"pipeline_type": "describe_model_card", "name": "churn-card"})).await.0, 404);
    server.stop().await;
}

/// A CodePipeline run started outside the orchestrator (the console's "Release change") is
/// noticed, and the stage's post-deploy jobs — a batch transform, a training job — run for it
/// under names of their own, once however often the pipelines are looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_started_in_the_console_runs_the_post_deploy_jobs_again() {
    use mlops::domain::{PipelineType, names};
    let world = world().await;
    let db = TestDb::new(Db::Sqlite).await;
    let mut settings = aws_settings(&world, &db, &[]);
    settings.aws.release_watch_interval = Duration::from_millis(200);
    let server = TestServer::start_with(db, settings).await;
    let mut ids = Vec::new();
    for t in ["byom_batch_builtin", "model_training_builtin"] {
        let out = server.provision(&fixture_json(&format!("requests/{t}.json"))).await;
        let p = wait_by_stack_id(&server, out["pipeline_id"].as_str().unwrap(), "active").await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    let transforms = || world.env.front.calls_to("sagemaker", "CreateTransformJob");
    let trainings = || world.env.front.calls_to("sagemaker", "CreateTrainingJob");
    assert_eq!((transforms().len(), trainings().len()), (1, 1));
    // Nothing was started outside: a few looks change nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((transforms().len(), trainings().len()), (1, 1));

    for t in [PipelineType::ByomBatchBuiltin, PipelineType::ModelTrainingBuiltin] {
        let pipeline = format!("{}-pipeline", names::stack_name(t, "churn-xgb"));
        let started = world.env.client().codepipeline("StartPipelineExecution", json!({"name": pipeline})).await;
        assert!(started.status.is_success(), "{}", started.text());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while transforms().len() < 2 || trainings().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the release's jobs never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = |call: &crate::support::aws::RecordedCall, key: &str| call.request[key].as_str().unwrap().to_string();
    let (first, again) = (name(&transforms()[0], "TransformJobName"), name(&transforms()[1], "TransformJobName"));
    assert_ne!(first, again);
    assert!(again.len() <= 63 && again.contains("-r"), "{again}");
    let (first, again) = (name(&trainings()[0], "TrainingJobName"), name(&trainings()[1], "TrainingJobName"));
    assert_ne!(first, again);
    for id in &ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = server.events(id).await;
            let kinds: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
            if kinds.contains(&"release.completed") {
                assert_eq!(kinds.iter().filter(|k| **k == "release.noticed").count(), 1, "{kinds:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no release.completed: {events:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(server.pipeline(id).await["state"], "active", "the deployment itself is untouched");
    }
    // Once per release, however many looks.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((transforms().len(), trainings().len()), (2, 2));
    server.stop().await;
}

/// The solution's own test-fixture bodies (tests/fixtures/solution) on the aws target provision
/// and run to `active` (multi-account ones through both approvals), answering in the solution's
/// shapes; the monitors watch `test-endpoint` (their `test_endpoint`, `s3://` ground truth and
/// JSON-text bias configuration read as meant, with warnings: docs/API.md §10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_solutions_fixture_bodies_on_the_aws_target() {
    let bodies = fixture_json("solution/bodies.json");
    // A single-account install and a multi-account one, each with its own AWS.
    for (environments, multi) in [(&[][..], false), (&["dev", "staging", "prod"][..], true)] {
        let world = world().await;
        let zip = crate::support::aws::zip_files(&[("Dockerfile", "FROM python:3.11-slim\n")]);
        world.env.put_object(ASSETS, "custom/custom_image.zip", zip).await;
        let db = TestDb::new(Db::Sqlite).await;
        let mut settings = aws_settings(&world, &db, environments);
        settings.jobs.workers = 4;
        let server = TestServer::start_with(db, settings).await;
        if !multi {
            // What the monitor bodies watch and baseline (the Clarify baselines read the header).
            an_existing_endpoint(&world, "test-endpoint", "testmodel").await;
            let csv = b"label,0,age,personal_status_sex\n1,0.8,35,A91\n0,0.1,51,A92\n".to_vec();
            world.env.put_object(ASSETS, "model_monitor/training-dataset-with-header.csv", csv).await;
            // The bodies' output and ground-truth buckets, as their owners have them.
            for bucket in ["testbucket", "test-bucket"] {
                world.env.create_versioned_bucket(bucket).await;
            }
        }
        let mut active = Vec::new();
        for (name, body) in bodies.as_object().unwrap() {
            if name.ends_with("-multi") != multi {
                continue;
            }
            let response = server.post("/provisionpipeline", OPERATOR).json(body).send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{name}: {answer:#}");
            if name.ends_with("_monitor") {
                assert!(answer["warnings"][0].as_str().unwrap().contains("was read as `test-endpoint`"), "{answer:#}");
            }
            let message = answer["message"].as_str().unwrap();
            assert!(
                message == "success: stack creation started" || message.ends_with("Updating template parameters."),
                "{name}: {message}"
            );
            // The same type and model_name again (with an endpoint_name) updates that pipeline.
            let stack_id = answer["pipeline_id"].as_str().unwrap().to_string();
            active.retain(|(_, id): &(String, String)| *id != stack_id);
            active.push((name.clone(), stack_id));
        }
        for (name, stack_id) in active {
            let id = our_id(&server, &stack_id).await;
            if name == "model_autopilot_training" {
                automl_job_started(&world).await;
                continue;
            }
            let p = if multi {
                server.wait_for(&id, "awaiting_approval").await;
                server.approve_staging_and_prod(&id).await
            } else {
                server.wait_for(&id, "active").await
            };
            let status = server.compat_status(&stack_id).await;
            assert!(status["stageStates"].as_array().is_some_and(|s| !s.is_empty()), "{name}: {status:#}");
            assert_eq!(p["state"], "active", "{name}");
        }
        if !multi {
            // Each monitor's baseline job was started for `test-endpoint`.
            let jobs = world.env.front.calls_to("sagemaker", "CreateProcessingJob");
            let names: Vec<String> = jobs.iter().map(|c| c.request["ProcessingJobName"].to_string()).collect();
            for infix in ["dataquality", "modelquality", "modelbias"] {
                let prefix = format!("\"test-endpoint-{infix}-");
                assert!(names.iter().any(|n| n.starts_with(&prefix)), "{infix}: {names:?}");
            }
        }
        server.stop().await;
    }
}
