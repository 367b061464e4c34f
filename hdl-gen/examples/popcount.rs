//! Prints one popcount compressor module as Verilog, for measurements outside a whole design
//! (`scripts/lanes.sh`): `cargo run --release -p bql-hdl-gen --example popcount -- KIND LANES
//! [STRIDE]`, KIND `carry-cells` (ECP5 CCU2C) or `logic-cells` (iCE40 SB_LUT4 + SB_CARRY).
//! The module's pipeline latency goes to stderr.

use bql_hdl_gen::blocks::compressor::CarryTree;
use bql_hdl_gen::blocks::compressor_ice40::LogicTree;
use bql_hdl_gen::blocks::tree::{CellTree, STRIDE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: popcount carry-cells|logic-cells LANES [STRIDE]";
    let (Some(kind), Some(lanes)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let number = |s: &str| -> usize {
        s.parse().unwrap_or_else(|_| {
            eprintln!("{usage}: {s:?} is not a number");
            std::process::exit(2)
        })
    };
    let lanes = number(lanes);
    let stride = args.get(2).map_or(STRIDE, |s| number(s));
    if lanes < 2 {
        eprintln!("{usage}: a compressor needs two lanes or more");
        std::process::exit(2);
    }
    let tree = match kind.as_str() {
        "carry-cells" => CellTree::Ccu2c(CarryTree::new(lanes, stride)),
        "logic-cells" => CellTree::Logic(LogicTree::new(lanes, stride)),
        _ => {
            eprintln!("{usage}: unknown kind {kind:?}");
            std::process::exit(2)
        }
    };
    eprintln!("{}: latency {}", tree.name(), tree.latency());
    print!("{}", bql_hdl_gen::verilog::module(&tree.module()));
}
