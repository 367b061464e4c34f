//! Argmax over the last layer's scores, one class per cycle; ties keep the lowest index
//! (docs/semantics.md section 6).

use crate::ir::bits_for;
use crate::ir::{e, s, BinOp, Expr, Item, Module};

/// Builds `argmax_<m>x<w>`: `m` scores of `w` bits, signed or unsigned.
pub fn module(m: usize, w: usize, signed: bool) -> Module {
    let name = format!("argmax_{m}x{w}{}", if signed { "s" } else { "u" });
    let iw = bits_for(m);
    let cw = bits_for(m.saturating_sub(1));
    let mut md = Module::new(&name);
    md.doc.push(format!(
        "{name}: index of the largest of {m} {w}-bit scores, lowest index on ties, {m} cycles."
    ));
    let clk = md.input("clk", 1);
    let rst = md.input("rst", 1);
    let in_valid = md.input("in_valid", 1);
    let in_ready = md.output("in_ready", 1);
    let in_scores = md.input("in_scores", m * w);
    let out_valid = md.output_reg("out_valid", 1);
    let out_ready = md.input("out_ready", 1);
    let out_class = md.output_reg("out_class", cw);
    let out_scores = md.output_reg("out_scores", m * w);
    let busy = md.reg("busy", 1);
    let scan = md.reg("scan", m * w);
    let index = md.reg("index", iw);
    let best = md.reg("best", w);
    let ready = md.wire(
        "ready_w",
        1,
        e::and(e::lnot(busy.e()), e::lnot(out_valid.e())),
    );
    md.push(Item::Assign(in_ready.e(), ready.e()));
    let accept = md.wire("accept", 1, e::and(in_valid.e(), ready.e()));
    let candidate = md.wire("candidate", w, scan.slice(w - 1, 0));
    let better = if signed {
        e::lnot(e::bin(BinOp::SignedGe, best.e(), candidate.e()))
    } else {
        e::bin(BinOp::Gt, candidate.e(), best.e())
    };
    let better = md.wire("better", 1, better);
    let shifted = if m == 1 {
        scan.e()
    } else {
        Expr::Concat(vec![e::k(w, 0), scan.slice(m * w - 1, w)])
    };
    // One class per cycle: the first, or a strictly better one, becomes the best.
    let step = vec![
        s::when(
            e::bin(BinOp::LogicOr, index.is(0), better.e()),
            vec![
                best.set(candidate.e()),
                out_class.set(index.slice(cw - 1, 0)),
            ],
        ),
        scan.set(shifted),
        index.inc(),
    ];
    let start = vec![
        busy.set_k(1),
        scan.set(in_scores.e()),
        out_scores.set(in_scores.e()),
        index.set_k(0),
    ];
    let scanning = s::when(
        busy.e(),
        vec![s::when_else(
            index.is(m as u64),
            vec![busy.set_k(0), out_valid.set_k(1)],
            step,
        )],
    );
    md.push(Item::Always(
        clk.name().into(),
        vec![s::when_else(
            rst.e(),
            vec![busy.set_k(0), out_valid.set_k(0)],
            vec![
                s::when(
                    e::and(out_valid.e(), out_ready.e()),
                    vec![out_valid.set_k(0)],
                ),
                s::when_else(accept.e(), start, vec![scanning]),
            ],
        )],
    ));
    md
}
