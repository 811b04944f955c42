//! Cross-module tests: the request fixtures in `tests/fixtures/requests/` (shared with the HTTP
//! tests), spec round trips, and plans.

use serde_json::Value;

use super::pipeline_type::PipelineType::{self, *};
use super::plan::{DEFAULT_ENVIRONMENT, StageParams, plan};
use super::request::{FieldErrorCode, RequestContext, ValidatedRequest, parse_request};
use super::spec::{ModelSource, MonitorKind, PipelineParams, PipelineSpec};
use super::{PerStage, PlanError};

macro_rules! fixture {
    ($dir:literal, $name:literal) => {
        include_str!(concat!("../../tests/fixtures/requests/", $dir, $name, ".json"))
    };
}

const SINGLE: [(PipelineType, &str); 12] = [
    (ByomRealtimeBuiltin, fixture!("", "byom_realtime_builtin")),
    (ByomRealtimeCustom, fixture!("", "byom_realtime_custom")),
    (ByomBatchBuiltin, fixture!("", "byom_batch_builtin")),
    (ByomBatchCustom, fixture!("", "byom_batch_custom")),
    (ByomDataQualityMonitor, fixture!("", "byom_data_quality_monitor")),
    (ByomModelQualityMonitor, fixture!("", "byom_model_quality_monitor")),
    (ByomModelBiasMonitor, fixture!("", "byom_model_bias_monitor")),
    (ByomModelExplainabilityMonitor, fixture!("", "byom_model_explainability_monitor")),
    (ByomImageBuilder, fixture!("", "byom_image_builder")),
    (ModelTrainingBuiltin, fixture!("", "model_training_builtin")),
    (ModelTunerBuiltin, fixture!("", "model_tuner_builtin")),
    (ModelAutopilotTraining, fixture!("", "model_autopilot_training")),
];

const MULTI: [(PipelineType, &str); 8] = [
    (ByomRealtimeBuiltin, fixture!("multi/", "byom_realtime_builtin")),
    (ByomRealtimeCustom, fixture!("multi/", "byom_realtime_custom")),
    (ByomBatchBuiltin, fixture!("multi/", "byom_batch_builtin")),
    (ByomBatchCustom, fixture!("multi/", "byom_batch_custom")),
    (ByomDataQualityMonitor, fixture!("multi/", "byom_data_quality_monitor")),
    (ByomModelQualityMonitor, fixture!("multi/", "byom_model_quality_monitor")),
    (ByomModelBiasMonitor, fixture!("multi/", "byom_model_bias_monitor")),
    (ByomModelExplainabilityMonitor, fixture!("multi/", "byom_model_explainability_monitor")),
];

const REGISTRY: [(PipelineType, &str); 4] = [
    (ByomRealtimeBuiltin, fixture!("registry/", "byom_realtime_builtin")),
    (ByomRealtimeCustom, fixture!("registry/", "byom_realtime_custom")),
    (ByomBatchBuiltin, fixture!("registry/", "byom_batch_builtin")),
    (ByomBatchCustom, fixture!("registry/", "byom_batch_custom")),
];

fn load(set: &[(PipelineType, &str)], pipeline_type: PipelineType) -> Value {
    let (_, text) =
        set.iter().find(|(t, _)| *t == pipeline_type).unwrap_or_else(|| panic!("no fixture for {pipeline_type}"));
    serde_json::from_str(text).expect("fixture is JSON")
}

/// The single-environment fixture body for `pipeline_type`.
pub(crate) fn single(pipeline_type: PipelineType) -> Value {
    load(&SINGLE, pipeline_type)
}

/// The per-environment (dev, staging, prod) fixture body for `pipeline_type`.
pub(crate) fn multi(pipeline_type: PipelineType) -> Value {
    load(&MULTI, pipeline_type)
}

pub(crate) fn single_env() -> RequestContext {
    RequestContext::default()
}

pub(crate) fn three_envs() -> RequestContext {
    RequestContext { environments: vec!["dev".into(), "staging".into(), "prod".into()], use_model_registry: false }
}

fn registry_on(environments: &[&str]) -> RequestContext {
    RequestContext { environments: environments.iter().map(|e| e.to_string()).collect(), use_model_registry: true }
}

fn valid(body: &Value, ctx: &RequestContext) -> ValidatedRequest {
    parse_request(body, ctx).unwrap_or_else(|e| panic!("{body}\nrejected: {:#?}", e.0))
}

fn assert_round_trips(spec: &PipelineSpec) {
    let json = serde_json::to_string(spec).unwrap();
    let back: PipelineSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, spec, "{json}");
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}

#[test]
fn every_single_environment_fixture_is_valid_without_warnings() {
    let one_env = RequestContext { environments: vec!["dev".into()], use_model_registry: false };
    for pipeline_type in PipelineType::ALL {
        let body = single(pipeline_type);
        for ctx in [single_env(), one_env.clone(), three_envs()] {
            let request = valid(&body, &ctx);
            assert_eq!(request.spec.pipeline_type, pipeline_type);
            assert!(request.warnings.is_empty(), "{pipeline_type}: {:?}", request.warnings);
        }
    }
}

#[test]
fn every_multi_environment_fixture_is_valid_with_three_environments_only() {
    for (pipeline_type, _) in MULTI {
        let body = multi(pipeline_type);
        let request = valid(&body, &three_envs());
        assert!(request.warnings.is_empty(), "{pipeline_type}: {:?}", request.warnings);

        let errors = parse_request(&body, &single_env()).unwrap_err().0;
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e.code == FieldErrorCode::PerStageNotAllowed), "{errors:#?}");
    }
}

#[test]
fn registry_fixtures_need_the_registry() {
    for (pipeline_type, _) in REGISTRY {
        let body = load(&REGISTRY, pipeline_type);
        let request = valid(&body, &registry_on(&[]));
        let (PipelineParams::Realtime(super::spec::RealtimeSpec { model, .. })
        | PipelineParams::Batch(super::spec::BatchSpec { model, .. })) = &request.spec.params
        else {
            panic!("{pipeline_type} is not realtime or batch");
        };
        let ModelSource::Registry { model_package } = model else { panic!("{model:?}") };
        assert_eq!(model_package.group(), "churn-models");

        // Without the registry, the image and artifact keys are missing.
        let errors = parse_request(&body, &single_env()).unwrap_err();
        assert!(
            errors
                .compat_detailed_message()
                .starts_with("Bad request. API body does not have the necessary parameter: "),
            "{errors}"
        );
    }
}

#[test]
fn specs_round_trip_through_json() {
    for pipeline_type in PipelineType::ALL {
        assert_round_trips(&valid(&single(pipeline_type), &single_env()).spec);
    }
    for (pipeline_type, _) in MULTI {
        assert_round_trips(&valid(&multi(pipeline_type), &three_envs()).spec);
    }
    for (pipeline_type, _) in REGISTRY {
        assert_round_trips(&valid(&load(&REGISTRY, pipeline_type), &registry_on(&[])).spec);
    }
}

#[test]
fn spec_identity_is_the_lower_cased_name() {
    let mut body = single(ByomRealtimeBuiltin);
    body["model_name"] = " Churn-XGB ".into();
    let spec = valid(&body, &single_env()).spec;
    assert_eq!(spec.name, "churn-xgb");
    assert_eq!(spec.stack_name(), "mlops-pipeline-churn-xgb-byompipelinerealtimebuiltin");
    let PipelineParams::Realtime(realtime) = &spec.params else { panic!() };
    assert_eq!(realtime.model_name, "Churn-XGB");

    let spec = valid(&single(ByomImageBuilder), &single_env()).spec;
    assert_eq!(spec.name, "tree");
    assert_eq!(spec.stack_name(), "mlops-pipeline-tree-byompipelineimagebuilder");
}

#[test]
fn single_environment_plans_have_one_stage() {
    for pipeline_type in PipelineType::ALL {
        let spec = valid(&single(pipeline_type), &single_env()).spec;
        let plan = plan(&spec, &single_env(), 1).unwrap();
        assert_eq!(plan.stages.len(), 1, "{pipeline_type}");
        let stage = &plan.stages[0];
        assert_eq!(
            (stage.ordinal, stage.environment.as_str(), stage.requires_approval),
            (0, DEFAULT_ENVIRONMENT, false)
        );
    }
    let one = RequestContext { environments: vec!["prod".into()], use_model_registry: false };
    let spec = valid(&single(ByomRealtimeBuiltin), &one).spec;
    assert_eq!(plan(&spec, &one, 1).unwrap().stages[0].environment, "prod");
}

#[test]
fn three_environment_plans_promote_with_approvals() {
    let spec = valid(&multi(ByomRealtimeBuiltin), &three_envs()).spec;
    let plan = plan(&spec, &three_envs(), 1).unwrap();
    let shape: Vec<_> = plan.stages.iter().map(|s| (s.ordinal, s.environment.as_str(), s.requires_approval)).collect();
    assert_eq!(shape, [(0, "dev", false), (1, "staging", true), (2, "prod", true)]);
    let realtime: Vec<_> = plan
        .stages
        .iter()
        .map(|s| match &s.params {
            StageParams::Realtime(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(realtime[0].inference_instance.as_str(), "ml.t2.medium");
    assert_eq!(realtime[2].inference_instance.as_str(), "ml.m5.xlarge");
    assert_eq!(realtime[1].endpoint_name.as_str(), "churn-staging");
    assert_eq!(realtime[1].data_capture_location.as_str(), "my-bucket/staging/datacapture/churn");
    assert_eq!(realtime[0].kms_key_arn, None);
    assert!(realtime[2].kms_key_arn.is_some());
    // Shared fields are the same everywhere.
    assert!(realtime.iter().all(|r| r.model == realtime[0].model));

    // A scalar-only spec is promoted too, with the same values.
    let spec = valid(&single(ByomBatchBuiltin), &three_envs()).spec;
    let plan = super::plan(&spec, &three_envs(), 1).unwrap();
    assert_eq!(plan.stages.len(), 3);
    assert!(plan.stages.iter().all(|s| s.params == plan.stages[0].params));
}

#[test]
fn training_and_image_builder_deploy_once_in_the_first_environment() {
    for pipeline_type in [ModelTrainingBuiltin, ModelTunerBuiltin, ModelAutopilotTraining, ByomImageBuilder] {
        let spec = valid(&single(pipeline_type), &three_envs()).spec;
        let plan = plan(&spec, &three_envs(), 1).unwrap();
        assert_eq!(plan.stages.len(), 1, "{pipeline_type}");
        assert_eq!(plan.stages[0].environment, "dev");
        assert!(!plan.stages[0].requires_approval);
    }
}

#[test]
fn monitor_names_are_generated_reproducibly_per_revision() {
    let spec = valid(&multi(ByomModelQualityMonitor), &three_envs()).spec;
    let first = plan(&spec, &three_envs(), 1).unwrap();
    assert_eq!(first, plan(&spec, &three_envs(), 1).unwrap());
    let again = plan(&spec, &three_envs(), 2).unwrap();

    let names = |p: &super::Plan| -> Vec<(String, String)> {
        p.stages
            .iter()
            .map(|s| match &s.params {
                StageParams::Monitor(m) => (m.baseline_job_name.clone(), m.monitoring_schedule_name.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    for (environment, (baseline, schedule)) in ["dev", "staging", "prod"].iter().zip(names(&first)) {
        for name in [&baseline, &schedule] {
            let prefix = format!("churn-{environment}-modelquality-");
            assert!(name.starts_with(&prefix), "{name}");
            let hex = &name[prefix.len()..];
            assert!(hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        }
        assert_ne!(baseline, schedule);
    }
    assert_ne!(names(&first), names(&again), "a new revision gets new names");

    let StageParams::Monitor(dev) = &first.stages[0].params else { panic!() };
    assert_eq!(dev.baseline_max_runtime_seconds, None);
    assert_eq!(dev.monitor_ground_truth_input.as_ref().map(|l| l.as_str()), Some("my-bucket/dev/monitor/groundtruth"));
    assert!(matches!(dev.kind, MonitorKind::ModelQuality(_)));
}

#[test]
fn longest_monitor_endpoint_names_fit_generated_names() {
    for pipeline_type in
        [ByomDataQualityMonitor, ByomModelQualityMonitor, ByomModelBiasMonitor, ByomModelExplainabilityMonitor]
    {
        let suffix = pipeline_type.monitor_type().unwrap().name_infix().len() + 6;
        let mut body = single(pipeline_type);
        body["endpoint_name"] = "e".repeat(63 - suffix).into();
        let spec = valid(&body, &single_env()).spec;
        let StageParams::Monitor(stage) = &plan(&spec, &single_env(), 7).unwrap().stages[0].params else { panic!() };
        assert_eq!(stage.baseline_job_name.len(), 63);
        assert_eq!(stage.monitoring_schedule_name.len(), 63);

        body["endpoint_name"] = "e".repeat(64 - suffix).into();
        let errors = parse_request(&body, &single_env()).unwrap_err().0;
        assert_eq!(errors[0].pointer, "/endpoint_name");
        assert_eq!(errors[0].code, FieldErrorCode::InvalidValue);
    }
}

#[test]
fn training_job_names_default_per_revision() {
    let mut body = single(ModelTrainingBuiltin);
    body.as_object_mut().unwrap().remove("job_name");
    let spec = valid(&body, &single_env()).spec;
    let job = |revision| match &plan(&spec, &single_env(), revision).unwrap().stages[0].params {
        StageParams::Training(t) => t.job_name.clone(),
        other => panic!("{other:?}"),
    };
    assert!(job(1).starts_with("churn-xgb-training-"), "{}", job(1));
    assert_eq!(job(1).len(), "churn-xgb-training-".len() + 4);
    assert_eq!(job(1), job(1));
    assert_ne!(job(1), job(2));

    let spec = valid(&single(ModelTunerBuiltin), &single_env()).spec;
    let StageParams::Training(tuner) = &plan(&spec, &single_env(), 1).unwrap().stages[0].params else { panic!() };
    assert_eq!(tuner.job_name, "churn-tuning-1");

    let spec = valid(&single(ModelAutopilotTraining), &single_env()).spec;
    let StageParams::Autopilot(autopilot) = &plan(&spec, &single_env(), 1).unwrap().stages[0].params else { panic!() };
    assert!(autopilot.job_name.starts_with("churn-autopilot-autopilot-"));
    assert!(autopilot.job_name.len() <= 32);
}

#[test]
fn planning_against_changed_environments_fails_clearly() {
    let spec = valid(&multi(ByomRealtimeBuiltin), &three_envs()).spec;
    let renamed =
        RequestContext { environments: vec!["dev".into(), "qa".into(), "prod".into()], use_model_registry: false };
    assert_eq!(
        plan(&spec, &renamed, 1),
        Err(PlanError::MissingStageValue { field: "inference_instance", environment: "qa".into() })
    );
    // Dropping to one environment keeps the first environment's values.
    let dev_only = RequestContext { environments: vec!["dev".into()], use_model_registry: false };
    assert_eq!(plan(&spec, &dev_only, 1).unwrap().stages.len(), 1);
    assert!(plan(&spec, &single_env(), 1).is_err());
}

#[test]
fn plans_round_trip_through_json() {
    for pipeline_type in PipelineType::ALL {
        let spec = valid(&single(pipeline_type), &three_envs()).spec;
        let plan = plan(&spec, &three_envs(), 3).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<super::Plan>(&json).unwrap(), plan, "{json}");
    }
}

#[test]
fn per_stage_values_are_kept_per_environment() {
    let spec = valid(&multi(ByomDataQualityMonitor), &three_envs()).spec;
    let PipelineParams::Monitor(monitor) = &spec.params else { panic!() };
    assert_eq!(monitor.instance_volume_size.get("staging"), Some(&20));
    assert_eq!(monitor.baseline_max_runtime_seconds.get("dev"), Some(&None));
    assert_eq!(monitor.baseline_max_runtime_seconds.get("prod"), Some(&Some(7200)));
    assert_eq!(monitor.kms_key_arn, PerStage::All(None));
}
