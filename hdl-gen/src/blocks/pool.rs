//! Max-pooling on a convolution's output stream (`layer<i>_pool`, docs/semantics.md 10).
//!
//! The convolution emits its output map in raster order, each pixel as `G = C / P` groups of P
//! channel bits. A `k x k` pool ORs the groups of a window: the groups of the pixels of one
//! window row are ORed in `hrow` (G groups, a ring that turns once per pixel), and the window
//! rows' results wait in `vrow` (one entry per pooled column and group, a ring that turns once
//! per window row of groups) until the window's last row completes them. Both rings only shift,
//! so no memory is addressed. Rows and columns that do not fill a window are skipped. The pooled
//! map leaves in raster order too, as groups of P bits, at most one per input group.

use crate::ir::bits_for;
use crate::ir::{e, s, BinOp, Expr, Item, Module, Sig, Stmt};
use crate::plan::MapDims;

/// A counter that wraps to 0 after `last`.
fn wrapping(counter: &Sig, last: Expr) -> Stmt {
    s::when_else(last, vec![counter.set_k(0)], vec![counter.inc()])
}

/// `counter < limit` for a counter of `0..count`: a constant 1 when the limit is the count (the
/// compare would always hold).
fn below(counter: &Sig, limit: usize, count: usize) -> Expr {
    if limit >= count {
        e::k(1, 1)
    } else {
        e::lt(counter.e(), counter.k(limit as u64))
    }
}

/// A ring of `entries` groups of `p` bits shifted down by one with `new` entering at the top;
/// the head (the oldest entry) is the lowest group.
fn rotate(ring: &Sig, new: Expr, p: usize) -> Stmt {
    let w = ring.width();
    if w == p {
        ring.set(new)
    } else {
        ring.set(Expr::Concat(vec![new, ring.slice(w - 1, p)]))
    }
}

/// Builds `name`: a `k x k` pool of the map `input` streamed as groups of `p` bits.
pub fn module(name: &str, input: MapDims, p: usize, k: usize) -> Module {
    let g = input.channels / p;
    let (pw, ph) = (input.width / k, input.height / k);
    let mut md = Module::new(name);
    md.doc.push(format!(
        "{name}: {k}x{k} max-pool (OR) of a {}x{}x{} map streamed as {g} groups of {p} bits per pixel.",
        input.height, input.width, input.channels
    ));
    let clk = md.input("clk", 1);
    let rst = md.input("rst", 1);
    let in_valid = md.input("in_valid", 1);
    let in_bits = md.input("in_bits", p);
    let out_valid = md.output_reg("out_valid", 1);
    let out_bits = md.output_reg("out_bits", p);
    let out_last = md.output_reg("out_last", 1);
    let grp = md.reg("grp", bits_for(g - 1));
    let x = md.reg("x", bits_for(input.width - 1));
    let y = md.reg("y", bits_for(input.height - 1));
    let dx = md.reg("dx", bits_for(k - 1));
    let dy = md.reg("dy", bits_for(k - 1));
    let hrow = md.reg("hrow", g * p);
    let vrow = md.reg("vrow", pw * g * p);
    let last_grp = md.wire("last_grp", 1, grp.is((g - 1) as u64));
    let last_x = md.wire("last_x", 1, x.is((input.width - 1) as u64));
    let last_y = md.wire("last_y", 1, y.is((input.height - 1) as u64));
    let last_dx = md.wire("last_dx", 1, dx.is((k - 1) as u64));
    let last_dy = md.wire("last_dy", 1, dy.is((k - 1) as u64));
    let in_window = md.wire(
        "in_window",
        1,
        e::and(
            below(&x, pw * k, input.width),
            below(&y, ph * k, input.height),
        ),
    );
    // The window row so far (OR over dx) and the window so far (OR over dy), for this group.
    let hnew = md.wire(
        "hnew",
        p,
        e::bin(
            BinOp::Or,
            e::mux(dx.is(0), e::k(p, 0), hrow.slice(p - 1, 0)),
            in_bits.e(),
        ),
    );
    let vnew = md.wire(
        "vnew",
        p,
        e::bin(
            BinOp::Or,
            e::mux(dy.is(0), e::k(p, 0), vrow.slice(p - 1, 0)),
            hnew.e(),
        ),
    );
    let window_done = md.wire("window_done", 1, e::and(last_dx.e(), last_dy.e()));
    let image_done = md.wire(
        "image_done",
        1,
        e::and(
            e::and(x.is((pw * k - 1) as u64), y.is((ph * k - 1) as u64)),
            last_grp.e(),
        ),
    );
    let pool = vec![
        rotate(&hrow, hnew.e(), p),
        s::when(
            last_dx.e(),
            vec![
                rotate(&vrow, vnew.e(), p),
                out_valid.set(last_dy.e()),
                out_bits.set(vnew.e()),
                out_last.set(e::and(window_done.e(), image_done.e())),
            ],
        ),
    ];
    let next_pixel = vec![s::when_else(
        last_x.e(),
        vec![
            x.set_k(0),
            dx.set_k(0),
            s::when_else(
                last_y.e(),
                vec![y.set_k(0), dy.set_k(0)],
                vec![y.inc(), wrapping(&dy, last_dy.e())],
            ),
        ],
        vec![x.inc(), wrapping(&dx, last_dx.e())],
    )];
    let step = vec![
        s::when(in_window.e(), pool),
        wrapping(&grp, last_grp.e()),
        s::when(last_grp.e(), next_pixel),
    ];
    md.push(Item::Always(
        clk.name().into(),
        vec![s::when_else(
            rst.e(),
            vec![
                out_valid.set_k(0),
                out_last.set_k(0),
                grp.set_k(0),
                x.set_k(0),
                y.set_k(0),
                dx.set_k(0),
                dy.set_k(0),
            ],
            vec![
                out_valid.set_k(0),
                out_last.set_k(0),
                s::when(in_valid.e(), step),
            ],
        )],
    ));
    md
}
