//! Boards are data: `constraints/<id>.toml` names the device, package, clock and pins, next to
//! its pin file. Device facts (LUTs, block RAM) live here, per device.
//!
//! The project's boards are compiled into the binary ([`find`], [`all`]), so a `bql`
//! installed anywhere (`cargo install --path cli`) knows them. A folder of board files (for
//! `bql`: the `BQL_BOARDS` environment variable) adds boards or overrides embedded ones of the
//! same id; [`load`] reads one board from a folder.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// FPGA family: decides the synthesis and place-and-route commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Lattice iCE40 (yosys synth_ice40, nextpnr-ice40, icepack).
    Ice40,
    /// Lattice ECP5 (yosys synth_ecp5, nextpnr-ecp5, ecppack).
    Ecp5,
}

/// Facts about a device that the planner needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Device name as nextpnr spells it (`up5k`, `hx8k`, `85k`).
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// LUT4s.
    pub luts: usize,
    /// Fraction of LUTs the planner may fill.
    pub lut_fill: f64,
    /// Block RAM primitives.
    pub bram_blocks: usize,
    /// Bits per block RAM.
    pub bram_block_bits: usize,
    /// Usable (width, depth) shapes of one block RAM.
    pub bram_shapes: &'static [(usize, usize)],
    /// Single-port RAMs of 16 x 16384 bits (iCE40 UltraPlus SPRAM; not initializable).
    pub spram_blocks: usize,
}

/// Shape of one SPRAM (width, depth).
pub const SPRAM_SHAPE: (usize, usize) = (16, 16384);

/// Looks up a device by its nextpnr name, in every family.
pub fn device(name: &str) -> Option<Device> {
    Family::ALL.iter().find_map(|f| (f.def().device)(name))
}

/// A board, as read from `constraints/<id>.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct BoardFile {
    /// Short id (`icebreaker`).
    pub id: String,
    /// Full name.
    pub name: String,
    /// Family.
    pub family: Family,
    /// Device (nextpnr name).
    pub device: String,
    /// Package (nextpnr name).
    pub package: String,
    /// Board oscillator in MHz.
    pub clock_mhz: f64,
    /// Target design clock in MHz (a PLL derives it from the oscillator).
    pub target_mhz: f64,
    /// Pin file next to the board file (`.pcf` or `.lpf`).
    pub pin_file: String,
    /// UART baud rate of the host link.
    pub baud: u32,
    /// The LEDs light on a low level.
    #[serde(default)]
    pub led_active_low: bool,
    /// iCE40: the clock pin is the PLL's own input pad, so the PLL is `SB_PLL40_PAD` (fed by the
    /// pin) rather than `SB_PLL40_CORE` (fed by the global clock net).
    #[serde(default)]
    pub pll_pad: bool,
    /// openFPGALoader's name for the board (`-b`).
    pub loader_board: String,
    /// Named pins (clock, UART, LEDs).
    pub pins: std::collections::BTreeMap<String, String>,
}

impl BoardFile {
    /// Clocks per UART bit at a design clock of `clock_mhz`, when the baud rate divides it
    /// within 2 %.
    pub fn uart_divisor_at(&self, clock_mhz: f64) -> Option<usize> {
        let exact = clock_mhz * 1e6 / self.baud as f64;
        let div = exact.round();
        ((div - exact).abs() / exact <= 0.02 && div >= 4.0).then_some(div as usize)
    }
}

/// A board with its device facts.
#[derive(Debug, Clone)]
pub struct Board {
    /// The board file.
    pub file: BoardFile,
    /// The device.
    pub device: Device,
    /// The pin file's contents (its name is [`BoardFile::pin_file`]).
    pub pins: String,
    /// Where the board came from: `embedded`, or the board file's path.
    pub source: String,
}

/// The project's boards, compiled in: (board file, pin file).
const EMBEDDED: &[(&str, &str)] = &[
    (
        include_str!("../../constraints/ecp5-evn.toml"),
        include_str!("../../constraints/ecp5-evn.lpf"),
    ),
    (
        include_str!("../../constraints/hx8k.toml"),
        include_str!("../../constraints/hx8k.pcf"),
    ),
    (
        include_str!("../../constraints/icebreaker.toml"),
        include_str!("../../constraints/icebreaker.pcf"),
    ),
    (
        include_str!("../../constraints/ulx3s.toml"),
        include_str!("../../constraints/ulx3s.lpf"),
    ),
    (
        include_str!("../../constraints/upduino.toml"),
        include_str!("../../constraints/upduino.pcf"),
    ),
];

/// The embedded boards, sorted by id.
pub fn embedded() -> Vec<Board> {
    let mut v: Vec<Board> = EMBEDDED
        .iter()
        .map(|(toml, pins)| parse(toml, pins.to_string(), "embedded".into()).expect("valid"))
        .collect();
    v.sort_by(|a, b| a.file.id.cmp(&b.file.id));
    v
}

/// Board `id`: from `folder` when it has `<id>.toml` there, else the embedded one.
pub fn find(id: &str, folder: Option<&Path>) -> Result<Board> {
    if let Some(dir) = folder.filter(|d| d.join(format!("{id}.toml")).is_file()) {
        return load(dir, id);
    }
    embedded()
        .into_iter()
        .find(|b| b.file.id == id)
        .ok_or_else(|| {
            let known: Vec<String> = all(folder)
                .map(|v| v.into_iter().map(|b| b.file.id).collect())
                .unwrap_or_default();
            Error::invalid(format!(
                "unknown board '{id}'; known boards: {} (add one with a folder of board files: \
                 <id>.toml and its pin file; see docs/hardware.md)",
                known.join(", ")
            ))
        })
}

/// Every board: the embedded ones, with those of `folder` added or put in their place.
pub fn all(folder: Option<&Path>) -> Result<Vec<Board>> {
    let mut boards = embedded();
    if let Some(dir) = folder {
        for b in list(dir)? {
            boards.retain(|e| e.file.id != b.file.id);
            boards.push(b);
        }
    }
    boards.sort_by(|a, b| a.file.id.cmp(&b.file.id));
    Ok(boards)
}

/// Loads board `id` from `dir` (a folder of board files, like the project's `constraints/`).
pub fn load(dir: &Path, id: &str) -> Result<Board> {
    let path = dir.join(format!("{id}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::io(
            format!("unknown board '{id}': cannot read {}", path.display()),
            e,
        )
    })?;
    let probe: BoardFile =
        toml::from_str(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    let pin_path = dir.join(&probe.pin_file);
    let pins = std::fs::read_to_string(&pin_path).map_err(|e| {
        Error::io(
            format!(
                "{}: cannot read its pin file {}",
                path.display(),
                pin_path.display()
            ),
            e,
        )
    })?;
    parse(&text, pins, path.display().to_string())
}

/// A board from its file's text and its pin file's contents.
fn parse(text: &str, pins: String, source: String) -> Result<Board> {
    let file: BoardFile =
        toml::from_str(text).map_err(|e| Error::invalid(format!("{source}: {e}")))?;
    let device = device(&file.device)
        .ok_or_else(|| Error::invalid(format!("{source}: unknown device '{}'", file.device)))?;
    if device.family != file.family {
        return Err(Error::invalid(format!(
            "{source}: device {} is not {:?}",
            file.device, file.family
        )));
    }
    Ok(Board {
        file,
        device,
        pins,
        source,
    })
}

/// Every board in `dir`, sorted by id.
pub fn list(dir: &Path) -> Result<Vec<Board>> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml")
                .then(|| p.file_stem()?.to_str().map(str::to_string))
                .flatten()
        })
        .collect();
    ids.sort();
    ids.iter().map(|id| load(dir, id)).collect()
}
