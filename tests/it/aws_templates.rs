//! The aws target's pure parts: the CloudFormation templates in `templates/`, the parameters built
//! for them from real plans (the request fixtures), `template.zip`, and built-in image URIs. No
//! network: the templates are parsed here, and `cfn-lint` checks them in `.ci/run`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::Path;

use mlops::domain::{PipelineType, RequestContext, StageParams, names, parse_request, plan};
use mlops::targets::aws::context::{AwsContext, AwsEnvironment};
use mlops::targets::aws::image_uris::{ImageUriError, builtin_image_uri, clarify_image_uri, model_monitor_image_uri};
use mlops::targets::aws::package::{PackageError, template_zip};
use mlops::targets::aws::parameters::{ParameterError, is_multi_account, stack_parameters, wrapper_parameters};
use mlops::targets::aws::templates::{self, deployed_template_file, wrapper_template_file};
use regex::Regex;
use serde_norway::Value;

const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];

/// Parameters of one stage, and (environment, parameters) of every stage.
type Values = Vec<(String, String)>;
type Stages = Vec<(String, Values)>;

/// The label of the parameter group that lists parameters no resource reads (they are inputs of
/// the jobs the worker starts), which is why the templates switch off cfn-lint's W2001.
const PASSED_THROUGH: &str = "Passed through";

// ----- fixtures ----------------------------------------------------------------------------------

fn context(multi: bool) -> AwsContext {
    let environments = if multi {
        ENVIRONMENTS
            .iter()
            .zip(["111111111111", "222222222222", "333333333333"])
            .map(|(name, account)| AwsEnvironment {
                name: name.to_string(),
                account_id: account.to_string(),
                deploy_role_arn: format!("arn:aws:iam::{account}:role/mlops-deploy"),
                action_role_arn: format!("arn:aws:iam::{account}:role/mlops-pipeline-action"),
            })
            .collect()
    } else {
        Vec::new()
    };
    AwsContext {
        region: "us-east-1".into(),
        assets_bucket: "mlops-assets-123456789012".into(),
        blueprint_bucket: "mlops-blueprints-123456789012".into(),
        ecr_repo_arn: "arn:aws:ecr:us-east-1:123456789012:repository/mlops-ecr-repo".into(),
        ecr_repo_name: "mlops-ecr-repo".into(),
        notification_topic_arn: "arn:aws:sns:us-east-1:123456789012:mlops-notifications".into(),
        cloudformation_role_arn: "arn:aws:iam::123456789012:role/mlops-cloudformation".into(),
        use_model_registry: false,
        monitor_image_uri: None,
        environments,
        poll_interval: std::time::Duration::from_secs(15),
    }
}

/// How a fixture is planned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    /// `requests/<type>.json`, one environment.
    Single,
    /// `requests/multi/<type>.json` (or the plain fixture for types that deploy once), with the
    /// environments dev, staging and prod.
    Multi,
    /// `requests/registry/<type>.json`, one environment, model registry on.
    Registry,
}

impl Variant {
    fn label(self, pipeline_type: PipelineType) -> &'static str {
        match self {
            Variant::Single => "single environment",
            Variant::Multi if pipeline_type.supports_per_stage() => "dev, staging, prod",
            Variant::Multi => "dev, staging, prod configured: deploys once, in dev",
            Variant::Registry => "model registry, single environment",
        }
    }
}

fn fixture_path(pipeline_type: PipelineType, variant: Variant) -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests");
    let name = format!("{pipeline_type}.json");
    let path = match variant {
        Variant::Single => dir.join(name),
        Variant::Multi if pipeline_type.supports_per_stage() => dir.join("multi").join(name),
        Variant::Multi => dir.join(name),
        Variant::Registry => dir.join("registry").join(name),
    };
    path.exists().then_some(path)
}

/// The plan of a fixture: (environment, stage parameters) in promotion order.
fn planned(pipeline_type: PipelineType, variant: Variant) -> Option<Vec<(String, StageParams)>> {
    let path = fixture_path(pipeline_type, variant)?;
    let body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ctx = RequestContext {
        environments: match variant {
            Variant::Multi => ENVIRONMENTS.iter().map(|e| e.to_string()).collect(),
            _ => Vec::new(),
        },
        use_model_registry: variant == Variant::Registry,
    };
    let request = parse_request(&body, &ctx).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    assert_eq!(request.spec.pipeline_type, pipeline_type);
    let plan = plan(&request.spec, &ctx, 1).unwrap();
    Some(plan.stages.into_iter().map(|s| (s.environment, s.params)).collect())
}

/// Every fixture planned, with the stack parameters of each stage.
fn all_cases() -> Vec<(PipelineType, Variant, Stages)> {
    let mut cases = Vec::new();
    for pipeline_type in PipelineType::ALL {
        for variant in [Variant::Single, Variant::Multi, Variant::Registry] {
            let Some(stages) = planned(pipeline_type, variant) else { continue };
            let ctx = context(variant == Variant::Multi);
            let stages = stages
                .into_iter()
                .map(|(env, params)| {
                    let values = stack_parameters(pipeline_type, &params, &ctx)
                        .unwrap_or_else(|e| panic!("{pipeline_type} {variant:?} {env}: {e}"));
                    (env, values)
                })
                .collect();
            cases.push((pipeline_type, variant, stages));
        }
    }
    cases
}

// ----- templates -----------------------------------------------------------------------------------

/// A declared parameter and its constraints, as CloudFormation checks them.
#[derive(Debug)]
struct Declared {
    number: bool,
    has_default: bool,
    allowed_values: Option<Vec<String>>,
    allowed_pattern: Option<Regex>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    min_value: Option<f64>,
    max_value: Option<f64>,
}

struct Template {
    name: &'static str,
    doc: Value,
    parameters: BTreeMap<String, Declared>,
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn parse_template(name: &'static str) -> Template {
    let text = templates::template(name).unwrap_or_else(|| panic!("{name} is not embedded"));
    let doc: Value = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut parameters = BTreeMap::new();
    for (key, decl) in doc["Parameters"].as_mapping().unwrap_or_else(|| panic!("{name} has no Parameters")) {
        let get = |k: &str| decl.get(k);
        let ty = scalar(get("Type").unwrap());
        assert!(ty == "String" || ty == "Number", "{name}: {key:?} has type {ty}");
        let number = |k: &str| get(k).map(|v| scalar(v).parse::<f64>().unwrap());
        let length = |k: &str| get(k).map(|v| scalar(v).parse::<usize>().unwrap());
        parameters.insert(
            scalar(key),
            Declared {
                number: ty == "Number",
                has_default: get("Default").is_some(),
                allowed_values: get("AllowedValues").map(|v| v.as_sequence().unwrap().iter().map(scalar).collect()),
                // CloudFormation matches the whole value (Java's `matches`).
                allowed_pattern: get("AllowedPattern").map(|p| Regex::new(&format!("^(?:{})$", scalar(p))).unwrap()),
                min_length: length("MinLength"),
                max_length: length("MaxLength"),
                min_value: number("MinValue"),
                max_value: number("MaxValue"),
            },
        );
    }
    Template { name, doc, parameters }
}

/// Why `value` is not acceptable for `declared`, if it is not.
fn violation(declared: &Declared, value: &str) -> Option<String> {
    let chars = value.chars().count();
    if declared.number {
        let Ok(n) = value.parse::<f64>() else { return Some(format!("`{value}` is not a number")) };
        if declared.min_value.is_some_and(|min| n < min) || declared.max_value.is_some_and(|max| n > max) {
            return Some(format!("{n} is outside {:?}..={:?}", declared.min_value, declared.max_value));
        }
    }
    if let Some(allowed) = &declared.allowed_values
        && !allowed.iter().any(|a| a == value)
    {
        return Some(format!("`{value}` is not one of {allowed:?}"));
    }
    if let Some(pattern) = &declared.allowed_pattern
        && !pattern.is_match(value)
    {
        return Some(format!("`{value}` does not match {pattern}"));
    }
    if declared.min_length.is_some_and(|min| chars < min) || declared.max_length.is_some_and(|max| chars > max) {
        return Some(format!(
            "`{value}` has {chars} characters, not {:?}..={:?}",
            declared.min_length, declared.max_length
        ));
    }
    None
}

/// Checks one set of parameters against a template: every key declared once, every required
/// parameter given, every value acceptable. Returns the problems.
fn check_against(template: &Template, values: &[(String, String)], what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut given = BTreeSet::new();
    for (key, value) in values {
        if !given.insert(key.as_str()) {
            problems.push(format!("{what}: `{key}` given twice"));
        }
        match template.parameters.get(key) {
            None => problems.push(format!("{what}: `{key}` is not declared in {}", template.name)),
            Some(declared) => {
                if let Some(why) = violation(declared, value) {
                    problems.push(format!("{what}: `{key}`: {why}"));
                }
            }
        }
    }
    for (key, declared) in &template.parameters {
        if !declared.has_default && !given.contains(key.as_str()) {
            problems.push(format!("{what}: required parameter `{key}` of {} is missing", template.name));
        }
    }
    problems
}

/// Names a template section refers to: `Ref` targets and `${Name}` in `Sub` strings.
fn referenced_names(v: &Value, out: &mut BTreeSet<String>) {
    static SUB_VAR: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(r"\$\{([A-Za-z0-9_]+)\}").unwrap());
    match v {
        Value::Tagged(tagged) => {
            if tagged.tag == "Ref" {
                out.insert(scalar(&tagged.value));
            } else if tagged.tag == "Sub" {
                // `!Sub text` or `!Sub [text, {Local: value}]`: locals are not parameters.
                let (text, locals) = match &tagged.value {
                    Value::Sequence(items) => (scalar(&items[0]), items.get(1)),
                    other => (scalar(other), None),
                };
                let local_names: BTreeSet<String> =
                    locals.and_then(Value::as_mapping).map(|m| m.keys().map(scalar).collect()).unwrap_or_default();
                for name in SUB_VAR.captures_iter(&text).map(|c| c[1].to_string()) {
                    if !local_names.contains(&name) {
                        out.insert(name);
                    }
                }
                if let Some(locals) = locals {
                    referenced_names(locals, out);
                }
            } else {
                referenced_names(&tagged.value, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| referenced_names(i, out)),
        Value::Mapping(map) => {
            for (key, value) in map {
                if key.as_str() == Some("Ref") {
                    out.insert(scalar(value));
                }
                referenced_names(value, out);
            }
        }
        _ => {}
    }
}

/// The pipeline types' deployed templates plus the two wrappers.
fn template_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = PipelineType::ALL.iter().map(|t| deployed_template_file(*t)).collect();
    names.extend([wrapper_template_file(false), wrapper_template_file(true)]);
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_template_file_is_embedded_and_every_type_has_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    let embedded: BTreeSet<String> = templates::ALL.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, embedded, "templates/ and templates::ALL differ");
    assert_eq!(templates::ALL.len(), embedded.len(), "a template is embedded twice");
    for (name, text) in templates::ALL {
        let disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(&disk, text, "{name}: embedded text differs from the file");
        // Stacks are created with TemplateBody, which CloudFormation limits to 51,200 bytes.
        assert!(text.len() <= 51_200, "{name} is {} bytes", text.len());
    }
    let used: BTreeSet<String> = template_names().into_iter().map(String::from).collect();
    assert_eq!(used, embedded, "every template is used by some pipeline type or wrapper");
    assert_eq!(wrapper_template_file(false), "single_account_codepipeline.yaml");
    assert_eq!(wrapper_template_file(true), "multi_account_codepipeline.yaml");
    assert_eq!(deployed_template_file(PipelineType::ModelTunerBuiltin), "model_hyperparameter_tunning_pipeline.yaml");
    assert_eq!(deployed_template_file(PipelineType::ByomRealtimeCustom), "byom_realtime_inference_pipeline.yaml");
}

/// The parameters no resource reads are exactly the ones the template says are passed through
/// (what keeps W2001 honest while it is switched off), and every parameter group lists declared
/// parameters only, each once.
#[test]
fn unreferenced_parameters_are_exactly_the_passed_through_group() {
    for name in template_names() {
        let template = parse_template(name);
        let mut referenced = BTreeSet::new();
        for section in ["Conditions", "Resources", "Outputs"] {
            if let Some(s) = template.doc.get(section) {
                referenced_names(s, &mut referenced);
            }
        }
        let declared: BTreeSet<String> = template.parameters.keys().cloned().collect();
        let unreferenced: BTreeSet<String> = declared.difference(&referenced).cloned().collect();

        let groups = template.doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"].as_sequence();
        let mut passed_through = BTreeSet::new();
        let mut grouped = Vec::new();
        for group in groups.into_iter().flatten() {
            let label = scalar(&group["Label"]["default"]);
            let members: Vec<String> = group["Parameters"].as_sequence().unwrap().iter().map(scalar).collect();
            if label.starts_with(PASSED_THROUGH) {
                passed_through.extend(members.iter().cloned());
            }
            grouped.extend(members);
        }
        assert_eq!(unreferenced, passed_through, "{name}: unreferenced parameters vs the passed-through group");
        if groups.is_some() {
            let unique: BTreeSet<String> = grouped.iter().cloned().collect();
            assert_eq!(unique.len(), grouped.len(), "{name}: a parameter is in two groups");
            assert_eq!(unique, declared, "{name}: the parameter groups must list every parameter");
        }
        let ignores_w2001 = template.doc["Metadata"]["cfn-lint"]["config"]["ignore_checks"]
            .as_sequence()
            .is_some_and(|s| s.iter().any(|c| scalar(c) == "W2001"));
        assert_eq!(
            ignores_w2001,
            !passed_through.is_empty(),
            "{name}: W2001 is off only for passed-through parameters"
        );
    }
}

/// For every pipeline type and every fixture variant, the builder gives exactly what the deployed
/// template declares, with values the template accepts.
#[test]
fn stack_parameters_match_the_deployed_templates() {
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for (pipeline_type, variant, stages) in all_cases() {
        let template = parse_template(deployed_template_file(pipeline_type));
        for (env, values) in &stages {
            problems.extend(check_against(&template, values, &format!("{pipeline_type} ({variant:?}, {env})")));
        }
        checked.insert(pipeline_type);
    }
    assert_eq!(checked.len(), PipelineType::ALL.len(), "every pipeline type has a fixture");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn wrapper_parameters_match_the_wrapper_templates() {
    let mut problems = Vec::new();
    for multi in [false, true] {
        let ctx = context(multi);
        for pipeline_type in PipelineType::ALL {
            let stack = names::stack_name(pipeline_type, "churn-xgb");
            let values = wrapper_parameters(pipeline_type, &stack, &ctx);
            if pipeline_type == PipelineType::ByomImageBuilder {
                assert!(values.is_empty(), "the image builder has no wrapper");
                continue;
            }
            let multi_wrapper = is_multi_account(pipeline_type, &ctx);
            assert_eq!(multi_wrapper, multi && !pipeline_type.is_training(), "{pipeline_type}");
            let template = parse_template(wrapper_template_file(multi_wrapper));
            problems.extend(check_against(&template, &values, &format!("{pipeline_type} wrapper (multi: {multi})")));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The longest stack name the domain allows still gives a valid wrapper.
#[test]
fn wrapper_stack_name_limit() {
    let template = parse_template(wrapper_template_file(false));
    let declared = &template.parameters["StackName"];
    let stack = names::stack_name(PipelineType::ByomRealtimeBuiltin, "churn-xgb");
    assert_eq!(violation(declared, &stack), None);
    // CodePipeline names are at most 100 characters and ours is `<stack>-pipeline`.
    assert_eq!(declared.max_length, Some(100 - "-pipeline".len()));
}

#[test]
fn stack_parameter_errors() {
    let ctx = context(false);
    let stages = planned(PipelineType::ByomRealtimeBuiltin, Variant::Single).unwrap();
    let err = stack_parameters(PipelineType::ByomBatchBuiltin, &stages[0].1, &ctx).unwrap_err();
    assert_eq!(err.to_string(), "`byom_batch_builtin` cannot be deployed with `realtime` stage parameters");

    let monitor = planned(PipelineType::ByomDataQualityMonitor, Variant::Single).unwrap();
    let err = stack_parameters(PipelineType::ByomModelBiasMonitor, &monitor[0].1, &ctx).unwrap_err();
    assert!(matches!(err, ParameterError::Mismatch { .. }), "{err}");

    let tuner = planned(PipelineType::ModelTunerBuiltin, Variant::Single).unwrap();
    assert!(stack_parameters(PipelineType::ModelTrainingBuiltin, &tuner[0].1, &ctx).is_err());

    // A region without the image: the error names the region and the supported ones.
    let elsewhere = AwsContext { region: "xx-nowhere-1".into(), ..ctx.clone() };
    let err = stack_parameters(PipelineType::ByomRealtimeBuiltin, &stages[0].1, &elsewhere).unwrap_err();
    assert!(matches!(err, ParameterError::ImageUri(ImageUriError::UnknownRegion { .. })), "{err}");
    assert!(err.to_string().contains("`xx-nowhere-1`") && err.to_string().contains("`us-east-1`"), "{err}");
}

#[test]
fn derived_values() {
    let ctx = context(false);
    let get = |pipeline_type, variant| {
        let stages = planned(pipeline_type, variant).unwrap();
        let values = stack_parameters(pipeline_type, &stages[0].1, &ctx).unwrap();
        values.into_iter().collect::<BTreeMap<_, _>>()
    };
    let realtime = get(PipelineType::ByomRealtimeBuiltin, Variant::Single);
    assert_eq!(realtime["ImageUri"], "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.2-2");
    assert_eq!(realtime["ModelPackageName"], "");

    let registry = get(PipelineType::ByomRealtimeBuiltin, Variant::Registry);
    assert_eq!(registry["ImageUri"], "");
    assert_eq!(registry["ModelPackageGroupName"], "churn-models");

    let monitor = get(PipelineType::ByomDataQualityMonitor, Variant::Single);
    assert_eq!(
        monitor["BaselineJobOutputLocation"],
        format!("my-bucket/monitor/baseline/{}", monitor["BaselineJobName"])
    );
    assert_eq!(monitor["ImageUri"], "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer");
    assert!(!monitor.contains_key("JobInstanceCount"), "left at the template's default, as the solution does");
    assert!(!monitor.contains_key("AnalyzerArguments"), "the prebuilt analyzer takes none");

    // aws.monitor_image_uri: data quality and model quality run our analyzer (`mlops analyze`);
    // Clarify's monitors keep Clarify.
    let ours = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-orchestrator:1.0";
    let own = AwsContext { monitor_image_uri: Some(ours.into()), ..ctx.clone() };
    let values = |pipeline_type| -> BTreeMap<String, String> {
        let stages = planned(pipeline_type, Variant::Single).unwrap();
        stack_parameters(pipeline_type, &stages[0].1, &own).unwrap().into_iter().collect()
    };
    let data_quality = values(PipelineType::ByomDataQualityMonitor);
    assert_eq!(data_quality["ImageUri"], ours);
    assert_eq!(data_quality["AnalyzerArguments"], "analyze");
    let model_quality = values(PipelineType::ByomModelQualityMonitor);
    assert_eq!(model_quality["ImageUri"], ours);
    assert_eq!(model_quality["AnalyzerArguments"], "analyze");
    let model_quality = get(PipelineType::ByomModelQualityMonitor, Variant::Single);
    assert!(model_quality["ImageUri"].ends_with("/sagemaker-model-monitor-analyzer"));
    assert!(!model_quality.contains_key("AnalyzerArguments"));
    let stages = planned(PipelineType::ByomModelBiasMonitor, Variant::Single).unwrap();
    let bias: BTreeMap<_, _> =
        stack_parameters(PipelineType::ByomModelBiasMonitor, &stages[0].1, &own).unwrap().into_iter().collect();
    assert!(bias["ImageUri"].contains("sagemaker-clarify-processing"));

    let explainability = get(PipelineType::ByomModelExplainabilityMonitor, Variant::Single);
    let shap: serde_json::Value = serde_json::from_str(&explainability["SHAPConfig"]).unwrap();
    assert_eq!(shap["baseline"], "s3://mlops-assets-123456789012/monitor/baseline/shap-baseline.csv");
    assert_eq!(shap["num_samples"], 500);
    assert_eq!(explainability["ExplainabilityModelScores"], "0");
    assert_eq!(
        explainability["ImageUri"],
        "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"
    );

    let training = get(PipelineType::ModelTrainingBuiltin, Variant::Single);
    assert_eq!(training["UseSpotInstances"], "True");
    let hyperparameters: serde_json::Value = serde_json::from_str(&training["AlgoHyperparameteres"]).unwrap();
    assert_eq!(hyperparameters["num_round"], 400);
    assert_eq!(training["ImageUri"], "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1");
}

// ----- snapshots -----------------------------------------------------------------------------------

/// `Key = value` lines; an empty value shows as `""` (no trailing blanks in the snapshot).
fn render(values: &[(String, String)]) -> String {
    values.iter().map(|(k, v)| if v.is_empty() { format!("{k} = \"\"\n") } else { format!("{k} = {v}\n") }).collect()
}

/// The rendered parameters of every pipeline type: single environment, dev/staging/prod, and the
/// model-registry variant where there is one.
#[test]
fn stack_parameter_snapshots() {
    let mut by_type: BTreeMap<PipelineType, String> = BTreeMap::new();
    for (pipeline_type, variant, stages) in all_cases() {
        let text = by_type.entry(pipeline_type).or_default();
        text.push_str(&format!("# {} ({})\n", deployed_template_file(pipeline_type), variant.label(pipeline_type)));
        for (env, values) in &stages {
            text.push_str(&format!("[{env}]\n{}", render(values)));
        }
        text.push('\n');
    }
    for (pipeline_type, text) in by_type {
        insta::assert_snapshot!(format!("stack_parameters_{pipeline_type}"), text);
    }
}

#[test]
fn wrapper_parameter_snapshots() {
    let stack = names::stack_name(PipelineType::ByomRealtimeBuiltin, "churn-xgb");
    let mut text = String::new();
    for multi in [false, true] {
        text.push_str(&format!("# {}\n", wrapper_template_file(multi)));
        text.push_str(&render(&wrapper_parameters(PipelineType::ByomRealtimeBuiltin, &stack, &context(multi))));
        text.push('\n');
    }
    insta::assert_snapshot!("wrapper_parameters", text);
}

// ----- template.zip --------------------------------------------------------------------------------

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            assert_eq!(file.last_modified().map(|t| t.year()), Some(1980), "fixed timestamp");
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            (file.name().unwrap().to_string(), text)
        })
        .collect()
}

fn stages_of(pipeline_type: PipelineType, variant: Variant) -> Stages {
    all_cases().into_iter().find(|(t, v, _)| *t == pipeline_type && *v == variant).map(|(_, _, stages)| stages).unwrap()
}

#[test]
fn single_account_zip() {
    let stages = stages_of(PipelineType::ByomRealtimeBuiltin, Variant::Single);
    let zip = template_zip(PipelineType::ByomRealtimeBuiltin, &stages, false).unwrap();
    let files = unzip(&zip);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["byom_realtime_inference_pipeline.yaml", "template_params.json"]);
    assert_eq!(files[0].1, templates::template("byom_realtime_inference_pipeline.yaml").unwrap());

    // CodePipeline's template-configuration format, every value a string, in the builder's order.
    let json: serde_json::Value = serde_json::from_str(&files[1].1).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["Parameters"]);
    let parameters = json["Parameters"].as_object().unwrap();
    assert!(parameters.values().all(serde_json::Value::is_string));
    let expected: BTreeMap<&str, &str> = stages[0].1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let actual: BTreeMap<&str, &str> = parameters.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())).collect();
    assert_eq!(actual, expected);
    assert!(files[1].1.starts_with("{\n  \"Parameters\": {\n    \"AssetsBucket\": "), "{}", files[1].1);
}

#[test]
fn multi_account_zip() {
    let stages = stages_of(PipelineType::ByomModelBiasMonitor, Variant::Multi);
    let zip = template_zip(PipelineType::ByomModelBiasMonitor, &stages, true).unwrap();
    let files = unzip(&zip);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "byom_model_bias_monitor.yaml",
            "dev_template_params.json",
            "staging_template_params.json",
            "prod_template_params.json"
        ]
    );
    for ((_, text), (env, values)) in files[1..].iter().zip(&stages) {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let endpoint = json["Parameters"]["EndpointName"].as_str().unwrap();
        assert_eq!(endpoint, format!("churn-{env}"));
        assert_eq!(json["Parameters"].as_object().unwrap().len(), values.len());
    }
    // The wrapper names the same files.
    let wrapper: BTreeMap<String, String> =
        wrapper_parameters(PipelineType::ByomModelBiasMonitor, "s", &context(true)).into_iter().collect();
    assert_eq!(wrapper["DevParamsName"], "dev_template_params.json");
    assert_eq!(wrapper["StagingParamsName"], "staging_template_params.json");
    assert_eq!(wrapper["ProdParamsName"], "prod_template_params.json");
}

#[test]
fn zip_bytes_are_deterministic() {
    for (pipeline_type, variant, stages) in all_cases() {
        let multi = stages.len() == 3;
        let first = template_zip(pipeline_type, &stages, multi).unwrap();
        let second = template_zip(pipeline_type, &stages, multi).unwrap();
        assert_eq!(first, second, "{pipeline_type} {variant:?}");
    }
    // A different parameter value gives different bytes.
    let mut stages = stages_of(PipelineType::ByomBatchBuiltin, Variant::Single);
    let before = template_zip(PipelineType::ByomBatchBuiltin, &stages, false).unwrap();
    stages[0].1[0].1.push('x');
    assert_ne!(before, template_zip(PipelineType::ByomBatchBuiltin, &stages, false).unwrap());
}

#[test]
fn zip_errors() {
    let single = stages_of(PipelineType::ByomRealtimeBuiltin, Variant::Single);
    let multi = stages_of(PipelineType::ByomRealtimeBuiltin, Variant::Multi);
    let err = template_zip(PipelineType::ByomRealtimeBuiltin, &single, true).unwrap_err();
    assert!(matches!(err, PackageError::StageCount { expected: 3, got: 1, .. }), "{err}");
    let err = template_zip(PipelineType::ByomRealtimeBuiltin, &multi, false).unwrap_err();
    assert!(matches!(err, PackageError::StageCount { expected: 1, got: 3, .. }), "{err}");

    let training = stages_of(PipelineType::ModelTrainingBuiltin, Variant::Single);
    let three = vec![training[0].clone(), training[0].clone(), training[0].clone()];
    let err = template_zip(PipelineType::ModelTrainingBuiltin, &three, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`model_training_builtin` deploys once, in the orchestrator's account; it has no multi-account package"
    );

    let mut duplicated = single.clone();
    let first = duplicated[0].1[0].clone();
    duplicated[0].1.push(first);
    let err = template_zip(PipelineType::ByomRealtimeBuiltin, &duplicated, false).unwrap_err();
    assert!(matches!(err, PackageError::DuplicateParameter { .. }), "{err}");
}

// ----- image URIs ----------------------------------------------------------------------------------

/// Expected values read from the SageMaker Python SDK's image_uri_config JSON files.
#[test]
fn builtin_image_uris_match_the_sdk() {
    let cases = [
        ("1.2-2", "us-east-1", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.2-2"),
        ("1.7-1", "eu-west-1", "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("3.0-5", "ap-southeast-2", "783357654285.dkr.ecr.ap-southeast-2.amazonaws.com/sagemaker-xgboost:3.0-5"),
        ("1.5-1", "il-central-1", "898809789911.dkr.ecr.il-central-1.amazonaws.com/sagemaker-xgboost:1.5-1"),
        ("0.90-1", "us-west-2", "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:0.90-1-cpu-py3"),
        ("1.0-1", "us-gov-west-1", "414596584902.dkr.ecr.us-gov-west-1.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3"),
        ("1.3-1", "cn-north-1", "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.3-1"),
        // The legacy image of version 1 lives in other accounts and another repository.
        ("1", "us-east-1", "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"),
        ("1", "eu-central-1", "813361260812.dkr.ecr.eu-central-1.amazonaws.com/xgboost:1"),
        ("latest", "us-east-2", "825641698319.dkr.ecr.us-east-2.amazonaws.com/xgboost:1"),
    ];
    for (version, region, expected) in cases {
        assert_eq!(builtin_image_uri("xgboost", version, region).unwrap(), expected, "{version} {region}");
    }
}

#[test]
fn monitor_image_uris_match_the_sdk() {
    assert_eq!(
        model_monitor_image_uri("us-east-1").unwrap(),
        "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    );
    assert_eq!(
        model_monitor_image_uri("eu-west-1").unwrap(),
        "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    );
    assert_eq!(
        clarify_image_uri("us-west-2").unwrap(),
        "306415355426.dkr.ecr.us-west-2.amazonaws.com/sagemaker-clarify-processing:1.0"
    );
    assert_eq!(
        clarify_image_uri("ap-northeast-3").unwrap(),
        "912233562940.dkr.ecr.ap-northeast-3.amazonaws.com/sagemaker-clarify-processing:1.0"
    );
    assert_eq!(
        clarify_image_uri("cn-northwest-1").unwrap(),
        "122578899357.dkr.ecr.cn-northwest-1.amazonaws.com.cn/sagemaker-clarify-processing:1.0"
    );
}

#[test]
fn image_uri_errors_name_what_is_supported() {
    let err = builtin_image_uri("sklearn", "1.2-1", "us-east-1").unwrap_err();
    assert_eq!(err.to_string(), "`sklearn` is not a supported built-in algorithm; supported: `xgboost`");

    let err = builtin_image_uri("xgboost", "9.9-9", "us-east-1").unwrap_err();
    assert!(matches!(err, ImageUriError::UnknownVersion { .. }));
    let message = err.to_string();
    assert!(message.starts_with("xgboost version `9.9-9` is not known; supported versions: "), "{message}");
    assert!(message.contains("`1.7-1`") && message.contains("`latest`"), "{message}");

    let err = builtin_image_uri("xgboost", "1", "il-central-1").unwrap_err();
    assert!(err.to_string().starts_with("the xgboost 1 image is not published in region `il-central-1`"), "{err}");

    let err = model_monitor_image_uri("mars-north-1").unwrap_err();
    assert!(err.to_string().contains("`us-east-1`"), "{err}");
    assert!(clarify_image_uri("").is_err());
}

/// The real-time template's inference API function (the solution's `POST /inference`): its inline
/// code, run by Python against a recording stand-in for the SageMaker runtime client, sends a text
/// payload as it is and any other JSON JSON-encoded, with the body's content type, to the endpoint
/// the template names, answers with the prediction text, and refuses a body without its fields.
#[test]
fn the_inference_function_passes_the_payload_as_the_solution_does() {
    let template = parse_template("byom_realtime_inference_pipeline.yaml");
    let resources = &template.doc["Resources"];
    let code = resources["InferenceFunction"]["Properties"]["Code"]["ZipFile"].as_str().expect("inline code");
    let method = &resources["InferenceMethod"]["Properties"];
    assert_eq!(
        (scalar(&method["HttpMethod"]), scalar(&method["AuthorizationType"])),
        ("POST".into(), "AWS_IAM".into())
    );
    assert_eq!(scalar(&resources["InferenceResource"]["Properties"]["PathPart"]), "inference");
    let url = &template.doc["Outputs"]["InferenceApiUrl"]["Value"];
    assert!(
        matches!(url, Value::Tagged(t) if scalar(&t.value).ends_with("/inference")),
        "the URL is a stack output: {url:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("index.py");
    std::fs::write(&handler, code).unwrap();
    let python = crate::support::aws::moto::python_bin().join("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/inference_api/run_handler.py");
    let out = std::process::Command::new(python).arg(script).arg(&handler).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (answers, calls) = (&run["answers"], &run["calls"]);
    assert_eq!(answers[0]["statusCode"], 200);
    assert_eq!(answers[0]["body"], "0.25\n");
    assert_eq!(
        calls[0],
        serde_json::json!({"EndpointName": "churn-endpoint", "ContentType": "text/csv", "Body": "1,2,3"})
    );
    assert_eq!(calls[1]["ContentType"], "application/json");
    assert_eq!(calls[1]["Body"], r#"{"instances": [[1, 2, 3]]}"#, "a JSON payload is sent JSON-encoded");
    assert_eq!((answers[2]["statusCode"].as_u64(), answers[3]["statusCode"].as_u64()), (Some(400), Some(400)));
    assert!(answers[2]["body"].as_str().unwrap().contains("content_type"), "{answers:#}");
    assert_eq!(calls.as_array().unwrap().len(), 2, "nothing sent for a bad body");
}

/// The aws target knows its own stacks by their description (a stack of the solution's with the
/// same name is refused, docs/MIGRATION.md): every template's starts the same way.
#[test]
fn every_template_describes_itself_as_ours() {
    for name in template_names() {
        let doc = &parse_template(name).doc;
        let description = doc["Description"].as_str().unwrap_or_else(|| panic!("{name} has no Description"));
        assert!(description.starts_with("mlops-orchestrator: "), "{name}: {description}");
    }
}

/// Every Autopilot step that can fail tells the topic, the documentation job included.
#[test]
fn every_failing_autopilot_step_is_notified() {
    let doc = &parse_template("autopilot_training_pipeline.yaml").doc;
    let rule = &doc["Resources"]["ProcessingJobsFailedNotification"]["Properties"]["EventPattern"]["detail"];
    let prefixes: Vec<String> = rule["ProcessingJobName"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| match &p["prefix"] {
            Value::Tagged(t) => scalar(&t.value),
            other => scalar(other),
        })
        .collect();
    for step in ["-dp", "-pr", "-documentation"] {
        assert!(prefixes.iter().any(|p| p == &format!("${{JobName}}{step}")), "{step}: {prefixes:?}");
    }
    let statuses: Vec<String> = rule["ProcessingJobStatus"].as_sequence().unwrap().iter().map(scalar).collect();
    assert_eq!(statuses, ["Failed", "Stopped"]);
}

/// A registry model's role may do what the solution's may (its `model_registry_policy_document`):
/// the five actions on the package group and its versions, only when a package is deployed.
#[test]
fn a_registry_models_role_gets_the_solutions_registry_actions() {
    for name in ["byom_realtime_inference_pipeline.yaml", "byom_batch_pipeline.yaml"] {
        let doc = &parse_template(name).doc;
        let statements = &doc["Resources"]["SageMakerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
        let conditional = statements
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|s| match s {
                Value::Tagged(t) if t.tag == "!If" => Some(&t.value),
                _ => None,
            })
            .find(|v| v[1]["Sid"] == "UseModelRegistry")
            .unwrap_or_else(|| panic!("{name}: no UseModelRegistry statement"));
        assert_eq!(scalar(&conditional[0]), "ModelRegistryProvided", "{name}");
        let actions: Vec<String> = conditional[1]["Action"].as_sequence().unwrap().iter().map(scalar).collect();
        assert_eq!(
            actions,
            [
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:DescribeModelPackage",
                "sagemaker:ListModelPackages",
                "sagemaker:UpdateModelPackage",
                "sagemaker:CreateModel"
            ],
            "{name}"
        );
        let resources = format!("{:?}", conditional[1]["Resource"]);
        assert!(resources.contains("model-package-group/${ModelPackageGroupName}"), "{name}: {resources}");
        assert!(resources.contains("model-package/${ModelPackageGroupName}/*"), "{name}: {resources}");
    }
}

/// With our analyzer the model-quality job definition hands `mlops analyze` what the prebuilt
/// analyzer takes from the definition and SageMaker's merge job: the problem, the attributes and
/// where the ground truth is (read from S3 by the container, docs/MONITORING.md).
#[test]
fn our_model_quality_analyzer_gets_its_environment_from_the_job_definition() {
    use crate::support::aws::template::{Ctx, parse};
    let text = templates::template("byom_model_quality_monitor.yaml").unwrap();
    let doc = parse(text).unwrap();
    let ours = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-orchestrator:1.0";
    let app = |ctx: &AwsContext| {
        let stages = planned(PipelineType::ByomModelQualityMonitor, Variant::Single).unwrap();
        let given: std::collections::HashMap<String, String> =
            stack_parameters(PipelineType::ByomModelQualityMonitor, &stages[0].1, ctx).unwrap().into_iter().collect();
        let resolver = Ctx::new(&doc, &given, "mq", "mq-id", "123456789012", "us-east-1", Default::default());
        let definition = &doc["Resources"]["ModelQualityJobDefinition"]["Properties"];
        (resolver.resolve(definition).unwrap()["ModelQualityAppSpecification"].clone(), given)
    };
    let (spec, given) = app(&AwsContext { monitor_image_uri: Some(ours.into()), ..context(false) });
    assert_eq!(spec["ImageUri"], ours);
    assert_eq!(spec["ContainerArguments"], serde_json::json!(["analyze"]));
    let env = &spec["Environment"];
    assert_eq!(env["analysis_type"], "MODEL_QUALITY");
    assert_eq!(env["problem_type"], given["ProblemType"].as_str());
    assert_eq!(env["ground_truth_source"], format!("s3://{}", given["MonitorGroundTruthInput"]));
    assert_eq!(env["probability_attribute"], given["MonitorProbabilityAttribute"].as_str());
    assert_eq!(env["probability_threshold_attribute"], given["ProbabilityThresholdAttribute"].as_str());
    assert!(!given["MonitorInferenceAttribute"].is_empty() || env.get("inference_attribute").is_none());

    let (spec, _) = app(&context(false));
    assert!(spec["ImageUri"].as_str().unwrap().ends_with("/sagemaker-model-monitor-analyzer"));
    assert!(spec.get("Environment").is_none() && spec.get("ContainerArguments").is_none(), "{spec:#}");
}
