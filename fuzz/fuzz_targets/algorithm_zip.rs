//! A `custom_algorithm_docker` zip: its layout is accepted or refused with an error, and an
//! accepted one unpacks under the destination only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::serving::algorithm::{inspect, unpack};

fuzz_target!(|data: &[u8]| {
    let Ok(layout) = inspect(data) else { return };
    let base = std::env::temp_dir().join(format!("mlops-fuzz-zip-{}", std::process::id()));
    let dest = base.join("algorithm");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&dest).unwrap();
    let _ = unpack(data, &layout, &dest);
    // Nothing lands beside the destination (an entry named `../x` or an absolute path).
    let outside: Vec<_> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("algorithm")], "written outside the destination");
    let _ = std::fs::remove_dir_all(&base);
});
