//! Programming a board: openFPGALoader when it is installed, else iceprog for iCE40 boards.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, ErrorKind, Result};

/// Programs `bitstream` into the board `loader_board` (openFPGALoader's board name, e.g.
/// `icebreaker`, `ulx3s`); `ice40` allows iceprog as the fallback. Returns the programmer's
/// output.
pub fn flash(loader_board: &str, ice40: bool, bitstream: &Path) -> Result<String> {
    if !bitstream.is_file() {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "no bitstream at {}: build one first with `bql build`",
                bitstream.display()
            ),
        ));
    }
    // openFPGALoader for every board; iceprog as the iCE40 fallback. Both found through
    // bql-locate (OPENFPGALOADER / ICEPROG, then PATH).
    let loader = bql_locate::find(&bql_locate::programs::OPENFPGALOADER, None);
    let mut cmd = match (loader, ice40) {
        (Ok(l), _) => {
            let mut c = Command::new(l.program);
            c.args(["-b", loader_board]).arg(bitstream);
            c
        }
        (Err(missing), true) => {
            let iceprog = bql_locate::find(&bql_locate::programs::ICEPROG, None)
                .map_err(|e| Error::new(ErrorKind::Io, format!("{missing}; {e}")))?;
            let mut c = Command::new(iceprog.program);
            c.arg(bitstream);
            c
        }
        (Err(missing), false) => return Err(Error::new(ErrorKind::Io, missing.to_string())),
    };
    let out = cmd
        .output()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot run the programmer: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "programming failed (is the board plugged in and not held by another \
                 program?):\n{text}"
            ),
        ));
    }
    Ok(text)
}
