//! Reads a request body field by field. Every problem is recorded and reading goes on, so one
//! response lists every bad field. A reader returns `None` only after recording why.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::errors::{FieldError, FieldErrorCode, RequestErrors, escape};
use super::scalars::{Invalid, closest, quoted};
use super::{RequestContext, ValidatedRequest};
use crate::domain::per_stage::PerStage;
use crate::domain::pipeline_type::PipelineType;
use crate::domain::spec::PipelineSpec;

/// Fields that may hold one value per environment (reference §3.1, from the solution's code).
pub(super) const PER_STAGE_KEYS: [&str; 14] = [
    "kms_key_arn",
    "inference_instance",
    "data_capture_location",
    "endpoint_name",
    "batch_inference_data",
    "batch_job_output_location",
    "baseline_job_output_location",
    "instance_type",
    "instance_volume_size",
    "baseline_max_runtime_seconds",
    "monitor_max_runtime_seconds",
    "monitoring_output_location",
    "schedule_expression",
    "monitor_ground_truth_input",
];

/// Every key some pipeline type reads, with what it expects; used in "is required" messages and
/// to tell "not used by this type" from "unknown" when warning about ignored keys.
pub(super) const KEYS: &[(&str, &str)] = &[
    ("pipeline_type", "the pipeline type"),
    ("model_name", "a name for the model (letters, digits and hyphens)"),
    ("inference_instance", "a SageMaker instance type such as `ml.m5.large`"),
    ("data_capture_location", "`bucket/prefix` where the endpoint captures requests and responses"),
    ("model_framework", "the SageMaker built-in algorithm, e.g. `xgboost`"),
    ("model_framework_version", "the algorithm version, e.g. `1.2-2`"),
    ("model_artifact_location", "the key of the model's `model.tar.gz` in the assets bucket"),
    ("custom_image_uri", "the URI of the model's container image"),
    ("model_package_name", "the ARN of a model package version (the model registry is enabled on this server)"),
    ("endpoint_name", "the name of the endpoint"),
    ("kms_key_arn", "a KMS key ARN"),
    ("batch_inference_data", "`bucket/key` of the input data"),
    ("batch_job_output_location", "`bucket/prefix` for the transform output"),
    ("baseline_data", "the key of the baseline CSV (with a header row) in the assets bucket"),
    ("baseline_job_output_location", "`bucket/prefix` for the baseline job's output"),
    ("monitoring_output_location", "`bucket/prefix` for the monitoring reports"),
    ("schedule_expression", "a schedule such as `cron(0 * ? * * *)`"),
    ("monitor_max_runtime_seconds", "the monitoring job's time limit in seconds (1-86400)"),
    ("instance_type", "a SageMaker instance type such as `ml.m5.large`"),
    ("instance_volume_size", "the job's volume size in GB"),
    ("baseline_max_runtime_seconds", "the baseline job's time limit in seconds"),
    ("problem_type", "`Regression`, `BinaryClassification` or `MulticlassClassification`"),
    ("baseline_inference_attribute", "the baseline CSV column holding the model's prediction"),
    ("baseline_ground_truth_attribute", "the baseline CSV column holding the true label"),
    ("baseline_probability_attribute", "the baseline CSV column holding the predicted probability"),
    ("monitor_inference_attribute", "where the prediction is in the endpoint's output (index or JSONPath)"),
    ("monitor_probability_attribute", "where the probability is in the endpoint's output"),
    ("probability_threshold_attribute", "the probability threshold, between 0 and 1"),
    ("monitor_ground_truth_input", "`bucket/prefix` of the merged ground-truth labels"),
    ("bias_config", "a `BiasConfig` object with `label_values_or_threshold` and `facet_name`"),
    ("model_predicted_label_config", "a `ModelPredictedLabelConfig` object, e.g. `{\"probability\": 0}`"),
    ("features_attribute", "where the features are in the endpoint's input"),
    ("shap_config", "a `SHAPConfig` object, e.g. `{\"baseline\": \"baselines/shap.csv\", \"num_samples\": 100}`"),
    ("model_scores", "the index or JSONPath of the model output to explain"),
    ("custom_algorithm_docker", "the key of a zip with a `Dockerfile` in the assets bucket"),
    ("ecr_repo_name", "the ECR repository to push the image to"),
    ("image_tag", "the image tag (letters, digits and hyphens)"),
    ("training_data", "the key (or prefix) of the training data in the assets bucket"),
    ("validation_data", "the key (or prefix) of the validation data in the assets bucket"),
    ("job_output_location", "the prefix in the assets bucket for the job's output"),
    ("algo_hyperparamaters", "an object of the algorithm's hyperparameters (the key keeps the solution's spelling)"),
    ("tuner_configs", "a `HyperparameterTuner` object with at least `objective_metric_name`"),
    (
        "hyperparamaters_ranges",
        "an object of ranges such as `{\"eta\": [\"continuous\", [0.1, 0.5]]}` (the key keeps the solution's spelling)",
    ),
    ("job_name", "the job name"),
    ("instance_count", "the number of instances"),
    ("encrypt_inner_traffic", "`True` or `False`"),
    ("max_runtime_per_job", "the time limit per training job in seconds"),
    ("use_spot_instances", "`True` or `False`"),
    ("max_wait_time_spot_instances", "the time limit including waits for spot capacity, in seconds"),
    ("content_type", "the training data's content type, e.g. `csv`"),
    ("s3_data_type", "`S3Prefix`, `ManifestFile` or `AugmentedManifestFile`"),
    ("data_distribution", "`FullyReplicated` or `ShardedByS3Key`"),
    ("compression_type", "`Gzip` or empty"),
    ("data_input_mode", "`File`, `Pipe` or `FastFile`"),
    ("data_record_wrapping", "`RecordIO` or empty"),
    ("attribute_names", "a list of attribute names"),
    ("target_attribute", "the training-data column to predict"),
    ("job_objective", "the objective metric"),
    ("job_max_candidates", "the maximum number of candidates"),
    ("total_max_runtime", "the Autopilot job's total time limit in seconds"),
    ("generate_definition_only", "`True` or `False`"),
];

/// Fields the solution treats as "not set" when they hold `""` (its templates test the
/// parameter against the empty string): accepted as absent, with a warning.
const EMPTY_MEANS_ABSENT: &[&str] = &[
    "endpoint_name",
    "baseline_inference_attribute",
    "baseline_ground_truth_attribute",
    "baseline_probability_attribute",
    "monitor_inference_attribute",
    "monitor_probability_attribute",
    "probability_threshold_attribute",
    "features_attribute",
    "model_scores",
    "model_predicted_label_config",
];

/// Problems inside one field's value, each at a path below the field.
#[derive(Debug, Default)]
pub(super) struct Issues(pub(super) Vec<(Vec<String>, Invalid)>);

impl From<Invalid> for Issues {
    fn from(invalid: Invalid) -> Self {
        Self(vec![(Vec::new(), invalid)])
    }
}

impl Issues {
    pub fn push(&mut self, path: &[&str], invalid: Invalid) {
        self.0.push((path.iter().map(|s| s.to_string()).collect(), invalid));
    }

    /// `value` if nothing was pushed.
    pub fn or_ok<T>(self, value: T) -> Result<T, Issues> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}

pub(super) struct Body<'a> {
    object: &'a Map<String, Value>,
    pub ctx: &'a RequestContext,
    pub pipeline_type: PipelineType,
    /// Keys a reader has asked for, present or not.
    asked: BTreeSet<&'static str>,
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl<'a> Body<'a> {
    pub fn new(object: &'a Map<String, Value>, ctx: &'a RequestContext, pipeline_type: PipelineType) -> Self {
        Self {
            object,
            ctx,
            pipeline_type,
            asked: BTreeSet::from(["pipeline_type"]),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The value of `key`; JSON `null` counts as absent, and so does `""` where the solution
    /// reads it so.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        let first_time = self.asked.insert(key);
        let value = self.object.get(key).filter(|v| !v.is_null())?;
        if value.as_str() == Some("") && EMPTY_MEANS_ABSENT.contains(&key) {
            if first_time {
                self.warnings.push(format!("`{key}` is \"\" and is treated as not set, as the solution does"));
            }
            return None;
        }
        Some(value)
    }

    pub fn required<T, E: Into<Issues>>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<T> {
        match self.get(key) {
            Some(value) => self.single(key, value, parse),
            None => {
                self.missing(key);
                None
            }
        }
    }

    /// `Some(None)` when absent; `None` when present but invalid.
    pub fn optional<T, E: Into<Issues>>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.get(key) {
            Some(value) => self.single(key, value, parse).map(Some),
            None => Some(None),
        }
    }

    pub fn required_if<T, E: Into<Issues>>(
        &mut self,
        required: bool,
        key: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<Option<T>> {
        if required { self.required(key, parse).map(Some) } else { self.optional(key, parse) }
    }

    fn single<T, E: Into<Issues>>(
        &mut self,
        key: &'static str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<T> {
        // Only types that deploy once read per-stage keys as single values.
        if value.is_object() && PER_STAGE_KEYS.contains(&key) {
            self.error(
                pointer(&[key]),
                FieldErrorCode::PerStageNotAllowed,
                format!(
                    "`{key}` takes a single value: {} pipelines deploy once, in the first environment",
                    self.pipeline_type
                ),
            );
            return None;
        }
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(issues) => {
                self.report(key, issues.into());
                None
            }
        }
    }

    pub fn per_stage_required<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&Value) -> Result<T, Invalid>,
    ) -> Option<PerStage<T>> {
        match self.get(key) {
            Some(value) => self.per_stage(key, value, parse),
            None => {
                self.missing(key);
                None
            }
        }
    }

    pub fn per_stage_optional<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&Value) -> Result<T, Invalid>,
    ) -> Option<Option<PerStage<T>>> {
        match self.get(key) {
            Some(value) => self.per_stage(key, value, parse).map(Some),
            None => Some(None),
        }
    }

    fn per_stage<T>(
        &mut self,
        key: &'static str,
        value: &Value,
        parse: impl Fn(&Value) -> Result<T, Invalid>,
    ) -> Option<PerStage<T>> {
        debug_assert!(self.pipeline_type.supports_per_stage());
        let Value::Object(per_environment) = value else {
            return match parse(value) {
                Ok(parsed) => Some(PerStage::All(parsed)),
                Err(invalid) => {
                    self.report(key, invalid.into());
                    None
                }
            };
        };
        let environments = &self.ctx.environments;
        if environments.len() < 2 {
            self.error(
                pointer(&[key]),
                FieldErrorCode::PerStageNotAllowed,
                format!(
                    "`{key}` takes a single value: this server deploys to one environment, so per-environment objects are not accepted"
                ),
            );
            return None;
        }
        let mut complete = true;
        let missing: Vec<&str> =
            environments.iter().filter(|e| !per_environment.contains_key(e.as_str())).map(String::as_str).collect();
        let unknown: Vec<&str> =
            per_environment.keys().filter(|k| !environments.contains(k)).map(String::as_str).collect();
        if !missing.is_empty() || !unknown.is_empty() {
            let mut message = format!(
                "`{key}` needs one value for each environment ({})",
                quoted(environments.iter().map(String::as_str))
            );
            if !missing.is_empty() {
                message += &format!("; missing: {}", quoted(missing));
            }
            if !unknown.is_empty() {
                message += &format!("; not configured: {}", quoted(unknown));
            }
            self.error(pointer(&[key]), FieldErrorCode::PerStageEnvironments, message);
            complete = false;
        }
        let mut values = BTreeMap::new();
        for environment in environments {
            let Some(value) = per_environment.get(environment) else {
                continue;
            };
            match parse(value) {
                Ok(parsed) => {
                    values.insert(environment.clone(), parsed);
                }
                Err(invalid) => {
                    self.errors.push(FieldError::new(
                        pointer(&[key, environment]),
                        invalid.code,
                        format!("`{key}` for environment `{environment}`: {}", invalid.message),
                    ));
                    complete = false;
                }
            }
        }
        complete.then_some(PerStage::Each(values))
    }

    /// Records that a required key is absent.
    pub fn missing(&mut self, key: &'static str) {
        let hint = KEYS.iter().find(|(k, _)| *k == key).map_or("", |(_, hint)| hint);
        self.error(
            pointer(&[key]),
            FieldErrorCode::Required,
            format!("`{key}` is required for {}: {hint}", self.pipeline_type),
        );
    }

    pub fn error(&mut self, pointer: String, code: FieldErrorCode, message: String) {
        self.errors.push(FieldError::new(pointer, code, message));
    }

    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Accepts `key` without using it, saying why.
    pub fn ignore(&mut self, key: &'static str, reason: &str) {
        if self.get(key).is_some() {
            self.warn(format!("`{key}` was ignored: {reason}"));
        }
    }

    fn report(&mut self, key: &str, issues: Issues) {
        for (path, invalid) in issues.0 {
            let mut tokens = vec![key];
            tokens.extend(path.iter().map(String::as_str));
            let label = tokens.join(".");
            let message = match invalid.code {
                FieldErrorCode::Required => format!("`{label}` {}", invalid.message),
                _ => format!("`{label}`: {}", invalid.message),
            };
            self.errors.push(FieldError::new(pointer(&tokens), invalid.code, message));
        }
    }

    /// Every key a reader asked for, present or not, and the bad fields found so far.
    pub fn into_keys_and_errors(self) -> (BTreeSet<&'static str>, Vec<FieldError>) {
        (self.asked, self.errors)
    }

    /// The result: the spec with warnings, or every error in the order the solution would
    /// report the first (problem type, then missing keys in its order, then the rest).
    pub fn finish(mut self, spec: Option<PipelineSpec>) -> Result<ValidatedRequest, RequestErrors> {
        self.warn_unread_keys();
        self.errors.sort_by_key(|e| match e.code {
            FieldErrorCode::UnsupportedProblemType => 0,
            FieldErrorCode::Required if e.pointer.matches('/').count() == 1 => 1,
            _ => 2,
        });
        match spec {
            Some(spec) if self.errors.is_empty() => Ok(ValidatedRequest { spec, warnings: self.warnings }),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a reader returned None without an error");
                Err(RequestErrors(self.errors))
            }
        }
    }

    /// Unknown keys are ignored, as the solution ignores them, but never silently.
    fn warn_unread_keys(&mut self) {
        let object = self.object;
        for key in object.keys() {
            if self.asked.contains(key.as_str()) {
                continue;
            }
            let warning = if KEYS.iter().any(|(k, _)| k == key) {
                format!("`{key}` is not used by {} pipelines and was ignored", self.pipeline_type)
            } else {
                match closest(key, self.asked.iter().copied(), 2)
                    .or_else(|| closest(key, KEYS.iter().map(|(k, _)| *k), 2))
                {
                    Some(suggestion) => {
                        format!("unknown key `{key}` was ignored; did you mean `{suggestion}`?")
                    }
                    None => format!("unknown key `{key}` was ignored"),
                }
            };
            self.warnings.push(warning);
        }
    }
}

/// An RFC 6901 pointer from unescaped tokens.
pub(super) fn pointer(tokens: &[&str]) -> String {
    tokens.iter().map(|t| format!("/{}", escape(t))).collect()
}
