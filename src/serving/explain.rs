//! Explaining a model's outputs (issue 15): Kernel SHAP against baseline rows as Clarify
//! does (`analyzer::kernel_shap`), or exact TreeSHAP of a tree model (an XGBoost model's own
//! covers, or an ONNX tree ensemble against the baseline rows), aggregated into Clarify's global
//! SHAP values and `analysis.json`. Used by the explainability monitor of the
//! local target and by `mlops explain`.

use super::builtin::BuiltinModel;
use super::rows::RowModel;
use crate::analyzer::kernel_shap;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// How a model is explained: its one output score and the SHAP options.
#[derive(Debug, Clone)]
pub struct ShapOptions {
    /// The output explained (`model_scores`).
    pub score: usize,
    pub use_logit: bool,
    /// Kernel SHAP's coalitions (default 2M + 2048).
    pub num_samples: Option<usize>,
    pub seed: u64,
    /// `mean_abs` (default), `median` or `mean_sq`.
    pub agg_method: String,
    /// Kernel SHAP's baseline rows.
    pub background: Vec<Vec<f64>>,
    /// Exact TreeSHAP instead (in margin space): of an XGBoost model, or of an ONNX tree
    /// ensemble against `background`.
    pub tree: bool,
}

impl ShapOptions {
    /// The `explanations` key of `analysis.json`.
    pub fn method(&self) -> &'static str {
        if self.tree { "tree_shap" } else { "kernel_shap" }
    }
}

/// A model and how to explain it.
pub struct Explainer<'a> {
    pub model: RowModel<'a>,
    pub options: &'a ShapOptions,
}

impl Explainer<'_> {
    /// The explained score of each row (its log-odds with `use_logit`).
    fn predict(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        let scores = self.model.score(rows)?;
        if self.options.score >= scores.width {
            return Err(format!("model_scores {}: the model answers {} scores", self.options.score, scores.width));
        }
        let column = scores.column(self.options.score);
        Ok(if self.options.use_logit {
            column
                .into_iter()
                .map(|p| {
                    let p = p.clamp(1e-12, 1.0 - 1e-12);
                    (p / (1.0 - p)).ln()
                })
                .collect()
        } else {
            column
        })
    }

    /// Exact TreeSHAP values of the records in margin space: path-dependent from an XGBoost
    /// model's own covers, or interventional against the baseline rows for an ONNX tree ensemble.
    fn tree_explanations(&self, records: &[Vec<f64>]) -> Result<Vec<kernel_shap::Explanation>, String> {
        let explanation = |shap_values: Vec<f64>, expected_value: f64| {
            let prediction = expected_value + shap_values.iter().sum::<f64>();
            kernel_shap::Explanation { shap_values, expected_value, prediction }
        };
        match self.model.builtin() {
            Some(BuiltinModel::Xgboost(booster)) => {
                if !booster.shap_depth_ok() {
                    return Err(format!(
                        "a tree of the model is deeper than {} levels: exact TreeSHAP is refused, use kernel",
                        super::xgboost::shap::MAX_DEPTH
                    ));
                }
                let width = booster.num_features() + 1;
                records
                    .par_iter()
                    .map(|record| {
                        let row: Vec<f32> = record.iter().map(|x| *x as f32).collect();
                        let all = booster.contributions(&row).ok_or_else(|| {
                            "the model file keeps no node covers (sum_hessian): exact TreeSHAP is undefined for it"
                                .to_string()
                        })?;
                        let group = &all[self.options.score * width..(self.options.score + 1) * width];
                        Ok(explanation(group[..width - 1].to_vec(), group[width - 1]))
                    })
                    .collect()
            }
            Some(BuiltinModel::Onnx(model)) => {
                let tree_shap = model.tree_shap(self.options.score, &self.options.background, records)?;
                Ok(records
                    .par_iter()
                    .map(|record| {
                        let (values, expected) = tree_shap.explain(record);
                        explanation(values, expected)
                    })
                    .collect())
            }
            None => Err("shap_config.algorithm `tree` needs a tree model served in this process (XGBoost or an ONNX tree ensemble)".into()),
        }
    }

    /// Global SHAP values (by `agg_method`) and the expected value over `records`.
    pub fn explain(&self, headers: &[String], records: &[Vec<f64>]) -> Result<(BTreeMap<String, f64>, f64), String> {
        let explanations = if self.options.tree {
            self.tree_explanations(records)?
        } else {
            let budget = self.options.num_samples.unwrap_or_else(|| kernel_shap::default_samples(headers.len()));
            let predict = |rows: &[Vec<f64>]| self.predict(rows);
            records
                .par_iter()
                .map(|record| {
                    kernel_shap::explain(&predict, record, &self.options.background, budget, self.options.seed)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("explaining the records failed: {e}"))?
        };
        let expected = explanations.first().map(|e| e.expected_value).unwrap_or(0.0);
        let mut global = BTreeMap::new();
        for (j, name) in headers.iter().enumerate() {
            let mut values: Vec<f64> = explanations.iter().map(|e| e.shap_values[j]).collect();
            let value = match self.options.agg_method.as_str() {
                "median" => {
                    values.sort_by(f64::total_cmp);
                    let n = values.len();
                    if n == 0 {
                        0.0
                    } else if n % 2 == 1 {
                        values[n / 2]
                    } else {
                        (values[n / 2 - 1] + values[n / 2]) / 2.0
                    }
                }
                "mean_sq" => values.iter().map(|v| v * v).sum::<f64>() / values.len().max(1) as f64,
                _ => values.iter().map(|v| v.abs()).sum::<f64>() / values.len().max(1) as f64,
            };
            global.insert(name.clone(), value);
        }
        Ok((global, expected))
    }
}

/// Clarify's `analysis.json` of one explained label (`label0`).
#[derive(serde::Serialize)]
pub struct Analysis {
    version: &'static str,
    /// By method (`kernel_shap`, Clarify's; `tree_shap`, ours), then by label.
    explanations: BTreeMap<&'static str, BTreeMap<String, LabelExplanation>>,
}

#[derive(serde::Serialize)]
struct LabelExplanation {
    global_shap_values: InHeaderOrder,
    expected_value: f64,
}

/// Features in header order, as Clarify writes them (a JSON map of ours would sort them).
struct InHeaderOrder(Vec<(String, f64)>);

impl serde::Serialize for InHeaderOrder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// An empty `analysis.json` (a window with nothing to explain).
pub fn empty_analysis() -> Analysis {
    Analysis { version: "1.0", explanations: BTreeMap::new() }
}

pub fn analysis(method: &'static str, global: &BTreeMap<String, f64>, headers: &[String], expected: f64) -> Analysis {
    let values = headers.iter().map(|h| (h.clone(), global.get(h).copied().unwrap_or(0.0))).collect();
    let label = LabelExplanation { global_shap_values: InHeaderOrder(values), expected_value: expected };
    Analysis { version: "1.0", explanations: BTreeMap::from([(method, BTreeMap::from([("label0".into(), label)]))]) }
}

/// `mlops explain`: a model file and CSVs in, `analysis.json` out.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The model file (XGBoost JSON/UBJSON, or ONNX).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// The records to explain: a header row, then one row of features each.
    #[arg(long)]
    pub data: std::path::PathBuf,
    /// Kernel SHAP's baseline rows (a header row is skipped); default: the data's mean row.
    #[arg(long)]
    pub baseline: Option<std::path::PathBuf>,
    /// `kernel` (Clarify's) or `tree` (exact TreeSHAP: XGBoost models, ONNX tree ensembles against the baseline).
    #[arg(long, default_value = "kernel", value_parser = ["kernel", "tree"])]
    pub algorithm: String,
    /// Kernel SHAP's coalitions per record (default 2M + 2048).
    #[arg(long)]
    pub num_samples: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The model output explained.
    #[arg(long, default_value_t = 0)]
    pub score: usize,
    /// `mean_abs`, `median` or `mean_sq`.
    #[arg(long, default_value = "mean_abs", value_parser = ["mean_abs", "median", "mean_sq"])]
    pub agg_method: String,
    /// Where to write analysis.json.
    #[arg(long, default_value = "analysis.json")]
    pub output: std::path::PathBuf,
}

/// A CSV of numbers: its header row, if it has one, and its rows.
type NumericCsv = (Option<Vec<String>>, Vec<Vec<f64>>);

/// Rows of numbers from a CSV file; a first row that is not all numbers is its header.
fn read_rows(path: &std::path::Path) -> Result<NumericCsv, String> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut header, mut rows) = (None, Vec::new());
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
        match record.iter().map(|f| f.trim().parse::<f64>().ok()).collect::<Option<Vec<f64>>>() {
            Some(row) => rows.push(row),
            None if i == 0 => header = Some(record.iter().map(String::from).collect()),
            None => return Err(format!("{}: row {} is not all numbers", path.display(), i + 1)),
        }
    }
    Ok((header, rows))
}

pub fn explain_files(args: &ExplainArgs) -> Result<serde_json::Value, String> {
    let started = std::time::Instant::now();
    let file = std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let framework = if super::onnx::looks_like_onnx(&file) { "onnx" } else { "xgboost" };
    let model = BuiltinModel::load(&file, framework, &Default::default()).map_err(|e| e.to_string())?;
    let (header, records) = read_rows(&args.data)?;
    let width = records.first().map_or(0, Vec::len);
    let headers = header.unwrap_or_else(|| (0..width).map(|i| format!("feature_{i}")).collect());
    let background = match &args.baseline {
        Some(path) => read_rows(path)?.1,
        None => {
            let n = records.len().max(1) as f64;
            vec![(0..width).map(|j| records.iter().map(|r| r[j]).sum::<f64>() / n).collect()]
        }
    };
    let options = ShapOptions {
        score: args.score,
        use_logit: false,
        num_samples: args.num_samples,
        seed: args.seed,
        agg_method: args.agg_method.clone(),
        background,
        tree: args.algorithm == "tree",
    };
    let (global, expected) =
        Explainer { model: RowModel::Builtin(&model), options: &options }.explain(&headers, &records)?;
    let file = analysis(options.method(), &global, &headers, expected);
    let text = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
    std::fs::write(&args.output, text).map_err(|e| format!("{}: {e}", args.output.display()))?;
    Ok(serde_json::json!({
        "rows": records.len(),
        "features": headers.len(),
        "method": options.method(),
        "seconds": started.elapsed().as_secs_f64(),
        "output": args.output.display().to_string(),
    }))
}
