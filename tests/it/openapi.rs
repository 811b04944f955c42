//! `openapi/openapi.json` is generated from the code; this fails with a diff when it drifts.

#[test]
fn committed_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).expect("openapi/openapi.json exists");
    let generated = mlops::openapi::document_json();
    if committed != generated {
        let diff: Vec<String> = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(15)
            .map(|(i, (a, b))| format!("line {}:\n  committed: {a}\n  generated: {b}", i + 1))
            .collect();
        panic!(
            "openapi/openapi.json is out of date ({} vs {} lines). Regenerate it with\n  cargo run -- openapi > openapi/openapi.json\nFirst differences:\n{}",
            committed.lines().count(),
            generated.lines().count(),
            diff.join("\n")
        );
    }
}
