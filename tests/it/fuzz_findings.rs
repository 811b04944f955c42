//! Inputs the fuzzers once failed on (`tests/fixtures/fuzz/`, see its README), replayed through
//! the checks of their fuzz targets (`fuzz/fuzz_targets/`): each is refused with an error or
//! handled, never a panic.

use mlops::serving::builtin::BuiltinModel;
use mlops::serving::xgboost::ModelLimits;
use std::path::PathBuf;

fn findings(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no findings under {}", dir.display());
    files.into_iter().map(|path| (path.display().to_string(), std::fs::read(&path).unwrap())).collect()
}

#[test]
fn model_files_load_or_are_refused_and_loaded_ones_evaluate() {
    for (name, file) in findings("model_file") {
        eprintln!("replaying {name}"); // names the file a panic below comes from
        let loaded = BuiltinModel::load(&file, "", &ModelLimits::default());
        let Ok(model) = loaded else { continue };
        let features = model.num_features().clamp(1, 4096);
        let mut out = Vec::new();
        for value in [0.0f32, f32::NAN, -1.0e30, 1.0e30] {
            let _ = model.predict_rows(&vec![value; features], &mut out);
        }
        let _ = model.predict_rows(&vec![0.5f32; features * 2], &mut out);
    }
}

#[test]
fn onnx_graphs_tract_panics_on_are_refused_at_load_naming_the_runtime() {
    let onnx: Vec<_> = findings("model_file").into_iter().filter(|(name, _)| name.ends_with(".onnx")).collect();
    assert!(onnx.len() >= 2, "the ONNX findings are missing");
    for (name, file) in onnx {
        let error = BuiltinModel::load(&file, "onnx", &ModelLimits::default()).err().expect(&name);
        let message = error.to_string();
        assert!(message.contains("cannot prepare this model: the runtime panicked"), "{name}: {message}");
    }
}

/// A baseline dataset is refused, or its statistics and suggested constraints describe it: the
/// same data checked against them shows no violation and no drift.
#[test]
fn baselines_are_refused_or_pass_their_own_constraints() {
    use mlops::analyzer::{check::check, constraints::suggest, profile_csv, statistics::statistics};
    for (name, data) in findings("baseline_self_check") {
        let mut baseline = match profile_csv(&data[..]) {
            Ok(profile) => profile,
            Err(e) if name.ends_with("header_names_a_column_twice.csv") => {
                let message = e.to_string();
                assert!(message.starts_with("the header row names \"mean\" twice (columns 1 and 2)"), "{message}");
                continue;
            }
            Err(_) => continue,
        };
        let stats = statistics(&mut baseline);
        let constraints = suggest(&baseline);
        let report = check(&stats, &constraints, &profile_csv(&data[..]).unwrap()).unwrap();
        assert!(report.violations.is_empty(), "{name}: {:#?}", report.violations);
        assert!(report.drift.iter().all(|d| !d.flagged), "{name}: {:#?}", report.drift);
    }
}
