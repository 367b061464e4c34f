//! Argmax over the last layer's scores, one class per cycle; ties keep the lowest index
//! (docs/semantics.md section 6).

use crate::ir::bits_for;
use crate::ir::{e, BinOp, Expr, Item, Module, Stmt};

/// Builds `argmax_<m>x<w>`: `m` scores of `w` bits, signed or unsigned.
pub fn module(m: usize, w: usize, signed: bool) -> Module {
    let name = format!("argmax_{m}x{w}{}", if signed { "s" } else { "u" });
    let iw = bits_for(m);
    let cw = bits_for(m.saturating_sub(1));
    let mut md = Module::new(&name);
    md.doc.push(format!(
        "{name}: index of the largest of {m} {w}-bit scores, lowest index on ties, {m} cycles."
    ));
    md.input("clk", 1);
    md.input("rst", 1);
    md.input("in_valid", 1);
    md.output("in_ready", 1);
    md.input("in_scores", m * w);
    md.output_reg("out_valid", 1);
    md.input("out_ready", 1);
    md.output_reg("out_class", cw);
    md.output_reg("out_scores", m * w);
    md.reg("busy", 1);
    md.reg("scan", m * w);
    md.reg("index", iw);
    md.reg("best", w);
    md.wire(
        "ready_w",
        1,
        e::and(e::lnot(e::r("busy")), e::lnot(e::r("out_valid"))),
    );
    md.push(Item::Assign(e::r("in_ready"), e::r("ready_w")));
    md.wire("accept", 1, e::and(e::r("in_valid"), e::r("ready_w")));
    md.wire("candidate", w, Expr::Slice("scan".into(), w - 1, 0));
    let better = if signed {
        e::lnot(e::bin(BinOp::SignedGe, e::r("best"), e::r("candidate")))
    } else {
        e::bin(BinOp::Gt, e::r("candidate"), e::r("best"))
    };
    md.wire("better", 1, better);
    let shifted = if m == 1 {
        e::r("scan")
    } else {
        Expr::Concat(vec![e::k(w, 0), Expr::Slice("scan".into(), m * w - 1, w)])
    };
    let done = e::eq(e::r("index"), e::k(iw, m as u64));
    md.push(Item::Always(
        "clk".into(),
        vec![Stmt::If(
            e::r("rst"),
            vec![
                Stmt::Assign(e::r("busy"), e::k(1, 0)),
                Stmt::Assign(e::r("out_valid"), e::k(1, 0)),
            ],
            vec![
                Stmt::If(
                    e::and(e::r("out_valid"), e::r("out_ready")),
                    vec![Stmt::Assign(e::r("out_valid"), e::k(1, 0))],
                    vec![],
                ),
                Stmt::If(
                    e::r("accept"),
                    vec![
                        Stmt::Assign(e::r("busy"), e::k(1, 1)),
                        Stmt::Assign(e::r("scan"), e::r("in_scores")),
                        Stmt::Assign(e::r("out_scores"), e::r("in_scores")),
                        Stmt::Assign(e::r("index"), e::k(iw, 0)),
                    ],
                    vec![Stmt::If(
                        e::r("busy"),
                        vec![Stmt::If(
                            done,
                            vec![
                                Stmt::Assign(e::r("busy"), e::k(1, 0)),
                                Stmt::Assign(e::r("out_valid"), e::k(1, 1)),
                            ],
                            vec![
                                Stmt::If(
                                    e::bin(
                                        BinOp::LogicOr,
                                        e::eq(e::r("index"), e::k(iw, 0)),
                                        e::r("better"),
                                    ),
                                    vec![
                                        Stmt::Assign(e::r("best"), e::r("candidate")),
                                        Stmt::Assign(
                                            e::r("out_class"),
                                            Expr::Slice("index".into(), cw - 1, 0),
                                        ),
                                    ],
                                    vec![],
                                ),
                                Stmt::Assign(e::r("scan"), shifted),
                                Stmt::Assign(e::r("index"), e::add(e::r("index"), e::k(iw, 1))),
                            ],
                        )],
                        vec![],
                    )],
                ),
            ],
        )],
    ));
    md
}
