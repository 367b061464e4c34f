//! Errors of the toolchain runner.

use std::fmt;

use crate::BuildReport;

/// Why a build did not give a bitstream.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// yosys, nextpnr or a packer is not installed; the message says how to get it.
    ToolMissing,
    /// A tool ran and failed; the message names it and ends with its log's last lines.
    ToolFailed,
    /// Reading or writing the build folder, or starting a program, failed.
    Io,
    /// nextpnr's report is missing or unreadable.
    BadReport,
    /// The design does not meet the target clock; [`Error::report`] holds the complete report
    /// (no bitstream was written).
    Timing,
    /// The design is larger than the device; the message says which cells, by how much.
    Overfull,
}

/// A toolchain error: a message a person can act on, its cause where there is one, and the
/// build report when the build got as far as one.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    report: Option<Box<BuildReport>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        Error {
            kind,
            message,
            source: None,
            report: None,
        }
    }
    pub(crate) fn io(message: String, source: std::io::Error) -> Self {
        Error {
            source: Some(Box::new(source)),
            ..Error::new(ErrorKind::Io, message)
        }
    }
    pub(crate) fn timing(r: BuildReport) -> Self {
        Error {
            report: Some(Box::new(r.clone())),
            ..Error::new(
                ErrorKind::Timing,
                format!(
                    "timing not met: {:.1} MHz achieved, {:.1} MHz needed; no bitstream written \
                     (logs and report are in the build folder)",
                    r.fmax_mhz, r.target_mhz
                ),
            )
        }
    }
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The build report, when the build got as far as place and route ([`ErrorKind::Timing`]).
    pub fn report(&self) -> Option<&BuildReport> {
        self.report.as_deref()
    }
}

impl From<bql_locate::NotFound> for Error {
    fn from(e: bql_locate::NotFound) -> Self {
        Error::new(ErrorKind::ToolMissing, e.to_string())
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
