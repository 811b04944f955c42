//! Custom algorithms without a container engine (`byom_image_builder` on the local target).
//!
//! The solution's image builder takes a zip holding a `Dockerfile` and code laid out as
//! SageMaker expects (a `serve` entry point, optionally `train`), and builds an image. Here the
//! same zip is checked, kept as a content-addressed snapshot, and unpacked on each replica that
//! runs it, with its Python dependencies (`requirements.txt`) in a virtual environment owned by
//! the algorithm; the algorithm then runs as a child process (`serving::process`).
//!
//! The zip is hostile input until checked: entries may not escape the folder (absolute paths,
//! `..`), links are refused, and the number and total unpacked size of entries are bounded.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Entries a zip may hold.
const MAX_ENTRIES: usize = 10_000;
/// Unpacked bytes a zip may hold.
pub const MAX_UNPACKED_BYTES: u64 = 1024 * 1024 * 1024;

/// What a checked zip holds: paths are relative to its root (a single top folder that holds the
/// `Dockerfile`, as zipping a folder gives, is stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The folder stripped from every entry (`""` when the `Dockerfile` is at the top).
    pub strip: String,
    /// The folder holding `serve` (`""` for the root): the program's working directory.
    pub program_dir: String,
    pub has_train: bool,
    /// `requirements.txt` of the program folder, or else of the root.
    pub requirements: Option<String>,
    pub files: usize,
    pub unpacked_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("custom_algorithm_docker is not a readable zip archive: {0}")]
    NotZip(String),
    #[error("custom_algorithm_docker: `{file}` {reason}")]
    Unsafe { file: String, reason: &'static str },
    #[error(
        "custom_algorithm_docker has no `Dockerfile` at its top level (nor in a single top folder); the image builder needs one"
    )]
    NoDockerfile,
    #[error(
        "custom_algorithm_docker has no `serve` file: SageMaker starts a serving container with `serve`, so the zip must hold that entry point (e.g. `program/serve`)"
    )]
    NoServe,
    #[error("custom_algorithm_docker has several `serve` files ({0}); keep one entry point")]
    SeveralServe(String),
    #[error("custom_algorithm_docker holds more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("custom_algorithm_docker unpacks to more than {MAX_UNPACKED_BYTES} bytes")]
    TooLarge,
}

fn archive(zip: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>, LayoutError> {
    zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| LayoutError::NotZip(e.to_string()))
}

/// A checked entry name: relative, no `..`, no empty or `.` segments other than a trailing `/`.
fn safe_name(name: &str) -> Result<String, LayoutError> {
    let unsafe_name = |reason| LayoutError::Unsafe { file: name.to_string(), reason };
    if name.starts_with('/') || name.contains('\\') || name.contains('\0') {
        return Err(unsafe_name("is not a relative path inside the archive"));
    }
    let trimmed = name.trim_end_matches('/');
    if trimmed.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(unsafe_name("has an empty, `.` or `..` path segment"));
    }
    Ok(trimmed.to_string())
}

/// Checks the zip's layout, naming the file at fault.
pub fn inspect(zip: &[u8]) -> Result<Layout, LayoutError> {
    let mut archive = archive(zip)?;
    if archive.len() > MAX_ENTRIES {
        return Err(LayoutError::TooManyEntries);
    }
    let mut files = Vec::new();
    let mut unpacked = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| LayoutError::NotZip(e.to_string()))?;
        let raw = entry.name().map_err(|e| LayoutError::NotZip(e.to_string()))?.into_owned();
        let name = safe_name(&raw)?;
        if entry.is_symlink() {
            return Err(LayoutError::Unsafe { file: name, reason: "is a link; the archive may hold files only" });
        }
        if entry.is_dir() {
            continue;
        }
        unpacked = unpacked.saturating_add(entry.size());
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(LayoutError::TooLarge);
        }
        // macOS archive litter is not part of the build context.
        if name.starts_with("__MACOSX/") || name.rsplit('/').next() == Some(".DS_Store") {
            continue;
        }
        files.push(name);
    }
    let strip = if files.iter().any(|f| f == "Dockerfile") {
        String::new()
    } else {
        let tops: std::collections::BTreeSet<&str> =
            files.iter().filter_map(|f| f.split_once('/')).map(|(t, _)| t).collect();
        match tops.iter().next() {
            Some(top)
                if tops.len() == 1
                    && files.iter().all(|f| f.starts_with(&format!("{top}/")))
                    && files.iter().any(|f| *f == format!("{top}/Dockerfile")) =>
            {
                format!("{top}/")
            }
            _ => return Err(LayoutError::NoDockerfile),
        }
    };
    let relative: Vec<&str> = files.iter().map(|f| &f[strip.len()..]).collect();
    let serves: Vec<&str> = relative.iter().copied().filter(|f| f.rsplit('/').next() == Some("serve")).collect();
    let serve = match serves.as_slice() {
        [] => return Err(LayoutError::NoServe),
        [one] => *one,
        several => return Err(LayoutError::SeveralServe(several.join(", "))),
    };
    let program_dir = serve.rsplit_once('/').map(|(dir, _)| dir.to_string()).unwrap_or_default();
    let in_program =
        |file: &str| if program_dir.is_empty() { file.to_string() } else { format!("{program_dir}/{file}") };
    let has_train = relative.contains(&in_program("train").as_str());
    let requirements = [in_program("requirements.txt"), "requirements.txt".to_string()]
        .into_iter()
        .find(|r| relative.contains(&r.as_str()));
    Ok(Layout { strip, program_dir, has_train, requirements, files: relative.len(), unpacked_bytes: unpacked })
}

/// Unpacks the checked zip into `dest` (which must not exist yet), making `serve` and `train`
/// executable as the solution's build does.
pub fn unpack(zip: &[u8], layout: &Layout, dest: &Path) -> Result<(), std::io::Error> {
    let mut archive = archive(zip).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dest)?;
    let mut budget = MAX_UNPACKED_BYTES;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(std::io::Error::other)?;
        let raw = entry.name().map_err(std::io::Error::other)?.into_owned();
        let name = safe_name(&raw).map_err(std::io::Error::other)?;
        if entry.is_dir() || !name.starts_with(&layout.strip) || name.starts_with("__MACOSX/") {
            continue;
        }
        let relative = &name[layout.strip.len()..];
        let path = dest.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&path)?;
        // The declared sizes were checked; the bytes are counted again as they come out.
        let copied = std::io::copy(&mut (&mut entry).take(budget + 1), &mut file)?;
        if copied > budget {
            return Err(std::io::Error::other("the archive unpacks to more than it declares"));
        }
        budget -= copied;
        let base = relative.rsplit('/').next().unwrap_or(relative);
        if base == "serve" || base == "train" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// Where an algorithm lives on this replica once materialized.
#[derive(Debug, Clone)]
pub struct Materialized {
    /// The unpacked zip.
    pub code: PathBuf,
    /// The program's folder (where `serve` is): the child's working directory.
    pub program: PathBuf,
    /// The virtual environment; its `bin` goes first on the child's `PATH`.
    pub venv: PathBuf,
    /// What installing the requirements printed (the tail), for the events.
    pub install_log: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("unpacking the algorithm failed: {0}")]
    Unpack(std::io::Error),
    #[error("creating the algorithm's virtual environment failed: {0}")]
    Venv(String),
    #[error("installing the algorithm's requirements ({file}) failed:\n{output}")]
    Requirements { file: String, output: String },
    /// Making the environment took longer than `serving.install_timeout`; its processes were
    /// killed.
    #[error(
        "{step} did not finish within {limit:?} (serving.install_timeout) and was stopped; its last output:\n{output}"
    )]
    TooSlow { step: String, limit: std::time::Duration, output: String },
}

/// The last `lines` lines of a command's output.
fn tail(output: &std::process::Output, lines: usize) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` to its end, its output kept, unless `deadline` comes first: then it and every
/// process it started are killed (pip runs build backends as processes of their own, and a
/// package's build can run forever) and the error says which `step` it was.
async fn run_until(
    mut command: tokio::process::Command,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
    step: &str,
) -> Result<Result<std::process::Output, std::io::Error>, MaterializeError> {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = match crate::server::worker_cpus::spawn_child(|| command.spawn()) {
        Ok(child) => child,
        Err(e) => return Ok(Err(e)),
    };
    let group = super::process::ProcessGroup::of(&child);
    let output = child.wait_with_output();
    tokio::pin!(output);
    tokio::select! {
        output = &mut output => Ok(output),
        () = tokio::time::sleep_until(deadline) => {
            // Killed while the child is still ours (not reaped), so the group id is its own.
            if let Some(group) = group {
                group.kill();
            }
            let output = tokio::time::timeout(std::time::Duration::from_secs(5), output).await;
            let output = output.ok().and_then(Result::ok).map(|o| tail(&o, 20)).unwrap_or_default();
            Err(MaterializeError::TooSlow { step: step.to_string(), limit, output })
        }
    }
}

/// Makes a virtual environment at `venv` with `python` and installs `requirements` (a file
/// below the folder given with it, where pip runs) into it from the package registry, within
/// `limit` in all; returns the end of pip's output. Without requirements there is no pip either,
/// which makes the venv in a fraction of the time.
pub async fn make_venv(
    python: &str,
    venv: &Path,
    requirements: Option<(&str, &Path)>,
    limit: std::time::Duration,
) -> Result<String, MaterializeError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut venv_args = vec!["-m".to_string(), "venv".to_string()];
    if requirements.is_none() {
        venv_args.push("--without-pip".into());
    }
    venv_args.push(venv.display().to_string());
    let mut make = tokio::process::Command::new(python);
    make.args(&venv_args);
    let made = run_until(make, deadline, limit, "creating the virtual environment")
        .await?
        .map_err(|e| MaterializeError::Venv(format!("{python}: {e}")))?;
    if !made.status.success() {
        return Err(MaterializeError::Venv(tail(&made, 20)));
    }
    let Some((file, dir)) = requirements else {
        return Ok("no requirements.txt".into());
    };
    let mut install = tokio::process::Command::new(venv.join("bin/pip"));
    install.args(["install", "--disable-pip-version-check", "--no-input", "-r"]).arg(dir.join(file)).current_dir(dir);
    let installed = run_until(install, deadline, limit, &format!("installing {file}"))
        .await?
        .map_err(|e| MaterializeError::Requirements { file: file.to_string(), output: e.to_string() })?;
    if !installed.status.success() {
        return Err(MaterializeError::Requirements { file: file.to_string(), output: tail(&installed, 20) });
    }
    Ok(tail(&installed, 3))
}

/// Unpacks the algorithm with digest `sha256` under `base` and installs its requirements into
/// its own virtual environment (pip, package registries only), unless a previous call finished
/// it. A half-made folder (a crash mid-way) is made again: `.ready` is written last.
pub async fn materialize(
    zip: &[u8],
    sha256: &str,
    base: &Path,
    python: &str,
    install_limit: std::time::Duration,
) -> Result<Materialized, MaterializeError> {
    if let Some(done) = materialized(sha256, base) {
        return Ok(done);
    }
    let layout = inspect(zip)?;
    let home = base.join(sha256);
    let code = home.join("code");
    let venv = home.join("venv");
    let program = code.join(&layout.program_dir);
    let ready = home.join(".ready");
    if home.exists() {
        std::fs::remove_dir_all(&home).map_err(MaterializeError::Unpack)?;
    }
    let bytes = zip.to_vec();
    let (layout_copy, code_dir) = (layout.clone(), code.clone());
    tokio::task::spawn_blocking(move || unpack(&bytes, &layout_copy, &code_dir))
        .await
        .map_err(|e| MaterializeError::Unpack(std::io::Error::other(e.to_string())))?
        .map_err(MaterializeError::Unpack)?;

    let requirements = layout.requirements.as_deref().map(|r| (r, code.as_path()));
    let install_log = make_venv(python, &venv, requirements, install_limit).await?;
    std::fs::write(home.join(".program"), &layout.program_dir).map_err(MaterializeError::Unpack)?;
    std::fs::write(&ready, &install_log).map_err(MaterializeError::Unpack)?;
    Ok(Materialized { code, program, venv, install_log })
}

/// The algorithm with digest `sha256` as an earlier [`materialize`] left it under `base`, if it
/// finished: then its zip need not be read again.
pub fn materialized(sha256: &str, base: &Path) -> Option<Materialized> {
    let home = base.join(sha256);
    let install_log = std::fs::read_to_string(home.join(".ready")).ok()?;
    let program_dir = std::fs::read_to_string(home.join(".program")).ok()?;
    let code = home.join("code");
    Some(Materialized { program: code.join(program_dir), code, venv: home.join("venv"), install_log })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default();
        for (name, body) in entries {
            if name.ends_with('/') {
                writer.add_directory(name.trim_end_matches('/'), options).unwrap();
            } else {
                writer.start_file(*name, options).unwrap();
                writer.write_all(body.as_bytes()).unwrap();
            }
        }
        writer.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn the_solutions_layout_is_understood() {
        let zip = zip_of(&[
            ("Dockerfile", "FROM python:3.11"),
            ("program/", ""),
            ("program/serve", "#!/usr/bin/env python3"),
            ("program/train", "#!/usr/bin/env python3"),
            ("program/predictor.py", ""),
            ("requirements.txt", "flask"),
        ]);
        let layout = inspect(&zip).unwrap();
        assert_eq!(layout.strip, "");
        assert_eq!(layout.program_dir, "program");
        assert!(layout.has_train);
        assert_eq!(layout.requirements.as_deref(), Some("requirements.txt"));
        assert_eq!(layout.files, 5);
    }

    #[test]
    fn a_zipped_folder_is_stripped_and_program_requirements_win() {
        let zip = zip_of(&[
            ("algo/Dockerfile", ""),
            ("algo/serve", ""),
            ("algo/requirements.txt", ""),
            ("__MACOSX/algo/._serve", ""),
        ]);
        let layout = inspect(&zip).unwrap();
        assert_eq!((layout.strip.as_str(), layout.program_dir.as_str()), ("algo/", ""));
        assert_eq!(layout.requirements.as_deref(), Some("requirements.txt"));
        assert!(!layout.has_train);
        let dir = tempfile::tempdir().unwrap();
        unpack(&zip, &layout, &dir.path().join("code")).unwrap();
        let serve = dir.path().join("code/serve");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&serve).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(!dir.path().join("code/__MACOSX").exists());
    }

    #[test]
    fn bad_layouts_name_what_is_wrong() {
        let error = |entries: &[(&str, &str)]| inspect(&zip_of(entries)).unwrap_err().to_string();
        assert!(error(&[("serve", "")]).contains("no `Dockerfile`"));
        assert!(error(&[("Dockerfile", ""), ("program/predictor.py", "")]).contains("no `serve` file"));
        assert!(error(&[("Dockerfile", ""), ("a/serve", ""), ("b/serve", "")]).contains("a/serve, b/serve"));
        assert!(error(&[("Dockerfile", ""), ("../evil/serve", "")]).contains("`../evil/serve`"));
        assert!(error(&[("Dockerfile", ""), ("/etc/serve", "")]).contains("`/etc/serve` is not a relative path"));
        assert!(inspect(b"not a zip").unwrap_err().to_string().contains("not a readable zip"));
    }
}
