//! Where each sink stands in the audit log, and reading what comes after.
//!
//! A position is the last exported record's `seq` and `hash` plus the byte
//! offset just past its line (a hint for reading on). It lives in
//! `<state_dir>/<sink>.json`, written to a temporary file, fsync'd and
//! renamed over the old one (then the directory fsync'd) only after the sink
//! took the batch: a crash or an outage resends from the last position, never
//! skips (at-least-once). Before reading on, the line before the offset must
//! still be the record with that `seq` and `hash`; otherwise the log is
//! searched for `seq`, and a different hash there (or no such record) means
//! the log was rewritten or replaced under the position: the sink stops with
//! that error instead of shipping a different history.
//!
//! The log is opened read-only; nothing here writes to it.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use aiops_audit::{GENESIS, canonical};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A sink's durable state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SinkState {
    /// Last record the sink took (0: none yet).
    pub seq: u64,
    /// Its hash (GENESIS before the first).
    pub hash: String,
    /// Byte offset just past its line.
    pub offset: u64,
    /// Records exported over the state's life.
    pub exported_total: u64,
    /// When the last batch was taken (RFC 3339).
    pub last_ok_at: Option<String>,
    /// The last error, kept after recovery (the outage stays visible).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<String>,
    /// Since when the sink has been failing; `None` once a batch went through.
    pub failing_since: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u64,
    /// Set when the log no longer matches the position (rewritten): export stops.
    pub stopped: bool,
}

impl SinkState {
    /// The state of a sink that has exported nothing.
    pub fn fresh() -> SinkState {
        SinkState {
            hash: GENESIS.to_string(),
            ..SinkState::default()
        }
    }
}

/// The file of sink `name` in `dir`.
pub fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Loads a sink's state; a missing file is a fresh one.
pub fn load(dir: &Path, name: &str) -> Result<SinkState, String> {
    let path = state_path(dir, name);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SinkState::fresh()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a sink's state durably (temp file, fsync, rename, fsync of the directory).
pub fn save(dir: &Path, name: &str, state: &SinkState) -> Result<(), String> {
    use std::io::Write;
    let path = state_path(dir, name);
    let tmp = dir.join(format!(".{name}.json.tmp"));
    let text = serde_json::to_vec_pretty(state).expect("state serializes");
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    res.map_err(|e| format!("{}: {e}", path.display()))
}

/// One record read from the log.
#[derive(Debug, Clone)]
pub struct Read {
    /// The record as written.
    pub record: Map<String, Value>,
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// Offset just past its line.
    pub end: u64,
}

/// Why the log cannot be read on from a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The log no longer holds the position's record: export must stop.
    Rewritten(String),
    /// Anything else (I/O, a record that fails its own hash); retried.
    Other(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Rewritten(m) => {
                write!(f, "audit log rewritten under the export position: {m}")
            }
            ReadError::Other(m) => f.write_str(m),
        }
    }
}

fn record_seq_hash(line: &[u8]) -> Option<(Map<String, Value>, u64, String)> {
    let record: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let seq = record.get("seq")?.as_u64()?;
    let hash = record.get("hash")?.as_str()?.to_string();
    Some((record, seq, hash))
}

/// The line that ends just before `offset` (which must follow a newline).
fn line_before(file: &File, offset: u64) -> std::io::Result<Option<Vec<u8>>> {
    if offset == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    if file.read_at(&mut last, offset - 1)? != 1 || last[0] != b'\n' {
        return Ok(None);
    }
    let end = offset - 1;
    let mut start = end;
    let mut buf = vec![0u8; 8192];
    'outer: while start > 0 {
        let step = 8192.min(start);
        let from = start - step;
        let chunk = &mut buf[..usize::try_from(step).unwrap_or(8192)];
        file.read_exact_at(chunk, from)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            start = from + i as u64 + 1;
            break 'outer;
        }
        start = from;
    }
    let mut line = vec![0u8; usize::try_from(end - start).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut line, start)?;
    Ok(Some(line))
}

/// The log, read-only.
pub struct LogReader {
    path: PathBuf,
}

impl LogReader {
    /// A reader of the log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> LogReader {
        LogReader { path: path.into() }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<Option<File>, ReadError> {
        match File::open(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReadError::Other(format!("{}: {e}", self.path.display()))),
        }
    }

    /// Checks that `state` still names a record of the log; returns the offset
    /// to read on from (the state's offset, or the record's real one).
    pub fn locate(&self, file: &File, state: &SinkState) -> Result<u64, ReadError> {
        if state.seq == 0 {
            return Ok(0);
        }
        let io = |e: std::io::Error| ReadError::Other(format!("{}: {e}", self.path.display()));
        if let Some(line) = line_before(file, state.offset).map_err(io)?
            && let Some((_, seq, hash)) = record_seq_hash(&line)
            && seq == state.seq
        {
            if hash == state.hash {
                return Ok(state.offset);
            }
            return Err(ReadError::Rewritten(format!(
                "record {seq} has hash {hash}, the export position says {}",
                state.hash
            )));
        }
        // The hint does not hold (e.g. a first run with an old state file):
        // look for the record from the start.
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut offset = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            offset += n as u64;
            if let Some((_, seq, hash)) = record_seq_hash(&line[..n - 1])
                && seq == state.seq
            {
                if hash == state.hash {
                    return Ok(offset);
                }
                return Err(ReadError::Rewritten(format!(
                    "record {seq} has hash {hash}, the export position says {}",
                    state.hash
                )));
            }
        }
        Err(ReadError::Rewritten(format!(
            "the log has no record {} (truncated or replaced)",
            state.seq
        )))
    }

    /// Up to `max` records after `state`, each checked: its own hash, its
    /// `prev` link and its `seq`. A last line still being written is left
    /// for the next call.
    pub fn read_after(&self, state: &SinkState, max: usize) -> Result<Vec<Read>, ReadError> {
        let Some(file) = self.open()? else {
            return if state.seq == 0 {
                Ok(Vec::new())
            } else {
                Err(ReadError::Rewritten(format!(
                    "{} is gone",
                    self.path.display()
                )))
            };
        };
        let io = |e: std::io::Error| ReadError::Other(format!("{}: {e}", self.path.display()));
        let mut offset = self.locate(&file, state)?;
        let mut reader = BufReader::with_capacity(256 * 1024, &file);
        reader.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut out = Vec::new();
        let (mut seq, mut prev) = (state.seq, state.hash.clone());
        let mut line = Vec::new();
        while out.len() < max {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            offset += n as u64;
            let Some((record, got_seq, hash)) = record_seq_hash(&line[..n - 1]) else {
                return Err(ReadError::Other(format!(
                    "record after {seq} is not a JSON record with seq and hash"
                )));
            };
            let mut body = record.clone();
            body.remove("hash");
            if aiops_sys::sha256_hex(canonical(&Value::Object(body)).as_bytes()) != hash {
                return Err(ReadError::Other(format!(
                    "record {got_seq} does not match its hash (edited); not exported"
                )));
            }
            if got_seq != seq + 1 || record.get("prev").and_then(Value::as_str) != Some(&prev) {
                return Err(ReadError::Other(format!(
                    "record {got_seq} does not chain onto record {seq}; not exported"
                )));
            }
            seq = got_seq;
            prev = hash.clone();
            out.push(Read {
                record,
                seq,
                hash,
                end: offset,
            });
        }
        Ok(out)
    }

    /// The newest record's seq (0 for an empty or missing log).
    pub fn head_seq(&self) -> Result<u64, String> {
        let mut head = 0;
        aiops_audit::AuditLog::new(&self.path)
            .scan_back(|r| {
                head = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
                false
            })
            .map_err(|e| e.to_string())?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiops_audit::AuditLog;
    use serde_json::json;

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        for i in 0..n {
            let Value::Object(m) = json!({"event": "executed", "n": i}) else {
                unreachable!()
            };
            log.append(m).unwrap();
        }
        (dir, log)
    }

    fn advance(state: &mut SinkState, r: &Read) {
        state.seq = r.seq;
        state.hash = r.hash.clone();
        state.offset = r.end;
    }

    #[test]
    fn reads_on_in_batches_and_resumes_from_a_saved_state() {
        let (dir, log) = log_with(7);
        let reader = LogReader::new(log.path());
        let mut state = SinkState::fresh();
        let first = reader.read_after(&state, 3).unwrap();
        assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        advance(&mut state, first.last().unwrap());
        save(dir.path(), "s", &state).unwrap();
        let state = load(dir.path(), "s").unwrap();
        let rest = reader.read_after(&state, 100).unwrap();
        assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5, 6, 7]);
        assert_eq!(reader.head_seq().unwrap(), 7);
    }

    #[test]
    fn a_rewritten_record_under_the_position_stops_export() {
        let (_d, log) = log_with(4);
        let reader = LogReader::new(log.path());
        let mut state = SinkState::fresh();
        let got = reader.read_after(&state, 2).unwrap();
        advance(&mut state, &got[1]);
        // Rewrite history: a new log of the same length with other contents.
        std::fs::remove_file(log.path()).unwrap();
        let other = AuditLog::new(log.path());
        for i in 0..4 {
            let Value::Object(m) = json!({"event": "executed", "n": i + 100}) else {
                unreachable!()
            };
            other.append(m).unwrap();
        }
        let e = reader.read_after(&state, 10).unwrap_err();
        assert!(matches!(e, ReadError::Rewritten(_)), "{e}");
        // A shorter log than the position: also rewritten.
        let (_d2, short) = log_with(1);
        let e = LogReader::new(short.path())
            .read_after(&state, 10)
            .unwrap_err();
        assert!(matches!(e, ReadError::Rewritten(_)), "{e}");
    }

    #[test]
    fn an_edited_record_after_the_position_is_not_exported() {
        let (_d, log) = log_with(3);
        let text = std::fs::read_to_string(log.path()).unwrap();
        std::fs::write(log.path(), text.replacen("\"n\":2", "\"n\":9", 1)).unwrap();
        let e = LogReader::new(log.path())
            .read_after(&SinkState::fresh(), 10)
            .unwrap_err();
        assert_eq!(
            e,
            ReadError::Other("record 3 does not match its hash (edited); not exported".into())
        );
    }

    #[test]
    fn a_stale_offset_hint_is_recovered_by_searching() {
        let (_d, log) = log_with(5);
        let reader = LogReader::new(log.path());
        let got = reader.read_after(&SinkState::fresh(), 2).unwrap();
        let mut state = SinkState::fresh();
        advance(&mut state, &got[1]);
        state.offset += 3;
        let rest = reader.read_after(&state, 10).unwrap();
        assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
    }
}
