//! The task role's least-privilege policy (docker/ecs/iam-policy.json and the `AwsTargetPolicy` of
//! the ECS template) allows every AWS call the aws target makes, and the two say the same. moto
//! enforces no IAM, so without this a new call would first fail on real AWS.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SERVICES: [&str; 4] = ["s3", "cloudformation", "codepipeline", "sagemaker"];

/// `service:Operation` of every SDK call under src/targets/aws (tests excepted), in
/// lower case: the SDK's snake_case operation without underscores equals the IAM action's name
/// without case (`create_auto_ml_job_v2` → `createautomljobv2`).
fn calls_made() -> BTreeSet<String> {
    // A fluent call on a client (`clients.sagemaker.describe_endpoint()`, `codepipeline\n.stop_…()`),
    // or an operation's input built apart and sent with `send_with` (imported from its module).
    let call = Regex::new(
        r"\b(s3|cloudformation|codepipeline|sagemaker)\s*\.\s*([a-z][a-z0-9_]*)\(\)|aws_sdk_(s3|cloudformation|codepipeline|sagemaker)::operation::([a-z0-9_]+)::",
    )
    .unwrap();
    let mut found = BTreeSet::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/targets/aws")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy();
            if !name.ends_with(".rs") || name == "moto_tests.rs" || name == "fixtures.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests (at the end of a file) read requests, they make no calls.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for c in call.captures_iter(code) {
                let (service, op) = match (c.get(1), c.get(2)) {
                    (Some(service), Some(op)) => (service.as_str(), op.as_str()),
                    _ => (&c[3], c.get(4).unwrap().as_str()),
                };
                let op = op.replace('_', "");
                if op == "clone" {
                    continue;
                }
                // S3 authorises HeadObject as GetObject.
                let op = if op == "headobject" { "getobject".to_string() } else { op };
                found.insert(format!("{service}:{op}"));
            }
        }
    }
    found
}

fn actions_of(statements: &[serde_json::Value]) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for statement in statements {
        match &statement["Action"] {
            serde_json::Value::String(a) => {
                actions.insert(a.to_lowercase());
            }
            serde_json::Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_lowercase()));
            }
            other => panic!("statement without actions: {other}"),
        }
    }
    actions
}

fn json_policy() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/ecs/iam-policy.json");
    let policy: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    actions_of(policy["Statement"].as_array().unwrap())
}

fn ecs_template_policy() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/ecs/mlops-orchestrator-ecs.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let statements = &doc["Resources"]["AwsTargetPolicy"]["Properties"]["PolicyDocument"]["Statement"];
    // Only the actions matter here; resources carry !Sub tags, which JSON has no form for.
    let statements: Vec<serde_json::Value> = statements
        .as_sequence()
        .expect("AwsTargetPolicy statements")
        .iter()
        .map(|s| {
            let action = &s["Action"];
            let action = match action.as_sequence() {
                Some(list) => serde_json::json!(list.iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>()),
                None => serde_json::json!(action.as_str().unwrap()),
            };
            serde_json::json!({ "Action": action })
        })
        .collect();
    actions_of(&statements)
}

#[test]
fn the_policy_allows_every_call_the_aws_target_makes() {
    let made = calls_made();
    for service in SERVICES {
        assert!(made.iter().any(|c| c.starts_with(service)), "no {service} call found: is the scan still right?");
    }
    let policy = json_policy();
    let missing: Vec<&String> = made.iter().filter(|c| !policy.contains(*c)).collect();
    assert!(missing.is_empty(), "docker/ecs/iam-policy.json does not allow {missing:?}");
}

#[test]
fn the_json_policy_and_the_ecs_template_agree() {
    assert_eq!(json_policy(), ecs_template_policy());
}

/// The S3 statements name buckets: no `arn:aws:s3:::*` resource in the JSON policy or the ECS
/// template.
#[test]
fn s3_statements_name_their_buckets() {
    for path in ["/docker/ecs/iam-policy.json", "/docker/ecs/mlops-orchestrator-ecs.yaml"] {
        let text = std::fs::read_to_string(format!("{}{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(!text.contains("s3:::*"), "{path} grants S3 access in any bucket");
    }
}

/// The ECS template's CloudFormation Rules, evaluated for parameter sets: an internet-facing
/// plain-HTTP listener and several tasks of the local target without shared storage are refused.
#[test]
fn the_ecs_template_refuses_unsafe_deployments() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/ecs/mlops-orchestrator-ecs.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let defaults: BTreeMap<String, String> = doc["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let default = match &v["Default"] {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            (k.as_str().unwrap().to_string(), default)
        })
        .collect();
    let refused = |changes: &[(&str, &str)]| -> Vec<String> {
        let mut params = defaults.clone();
        for (k, v) in changes {
            params.insert(k.to_string(), v.to_string());
        }
        let mut failed = Vec::new();
        for (name, rule) in doc["Rules"].as_mapping().unwrap() {
            if !rule_value(&rule["RuleCondition"], &params).as_bool().unwrap_or(true) {
                continue;
            }
            for assertion in rule["Assertions"].as_sequence().unwrap() {
                if !rule_value(&assertion["Assert"], &params).as_bool().unwrap() {
                    failed.push(name.as_str().unwrap().to_string());
                }
            }
        }
        failed
    };
    let aws = [
        ("AssetsBucketName", "a"),
        ("BlueprintBucketName", "b"),
        ("CloudFormationRoleArn", "arn:aws:iam::1:role/mlops-cfn"),
        ("NotificationTopicArn", "arn:aws:sns:us-east-1:1:t"),
    ];
    assert!(refused(&aws).is_empty(), "the defaults with the aws settings pass");
    let public_http = [&aws[..], &[("LoadBalancerScheme", "internet-facing")]].concat();
    assert_eq!(refused(&public_http), ["NoPlainHttpOnTheInternet"]);
    let public_https = [&public_http[..], &[("CertificateArn", "arn:aws:acm:us-east-1:1:certificate/x")]].concat();
    assert!(refused(&public_https).is_empty());
    assert_eq!(refused(&[("Target", "local"), ("DesiredCount", "2")]), ["LocalTargetReplicasShareTheirObjects"]);
    assert!(refused(&[("Target", "local"), ("DesiredCount", "1")]).is_empty());
    assert!(refused(&[("Target", "local"), ("DesiredCount", "3"), ("EfsFileSystemId", "fs-1")]).is_empty());
    assert_eq!(refused(&[("Target", "aws")]).len(), 4, "the aws settings are required");
}

/// The rule functions the ECS template uses: Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Contains.
fn rule_value(value: &serde_norway::Value, params: &BTreeMap<String, String>) -> serde_json::Value {
    use serde_norway::Value as Y;
    let args = |v: &Y| v.as_sequence().cloned().unwrap_or_default();
    match value {
        Y::Null => serde_json::Value::Null,
        Y::String(s) => serde_json::json!(s),
        Y::Number(n) => serde_json::json!(n.to_string()),
        Y::Sequence(items) => serde_json::Value::Array(items.iter().map(|v| rule_value(v, params)).collect()),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = &tagged.value;
            match tag.trim_start_matches('!') {
                "Ref" => serde_json::json!(params[inner.as_str().unwrap()]),
                "Equals" => {
                    let a = args(inner);
                    serde_json::json!(rule_value(&a[0], params) == rule_value(&a[1], params))
                }
                "Not" => serde_json::json!(!rule_value(&args(inner)[0], params).as_bool().unwrap()),
                "And" => serde_json::json!(args(inner).iter().all(|v| rule_value(v, params).as_bool().unwrap())),
                "Contains" => {
                    let a = args(inner);
                    let list = rule_value(&a[0], params);
                    serde_json::json!(list.as_array().unwrap().contains(&rule_value(&a[1], params)))
                }
                other => panic!("rule function {other} not evaluated here"),
            }
        }
        other => panic!("unexpected rule value {other:?}"),
    }
}
