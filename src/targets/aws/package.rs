//! `template.zip` (docs/AWS.md §3): the pipeline type's template and its parameter file(s), flat,
//! the way the wrapper's CodePipeline reads them. Parameter files use CloudFormation's
//! template-configuration format `{"Parameters": {"Key": "Value", …}}`.
//!
//! The bytes depend only on the input (fixed timestamps and permissions, files in a fixed order),
//! so the same pipeline version always gives the same zip.

use std::collections::BTreeSet;
use std::io::{Cursor, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::templates;
use crate::domain::PipelineType;

/// The parameter file of a single-account pipeline.
pub const SINGLE_PARAMS_FILE: &str = "template_params.json";

/// The parameter file of one environment of a multi-account pipeline, e.g.
/// `dev_template_params.json`.
pub fn stage_params_file(environment: &str) -> String {
    format!("{environment}_template_params.json")
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("a {kind} pipeline is packaged with {expected} stage(s) of parameters, got {got}")]
    StageCount { kind: &'static str, expected: usize, got: usize },
    #[error("`{0}` deploys once, in the orchestrator's account; it has no multi-account package")]
    NotPromoted(PipelineType),
    #[error("parameter `{key}` is given twice for environment `{environment}`")]
    DuplicateParameter { environment: String, key: String },
    #[error("template {0} is missing from this build")]
    MissingTemplate(&'static str),
    #[error("writing template.zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing template.zip: {0}")]
    Io(#[from] std::io::Error),
}

/// The zip for one pipeline version: `stages` holds (environment, parameters) in promotion order,
/// exactly one for a single-account pipeline and three with `multi`.
pub fn template_zip(
    pipeline_type: PipelineType,
    stages: &[(String, Vec<(String, String)>)],
    multi: bool,
) -> Result<Vec<u8>, PackageError> {
    let expected = if multi { 3 } else { 1 };
    if stages.len() != expected {
        let kind = if multi { "multi-account" } else { "single-account" };
        return Err(PackageError::StageCount { kind, expected, got: stages.len() });
    }
    if multi && !pipeline_type.supports_per_stage() {
        return Err(PackageError::NotPromoted(pipeline_type));
    }
    let template_file = templates::deployed_template_file(pipeline_type);
    let template = templates::template(template_file).ok_or(PackageError::MissingTemplate(template_file))?;

    let mut files = vec![(template_file.to_string(), template.as_bytes().to_vec())];
    for (environment, parameters) in stages {
        let mut seen = BTreeSet::new();
        if let Some((key, _)) = parameters.iter().find(|(key, _)| !seen.insert(key)) {
            return Err(PackageError::DuplicateParameter { environment: environment.clone(), key: key.clone() });
        }
        let name = if multi { stage_params_file(environment) } else { SINGLE_PARAMS_FILE.to_string() };
        files.push((name, template_configuration(parameters)));
    }

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::DEFAULT)
        .unix_permissions(0o644);
    for (name, bytes) in files {
        zip.start_file(name, options)?;
        zip.write_all(&bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// `{"Parameters": {…}}`, pretty-printed, keys in the given order.
pub fn template_configuration(parameters: &[(String, String)]) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(&TemplateConfiguration(parameters)).expect("strings always serialise");
    text.push(b'\n');
    text
}

struct TemplateConfiguration<'a>(&'a [(String, String)]);

impl Serialize for TemplateConfiguration<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut outer = serializer.serialize_map(Some(1))?;
        outer.serialize_entry("Parameters", &Ordered(self.0))?;
        outer.end()
    }
}

/// A JSON object in the pairs' order (serde_json's own map sorts its keys).
struct Ordered<'a>(&'a [(String, String)]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
