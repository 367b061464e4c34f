//! Prints one popcount compressor module as Verilog, for measurements outside a whole design
//! (`scripts/lanes.sh`): `cargo run --release -p bql-hdl-gen --example popcount -- KIND LANES
//! [STRIDE]`, KIND `carry-cells` (ECP5 CCU2C) or `logic-cells` (iCE40 SB_LUT4 + SB_CARRY).
//! The module's pipeline latency goes to stderr. `popcount accumulator WIDTH COUNT_WIDTH` prints
//! the ECP5 accumulator of the carry-cell layers instead (`accumulate_WIDTHxCOUNT_WIDTH`).

use bql_hdl_gen::blocks::compressor::CarryTree;
use bql_hdl_gen::blocks::compressor_ice40::LogicTree;
use bql_hdl_gen::blocks::tree::{CellTree, STRIDE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: popcount carry-cells|logic-cells LANES [STRIDE] | accumulator WIDTH COUNT_WIDTH";
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
    if kind == "accumulator" {
        let width = number(lanes);
        let count_width = args.get(2).map(|s| number(s));
        let Some(count_width) = count_width.filter(|&c| c >= 1 && c <= width) else {
            eprintln!("{usage}: an accumulator's count is 1 to WIDTH bits wide");
            std::process::exit(2)
        };
        let m = bql_hdl_gen::blocks::compressor::accumulator_module(width, count_width);
        print!("{}", bql_hdl_gen::verilog::module(&m));
        return;
    }
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
