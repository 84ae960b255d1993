//! The small operating-system primitives every aiops crate shares: the clock
//! (Unix milliseconds and RFC 3339), SHA-256 in hex, and atomic writes of a
//! file with a given mode.
//!
//! They used to live in `aiops-certs`, which made the certificate crate the
//! place everything depended on; here they have no aiops dependencies at all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// A configuration file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

/// The one pattern of both configuration loaders (`aiops`'s and
/// `aiops-agent`'s): the file is read once, its path made absolute, and
/// every relative path inside it is resolved against its directory, once,
/// so later code never re-joins strings.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The file, absolute.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl ConfigFile {
    /// Reads `path` (relative to the working directory).
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let error = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let abs = std::path::absolute(path).map_err(|e| error(e.to_string()))?;
        let text = std::fs::read_to_string(&abs).map_err(|e| error(e.to_string()))?;
        Ok(ConfigFile { path: abs, text })
    }

    /// The directory relative paths in the file are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// Makes `p` absolute against [`ConfigFile::dir`] when it is relative.
    pub fn resolve(&self, p: &mut PathBuf) {
        if p.is_relative() {
            *p = self.dir().join(&*p);
        }
    }

    /// An error about this file.
    pub fn error(&self, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 UTC timestamp of `ms` Unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix milliseconds of an RFC 3339 timestamp (as [`rfc3339_ms`] writes them).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Writes `data` to `path` with mode `mode`, replacing it atomically (temp file + rename).
pub fn write_file_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_file(path, data, mode, true)
}

/// Like [`write_file_mode`], with the fsync optional (for files that may lag after a crash).
pub fn write_file(path: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_config_path_resolves_against_the_file_not_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lab")).unwrap();
        std::fs::write(dir.path().join("lab/config.yml"), "x: 1\n").unwrap();
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let f = ConfigFile::read(Path::new("lab/config.yml"));
        std::env::set_current_dir(old).unwrap();
        let f = f.unwrap();
        let mut p = PathBuf::from("pki/signing.pub");
        f.resolve(&mut p);
        assert_eq!(p, dir.path().join("lab/pki/signing.pub"));
        assert!(p.is_absolute());
    }

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        let ms = 1_764_000_000_123;
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
    }

    #[test]
    fn write_file_mode_replaces_with_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        write_file_mode(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
