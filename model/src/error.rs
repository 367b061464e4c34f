//! The one error type of this crate: a kind a program can match on, and a message a person can
//! act on.

use std::fmt;

/// What went wrong, for callers that want to react to it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading or writing a file failed at the operating-system level.
    Io,
    /// The file is not of the expected kind (wrong magic number, not JSON, not UTF-8).
    BadFormat,
    /// The model file was written by a format version this build does not read.
    UnknownVersion,
    /// Layer sizes do not chain, or a declared size disagrees with the data.
    ShapeMismatch,
    /// The file ends before the data it declares.
    Truncated,
    /// The file holds more data than it declares.
    Oversized,
    /// A threshold lies outside the range its layer's accumulator can reach.
    ThresholdOutOfRange,
    /// A checksum does not match the data.
    Checksum,
    /// A dataset is inconsistent (for example, image and label counts differ).
    Dataset,
    /// An argument is not acceptable (for example, an architecture string that cannot be parsed).
    InvalidArgument,
}

/// An error from bql-model, with the context needed to fix it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<std::io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: context.into(),
            source: Some(source),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {}", self.message, e),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
