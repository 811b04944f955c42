//! Captured data as a monitoring job reads it (SageMaker's capture JSONL, whatever wrote the
//! files): every line is profiled or counted as unreadable, and the window's statistics and
//! suggested constraints are computed, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::analyzer::capture::{RowLayout, WindowReader};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut reader = WindowReader::new(RowLayout::default(), None, None, vec!["label".into(), "f1".into()]);
    let lines = text.lines().count() as u64;
    for line in text.lines() {
        let _ = reader.add_line(line);
    }
    assert!(reader.records + reader.unreadable <= lines, "more records than lines");
    let mut profile = reader.into_profile();
    let _ = mlops::analyzer::statistics::statistics(&mut profile);
    let _ = mlops::analyzer::constraints::suggest(&profile);
});
