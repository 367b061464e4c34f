//! Lattice iCE40 (UP5K, HX8K): yosys `synth_ice40`, nextpnr-ice40, icepack.
//!
//! PLL: `SB_PLL40_*` in SIMPLE feedback (Lattice TN1251, "iCE40 sysCLOCK PLL Design and Usage
//! Guide"): `f_pfd = f_in / (DIVR + 1)` in 10..=133 MHz, `f_vco = f_pfd * (DIVF + 1)` in
//! 533..=1066 MHz, `f_out = f_vco / 2^DIVQ` in 16..=275 MHz, DIVR 0..=15, DIVF 0..=127, DIVQ
//! 1..=6; FILTER_RANGE follows `f_pfd`.

use crate::board::{Board, Device, Family};
use crate::ir::{e, Item};

use super::{better, sized, FamilyDef, Pll};

/// The iCE40 family.
pub static FAMILY: FamilyDef = FamilyDef {
    name: "ice40",
    device,
    lut_factor: 1.0,
    // A logic cell pairs one LUT4 with one flip-flop, and after packing about nine in ten
    // flip-flops still needed a cell of their own (0.82-0.92 on three place-and-route runs of
    // generated designs); counted as one in one, since the flip-flop estimate runs low.
    logic_cells: |lut, ff| lut + ff * 4 / 5,
    synth: |d| {
        if d.spram_blocks > 0 {
            "synth_ice40 -spram"
        } else {
            "synth_ice40"
        }
    },
    pin_option: "--pcf",
    routed: ("--asc", "bql_top.asc"),
    bitstream: "bql_top.bin",
    nextpnr: bql_locate::programs::NEXTPNR_ICE40,
    pack: bql_locate::programs::ICEPACK,
    lut_cells: &[("SB_LUT4", 1)],
    ff_cells: &[
        "SB_DFF",
        "SB_DFFE",
        "SB_DFFSR",
        "SB_DFFESR",
        "SB_DFFSS",
        "SB_DFFESS",
        "SB_DFFR",
        "SB_DFFER",
        "SB_DFFS",
        "SB_DFFES",
    ],
    pll_range: "16-275 MHz",
    pll,
    pll_instance,
    iceprog: true,
    lut_ram: None,
};

const EBR: &[(usize, usize)] = &[(16, 256), (8, 512), (4, 1024), (2, 2048)];

/// iCE40 devices by nextpnr name.
fn device(name: &str) -> Option<Device> {
    let d = |name, luts, bram_blocks, spram_blocks| Device {
        name,
        family: Family::Ice40,
        luts,
        // Placement failed at 89 % of the logic cells for a generated design (nextpnr's
        // analytic placer, carry chains and block RAM columns); 75 % leaves room.
        lut_fill: 0.75,
        bram_blocks,
        bram_block_bits: 4096,
        bram_shapes: EBR,
        spram_blocks,
    };
    match name {
        // UP5K: 5,280 LUT4, 30 EBR of 4 kbit and 4 SPRAM of 256 kbit (16 x 16384) (Lattice
        // FPGA-DS-02008).
        "up5k" => Some(d("up5k", 5280, 30, 4)),
        // HX8K: 7,680 LUT4, 32 EBR of 4 kbit (Lattice iCE40 LP/HX data sheet).
        "hx8k" => Some(d("hx8k", 7680, 32, 0)),
        _ => None,
    }
}

/// The settings for the highest output frequency `<= target_mhz` from `in_mhz`.
fn pll(in_mhz: f64, target_mhz: f64) -> Option<Pll> {
    let mut best: Option<Pll> = None;
    for divr in 0..=15u32 {
        let pfd = in_mhz / f64::from(divr + 1);
        if !(10.0..=133.0).contains(&pfd) {
            continue;
        }
        for divf in 0..=127u32 {
            let vco = pfd * f64::from(divf + 1);
            if !(533.0..=1066.0).contains(&vco) {
                continue;
            }
            for divq in 1..=6u32 {
                let out = vco / f64::from(1u32 << divq);
                if !(16.0..=275.0).contains(&out) {
                    continue;
                }
                if better(best.as_ref().map(|b| b.out_mhz), out, target_mhz) {
                    let filter_range = match pfd {
                        p if p < 17.0 => 1,
                        p if p < 26.0 => 2,
                        p if p < 44.0 => 3,
                        p if p < 66.0 => 4,
                        p if p < 101.0 => 5,
                        _ => 6,
                    };
                    best = Some(Pll {
                        out_mhz: out,
                        params: vec![
                            ("DIVR", divr),
                            ("DIVF", divf),
                            ("DIVQ", divq),
                            ("FILTER_RANGE", filter_range),
                        ],
                    });
                }
            }
        }
    }
    best
}

/// `SB_PLL40_PAD` when the board's clock pin is the PLL's own pad, else `SB_PLL40_CORE`.
fn pll_instance(b: &Board, p: &Pll) -> Item {
    let (module, input) = if b.file.pll_pad {
        ("SB_PLL40_PAD", "PACKAGEPIN")
    } else {
        ("SB_PLL40_CORE", "REFERENCECLK")
    };
    Item::Primitive {
        module: module.into(),
        name: "pll".into(),
        params: vec![
            ("FEEDBACK_PATH".into(), "\"SIMPLE\"".into()),
            ("DIVR".into(), sized(p, "DIVR", 4)),
            ("DIVF".into(), sized(p, "DIVF", 7)),
            ("DIVQ".into(), sized(p, "DIVQ", 3)),
            ("FILTER_RANGE".into(), sized(p, "FILTER_RANGE", 3)),
        ],
        inputs: vec![
            (input.into(), e::r("clk")),
            ("RESETB".into(), e::k(1, 1)),
            ("BYPASS".into(), e::k(1, 0)),
        ],
        outputs: vec![
            ("PLLOUTGLOBAL".into(), e::r("pll_clk")),
            ("LOCK".into(), e::r("pll_locked")),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pll_settings_stay_in_range_and_hit_exact_multiples() {
        // 12 MHz -> 24 MHz: f_pfd 12, f_vco 12 * 64 = 768, / 2^5 = 24.
        let p = pll(12.0, 24.0).unwrap();
        assert_eq!(p.settings(), "DIVR 0, DIVF 63, DIVQ 5, FILTER_RANGE 1");
        assert_eq!(p.out_mhz, 24.0);
        for target in [17.0, 30.0, 48.0, 50.5, 100.0, 275.0] {
            let p = pll(12.0, target).unwrap();
            let pfd = 12.0 / f64::from(p.param("DIVR").unwrap() + 1);
            let vco = pfd * f64::from(p.param("DIVF").unwrap() + 1);
            assert!((10.0..=133.0).contains(&pfd) && (533.0..=1066.0).contains(&vco));
            assert!(
                p.out_mhz <= target && p.out_mhz >= 0.97 * target,
                "{target}: {p:?}"
            );
        }
        assert_eq!(pll(12.0, 15.0), None, "below the PLL's 16 MHz");
    }
}
