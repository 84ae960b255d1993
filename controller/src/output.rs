//! The one writer of stdout. Every subcommand prints through it, so a reader
//! that goes away (`aiops audit tail -n 200000 | head -1`) ends the output
//! normally: the write fails with [`OutputError::Closed`] and the process
//! exits 0, instead of `println!` panicking with "Broken pipe".

use std::io::{BufWriter, StdoutLock, Write};

/// Writing stdout failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader closed the pipe (EPIPE): stop writing; not an error.
    #[error("stdout closed")]
    Closed,
    /// Any other write error (a full disk behind `> file`).
    #[error("{0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for OutputError {
    fn from(e: std::io::Error) -> OutputError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Io(e)
        }
    }
}

/// Many lines to stdout, buffered; [`Lines::finish`] flushes.
pub struct Lines {
    out: BufWriter<StdoutLock<'static>>,
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Lines {
    /// Locks stdout for this writer.
    pub fn new() -> Lines {
        Lines {
            out: BufWriter::new(std::io::stdout().lock()),
        }
    }

    /// One line of text.
    pub fn line(&mut self, text: &str) -> Result<(), OutputError> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// One JSON value on one line.
    pub fn json(&mut self, v: &impl serde::Serialize) -> Result<(), OutputError> {
        serde_json::to_writer(&mut self.out, v).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes what is buffered.
    pub fn finish(mut self) -> Result<(), OutputError> {
        self.out.flush()?;
        Ok(())
    }
}

/// One JSON value on one line.
pub fn json(v: &impl serde::Serialize) -> Result<(), OutputError> {
    let mut out = Lines::new();
    out.json(v)?;
    out.finish()
}

/// Text as is (no newline added).
pub fn text(text: &str) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
