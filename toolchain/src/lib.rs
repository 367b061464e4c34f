//! bql-toolchain: from a generated design folder to a bitstream with the open toolchain, and the
//! numbers that say whether it fits and meets timing.
//!
//! The build is a list of named steps, each one tool run with its log kept in the build folder:
//! `synth` (yosys `synth_ice40` / `synth_ecp5` to a netlist, then on the ECP5 [`netlist`]'s
//! changes), `pnr` (nextpnr-ice40 / nextpnr-ecp5 with the board's pin file, the target clock and
//! a fixed seed, writing a JSON report), `check` (the report: utilization and achieved Fmax
//! against the target; a design that misses timing stops here, before a bitstream exists), `pack` (icepack / ecppack). The tool
//! commands belong to the FPGA family ([`board::Family`]), the board only supplies data.
//!
//! Tools are located once ([`Tools::locate`], through `bql-locate`): `YOSYS`, `NEXTPNR_ICE40`,
//! `ICEPACK`, `NEXTPNR_ECP5`, `ECPPACK` override; then the YoWASP builds that `make deps`
//! installs into `.venv` (their WebAssembly is compiled on first use, cached in the project's
//! `.cache/`); then native programs on `PATH`.
//!
//! Builds are cached: the folder keeps a key made of the design digest, the board, the pin
//! file's contents, the tools' versions and the steps' command lines; a build with the same key
//! reuses the bitstream and report.

#![deny(missing_docs)]

mod error;
pub mod netlist;
pub mod report;

pub use error::{Error, ErrorKind};

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

impl Tools {
    /// Locates the tools of `family` (environment variable, then the project's `.venv`, then
    /// `PATH`; see `bql-locate`), with the project at `root`.
    pub fn locate(family: board::Family, root: &Path) -> Result<Tools, Error> {
        let def = family.def();
        let program = |spec: &bql_locate::Spec| -> Result<Program, Error> {
            let found = bql_locate::find(spec, Some(root))?;
            let wasm = found
                .program
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("yowasp-"));
            Ok(Program {
                path: found.program,
                wasm,
            })
        };
        Ok(Tools {
            yosys: program(&bql_locate::programs::YOSYS)?,
            nextpnr: program(&def.nextpnr)?,
            pack: program(&def.pack)?,
            cache: root.join(".cache"),
        })
    }

    /// What identifies the tools' versions, for the cache key: native yosys's and nextpnr's
    /// version lines; for the packers (no version option) and YoWASP's WebAssembly builds
    /// (whose `--version` loads the whole tool, 4.7 s for nextpnr-ecp5 here, on every build,
    /// cached or not) the program file's size and modification time, which a `pip install`
    /// of another version changes.
    fn versions(&self) -> String {
        let stamp = |p: &Program| {
            std::fs::metadata(&p.path)
                .map(|m| {
                    format!(
                        "{} {} bytes {:?}",
                        p.path.display(),
                        m.len(),
                        m.modified().ok()
                    )
                })
                .unwrap_or_else(|e| format!("{} ({e})", p.path.display()))
        };
        let version = |p: &Program, flag: &str| {
            if p.wasm {
                return stamp(p);
            }
            Command::new(&p.path)
                .arg(flag)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|e| format!("unknown ({e})"))
        };
        format!(
            "{} | {} | {}",
            version(&self.yosys, "-V"),
            version(&self.nextpnr, "--version"),
            stamp(&self.pack)
        )
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
    family.def().bitstream
}

/// The steps that build `design` for `board` (the design folder's `rtl/` holds the sources and
/// memory images, the pin file sits next to it).
pub fn steps(design: &Design, b: &Board, tools: &Tools, target_mhz: f64) -> Vec<Step> {
    let def = b.file.family.def();
    let sources = design.rtl_sources().join(" ");
    let synth = (def.synth)(&b.device);
    let script = format!(
        "read_verilog {sources}; {synth} -top {} -json ../{}; tee -o ../yosys-stat.txt stat",
        design.top(),
        files::NETLIST
    );
    let mut pnr = vec![format!("--{}", b.file.device)];
    pnr.extend(["--package".into(), b.file.package.clone()]);
    pnr.extend(["--json".into(), files::NETLIST.into()]);
    pnr.extend([def.pin_option.into(), b.file.pin_file.clone()]);
    pnr.extend([def.routed.0.into(), def.routed.1.into()]);
    pnr.extend([
        "--freq".into(),
        format!("{target_mhz}"),
        "--seed".into(),
        "1".into(),
        "--report".into(),
        files::REPORT.into(),
        // A missed target is bql's to report (with the achieved Fmax and a bitstream withheld),
        // not an exit status whose message is the last line of the log.
        "--timing-allow-fail".into(),
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
            args: vec![def.routed.1.into(), def.bitstream.into()],
            cwd: ".",
            log: "pack.log",
        },
    ]
}

/// What a build found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildReport {
    /// The model the bitstream implements (name and architecture).
    #[serde(default)]
    pub model: String,
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
) -> Result<BuildReport, Error> {
    let fam = b.file.family;
    let steps = steps(design, b, tools, target_mhz);
    // The key: everything that decides the bitstream. The design's digest (sources, memory
    // images, plan and the board's pin file, all written by `Design::write`), the board, the
    // tools' versions and every step's command line (which holds the clock, seed and options).
    let key = format!(
        "{} {} tools {} {} steps {}",
        design.digest(),
        b.file.id,
        tools.versions(),
        netlist::VERSION,
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
            let text = std::fs::read_to_string(dir.join(files::REPORT))
                .map_err(|e| Error::io("nextpnr wrote no report; see nextpnr.log".into(), e))?;
            let (u, f) = parse_nextpnr_report(&text)?;
            util = u;
            fmax = f
                .iter()
                .map(|x| x.achieved_mhz)
                .fold(f64::INFINITY, f64::min);
            if !fmax.is_finite() {
                return Err(Error::new(
                    ErrorKind::BadReport,
                    "nextpnr's report has no clock: is the design clocked?".into(),
                ));
            }
            let r = BuildReport {
                model: design.model.clone(),
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
                return Err(Error::timing(r));
            }
            // Every other clock against its own constraint (the SPI link's SCK: the pin file's
            // `set_frequency`).
            if let Some(slow) = f.iter().find(|x| x.achieved_mhz < x.constraint_mhz) {
                return Err(Error::timing(BuildReport {
                    fmax_mhz: slow.achieved_mhz,
                    target_mhz: slow.constraint_mhz,
                    ..r
                }));
            }
        }
        progress(step);
        let t = Instant::now();
        let log = dir.join(step.log);
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Error::io(format!("cannot write {}", log.display()), e))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| Error::io(format!("cannot write {}", log.display()), e))?;
        let status = Command::new(&step.program.path)
            .args(&step.args)
            .current_dir(dir.join(step.cwd))
            .env("XDG_CACHE_HOME", &tools.cache)
            .stdout(log_file)
            .stderr(err_file)
            .status()
            .map_err(|e| {
                Error::io(
                    format!("cannot run {} ({})", step.program.path.display(), step.name),
                    e,
                )
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
                return Err(Error::new(
                    ErrorKind::Overfull,
                    format!(
                    "the design does not fit the {} ({}): {}; no bitstream written (full log: {})",
                    b.device.name,
                    b.file.name,
                    what.join("; "),
                    log.display()
                ),
                ));
            }
            return Err(Error::new(
                ErrorKind::ToolFailed,
                format!(
                    "{} failed ({}), last lines of {}:\n{t}",
                    step.name,
                    status,
                    log.display()
                ),
            ));
        }
        if step.name == "synth" && fam == board::Family::Ecp5 {
            prepare_netlist_in(dir, &log)?;
        }
    }
    let r = BuildReport {
        model: design.model.clone(),
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

/// Applies [`netlist::prepare`] to the build folder's netlist and notes what it changed at the
/// end of the synthesis log.
fn prepare_netlist_in(dir: &Path, log: &Path) -> Result<(), Error> {
    let path = dir.join(files::NETLIST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("cannot read yosys's netlist {}", path.display()), e))?;
    let bad = |m: String| {
        Error::new(
            ErrorKind::ToolFailed,
            format!("yosys's netlist {} is not usable: {m}", path.display()),
        )
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let changes = netlist::prepare(&mut value).map_err(bad)?;
    let text = serde_json::to_string(&value).map_err(|e| bad(e.to_string()))?;
    std::fs::write(&path, text)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let note = format!(
        "bql: disconnected {} idle carry-ins and {} unread carry-outs of CCU2C cells; moved {} \
         flip-flops into block RAM output registers (toolchain/src/netlist.rs)\n",
        changes.freed.carry_ins, changes.freed.carry_outs, changes.output_registers
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()))
        .map_err(|e| Error::io(format!("cannot write {}", log.display()), e))
}

fn write_report(path: &Path, r: &BuildReport) {
    if let Ok(t) = serde_json::to_string_pretty(r) {
        let _ = std::fs::write(path, t);
    }
}
