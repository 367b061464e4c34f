//! One module per FPGA family: everything that differs between families lives in its
//! [`FamilyDef`]: the devices and their memory shapes, the planner's calibration, the PLL (its
//! search over the documented ranges and its primitive), the synthesis, place-and-route and
//! packing commands and files, and the cell names the build report counts. Boards stay data
//! (`constraints/<id>.toml` names a family and a device).
//!
//! Adding a family (Gowin, or Xilinx 7-series through openXC7) is one new file here, its
//! variant in [`Family`] and its line in [`Family::def`], plus board files.

pub mod ecp5;
pub mod ice40;

use serde::Serialize;

use crate::board::{Board, Device, Family};
use crate::ir::Item;

/// A PLL setting: the output frequency and the primitive's divider parameters, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pll {
    /// Output frequency, MHz.
    pub out_mhz: f64,
    /// The primitive's parameters (`DIVR`, `CLKOP_DIV`, ...) in the order they are printed.
    pub params: Vec<(&'static str, u32)>,
}

impl Pll {
    /// The value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<u32> {
        self.params.iter().find(|(n, _)| *n == name).map(|p| p.1)
    }
    /// The divider settings, as a person reads them (`DIVR 0, DIVF 63, ...`).
    pub fn settings(&self) -> String {
        self.params
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What bql knows about one FPGA family.
#[derive(Debug)]
pub struct FamilyDef {
    /// Lower-case name, as in board files (`ice40`).
    pub name: &'static str,
    /// The family's devices by their nextpnr name.
    pub device: fn(&str) -> Option<Device>,
    /// LUT4s per iCE40-calibrated LUT4 of the planner's cost model.
    pub lut_factor: f64,
    /// Logic cells for `lut` LUT4s and `ff` flip-flops (how the family packs them).
    pub logic_cells: fn(usize, usize) -> usize,
    /// The yosys synthesis command for a device (`synth_ice40 -spram`).
    pub synth: fn(&Device) -> &'static str,
    /// nextpnr's option for the pin file (`--pcf`).
    pub pin_option: &'static str,
    /// nextpnr's option for the routed output (`--asc`) and its file.
    pub routed: (&'static str, &'static str),
    /// The bitstream's file name.
    pub bitstream: &'static str,
    /// nextpnr for the family.
    pub nextpnr: bql_locate::Spec,
    /// The bitstream packer.
    pub pack: bql_locate::Spec,
    /// yosys's cells that take LUT4 sites, with the sites each takes (an ECP5 CCU2C fills two),
    /// for the build report.
    pub lut_cells: &'static [(&'static str, u64)],
    /// yosys's flip-flop cell names.
    pub ff_cells: &'static [&'static str],
    /// The PLL's output range, for messages.
    pub pll_range: &'static str,
    /// The settings for the highest output frequency `<= target_mhz` from `in_mhz`.
    pub pll: fn(f64, f64) -> Option<Pll>,
    /// The PLL primitive on board `b` for a setting: input `clk`, outputs `pll_clk` and
    /// `pll_locked`.
    pub pll_instance: fn(&Board, &Pll) -> Item,
    /// iceprog can program the family's boards (the fallback when openFPGALoader is missing).
    pub iceprog: bool,
    /// The distributed (LUT) RAM yosys builds small memories from, if the family has one.
    pub lut_ram: Option<LutRam>,
}

/// Where yosys puts a memory the design leaves to inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// Flip-flops and read multiplexers.
    FlipFlops,
    /// Distributed RAM in LUTs ([`LutRam`]); its read register stays a flip-flop.
    LutRam,
    /// Block RAM, which takes the read register as its own.
    BlockRam,
}

/// A family's distributed RAM primitive as yosys uses it, and what nextpnr packs it into.
#[derive(Debug, Clone, Copy)]
pub struct LutRam {
    /// Words of one primitive.
    pub words: usize,
    /// Bits of a word of one primitive.
    pub bits: usize,
    /// LUT sites (nextpnr's logic-cell count) per primitive.
    pub sites: usize,
    /// Memories of 2 to `max_depth` words become distributed RAM; deeper ones block RAM.
    pub max_depth: usize,
}

impl LutRam {
    /// LUT sites of a `width x depth` memory: the primitives, banks of `words` side by side,
    /// and a LUT per bit choosing among banks beyond the first.
    pub fn sites(&self, width: usize, depth: usize) -> usize {
        let banks = depth.div_ceil(self.words);
        self.sites * width.div_ceil(self.bits) * banks + width * (banks - 1)
    }
}

impl Family {
    /// The family's definition.
    pub fn def(self) -> &'static FamilyDef {
        match self {
            Family::Ice40 => &ice40::FAMILY,
            Family::Ecp5 => &ecp5::FAMILY,
        }
    }

    /// Every family.
    pub const ALL: [Family; 2] = [Family::Ice40, Family::Ecp5];

    /// Where yosys puts an inferred memory of `depth` words with yosys's `ram_style` (any style
    /// asks for a RAM primitive): fewer than 8 words go to flip-flops, 2 to
    /// [`LutRam::max_depth`] words to distributed RAM where the family has it (measured with
    /// yosys 0.23, docs/hardware.md), the rest to block RAM.
    pub fn memory_kind(self, depth: usize, ram_style: Option<&str>) -> MemoryKind {
        if ram_style.is_some() {
            return MemoryKind::BlockRam;
        }
        match self.def().lut_ram {
            Some(r) if (2..=r.max_depth).contains(&depth) => MemoryKind::LutRam,
            _ if depth < 8 => MemoryKind::FlipFlops,
            _ => MemoryKind::BlockRam,
        }
    }
}

/// Keeps the candidate with the highest frequency not above `target` (ties: the first found):
/// a design is timed for the frequency it asked for, so rounding up could break timing.
pub(crate) fn better(best: Option<f64>, f: f64, target: f64) -> bool {
    f <= target + 1e-9 && best.is_none_or(|b| f > b + 1e-9)
}

/// A parameter value printed as a sized Verilog constant, `width'dvalue`.
pub(crate) fn sized(p: &Pll, name: &str, width: usize) -> String {
    format!(
        "{width}'d{}",
        p.param(name).expect("a parameter of this family's PLL")
    )
}
