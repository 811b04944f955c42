//! The drift analyzer against reference implementations: scipy's two-sample Kolmogorov–Smirnov
//! statistic for the numeric distance, and shifted copies of a data set scikit-learn ships, which
//! must be flagged feature by feature while an unshifted resample is not. Fixtures and expected
//! values: `tests/fixtures/analyzer/generate.py` (README there).

use mlops::analyzer::check::check;
use mlops::analyzer::constraints::{Constraints, suggest};
use mlops::analyzer::distance::{Method, numerical};
use mlops::analyzer::kll::KllSketch;
use mlops::analyzer::profile::Profile;
use mlops::analyzer::profile_csv;
use mlops::analyzer::statistics::{Statistics, statistics};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/analyzer");

/// Runs `mlops analyze` with exactly these variables: the outcome it prints, or what it wrote to
/// stderr when it failed.
fn run_analyze(env: &[(&str, String)]) -> Result<Value, String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .arg("analyze")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout))))
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn profile(file: &str) -> Profile {
    let path = format!("{FIXTURES}/{file}");
    profile_csv(std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/expected.json")).unwrap()).unwrap()
}

/// The generator's sample: sums of three uniforms from a 64-bit LCG, plus `shift`.
fn lcg_sample(seed: u64, count: usize, shift: f64) -> Vec<f64> {
    let (a, c) = (6364136223846793005u64, 1442695040888963407u64);
    let mut state = seed;
    (0..count)
        .map(|_| {
            let mut total = 0.0;
            for _ in 0..3 {
                state = state.wrapping_mul(a).wrapping_add(c);
                total += (state >> 11) as f64 / 2f64.powi(53);
            }
            total + shift
        })
        .collect()
}

fn sketch(values: &[f64]) -> KllSketch {
    let mut s = KllSketch::new();
    values.iter().for_each(|v| s.update(*v));
    s
}

#[test]
fn exact_sketches_give_scipys_ks_statistic() {
    let expected = expected();
    let baseline = profile("baseline.csv");
    for window in ["window_same", "window_shifted"] {
        let current = profile(&format!("{window}.csv"));
        let ks = expected["ks"][window].as_object().unwrap();
        assert_eq!(ks.len(), 10);
        for (feature, want) in ks {
            let column = |p: &Profile| p.columns.iter().find(|c| &c.name == feature).unwrap().sketch.ranks();
            let got = numerical(&column(&baseline), &column(&current), Method::Simple).unwrap();
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() < 1e-12, "{window} {feature}: ours {got}, scipy {want}");
        }
    }
}

/// Past 2,050 values the sketch compacts; the distance stays within 0.005 of scipy's exact
/// statistic (docs/MONITORING.md; the largest error in these cases is about 0.0012).
#[test]
fn compacted_sketches_stay_within_the_error_bound_of_scipys_ks_statistic() {
    for case in expected()["large"].as_array().unwrap() {
        let (seed, n, m) = (case["seed"].as_u64().unwrap(), case["n"].as_u64().unwrap(), case["m"].as_u64().unwrap());
        let shift = case["shift"].as_f64().unwrap();
        let a = lcg_sample(seed, n as usize, 0.0);
        let firsts: Vec<f64> = case["first_values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(a[..3], firsts[..], "the generator and the test draw the same numbers");
        let b = lcg_sample(seed + 100, m as usize, shift);
        let (sa, sb) = (sketch(&a), sketch(&b));
        assert_eq!((sa.count(), sb.count()), (n, m), "the total weight is the number of values");
        let got = numerical(&sa.ranks(), &sb.ranks(), Method::Simple).unwrap();
        let want = case["ks"].as_f64().unwrap();
        assert!((got - want).abs() <= 0.005, "n={n} m={m} shift={shift}: ours {got}, scipy {want}");
        if n as usize <= 2050 && m as usize <= 2050 {
            assert!((got - want).abs() < 1e-12);
        }
        // Robust is Simple less 1.8·sqrt((n+m)/(n·m)), never below zero.
        let robust = numerical(&sa.ranks(), &sb.ranks(), Method::Robust).unwrap();
        let correction = 1.8 * ((n + m) as f64 / (n as f64 * m as f64)).sqrt();
        assert!((robust - (got - correction).max(0.0)).abs() < 1e-12);
    }
}

/// Sketches survive statistics.json: a sketch read back gives the same ranks, and merging two
/// halves gives the one-pass count.
#[test]
fn sketches_round_trip_through_json_and_merge() {
    let values = lcg_sample(9, 50_000, 0.0);
    let whole = sketch(&values);
    let back =
        KllSketch::from_json(&serde_json::from_value(serde_json::to_value(whole.to_json()).unwrap()).unwrap()).unwrap();
    let (r1, r2) = (whole.ranks(), back.ranks());
    for q in [0.5, 1.0, 1.5, 2.0, 2.5] {
        assert_eq!(r1.rank(q), r2.rank(q));
    }
    let (mut left, right) = (sketch(&values[..20_000]), sketch(&values[20_000..]));
    left.merge(&right);
    assert_eq!(left.count(), 50_000);
    let d = numerical(&left.ranks(), &whole.ranks(), Method::Simple).unwrap();
    assert!(d < 0.01, "merged and one-pass sketches disagree by {d}");
}

/// Baseline on the data set, then the shifted window flags exactly the shifted features (three
/// numeric, one categorical) with the defaults (Robust, threshold 0.1), and the resample nothing.
#[test]
fn shifted_features_are_flagged_and_only_they() {
    let expected = expected();
    let mut baseline = profile("baseline.csv");
    let stats: Statistics = serde_json::from_value(serde_json::to_value(statistics(&mut baseline)).unwrap()).unwrap();
    let constraints: Constraints = serde_json::from_value(serde_json::to_value(suggest(&baseline)).unwrap()).unwrap();

    let same = check(&stats, &constraints, &profile("window_same.csv")).unwrap();
    assert!(same.violations.is_empty(), "{:#?}", same.violations);
    assert_eq!(same.drift.len(), 11, "every feature's drift is reported");

    let shifted = check(&stats, &constraints, &profile("window_shifted.csv")).unwrap();
    let mut flagged: Vec<&str> = shifted
        .violations
        .iter()
        .filter(|v| v.constraint_check_type == "baseline_drift_check")
        .map(|v| v.feature_name.as_str())
        .collect();
    flagged.sort();
    let mut want: Vec<&str> =
        expected["shifted_features"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    want.sort();
    assert_eq!(flagged, want);
    let radius = shifted.drift.iter().find(|d| d.feature == "mean radius").unwrap();
    assert_eq!(radius.method, "linf_robust");
    assert!(radius.why.contains("above the threshold 0.1"), "{}", radius.why);
}

/// `mlops analyze` run as SageMaker runs its analyzer image: a baselining job over a CSV with a
/// header, then a monitoring job over captured traffic laid out as
/// `/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl`, with the job's environment variables and paths
/// (under a temporary root standing in for `/opt/ml`). Records outside the window are ignored;
/// the shifted features are flagged; metrics are written when asked for.
mod monitoring_job {
    use super::{FIXTURES, read_json as read};
    use serde_json::{Value, json};
    use std::path::Path;
    use std::process::Command;

    fn analyze(env: &[(&str, String)]) -> Value {
        super::run_analyze(env).unwrap_or_else(|stderr| panic!("mlops analyze failed: {stderr}"))
    }

    /// Capture records, one request of `rows` CSV rows each, at `time`.
    fn capture_lines(rows: &[&str], per_request: usize, time: &str) -> String {
        rows.chunks(per_request)
            .map(|chunk| {
                json!({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                    "data": chunk.join("\n") + "\n", "encoding": "CSV"}},
                    "eventMetadata": {"eventId": uuid::Uuid::new_v4().to_string(), "inferenceTime": time}, "eventVersion": "0"})
                .to_string()
                    + "\n"
            })
            .collect()
    }

    /// Statistics and constraints name each feature once: a dataset naming a column twice fails
    /// the job, saying which file and which columns.
    #[test]
    fn a_dataset_naming_a_column_twice_fails_the_job() {
        let root = tempfile::tempdir().unwrap();
        let input = root.path().join("input");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(input.join("baseline.csv"), "label,age,label\n1,40,0\n").unwrap();
        let stderr = super::run_analyze(&[
            ("dataset_format", r#"{"csv": {"header": true}}"#.into()),
            ("dataset_source", input.display().to_string()),
            ("output_path", root.path().join("output").display().to_string()),
        ])
        .unwrap_err();
        assert!(stderr.contains("baseline.csv: the header row names \"label\" twice (columns 1 and 3)"), "{stderr}");
        assert!(!root.path().join("output/statistics.json").exists());
    }

    #[test]
    fn baseline_then_monitoring_as_a_sagemaker_job() {
        let root = tempfile::tempdir().unwrap();
        let ml = root.path().join("opt/ml");
        let processing = ml.join("processing");
        let baseline_input = processing.join("input/baseline_dataset_input");
        std::fs::create_dir_all(&baseline_input).unwrap();
        std::fs::copy(format!("{FIXTURES}/baseline.csv"), baseline_input.join("baseline.csv")).unwrap();
        let baseline_output = processing.join("output");
        let path = |p: &Path| p.display().to_string();

        let outcome = analyze(&[
            ("dataset_format", r#"{"csv": {"header": true, "output_columns_position": "START"}}"#.into()),
            ("dataset_source", path(&baseline_input)),
            ("output_path", path(&baseline_output)),
            ("publish_cloudwatch_metrics", "Disabled".into()),
        ]);
        assert_eq!(outcome["mode"], "baseline");
        assert_eq!(outcome["rows"], 569);
        let statistics = read(&baseline_output.join("statistics.json"));
        assert_eq!(statistics["dataset"]["item_count"], 569);
        assert_eq!(statistics["features"].as_array().unwrap().len(), 11);
        let constraints = read(&baseline_output.join("constraints.json"));
        assert_eq!(constraints["features"][10]["string_constraints"]["domains"], json!(["benign", "malignant"]));

        // Capture: the shifted window at 07:xx (in the window), the unshifted one at 06:xx (not).
        let endpoint = processing.join("endpointdata");
        let body = |file: &str| std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap();
        let (shifted, same) = (body("window_shifted.csv"), body("window_same.csv"));
        let rows = |text: &str| text.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
        let (shifted, same) = (rows(&shifted), rows(&same));
        for (hour, rows, time) in [("07", &shifted, "2026-12-03T07:20:00Z"), ("06", &same, "2026-12-03T06:40:00Z")] {
            let dir = endpoint.join(format!("churn-endpoint/AllTraffic/2026/12/03/{hour}"));
            std::fs::create_dir_all(&dir).unwrap();
            let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
            let mut lines = capture_lines(&refs, 7, time);
            lines.push_str("{\"not a capture record\": true}\n");
            std::fs::write(dir.join("20-00-000-a.jsonl"), lines).unwrap();
        }
        let result = processing.join("resultdata");
        let metrics = ml.join("output/metrics/cloudwatch");
        let outcome = analyze(&[
            (
                "dataset_format",
                r#"{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}"#.into(),
            ),
            ("dataset_source", path(&endpoint)),
            ("output_path", path(&result)),
            ("start_time", "2026-12-03T07:00:00Z".into()),
            ("end_time", "2026-12-03T08:00:00Z".into()),
            ("baseline_statistics", path(&baseline_output.join("statistics.json"))),
            ("baseline_constraints", path(&baseline_output.join("constraints.json"))),
            ("publish_cloudwatch_metrics", "Enabled".into()),
            ("sagemaker_endpoint_name", "churn-endpoint".into()),
            ("sagemaker_monitoring_schedule_name", "churn-schedule".into()),
            ("MLOPS_CLOUDWATCH_METRICS_DIR", path(&metrics)),
        ]);
        assert_eq!(outcome["mode"], "monitoring");
        assert_eq!(outcome["rows"], 569, "only the window's records: {outcome:#}");
        assert_eq!(outcome["records"], 569usize.div_ceil(7));
        assert_eq!(outcome["unreadable_records"], 2);
        let violations = read(&result.join("constraint_violations.json"));
        let mut drifted: Vec<&str> = violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["constraint_check_type"] == "baseline_drift_check")
            .map(|v| v["feature_name"].as_str().unwrap())
            .collect();
        drifted.sort();
        assert_eq!(drifted, ["diagnosis", "mean radius", "mean smoothness", "mean symmetry"], "{violations:#}");
        let window_stats = read(&result.join("statistics.json"));
        assert_eq!(window_stats["dataset"]["item_count"], 569);
        let lines = std::fs::read_to_string(metrics.join("metrics.jsonl")).unwrap();
        let drift_metric = lines
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|m| m["MetricName"] == "feature_baseline_drift_mean radius")
            .expect("a drift metric per feature");
        assert_eq!(drift_metric["Dimensions"][1]["Value"], "churn-schedule");
        assert!(drift_metric["Value"].as_f64().unwrap() > 0.2);

        // A missing setting is named.
        let output = Command::new(env!("CARGO_BIN_EXE_mlops")).arg("analyze").env_clear().output().unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("`dataset_format` is required"));
    }
}

/// Model-quality metrics against scikit-learn's on held-out predictions of models trained on
/// data sets scikit-learn ships (`tests/fixtures/analyzer/model_quality.json`).
mod model_quality {
    use super::FIXTURES;
    use mlops::analyzer::model_quality::{Example, ProblemType, statistics, suggest_constraints, violations};
    use serde_json::Value;

    fn cases() -> Value {
        serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/model_quality.json")).unwrap()).unwrap()
    }

    fn strings(v: &Value) -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    fn examples(case: &Value) -> Vec<Example> {
        let probabilities: Vec<Option<f64>> = match case.get("probabilities") {
            Some(p) => strings(p).iter().map(|s| Some(s.parse().unwrap())).collect(),
            None => vec![None; case["labels"].as_array().unwrap().len()],
        };
        strings(&case["labels"])
            .into_iter()
            .zip(strings(&case["predictions"]))
            .zip(probabilities)
            .map(|((label, prediction), probability)| Example { label, prediction, probability })
            .collect()
    }

    pub(super) fn assert_metrics(stats: &Value, block: &str, expected: &Value) {
        for (name, want) in expected.as_object().unwrap() {
            let got =
                stats[block][name]["value"].as_f64().unwrap_or_else(|| panic!("{block}.{name} missing: {stats:#}"));
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{name}: ours {got}, scikit-learn {want}");
        }
    }

    #[test]
    fn regression_binary_and_multiclass_metrics_equal_scikit_learns() {
        let cases = cases();
        let time = "2026-12-03T08:00:00Z";

        let regression = statistics(ProblemType::Regression, &examples(&cases["regression"]), "1", time).unwrap();
        assert_metrics(&regression, "regression_metrics", &cases["regression"]["metrics"]);
        assert_eq!(regression["dataset"]["item_count"], 142);
        assert_eq!(regression["regression_metrics"]["mae"]["standard_deviation"], "NaN", "below 200 examples");

        let binary_case = &cases["binary"];
        let binary = statistics(ProblemType::BinaryClassification, &examples(binary_case), "1", time).unwrap();
        let block = &binary["binary_classification_metrics"];
        assert_metrics(&binary, "binary_classification_metrics", &binary_case["metrics"]);
        let m = &binary_case["confusion_matrix"];
        assert_eq!(block["confusion_matrix"]["1"]["1"], m["tp"], "the outer key is the actual label");
        assert_eq!(block["confusion_matrix"]["1"]["0"], m["fn"]);
        assert_eq!(block["confusion_matrix"]["0"]["1"], m["fp"]);
        for (ours, theirs) in [
            (&block["receiver_operating_characteristic_curve"], &binary_case["roc"]),
            (&block["precision_recall_curve"], &binary_case["precision_recall"]),
        ] {
            for (key, want) in theirs.as_object().unwrap() {
                let (got, want) = (ours[key].as_array().unwrap(), want.as_array().unwrap());
                assert_eq!(got.len(), want.len(), "{key}");
                for (g, w) in got.iter().zip(want) {
                    assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-12, "{key}");
                }
            }
        }
        let std_dev = block["f1"]["standard_deviation"].as_f64().expect("269 examples: a number");
        assert!(std_dev > 0.0 && std_dev < 0.1, "{std_dev}");

        let multi =
            statistics(ProblemType::MulticlassClassification, &examples(&cases["multiclass"]), "1", time).unwrap();
        assert_metrics(&multi, "multiclass_classification_metrics", &cases["multiclass"]["metrics"]);
    }

    /// Suggested constraints hold on the baseline itself; a window with worse predictions
    /// violates the accuracy-like ones with `LessThanThreshold`, in Model Monitor's wording.
    #[test]
    fn a_worse_window_violates_the_suggested_constraints() {
        let cases = cases();
        let baseline = examples(&cases["binary"]);
        let time = "2026-12-03T08:00:00Z";
        let stats = statistics(ProblemType::BinaryClassification, &baseline, "1", time).unwrap();
        let constraints = suggest_constraints(ProblemType::BinaryClassification, &stats);
        assert_eq!(constraints["binary_classification_constraints"]["f1"]["comparison_operator"], "LessThanThreshold");
        assert_eq!(
            constraints["binary_classification_constraints"]["false_positive_rate"]["comparison_operator"],
            "GreaterThanThreshold"
        );
        assert_eq!(
            violations(ProblemType::BinaryClassification, &stats, &constraints)["violations"],
            serde_json::json!([])
        );

        // Every tenth prediction flipped.
        let worse: Vec<Example> = baseline
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                if i % 10 == 0 {
                    e.prediction = if e.prediction == "1" { "0".into() } else { "1".into() };
                }
                e
            })
            .collect();
        let window = statistics(ProblemType::BinaryClassification, &worse, "1", time).unwrap();
        let found = violations(ProblemType::BinaryClassification, &window, &constraints);
        let f1 = found["violations"].as_array().unwrap().iter().find(|v| v["metric_name"] == "f1").expect("f1 dropped");
        assert_eq!(f1["constraint_check_type"], "LessThanThreshold");
        let description = f1["description"].as_str().unwrap();
        assert!(
            description.starts_with("Metric f1 with ") && description.contains(" was LessThanThreshold "),
            "{description}"
        );
    }
}

/// `mlops analyze` as a model-quality job (`analysis_type=MODEL_QUALITY`): a baselining job over a
/// CSV of labels, predictions and probabilities, then monitoring runs joining captured answers
/// with ground-truth files by `inferenceId`, else `eventId`. The window's metrics equal
/// scikit-learn's; worse labels raise violations.
mod model_quality_job {
    use super::{FIXTURES, read_json as read, run_analyze as analyze};
    use serde_json::{Value, json};
    use std::path::Path;

    fn column(case: &Value, key: &str) -> Vec<String> {
        case[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    fn assert_binary_metrics(stats: &Value, expected: &Value) {
        super::model_quality::assert_metrics(stats, "binary_classification_metrics", expected);
    }

    /// The binary case of the fixtures: labels, predictions and probabilities.
    fn binary_case() -> (Value, Vec<String>, Vec<String>, Vec<String>) {
        let cases: Value =
            serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/model_quality.json")).unwrap()).unwrap();
        let case = cases["binary"].clone();
        let columns = (column(&case, "labels"), column(&case, "predictions"), column(&case, "probabilities"));
        (case, columns.0, columns.1, columns.2)
    }

    fn path(p: &Path) -> String {
        p.display().to_string()
    }

    fn model_quality(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env =
            vec![("analysis_type", "MODEL_QUALITY".to_string()), ("problem_type", "BinaryClassification".to_string())];
        env.extend_from_slice(extra);
        env
    }

    /// A baselining job over a CSV with a header; returns the baseline folder.
    fn baseline(
        processing: &Path,
        labels: &[String],
        predictions: &[String],
        probabilities: &[String],
    ) -> (Value, std::path::PathBuf) {
        let input = processing.join("input/baseline_dataset_input");
        std::fs::create_dir_all(&input).unwrap();
        let mut csv = String::from("label,probability,prediction\n");
        for ((l, p), q) in labels.iter().zip(predictions).zip(probabilities) {
            csv.push_str(&format!("{l},{q},{p}\n"));
        }
        std::fs::write(input.join("baseline.csv"), csv).unwrap();
        let baseline = processing.join("baseline");
        let outcome = analyze(&model_quality(&[
            ("dataset_format", r#"{"csv": {"header": true}}"#.into()),
            ("dataset_source", path(&input)),
            ("output_path", path(&baseline)),
            ("ground_truth_attribute", "label".into()),
            ("inference_attribute", "prediction".into()),
            ("probability_attribute", "probability".into()),
        ]))
        .unwrap();
        (outcome, baseline)
    }

    /// The join key of request `i`: every other request carries an inferenceId.
    fn key(i: usize) -> String {
        if i.is_multiple_of(2) { format!("inference-{i}") } else { format!("event-{i}") }
    }

    /// Capture records answering `probability,label` at `time`, in the endpoint's hour folder.
    fn capture(
        processing: &Path,
        predictions: &[String],
        probabilities: &[String],
        time: chrono::DateTime<chrono::Utc>,
    ) {
        let capture = processing.join(format!("input/endpoint/churn/AllTraffic/{}", time.format("%Y/%m/%d/%H")));
        std::fs::create_dir_all(&capture).unwrap();
        let mut lines = String::new();
        for (i, (p, q)) in predictions.iter().zip(probabilities).enumerate() {
            let mut metadata = json!({"eventId": format!("event-{i}"),
                "inferenceTime": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
            if i.is_multiple_of(2) {
                metadata["inferenceId"] = json!(key(i));
            }
            let record = json!({"captureData": {"endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                "data": format!("{q},{p}"), "encoding": "CSV"}}, "eventMetadata": metadata, "eventVersion": "0"});
            lines.push_str(&format!("{record}\n"));
        }
        // Outside the window: never joined.
        let late = (time + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        lines.push_str(&format!(
            "{}\n",
            json!({"captureData": {"endpointOutput": {"observedContentType": "text/csv",
            "mode": "OUTPUT", "data": "0.9,1", "encoding": "CSV"}}, "eventMetadata": {"eventId": "late",
            "inferenceTime": late}, "eventVersion": "0"})
        ));
        std::fs::write(capture.join("15-00-000-a.jsonl"), lines).unwrap();
    }

    /// SageMaker ground-truth records for each request's label (and one for the late request).
    fn ground_truth(labels: &[String]) -> String {
        let mut records: String = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                format!(
                    "{}\n",
                    json!({"groundTruthData": {"data": l, "encoding": "CSV"},
                    "eventMetadata": {"eventId": key(i)}, "eventVersion": "0"})
                )
            })
            .collect();
        records.push_str(&format!(
            "{}\n",
            json!({"groundTruthData": {"data": "1", "encoding": "CSV"},
            "eventMetadata": {"eventId": "late"}, "eventVersion": "0"})
        ));
        records
    }

    /// A monitoring run over the window `[start, start + 1h)`.
    fn monitoring(
        processing: &Path,
        baseline: &Path,
        ground_truth_source: String,
        start: chrono::DateTime<chrono::Utc>,
        output: &Path,
        extra: &[(&'static str, String)],
    ) -> Result<Value, String> {
        let mut env = model_quality(&[
            ("dataset_format", r#"{"sagemakerCaptureJson": {"captureIndexNames": ["endpointOutput"]}}"#.into()),
            ("dataset_source", path(&processing.join("input/endpoint"))),
            ("ground_truth_source", ground_truth_source),
            ("output_path", path(output)),
            ("start_time", start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ("end_time", (start + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ("inference_attribute", "1".into()),
            ("probability_attribute", "0".into()),
            ("baseline_constraints", path(&baseline.join("constraints.json"))),
        ]);
        env.extend_from_slice(extra);
        analyze(&env)
    }

    #[test]
    fn baseline_then_monitoring_with_ground_truth() {
        let (case, labels, predictions, probabilities) = binary_case();
        let root = tempfile::tempdir().unwrap();
        let processing = root.path().join("opt/ml/processing");

        let (outcome, baseline) = baseline(&processing, &labels, &predictions, &probabilities);
        assert_eq!((outcome["mode"].as_str(), outcome["rows"].as_u64()), (Some("baseline"), Some(labels.len() as u64)));
        assert_binary_metrics(&read(&baseline.join("statistics.json")), &case["metrics"]);
        let constraints = read(&baseline.join("constraints.json"));
        assert_eq!(constraints["binary_classification_constraints"]["f1"]["comparison_operator"], "LessThanThreshold");

        let window: chrono::DateTime<chrono::Utc> = "2026-12-03T08:00:00Z".parse().unwrap();
        capture(&processing, &predictions, &probabilities, window + chrono::Duration::minutes(15));
        let monitor = |labels: &[String], name: &str| {
            let truth = processing.join(format!("groundtruth-{name}/2026/12/03/09"));
            std::fs::create_dir_all(&truth).unwrap();
            std::fs::write(truth.join("labels.jsonl"), ground_truth(labels)).unwrap();
            let output = processing.join(format!("result-{name}"));
            let source = path(&processing.join(format!("groundtruth-{name}")));
            let outcome = monitoring(&processing, &baseline, source, window, &output, &[]).unwrap();
            (outcome, read(&output.join("statistics.json")), read(&output.join("constraint_violations.json")))
        };

        let (outcome, statistics, violations) = monitor(&labels, "same");
        assert_eq!(outcome["mode"], "monitoring");
        assert_eq!(outcome["merge"]["records"], labels.len(), "the late record is outside the window: {outcome:#}");
        assert_eq!(outcome["merge"]["merge_rate"], 1.0);
        assert_binary_metrics(&statistics, &case["metrics"]);
        assert_eq!(violations["violations"], json!([]), "the baseline's own predictions hold");

        // Every tenth label flipped: the accuracy-like metrics fall below their thresholds.
        let flipped: Vec<String> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| if i.is_multiple_of(10) { if l == "1" { "0".into() } else { "1".into() } } else { l.clone() })
            .collect();
        let (outcome, _, violations) = monitor(&flipped, "flipped");
        let names: Vec<&str> =
            violations["violations"].as_array().unwrap().iter().map(|v| v["metric_name"].as_str().unwrap()).collect();
        assert!(names.contains(&"accuracy"), "{violations:#}");
        assert_eq!(outcome["violations"], names.len());

        // Settings a model-quality job needs are named.
        let error = analyze(&model_quality(&[
            ("dataset_format", r#"{"sagemakerCaptureJson": {}}"#.into()),
            ("dataset_source", path(&processing.join("input/endpoint"))),
            ("output_path", path(&processing.join("x"))),
            ("baseline_constraints", path(&baseline.join("constraints.json"))),
        ]))
        .unwrap_err();
        assert!(error.contains("`ground_truth_source` is required"), "{error}");
        let error = analyze(&[
            ("analysis_type", "MODEL_QUALITY".into()),
            ("problem_type", "Ranking".into()),
            ("dataset_format", r#"{"csv": {"header": true}}"#.into()),
            ("dataset_source", path(&processing.join("input/baseline_dataset_input"))),
            ("output_path", path(&processing.join("x"))),
        ])
        .unwrap_err();
        assert!(error.contains("`problem_type`: \"Ranking\""), "{error}");
    }

    /// As the aws target's job definition runs our image: `ground_truth_source` is the
    /// monitor's S3 prefix (moto here) and the command reads the labels that arrived since the
    /// window started; the metrics are those of the same labels in a folder.
    #[cfg(feature = "aws")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn monitoring_reads_ground_truth_from_s3() {
        let aws = crate::support::aws::AwsTestEnv::start().await;
        let (case, labels, predictions, probabilities) = binary_case();
        let root = tempfile::tempdir().unwrap();
        let processing = root.path().join("opt/ml/processing");
        let (_, baseline) = baseline(&processing, &labels, &predictions, &probabilities);
        let now = chrono::Utc::now();
        capture(&processing, &predictions, &probabilities, now);

        aws.create_versioned_bucket("mlops-ground-truth").await;
        let hour = now.format("%Y/%m/%d/%H");
        aws.put_object("mlops-ground-truth", &format!("churn/{hour}/labels.jsonl"), ground_truth(&labels).into_bytes())
            .await;
        // Another monitor's labels beside the prefix: not read.
        aws.put_object("mlops-ground-truth", &format!("churn-other/{hour}/labels.jsonl"), b"not json\n".to_vec()).await;
        let s3 = [
            ("AWS_ENDPOINT_URL", aws.endpoint_url().to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", aws.region().to_string()),
        ];
        let source = "s3://mlops-ground-truth/churn".to_string();
        let output = processing.join("result-s3");
        let start = now - chrono::Duration::minutes(30);
        let outcome = monitoring(&processing, &baseline, source.clone(), start, &output, &s3).unwrap();
        assert_eq!(outcome["merge"]["records"], labels.len(), "{outcome:#}");
        assert_eq!(outcome["merge"]["merge_rate"], 1.0);
        assert!(outcome["merge"]["label_delay_seconds"].as_f64().unwrap() < 3600.0, "{outcome:#}");
        assert_binary_metrics(&read(&output.join("statistics.json")), &case["metrics"]);

        // A window that starts after the labels arrived reads none of them.
        let later = now + chrono::Duration::hours(2);
        capture(&processing, &predictions, &probabilities, later + chrono::Duration::minutes(1));
        let error = monitoring(&processing, &baseline, source, later, &processing.join("x"), &s3).unwrap_err();
        assert!(error.contains("`ground_truth_source`") && error.contains("0 labels read"), "{error}");

        // A bucket that is not there is named.
        let error =
            monitoring(&processing, &baseline, "s3://no-such-bucket/x".into(), start, &processing.join("y"), &s3)
                .unwrap_err();
        assert!(error.contains("s3://no-such-bucket/x"), "{error}");
    }
}
