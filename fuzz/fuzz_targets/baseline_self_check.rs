//! A baseline dataset (a CSV with a header row, as a data-quality baseline job reads it): profiled
//! into statistics and suggested constraints, which read back unchanged from the JSON files a
//! baseline writes; and the same data, checked as a monitoring window against them, shows no
//! violation and no drift (a baseline describes its own data).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::analyzer::check::check;
use mlops::analyzer::constraints::{Constraints, suggest};
use mlops::analyzer::profile_csv;
use mlops::analyzer::statistics::{Statistics, statistics};

fuzz_target!(|data: &[u8]| {
    let Ok(mut baseline) = profile_csv(data) else { return };
    let stats = statistics(&mut baseline);
    let constraints = suggest(&baseline);

    let written = serde_json::to_string(&stats).expect("statistics serialise");
    let reread: Statistics =
        serde_json::from_str(&written).unwrap_or_else(|e| panic!("statistics.json does not read back: {e}\n{written}"));
    assert_eq!(reread, stats, "statistics.json reads back different:\n{written}");
    let written = serde_json::to_string(&constraints).expect("constraints serialise");
    let reread: Constraints =
        serde_json::from_str(&written).unwrap_or_else(|e| panic!("constraints.json does not read back: {e}\n{written}"));
    assert_eq!(reread, constraints, "constraints.json reads back different:\n{written}");

    let window = profile_csv(data).expect("read once, reads again");
    let report = check(&stats, &constraints, &window).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.violations.is_empty(), "the baseline violates its own constraints: {:#?}", report.violations);
    let flagged: Vec<_> = report.drift.iter().filter(|d| d.flagged).collect();
    assert!(flagged.is_empty(), "the baseline drifts from itself: {flagged:#?}");
});
