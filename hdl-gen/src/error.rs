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
    /// The checking pass found a fault in a generated module: a bug in the generator, not in
    /// the model or the options.
    Check,
}

/// A generator error with a message a person can act on.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn does_not_fit(m: String) -> Self {
        Error {
            kind: ErrorKind::DoesNotFit,
            message: m,
            source: None,
        }
    }
    pub(crate) fn unsupported(m: String) -> Self {
        Error {
            kind: ErrorKind::Unsupported,
            message: m,
            source: None,
        }
    }
    pub(crate) fn invalid(m: String) -> Self {
        Error {
            kind: ErrorKind::Invalid,
            message: m,
            source: None,
        }
    }
    pub(crate) fn io(m: String, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            message: m,
            source: Some(Box::new(source)),
        }
    }
    pub(crate) fn check(e: crate::check::CheckError) -> Self {
        Error {
            kind: ErrorKind::Check,
            message: format!("generator bug, found by the checking pass: {e}"),
            source: Some(Box::new(e)),
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

/// Result with the generator's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
