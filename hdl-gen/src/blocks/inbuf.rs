//! A layer's input buffer (`layer<i>_inbuf`): two halves of block RAM, each one input vector
//! as SF words of S lanes. The producer (the previous layer packing its results, or the input
//! loader) writes one half word by word while the layer reads the other one word per cycle, so
//! neither side keeps the vector in flip-flops and no slice multiplexer is needed.
//!
//! A half is *full* from the producer's last word until the layer releases it after reading its
//! last fold; the producer writes only into a half that is not full, the layer reads only a
//! full one, and both take the halves in turn.

use crate::ir::{e, s, Expr, Item, Module, Sig, Stmt};
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
        l.in_words()
    ));
    let clk = md.input("clk", 1);
    let rst = md.input("rst", 1);
    let wr_en = md.input("wr_en", 1);
    let wr_last = md.input("wr_last", 1);
    let wr_data = md.input("wr_data", w);
    let wr_free = md.output_reg("wr_free", 1);
    let rd_valid = md.output_reg("rd_valid", 1);
    let rd_release = md.input("rd_release", 1);
    let rd_addr = md.input("rd_addr", fw);
    let rd_data = md.output_reg("rd_data", w);

    let full = [md.reg("full0", 1), md.reg("full1", 1)];
    let wsel = md.reg("wsel", 1);
    let rsel = md.reg("rsel", 1);
    let waddr = md.reg("waddr", fw);
    flags_ahead(&mut md, &full, &wsel, &rsel, [&wr_free, &rd_valid]);
    md.push(Item::Memory {
        name: "vmem".into(),
        width: w,
        depth: 1 << aw,
        init: None,
        ram_style: Some("block"),
        no_rw_check: false,
    });
    md.push(Item::Always(
        clk.name().into(),
        vec![
            s::when(
                wr_en.e(),
                vec![Stmt::MemWrite(
                    "vmem".into(),
                    Expr::Concat(vec![wsel.e(), waddr.e()]),
                    wr_data.e(),
                )],
            ),
            rd_data.set(Expr::MemRead(
                "vmem".into(),
                Box::new(Expr::Concat(vec![rsel.e(), rd_addr.e()])),
            )),
        ],
    ));
    // A half fills on the producer's last word and empties on the layer's release; the two
    // never meet on one half (the producer writes only a half that is not full).
    let set_half =
        |sel: &Sig, v: u64| s::when_else(sel.e(), vec![full[1].set_k(v)], vec![full[0].set_k(v)]);
    let on_write = vec![s::when_else(
        wr_last.e(),
        vec![
            waddr.set_k(0),
            wsel.set(e::lnot(wsel.e())),
            set_half(&wsel, 1),
        ],
        vec![waddr.inc()],
    )];
    let on_release = vec![rsel.set(e::lnot(rsel.e())), set_half(&rsel, 0)];
    md.push(Item::Always(
        clk.name().into(),
        vec![s::when_else(
            rst.e(),
            vec![
                full[0].set_k(0),
                full[1].set_k(0),
                wsel.set_k(0),
                rsel.set_k(0),
                waddr.set_k(0),
            ],
            vec![
                s::when(wr_en.e(), on_write),
                s::when(rd_release.e(), on_release),
            ],
        )],
    ));
    md
}

/// `wr_free` and `rd_valid` as registers, from the values the halves' flags and selectors take
/// at this edge: the same as the multiplexers over the registers, but flip-flops where those
/// multiplexers fed the layers' input handshakes (the UP5K's critical path at 48 MHz).
fn flags_ahead(md: &mut Module, full: &[Sig; 2], wsel: &Sig, rsel: &Sig, out: [&Sig; 2]) {
    let (wr_en, wr_last, rd_release) = (e::r("wr_en"), e::r("wr_last"), e::r("rd_release"));
    let filled = e::and(wr_en, wr_last);
    let mut next_sel = |sel: &Sig, toggle: Expr| {
        md.wire(
            &format!("{}_next", sel.name()),
            1,
            e::mux(toggle, e::lnot(sel.e()), sel.e()),
        )
    };
    let wsel_next = next_sel(wsel, filled.clone());
    let rsel_next = next_sel(rsel, rd_release.clone());
    // As in the process below: the release of a half wins over its filling (they never meet).
    let full_next: Vec<Sig> = full
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let fills = e::and(filled.clone(), wsel.is(i as u64));
            let empties = e::and(rd_release.clone(), rsel.is(i as u64));
            let value = e::mux(empties, e::k(1, 0), e::mux(fills, e::k(1, 1), f.e()));
            md.wire(&format!("{}_next", f.name()), 1, value)
        })
        .collect();
    let half_full = |sel: &Sig| e::mux(sel.e(), full_next[1].e(), full_next[0].e());
    let [wr_free, rd_valid] = out;
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![wr_free.set_k(1), rd_valid.set_k(0)],
            vec![
                wr_free.set(e::lnot(half_full(&wsel_next))),
                rd_valid.set(half_full(&rsel_next)),
            ],
        )],
    ));
}
