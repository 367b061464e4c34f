//! Typed errors of the host driver.

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The port could not be opened or used.
    Io,
    /// Nothing answered in time, after every retry.
    Timeout,
    /// The board answered with an error code, after every retry.
    Refused,
    /// The board runs a design of another architecture (wrong bitstream for this model).
    WrongDesign,
    /// The loaded weights could not be verified.
    LoadFailed,
    /// The input does not fit the design.
    Invalid,
}

/// A host driver error: a kind and a message that says what to do.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
