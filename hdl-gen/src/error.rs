//! Errors of the generator.

use std::fmt;

/// What went wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The model does not fit the device; the message says which resource and by how much.
    DoesNotFit,
    /// The model uses something the generator cannot build yet.
    Unsupported,
    /// A board file or an option is invalid.
    Invalid,
    /// Writing the output folder failed.
    Io,
}

/// A generator error with a message a person can act on.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn does_not_fit(m: String) -> Self {
        Error {
            kind: ErrorKind::DoesNotFit,
            message: m,
        }
    }
    pub(crate) fn unsupported(m: String) -> Self {
        Error {
            kind: ErrorKind::Unsupported,
            message: m,
        }
    }
    pub(crate) fn invalid(m: String) -> Self {
        Error {
            kind: ErrorKind::Invalid,
            message: m,
        }
    }
    pub(crate) fn io(m: String) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: m,
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

impl std::error::Error for Error {}

/// Result with the generator's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
