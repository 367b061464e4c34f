//! `bql_board`: the board's oscillator through the family's PLL into `bql_top`, for designs
//! run faster than the board clock (`--clock`). Its ports are `bql_top`'s, so the board's pin
//! file serves both; `bql_top` stays in reset until the PLL reports lock.
//!
//! It is the synthesis top only; simulation drives `bql_top` directly (the vendor primitives
//! have no Verilator model here), so `bql_board` holds nothing but the PLL and the wiring.

use crate::board::Board;
use crate::family::Pll;
use crate::ir::{e, Dir, Item, Module};

/// The settings for the highest frequency `<= mhz` the board's PLL makes from its clock.
pub fn pll_for_board(b: &Board, mhz: f64) -> Option<Pll> {
    (b.file.family.def().pll)(b.file.clock_mhz, mhz)
}

/// Builds `bql_board` around `top` (`bql_top`) for `pll` on board `b`: `top`'s ports but the
/// lock, the clock from the PLL.
pub fn module(b: &Board, pll: &Pll, top: &Module, header: &[String]) -> Module {
    let mut m = Module::new("bql_board");
    m.doc.extend(header.iter().cloned());
    m.doc.push(format!(
        "bql_board: {} MHz board clock -> PLL -> {:.3} MHz design clock -> bql_top.",
        b.file.clock_mhz, pll.out_mhz
    ));
    m.input("clk", 1);
    let ports: Vec<_> = top
        .ports
        .iter()
        .filter(|q| q.name != "clk" && q.name != "clk_locked")
        .cloned()
        .collect();
    for q in &ports {
        match q.dir {
            Dir::In => m.input(&q.name, q.width),
            _ => m.output(&q.name, q.width),
        };
    }
    m.push(Item::Wire("pll_clk".into(), 1));
    m.push(Item::Wire("pll_locked".into(), 1));
    m.push((b.file.family.def().pll_instance)(b, pll));
    let mut conns = vec![
        ("clk".into(), e::r("pll_clk")),
        ("clk_locked".into(), e::r("pll_locked")),
    ];
    conns.extend(ports.iter().map(|q| (q.name.clone(), e::r(&q.name))));
    m.push(Item::Instance {
        module: "bql_top".into(),
        name: "top".into(),
        conns,
    });
    m
}
