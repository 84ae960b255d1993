//! `save_output`: each target's stdout and stderr streamed to files under
//! `<runtime_dir>/outputs/` as they arrive (SHA-256 on the way, a bounded
//! excerpt in memory). Run by the controller account inside the fan-out.
//!
//! The files are written asynchronously (`tokio::fs`: each write runs on the
//! blocking pool and the target's stream awaits it), so a slow or stuck disk
//! under one target's file holds up that target only: the fan-out's other
//! targets keep streaming on the same current-thread runtime.

use aiops_types::ErrorCode;
use std::path::{Path, PathBuf};

use super::client;
use crate::contract::{Failure, fail};

/// `save_output`: `<runtime_dir>/outputs`, created 0700 when missing; refused
/// when it is a symlink, not a directory, not ours, or writable by others.
pub(super) fn outputs_dir(runtime_dir: &Path) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = std::path::absolute(runtime_dir.join("outputs"))
        .map_err(|e| output_fail(format!("{}: {e}", runtime_dir.display())))?;
    let what = |e: &dyn std::fmt::Display| output_fail(format!("{}: {e}", dir.display()));
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        return Err(what(&e));
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| what(&e))?;
    if !meta.file_type().is_dir() {
        return Err(what(&"not a directory (a symlink or a file is refused)"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(what(&format!(
            "owned by uid {}, not by this account",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(what(&format!(
            "mode {:o} lets others write; expected 0700",
            meta.mode() & 0o7777
        )));
    }
    Ok(dir)
}

fn output_fail(message: String) -> Failure {
    fail(
        ErrorCode::OutputFile,
        format!("save_output: {message}; nothing was sent"),
    )
}

/// `save_output`: a target's two output files.
pub(super) struct SavedOutput {
    pub(super) stdout: SavedStream,
    pub(super) stderr: SavedStream,
}

impl SavedOutput {
    /// Creates `<dir>/<request_id>.<target>.stdout` and `.stderr` (new files only, mode 0600).
    pub(super) fn create(
        dir: &Path,
        request_id: &str,
        target: &str,
        excerpt_cap: u64,
    ) -> Result<Self, Failure> {
        let stdout =
            SavedStream::create(dir, &format!("{request_id}.{target}.stdout"), excerpt_cap)?;
        match SavedStream::create(dir, &format!("{request_id}.{target}.stderr"), excerpt_cap) {
            Ok(stderr) => Ok(SavedOutput { stdout, stderr }),
            Err(f) => {
                stdout.remove();
                Err(f)
            }
        }
    }

    /// Deletes both files (nothing ran, or nothing arrived).
    pub(super) fn remove(self) {
        self.stdout.remove();
        self.stderr.remove();
    }
}

impl SavedOutput {
    /// Waits until everything received is in the files (and closes them).
    pub(super) async fn finish(&mut self) -> std::io::Result<()> {
        self.stdout.finish().await?;
        self.stderr.finish().await
    }
}

impl client::OutputSink for SavedOutput {
    async fn output(&mut self, stdout: bool, _tail: bool, data: &[u8]) -> std::io::Result<()> {
        if stdout {
            self.stdout.write(data).await
        } else {
            self.stderr.write(data).await
        }
    }
}

/// One stream written to its file as it arrives: SHA-256 computed on the way,
/// and only a bounded excerpt (head and tail) kept in memory.
pub(super) struct SavedStream {
    path: PathBuf,
    /// The file (a test puts a held pipe here instead).
    file: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    sha: ring::digest::Context,
    bytes: u64,
    head: Vec<u8>,
    head_cap: usize,
    tail: std::collections::VecDeque<u8>,
    tail_cap: usize,
}

impl SavedStream {
    pub(super) fn create(dir: &Path, name: &str, excerpt_cap: u64) -> Result<Self, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| output_fail(format!("{}: {e}", path.display())))?;
        let cap = usize::try_from(excerpt_cap).unwrap_or(usize::MAX);
        Ok(SavedStream {
            path,
            file: Box::pin(tokio::fs::File::from_std(file)),
            sha: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
            head: Vec::new(),
            head_cap: cap / 2,
            tail: std::collections::VecDeque::new(),
            tail_cap: cap - cap / 2,
        })
    }

    pub(super) fn path_text(&self) -> String {
        self.path.display().to_string()
    }

    pub(super) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Closes the file once every write has reached it.
    async fn finish(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.file.shutdown().await
    }

    pub(super) async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.file.write_all(data).await?;
        self.sha.update(data);
        self.bytes += data.len() as u64;
        let take = (self.head_cap - self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..take]);
        let rest = &data[take..];
        if rest.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + rest.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(rest);
        }
        Ok(())
    }

    /// SHA-256 (hex) and size of everything written.
    pub(super) fn digest(&self) -> (String, u64) {
        (hex::encode(self.sha.clone().finish()), self.bytes)
    }

    /// The head, a marker for what is not shown, the tail (unredacted).
    pub(super) fn excerpt(&self, dropped_by_agent: u64) -> String {
        let (tail_a, tail_b) = self.tail.as_slices();
        let shown = (self.head.len() + self.tail.len()) as u64;
        let hidden = self.bytes - shown;
        let path = self.path.display();
        let what = if dropped_by_agent > 0 {
            format!(
                "not shown; {path} holds the output except the \
                 {dropped_by_agent} bytes dropped over the agent's output cap"
            )
        } else {
            format!("not shown; the whole output is in {path}")
        };
        let tail: Vec<u8> = [tail_a, tail_b].concat();
        crate::contract::excerpt::join(&self.head, hidden + dropped_by_agent, &what, &tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::client::OutputSink;

    #[tokio::test(flavor = "current_thread")]
    async fn saved_output_writes_everything_and_keeps_a_bounded_excerpt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = outputs_dir(tmp.path()).unwrap();
        let mut s = SavedOutput::create(&dir, "id", "srv1", 10).unwrap();
        // A second request with the same id never reuses (or follows) an existing file.
        assert!(SavedOutput::create(&dir, "id", "srv1", 10).is_err());
        let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for piece in data.chunks(7) {
            s.output(true, false, piece).await.unwrap();
        }
        s.output(false, false, b"oops\n").await.unwrap();
        s.finish().await.unwrap();
        assert_eq!(std::fs::read(&s.stdout.path).unwrap(), data);
        assert_eq!(s.stdout.digest(), (aiops_sys::sha256_hex(&data), 1000));
        let text = s.stdout.excerpt(0);
        let tail = String::from_utf8_lossy(&data[995..]);
        assert!(text.starts_with("abcde\n[aiops: 990 bytes not shown; the whole output is in "));
        assert!(text.ends_with(&format!(".stdout]\n{tail}")), "{text}");
        assert_eq!(s.stderr.excerpt(0), "oops\n");
        assert!(s.stdout.excerpt(5).contains("except the 5 bytes dropped"));
        let paths = [s.stdout.path.clone(), s.stderr.path.clone()];
        s.remove();
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn outputs_dir_refuses_a_symlink_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("outputs"), b"x").unwrap();
        let f = outputs_dir(tmp.path()).unwrap_err();
        assert_eq!(f.exit, crate::contract::exit::SETUP);
        assert_eq!(f.answer.error.as_ref().unwrap().code, ErrorCode::OutputFile);
        std::fs::remove_file(tmp.path().join("outputs")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("outputs")).unwrap();
        assert!(outputs_dir(tmp.path()).is_err());
    }

    async fn feed(s: &mut SavedOutput, chunks: usize) -> std::io::Result<()> {
        let chunk = vec![b'x'; 4096];
        for _ in 0..chunks {
            s.output(true, false, &chunk).await?;
        }
        s.finish().await
    }

    /// Two targets of one fan-out on one current-thread runtime, as `aiops
    /// run` has them. Target A's stdout goes to a pipe that nobody reads (a
    /// 64-byte buffer: its writer is held after the first chunk); target B's
    /// goes to its file. B streams and finishes while A waits on its writer;
    /// once A's pipe is read, A finishes too with every byte. No clock
    /// involved: `select!` polls A first every time and A cannot finish
    /// while its pipe is full.
    #[tokio::test(flavor = "current_thread")]
    async fn a_held_output_writer_does_not_delay_another_target() {
        use tokio::io::AsyncReadExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = outputs_dir(tmp.path()).unwrap();
        let mut a = SavedOutput::create(&dir, "id", "srv-a", 1024).unwrap();
        let (held, mut reader) = tokio::io::duplex(64);
        a.stdout.file = Box::pin(held);
        let mut b = SavedOutput::create(&dir, "id", "srv-b", 1024).unwrap();
        {
            let mut a_run = std::pin::pin!(feed(&mut a, 16));
            tokio::select! {
                biased;
                _ = &mut a_run => panic!("target A finished although its writer is held"),
                r = feed(&mut b, 16) => r.unwrap(),
            }
            // B is complete on disk while A still waits.
            assert_eq!(
                std::fs::read(&b.stdout.path).unwrap(),
                vec![b'x'; 16 * 4096]
            );
            assert_eq!(b.stdout.digest().1, 16 * 4096);
            // Release A: read its pipe to the end.
            let drain = async {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.unwrap();
                got
            };
            let (r, got) = tokio::join!(a_run, drain);
            r.unwrap();
            assert_eq!(got, vec![b'x'; 16 * 4096]);
        }
        assert_eq!(a.stdout.digest(), b.stdout.digest());
    }
}
