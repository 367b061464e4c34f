//! Prints one layer's MVTU module as planned for a board at full speed with the given folds,
//! with that layer's popcount made of the cells named, for measurements outside a whole design
//! (`scripts/lanes.sh`): `cargo run --release -p bql-hdl-gen --example mvtu -- MODEL BOARD
//! LAYER KIND [L:P:S ...]`, KIND `logic-cells` (iCE40), `carry-cells` (ECP5) or `adders`.
//!
//! The plan is the board's, so the layer's folding, input mode and memories are what the board
//! gets; only the popcount (and with it the accumulator, which follows the popcount's cells)
//! changes. This lets `lanes.sh` measure an iCE40 MVTU at lane counts no iCE40 holds whole.

use std::path::Path;

use bql_hdl_gen::blocks::tree::Popcount;

fn fail(message: &str) -> ! {
    eprintln!(
        "usage: mvtu MODEL BOARD LAYER logic-cells|carry-cells|adders [L:P:S ...]: {message}"
    );
    std::process::exit(2)
}

fn number(s: &str) -> usize {
    s.parse()
        .unwrap_or_else(|_| fail(&format!("{s:?} is not a number")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, board, layer, kind, folds @ ..] = args.as_slice() else {
        fail("too few arguments")
    };
    let popcount = match kind.as_str() {
        "logic-cells" => Popcount::LogicCells,
        "carry-cells" => Popcount::CarryCells,
        "adders" => Popcount::Adders,
        _ => fail(&format!("unknown kind {kind:?}")),
    };
    let folds = folds
        .iter()
        .map(|f| match f.split(':').map(number).collect::<Vec<_>>()[..] {
            [l, p, s] => (l, p, s),
            _ => fail(&format!("{f:?} is not L:P:S")),
        })
        .collect();
    let net = bql_model::format::load(Path::new(model)).unwrap_or_else(|e| fail(&e.to_string()));
    let constraints = Path::new(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    let board =
        bql_hdl_gen::board::load(&constraints, board).unwrap_or_else(|e| fail(&e.to_string()));
    let opts = bql_hdl_gen::Options {
        folds,
        ignore_link: true,
        ..Default::default()
    };
    let design =
        bql_hdl_gen::generate_with(&net, &board, &opts).unwrap_or_else(|e| fail(&e.to_string()));
    let mut plan = design
        .plan
        .layers
        .get(number(layer))
        .cloned()
        .unwrap_or_else(|| fail(&format!("the model has no layer {layer}")));
    plan.popcount = popcount;
    eprintln!("{}: tree {}", plan.mvtu_name(), plan.tree().name());
    let module = bql_hdl_gen::blocks::mvtu::module(&plan);
    print!("{}", bql_hdl_gen::verilog::module(&module));
}
