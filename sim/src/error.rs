//! Errors of the simulator.

use std::fmt;

/// What went wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A simulator or synthesis program is not installed; the message says how to get it.
    ToolMissing,
    /// A program ran and failed (Verilator's or Icarus's compile, a simulation that timed out);
    /// the message holds the end of its output.
    ToolFailed,
    /// Reading or writing a file, or starting a process, failed.
    Io,
    /// A simulation printed something the harness cannot read: a bug in the harness or the
    /// generated design.
    BadOutput,
    /// The simulated board (the long-running Verilator process behind `bql run --sim`) stopped
    /// or did not start.
    Board,
}

/// A simulator error with a message a person can act on and, where there is one, its cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    fn new(kind: ErrorKind, message: String) -> Self {
        Error {
            kind,
            message,
            source: None,
        }
    }
    pub(crate) fn tool_failed(message: String) -> Self {
        Error::new(ErrorKind::ToolFailed, message)
    }
    pub(crate) fn bad_output(message: String) -> Self {
        Error::new(ErrorKind::BadOutput, message)
    }
    pub(crate) fn board(message: String) -> Self {
        Error::new(ErrorKind::Board, message)
    }
    pub(crate) fn io(message: String, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message,
            source: Some(Box::new(source)),
        }
    }
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<bql_locate::NotFound> for Error {
    fn from(e: bql_locate::NotFound) -> Self {
        Error {
            kind: ErrorKind::ToolMissing,
            message: e.to_string(),
            source: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result with the simulator's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
