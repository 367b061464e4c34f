//! Errors of the importers.

use std::fmt;

/// What went wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file could not be read.
    Io,
    /// A file is not what its format says (wrong size, unreadable line, missing entry).
    Malformed,
    /// The network uses something bql cannot represent exactly; refused rather than
    /// approximated.
    Unsupported,
}

/// An import error naming the file, layer or node concerned.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn malformed(message: String) -> Self {
        Error {
            kind: ErrorKind::Malformed,
            message,
            source: None,
        }
    }
    pub(crate) fn unsupported(message: String) -> Self {
        Error {
            kind: ErrorKind::Unsupported,
            message,
            source: None,
        }
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

/// Result with the importers' [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
