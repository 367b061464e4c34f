//! Lattice ECP5 (LFE5U-25F/85F, LFE5UM5G-85F): yosys `synth_ecp5`, nextpnr-ecp5, ecppack.
//!
//! PLL: `EHXPLLL` with CLKOP fed back (Lattice TN1263, "ECP5 and ECP5-5G sysCLOCK PLL/DLL Design
//! and Usage Guide"): `f_pfd = f_in / CLKI_DIV` in 3.125..=400 MHz, `f_out = f_pfd * CLKFB_DIV`,
//! `f_vco = f_out * CLKOP_DIV` in 400..=800 MHz, `f_out` in 3.125..=400 MHz; CLKI_DIV and
//! CLKOP_DIV 1..=128, CLKFB_DIV 1..=80.

use crate::board::{Board, Device, Family};
use crate::ir::{e, Item};

use super::{better, FamilyDef, Pll};

/// The ECP5 family.
pub static FAMILY: FamilyDef = FamilyDef {
    name: "ecp5",
    device,
    // yosys `synth_ecp5` spends more LUT4s on the same logic than `synth_ice40` (its carry
    // chains take LUTs of their own): measured 1.24x, 1.28x and 1.49x the iCE40-calibrated
    // estimate on three default-model builds (ULX3S, ULX3S with PLL, ECP5-EVN).
    lut_factor: 1.35,
    // A slice holds two LUT4s and two flip-flops: the larger count.
    logic_cells: |lut, ff| lut.max(ff),
    synth: |_| "synth_ecp5",
    pin_option: "--lpf",
    routed: ("--textcfg", "bql_top.config"),
    bitstream: "bql_top.bit",
    nextpnr: bql_locate::programs::NEXTPNR_ECP5,
    pack: bql_locate::programs::ECPPACK,
    lut_cells: &[
        ("LUT4", 1),
        ("CCU2C", 2),
        ("TRELLIS_DPR16X4", LUT_RAM.sites as u64),
    ],
    ff_cells: &["TRELLIS_FF"],
    pll_range: "3.125-400 MHz",
    pll,
    pll_instance,
    iceprog: false,
    lut_ram: Some(LUT_RAM),
};

/// `TRELLIS_DPR16X4`, 16 x 4 bits. yosys 0.23's `synth_ecp5` builds memories of 2 to 32 words
/// from it (1 to 440 bits wide; 33 words and more went to block RAM from 160 bits wide, not yet
/// at 80, which the model leaves out), and nextpnr-ecp5 packs each into 6 LUT sites
/// (`--pack-only`: 110 primitives, 661 TRELLIS_COMB).
const LUT_RAM: super::LutRam = super::LutRam {
    words: 16,
    bits: 4,
    sites: 6,
    max_depth: 32,
};

const EBR: &[(usize, usize)] = &[
    (36, 512),
    (18, 1024),
    (9, 2048),
    (4, 4096),
    (2, 8192),
    (1, 16384),
];

/// ECP5 devices by nextpnr name.
fn device(name: &str) -> Option<Device> {
    let d = |name, luts, bram_blocks| Device {
        name,
        family: Family::Ecp5,
        luts,
        lut_fill: 0.8,
        bram_blocks,
        bram_block_bits: 18432,
        bram_shapes: EBR,
        spram_blocks: 0,
    };
    match name {
        // LFE5U-25F: 24k LUT4, 56 EBR of 18 kbit (Lattice FPGA-DS-02012).
        "25k" => Some(d("25k", 24288, 56)),
        // LFE5U-85F / LFE5UM5G-85F: 84k LUT4, 208 EBR of 18 kbit.
        "85k" => Some(d("85k", 83640, 208)),
        "um5g-85k" => Some(d("um5g-85k", 83640, 208)),
        _ => None,
    }
}

/// The settings for the highest output frequency `<= target_mhz` from `in_mhz`.
fn pll(in_mhz: f64, target_mhz: f64) -> Option<Pll> {
    let mut best: Option<Pll> = None;
    for clki_div in 1..=128u32 {
        let pfd = in_mhz / f64::from(clki_div);
        if !(3.125..=400.0).contains(&pfd) {
            continue;
        }
        for clkfb_div in 1..=80u32 {
            let out = pfd * f64::from(clkfb_div);
            if !(3.125..=400.0).contains(&out) {
                continue;
            }
            // Any valid CLKOP_DIV gives the same output frequency: the first.
            let Some(clkop_div) =
                (1..=128u32).find(|d| (400.0..=800.0).contains(&(out * f64::from(*d))))
            else {
                continue;
            };
            if better(best.as_ref().map(|b| b.out_mhz), out, target_mhz) {
                best = Some(Pll {
                    out_mhz: out,
                    params: vec![
                        ("CLKI_DIV", clki_div),
                        ("CLKFB_DIV", clkfb_div),
                        ("CLKOP_DIV", clkop_div),
                    ],
                });
            }
        }
    }
    best
}

/// `EHXPLLL` with CLKOP fed back.
fn pll_instance(_: &Board, p: &Pll) -> Item {
    let param = |n| p.param(n).expect("an ECP5 PLL parameter");
    Item::Primitive {
        module: "EHXPLLL".into(),
        name: "pll".into(),
        params: vec![
            ("CLKI_DIV".into(), param("CLKI_DIV").to_string()),
            ("CLKFB_DIV".into(), param("CLKFB_DIV").to_string()),
            ("CLKOP_DIV".into(), param("CLKOP_DIV").to_string()),
            ("CLKOP_CPHASE".into(), (param("CLKOP_DIV") - 1).to_string()),
            ("CLKOP_FPHASE".into(), "0".into()),
            ("CLKOP_ENABLE".into(), "\"ENABLED\"".into()),
            ("FEEDBK_PATH".into(), "\"CLKOP\"".into()),
        ],
        outputs: vec![
            ("CLKOP".into(), e::r("pll_clk")),
            ("LOCK".into(), e::r("pll_locked")),
        ],
        inputs: vec![
            ("CLKI".into(), e::r("clk")),
            ("CLKFB".into(), e::r("pll_clk")),
            ("RST".into(), e::k(1, 0)),
            ("STDBY".into(), e::k(1, 0)),
            ("PHASESEL0".into(), e::k(1, 0)),
            ("PHASESEL1".into(), e::k(1, 0)),
            ("PHASEDIR".into(), e::k(1, 0)),
            ("PHASESTEP".into(), e::k(1, 0)),
            ("PHASELOADREG".into(), e::k(1, 0)),
            ("PLLWAKESYNC".into(), e::k(1, 0)),
            ("ENCLKOP".into(), e::k(1, 0)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pll_settings_stay_in_range() {
        let p = pll(25.0, 50.0).unwrap();
        assert_eq!(p.out_mhz, 50.0);
        for target in [10.0, 48.0, 100.0, 125.0, 133.3, 400.0] {
            let p = pll(25.0, target).unwrap();
            let vco = p.out_mhz * f64::from(p.param("CLKOP_DIV").unwrap());
            assert!((400.0..=800.0).contains(&vco), "{target}: {p:?}");
            assert!(
                p.out_mhz <= target && p.out_mhz >= 0.95 * target,
                "{target}: {p:?}"
            );
        }
    }

    /// yosys 0.23's `synth_ecp5` on a registered-read memory with one write port, and
    /// nextpnr-ecp5 `--pack-only` (docs/hardware.md, "The folding planner").
    #[test]
    fn memories_go_where_yosys_puts_them() {
        use crate::family::MemoryKind::*;
        let kind = |depth| Family::Ecp5.memory_kind(depth, None);
        assert_eq!(kind(1), FlipFlops);
        assert_eq!([kind(2), kind(6), kind(16), kind(32)], [LutRam; 4]);
        assert_eq!(kind(33), BlockRam);
        assert_eq!(Family::Ecp5.memory_kind(6, Some("block")), BlockRam);
        // 440 x 6: 110 primitives, 661 TRELLIS_COMB packed; 440 x 32: 220 and a LUT4 per bit
        // (1,763 packed).
        assert_eq!(LUT_RAM.sites(440, 6), 660);
        assert_eq!(LUT_RAM.sites(440, 32), 1760);
        let ice40 = |depth| Family::Ice40.memory_kind(depth, None);
        assert_eq!(
            [ice40(1), ice40(7), ice40(8)],
            [FlipFlops, FlipFlops, BlockRam]
        );
    }
}
