//! `byom_image_builder` on the local target: the committed fixture algorithm
//! (`tests/fixtures/algorithms/linear`, SageMaker's bring-your-own layout) zipped, uploaded,
//! built without a container engine (its requirements installed into its own virtual
//! environment from the package registry), and listed under `/v1/algorithms`.

use crate::on_both_stores;
use crate::support::api::fixture;
use crate::support::server::{ADMIN, OPERATOR, VIEWER};
use crate::support::{TestDb, TestServer};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// The files of a fixture folder as a zip (relative paths, executable bits kept), with
/// `extra` entries added and entries named in `without` left out.
pub fn zip_folder(folder: &Path, extra: &[(&str, &[u8])], without: &[&str]) -> Vec<u8> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(folder, folder, &mut files);
    files.retain(|(name, _)| !without.contains(&name.as_str()));
    files.extend(extra.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    for (name, bytes) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        writer.start_file(name, options).unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap();
    out.into_inner()
}

pub fn image_builder_body(key: &str, repo: &str, tag: &str) -> Value {
    json!({"pipeline_type": "byom_image_builder", "custom_algorithm_docker": key, "ecr_repo_name": repo, "image_tag": tag})
}

/// Provisions a `byom_image_builder` pipeline for the zip at `key`; returns its id.
pub async fn start_build(server: &TestServer, key: &str, repo: &str, tag: &str) -> String {
    server.provision(&image_builder_body(key, repo, tag)).await["pipeline_id"].as_str().unwrap().to_string()
}

/// Builds the fixture as `repo:tag` and waits for the build to finish.
pub async fn build_fixture_algorithm(server: &TestServer, repo: &str, tag: &str) -> String {
    let zip = zip_folder(&fixture("algorithms/linear"), &[], &[]);
    assert_eq!(server.put_asset("algorithms/linear.zip", zip).await.status(), 201);
    let id = start_build(server, "algorithms/linear.zip", repo, tag).await;
    server.wait_for_longer(&id, "active").await;
    id
}

async fn builds_lists_and_removes_an_algorithm(db: TestDb) {
    let server = TestServer::start(db).await;
    let id = build_fixture_algorithm(&server, "mlops/custom", "linear-1").await;
    let pipeline = server.pipeline(&id).await;
    let outputs = &pipeline["stages"][0]["outputs"];
    assert_eq!(outputs["custom_algorithm_image_uri"], "mlops/custom:linear-1");
    assert_eq!(outputs["mode"], "process");
    let events = server.events(&id).await;
    let built = events.as_array().unwrap().iter().find(|e| e["kind"] == "image.built").expect("a build event");
    assert!(built["message"].as_str().unwrap().contains("process mode (no container engine"), "{built:#}");

    let listed: Value = server.get("/v1/algorithms", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed:#}");
    let one: Value =
        server.get("/v1/algorithms/mlops%2Fcustom:linear-1", VIEWER).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["name"], "mlops/custom:linear-1");
    assert_eq!(one["program_dir"], "program");
    assert_eq!(one["has_train"], true);
    assert_eq!(one["requirements"], "requirements.txt");
    assert_eq!(one["pipeline_id"], id.as_str());

    // The requirement went into the algorithm's own environment.
    let home = server.db.dir.path().join("data/algorithms").join(one["sha256"].as_str().unwrap());
    let site_packages: Vec<_> = std::fs::read_dir(home.join("venv/lib"))
        .unwrap()
        .map(|e| e.unwrap().path().join("site-packages/six.py"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(site_packages.len(), 1, "six installed in the venv of {}", home.display());
    let serve = home.join("code/program/serve");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(serve).unwrap().permissions().mode() & 0o111, 0o111, "serve made executable");

    let deleted =
        server.http.delete(server.url(&format!("/v1/pipelines/{id}"))).bearer_auth(ADMIN).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    server.wait_for(&id, "deleted").await;
    let gone = server.get("/v1/algorithms/mlops%2Fcustom:linear-1", VIEWER).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    server.stop().await;
}

async fn a_bad_layout_fails_naming_the_file(db: TestDb) {
    let server = TestServer::start(db).await;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("no-serve", zip_folder(&fixture("algorithms/linear"), &[], &["program/serve"]), "no `serve` file"),
        ("no-dockerfile", zip_folder(&fixture("algorithms/linear"), &[], &["Dockerfile"]), "no `Dockerfile`"),
        (
            "escape",
            zip_folder(&fixture("algorithms/linear"), &[("../outside/serve.py", b"x")], &[]),
            "`../outside/serve.py` has an empty, `.` or `..` path segment",
        ),
    ];
    for (tag, zip, reason) in cases {
        let key = format!("algorithms/{tag}.zip");
        assert_eq!(server.put_asset(&key, zip).await.status(), 201);
        let id = start_build(&server, &key, "mlops-custom", tag).await;
        let failed = server.wait_until(&id, |p| p["state"] == "failed").await;
        assert!(failed["last_error"].as_str().unwrap().contains(reason), "{tag}: {failed:#}");
    }
    assert!(!server.db.dir.path().join("outside").exists());
    let listed: Value = server.get("/v1/algorithms", OPERATOR).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    server.stop().await;
}

/// A build whose requirements never finish installing (here: a package index that accepts and
/// never answers) fails after `serving.install_timeout`, and leaves no pip behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_never_finishes_installing_is_stopped() {
    let db = TestDb::new(crate::support::Db::Sqlite).await;
    let mut settings = crate::support::server::test_settings(&db);
    settings.serving.install_timeout = std::time::Duration::from_secs(10);
    let server = TestServer::start_with(db, settings).await;
    let index = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = index.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = index.accept().await {
            held.push(connection);
        }
    });
    let requirements = format!("--index-url http://127.0.0.1:{port}/simple/\nsome-package-that-never-comes\n");
    let zip = zip_folder(
        &fixture("algorithms/linear"),
        &[("requirements.txt", requirements.as_bytes())],
        &["requirements.txt"],
    );
    assert_eq!(server.put_asset("algorithms/stuck.zip", zip).await.status(), 201);
    let id = start_build(&server, "algorithms/stuck.zip", "mlops-custom", "stuck").await;
    let failed = server.wait_for_longer(&id, "failed").await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("did not finish within 10s (serving.install_timeout) and was stopped"), "{error}");
    let home = server.db.dir.path().join("data").display().to_string();
    assert_eq!(crate::custom::processes_mentioning(&home), 0, "nothing of the build runs on");
    silent.abort();
    server.stop().await;
}

on_both_stores!(builds_lists_and_removes_an_algorithm, a_bad_layout_fails_naming_the_file);
