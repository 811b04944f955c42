//! The hand-written prediction encoder: in every format the body reads back as exactly the
//! predictions, in order (the shortest round-trip digits, as Python's `repr` writes them; NaN
//! and the infinities spelt as the XGBoost container spells them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::serving::codec::{ResponseFormat, encode_predictions};

/// The numbers of a body, in order: the JSON layout's fixed words removed, then split at the
/// separators the encoder writes.
fn numbers(body: &str) -> Vec<f64> {
    let bare = body.replace("{\"predictions\": ", "").replace("{\"score\": ", "").replace('}', "");
    bare.split([',', ' ', '[', ']', '\n'])
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<f64>().unwrap_or_else(|e| panic!("{t:?} in {body:?}: {e}")))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else { return };
    let per_row = usize::from(shape % 4) + 1;
    let values: Vec<f64> = rest.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    let values = &values[..values.len() / per_row * per_row];
    for format in [ResponseFormat::Csv, ResponseFormat::Json, ResponseFormat::JsonLines] {
        let (_, body) = encode_predictions(format, values, per_row);
        let text = std::str::from_utf8(&body).expect("the encoder writes UTF-8");
        let decoded = numbers(text);
        assert_eq!(decoded.len(), values.len(), "{format:?}: {text:?}");
        for (got, want) in decoded.iter().zip(values) {
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{format:?}: {want:e} written as {text:?}"
            );
        }
        if format == ResponseFormat::Csv {
            assert_eq!(text.lines().count(), values.len() / per_row, "one line per row");
        }
    }
});
