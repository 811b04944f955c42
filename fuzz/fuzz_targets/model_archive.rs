//! A `model.tar.gz` (or a bare model file) as the solution's `model_artifact_location` names it:
//! finding the model file in it, and unpacking it for a custom algorithm, either fail with an
//! error or stay within the size limit and under the model folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::serving::model_archive::{extract_model_file_with_limit, unpack_archive};

const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = extract_model_file_with_limit(data, LIMIT) {
        assert!(file.len() as u64 <= LIMIT.max(data.len() as u64), "{} bytes out of {}", file.len(), data.len());
    }
    let dir = std::env::temp_dir().join(format!("mlops-fuzz-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if unpack_archive(data, &dir, LIMIT).is_ok() {
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [".ready", "model"], "what an unpacked archive leaves");
    } else {
        // A refused archive leaves no model folder (a staging folder beside it may remain until
        // the next attempt clears it).
        assert!(!dir.join("model").exists() && !dir.join(".ready").exists(), "half-unpacked model visible");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
