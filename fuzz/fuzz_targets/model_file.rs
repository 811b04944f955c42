//! A model file as an operator uploads it (XGBoost JSON or UBJSON, ONNX): loading it either
//! fails with an error or gives a model that evaluates any row without panicking, within the
//! limits the server loads models with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::serving::builtin::BuiltinModel;
use mlops::serving::xgboost::ModelLimits;

/// tract panics on graphs it does not expect (in its own code or in the crates it calls), and
/// the model code turns those panics into load and evaluation errors; a panic in our code is a
/// finding even when caught. libfuzzer-sys's own hook aborts on every panic, caught or not, so it
/// is replaced once, after its initialisation. A panic nothing catches still aborts: libfuzzer-sys
/// aborts when the target panics.
fn panics_in_our_code_abort() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map_or("", |l| l.file());
            if !file.contains("/.cargo/registry/") {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    panics_in_our_code_abort();
    // The framework as the file shows it (`model_framework` only has to agree with the file).
    let Ok(model) = BuiltinModel::load(data, "", &ModelLimits::default()) else { return };
    let features = model.num_features().clamp(1, 4096);
    let mut out = Vec::new();
    for value in [0.0f32, f32::NAN, -1.0e30, 1.0e30] {
        let _ = model.predict_rows(&vec![value; features], &mut out);
    }
    // Two rows at once: per-row outputs must not depend on a neighbour.
    let _ = model.predict_rows(&vec![0.5f32; features * 2], &mut out);
});
