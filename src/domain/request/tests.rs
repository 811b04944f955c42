//! Request validation rules, through `parse_request`.

use serde_json::{Value, json};

use super::*;
use crate::domain::pipeline_type::PipelineType::{self, *};
use crate::domain::spec::{
    AutopilotObjective, CompressionType, DataDistribution, DataInputMode, ModelSource, MonitorKind, PipelineParams,
    ProblemType, S3DataType,
};
use crate::domain::tests::{multi, single, single_env, three_envs};
use crate::domain::{EndpointName, PerStage};

fn errors(body: &Value, ctx: &RequestContext) -> Vec<FieldError> {
    match parse_request(body, ctx) {
        Ok(request) => panic!("accepted: {:#?}", request.spec),
        Err(errors) => errors.0,
    }
}

fn problems(body: &Value, ctx: &RequestContext) -> Vec<(String, FieldErrorCode)> {
    errors(body, ctx).into_iter().map(|e| (e.pointer, e.code)).collect()
}

fn problem(pointer: &str, code: FieldErrorCode) -> (String, FieldErrorCode) {
    (pointer.to_string(), code)
}

/// `body` with `changes` applied: each key set, or removed when the change is null.
fn with(mut body: Value, changes: Value) -> Value {
    let object = body.as_object_mut().unwrap();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    body
}

fn compat(body: &Value, ctx: &RequestContext) -> String {
    parse_request(body, ctx).unwrap_err().compat_detailed_message()
}

fn registry() -> RequestContext {
    RequestContext { environments: Vec::new(), use_model_registry: true }
}

/// The solution's `lambda_helpers.get_required_keys` at v2.2.3, transcribed.
fn solution_required_keys(
    pipeline_type: PipelineType,
    use_model_registry: bool,
    problem_type: &str,
) -> Vec<&'static str> {
    let common = ["pipeline_type", "model_name", "inference_instance"];
    let (builtin, custom): (Vec<&str>, Vec<&str>) = if use_model_registry {
        (vec!["model_package_name"], vec!["model_package_name"])
    } else {
        (
            vec!["model_framework", "model_framework_version", "model_artifact_location"],
            vec!["custom_image_uri", "model_artifact_location"],
        )
    };
    let monitor_common = [
        "pipeline_type",
        "model_name",
        "endpoint_name",
        "baseline_data",
        "baseline_job_output_location",
        "data_capture_location",
        "monitoring_output_location",
        "schedule_expression",
        "monitor_max_runtime_seconds",
        "instance_type",
        "instance_volume_size",
    ];
    let regression_or_multiclass = matches!(problem_type, "Regression" | "MulticlassClassification");
    let mut model_keys = vec!["problem_type"];
    let mut quality_keys = vec!["baseline_inference_attribute", "baseline_ground_truth_attribute"];
    if regression_or_multiclass {
        model_keys.push("monitor_inference_attribute");
    } else if pipeline_type == ByomModelQualityMonitor {
        quality_keys.push("baseline_probability_attribute");
    }
    let training = [
        "pipeline_type",
        "model_name",
        "training_data",
        "job_output_location",
        "model_framework",
        "model_framework_version",
        "algo_hyperparamaters",
    ];
    let cat = |parts: &[&[&'static str]]| parts.concat();
    match pipeline_type {
        ByomRealtimeBuiltin => cat(&[&common, &builtin, &["data_capture_location"]]),
        ByomRealtimeCustom => cat(&[&common, &custom, &["data_capture_location"]]),
        ByomBatchBuiltin => cat(&[&common, &builtin, &["batch_inference_data", "batch_job_output_location"]]),
        ByomBatchCustom => cat(&[&common, &custom, &["batch_inference_data", "batch_job_output_location"]]),
        ByomDataQualityMonitor => monitor_common.to_vec(),
        ByomModelQualityMonitor => cat(&[&monitor_common, &quality_keys, &model_keys, &["monitor_ground_truth_input"]]),
        ByomModelBiasMonitor => {
            let label_config: &[&str] =
                if problem_type == "Regression" { &[] } else { &["model_predicted_label_config"] };
            cat(&[&monitor_common, &model_keys, &["monitor_ground_truth_input"], label_config, &["bias_config"]])
        }
        ByomModelExplainabilityMonitor => cat(&[&monitor_common, &model_keys, &["shap_config"]]),
        ByomImageBuilder => vec!["pipeline_type", "custom_algorithm_docker", "ecr_repo_name", "image_tag"],
        ModelTrainingBuiltin => training.to_vec(),
        ModelTunerBuiltin => cat(&[&training, &["tuner_configs", "hyperparamaters_ranges"]]),
        ModelAutopilotTraining => {
            vec!["pipeline_type", "model_name", "training_data", "job_output_location", "target_attribute"]
        }
    }
}

#[test]
fn required_keys_match_the_solution_in_order() {
    for pipeline_type in PipelineType::ALL {
        let problem_types: &[&str] =
            if matches!(pipeline_type, ByomModelQualityMonitor | ByomModelBiasMonitor | ByomModelExplainabilityMonitor)
            {
                &["Regression", "BinaryClassification", "MulticlassClassification"]
            } else {
                &[""]
            };
        for &use_model_registry in &[false, true] {
            for &problem_type in problem_types {
                let mut body = json!({"pipeline_type": pipeline_type.as_str()});
                if !problem_type.is_empty() {
                    body["problem_type"] = problem_type.into();
                }
                let ctx = RequestContext { environments: Vec::new(), use_model_registry };
                let found: Vec<String> = errors(&body, &ctx)
                    .into_iter()
                    .filter(|e| e.code == FieldErrorCode::Required)
                    .map(|e| e.pointer[1..].to_string())
                    .collect();
                let expected: Vec<&str> = solution_required_keys(pipeline_type, use_model_registry, problem_type)
                    .into_iter()
                    .filter(|k| !["pipeline_type", "problem_type"].contains(k))
                    .collect();
                let case = format!("{pipeline_type} registry={use_model_registry} {problem_type}");
                assert_eq!(&found[..expected.len().min(found.len())], expected, "{case}");
                // Beyond the solution: a binary model-quality monitor must also say how to read
                // the prediction.
                let extra = &found[expected.len()..];
                assert!(
                    extra.is_empty()
                        || (pipeline_type == ByomModelQualityMonitor
                            && problem_type == "BinaryClassification"
                            && extra == ["monitor_inference_attribute"]),
                    "{case}: {extra:?}"
                );
                assert_eq!(
                    compat(&body, &ctx),
                    format!("Bad request. API body does not have the necessary parameter: {}", expected[0]),
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn each_required_key_alone_is_reported() {
    for pipeline_type in PipelineType::ALL {
        let body = single(pipeline_type);
        let problem_type = body["problem_type"].as_str().unwrap_or("").to_string();
        for key in solution_required_keys(pipeline_type, false, &problem_type) {
            if ["pipeline_type", "problem_type"].contains(&key) {
                continue;
            }
            let without = with(body.clone(), json!({ key: null }));
            assert_eq!(
                problems(&without, &single_env()),
                [problem(&format!("/{key}"), FieldErrorCode::Required)],
                "{pipeline_type} without {key}"
            );
            assert_eq!(
                compat(&without, &single_env()),
                format!("Bad request. API body does not have the necessary parameter: {key}")
            );
        }
    }
}

#[test]
fn registry_switches_the_model_keys() {
    let body = single(ByomRealtimeBuiltin);
    assert_eq!(problems(&body, &registry()), [problem("/model_package_name", FieldErrorCode::Required)]);
    let body =
        with(body, json!({"model_package_name": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/2"}));
    let request = parse_request(&body, &registry()).unwrap();
    assert_eq!(request.warnings.len(), 3, "{:?}", request.warnings);
    assert!(request.warnings[0].contains("model registry"));

    // Without the registry a package name is ignored, with a warning.
    let request = parse_request(&body, &single_env()).unwrap();
    assert_eq!(
        request.warnings,
        ["`model_package_name` was ignored: the model registry is not enabled on this server"]
    );

    // Training always needs the framework, registry or not.
    let body = with(single(ModelTrainingBuiltin), json!({"model_framework": null}));
    assert_eq!(problems(&body, &registry()), [problem("/model_framework", FieldErrorCode::Required)]);
}

#[test]
fn pipeline_type_problems() {
    let ctx = single_env();
    let unsupported = "Bad request format. Pipeline type not supported. Check documentation for API & config formats";
    for body in [
        json!({}),
        json!({"pipeline_type": null}),
        json!({"pipeline_type": 3}),
        json!({"pipeline_type": "byom_realtime"}),
        json!({"pipeline_type": "create_model_card"}),
    ] {
        let errors = errors(&body, &ctx);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/pipeline_type");
        assert_eq!(compat(&body, &ctx), unsupported);
    }
    for (given, suggestion) in [
        (" byom_realtime_builtin", "byom_realtime_builtin"),
        ("BYOM_BATCH_CUSTOM", "byom_batch_custom"),
        ("byom-image-builder", "byom_image_builder"),
        ("model_tunner_builtin", "model_tuner_builtin"),
    ] {
        let errors = errors(&json!({ "pipeline_type": given }), &ctx);
        assert_eq!(errors[0].code, FieldErrorCode::UnknownPipelineType);
        assert!(errors[0].message.contains(&format!("did you mean `{suggestion}`")), "{}", errors[0].message);
    }
    let errors = errors(&json!({"pipeline_type": "kubernetes"}), &ctx);
    assert!(errors[0].message.contains("expected one of `byom_realtime_builtin`"));
}

#[test]
fn non_object_bodies_get_one_error_for_the_whole_body() {
    for body in [json!([]), json!("x"), json!(null), json!(1)] {
        let errors = errors(&body, &single_env());
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].pointer.as_str(), errors[0].code), ("", FieldErrorCode::InvalidType));
    }
}

#[test]
fn problem_type_is_checked_first_with_the_solution_message() {
    for pipeline_type in [ByomModelQualityMonitor, ByomModelBiasMonitor, ByomModelExplainabilityMonitor] {
        for problem_type in [json!(null), json!("Clustering"), json!(1), json!("regression")] {
            // Even with other keys missing, the problem type comes first, as in the solution.
            let body = with(single(pipeline_type), json!({"problem_type": problem_type, "model_name": null}));
            let errors = errors(&body, &single_env());
            assert_eq!(
                (errors[0].pointer.as_str(), errors[0].code),
                ("/problem_type", FieldErrorCode::UnsupportedProblemType)
            );
            assert_eq!(errors[1].pointer, "/model_name");
            assert_eq!(
                compat(&body, &single_env()),
                "Bad request format. Unsupported problem_type in byom_model_quality_monitor pipeline"
            );
        }
    }
    // Surrounding whitespace is fine, as the solution strips it.
    let body = with(single(ByomModelQualityMonitor), json!({"problem_type": " BinaryClassification "}));
    assert!(parse_request(&body, &single_env()).is_ok());
}

#[test]
fn wrong_json_types_are_reported_per_field() {
    let body = with(
        single(ByomDataQualityMonitor),
        json!({
            "model_name": 7,
            "baseline_data": ["a"],
            "instance_volume_size": 20.5,
            "monitor_max_runtime_seconds": true,
            "schedule_expression": {"cron": "x"},
        }),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/model_name", FieldErrorCode::InvalidType),
            problem("/baseline_data", FieldErrorCode::InvalidType),
            problem("/schedule_expression", FieldErrorCode::PerStageNotAllowed),
            problem("/monitor_max_runtime_seconds", FieldErrorCode::InvalidType),
            problem("/instance_volume_size", FieldErrorCode::InvalidType),
        ]
    );
    let messages: Vec<String> = errors(&body, &single_env()).into_iter().map(|e| e.message).collect();
    assert_eq!(messages[0], "`model_name`: expected a string, got a number");
    assert!(messages[4].contains("whole number"), "{}", messages[4]);

    // JSON text that holds no object stays text, and is refused as such.
    let body = with(single(ByomModelBiasMonitor), json!({"bias_config": "[\"age\"]"}));
    let errors = errors(&body, &single_env());
    assert_eq!(errors[0].code, FieldErrorCode::InvalidType);
    assert!(errors[0].message.contains("not its JSON text"), "{}", errors[0].message);
}

#[test]
fn numbers_accept_digit_strings_and_check_ranges() {
    let ok = with(
        single(ByomDataQualityMonitor),
        json!({"instance_volume_size": "30", "monitor_max_runtime_seconds": 86400, "baseline_max_runtime_seconds": ""}),
    );
    assert!(parse_request(&ok, &single_env()).is_ok());
    let bad = with(
        single(ByomDataQualityMonitor),
        json!({"instance_volume_size": "0", "monitor_max_runtime_seconds": 86401, "baseline_max_runtime_seconds": -1}),
    );
    assert_eq!(
        problems(&bad, &single_env()),
        [
            problem("/monitor_max_runtime_seconds", FieldErrorCode::InvalidValue),
            problem("/instance_volume_size", FieldErrorCode::InvalidValue),
            problem("/baseline_max_runtime_seconds", FieldErrorCode::InvalidValue),
        ]
    );
}

#[test]
fn five_mistakes_give_five_pointers() {
    let body = with(
        single(ByomRealtimeBuiltin),
        json!({
            "model_name": "churn_xgb",
            "inference_instance": "m5.large",
            "model_artifact_location": null,
            "data_capture_location": "https://my-bucket/capture",
            "kms_key_arn": "my-key",
        }),
    );
    let errors = errors(&body, &single_env());
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/model_artifact_location", "/model_name", "/inference_instance", "/data_capture_location", "/kms_key_arn"]
    );
    assert!(errors[3].message.contains("without a URL scheme"), "{}", errors[3].message);
    assert_eq!(
        RequestErrors(errors).compat_detailed_message(),
        "Bad request. API body does not have the necessary parameter: model_artifact_location"
    );
}

#[test]
fn first_non_required_error_is_the_compat_message() {
    let body = with(single(ByomRealtimeBuiltin), json!({"inference_instance": "m5.large"}));
    assert_eq!(
        compat(&body, &single_env()),
        "`inference_instance`: `m5.large` is not a SageMaker instance type: expected `ml.<family>.<size>`, e.g. `ml.m5.large`"
    );
}

#[test]
fn per_stage_objects_need_several_environments() {
    let body = multi(ByomRealtimeBuiltin);
    let errors = errors(&body, &single_env());
    assert_eq!(errors.len(), 4);
    assert_eq!(
        (errors[0].pointer.as_str(), errors[0].code),
        ("/inference_instance", FieldErrorCode::PerStageNotAllowed)
    );
    assert!(errors[0].message.contains("one environment"), "{}", errors[0].message);
}

#[test]
fn per_stage_objects_name_missing_and_unknown_environments() {
    let body = with(
        single(ByomRealtimeBuiltin),
        json!({"inference_instance": {"dev": "ml.m5.large", "qa": "ml.m5.large", "prod": "ml.m5.large"}}),
    );
    let errors = errors(&body, &three_envs());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, FieldErrorCode::PerStageEnvironments);
    assert_eq!(
        errors[0].message,
        "`inference_instance` needs one value for each environment (`dev`, `staging`, `prod`); missing: `staging`; not configured: `qa`"
    );
}

#[test]
fn per_stage_values_are_checked_at_their_own_pointer() {
    let body = with(
        single(ByomBatchBuiltin),
        json!({"batch_job_output_location": {"dev": "bucket-1/x", "staging": "Bucket-2/x", "prod": "bucket-3/../x"}}),
    );
    let errors = errors(&body, &three_envs());
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/batch_job_output_location/staging", "/batch_job_output_location/prod"]);
    assert!(errors[0].message.starts_with("`batch_job_output_location` for environment `staging`:"));
}

#[test]
fn environment_names_are_escaped_in_pointers() {
    let ctx = RequestContext { environments: vec!["eu/west".into(), "a~b".into()], use_model_registry: false };
    let body =
        with(single(ByomRealtimeBuiltin), json!({"inference_instance": {"eu/west": "bad", "a~b": "ml.m5.large"}}));
    assert_eq!(problems(&body, &ctx), [problem("/inference_instance/eu~1west", FieldErrorCode::InvalidValue)]);
}

#[test]
fn training_types_never_take_per_stage_values() {
    for pipeline_type in [ModelTrainingBuiltin, ModelTunerBuiltin, ModelAutopilotTraining] {
        let body = with(single(pipeline_type), json!({"kms_key_arn": {"dev": "", "staging": "", "prod": ""}}));
        let errors = errors(&body, &three_envs());
        assert_eq!(
            (errors[0].pointer.as_str(), errors[0].code),
            ("/kms_key_arn", FieldErrorCode::PerStageNotAllowed),
            "{pipeline_type}"
        );
        assert!(errors[0].message.contains("deploy once"));
    }
    let body = with(
        single(ModelTrainingBuiltin),
        json!({"instance_type": {"dev": "ml.m5.large", "staging": "ml.m5.large", "prod": "ml.m5.large"}}),
    );
    assert_eq!(problems(&body, &three_envs()), [problem("/instance_type", FieldErrorCode::PerStageNotAllowed)]);
}

#[test]
fn fields_outside_the_per_stage_list_take_one_value() {
    let body = with(
        single(ByomRealtimeBuiltin),
        json!({"model_artifact_location": {"dev": "a.tar.gz", "staging": "b.tar.gz", "prod": "c.tar.gz"}}),
    );
    assert_eq!(problems(&body, &three_envs()), [problem("/model_artifact_location", FieldErrorCode::InvalidType)]);
}

#[test]
fn realtime_endpoint_defaults_to_the_model_name() {
    let body = with(single(ByomRealtimeBuiltin), json!({"endpoint_name": null, "model_name": "Churn-XGB"}));
    let spec = parse_request(&body, &single_env()).unwrap().spec;
    let PipelineParams::Realtime(realtime) = spec.params else { panic!() };
    assert_eq!(realtime.endpoint_name, PerStage::All(EndpointName::parse("churn-xgb").unwrap()));
    assert_eq!(realtime.kms_key_arn, PerStage::All(None));
    assert_eq!(
        realtime.model,
        ModelSource::BuiltIn {
            framework: "xgboost".into(),
            framework_version: "1.2-2".into(),
            artifact: crate::domain::AssetKey::parse("models/churn/model.tar.gz").unwrap(),
        }
    );

    // Every model name short enough for the stack name is short enough for an endpoint name
    // (48 < 63), so the default always works.
    let longest = crate::domain::names::max_name_len(ByomRealtimeBuiltin);
    assert!(longest <= crate::domain::names::MAX_SAGEMAKER_NAME_LEN);
    let body = with(single(ByomRealtimeBuiltin), json!({"endpoint_name": null, "model_name": "m".repeat(longest)}));
    assert!(parse_request(&body, &single_env()).is_ok());
}

#[test]
fn endpoint_names_are_normalised_like_the_solution() {
    let body = with(single(ByomRealtimeBuiltin), json!({"endpoint_name": " Churn-Endpoint "}));
    let spec = parse_request(&body, &single_env()).unwrap().spec;
    let PipelineParams::Realtime(realtime) = spec.params else { panic!() };
    assert_eq!(realtime.endpoint_name.get("dev").unwrap().as_str(), "churn-endpoint");
    // The solution's own fixture uses an underscore, which no SageMaker endpoint name holds:
    // read as the hyphen it can only mean, with a warning.
    let body = with(single(ByomDataQualityMonitor), json!({"endpoint_name": "test_endpoint"}));
    let request = parse_request(&body, &single_env()).unwrap();
    let PipelineParams::Monitor(monitor) = request.spec.params else { panic!() };
    assert_eq!(monitor.endpoint_name.get("dev").unwrap().as_str(), "test-endpoint");
    assert!(request.warnings[0].starts_with("`endpoint_name` `test_endpoint` was read as `test-endpoint`"));
    // One that would still be invalid is refused as sent.
    let body = with(single(ByomDataQualityMonitor), json!({"endpoint_name": "test_endpoint!"}));
    let errors = errors(&body, &single_env());
    assert_eq!(errors[0].pointer, "/endpoint_name");
    assert!(errors[0].message.contains("test_endpoint!"), "{}", errors[0].message);
}

#[test]
fn model_names_must_fit_the_stack_name() {
    let max = crate::domain::names::max_name_len(ByomModelExplainabilityMonitor);
    let body = with(single(ByomModelExplainabilityMonitor), json!({"model_name": "m".repeat(max + 1)}));
    let errors = errors(&body, &single_env());
    assert_eq!(errors[0].pointer, "/model_name");
    assert!(errors[0].message.contains(&format!("at most {max}")), "{}", errors[0].message);
}

#[test]
fn s3_and_asset_key_traversal_is_rejected() {
    let body = with(
        single(ByomBatchBuiltin),
        json!({
            "model_artifact_location": "../models/model.tar.gz",
            "batch_inference_data": "my-bucket/../other",
            "batch_job_output_location": "my-bucket//out",
        }),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/model_artifact_location", FieldErrorCode::InvalidValue),
            problem("/batch_inference_data", FieldErrorCode::InvalidValue),
            problem("/batch_job_output_location", FieldErrorCode::InvalidValue),
        ]
    );
    let body = with(single(ModelTrainingBuiltin), json!({"training_data": "s3://assets/train.csv"}));
    assert!(errors(&body, &single_env())[0].message.contains("drop `s3://<bucket>/`"));
}

#[test]
fn cron_rules_reach_the_api() {
    for (cron, fragment) in [
        ("cron(0 * * * * *)", "must be `?`"),
        ("cron(0 25 ? * * *)", "hours `25`"),
        ("0 * ? * * *", "expected `cron("),
        ("rate(1 hour)", "rate()"),
    ] {
        let body = with(single(ByomDataQualityMonitor), json!({"schedule_expression": cron}));
        let errors = errors(&body, &single_env());
        assert_eq!(errors[0].pointer, "/schedule_expression");
        assert!(errors[0].message.contains(fragment), "{cron}: {}", errors[0].message);
    }
}

#[test]
fn schedules_sagemaker_refuses_are_accepted_with_a_warning() {
    let body = with(single(ByomDataQualityMonitor), json!({"schedule_expression": "cron(30 8 ? * MON-FRI *)"}));
    let request = parse_request(&body, &single_env()).unwrap();
    assert_eq!(request.warnings.len(), 1);
    assert!(request.warnings[0].contains("SageMaker Model Monitor accepts only"));

    let body = with(
        multi(ByomDataQualityMonitor),
        json!({"schedule_expression": {"dev": "cron(0 * ? * * *)", "staging": "cron(0/5 * ? * * *)", "prod": "cron(0 * ? * * *)"}}),
    );
    let request = parse_request(&body, &three_envs()).unwrap();
    assert!(request.warnings[0].contains("(staging)"), "{:?}", request.warnings);
}

#[test]
fn unknown_keys_are_ignored_with_warnings() {
    let body = with(
        single(ByomBatchBuiltin),
        json!({"endpoint_name": "x", "inference_instanse": "ml.m5.large", "owner": "me"}),
    );
    let mut warnings = parse_request(&body, &single_env()).unwrap().warnings;
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "`endpoint_name` is not used by byom_batch_builtin pipelines and was ignored",
            "unknown key `inference_instanse` was ignored; did you mean `inference_instance`?",
            "unknown key `owner` was ignored",
        ]
    );
    // The solution's misspelling is the key; the correct spelling gets a pointer to it.
    let body = with(
        single(ModelTrainingBuiltin),
        json!({"algo_hyperparamaters": null, "algo_hyperparameters": {"num_round": 1}}),
    );
    let errors = errors(&body, &single_env());
    assert_eq!(errors[0].pointer, "/algo_hyperparamaters");
    assert!(errors[0].message.contains("solution's spelling"));
}

#[test]
fn null_counts_as_absent() {
    let body = with(single(ByomRealtimeCustom), json!({}));
    let mut body = body;
    body["kms_key_arn"] = Value::Null;
    assert!(parse_request(&body, &single_env()).is_ok());
    body["model_name"] = Value::Null;
    assert_eq!(problems(&body, &single_env()), [problem("/model_name", FieldErrorCode::Required)]);
}

#[test]
fn model_quality_specifics() {
    let spec = parse_request(&single(ByomModelQualityMonitor), &single_env()).unwrap().spec;
    let PipelineParams::Monitor(monitor) = spec.params else { panic!() };
    let MonitorKind::ModelQuality(quality) = monitor.kind else { panic!() };
    assert_eq!(quality.problem_type, ProblemType::BinaryClassification);
    assert_eq!(quality.probability_threshold_attribute, Some(0.5));
    assert_eq!(quality.baseline_probability_attribute.as_deref(), Some("probability"));
    assert!(monitor.monitor_ground_truth_input.is_some());

    // Binary: the prediction, or a probability with a threshold.
    let base = single(ByomModelQualityMonitor);
    let without_inference = with(base.clone(), json!({"monitor_inference_attribute": null}));
    assert!(parse_request(&without_inference, &single_env()).is_ok());
    let only_probability = with(without_inference, json!({"probability_threshold_attribute": null}));
    assert_eq!(
        problems(&only_probability, &single_env()),
        [problem("/monitor_inference_attribute", FieldErrorCode::Required)]
    );
    let bad_threshold = with(base, json!({"probability_threshold_attribute": "1.5"}));
    assert_eq!(
        problems(&bad_threshold, &single_env()),
        [problem("/probability_threshold_attribute", FieldErrorCode::InvalidValue)]
    );
}

#[test]
fn bias_and_explainability_objects_are_checked_in_place() {
    let body = with(
        single(ByomModelBiasMonitor),
        json!({"bias_config": {"facet_name": "age", "label": [1]}, "model_predicted_label_config": {"probability_threshold": 2}}),
    );
    let mut found = problems(&body, &single_env());
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        [
            problem("/bias_config/label", FieldErrorCode::UnknownKey),
            problem("/bias_config/label_values_or_threshold", FieldErrorCode::Required),
            problem("/model_predicted_label_config/probability_threshold", FieldErrorCode::InvalidValue),
        ]
    );
    let message =
        &errors(&body, &single_env()).into_iter().find(|e| e.code == FieldErrorCode::Required).unwrap().message;
    assert_eq!(message, "`bias_config.label_values_or_threshold` is required");

    let body = with(
        single(ByomModelExplainabilityMonitor),
        json!({"shap_config": {"baseline": "s3://bucket/shap.csv"}, "model_scores": -1}),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/shap_config/baseline", FieldErrorCode::InvalidValue),
            problem("/model_scores", FieldErrorCode::InvalidValue),
        ]
    );
    // Regression bias monitors need no predicted-label config.
    let body = with(
        single(ByomModelBiasMonitor),
        json!({"problem_type": "Regression", "model_predicted_label_config": null, "monitor_inference_attribute": "0"}),
    );
    assert!(parse_request(&body, &single_env()).is_ok());
}

#[test]
fn training_defaults_are_applied() {
    let body = json!({
        "pipeline_type": "model_training_builtin", "model_name": "m", "training_data": "t/",
        "job_output_location": "o", "model_framework": "xgboost", "model_framework_version": 1,
        "algo_hyperparamaters": {"num_round": 10},
    });
    let spec = parse_request(&body, &single_env()).unwrap().spec;
    let PipelineParams::Training(t) = spec.params else { panic!() };
    assert_eq!(t.training_data.as_str(), "t");
    assert_eq!(t.model_framework_version, "1");
    assert_eq!(t.instance_type.as_str(), "ml.m4.xlarge");
    assert_eq!((t.instance_count, t.instance_volume_size), (1, 20));
    assert!(t.encrypt_inner_traffic && t.use_spot_instances);
    assert_eq!((t.max_runtime_per_job, t.max_wait_time_spot_instances), (86_400, 172_800));
    assert_eq!(t.content_type, "csv");
    assert_eq!(t.s3_data_type, S3DataType::S3Prefix);
    assert_eq!(t.data_distribution, DataDistribution::FullyReplicated);
    assert_eq!(t.data_input_mode, DataInputMode::File);
    assert_eq!((t.compression_type, t.data_record_wrapping), (None, None));
    assert!(t.attribute_names.is_empty() && t.validation_data.is_none());
    assert!(t.job_name.is_none() && t.tuner.is_none() && t.kms_key_arn.is_none());

    let body = with(
        body,
        json!({"compression_type": "Gzip", "use_spot_instances": "False", "encrypt_inner_traffic": false,
               "max_runtime_per_job": 200000, "validation_data": "", "s3_data_type": "s3prefix"}),
    );
    let errors = errors(&body, &single_env());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("did you mean `S3Prefix`"), "{}", errors[0].message);
    let body = with(body, json!({"s3_data_type": "AugmentedManifestFile"}));
    let PipelineParams::Training(t) = parse_request(&body, &single_env()).unwrap().spec.params else { panic!() };
    assert_eq!(t.compression_type, Some(CompressionType::Gzip));
    assert!(!t.use_spot_instances && !t.encrypt_inner_traffic);
}

#[test]
fn spot_training_must_wait_at_least_as_long_as_it_runs() {
    let body = with(single(ModelTrainingBuiltin), json!({"max_runtime_per_job": 200000}));
    assert_eq!(
        problems(&body, &single_env()),
        [problem("/max_wait_time_spot_instances", FieldErrorCode::InvalidValue)]
    );
    let body = with(body, json!({"use_spot_instances": "False"}));
    assert!(parse_request(&body, &single_env()).is_ok());
}

#[test]
fn training_job_names_respect_sagemaker_limits() {
    // Tuning and AutoML jobs are limited to 32 characters.
    let body = with(single(ModelTunerBuiltin), json!({"job_name": "j".repeat(33)}));
    assert_eq!(problems(&body, &single_env()), [problem("/job_name", FieldErrorCode::InvalidValue)]);
    let body = with(single(ModelTrainingBuiltin), json!({"job_name": "j".repeat(63)}));
    assert!(parse_request(&body, &single_env()).is_ok());

    // Without a job name, the default `<model_name>-autopilot-xxxx` must fit.
    let body = with(single(ModelAutopilotTraining), json!({"model_name": "m".repeat(18)}));
    assert_eq!(problems(&body, &single_env()), [problem("/job_name", FieldErrorCode::Required)]);
    let body = with(body, json!({"job_name": "short"}));
    assert!(parse_request(&body, &single_env()).is_ok());
    let body = with(single(ModelAutopilotTraining), json!({"model_name": "m".repeat(17)}));
    assert!(parse_request(&body, &single_env()).is_ok());
}

#[test]
fn tuner_objects_are_checked() {
    let body = with(
        single(ModelTunerBuiltin),
        json!({"tuner_configs": {"max_jobs": 2}, "hyperparamaters_ranges": {"eta": ["continuous", [0.5, 0.1]]}}),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/tuner_configs/objective_metric_name", FieldErrorCode::Required),
            problem("/hyperparamaters_ranges/eta/1", FieldErrorCode::InvalidValue),
        ]
    );
    let spec = parse_request(&single(ModelTunerBuiltin), &single_env()).unwrap().spec;
    let PipelineParams::Training(t) = spec.params else { panic!() };
    assert_eq!(t.tuner.unwrap().hyperparameter_ranges.len(), 5);
}

#[test]
fn autopilot_rules() {
    let spec = parse_request(&single(ModelAutopilotTraining), &single_env()).unwrap().spec;
    let PipelineParams::Autopilot(a) = spec.params else { panic!() };
    assert_eq!(
        (a.problem_type, a.job_objective),
        (Some(ProblemType::BinaryClassification), Some(AutopilotObjective::F1))
    );
    assert_eq!((a.job_max_candidates, a.total_max_runtime), (10, 2_592_000));
    assert!(!a.generate_definition_only);

    let base = single(ModelAutopilotTraining);
    let cases = [
        (json!({"job_objective": null}), "/job_objective", FieldErrorCode::Required),
        (json!({"problem_type": ""}), "/problem_type", FieldErrorCode::Required),
        (json!({"job_objective": "MSE"}), "/job_objective", FieldErrorCode::InvalidValue),
        (
            json!({"max_runtime_per_job": 259200, "total_max_runtime": 3600}),
            "/max_runtime_per_job",
            FieldErrorCode::InvalidValue,
        ),
        (json!({"total_max_runtime": 3599}), "/total_max_runtime", FieldErrorCode::InvalidValue),
        (json!({"target_attribute": "t".repeat(129)}), "/target_attribute", FieldErrorCode::InvalidValue),
        (json!({"job_max_candidates": 0}), "/job_max_candidates", FieldErrorCode::InvalidValue),
    ];
    for (change, pointer, code) in cases {
        let body = with(base.clone(), change.clone());
        assert_eq!(problems(&body, &single_env()), [problem(pointer, code)], "{change}");
    }
    let neither = with(base, json!({"problem_type": null, "job_objective": ""}));
    assert!(parse_request(&neither, &single_env()).is_ok());
}

#[test]
fn image_builder_rules() {
    let base = single(ByomImageBuilder);
    for (change, pointer) in [
        (json!({"custom_algorithm_docker": "custom/Dockerfile"}), "/custom_algorithm_docker"),
        (json!({"image_tag": "v1.0"}), "/image_tag"),
        (json!({"ecr_repo_name": "MLOps"}), "/ecr_repo_name"),
    ] {
        let body = with(base.clone(), change);
        assert_eq!(problems(&body, &single_env()), [problem(pointer, FieldErrorCode::InvalidValue)]);
    }
    let body = with(base, json!({"kms_key_arn": ""}));
    let warnings = parse_request(&body, &single_env()).unwrap().warnings;
    assert_eq!(warnings, ["`kms_key_arn` is not used by byom_image_builder pipelines and was ignored"]);
}

#[test]
fn cross_field_rules_are_all_reported_together() {
    let body = with(
        single(ModelAutopilotTraining),
        json!({"model_name": "m".repeat(30), "job_objective": "MSE", "max_runtime_per_job": 259200, "total_max_runtime": 3600}),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/job_name", FieldErrorCode::Required),
            problem("/job_objective", FieldErrorCode::InvalidValue),
            problem("/max_runtime_per_job", FieldErrorCode::InvalidValue),
        ]
    );
    let body = with(
        single(ModelTrainingBuiltin),
        json!({"model_name": "m".repeat(50), "job_name": null, "max_wait_time_spot_instances": 600}),
    );
    assert_eq!(
        problems(&body, &single_env()),
        [
            problem("/job_name", FieldErrorCode::Required),
            problem("/max_wait_time_spot_instances", FieldErrorCode::InvalidValue),
        ]
    );
}

#[test]
fn empty_strings_the_solution_treats_as_unset_are_accepted_as_absent_with_a_warning() {
    let body = with(single(ByomRealtimeBuiltin), json!({"endpoint_name": ""}));
    let request = parse_request(&body, &single_env()).unwrap();
    let PipelineParams::Realtime(realtime) = &request.spec.params else { panic!() };
    let PerStage::All(name) = &realtime.endpoint_name else { panic!("{:?}", realtime.endpoint_name) };
    let unnamed = with(single(ByomRealtimeBuiltin), json!({"endpoint_name": null}));
    let default = parse_request(&unnamed, &single_env()).unwrap().spec;
    let PipelineParams::Realtime(unnamed) = &default.params else { panic!() };
    assert_eq!(realtime.endpoint_name, unnamed.endpoint_name, "the default endpoint name ({})", name.as_str());
    assert_eq!(request.warnings, ["`endpoint_name` is \"\" and is treated as not set, as the solution does"]);

    // The model-quality monitor's optional attributes.
    let body = with(
        single(ByomModelQualityMonitor),
        json!({"monitor_probability_attribute": "", "probability_threshold_attribute": ""}),
    );
    let request = parse_request(&body, &single_env()).unwrap();
    assert_eq!(request.warnings.len(), 2, "{:?}", request.warnings);
    // A required one left empty is missing, as the solution finds it.
    let body = with(single(ByomModelQualityMonitor), json!({"baseline_probability_attribute": ""}));
    assert!(
        matches!(problems(&body, &single_env())[..], [(ref p, FieldErrorCode::Required)] if p == "/baseline_probability_attribute")
    );
    // Elsewhere an empty string is still a bad value.
    let body = with(single(ByomRealtimeBuiltin), json!({"model_name": ""}));
    assert!(!problems(&body, &single_env()).is_empty());
}
