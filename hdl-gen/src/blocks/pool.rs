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
    md.output_reg("out_valid", 1);
    md.output_reg("out_bits", p);
    md.output_reg("out_last", 1);
    md.output("pending", 1);
    let grp = md.reg("grp", bits_for(g - 1));
    let x = md.reg("x", bits_for(input.width - 1));
    let y = md.reg("y", bits_for(input.height - 1));
    let dx = md.reg("dx", bits_for(k - 1));
    let dy = md.reg("dy", bits_for(k - 1));
    let hrow = md.reg("hrow", g * p);
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
    // The window row so far (OR over dx), for this group.
    let hnew = md.wire(
        "hnew",
        p,
        e::bin(
            BinOp::Or,
            e::mux(dx.is(0), e::k(p, 0), hrow.slice(p - 1, 0)),
            in_bits.e(),
        ),
    );
    let image_done = md.wire(
        "image_done",
        1,
        e::and(
            e::and(x.is((pw * k - 1) as u64), y.is((ph * k - 1) as u64)),
            e::and(last_grp.e(), last_dy.e()),
        ),
    );
    let row_done = md.wire(
        "row_done",
        1,
        e::and(e::and(in_valid.e(), in_window.e()), last_dx.e()),
    );
    let rows = Rows {
        hnew,
        row_done,
        first_row: md.wire("first_row", 1, dy.is(0)),
        last_row: last_dy.clone(),
        image_done,
    };
    let pending = if ring_in_ram(input, p, k) {
        ram_ring(&mut md, &rows, pw * g, p)
    } else {
        register_ring(&mut md, &rows, pw * g, p)
    };
    md.push(Item::Assign(e::r("pending"), pending));
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
        s::when(in_window.e(), vec![rotate(&hrow, rows.hnew.e(), p)]),
        wrapping(&grp, last_grp.e()),
        s::when(last_grp.e(), next_pixel),
    ];
    md.push(Item::Always(
        clk.name().into(),
        vec![s::when_else(
            rst.e(),
            vec![
                grp.set_k(0),
                x.set_k(0),
                y.set_k(0),
                dx.set_k(0),
                dy.set_k(0),
            ],
            vec![s::when(in_valid.e(), step)],
        )],
    ));
    md
}

/// A ring of at least this many entries, and bits, lives in block RAM.
const RAM_RING_ENTRIES: usize = 8;
const RAM_RING_BITS: usize = 128;

/// Whether the pool of `input` (streamed in groups of `p` bits, window `k`) keeps its pooled
/// row in block RAM (else in flip-flops): the row's entries and bits.
pub fn ring_in_ram(input: MapDims, p: usize, k: usize) -> bool {
    let (entries, bits) = ring_size(input, p, k);
    entries >= RAM_RING_ENTRIES && bits >= RAM_RING_BITS
}

/// The pooled row's size: `(entries, bits)`.
pub fn ring_size(input: MapDims, p: usize, k: usize) -> (usize, usize) {
    let entries = input.width / k * (input.channels / p);
    (entries, entries * p)
}

/// What the vertical part of the pool gets from the horizontal one.
struct Rows {
    /// The window row's OR for the current group.
    hnew: Sig,
    /// A window row of a group completes in this cycle.
    row_done: Sig,
    /// ... in the window's first row (nothing to OR with yet).
    first_row: Sig,
    /// ... in its last row (the window is complete).
    last_row: Sig,
    /// ... and it is the image's last pooled group.
    image_done: Sig,
}

/// The window rows' ORs in a ring of flip-flops; returns `pending` (a group not yet out).
fn register_ring(md: &mut Module, r: &Rows, entries: usize, p: usize) -> Expr {
    let vrow = md.reg("vrow", entries * p);
    let vnew = md.wire(
        "vnew",
        p,
        e::bin(
            BinOp::Or,
            e::mux(r.first_row.e(), e::k(p, 0), vrow.slice(p - 1, 0)),
            r.hnew.e(),
        ),
    );
    let (out_valid, out_bits, out_last) = outputs(p);
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![out_valid.set_k(0), out_last.set_k(0)],
            vec![
                out_valid.set(e::and(r.row_done.e(), r.last_row.e())),
                out_last.set(e::and(r.row_done.e(), r.image_done.e())),
                s::when(
                    r.row_done.e(),
                    vec![rotate(&vrow, vnew.e(), p), out_bits.set(vnew.e())],
                ),
            ],
        )],
    ));
    out_valid.e()
}

/// The window rows' ORs in a block-RAM ring read one cycle ahead: a completed window row reads
/// its entry (the oldest), the next cycle ORs it in and writes it back (a ring of two or more
/// entries never reads the entry being written). Returns `pending`.
fn ram_ring(md: &mut Module, r: &Rows, entries: usize, p: usize) -> Expr {
    let aw = bits_for(entries - 1);
    md.push(Item::Memory {
        name: "vmem".into(),
        width: p,
        depth: entries,
        init: None,
        ram_style: Some("block"),
        no_rw_check: false,
    });
    let ptr = md.reg("vptr", aw);
    let head = md.reg("vhead", p);
    let [b_valid, b_first, b_emit, b_last] =
        ["b_valid", "b_first", "b_emit", "b_last"].map(|n| md.reg(n, 1));
    let b_hnew = md.reg("b_hnew", p);
    let b_ptr = md.reg("b_ptr", aw);
    let vnew = md.wire(
        "vnew",
        p,
        e::bin(
            BinOp::Or,
            e::mux(b_first.e(), e::k(p, 0), head.e()),
            b_hnew.e(),
        ),
    );
    let (out_valid, out_bits, out_last) = outputs(p);
    md.push(Item::Always(
        "clk".into(),
        vec![
            head.set(Expr::MemRead("vmem".into(), Box::new(ptr.e()))),
            s::when(
                b_valid.e(),
                vec![Stmt::MemWrite("vmem".into(), b_ptr.e(), vnew.e())],
            ),
            out_bits.set(vnew.e()),
            b_hnew.set(r.hnew.e()),
            b_first.set(r.first_row.e()),
            b_emit.set(r.last_row.e()),
            b_last.set(r.image_done.e()),
            b_ptr.set(ptr.e()),
        ],
    ));
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![
                b_valid.set_k(0),
                out_valid.set_k(0),
                out_last.set_k(0),
                ptr.set_k(0),
            ],
            vec![
                b_valid.set(r.row_done.e()),
                out_valid.set(e::and(b_valid.e(), b_emit.e())),
                out_last.set(e::and(b_valid.e(), b_last.e())),
                s::when(
                    r.row_done.e(),
                    vec![wrapping(&ptr, ptr.is((entries - 1) as u64))],
                ),
            ],
        )],
    ));
    e::bin(BinOp::LogicOr, b_valid.e(), out_valid.e())
}

/// The module's output registers.
fn outputs(p: usize) -> (Sig, Sig, Sig) {
    (
        Sig::new("out_valid", 1),
        Sig::new("out_bits", p),
        Sig::new("out_last", 1),
    )
}
