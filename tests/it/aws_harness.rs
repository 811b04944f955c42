//! Tests of the aws test harness itself (tests/it/support/aws): moto on loopback plus the AWS
//! front, driven with raw signed HTTP (no AWS SDK), so the lead's SDK code can rely on it.

use crate::support::aws::{AwsClient, AwsTestEnv, Creds, RawReply, template, zip_files};
use serde_json::{Value, json};
use std::collections::HashMap;

const DEV_ACCOUNT: &str = "123456789012";
const STAGING_ACCOUNT: &str = "222222222222";
const BUCKET: &str = "mlops-assets-123456789012";
const ZIP_KEY: &str = "mlops_provisioned_pipelines/demo/template.zip";

/// A wrapper like `multi_account_codepipeline.yaml`, trimmed: S3 source → deploy (dev) →
/// manual approval → deploy (staging, cross-account through the action role).
const WRAPPER: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  AssetsBucket: { Type: String }
  TemplateZipFileName: { Type: String }
  StackName: { Type: String }
  StagingAccountId: { Type: String }
  UseStaging: { Type: String, Default: "yes", AllowedValues: ["yes", "no"] }
  NotificationsSNSTopicArn: { Type: String, Default: "arn:aws:sns:us-east-1:123456789012:mlops-notifications" }
Conditions:
  WithStaging: !Equals [!Ref UseStaging, "yes"]
Resources:
  PipelineRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: { Service: codepipeline.amazonaws.com }
            Action: sts:AssumeRole
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      Name: !Sub "${StackName}-pipeline"
      RoleArn: !GetAtt PipelineRole.Arn
      ArtifactStore: { Type: S3, Location: !Ref AssetsBucket }
      Stages:
        - Name: Source
          Actions:
            - Name: S3Source
              ActionTypeId: { Category: Source, Owner: AWS, Provider: S3, Version: "1" }
              Configuration:
                S3Bucket: !Ref AssetsBucket
                S3ObjectKey: !Ref TemplateZipFileName
                PollForSourceChanges: false
              OutputArtifacts: [{ Name: Source }]
              RunOrder: 1
        - Name: DeployDev
          Actions:
            - Name: DeployDevStackSet
              ActionTypeId: { Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1" }
              Configuration:
                ActionMode: REPLACE_ON_FAILURE
                StackName: !Sub "${StackName}-dev"
                TemplatePath: Source::topic.yaml
                TemplateConfiguration: Source::dev_template_params.json
                Capabilities: CAPABILITY_NAMED_IAM
              InputArtifacts: [{ Name: Source }]
              RunOrder: 1
            - Name: DeployStaging
              ActionTypeId: { Category: Approval, Owner: AWS, Provider: Manual, Version: "1" }
              Configuration:
                NotificationArn: !Ref NotificationsSNSTopicArn
                CustomData: !Join [" ", ["Approve", !Ref StackName, "for staging?"]]
              RunOrder: 2
        - !If
          - WithStaging
          - Name: DeployStaging
            Actions:
              - Name: DeployStagingStackSet
                ActionTypeId: { Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1" }
                RoleArn: !Sub "arn:aws:iam::${StagingAccountId}:role/mlops-pipeline-action"
                Configuration:
                  ActionMode: CREATE_UPDATE
                  StackName: !Sub "${StackName}-staging"
                  TemplatePath: Source::topic.yaml
                  TemplateConfiguration: Source::staging_template_params.json
                  RoleArn: !Sub "arn:aws:iam::${StagingAccountId}:role/mlops-deploy"
                InputArtifacts: [{ Name: Source }]
                RunOrder: 1
          - !Ref AWS::NoValue
"#;

/// The deployed template: an SNS topic and an IAM role (both emulated by moto).
const TOPIC: &str = r#"
Parameters:
  TopicName: { Type: String }
  Env: { Type: String }
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Ref TopicName
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: !Sub "${Env}-topic-role"
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: { Service: sagemaker.amazonaws.com }
            Action: sts:AssumeRole
Outputs:
  TopicArn:
    Value: !Ref Topic
"#;

fn template_zip(topic_suffix: &str) -> Vec<u8> {
    let dev = json!({ "Parameters": { "TopicName": format!("dev-topic{topic_suffix}"), "Env": "dev" } }).to_string();
    let staging =
        json!({ "Parameters": { "TopicName": format!("staging-topic{topic_suffix}"), "Env": "staging" } }).to_string();
    zip_files(&[("topic.yaml", TOPIC), ("dev_template_params.json", &dev), ("staging_template_params.json", &staging)])
}

async fn create_wrapper(c: &AwsClient, stack: &str) -> RawReply {
    let r = c
        .cloudformation(&[
            ("Action", "CreateStack"),
            ("StackName", &format!("{stack}-codepipeline")),
            ("TemplateBody", WRAPPER),
            ("Capabilities.member.1", "CAPABILITY_NAMED_IAM"),
            ("Parameters.member.1.ParameterKey", "AssetsBucket"),
            ("Parameters.member.1.ParameterValue", BUCKET),
            ("Parameters.member.2.ParameterKey", "TemplateZipFileName"),
            ("Parameters.member.2.ParameterValue", ZIP_KEY),
            ("Parameters.member.3.ParameterKey", "StackName"),
            ("Parameters.member.3.ParameterValue", stack),
            ("Parameters.member.4.ParameterKey", "StagingAccountId"),
            ("Parameters.member.4.ParameterValue", STAGING_ACCOUNT),
        ])
        .await;
    assert!(r.status.is_success(), "CreateStack wrapper: {} {}", r.status, r.text());
    r
}

/// Bucket, role, wrapper stack: the pipeline `demo-pipeline` exists in the front's model.
async fn setup() -> AwsTestEnv {
    let env = AwsTestEnv::start().await;
    env.create_versioned_bucket(BUCKET).await;
    env.create_role("mlops-codepipeline", "codepipeline.amazonaws.com").await;
    create_wrapper(&env.client(), "demo").await;
    env
}

fn action_state<'a>(state: &'a Value, stage: &str, action: &str) -> &'a Value {
    let stage = state["stageStates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stageName"] == stage)
        .unwrap_or_else(|| panic!("no stage {stage} in {state:#}"));
    stage["actionStates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actionName"] == action)
        .unwrap_or_else(|| panic!("no action {action} in {stage:#}"))
}

fn stage_state<'a>(state: &'a Value, stage: &str) -> &'a Value {
    state["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == stage).unwrap()
}

async fn pipeline_state(c: &AwsClient, name: &str) -> Value {
    let r = c.codepipeline("GetPipelineState", json!({ "name": name })).await;
    assert!(r.status.is_success(), "GetPipelineState: {} {}", r.status, r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("application/x-amz-json-1.1"));
    r.json()
}

/// Polls `GetPipelineState` (each call is one clock step) until `done` holds.
async fn poll_until(c: &AwsClient, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..20 {
        let s = pipeline_state(c, name).await;
        if done(&s) {
            return s;
        }
    }
    panic!("pipeline {name}: never {what}:\n{:#}", pipeline_state(c, name).await);
}

fn waiting_approval(s: &Value) -> bool {
    action_state(s, "DeployDev", "DeployStaging")["latestExecution"]["status"] == "InProgress"
        && action_state(s, "DeployDev", "DeployStaging")["latestExecution"]["token"].is_string()
}

async fn stack_status(c: &AwsClient, stack: &str) -> (String, Option<String>) {
    let r = c.cloudformation(&[("Action", "DescribeStacks"), ("StackName", stack)]).await;
    if !r.status.is_success() {
        return (format!("error: {}", r.xml("Message").unwrap_or_default()), None);
    }
    (r.xml("StackStatus").unwrap(), r.xml("StackStatusReason"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_runs_deploys_waits_for_approval_and_deploys_cross_account() {
    let env = setup().await;
    let c = env.client();

    // The pipeline came from the wrapper stack, resolved against its parameters.
    let p = c.codepipeline("GetPipeline", json!({ "name": "demo-pipeline" })).await;
    assert!(p.status.is_success(), "{}", p.text());
    let p = p.json();
    assert_eq!(p["pipeline"]["version"], 1);
    let stages: Vec<&str> =
        p["pipeline"]["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["Source", "DeployDev", "DeployStaging"]);
    let source = &p["pipeline"]["stages"][0]["actions"][0];
    assert_eq!(source["configuration"]["S3Bucket"], BUCKET);
    assert_eq!(source["configuration"]["S3ObjectKey"], ZIP_KEY);
    assert_eq!(source["configuration"]["PollForSourceChanges"], "false");
    let approval = &p["pipeline"]["stages"][1]["actions"][1];
    assert_eq!(approval["configuration"]["CustomData"], "Approve demo for staging?");
    assert_eq!(approval["runOrder"], 2);
    assert_eq!(
        p["pipeline"]["stages"][2]["actions"][0]["roleArn"],
        format!("arn:aws:iam::{STAGING_ACCOUNT}:role/mlops-pipeline-action")
    );
    let listed = c.codepipeline("ListPipelines", json!({})).await.json();
    assert!(listed["pipelines"].as_array().unwrap().iter().any(|p| p["name"] == "demo-pipeline"), "{listed:#}");

    // Creating the pipeline started an execution; with no zip yet its source fails, as on AWS.
    let s = poll_until(&c, "demo-pipeline", "fail its first source", |s| {
        action_state(s, "Source", "S3Source")["latestExecution"]["status"] == "Failed"
    })
    .await;
    assert!(
        action_state(&s, "Source", "S3Source")["latestExecution"]["errorDetails"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    // Uploading the zip starts an execution whose source revision is the object's version.
    let v1 = env.put_object(BUCKET, ZIP_KEY, template_zip("")).await.expect("versioned bucket");
    let execs = c.codepipeline("ListPipelineExecutions", json!({ "pipelineName": "demo-pipeline" })).await.json();
    let latest = &execs["pipelineExecutionSummaries"][0];
    assert_eq!(latest["status"], "InProgress");
    assert_eq!(latest["sourceRevisions"][0]["revisionId"], v1.as_str());
    assert_eq!(latest["trigger"]["triggerType"], "CloudWatchEvent");
    let exec_id = latest["pipelineExecutionId"].as_str().unwrap().to_string();
    assert_eq!(execs["pipelineExecutionSummaries"][1]["status"], "Failed");

    // Steps: source succeeds, the dev deploy creates its stack, the approval waits with a token.
    let s = poll_until(&c, "demo-pipeline", "wait for approval", waiting_approval).await;
    assert_eq!(action_state(&s, "Source", "S3Source")["currentRevision"]["revisionId"], v1.as_str());
    let deploy = &action_state(&s, "DeployDev", "DeployDevStackSet")["latestExecution"];
    assert_eq!(deploy["status"], "Succeeded", "{s:#}");
    assert!(deploy["externalExecutionId"].as_str().unwrap().starts_with("arn:aws:cloudformation:"));
    assert_eq!(stage_state(&s, "DeployDev")["latestExecution"]["pipelineExecutionId"], exec_id.as_str());
    assert_eq!(stage_state(&s, "DeployDev")["latestExecution"]["status"], "InProgress");
    assert!(s["created"].is_f64() && s["updated"].is_f64());
    assert!(action_state(&s, "DeployDev", "DeployStaging")["latestExecution"]["lastStatusChange"].is_f64());
    let token =
        action_state(&s, "DeployDev", "DeployStaging")["latestExecution"]["token"].as_str().unwrap().to_string();

    // The dev stack really exists in moto, with the template-configuration parameters.
    let d = c.cloudformation(&[("Action", "DescribeStacks"), ("StackName", "demo-dev")]).await;
    assert_eq!(d.xml("StackStatus").as_deref(), Some("CREATE_COMPLETE"), "{}", d.text());
    assert!(d.xml_all("ParameterValue").contains(&"dev-topic".to_string()), "{}", d.text());
    assert!(d.xml_all("OutputValue").iter().any(|v| v.ends_with(":dev-topic")), "{}", d.text());

    // A wrong token is refused; the right one approves and the execution moves on.
    let approve = |token: String, status: &str, summary: &str| {
        json!({
            "pipelineName": "demo-pipeline",
            "stageName": "DeployDev",
            "actionName": "DeployStaging",
            "result": { "summary": summary, "status": status },
            "token": token,
        })
    };
    let wrong = c.codepipeline("PutApprovalResult", approve("not-the-token".into(), "Approved", "x")).await;
    assert_eq!(wrong.status.as_u16(), 400);
    assert_eq!(wrong.error_code().as_deref(), Some("InvalidApprovalTokenException"));
    let ok =
        c.codepipeline("PutApprovalResult", approve(token.clone(), "Approved", "Approved by anna: looks good")).await;
    assert!(ok.status.is_success(), "{}", ok.text());
    assert!(ok.json()["approvedAt"].is_f64());
    let again = c.codepipeline("PutApprovalResult", approve(token.clone(), "Approved", "again")).await;
    assert_eq!(again.error_code().as_deref(), Some("ApprovalAlreadyCompletedException"));

    let s = poll_until(&c, "demo-pipeline", "succeed", |s| {
        stage_state(s, "DeployStaging")["latestExecution"]["status"] == "Succeeded"
    })
    .await;
    let approval = &action_state(&s, "DeployDev", "DeployStaging")["latestExecution"];
    assert_eq!(approval["status"], "Succeeded");
    assert_eq!(approval["summary"], "Approved by anna: looks good");
    assert!(approval["lastUpdatedBy"].as_str().unwrap().starts_with("arn:aws:iam::123456789012:"));
    let e = c
        .codepipeline(
            "GetPipelineExecution",
            json!({ "pipelineName": "demo-pipeline", "pipelineExecutionId": exec_id }),
        )
        .await
        .json();
    assert_eq!(e["pipelineExecution"]["status"], "Succeeded");
    assert_eq!(e["pipelineExecution"]["artifactRevisions"][0]["revisionId"], v1.as_str());
    assert_eq!(e["pipelineExecution"]["artifactRevisions"][0]["name"], "Source");

    // The staging deploy went to the staging account (the action role's), not the default one.
    let (status, _) = stack_status(&c, "demo-staging").await;
    assert!(status.contains("does not exist"), "staging stack leaked into the default account: {status}");
    let staging = c.with_creds(c.assume_role(&format!("arn:aws:iam::{STAGING_ACCOUNT}:role/mlops-deploy")).await);
    let (status, _) = stack_status(&staging, "demo-staging").await;
    assert_eq!(status, "CREATE_COMPLETE");
    let d = staging.cloudformation(&[("Action", "DescribeStacks"), ("StackName", "demo-staging")]).await;
    assert!(d.xml("StackId").unwrap().contains(&format!(":{STAGING_ACCOUNT}:stack/demo-staging/")), "{}", d.text());
    assert_eq!(d.xml("RoleARN").as_deref(), Some(&*format!("arn:aws:iam::{STAGING_ACCOUNT}:role/mlops-deploy")));

    // The front recorded what reached the API.
    let calls = env.front.calls_to("codepipeline", "PutApprovalResult");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].status, 400);
    assert_eq!(calls[1].status, 200);
    assert_eq!(calls[1].request["result"]["summary"], "Approved by anna: looks good");
    assert_eq!(calls[1].account, DEV_ACCOUNT);
    let view = env.front.pipeline("demo-pipeline").await.unwrap();
    assert_eq!(view.stack.as_deref(), Some("demo-codepipeline"));
    let latest = view.latest().unwrap();
    assert_eq!(latest.status, "Succeeded");
    assert_eq!(latest.source_revisions["S3Source"].as_deref(), Some(v1.as_str()));
    assert_eq!(latest.action("DeployStagingStackSet").unwrap().status, "Succeeded");

    // A second version updates the dev stack (CREATE_UPDATE/REPLACE_ON_FAILURE on a live stack).
    let v2 = env.put_object(BUCKET, ZIP_KEY, template_zip("-v2")).await.unwrap();
    assert_ne!(v1, v2);
    poll_until(&c, "demo-pipeline", "wait for the second approval", |s| {
        waiting_approval(s) && action_state(s, "Source", "S3Source")["currentRevision"]["revisionId"] == v2.as_str()
    })
    .await;
    let d = c.cloudformation(&[("Action", "DescribeStacks"), ("StackName", "demo-dev")]).await;
    assert_eq!(d.xml("StackStatus").as_deref(), Some("UPDATE_COMPLETE"), "{}", d.text());
    assert!(d.xml_all("ParameterValue").contains(&"dev-topic-v2".to_string()));

    // Deleting the wrapper stack drops the pipeline.
    let r = c.cloudformation(&[("Action", "DeleteStack"), ("StackName", "demo-codepipeline")]).await;
    assert!(r.status.is_success());
    let gone = c.codepipeline("GetPipelineState", json!({ "name": "demo-pipeline" })).await;
    assert_eq!(gone.error_code().as_deref(), Some("PipelineNotFoundException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_fails_the_action_and_the_execution() {
    let env = setup().await;
    let c = env.client();
    env.put_object(BUCKET, ZIP_KEY, template_zip("")).await.unwrap();
    let s = poll_until(&c, "demo-pipeline", "wait for approval", waiting_approval).await;
    let token =
        action_state(&s, "DeployDev", "DeployStaging")["latestExecution"]["token"].as_str().unwrap().to_string();
    let r = c
        .codepipeline(
            "PutApprovalResult",
            json!({
                "pipelineName": "demo-pipeline", "stageName": "DeployDev", "actionName": "DeployStaging",
                "result": { "summary": "Rejected by anna: no", "status": "Rejected" }, "token": token,
            }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let s = pipeline_state(&c, "demo-pipeline").await;
    let approval = &action_state(&s, "DeployDev", "DeployStaging")["latestExecution"];
    assert_eq!(approval["status"], "Failed");
    assert_eq!(approval["summary"], "Rejected by anna: no");
    assert_eq!(stage_state(&s, "DeployDev")["latestExecution"]["status"], "Failed");
    assert!(stage_state(&s, "DeployStaging").get("latestExecution").is_none(), "{s:#}");
    let execs = c.codepipeline("ListPipelineExecutions", json!({ "pipelineName": "demo-pipeline" })).await.json();
    assert_eq!(execs["pipelineExecutionSummaries"][0]["status"], "Failed");
    // Nothing was deployed to staging.
    let staging = c.with_creds(c.assume_role(&format!("arn:aws:iam::{STAGING_ACCOUNT}:role/x")).await);
    assert!(stack_status(&staging, "demo-staging").await.0.contains("does not exist"));
    // Validation of the other inputs.
    let r = c
        .codepipeline(
            "PutApprovalResult",
            json!({ "pipelineName": "demo-pipeline", "stageName": "Nope", "actionName": "DeployStaging",
                    "result": { "summary": "", "status": "Approved" }, "token": "t" }),
        )
        .await;
    assert_eq!(r.error_code().as_deref(), Some("StageNotFoundException"));
    let r = c.codepipeline("GetPipelineState", json!({ "name": "no-such-pipeline" })).await;
    assert_eq!((r.status.as_u16(), r.error_code().as_deref()), (400, Some("PipelineNotFoundException")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_execution_waits_at_an_occupied_stage_and_supersedes_older_waiting_ones() {
    let env = setup().await;
    let c = env.client();
    env.front.set_auto_advance(false).await;
    env.put_object(BUCKET, ZIP_KEY, template_zip("")).await.unwrap();
    env.advance(3).await;
    let view = env.front.pipeline("demo-pipeline").await.unwrap();
    let first = view.latest().unwrap().clone();
    assert_eq!(first.action("DeployStaging").unwrap().status, "InProgress", "{first:#?}");

    // Two more versions: the second waits before DeployDev, the third supersedes it.
    env.put_object(BUCKET, ZIP_KEY, template_zip("-b")).await.unwrap();
    env.advance(2).await;
    let s = pipeline_state(&c, "demo-pipeline").await;
    let second = env.front.pipeline("demo-pipeline").await.unwrap().latest().unwrap().clone();
    assert!(second.waiting && second.stage == "DeployDev", "{second:#?}");
    assert_eq!(stage_state(&s, "DeployDev")["inboundExecution"]["pipelineExecutionId"], second.id.as_str());
    env.put_object(BUCKET, ZIP_KEY, template_zip("-c")).await.unwrap();
    env.advance(2).await;
    let view = env.front.pipeline("demo-pipeline").await.unwrap();
    let status = |id: &str| view.executions.iter().find(|e| e.id == id).unwrap().status.clone();
    assert_eq!(status(&second.id), "Superseded");
    assert_eq!(status(&first.id), "InProgress");

    // Stopping the first (abandon) frees the stage for the newest.
    let r = c
        .codepipeline(
            "StopPipelineExecution",
            json!({ "pipelineName": "demo-pipeline", "pipelineExecutionId": first.id, "abandon": true, "reason": "new version" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    env.advance(2).await;
    let view = env.front.pipeline("demo-pipeline").await.unwrap();
    let third = view.latest().unwrap();
    assert_eq!(view.executions.iter().find(|e| e.id == first.id).unwrap().status, "Stopped");
    assert_eq!(third.action("DeployStaging").map(|a| a.status.as_str()), Some("InProgress"), "{third:#?}");
    let d = c.cloudformation(&[("Action", "DescribeStacks"), ("StackName", "demo-dev")]).await;
    assert!(d.xml_all("ParameterValue").contains(&"dev-topic-c".to_string()), "{}", d.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_action_waits_on_a_held_stack_and_fails_on_rollback_then_replaces_it() {
    let env = setup().await;
    let c = env.client();
    env.front.fail_stack_create("demo-dev", "The following resource(s) failed to create: [Topic].").await;
    env.put_object(BUCKET, ZIP_KEY, template_zip("")).await.unwrap();
    let s = poll_until(&c, "demo-pipeline", "fail the dev deploy", |s| {
        action_state(s, "DeployDev", "DeployDevStackSet")["latestExecution"]["status"] == "Failed"
    })
    .await;
    let err = &action_state(&s, "DeployDev", "DeployDevStackSet")["latestExecution"]["errorDetails"];
    assert_eq!(err["code"], "JobFailed");
    assert_eq!(err["message"], "The following resource(s) failed to create: [Topic].");
    assert_eq!(stack_status(&c, "demo-dev").await.0, "ROLLBACK_COMPLETE");

    // REPLACE_ON_FAILURE: the next version deletes the failed stack and creates it again; a
    // hold keeps the action InProgress while the stack says CREATE_IN_PROGRESS.
    env.front.hold_stack("demo-dev", 3).await;
    env.put_object(BUCKET, ZIP_KEY, template_zip("-2")).await.unwrap();
    let s = poll_until(&c, "demo-pipeline", "start the dev deploy", |s| {
        action_state(s, "Source", "S3Source")["latestExecution"]["status"] == "Succeeded"
            && action_state(s, "DeployDev", "DeployDevStackSet")["latestExecution"]["status"] == "InProgress"
    })
    .await;
    let _ = s;
    let s = pipeline_state(&c, "demo-pipeline").await; // the deploy runs; the stack is held
    assert_eq!(action_state(&s, "DeployDev", "DeployDevStackSet")["latestExecution"]["status"], "InProgress");
    assert_eq!(stack_status(&c, "demo-dev").await.0, "CREATE_IN_PROGRESS");
    poll_until(&c, "demo-pipeline", "wait for approval", waiting_approval).await;
    assert_eq!(stack_status(&c, "demo-dev").await.0, "CREATE_COMPLETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_holds_failures_and_throttling() {
    let env = AwsTestEnv::start().await;
    let c = env.client();
    let create = |name: &'static str| {
        let c = c.clone();
        async move {
            c.cloudformation(&[
                ("Action", "CreateStack"),
                ("StackName", name),
                ("TemplateBody", TOPIC),
                ("Parameters.member.1.ParameterKey", "TopicName"),
                ("Parameters.member.1.ParameterValue", name),
                ("Parameters.member.2.ParameterKey", "Env"),
                ("Parameters.member.2.ParameterValue", name),
                ("Capabilities.member.1", "CAPABILITY_NAMED_IAM"),
            ])
            .await
        }
    };

    // Held: CREATE_IN_PROGRESS for 2 describes, then moto's CREATE_COMPLETE.
    env.front.hold_stack("held", 2).await;
    assert!(create("held").await.status.is_success());
    assert_eq!(stack_status(&c, "held").await.0, "CREATE_IN_PROGRESS");
    assert_eq!(stack_status(&c, "held").await.0, "CREATE_IN_PROGRESS");
    assert_eq!(stack_status(&c, "held").await.0, "CREATE_COMPLETE");

    // Delete held: DELETE_IN_PROGRESS by name although moto forgot it, then "does not exist".
    env.front.hold_stack("held", 1).await;
    assert!(c.cloudformation(&[("Action", "DeleteStack"), ("StackName", "held")]).await.status.is_success());
    assert_eq!(stack_status(&c, "held").await.0, "DELETE_IN_PROGRESS");
    assert!(stack_status(&c, "held").await.0.contains("does not exist"));

    // A create that rolls back; updates are then refused as AWS refuses them.
    env.front.fail_stack_create("bad", "Resource creation cancelled").await;
    assert!(create("bad").await.status.is_success());
    assert_eq!(stack_status(&c, "bad").await, ("ROLLBACK_COMPLETE".into(), Some("Resource creation cancelled".into())));
    let u = c.cloudformation(&[("Action", "UpdateStack"), ("StackName", "bad"), ("UsePreviousTemplate", "true")]).await;
    assert_eq!(u.status.as_u16(), 400);
    assert_eq!(u.error_code().as_deref(), Some("ValidationError"));
    assert!(u.xml("Message").unwrap().contains("is in ROLLBACK_COMPLETE state and can not be updated"));

    // A delete that fails leaves the stack in DELETE_FAILED; the next delete works.
    assert!(create("sticky").await.status.is_success());
    env.front.fail_stack_delete("sticky", "Role is in use").await;
    assert!(c.cloudformation(&[("Action", "DeleteStack"), ("StackName", "sticky")]).await.status.is_success());
    assert_eq!(stack_status(&c, "sticky").await, ("DELETE_FAILED".into(), Some("Role is in use".into())));
    assert!(c.cloudformation(&[("Action", "DeleteStack"), ("StackName", "sticky")]).await.status.is_success());
    assert!(stack_status(&c, "sticky").await.0.contains("does not exist"));

    // Throttling, CloudFormation style (query protocol) and JSON 1.1 style.
    env.front.throttle("cloudformation", "DescribeStacks", 2).await;
    for _ in 0..2 {
        let r = c.cloudformation(&[("Action", "DescribeStacks")]).await;
        assert_eq!(r.status.as_u16(), 400);
        assert_eq!(r.error_code().as_deref(), Some("Throttling"));
        assert!(r.text().starts_with("<ErrorResponse"), "{}", r.text());
    }
    assert!(c.cloudformation(&[("Action", "DescribeStacks")]).await.status.is_success());
    env.front.throttle("sagemaker", "ListModels", 1).await;
    let r = c.sagemaker("ListModels", json!({})).await;
    assert_eq!((r.status.as_u16(), r.error_code().as_deref()), (400, Some("ThrottlingException")));
    assert!(c.sagemaker("ListModels", json!({})).await.status.is_success());
    let throttled = env.front.calls_to("cloudformation", "DescribeStacks");
    assert_eq!(throttled.iter().filter(|c| c.status == 400 && c.by_front).count(), 2);
}

/// A monitor-like template: moto skips the job definition and the schedule; the front keeps the
/// schedule. Also scripted endpoint statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_schedules_and_scripted_endpoint_statuses() {
    let env = AwsTestEnv::start().await;
    let c = env.client();
    let monitor = r#"
Parameters:
  EndpointName: { Type: String }
  ScheduleName: { Type: String }
Resources:
  JobDefinition:
    Type: AWS::SageMaker::DataQualityJobDefinition
    Properties:
      JobDefinitionName: !Sub "${ScheduleName}-job-definition"
      DataQualityJobInput:
        EndpointInput:
          EndpointName: !Ref EndpointName
          LocalPath: /opt/ml/processing/input
  Schedule:
    Type: AWS::SageMaker::MonitoringSchedule
    Properties:
      MonitoringScheduleName: !Ref ScheduleName
      MonitoringScheduleConfig:
        # Ref of a job definition is its ARN on AWS (moto skips the resource; the front does not).
        MonitoringJobDefinitionName: !Select [1, !Split ["/", !Ref JobDefinition]]
        MonitoringType: DataQuality
        ScheduleConfig: { ScheduleExpression: "cron(0 * ? * * *)" }
"#;
    let r = c
        .cloudformation(&[
            ("Action", "CreateStack"),
            ("StackName", "monitor"),
            ("TemplateBody", monitor),
            ("Parameters.member.1.ParameterKey", "EndpointName"),
            ("Parameters.member.1.ParameterValue", "ep-1"),
            ("Parameters.member.2.ParameterKey", "ScheduleName"),
            ("Parameters.member.2.ParameterValue", "ep-1-data-quality"),
        ])
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let d = c.sagemaker("DescribeMonitoringSchedule", json!({ "MonitoringScheduleName": "ep-1-data-quality" })).await;
    assert!(d.status.is_success(), "{}", d.text());
    let d = d.json();
    assert_eq!(d["MonitoringScheduleStatus"], "Scheduled");
    assert_eq!(d["EndpointName"], "ep-1");
    assert_eq!(d["MonitoringType"], "DataQuality");
    assert_eq!(d["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"], "ep-1-data-quality-job-definition");
    assert!(d["CreationTime"].is_f64());
    let l = c.sagemaker("ListMonitoringSchedules", json!({ "EndpointName": "ep-1" })).await.json();
    assert_eq!(l["MonitoringScheduleSummaries"].as_array().unwrap().len(), 1);
    assert!(c.cloudformation(&[("Action", "DeleteStack"), ("StackName", "monitor")]).await.status.is_success());
    let gone =
        c.sagemaker("DescribeMonitoringSchedule", json!({ "MonitoringScheduleName": "ep-1-data-quality" })).await;
    assert_eq!(gone.error_code().as_deref(), Some("ResourceNotFound"));

    // Endpoints: moto's are InService at once; a script shows Creating first.
    let role = env.create_role("sm-exec", "sagemaker.amazonaws.com").await;
    let ok = |r: RawReply| assert!(r.status.is_success(), "{} {}", r.status, r.text());
    ok(c.sagemaker(
        "CreateModel",
        json!({ "ModelName": "m", "ExecutionRoleArn": role,
                "PrimaryContainer": { "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:1", "ModelDataUrl": "s3://b/m.tar.gz" } }),
    )
    .await);
    ok(c.sagemaker(
        "CreateEndpointConfig",
        json!({ "EndpointConfigName": "ec", "ProductionVariants": [{ "VariantName": "AllTraffic", "ModelName": "m",
                "InitialInstanceCount": 1, "InstanceType": "ml.m5.large" }] }),
    )
    .await);
    ok(c.sagemaker("CreateEndpoint", json!({ "EndpointName": "ep-1", "EndpointConfigName": "ec" })).await);
    env.front.script_endpoint("ep-*", &["Creating", "Creating"]).await;
    let status = || async {
        c.sagemaker("DescribeEndpoint", json!({ "EndpointName": "ep-1" })).await.json()["EndpointStatus"].clone()
    };
    assert_eq!(status().await, "Creating");
    assert_eq!(status().await, "Creating");
    assert_eq!(status().await, "InService");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_over_http_and_moto_passthrough() {
    let env = setup().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/_front/{p}", env.endpoint_url());
    let r = http
        .post(url("behaviour"))
        .json(&json!({ "kind": "throttle", "service": "codepipeline", "op": "GetPipelineState", "count": 1 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let c = env.client();
    let r = c.codepipeline("GetPipelineState", json!({ "name": "demo-pipeline" })).await;
    assert_eq!(r.error_code().as_deref(), Some("ThrottlingException"));
    assert!(http.post(url("advance?steps=2")).send().await.unwrap().status().is_success());
    let pipelines: Value = http.get(url("pipelines")).send().await.unwrap().json().await.unwrap();
    assert_eq!(pipelines[0]["name"], "demo-pipeline");
    assert_eq!(pipelines[0]["executions"][0]["status"], "Failed"); // no zip yet
    let calls: Value =
        http.get(url("calls?service=cloudformation&op=CreateStack")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 1);
    assert_eq!(calls[0]["request"]["StackName"], "demo-codepipeline");

    // Everything else is moto's: S3 objects, versions, HEAD with its Content-Length.
    let v = env.put_object(BUCKET, "some/key.txt", b"hello".to_vec()).await.unwrap();
    let head = c.s3("HEAD", BUCKET, Some("some/key.txt"), "", &[], Vec::new()).await;
    assert!(head.status.is_success());
    assert_eq!(head.header("content-length").as_deref(), Some("5"));
    assert_eq!(head.header("x-amz-version-id"), Some(v.clone()));
    let get = c.s3("GET", BUCKET, Some("some/key.txt"), &format!("versionId={v}"), &[], Vec::new()).await;
    assert_eq!(get.body, b"hello");
    let me = c.query("sts", &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(me.xml("Account").as_deref(), Some(DEV_ACCOUNT));
    let other = c.with_creds(c.assume_role("arn:aws:iam::333333333333:role/r").await);
    assert_eq!(
        other.query("sts", &[("Action", "GetCallerIdentity")]).await.xml("Account").as_deref(),
        Some("333333333333")
    );
    let _ = Creds::testing();

    // Reset wipes moto and the front.
    env.reset().await;
    assert!(env.front.pipelines().await.is_empty());
    assert!(env.front.calls().is_empty());
}

#[test]
fn templates_resolve_short_tags_conditions_and_subs() {
    let tpl = template::parse(WRAPPER).unwrap();
    let res = &tpl["Resources"]["Pipeline"]["Properties"];
    assert_eq!(res["Name"], json!({ "Fn::Sub": "${StackName}-pipeline" }));
    assert_eq!(res["RoleArn"], json!({ "Fn::GetAtt": ["PipelineRole", "Arn"] }));
    let given: HashMap<String, String> = [
        ("AssetsBucket", "b"),
        ("TemplateZipFileName", "k.zip"),
        ("StackName", "s"),
        ("StagingAccountId", "222222222222"),
        ("UseStaging", "no"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let physical = HashMap::from([("PipelineRole".to_string(), "s-PipelineRole-ABC".to_string())]);
    let ctx = template::Ctx::new(&tpl, &given, "s-codepipeline", "arn:x", DEV_ACCOUNT, "us-east-1", physical);
    let props = ctx.resolve(res).unwrap();
    assert_eq!(props["Name"], "s-pipeline");
    assert_eq!(props["RoleArn"], "arn:aws:iam::123456789012:role/s-PipelineRole-ABC");
    assert_eq!(props["Stages"].as_array().unwrap().len(), 2, "the !If stage is gone: {props:#}");
    assert_eq!(
        props["Stages"][1]["Actions"][1]["Configuration"]["NotificationArn"],
        "arn:aws:sns:us-east-1:123456789012:mlops-notifications"
    );
    let decl = crate::support::aws::codepipeline::declaration_from_cfn(&props, "fallback");
    assert_eq!(decl["stages"][0]["actions"][0]["actionTypeId"]["category"], "Source");
    assert_eq!(decl["stages"][0]["actions"][0]["configuration"]["PollForSourceChanges"], "false");
    assert_eq!(decl["artifactStore"], json!({ "type": "S3", "location": "b" }));
    let scope = crate::support::aws::sigv4::scope_of(
        Some("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/codepipeline/aws4_request, SignedHeaders=host, Signature=x"),
        None,
    )
    .unwrap();
    assert_eq!(
        (scope.access_key.as_str(), scope.service.as_str(), scope.region.as_str()),
        ("AKID", "codepipeline", "us-east-1")
    );
}
