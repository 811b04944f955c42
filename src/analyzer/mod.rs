//! Our drift analyzer: what SageMaker Model Monitor's data-quality analyzer computes, without
//! Spark (reference sagemaker-formats.md §B). A library: no HTTP, no SQL. The jobs, the API and
//! `mlops analyze` call it.
//!
//! - [`profile`]: one pass over rows into mergeable per-column summaries ([`kll`] sketches,
//!   moments, types from [`values`], value counts).
//! - [`statistics`] / [`constraints`]: `statistics.json` and the suggested `constraints.json`.
//! - [`check`]: a window against a baseline → `constraint_violations.json`, with [`distance`]'s
//!   drift measures.

pub mod attribution;
pub mod bias;
pub mod capture;
pub mod check;
pub mod constraints;
pub mod distance;
pub mod ground_truth;
pub mod job;
pub mod kernel_shap;
pub mod kll;
pub mod merge;
pub mod model_quality;
pub mod profile;
pub mod statistics;
pub mod values;

use profile::Profile;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the CSV has no header row")]
    NoHeader,
    /// Statistics and constraints name each feature once: a second column of the same name would
    /// be checked against the first one's constraints.
    #[error("the header row names {name:?} twice (columns {first} and {second}); every column needs a name of its own")]
    DuplicateColumn { name: String, first: usize, second: usize },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
}

/// Profiles a CSV with a header row (the baseline dataset).
pub fn profile_csv(reader: impl std::io::Read + Send) -> Result<Profile, ReadError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(&e))?.clone();
    if headers.is_empty() {
        return Err(ReadError::NoHeader);
    }
    let names: Vec<&str> = headers.iter().collect();
    distinct_names(&names)?;
    let mut profile = Profile::new(&names);
    for_each_batch(&mut csv, |records| profile.add_records(records)).map_err(|e| csv_error(&e))?;
    Ok(profile)
}

/// Refuses a header row that names a column twice.
pub fn distinct_names(names: &[impl AsRef<str>]) -> Result<(), ReadError> {
    let mut seen = std::collections::HashMap::new();
    for (column, name) in names.iter().map(AsRef::as_ref).enumerate() {
        if let Some(first) = seen.insert(name, column + 1) {
            return Err(ReadError::DuplicateColumn { name: name.to_string(), first, second: column + 1 });
        }
    }
    Ok(())
}

/// Records per batch: large enough that a column's share of a batch outweighs handing it to a
/// thread, small enough to stay in cache — every column walks the whole batch, so its fields are
/// read 30 times over (measured on the 30-column benchmark: 1,024 takes about 10 % less time than
/// 4,096; 512 is no better).
const BATCH_RECORDS: usize = 1024;

/// Reads the CSV's records in batches and hands each to `profile`, reading the next batch while
/// the last one is profiled (rayon), so parsing overlaps the per-column work.
pub fn for_each_batch<R: std::io::Read + Send>(
    csv: &mut csv::Reader<R>,
    mut profile: impl FnMut(&[csv::StringRecord]) + Send,
) -> Result<(), csv::Error> {
    let (mut current, mut next) = (Vec::new(), Vec::new());
    let mut filled = read_batch(csv, &mut current)?;
    while filled > 0 {
        let batch = &current[..filled];
        let (read, ()) = rayon::join(|| read_batch(csv, &mut next), || profile(batch));
        filled = read?;
        std::mem::swap(&mut current, &mut next);
    }
    Ok(())
}

/// Fills `batch` (its records' buffers reused) with up to [`BATCH_RECORDS`] records; how many.
fn read_batch<R: std::io::Read>(csv: &mut csv::Reader<R>, batch: &mut Vec<csv::StringRecord>) -> csv::Result<usize> {
    let mut filled = 0;
    while filled < BATCH_RECORDS {
        if filled == batch.len() {
            batch.push(csv::StringRecord::new());
        }
        if !csv.read_record(&mut batch[filled])? {
            break;
        }
        filled += 1;
    }
    Ok(filled)
}

fn csv_error(e: &csv::Error) -> ReadError {
    ReadError::Csv { line: e.position().map_or(0, |p| p.line()), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_naming_a_column_twice_is_refused_naming_both() {
        let error = profile_csv(&b"id,price,colour,price\n1,2.5,red,3\n"[..]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the header row names \"price\" twice (columns 2 and 4); every column needs a name of its own"
        );
        let profile = profile_csv(&b"id,price,Price\n1,2.5,3\n"[..]).unwrap();
        assert_eq!(profile.columns.len(), 3, "names differing in case are different columns");
    }
}
