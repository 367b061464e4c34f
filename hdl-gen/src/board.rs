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
    /// The USB-serial bridge of the host link.
    pub bridge: Bridge,
    /// A lower limit than the bridge's own, for a board whose UART path cannot take the
    /// bridge's top rate (an external adapter, long wires).
    #[serde(default)]
    pub max_baud: Option<u32>,
    /// The LEDs light on a low level.
    #[serde(default)]
    pub led_active_low: bool,
    /// iCE40: the clock pin is the PLL's own input pad, so the PLL is `SB_PLL40_PAD` (fed by the
    /// pin) rather than `SB_PLL40_CORE` (fed by the global clock net).
    #[serde(default)]
    pub pll_pad: bool,
    /// openFPGALoader's name for the board (`-b`).
    pub loader_board: String,
    /// The SPI host link, when the board has one (pins `spi_sck`, `spi_cs_n`, `spi_mosi`,
    /// `spi_miso`).
    #[serde(default)]
    pub spi: Option<SpiLink>,
    /// Named pins (clock, UART, LEDs).
    pub pins: std::collections::BTreeMap<String, String>,
}

/// An SPI host link: an FTDI channel in MPSSE mode drives SCK (`60 MHz / (2 (1 + n))`,
/// FTDI AN_108, clock divide-by-5 off) into the FPGA.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct SpiLink {
    /// The fastest SCK the board's wiring takes, MHz (30 for the FT2232H's MPSSE).
    pub max_sck_mhz: f64,
}

/// The SCK rates an FTDI H-series MPSSE makes, Hz, fastest first, down to 1 MHz.
pub fn mpsse_sck_rates() -> impl Iterator<Item = u64> {
    (0u64..30).map(|n| 60_000_000 / (2 * (1 + n)))
}

/// USB-serial bridges and the rates their baud generators make (FTDI AN_120, "Aliasing VCP
/// Baud Rates": a base clock divided by `n + k/8`, `n >= 2`, or the special divisors 0 and 1,
/// which give the base clock and two thirds of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bridge {
    /// FTDI FT2232H (iCEBreaker, HX8K and ECP5 evaluation boards): 12 MHz base, up to
    /// 12 Mbaud (DS_FT2232H).
    Ft2232h,
    /// FTDI FT232H: the same baud generator as the FT2232H.
    Ft232h,
    /// FTDI FT231X (ULX3S): 3 MHz base, up to 3 Mbaud (DS_FT231X).
    Ft231x,
    /// An external adapter on header pins, assumed to generate rates like an FT232R (3 MHz
    /// base, up to 3 Mbaud); limit it with `max_baud`.
    External,
}

impl Bridge {
    /// Base clock of the baud generator and top rate, in Hz.
    fn base_and_max(self) -> (f64, u32) {
        match self {
            Bridge::Ft2232h | Bridge::Ft232h => (12e6, 12_000_000),
            Bridge::Ft231x | Bridge::External => (3e6, 3_000_000),
        }
    }

    /// Every rate the generator makes, from the fastest, down to 1/16 of its base clock.
    pub fn rates(self) -> Vec<f64> {
        let (base, _) = self.base_and_max();
        let mut r = vec![base, base / 1.5];
        r.extend((16..=128).map(|eighths| base * 8.0 / eighths as f64));
        r
    }

    /// Chip name.
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Ft2232h => "FT2232H",
            Bridge::Ft232h => "FT232H",
            Bridge::Ft231x => "FT231X",
            Bridge::External => "external USB-serial adapter",
        }
    }
}

impl BoardFile {
    /// The top rate of this board's link.
    pub fn max_baud(&self) -> u32 {
        let (_, bridge_max) = self.bridge.base_and_max();
        self.max_baud.map_or(bridge_max, |m| m.min(bridge_max))
    }

    /// The fastest baud rate of the link at a design clock of `clock_mhz`: a rate the bridge
    /// makes, within the board's limit, whose bit is an integer number (>= 4) of design clocks
    /// within 0.5 % (both ends then sample the tenth bit of a byte within 5 % of its middle).
    /// With that divisor.
    pub fn link_at(&self, clock_mhz: f64) -> Option<(u32, usize)> {
        let max = f64::from(self.max_baud());
        self.bridge
            .rates()
            .into_iter()
            .filter(|&r| r <= max + 0.5)
            .find_map(|rate| {
                let exact = clock_mhz * 1e6 / rate;
                let div = exact.round();
                ((div - exact).abs() / exact <= 0.005 && div >= 4.0)
                    .then_some((rate.round() as u32, div as usize))
            })
    }

    /// The baud rate at a design clock of `clock_mhz` (see [`BoardFile::link_at`]); 0 when no
    /// rate fits.
    pub fn baud_at(&self, clock_mhz: f64) -> u32 {
        self.link_at(clock_mhz).map_or(0, |(b, _)| b)
    }

    /// The SCK of the SPI link at a design clock of `clock_mhz`, Hz: the fastest MPSSE rate
    /// within the board's limit and [`crate::blocks::spi::MAX_SCK_PER_CLOCK`] design clocks.
    /// `None` when the board has no SPI link.
    pub fn sck_at(&self, clock_mhz: f64) -> Option<u64> {
        let spi = self.spi?;
        let limit = 1e6
            * spi
                .max_sck_mhz
                .min(crate::blocks::spi::MAX_SCK_PER_CLOCK * clock_mhz);
        mpsse_sck_rates().find(|&r| r as f64 <= limit + 0.5)
    }

    /// Clocks per UART bit at a design clock of `clock_mhz`.
    pub fn uart_divisor_at(&self, clock_mhz: f64) -> Option<usize> {
        self.link_at(clock_mhz).map(|(_, d)| d)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn board(id: &str) -> BoardFile {
        find(id, None).unwrap().file
    }

    /// The fastest rate each bridge makes that the design clock divides within 0.5 %.
    #[test]
    fn each_link_runs_at_the_fastest_rate_its_bridge_and_clock_share() {
        let icebreaker = board("icebreaker");
        assert_eq!(icebreaker.link_at(12.0), Some((3_000_000, 4)));
        assert_eq!(icebreaker.link_at(24.0), Some((6_000_000, 4)));
        assert_eq!(icebreaker.link_at(48.0), Some((12_000_000, 4)));
        // 36 MHz: 9 Mbaud is no FT2232H rate (12 MHz / 1.333); 6 Mbaud is, 6 clocks per bit.
        assert_eq!(icebreaker.link_at(36.0), Some((6_000_000, 6)));
        let ulx3s = board("ulx3s");
        assert_eq!(ulx3s.max_baud(), 3_000_000);
        // 25 MHz: 3 MHz x 8 / 22 = 1.0909 Mbaud against 25 MHz / 23 (0.36 % apart).
        assert_eq!(ulx3s.link_at(25.0), Some((1_090_909, 23)));
        assert_eq!(ulx3s.link_at(48.0), Some((3_000_000, 16)));
        let upduino = board("upduino");
        assert_eq!(
            upduino.link_at(12.0),
            Some((1_000_000, 12)),
            "the adapter's limit"
        );
        // A clock no rate fits within 0.5 % with at least 4 clocks per bit.
        assert_eq!(icebreaker.link_at(1.0), None);
    }

    /// SCK: the fastest MPSSE rate (60 MHz / 2 (1 + n)) within the board's limit and 2.5
    /// design clocks; only boards with an `[spi]` section have the link.
    #[test]
    fn the_spi_link_runs_at_the_fastest_sck_the_clock_keeps_up_with() {
        let icebreaker = board("icebreaker");
        assert_eq!(icebreaker.sck_at(12.0), Some(30_000_000));
        assert_eq!(
            icebreaker.sck_at(48.0),
            Some(30_000_000),
            "the board's limit"
        );
        assert_eq!(
            icebreaker.sck_at(10.0),
            Some(15_000_000),
            "2.5 x 10 MHz = 25 MHz"
        );
        assert_eq!(icebreaker.sck_at(4.0), Some(10_000_000));
        for id in ["ulx3s", "upduino", "hx8k", "ecp5-evn"] {
            assert_eq!(board(id).sck_at(12.0), None, "{id} has no SPI link");
        }
    }
}
