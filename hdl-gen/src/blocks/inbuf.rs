//! A layer's input buffer (`layer<i>_inbuf`): two halves of block RAM, each one input vector
//! as SF words of S lanes. The producer (the previous layer packing its results, or the input
//! loader) writes one half word by word while the layer reads the other one word per cycle, so
//! neither side keeps the vector in flip-flops and no slice multiplexer is needed.
//!
//! A half is *full* from the producer's last word until the layer releases it after reading its
//! last fold; the producer writes only into a half that is not full, the layer reads only a
//! full one, and both take the halves in turn.

use crate::ir::{e, Expr, Item, Module, Stmt};
use crate::plan::LayerPlan;

/// Builds `layer<i>_inbuf` for layer `l` (in [`crate::plan::InputMode::Buffer`]).
pub fn module(l: &LayerPlan) -> Module {
    let w = l.word_width();
    let aw = l.inbuf_addr_width();
    let fw = aw - 1; // word index within a half
    let mut md = Module::new(l.inbuf_name());
    md.doc.push(format!(
        "{}: layer {} input buffer, 2 halves of {} words x {w} bits (block RAM).",
        l.inbuf_name(),
        l.index,
        l.sf()
    ));
    md.input("clk", 1);
    md.input("rst", 1);
    md.input("wr_en", 1);
    md.input("wr_last", 1);
    md.input("wr_data", w);
    md.output("wr_free", 1);
    md.output("rd_valid", 1);
    md.input("rd_release", 1);
    md.input("rd_addr", fw);
    md.output_reg("rd_data", w);

    md.reg("full0", 1);
    md.reg("full1", 1);
    md.reg("wsel", 1);
    md.reg("rsel", 1);
    md.reg("waddr", fw);
    md.push(Item::Assign(
        e::r("wr_free"),
        e::lnot(e::mux(e::r("wsel"), e::r("full1"), e::r("full0"))),
    ));
    md.push(Item::Assign(
        e::r("rd_valid"),
        e::mux(e::r("rsel"), e::r("full1"), e::r("full0")),
    ));
    md.push(Item::Memory {
        name: "vmem".into(),
        width: w,
        depth: 1 << aw,
        init: None,
        block_ram: true,
    });
    md.push(Item::Always(
        "clk".into(),
        vec![
            Stmt::If(
                e::r("wr_en"),
                vec![Stmt::MemWrite(
                    "vmem".into(),
                    Expr::Concat(vec![e::r("wsel"), e::r("waddr")]),
                    e::r("wr_data"),
                )],
                vec![],
            ),
            Stmt::Assign(
                e::r("rd_data"),
                Expr::MemRead(
                    "vmem".into(),
                    Box::new(Expr::Concat(vec![e::r("rsel"), e::r("rd_addr")])),
                ),
            ),
        ],
    ));
    // A half fills on the producer's last word and empties on the layer's release; the two
    // never meet on one half (the producer writes only a half that is not full).
    let on_write = vec![Stmt::If(
        e::r("wr_last"),
        vec![
            Stmt::Assign(e::r("waddr"), e::k(fw, 0)),
            Stmt::Assign(e::r("wsel"), e::lnot(e::r("wsel"))),
            Stmt::If(
                e::r("wsel"),
                vec![Stmt::Assign(e::r("full1"), e::k(1, 1))],
                vec![Stmt::Assign(e::r("full0"), e::k(1, 1))],
            ),
        ],
        vec![Stmt::Assign(
            e::r("waddr"),
            e::add(e::r("waddr"), e::k(fw, 1)),
        )],
    )];
    let on_release = vec![
        Stmt::Assign(e::r("rsel"), e::lnot(e::r("rsel"))),
        Stmt::If(
            e::r("rsel"),
            vec![Stmt::Assign(e::r("full1"), e::k(1, 0))],
            vec![Stmt::Assign(e::r("full0"), e::k(1, 0))],
        ),
    ];
    md.push(Item::Always(
        "clk".into(),
        vec![Stmt::If(
            e::r("rst"),
            vec![
                Stmt::Assign(e::r("full0"), e::k(1, 0)),
                Stmt::Assign(e::r("full1"), e::k(1, 0)),
                Stmt::Assign(e::r("wsel"), e::k(1, 0)),
                Stmt::Assign(e::r("rsel"), e::k(1, 0)),
                Stmt::Assign(e::r("waddr"), e::k(fw, 0)),
            ],
            vec![
                Stmt::If(e::r("wr_en"), on_write, vec![]),
                Stmt::If(e::r("rd_release"), on_release, vec![]),
            ],
        )],
    ));
    md
}
