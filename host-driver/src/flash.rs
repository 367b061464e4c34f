//! Programming a board: openFPGALoader when it is installed, else iceprog for iCE40 boards.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, ErrorKind, Result};

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

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
    let mut cmd = if on_path("openFPGALoader") {
        let mut c = Command::new("openFPGALoader");
        c.args(["-b", loader_board]).arg(bitstream);
        c
    } else if ice40 && on_path("iceprog") {
        let mut c = Command::new("iceprog");
        c.arg(bitstream);
        c
    } else {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "no programmer found: install openFPGALoader (Debian: apt install \
                 openfpgaloader){}",
                if ice40 {
                    " or iceprog (apt install fpga-icestorm)"
                } else {
                    ""
                }
            ),
        ));
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
