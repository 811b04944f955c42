//! A `moto_server` child process on a loopback port of its own choosing, owned by the test
//! (killed on drop).
//!
//! `.ci/run` installs `moto[server]` (pinned in `.ci/requirements.txt`) into a venv and exports
//! `CI_PYTHON_BIN`; local runs default to `~/.cache/mlops-venvs/ci/bin`. A missing moto fails
//! the test with the commands to install it: the aws tests are never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct Moto {
    url: String,
    http: reqwest::Client,
    child: Child,
    stderr_log: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn python_bin() -> PathBuf {
    match std::env::var_os("CI_PYTHON_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/mlops-venvs/ci/bin")
        }
    }
}

/// What moto (werkzeug) prints once it listens: `Running on http://127.0.0.1:<port>`.
const LISTENING: &str = "Running on http://127.0.0.1:";

/// The port moto printed it listens on, once the line is complete.
fn listening_port(log: &str) -> Option<u16> {
    let rest = &log[log.find(LISTENING)? + LISTENING.len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

fn read_log(path: &std::path::Path) -> String {
    std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

impl Moto {
    pub async fn start() -> Moto {
        let bin = python_bin().join("moto_server");
        if !bin.exists() {
            panic!(
                "moto_server not found at {}. The aws tests need moto (never skipped). Install it with:\n\
                 \n    python3 -m venv ~/.cache/mlops-venvs/ci\n    \
                 ~/.cache/mlops-venvs/ci/bin/pip install -r .ci/requirements.txt\n\
                 \nor run .ci/run, or point CI_PYTHON_BIN at a directory holding moto_server.",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr_log = dir.path().join("moto.stderr");
        let log = std::fs::File::create(&stderr_log).expect("moto log file");
        let mut child = Command::new(&bin)
            // Port 0: the kernel picks a free one as moto binds it, read back from its log. (A port
            // picked here and released for moto to bind could be taken by another test's moto in
            // between; this test would then talk to that one.)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let started = Instant::now();
        let url = loop {
            let log = read_log(&stderr_log);
            if let Some(port) = listening_port(&log) {
                break format!("http://127.0.0.1:{port}");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited during start-up ({status}); its stderr:\n{log}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server printed no port within 30 s:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut moto = Moto { url, http, child, stderr_log, _dir: dir };
        moto.wait_ready(Duration::from_secs(30)).await;
        moto
    }

    async fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited during start-up ({status}); its stderr:\n{}", self.stderr());
            }
            if let Ok(resp) = self.http.get(format!("{}/moto-api/", self.url)).send().await
                && resp.status().is_success()
            {
                return;
            }
            if started.elapsed() > timeout {
                panic!("moto_server did not answer GET /moto-api/ within {timeout:?}; its stderr:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What moto wrote to stderr so far (its request log and tracebacks).
    pub fn stderr(&self) -> String {
        read_log(&self.stderr_log)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Wipes all of moto's state (a few ms).
    pub async fn reset(&self) {
        let resp = self.http.post(format!("{}/moto-api/reset", self.url)).send().await.expect("moto reset");
        assert!(resp.status().is_success(), "moto reset: {}", resp.status());
    }

    /// moto's whole state as JSON (`GET /moto-api/data.json`), e.g. SNS `sent_notifications`.
    pub async fn data(&self) -> serde_json::Value {
        self.http.get(format!("{}/moto-api/data.json", self.url)).send().await.unwrap().json().await.unwrap()
    }

    /// Stops moto now (otherwise on drop).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
