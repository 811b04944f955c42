//! Model cards: the solution's six `*_model_card` operations on `/provisionpipeline` (reference
//! §3.12) read into one typed request, and the card's content in SageMaker's model-card JSON
//! schema built from the solution's fields — the same content for both targets, checked against
//! `docs/schemas/model-card.schema.json` before any target sees it.
//!
//! The solution keeps only its listed keys of each section and drops the rest; so do we. Keys
//! whose value is `null` are left out, as the SageMaker SDK leaves out `None`.

use super::{FieldError, FieldErrorCode, RequestErrors};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

/// The six `pipeline_type` values that are model-card operations.
pub const OPERATIONS: [&str; 6] = [
    "create_model_card",
    "update_model_card",
    "describe_model_card",
    "delete_model_card",
    "export_model_card",
    "list_model_cards",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCardOp {
    Create,
    Update,
    Describe,
    Delete,
    Export,
    List,
}

impl ModelCardOp {
    /// The operation a `pipeline_type` names, if it names one.
    pub fn from_pipeline_type(value: &Value) -> Option<Self> {
        Some(match value.as_str()? {
            "create_model_card" => Self::Create,
            "update_model_card" => Self::Update,
            "describe_model_card" => Self::Describe,
            "delete_model_card" => Self::Delete,
            "export_model_card" => Self::Export,
            "list_model_cards" => Self::List,
            _ => return None,
        })
    }
}

/// SageMaker's `ModelCardStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardStatus {
    Draft,
    PendingReview,
    Approved,
    Archived,
}

impl CardStatus {
    pub const ALL: [CardStatus; 4] = [Self::Draft, Self::PendingReview, Self::Approved, Self::Archived];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "Draft",
            Self::PendingReview => "PendingReview",
            Self::Approved => "Approved",
            Self::Archived => "Archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Where a card's evaluation metrics come from when `metric_file_s3_url` is given: the file is
/// read by the target, parsed by [`metric_groups_from_file`] and put in place of the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFile {
    /// The entry's index in `evaluation_details`.
    pub index: usize,
    pub name: String,
    /// `s3://bucket/key` split.
    pub bucket: String,
    pub key: String,
    pub metric_type: MetricFileType,
}

/// The solution's `metric_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricFileType {
    ModelCardMetricSchema,
    ClarifyBias,
    ClarifyExplainability,
    Regression,
    BinaryClassification,
    MulticlassClassification,
}

impl MetricFileType {
    const NAMES: [(&'static str, MetricFileType); 6] = [
        ("model_card_metric_schema", Self::ModelCardMetricSchema),
        ("clarify_bias", Self::ClarifyBias),
        ("clarify_explainability", Self::ClarifyExplainability),
        ("regression", Self::Regression),
        ("binary_classification", Self::BinaryClassification),
        ("multiclass_classification", Self::MulticlassClassification),
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(name, _)| *name == s).map(|(_, t)| *t)
    }
}

/// A model-card request, read from the solution's body.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCardRequest {
    pub op: ModelCardOp,
    /// Every operation but `list_model_cards` names its card.
    pub name: String,
    /// `None` when not given: create uses `Draft` (the solution's default), update keeps the
    /// card's current status.
    pub status: Option<CardStatus>,
    /// The sections given (create/update), in the schema's shape, before auto-fill.
    pub content: Map<String, Value>,
    /// `model_overview.model_name`: the overview is filled from that model's records.
    pub overview_model: Option<String>,
    /// `training_details.training_job_name`: the training details are filled from that job.
    pub training_job: Option<String>,
    pub metric_files: Vec<MetricFile>,
    /// Export: the job's name (else one is made up) and the version (else the latest).
    pub export_job_name: Option<String>,
    pub version: Option<i64>,
}

/// What a card's content must look like (`docs/schemas/model-card.schema.json`).
static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(include_str!("../../docs/schemas/model-card.schema.json"))
        .expect("the model card schema is JSON");
    jsonschema::validator_for(&schema).expect("the model card schema compiles")
});

/// SageMaker's pattern for model card names (and export job names).
pub fn valid_card_name(name: &str) -> bool {
    super::names::check_sagemaker_name(name, super::names::MAX_SAGEMAKER_NAME_LEN).is_ok()
}

const OVERVIEW_KEYS: [&str; 10] = [
    "model_id",
    "model_name",
    "model_description",
    "model_version",
    "problem_type",
    "algorithm_type",
    "model_creator",
    "model_owner",
    "model_artifact",
    "inference_environment",
];
const INTENDED_USES_KEYS: [&str; 5] = [
    "purpose_of_model",
    "intended_uses",
    "factors_affecting_model_efficiency",
    "risk_rating",
    "explanations_for_risk_rating",
];
const EVALUATION_KEYS: [&str; 6] =
    ["name", "evaluation_observation", "evaluation_job_arn", "datasets", "metadata", "metric_groups"];
const ADDITIONAL_KEYS: [&str; 3] = ["ethical_considerations", "caveats_and_recommendations", "custom_details"];
const JOB_DETAIL_KEYS: [&str; 5] =
    ["training_arn", "training_datasets", "training_environment", "training_metrics", "user_provided_training_metrics"];

struct Reader {
    errors: Vec<FieldError>,
}

impl Reader {
    fn fail(&mut self, pointer: &str, code: FieldErrorCode, message: String) {
        self.errors.push(FieldError::new(pointer, code, message));
    }

    /// The object at `pointer`, or `None` when absent/null (an error when not an object).
    fn object<'a>(&mut self, value: Option<&'a Value>, pointer: &str) -> Option<&'a Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                let key = pointer.rsplit('/').next().unwrap_or(pointer);
                self.fail(pointer, FieldErrorCode::InvalidType, format!("`{key}` must be an object"));
                None
            }
        }
    }

    fn string(&mut self, value: Option<&Value>, pointer: &str, what: &str) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                self.fail(pointer, FieldErrorCode::InvalidType, format!("`{what}` must be a string"));
                None
            }
        }
    }

    /// A list of strings given as a list (or, as the SDK also takes it, as one string).
    fn images(&mut self, value: &Value, pointer: &str, what: &str) -> Option<Value> {
        match value {
            Value::String(s) => Some(json!({ "container_image": [s] })),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(json!({ "container_image": items })),
            _ => {
                self.fail(pointer, FieldErrorCode::InvalidType, format!("`{what}` must be a list of image URIs"));
                None
            }
        }
    }
}

/// The keys of `section` the solution keeps, without nulls.
fn kept(section: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    section
        .iter()
        .filter(|(k, v)| keys.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads a model-card body. `body["pipeline_type"]` has already named a model-card operation.
pub fn parse_model_card_request(op: ModelCardOp, body: &Value) -> Result<ModelCardRequest, RequestErrors> {
    let mut r = Reader { errors: Vec::new() };
    let name = if op == ModelCardOp::List {
        String::new()
    } else {
        match r.string(body.get("name"), "/name", "name") {
            Some(name) if valid_card_name(&name) => name,
            Some(name) => {
                r.fail(
                    "/name",
                    FieldErrorCode::InvalidValue,
                    format!("`name`: `{name}` is not a model card name: 1-63 letters, digits and hyphens, a letter or digit at each end"),
                );
                name
            }
            None => {
                r.fail("/name", FieldErrorCode::Required, "`name` is required, e.g. `churn-model-card`".to_string());
                String::new()
            }
        }
    };
    let mut request = ModelCardRequest {
        op,
        name,
        status: None,
        content: Map::new(),
        overview_model: None,
        training_job: None,
        metric_files: Vec::new(),
        export_job_name: None,
        version: None,
    };
    match op {
        ModelCardOp::Create | ModelCardOp::Update => read_content(&mut r, body, &mut request),
        ModelCardOp::Export => {
            request.export_job_name = r.string(body.get("export_job_name"), "/export_job_name", "export_job_name");
            if let Some(job) = &request.export_job_name
                && !valid_card_name(job)
            {
                r.fail(
                    "/export_job_name",
                    FieldErrorCode::InvalidValue,
                    format!("`export_job_name`: `{job}` is not a job name: 1-63 letters, digits and hyphens"),
                );
            }
            request.version = read_version(&mut r, body.get("model_card_version"));
        }
        ModelCardOp::Describe | ModelCardOp::Delete | ModelCardOp::List => {}
    }
    if r.errors.is_empty() { Ok(request) } else { Err(RequestErrors(r.errors)) }
}

/// `model_card_version`: a whole number ≥ 1, given as a number or (as the solution's `int()`
/// takes it) a string.
fn read_version(r: &mut Reader, value: Option<&Value>) -> Option<i64> {
    let parsed = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.trim().is_empty() => return None,
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match parsed {
        Some(v) if v >= 1 => Some(v),
        _ => {
            r.fail(
                "/model_card_version",
                FieldErrorCode::InvalidValue,
                "`model_card_version` must be a whole number ≥ 1".into(),
            );
            None
        }
    }
}

fn read_content(r: &mut Reader, body: &Value, request: &mut ModelCardRequest) {
    if let Some(status) = r.string(body.get("status"), "/status", "status") {
        match CardStatus::parse(&status) {
            Some(s) => request.status = Some(s),
            None => r.fail(
                "/status",
                FieldErrorCode::InvalidValue,
                format!("`status`: `{status}` is not one of `Draft`, `PendingReview`, `Approved`, `Archived`"),
            ),
        }
    }
    let content = &mut request.content;

    if let Some(section) = r.object(body.get("model_overview"), "/model_overview") {
        let mut overview = kept(section, &OVERVIEW_KEYS);
        if let Some(env) = overview.remove("inference_environment")
            && let Some(env) = r.images(&env, "/model_overview/inference_environment", "inference_environment")
        {
            overview.insert("inference_environment".into(), env);
        }
        if let Some(model) = overview.get("model_name") {
            request.overview_model = r.string(Some(model), "/model_overview/model_name", "model_name");
        }
        content.insert("model_overview".into(), Value::Object(overview));
    }

    if let Some(section) = r.object(body.get("intended_uses"), "/intended_uses") {
        let mut uses = kept(section, &INTENDED_USES_KEYS);
        // The SDK's default when the section is given without one.
        uses.entry("risk_rating").or_insert_with(|| json!("Unknown"));
        content.insert("intended_uses".into(), Value::Object(uses));
    }

    if let Some(section) = r.object(body.get("training_details"), "/training_details") {
        let mut training = Map::new();
        if let Some(model) = r.string(section.get("model_name"), "/training_details/model_name", "model_name") {
            // Finding a model's training job needs SageMaker's lineage search; say so plainly.
            r.fail(
                "/training_details/model_name",
                FieldErrorCode::InvalidValue,
                format!("`training_details.model_name` ({model}): give the model's `training_job_name` instead; training details are discovered from the training job"),
            );
        }
        request.training_job =
            r.string(section.get("training_job_name"), "/training_details/training_job_name", "training_job_name");
        if let Some(objective) = r.object(section.get("objective_function"), "/training_details/objective_function") {
            let function = kept(objective, &["function", "facet", "condition"]);
            let mut out = Map::new();
            if !function.is_empty() {
                out.insert("function".into(), Value::Object(function));
            }
            if let Some(notes) = objective.get("notes").filter(|v| !v.is_null()) {
                out.insert("notes".into(), notes.clone());
            }
            training.insert("objective_function".into(), Value::Object(out));
        }
        if let Some(obs) = section.get("training_observations").filter(|v| !v.is_null()) {
            training.insert("training_observations".into(), obs.clone());
        }
        if let Some(details) = r.object(section.get("training_job_details"), "/training_details/training_job_details") {
            let mut details = kept(details, &JOB_DETAIL_KEYS);
            if let Some(env) = details.remove("training_environment")
                && let Some(env) = r.images(
                    &env,
                    "/training_details/training_job_details/training_environment",
                    "training_environment",
                )
            {
                details.insert("training_environment".into(), env);
            }
            training.insert("training_job_details".into(), Value::Object(details));
        }
        content.insert("training_details".into(), Value::Object(training));
    }

    match body.get("evaluation_details") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            let mut out = Vec::new();
            for (index, entry) in entries.iter().enumerate() {
                let pointer = format!("/evaluation_details/{index}");
                let Some(entry) = entry.as_object() else {
                    r.fail(
                        &pointer,
                        FieldErrorCode::InvalidType,
                        "each `evaluation_details` entry must be an object".into(),
                    );
                    continue;
                };
                let url = r.string(
                    entry.get("metric_file_s3_url"),
                    &format!("{pointer}/metric_file_s3_url"),
                    "metric_file_s3_url",
                );
                if let Some(url) = url.filter(|u| !u.is_empty()) {
                    read_metric_file(r, entry, index, &url, &mut request.metric_files);
                    // The file's metric groups replace the entry; the solution keeps only its name.
                    out.push(json!({ "name": entry.get("name").cloned().unwrap_or(Value::Null) }));
                } else {
                    out.push(Value::Object(kept(entry, &EVALUATION_KEYS)));
                }
            }
            request.content.insert("evaluation_details".into(), Value::Array(out));
        }
        Some(_) => {
            r.fail("/evaluation_details", FieldErrorCode::InvalidType, "`evaluation_details` must be a list".into())
        }
    }

    if let Some(section) = r.object(body.get("additional_information"), "/additional_information") {
        request.content.insert("additional_information".into(), Value::Object(kept(section, &ADDITIONAL_KEYS)));
    }
}

fn read_metric_file(r: &mut Reader, entry: &Map<String, Value>, index: usize, url: &str, out: &mut Vec<MetricFile>) {
    let pointer = format!("/evaluation_details/{index}");
    let metric_type = match entry.get("metric_type").and_then(Value::as_str) {
        Some(t) => match MetricFileType::parse(t) {
            Some(t) => Some(t),
            None => {
                r.fail(
                    &format!("{pointer}/metric_type"),
                    FieldErrorCode::InvalidValue,
                    "metric_type must be one of model_card_metric_schema|clarify_bias|clarify_explainability|regression|binary_classification|multiclass_classification".into(),
                );
                None
            }
        },
        None => {
            r.fail(
                &format!("{pointer}/metric_type"),
                FieldErrorCode::Required,
                "metric_type type is required if evaluation metrics are to be loaded from s3 url".into(),
            );
            None
        }
    };
    let split =
        url.strip_prefix("s3://").and_then(|rest| rest.split_once('/')).filter(|(b, k)| !b.is_empty() && !k.is_empty());
    let Some((bucket, key)) = split else {
        r.fail(
            &format!("{pointer}/metric_file_s3_url"),
            FieldErrorCode::InvalidValue,
            format!("`metric_file_s3_url`: `{url}` is not an s3://bucket/key URL"),
        );
        return;
    };
    let name = entry.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(metric_type) = metric_type {
        out.push(MetricFile { index, name, bucket: bucket.to_string(), key: key.to_string(), metric_type });
    }
}

/// Checks a card's content against the schema; each problem names the request field it came
/// from (the content keeps the request's layout but for the environments' `container_image`
/// and the objective function's inner `function` object).
pub fn check_content(content: &Map<String, Value>) -> Result<(), RequestErrors> {
    let instance = Value::Object(content.clone());
    let errors: Vec<FieldError> = SCHEMA
        .iter_errors(&instance)
        .map(|e| {
            let pointer = request_pointer(&e.instance_path().to_string());
            let field = pointer.rsplit('/').find(|t| t.parse::<usize>().is_err()).unwrap_or("content").to_string();
            // Masked: the message names the rule, not the (possibly huge) value.
            FieldError::new(pointer, FieldErrorCode::InvalidValue, format!("`{field}`: {}", e.masked_with("the value")))
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(RequestErrors(errors)) }
}

fn request_pointer(content_pointer: &str) -> String {
    content_pointer
        .replace("/inference_environment/container_image", "/inference_environment")
        .replace("/training_environment/container_image", "/training_environment")
        .replace("/objective_function/function/", "/objective_function/")
}

/// The solution's update: each section given replaces the card's section; the others stay.
pub fn merged(current: &Map<String, Value>, given: &Map<String, Value>) -> Map<String, Value> {
    let mut out = current.clone();
    for (key, value) in given {
        out.insert(key.clone(), value.clone());
    }
    out
}

/// A metric file's metric groups, as the SageMaker SDK parses each `metric_type` (a
/// `model_card_metric_schema` file already holds them; Model Monitor's model-quality
/// statistics and Clarify's analysis files are turned into number metrics).
pub fn metric_groups_from_file(kind: MetricFileType, file: &Value) -> Result<Vec<Value>, String> {
    match kind {
        MetricFileType::ModelCardMetricSchema => match file.get("metric_groups") {
            Some(Value::Array(groups)) => Ok(groups.clone()),
            Some(_) => Err("`metric_groups` must be a list: {\"metric_groups\": [...]} is expected".into()),
            None => Err("the file has no `metric_groups`".into()),
        },
        MetricFileType::Regression => model_quality_groups(file, &["regression_metrics"]),
        MetricFileType::BinaryClassification | MetricFileType::MulticlassClassification => {
            model_quality_groups(file, &["binary_classification_metrics", "multiclass_classification_metrics"])
        }
        MetricFileType::ClarifyBias => clarify_bias_groups(file),
        MetricFileType::ClarifyExplainability => clarify_explainability_groups(file),
    }
}

/// Model Monitor's model-quality `statistics.json`: each `{value, standard_deviation}` metric
/// becomes a number (and its standard deviation a second one); a confusion matrix a matrix.
fn model_quality_groups(file: &Value, groups: &[&str]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for group in groups {
        let Some(metrics) = file.get(*group).and_then(Value::as_object) else { continue };
        let mut data = Vec::new();
        for (name, metric) in metrics {
            if name == "confusion_matrix" {
                if let Some(matrix) = confusion_matrix(metric) {
                    data.push(json!({"name": name, "type": "matrix", "value": matrix}));
                }
                continue;
            }
            let Some(value) = metric.get("value").filter(|v| v.is_number()) else { continue };
            data.push(json!({"name": name, "type": "number", "value": value}));
            if let Some(sd) = metric.get("standard_deviation").filter(|v| v.is_number()) {
                data.push(json!({"name": format!("{name} - standard_deviation"), "type": "number", "value": sd}));
            }
        }
        out.push(json!({"name": group, "metric_data": data}));
    }
    if out.is_empty() {
        return Err(format!("the file has none of {}", groups.join(", ")));
    }
    Ok(out)
}

/// `{"0": {"0": n, "1": m}, …}` as rows in label order.
fn confusion_matrix(metric: &Value) -> Option<Vec<Vec<Value>>> {
    let rows = metric.as_object()?;
    let labels: Vec<&String> = rows.keys().collect();
    labels
        .iter()
        .map(|row| {
            let cells = rows.get(*row)?.as_object()?;
            Some(labels.iter().map(|col| cells.get(*col).cloned().unwrap_or(json!(0))).collect())
        })
        .collect()
}

/// Clarify's bias `analysis.json`: per metric group and facet value, the non-null metrics.
fn clarify_bias_groups(file: &Value) -> Result<Vec<Value>, String> {
    let root = file.as_object().ok_or("the file is not a JSON object")?;
    let mut out = Vec::new();
    for (group, section) in root {
        let Some(section) = section.as_object() else { continue };
        let facets = section.get("facets").and_then(Value::as_object).ok_or(format!("`{group}` has no facets"))?;
        let label = section.get("label").map(plain).unwrap_or_default();
        let threshold = section.get("label_value_or_threshold").map(plain).unwrap_or_default();
        for (facet, values) in facets {
            for value in values.as_array().into_iter().flatten() {
                let data: Vec<Value> = value
                    .get("metrics")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|m| m.get("value").is_some_and(Value::is_number))
                    .map(|m| json!({"name": m["name"], "type": "number", "value": m["value"]}))
                    .collect();
                let at = value.get("value_or_threshold").map(plain).unwrap_or_default();
                out.push(json!({
                    "name": format!("{group} - label {label} = {threshold} and facet {facet}={at}"),
                    "metric_data": data,
                }));
            }
        }
    }
    Ok(out)
}

/// Clarify's explainability `analysis.json`: each label's global SHAP values.
fn clarify_explainability_groups(file: &Value) -> Result<Vec<Value>, String> {
    let explanations = file.get("explanations").and_then(Value::as_object).ok_or("the file has no `explanations`")?;
    let mut out = Vec::new();
    for (label, explain) in explanations.get("kernel_shap").and_then(Value::as_object).into_iter().flatten() {
        let Some(values) = explain.get("global_shap_values").and_then(Value::as_object) else { continue };
        let data: Vec<Value> = values
            .iter()
            .filter(|(_, v)| v.is_number())
            .map(|(k, v)| json!({"name": k, "type": "number", "value": v}))
            .collect();
        out.push(json!({"name": format!("explanations - global_shap_values, label={label}"), "metric_data": data}));
    }
    Ok(out)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value) -> Result<ModelCardRequest, RequestErrors> {
        parse_model_card_request(ModelCardOp::Create, &body)
    }

    #[test]
    fn reads_the_solution_fields_into_schema_content() {
        let request = create(json!({
            "pipeline_type": "create_model_card",
            "name": "churn-card",
            "status": "PendingReview",
            "model_overview": {"model_description": "churn", "model_version": 2, "inference_environment": ["img:1"], "junk": 1},
            "intended_uses": {"purpose_of_model": "churn"},
            "training_details": {"objective_function": {"function": "Maximize", "facet": "AUC", "notes": "n"},
                                 "training_job_details": {"training_arn": "arn", "training_environment": ["train:1"],
                                                          "training_metrics": [{"name": "auc", "value": 0.9}]}},
            "evaluation_details": [{"name": "eval", "metric_groups": [{"name": "g", "metric_data": [{"name": "m", "type": "number", "value": 1}]}]}],
            "additional_information": {"custom_details": {"department": "marketing"}, "other": "dropped"},
        }))
        .unwrap();
        assert_eq!(request.name, "churn-card");
        assert_eq!(request.status, Some(CardStatus::PendingReview));
        let content = Value::Object(request.content.clone());
        assert_eq!(
            content["model_overview"],
            json!({"model_description": "churn", "model_version": 2, "inference_environment": {"container_image": ["img:1"]}})
        );
        assert_eq!(content["intended_uses"]["risk_rating"], "Unknown");
        assert_eq!(
            content["training_details"]["objective_function"],
            json!({"function": {"function": "Maximize", "facet": "AUC"}, "notes": "n"})
        );
        assert_eq!(
            content["training_details"]["training_job_details"]["training_environment"],
            json!({"container_image": ["train:1"]})
        );
        assert_eq!(content["additional_information"], json!({"custom_details": {"department": "marketing"}}));
        check_content(&request.content).unwrap();
    }

    #[test]
    fn bad_values_name_the_request_field() {
        let request = create(json!({
            "name": "card",
            "intended_uses": {"risk_rating": "Extreme"},
            "training_details": {"objective_function": {"facet": "F1"}},
            "model_overview": {"inference_environment": [3]},
        }));
        let errors = request.unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/model_overview/inference_environment");

        let request = create(json!({"name": "card", "intended_uses": {"risk_rating": "Extreme"},
                                    "training_details": {"objective_function": {"facet": "F1"}}}))
        .unwrap();
        let errors = check_content(&request.content).unwrap_err().0;
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/intended_uses/risk_rating", "/training_details/objective_function/facet"]);
        assert!(errors[0].message.starts_with("`risk_rating`"), "{}", errors[0].message);

        // A value over a limit is named by its rule, not echoed back.
        let long = "x".repeat(5000);
        let request = create(json!({"name": "card", "intended_uses": {"purpose_of_model": long}})).unwrap();
        let errors = check_content(&request.content).unwrap_err().0;
        assert_eq!(errors[0].pointer, "/intended_uses/purpose_of_model");
        assert!(errors[0].message.len() < 200 && errors[0].message.contains("2048"), "{}", errors[0].message);
    }

    #[test]
    fn names_statuses_and_versions() {
        for bad in [json!({}), json!({"name": "-card"}), json!({"name": "a_b"}), json!({"name": 3})] {
            let errors = parse_model_card_request(ModelCardOp::Describe, &bad).unwrap_err().0;
            assert_eq!(errors[0].pointer, "/name", "{bad}");
        }
        assert!(parse_model_card_request(ModelCardOp::List, &json!({})).is_ok());
        let errors = create(json!({"name": "c", "status": "Done"})).unwrap_err().0;
        assert_eq!(errors[0].pointer, "/status");
        let export =
            parse_model_card_request(ModelCardOp::Export, &json!({"name": "c", "model_card_version": "2"})).unwrap();
        assert_eq!(export.version, Some(2));
        let errors = parse_model_card_request(ModelCardOp::Export, &json!({"name": "c", "model_card_version": 0}))
            .unwrap_err()
            .0;
        assert_eq!(errors[0].pointer, "/model_card_version");
        assert_eq!(ModelCardOp::from_pipeline_type(&json!("export_model_cards")), None);
        assert_eq!(ModelCardOp::from_pipeline_type(&json!("list_model_cards")), Some(ModelCardOp::List));
    }

    #[test]
    fn metric_files_need_a_type_and_an_s3_url() {
        let errors = create(json!({"name": "c", "evaluation_details": [
            {"name": "e", "metric_file_s3_url": "s3://b/k.json"},
            {"name": "e", "metric_file_s3_url": "b/k.json", "metric_type": "regression"},
            {"name": "e", "metric_file_s3_url": "s3://b/k.json", "metric_type": "nope"},
        ]}))
        .unwrap_err()
        .0;
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/evaluation_details/0/metric_type",
                "/evaluation_details/1/metric_file_s3_url",
                "/evaluation_details/2/metric_type"
            ]
        );
        let ok = create(json!({"name": "c", "evaluation_details": [
            {"name": "e", "metric_file_s3_url": "s3://bucket/eval/statistics.json", "metric_type": "regression"}]}))
        .unwrap();
        assert_eq!(ok.metric_files[0].bucket, "bucket");
        assert_eq!(ok.metric_files[0].key, "eval/statistics.json");
    }

    #[test]
    fn model_quality_statistics_become_number_metrics() {
        let file = json!({"version": 0.0, "dataset": {"item_count": 4},
            "binary_classification_metrics": {
                "accuracy": {"value": 0.75, "standard_deviation": 0.01},
                "confusion_matrix": {"0": {"0": 1, "1": 0}, "1": {"0": 1, "1": 2}}}});
        let groups = metric_groups_from_file(MetricFileType::BinaryClassification, &file).unwrap();
        assert_eq!(
            groups,
            [json!({"name": "binary_classification_metrics", "metric_data": [
            {"name": "accuracy", "type": "number", "value": 0.75},
            {"name": "accuracy - standard_deviation", "type": "number", "value": 0.01},
            {"name": "confusion_matrix", "type": "matrix", "value": [[1, 0], [1, 2]]}]})]
        );
        assert!(metric_groups_from_file(MetricFileType::Regression, &file).is_err());
    }

    #[test]
    fn updates_replace_whole_sections() {
        let current = json!({"intended_uses": {"purpose_of_model": "a"}, "model_overview": {"model_description": "d"}});
        let given = json!({"intended_uses": {"intended_uses": "b"}});
        let merged = merged(current.as_object().unwrap(), given.as_object().unwrap());
        assert_eq!(
            Value::Object(merged),
            json!({"intended_uses": {"intended_uses": "b"}, "model_overview": {"model_description": "d"}})
        );
    }
}
