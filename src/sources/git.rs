//! A Git source: a bare mirror under the data directory, fetched with the `git` command. The
//! command rather than a library: it takes every URL, transport and credential setup git users
//! already have (SSH agents, credential helpers, `insteadOf` rules), and it is the reference
//! implementation of all of them.

use super::{Revision, SourceError};
use crate::config::GitSource;
use bytes::Bytes;
use std::path::PathBuf;
use std::time::Duration;

pub struct GitRepo {
    url: String,
    branch: String,
    path: String,
    /// The bare mirror.
    dir: PathBuf,
    timeout: Duration,
    max_bytes: u64,
}

impl GitRepo {
    pub fn new(source: &GitSource, dir: PathBuf, timeout: Duration, max_bytes: u64) -> GitRepo {
        GitRepo {
            url: source.url.clone(),
            branch: source.branch.clone(),
            path: source.path.clone(),
            dir,
            timeout,
            max_bytes,
        }
    }

    fn tracking_ref(&self) -> String {
        format!("refs/mlops/{}", self.branch)
    }

    /// Runs `git ARGS` in the mirror; its stdout, or the error with git's own words.
    async fn git(&self, args: &[&str]) -> Result<Vec<u8>, SourceError> {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            // Never wait for a password on a terminal nobody watches.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // Started here, not by `output()` on whichever thread polls it first (a pinned worker).
        let child = crate::server::worker_cpus::spawn_child(|| {
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()
        })
        .map_err(|e| SourceError(format!("cannot run git (is it installed?): {e}")))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                SourceError(format!(
                    "git {} did not finish within {}",
                    args.first().unwrap_or(&""),
                    humantime::format_duration(self.timeout)
                ))
            })?
            .map_err(|e| SourceError(format!("git {}: {e}", args.first().unwrap_or(&""))))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(SourceError(format!("git {} failed: {}", args.first().unwrap_or(&""), stderr.trim())))
    }

    /// Fetches the branch and reads the file at its newest commit.
    pub async fn fetch(&self) -> Result<Revision, SourceError> {
        if !self.dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| SourceError(format!("cannot create {}: {e}", self.dir.display())))?;
            self.git(&["init", "--bare", "--quiet"]).await?;
        }
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        // `--` ends the options: the URL is data, whatever it looks like.
        self.git(&["fetch", "--quiet", "--no-tags", "--", &self.url, &refspec]).await.map_err(|e| {
            if e.0.contains("couldn't find remote ref") {
                SourceError(format!("{} has no branch {:?}", self.url, self.branch))
            } else {
                e
            }
        })?;
        let commit = format!("{}^{{commit}}", self.tracking_ref());
        let sha = String::from_utf8_lossy(&self.git(&["rev-parse", "--verify", "--quiet", &commit]).await?)
            .trim()
            .to_string();
        let log = self.git(&["log", "-1", "--format=%an <%ae>%x00%B", &sha, "--"]).await?;
        let log = String::from_utf8_lossy(&log);
        let (author, message) = log.split_once('\0').unwrap_or((log.as_ref(), ""));
        let object = format!("{sha}:{}", self.path);
        let content = match self.git(&["cat-file", "-s", &object]).await {
            Err(_) => None, // the commit has no such file
            Ok(size) => {
                let size: u64 = String::from_utf8_lossy(&size).trim().parse().unwrap_or(u64::MAX);
                if size > self.max_bytes {
                    return Err(SourceError(format!(
                        "{} at {sha} is {size} bytes, more than config_sources.max_bytes ({})",
                        self.path, self.max_bytes
                    )));
                }
                Some(Bytes::from(self.git(&["cat-file", "blob", &object]).await?))
            }
        };
        Ok(Revision {
            id: sha,
            author: Some(author.trim().to_string()),
            message: Some(message.trim().to_string()),
            content,
        })
    }
}
