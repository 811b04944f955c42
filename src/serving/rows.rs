//! Scoring rows of numbers with an endpoint's model outside its invocation path — no capture, no
//! limiter, no HTTP of ours: what the bias and explainability monitors do to a baseline, and
//! Kernel SHAP to its coalitions. A built-in model is evaluated in this process; a custom
//! algorithm gets the rows as CSV mini-batches on its own `/invocations` (each body within
//! SageMaker's 6 MB `MaxPayloadInMB`, `BatchStrategy=MultiRecord`) and answers one line of
//! scores per row, as in a batch transform.
//!
//! The calls are blocking (Kernel SHAP's coalitions are scored from rayon's threads); a custom
//! algorithm's are driven on the runtime handle given, so never call them from a runtime thread.

use super::builtin::BuiltinModel;
use super::endpoints::Model;
use super::process::{ProcessError, ProcessModel, ProcessRequest};
use std::time::Duration;

/// SageMaker's largest mini-batch body (`MaxPayloadInMB` = 6).
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// How long a restarting algorithm is waited for before the scoring fails.
const RESTART_WAIT: Duration = Duration::from_secs(30);

/// An endpoint's model, ready to score rows from a blocking thread.
pub enum RowModel<'a> {
    Builtin(&'a BuiltinModel),
    Process { model: &'a ProcessModel, runtime: tokio::runtime::Handle },
}

/// Scores of many rows: `width` values per row, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub values: Vec<f64>,
    pub width: usize,
}

impl Scores {
    /// Output `index` of every row (NaN where a row has no such output).
    pub fn column(&self, index: usize) -> Vec<f64> {
        self.values.chunks(self.width.max(1)).map(|row| row.get(index).copied().unwrap_or(f64::NAN)).collect()
    }
}

impl<'a> RowModel<'a> {
    pub fn new(model: &'a Model, runtime: tokio::runtime::Handle) -> Self {
        match model {
            Model::Builtin(model) => RowModel::Builtin(model),
            Model::Process(model) => RowModel::Process { model, runtime },
        }
    }

    /// The built-in model, if it is one (exact TreeSHAP reads its trees).
    pub fn builtin(&self) -> Option<&'a BuiltinModel> {
        match self {
            RowModel::Builtin(model) => Some(model),
            RowModel::Process { .. } => None,
        }
    }

    /// Every row's outputs. A row shorter than the model's features is padded with missing
    /// values, as a CSV request's would be.
    pub fn score(&self, rows: &[Vec<f64>]) -> Result<Scores, String> {
        match self {
            RowModel::Builtin(model) => score_builtin(model, rows),
            RowModel::Process { model, runtime } => {
                let mut scores = Scores { values: Vec::new(), width: 0 };
                for batch in mini_batches(rows) {
                    let body = runtime.block_on(invoke(model, batch.body))?;
                    append_lines(&body, batch.rows, &mut scores)?;
                }
                Ok(scores)
            }
        }
    }
}

fn score_builtin(model: &BuiltinModel, rows: &[Vec<f64>]) -> Result<Scores, String> {
    let width = model.num_features();
    let mut values = Vec::with_capacity(rows.len() * width);
    for row in rows {
        values.extend(row.iter().take(width).map(|x| *x as f32));
        values.resize(values.len() + width.saturating_sub(row.len()), f32::NAN);
    }
    let mut out = Vec::with_capacity(rows.len() * model.num_outputs());
    model.predict_rows(&values, &mut out).map_err(|e| e.to_string())?;
    Ok(Scores { values: out, width: model.num_outputs().max(1) })
}

/// One request's worth of rows as CSV.
struct MiniBatch {
    body: Vec<u8>,
    rows: usize,
}

/// The rows as CSV lines (Rust's shortest round-trip decimals), cut into bodies of at most
/// `MAX_PAYLOAD_BYTES`.
fn mini_batches(rows: &[Vec<f64>]) -> Vec<MiniBatch> {
    let mut batches = vec![MiniBatch { body: Vec::new(), rows: 0 }];
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (j, x) in row.iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            if x.is_finite() {
                line.push_str(&x.to_string());
            }
        }
        line.push('\n');
        let last = batches.last_mut().expect("one batch at least");
        if last.rows > 0 && last.body.len() + line.len() > MAX_PAYLOAD_BYTES {
            batches.push(MiniBatch { body: Vec::new(), rows: 0 });
        }
        let last = batches.last_mut().expect("one batch at least");
        last.body.extend_from_slice(line.as_bytes());
        last.rows += 1;
    }
    batches.retain(|b| b.rows > 0);
    batches
}

/// One mini-batch through the algorithm; waits out a restart.
async fn invoke(model: &ProcessModel, body: Vec<u8>) -> Result<bytes::Bytes, String> {
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    let body = bytes::Bytes::from(body);
    loop {
        let request = ProcessRequest {
            content_type: Some("text/csv".into()),
            accept: Some("text/csv".into()),
            body: body.clone(),
            ..Default::default()
        };
        match model.invoke(request).await {
            Ok(reply) if (200..300).contains(&reply.status) => return Ok(reply.body),
            Ok(reply) => {
                let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(1024)]).into_owned();
                return Err(format!("the algorithm answered {}: {text}", reply.status));
            }
            Err(ProcessError::Restarting) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The algorithm's answer: one line per row, of comma-separated numbers or a JSON array of them.
fn append_lines(body: &[u8], rows: usize, scores: &mut Scores) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the algorithm's answer is not UTF-8 text".to_string())?;
    let mut answered = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        answered += 1;
        let values: Vec<f64> = if line.starts_with('[') {
            serde_json::from_str(line).map_err(|e| format!("answer line {answered} is not an array of numbers: {e}"))?
        } else {
            line.split(',')
                .map(|f| f.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("answer line {answered} is not numbers: {:?}", &line[..line.len().min(80)]))?
        };
        if scores.width == 0 {
            scores.width = values.len();
        }
        if values.len() != scores.width {
            return Err(format!(
                "answer line {answered} has {} values; earlier lines had {}",
                values.len(),
                scores.width
            ));
        }
        scores.values.extend(values);
    }
    if answered != rows {
        return Err(format!("the algorithm answered {answered} lines for {rows} rows"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_into_bodies_of_at_most_six_megabytes() {
        let row: Vec<f64> = (0..100).map(|i| i as f64 + 0.123456789).collect();
        let rows = vec![row; 10_000];
        let batches = mini_batches(&rows);
        assert!(batches.len() > 1);
        assert!(batches.iter().all(|b| b.body.len() <= MAX_PAYLOAD_BYTES));
        assert_eq!(batches.iter().map(|b| b.rows).sum::<usize>(), 10_000);
        let lines: usize = batches.iter().map(|b| b.body.iter().filter(|c| **c == b'\n').count()).sum();
        assert_eq!(lines, 10_000);
    }

    #[test]
    fn answers_are_read_as_csv_or_json_lines_and_counted() {
        let mut scores = Scores { values: Vec::new(), width: 0 };
        append_lines(b"0.5,0.5\n[0.25, 0.75]\n", 2, &mut scores).unwrap();
        assert_eq!(scores, Scores { values: vec![0.5, 0.5, 0.25, 0.75], width: 2 });
        assert_eq!(scores.column(1), vec![0.5, 0.75]);
        let mut scores = Scores { values: Vec::new(), width: 0 };
        assert!(append_lines(b"1\n", 2, &mut scores).unwrap_err().contains("1 lines for 2 rows"));
        let mut scores = Scores { values: Vec::new(), width: 0 };
        assert!(append_lines(b"1\n1,2\n", 2, &mut scores).unwrap_err().contains("has 2 values"));
        let mut scores = Scores { values: Vec::new(), width: 0 };
        assert!(append_lines(b"yes\n", 1, &mut scores).unwrap_err().contains("not numbers"));
    }
}
