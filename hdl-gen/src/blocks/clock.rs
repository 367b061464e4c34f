//! `bql_board`: the board's oscillator through the family's PLL into `bql_top`, for designs
//! run faster than the board clock (`--clock`). Its ports are `bql_top`'s, so the board's pin
//! file serves both; `bql_top` stays in reset until the PLL reports lock.
//!
//! It is the synthesis top only; simulation drives `bql_top` directly (the vendor primitives
//! have no Verilator model here), so `bql_board` holds nothing but the PLL and the wiring.

use crate::board::{Board, Family};
use crate::ir::{e, Item, Module};
use crate::pll::{Ecp5Pll, Ice40Pll};

/// A PLL choice for a design clock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pll {
    /// iCE40 `SB_PLL40_PAD` / `SB_PLL40_CORE`.
    Ice40(Ice40Pll),
    /// ECP5 `EHXPLLL`.
    Ecp5(Ecp5Pll),
}

impl Pll {
    /// The settings for the highest frequency `<= mhz` the board's PLL makes from its clock.
    pub fn for_board(b: &Board, mhz: f64) -> Option<Pll> {
        let f = b.file.clock_mhz;
        match b.file.family {
            Family::Ice40 => crate::pll::ice40(f, mhz).map(Pll::Ice40),
            Family::Ecp5 => crate::pll::ecp5(f, mhz).map(Pll::Ecp5),
        }
    }
    /// The divider settings, as a person reads them.
    pub fn settings(&self) -> String {
        match self {
            Pll::Ice40(q) => format!(
                "DIVR {}, DIVF {}, DIVQ {}, FILTER_RANGE {}",
                q.divr, q.divf, q.divq, q.filter_range
            ),
            Pll::Ecp5(q) => format!(
                "CLKI_DIV {}, CLKFB_DIV {}, CLKOP_DIV {}",
                q.clki_div, q.clkfb_div, q.clkop_div
            ),
        }
    }
    /// Output frequency, MHz.
    pub fn out_mhz(&self) -> f64 {
        match self {
            Pll::Ice40(p) => p.out_mhz,
            Pll::Ecp5(p) => p.out_mhz,
        }
    }
}

/// Builds `bql_board` around `bql_top` for `pll` on board `b`.
pub fn module(b: &Board, pll: &Pll, header: &[String]) -> Module {
    let mut m = Module::new("bql_board");
    m.doc.extend(header.iter().cloned());
    m.doc.push(format!(
        "bql_board: {} MHz board clock -> PLL -> {:.3} MHz design clock -> bql_top.",
        b.file.clock_mhz,
        pll.out_mhz()
    ));
    m.input("clk", 1);
    m.input("uart_rx", 1);
    m.output("uart_tx", 1);
    m.output("led_red", 1);
    m.output("led_green", 1);
    m.push(Item::Wire("pll_clk".into(), 1));
    m.push(Item::Wire("pll_locked".into(), 1));
    match pll {
        Pll::Ice40(p) => {
            let (module, input) = if b.file.pll_pad {
                ("SB_PLL40_PAD", "PACKAGEPIN")
            } else {
                ("SB_PLL40_CORE", "REFERENCECLK")
            };
            m.push(Item::Primitive {
                module: module.into(),
                name: "pll".into(),
                params: vec![
                    ("FEEDBACK_PATH".into(), "\"SIMPLE\"".into()),
                    ("DIVR".into(), format!("4'd{}", p.divr)),
                    ("DIVF".into(), format!("7'd{}", p.divf)),
                    ("DIVQ".into(), format!("3'd{}", p.divq)),
                    ("FILTER_RANGE".into(), format!("3'd{}", p.filter_range)),
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
            });
        }
        Pll::Ecp5(p) => {
            m.push(Item::Primitive {
                module: "EHXPLLL".into(),
                name: "pll".into(),
                params: vec![
                    ("CLKI_DIV".into(), p.clki_div.to_string()),
                    ("CLKFB_DIV".into(), p.clkfb_div.to_string()),
                    ("CLKOP_DIV".into(), p.clkop_div.to_string()),
                    ("CLKOP_CPHASE".into(), (p.clkop_div - 1).to_string()),
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
            });
        }
    }
    m.push(Item::Instance {
        module: "bql_top".into(),
        name: "top".into(),
        conns: vec![
            ("clk".into(), e::r("pll_clk")),
            ("clk_locked".into(), e::r("pll_locked")),
            ("uart_rx".into(), e::r("uart_rx")),
            ("uart_tx".into(), e::r("uart_tx")),
            ("led_red".into(), e::r("led_red")),
            ("led_green".into(), e::r("led_green")),
        ],
    });
    m
}
