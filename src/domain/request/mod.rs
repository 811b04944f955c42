//! Request validation: a JSON body (compat API, `/v1`, `mlops-config.json`) becomes a typed
//! [`PipelineSpec`], or a list of every problem found. One reader per pipeline family.
//!
//! Required keys are exactly the solution's (reference §4.1); on top of that every field's type,
//! shape and range is checked (see the family modules for the rules).

mod body;
mod clarify;
mod errors;
mod hyperparameters;
mod image_builder;
mod inference;
mod lenient;
mod monitor;
mod scalars;
pub mod schema;
mod training;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub use errors::{FieldError, FieldErrorCode, RequestErrors};

use body::Body;
use scalars::{closest, kind, quoted};

use super::pipeline_type::{MonitorType, PipelineType};
use super::spec::PipelineSpec;

/// Server settings that change what a request may or must contain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Environment names in promotion order, e.g. `["dev", "staging", "prod"]`. Zero or one
    /// name: a single environment, where per-environment values are not accepted.
    pub environments: Vec<String>,
    /// The solution's `UseModelRegistry`: models come from `model_package_name` instead of an
    /// image and an artifact.
    pub use_model_registry: bool,
}

/// A valid request.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRequest {
    pub spec: PipelineSpec,
    /// Things accepted but worth telling the caller: ignored keys, schedules SageMaker would
    /// refuse, and the like.
    pub warnings: Vec<String>,
}

/// Validates a provisioning request body.
pub fn parse_request(body: &Value, ctx: &RequestContext) -> Result<ValidatedRequest, RequestErrors> {
    let (meant, rewrites) = as_meant(body);
    let (body, pipeline_type) = start(meant.as_ref().unwrap_or(body), ctx)?;
    let mut request = read(body, pipeline_type)?;
    request.warnings.splice(0..0, rewrites);
    Ok(request)
}

/// The body with the plain meanings of `lenient` applied, when any applied, and their warnings.
fn as_meant(body: &Value) -> (Option<Value>, Vec<String>) {
    match body.as_object().and_then(lenient::read_as_meant) {
        Some((object, warnings)) => (Some(Value::Object(object)), warnings),
        None => (None, Vec::new()),
    }
}

/// The keys a pipeline type's reader asks for, given a body holding some of them, and the bad
/// fields of that body: how the request schemas of the OpenAPI document are made (`schema.rs`),
/// so they cannot drift from validation.
pub(crate) fn keys_read(body: &Value, ctx: &RequestContext) -> (BTreeSet<&'static str>, Vec<FieldError>) {
    let (meant, _) = as_meant(body);
    let Ok((mut body, pipeline_type)) = start(meant.as_ref().unwrap_or(body), ctx) else { return Default::default() };
    let _ = dispatch(&mut body, pipeline_type);
    body.into_keys_and_errors()
}

fn read(mut body: Body<'_>, pipeline_type: PipelineType) -> Result<ValidatedRequest, RequestErrors> {
    let spec = dispatch(&mut body, pipeline_type);
    body.finish(spec)
}

fn dispatch(body: &mut Body<'_>, pipeline_type: PipelineType) -> Option<PipelineSpec> {
    match pipeline_type {
        PipelineType::ByomRealtimeBuiltin | PipelineType::ByomRealtimeCustom => inference::realtime(body),
        PipelineType::ByomBatchBuiltin | PipelineType::ByomBatchCustom => inference::batch(body),
        PipelineType::ByomDataQualityMonitor => monitor::monitor(body, MonitorType::DataQuality),
        PipelineType::ByomModelQualityMonitor => monitor::monitor(body, MonitorType::ModelQuality),
        PipelineType::ByomModelBiasMonitor => monitor::monitor(body, MonitorType::ModelBias),
        PipelineType::ByomModelExplainabilityMonitor => monitor::monitor(body, MonitorType::ModelExplainability),
        PipelineType::ByomImageBuilder => image_builder::image_builder(body),
        PipelineType::ModelTrainingBuiltin | PipelineType::ModelTunerBuiltin => training::training(body),
        PipelineType::ModelAutopilotTraining => training::autopilot(body),
    }
}

fn start<'a>(body: &'a Value, ctx: &'a RequestContext) -> Result<(Body<'a>, PipelineType), RequestErrors> {
    let Value::Object(object) = body else {
        return Err(RequestErrors(vec![FieldError::new(
            "",
            FieldErrorCode::InvalidType,
            format!("the request body must be a JSON object with a `pipeline_type`, got {}", kind(body)),
        )]));
    };
    let pipeline_type = pipeline_type(object).map_err(|e| RequestErrors(vec![e]))?;
    Ok((Body::new(object, ctx, pipeline_type), pipeline_type))
}

fn pipeline_type(object: &Map<String, Value>) -> Result<PipelineType, FieldError> {
    let all = || quoted(PipelineType::ALL.iter().map(|t| t.as_str()));
    let name = match object.get("pipeline_type") {
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "/pipeline_type",
                FieldErrorCode::Required,
                format!("`pipeline_type` is required: one of {}", all()),
            ));
        }
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(FieldError::new(
                "/pipeline_type",
                FieldErrorCode::InvalidType,
                format!("`pipeline_type`: expected a string, got {}", kind(other)),
            ));
        }
    };
    name.parse().map_err(|_| {
        // The solution strips whitespace when validating but not when choosing the template,
        // so near misses fail late there; here they fail early, with the fix.
        let normalised = name.trim().to_lowercase().replace(['-', ' '], "_");
        let names = PipelineType::ALL.iter().map(|t| t.as_str());
        let message = match closest(&normalised, names, 3) {
            Some(suggestion) => {
                format!("unknown `pipeline_type` `{name}`; did you mean `{suggestion}`?")
            }
            None => format!("unknown `pipeline_type` `{name}`: expected one of {}", all()),
        };
        FieldError::new("/pipeline_type", FieldErrorCode::UnknownPipelineType, message)
    })
}

/// The spec's `name`: the identity of the pipeline within its type.
fn identity(name: &str) -> String {
    name.trim().to_lowercase()
}
