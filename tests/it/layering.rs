//! Who may import whom (docs/ARCHITECTURE.md §1): the rules, checked on the source.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files under `src/` (relative, with `/`) that mention `crate::<module>`.
fn importers_of(module: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let needle = format!("crate::{module}");
    files
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().filter(|l| !l.trim_start().starts_with("//")).any(|l| {
                l.match_indices(&needle).any(|(i, _)| {
                    let after = l[i + needle.len()..].chars().next();
                    after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                })
            })
        })
        .map(|f| f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/"))
        .collect()
}

fn assert_only(module: &str, allowed: impl Fn(&str) -> bool) {
    let offenders: Vec<String> = importers_of(module).into_iter().filter(|f| !allowed(f)).collect();
    assert!(offenders.is_empty(), "crate::{module} is imported by {offenders:?}");
}

#[test]
fn http_is_imported_only_by_app_and_openapi() {
    assert_only("http", |f| f.starts_with("http/") || f == "app.rs" || f == "openapi.rs");
}

#[test]
fn nothing_below_app_imports_app() {
    assert_only("app", |f| f == "app.rs" || f == "main.rs");
}

#[test]
fn auth_does_not_import_config() {
    assert!(!importers_of("config").contains(&"auth.rs".to_string()));
}

#[test]
fn the_domain_imports_nothing_of_ours_but_itself() {
    for module in ["store", "services", "targets", "jobs", "http", "app", "config", "serving", "artifacts", "auth"] {
        assert_only(module, |f| !f.starts_with("domain/"));
    }
}

/// The analyzer is a library the jobs, the API and the command call: nothing of ours below it.
#[test]
fn the_analyzer_imports_nothing_of_ours_but_itself() {
    for module in [
        "store",
        "services",
        "targets",
        "jobs",
        "http",
        "app",
        "config",
        "serving",
        "artifacts",
        "auth",
        "domain",
        "state",
    ] {
        assert_only(module, |f| !f.starts_with("analyzer/"));
    }
}

#[test]
fn store_targets_and_jobs_stay_below_the_services() {
    for module in ["services", "http", "state"] {
        assert_only(module, |f| !(f.starts_with("store/") || f.starts_with("targets/") || f.starts_with("jobs/")));
    }
    assert_only("jobs", |f| !f.starts_with("store/") && !f.starts_with("targets/"));
    assert_only("targets", |f| !f.starts_with("store/"));
}

/// Targets reach the database only through their port (`TargetStore`).
#[test]
fn targets_write_through_their_port() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/targets");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files.iter().filter(|f| !f.ends_with("targets/mod.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains("DynStore"), "{} holds the whole store", file.display());
    }
}
