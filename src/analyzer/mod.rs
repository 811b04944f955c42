//! Our drift analyzer: what SageMaker Model Monitor's data-quality analyzer computes, without
//! Spark (reference sagemaker-formats.md §B). A library: no HTTP, no SQL. The jobs, the API and
//! `mlops analyze` call it.
//!
//! - [`profile`]: one pass over rows into mergeable per-column summaries ([`kll`] sketches,
//!   moments, types from [`values`], value counts).
//! - [`statistics`] / [`constraints`]: `statistics.json` and the suggested `constraints.json`.
//! - [`check`]: a window against a baseline → `constraint_violations.json`, with [`distance`]'s
//!   drift measures.

pub mod capture;
pub mod check;
pub mod constraints;
pub mod distance;
pub mod ground_truth;
pub mod job;
pub mod kll;
pub mod model_quality;
pub mod profile;
pub mod statistics;
pub mod values;

use profile::Profile;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the CSV has no header row")]
    NoHeader,
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
}

/// Profiles a CSV with a header row (the baseline dataset).
pub fn profile_csv(reader: impl std::io::Read) -> Result<Profile, ReadError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(&e))?.clone();
    if headers.is_empty() {
        return Err(ReadError::NoHeader);
    }
    let names: Vec<&str> = headers.iter().collect();
    let mut profile = Profile::new(&names);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => profile.add_row(record.iter()),
            Ok(false) => break,
            Err(e) => return Err(csv_error(&e)),
        }
    }
    Ok(profile)
}

fn csv_error(e: &csv::Error) -> ReadError {
    ReadError::Csv { line: e.position().map_or(0, |p| p.line()), message: e.to_string() }
}
