//! Argmax over the last layer's scores, two cycles per class (the compare is registered: a
//! compare into the best score's enable in one cycle was the UP5K's critical path at 48 MHz);
//! ties keep the lowest index (docs/semantics.md section 6). The argmax is a pipeline stage of
//! its own, so its cycles add to an image's latency, not to the interval between images.

use crate::ir::bits_for;
use crate::ir::{e, s, BinOp, Expr, Item, Module};

/// Cycles the argmax takes per image for `m` classes: the accepting cycle, two per class, and
/// the result's (a bound on the design's interval, which the plan takes into account).
pub fn interval(m: usize) -> usize {
    2 * m + 2
}

/// Builds `argmax_<m>x<w>`: `m` scores of `w` bits, signed or unsigned.
pub fn module(m: usize, w: usize, signed: bool) -> Module {
    let name = format!("argmax_{m}x{w}{}", if signed { "s" } else { "u" });
    let iw = bits_for(m);
    let cw = bits_for(m.saturating_sub(1));
    let mut md = Module::new(&name);
    md.doc.push(format!(
        "{name}: index of the largest of {m} {w}-bit scores, lowest index on ties, {} cycles.",
        2 * m
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
    // `index == m`, registered as the index steps there (the compare into the scan's enable
    // was the UP5K's critical path at 48 MHz).
    let at_end = md.reg("at_end", 1);
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
    // `better` of the cycle before: scan and best change only on the second cycle of a class.
    let better_q = md.reg("better_q", 1);
    let second = md.reg("second", 1);
    md.push(Item::Always(
        clk.name().into(),
        vec![better_q.set(better.e())],
    ));
    let shifted = if m == 1 {
        scan.e()
    } else {
        Expr::Concat(vec![e::k(w, 0), scan.slice(m * w - 1, w)])
    };
    // Two cycles per class: the first, or a strictly better one, becomes the best.
    let step = vec![
        s::when(
            e::bin(BinOp::LogicOr, index.is(0), better_q.e()),
            vec![
                best.set(candidate.e()),
                out_class.set(index.slice(cw - 1, 0)),
            ],
        ),
        scan.set(shifted),
        index.inc(),
        at_end.set(index.is(m as u64 - 1)),
    ];
    let start = vec![
        busy.set_k(1),
        scan.set(in_scores.e()),
        out_scores.set(in_scores.e()),
        index.set_k(0),
        at_end.set_k(0),
        second.set_k(0),
    ];
    let scanning = s::when(
        busy.e(),
        vec![s::when_else(
            at_end.e(),
            vec![busy.set_k(0), out_valid.set_k(1)],
            vec![s::when_else(
                second.e(),
                [step, vec![second.set_k(0)]].concat(),
                vec![second.set_k(1)],
            )],
        )],
    );
    md.push(Item::Always(
        clk.name().into(),
        s::reset_last(
            rst.e(),
            vec![busy.set_k(0), out_valid.set_k(0)],
            vec![
                s::when(
                    e::and(out_valid.e(), out_ready.e()),
                    vec![out_valid.set_k(0)],
                ),
                s::when_else(accept.e(), start, vec![scanning]),
            ],
        ),
    ));
    md
}
