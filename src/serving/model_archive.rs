//! Takes the model file out of a SageMaker-style model archive (`model.tar.gz` holding one file,
//! conventionally `xgboost-model`, or one `*.onnx` file beside others), or passes a bare model
//! file through unchanged.
//!
//! Archives are untrusted uploads: the amount of data unpacked is capped, so a small gzip bomb
//! fails with an error instead of filling memory.

use std::cell::Cell;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

/// Default cap on the bytes unpacked from one archive (tar headers included).
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;

/// The name SageMaker's built-in XGBoost container gives its model file.
pub const PREFERRED_NAME: &str = "xgboost-model";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the model archive is not a readable tar.gz file: {0}")]
    Corrupt(#[source] io::Error),
    #[error("the model archive holds no model file")]
    NoModelFile,
    #[error(
        "the model archive holds several files ({}); it must hold one model file, or one named \
         `{PREFERRED_NAME}` or `*.onnx`", names.join(", ")
    )]
    SeveralFiles { names: Vec<String> },
    #[error("the model archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Returns the model file inside a gzip-compressed (or plain) tar archive, or `bytes` unchanged
/// when they are not an archive (a bare model file). Unpacks at most [`MAX_UNPACKED_BYTES`].
pub fn extract_model_file(bytes: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    extract_model_file_with_limit(bytes, MAX_UNPACKED_BYTES)
}

/// [`extract_model_file`] with an explicit cap on the unpacked size.
pub fn extract_model_file_with_limit(bytes: &[u8], limit: u64) -> Result<Vec<u8>, ArchiveError> {
    let exceeded = Cell::new(false);
    let result = if bytes.starts_with(&[0x1f, 0x8b]) {
        let reader = Capped { inner: MultiGzDecoder::new(bytes), remaining: limit, exceeded: &exceeded };
        read_tar(reader, limit)
    } else if is_plain_tar(bytes) {
        let reader = Capped { inner: bytes, remaining: limit, exceeded: &exceeded };
        read_tar(reader, limit)
    } else {
        return Ok(bytes.to_vec());
    };
    // The cap surfaces inside tar as an I/O error; report it as what it is.
    if exceeded.get() {
        return Err(ArchiveError::TooLarge { limit });
    }
    result
}

/// Unpacks a model archive into `dir/model` for a custom algorithm (SageMaker's
/// `/opt/ml/model`): every regular file and folder, nothing outside `dir/model` (the tar crate
/// refuses `..` and makes absolute names relative), no links or devices, at most `limit` bytes.
/// A bare file (not an archive) becomes `dir/model/model`. The folder appears complete or not at
/// all: it is unpacked beside, renamed into place, and `dir/.ready` is written last.
pub fn unpack_archive(bytes: &[u8], dir: &std::path::Path, limit: u64) -> Result<(), ArchiveError> {
    let io_error = ArchiveError::Corrupt;
    let staging = dir.join("model.partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_error)?;
    }
    std::fs::create_dir_all(&staging).map_err(io_error)?;
    let exceeded = Cell::new(false);
    let unpacked = if bytes.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(Capped { inner: MultiGzDecoder::new(bytes), remaining: limit, exceeded: &exceeded }, &staging)
    } else if is_plain_tar(bytes) {
        unpack_tar(Capped { inner: bytes, remaining: limit, exceeded: &exceeded }, &staging)
    } else if bytes.len() as u64 > limit {
        return Err(ArchiveError::TooLarge { limit });
    } else {
        std::fs::write(staging.join("model"), bytes)
    };
    if exceeded.get() {
        return Err(ArchiveError::TooLarge { limit });
    }
    unpacked.map_err(io_error)?;
    let target = dir.join("model");
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io_error)?;
    }
    std::fs::rename(&staging, &target).map_err(io_error)?;
    std::fs::write(dir.join(".ready"), b"").map_err(io_error)
}

fn unpack_tar(reader: impl Read, dest: &std::path::Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_file() || kind.is_dir() {
            entry.unpack_in(dest)?;
        }
    }
    Ok(())
}

/// POSIX and GNU tar headers carry "ustar" at offset 257.
fn is_plain_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar".as_slice())
}

fn read_tar(reader: impl Read, limit: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut names = Vec::new();
    let mut first: Option<Vec<u8>> = None;
    let mut preferred: Vec<Vec<u8>> = Vec::new();

    for entry in archive.entries().map_err(ArchiveError::Corrupt)? {
        let mut entry = entry.map_err(ArchiveError::Corrupt)?;
        // Directories, links and special files are not models.
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(ArchiveError::Corrupt)?.into_owned();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // macOS tar adds AppleDouble `._name` files and Finder's `.DS_Store`.
        let macos_litter = file_name.starts_with("._")
            || file_name == ".DS_Store"
            || path.components().any(|c| c.as_os_str() == "__MACOSX");
        if macos_litter {
            continue;
        }
        names.push(path.to_string_lossy().into_owned());

        // Keep only what may be returned; later files are read just to move past them.
        let is_preferred = file_name == PREFERRED_NAME || file_name.to_ascii_lowercase().ends_with(".onnx");
        if is_preferred || first.is_none() {
            let mut data = Vec::with_capacity(entry.size().min(limit) as usize);
            entry.read_to_end(&mut data).map_err(ArchiveError::Corrupt)?;
            if is_preferred {
                preferred.push(data.clone());
            }
            if first.is_none() {
                first = Some(data);
            }
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(ArchiveError::Corrupt)?;
        }
    }

    match (names.len(), first, preferred.len()) {
        (0, _, _) => Err(ArchiveError::NoModelFile),
        (1, Some(data), _) => Ok(data),
        (_, _, 1) => Ok(preferred.remove(0)),
        _ => Err(ArchiveError::SeveralFiles { names }),
    }
}

/// Stops reading once `remaining` bytes have been produced, and remembers that it did.
struct Capped<'a, R> {
    inner: R,
    remaining: u64,
    exceeded: &'a Cell<bool>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Only an error if there really is more data.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(io::Error::other("unpacked size limit exceeded"));
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    fn tar(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            match item {
                Item::File(name, data) => {
                    header.set_size(data.len() as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    builder.append_data(&mut header, name, *data).unwrap();
                }
                Item::Dir(name) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Directory);
                    builder.append_data(&mut header, name, io::empty()).unwrap();
                }
                Item::Symlink(name, target) => {
                    header.set_size(0);
                    header.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut header, name, target).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn targz(items: &[Item<'_>]) -> Vec<u8> {
        gzip(&tar(items))
    }

    #[test]
    fn bare_model_files_pass_through() {
        let json = br#"{"learner": {}}"#;
        assert_eq!(extract_model_file(json).unwrap(), json);
        assert_eq!(extract_model_file(b"").unwrap(), b"");
        assert_eq!(extract_model_file(b"{L\x00").unwrap(), b"{L\x00");
    }

    #[test]
    fn single_file_whatever_its_name() {
        let archive = targz(&[Item::Dir("model/"), Item::File("model/my.json", b"{}")]);
        assert_eq!(extract_model_file(&archive).unwrap(), b"{}");
    }

    #[test]
    fn plain_tar_is_read_too() {
        let archive = tar(&[Item::File("xgboost-model", b"{}")]);
        assert_eq!(extract_model_file(&archive).unwrap(), b"{}");
    }

    #[test]
    fn macos_litter_directories_and_links_are_ignored() {
        let archive = targz(&[
            Item::File("./._xgboost-model", b"apple double"),
            Item::File(".DS_Store", b"finder"),
            Item::File("__MACOSX/xgboost-model", b"resource fork"),
            Item::Dir("./"),
            Item::Symlink("latest", "xgboost-model"),
            Item::File("./xgboost-model", b"model bytes"),
        ]);
        assert_eq!(extract_model_file(&archive).unwrap(), b"model bytes");
    }

    #[test]
    fn several_files_prefer_xgboost_model() {
        let archive = targz(&[
            Item::File("code/inference.py", b"print()"),
            Item::File("xgboost-model", b"the model"),
            Item::File("notes.txt", b"hello"),
        ]);
        assert_eq!(extract_model_file(&archive).unwrap(), b"the model");
    }

    #[test]
    fn several_files_without_a_preferred_one_list_the_names() {
        let archive = targz(&[Item::File("a.json", b"{}"), Item::File("b.ubj", b"{}")]);
        let err = extract_model_file(&archive).unwrap_err();
        assert!(matches!(err, ArchiveError::SeveralFiles { .. }));
        let message = err.to_string();
        assert!(message.contains("a.json, b.ubj"), "{message}");
        assert!(message.contains("xgboost-model"), "{message}");

        let two = targz(&[Item::File("a/xgboost-model", b"1"), Item::File("b/xgboost-model", b"2")]);
        assert!(matches!(extract_model_file(&two), Err(ArchiveError::SeveralFiles { .. })));
    }

    #[test]
    fn archive_without_files() {
        let archive = targz(&[Item::Dir("model/"), Item::File("._x", b"")]);
        assert!(matches!(extract_model_file(&archive), Err(ArchiveError::NoModelFile)));
        assert!(matches!(extract_model_file(&gzip(&[])), Err(ArchiveError::NoModelFile)));
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        let big = vec![0u8; 4 << 20];
        let archive = targz(&[Item::File("xgboost-model", &big)]);
        assert!(archive.len() < 64 << 10, "compresses well: {}", archive.len());
        let err = extract_model_file_with_limit(&archive, 1 << 20).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { limit } if limit == 1 << 20), "{err}");
        // The same archive is fine under a larger cap.
        assert_eq!(extract_model_file_with_limit(&archive, 8 << 20).unwrap().len(), big.len());
    }

    #[test]
    fn corrupt_archives_are_reported() {
        let mut archive = targz(&[Item::File("xgboost-model", &[7u8; 10_000])]);
        archive.truncate(archive.len() / 2);
        assert!(matches!(extract_model_file(&archive), Err(ArchiveError::Corrupt(_))));
        let not_tar = gzip("not a tar archive, ".repeat(50).as_bytes());
        assert!(matches!(extract_model_file(&not_tar), Err(ArchiveError::Corrupt(_))));
    }
}
