//! The matrix-vector-threshold unit (MVTU) of one layer: P processing elements of S lanes.
//!
//! Per cycle the unit reads one weight word (P x S bits, address `nf * SF + sf`) and the S-bit
//! slice `sf` of its input vector; each PE XORs its S weights with the slice and counts the
//! disagreements in a pipelined popcount tree (8-bit layers instead add or subtract S pixels);
//! the PE accumulates over the SF input folds and, on the last one, compares with its threshold
//! (or keeps the score). After NF neuron folds the output vector is complete.
//!
//! Binary layers count disagreements `d` (padding lanes are 0 on both sides, so they add 0)
//! and fire when `d < N + 1 - T`. A threshold layer's accumulator starts from the threshold
//! word instead of 0, `-(N + 1 - T)` (8-bit layers: `-T`), and its sign bit is the result: no
//! comparator (docs/hardware.md "Accumulator and threshold").
//!
//! The module is built in parts, in the order they appear in the Verilog: ports, control (fold
//! counters and handshakes), weight memory, the input slice, the pipeline tags, the threshold
//! memory, the processing elements (lanes, adder tree, accumulator, comparison), and the
//! output (a vector, or words streamed into the next layer's input buffer).

use crate::blocks::compressor;
use crate::blocks::tree::CellTree;
use crate::board::SPRAM_SHAPE;
use crate::ir::bits_for;
use crate::ir::{e, s, BinOp, Expr, Item, Module, Sig, Stmt};
use crate::plan::{ConvPlan, InputMode, LayerPlan, MemKind, OutputKind};

/// The layer's sizes, computed once.
struct Dims {
    n: usize,
    m: usize,
    p: usize,
    s: usize,
    nf: usize,
    sf: usize,
    ew: usize,
    aw: usize,
    tw: usize,
    addr_w: usize,
    nf_w: usize,
    sf_w: usize,
}

impl Dims {
    fn of(l: &LayerPlan) -> Dims {
        let (nf, sf) = (l.nf(), l.sf());
        Dims {
            n: l.inputs,
            m: l.outputs,
            p: l.pe,
            s: l.simd,
            nf,
            sf,
            ew: l.elem_width(),
            aw: l.acc_width(),
            tw: l.threshold_width(),
            addr_w: bits_for(nf * sf - 1),
            nf_w: bits_for(nf - 1),
            sf_w: bits_for(sf - 1),
        }
    }
}

/// Fold counters and handshakes.
struct Control {
    nf: Sig,
    sf: Sig,
    last_sf: Sig,
    last_nf: Sig,
    advance: Sig,
    accept: Sig,
    draining: Sig,
    final_in_flight: Sig,
    /// A convolution's last output position (`None` for dense layers).
    last_pos: Option<Sig>,
}

impl Control {
    /// The last fold of the image: of the last neuron fold, at the last position.
    fn image_end(&self) -> Expr {
        let fold = e::and(self.last_sf.e(), self.last_nf.e());
        match &self.last_pos {
            Some(p) => e::and(fold, p.e()),
            None => fold,
        }
    }
}

/// The pipeline tags at the accumulate (`acc_*`) and commit (`fin_*`) stages.
struct Tags {
    acc_valid: Sig,
    acc_first: Sig,
    /// The neuron fold `thr_stages` stages before the accumulator (the threshold memory's
    /// address), and the registers its word passes through to arrive with the first fold.
    thr_nf: Expr,
    thr_stages: usize,
    fin_valid: Sig,
    fin_last: Sig,
    fin_final: Sig,
    fin_nf: Sig,
}

/// Builds `layer<i>_mvtu`.
pub fn module(l: &LayerPlan) -> Module {
    let d = Dims::of(l);
    let mut md = Module::new(l.mvtu_name());
    md.doc.push(format!(
        "{}: layer {} MVTU, {} -> {}, {} PE x {} lanes, NF {} x SF {} = {} cycles per input.",
        l.mvtu_name(),
        l.index,
        d.n,
        d.m,
        d.p,
        d.s,
        d.nf,
        d.sf,
        d.nf * d.sf
    ));
    ports(&mut md, l, &d);
    let ctl = control(&mut md, l, &d);
    let wword = weights(&mut md, l, &d, &ctl);
    let in_word = input_slice(&mut md, l, &d, &ctl);
    let (wword, in_word) = read_registers(&mut md, l, wword, in_word);
    let tags = pipeline_tags(&mut md, l, &d, &ctl);
    let tword = thresholds(&mut md, l, &d, &tags);
    processing_elements(&mut md, l, &d, &wword, &in_word, tword.as_ref(), &tags);
    md
}

/// The ports: handshakes, the input (a vector, or a buffer's read port), the output, and the
/// memories' write ports.
fn ports(md: &mut Module, l: &LayerPlan, d: &Dims) {
    md.input("clk", 1);
    md.input("rst", 1);
    md.input("in_valid", 1);
    md.output("in_ready", 1);
    if l.input == InputMode::Buffer {
        // The input buffer holds the vector as SF words; word `sf` arrives a cycle after its
        // address, with the weight word of the same fold.
        md.output("in_rd_addr", l.inbuf_addr_width() - 1);
        md.input("in_rd_data", d.s * d.ew);
    } else {
        md.input("in_vec", d.n * d.ew);
    }
    if let Some(ww) = l.stream_out {
        // Results leave as words of the next layer's input buffer: `out_free` says the buffer
        // half being written is free, checked before each input is accepted.
        assert!(
            l.output == OutputKind::Threshold && !l.overlap && ww % d.p == 0,
            "stream_out needs a non-overlapped threshold layer whose P divides the word"
        );
        md.output_reg("out_we", 1);
        md.output_reg("out_last", 1);
        md.output_reg("out_data", ww);
        md.input("out_free", 1);
    } else {
        md.output_reg("out_valid", 1);
        md.input("out_ready", 1);
        let out_w = match l.output {
            OutputKind::Threshold => d.m,
            OutputKind::Scores => d.m * d.aw,
        };
        md.output_reg("out_vec", out_w);
    }
    md.input("wmem_we", 1);
    md.input("wmem_addr", d.addr_w);
    md.input("wmem_data", d.p * d.s);
    if l.output == OutputKind::Threshold {
        md.input("tmem_we", 1);
        md.input("tmem_addr", d.nf_w);
        md.input("tmem_data", d.p * d.tw);
    }
}

/// Control: accept an input when idle and the previous output has been taken; count the folds.
fn control(md: &mut Module, l: &LayerPlan, d: &Dims) -> Control {
    md.push(Item::Comment("control".into()));
    let busy = md.reg("busy", 1);
    let nf = md.reg("nf", d.nf_w);
    let sf = md.reg("sf", d.sf_w);
    let in_vec = Sig::new("in_vec", d.n * d.ew);
    let in_buf = match l.input {
        // The producer holds the vector until `in_ready` says the last fold has read it.
        InputMode::Hold => Some(md.wire("in_buf", d.n * d.ew, in_vec.e())),
        InputMode::Register => Some(md.reg("in_buf", d.n * d.ew)),
        InputMode::Buffer => {
            if l.conv.is_none() {
                md.push(Item::Assign(e::r("in_rd_addr"), sf.e()));
            }
            None
        }
    };
    let last_pos = l.conv.as_ref().map(|_| md.net("last_pos", 1));
    let draining = md.reg("draining", 1);
    let final_in_flight = md.reg("final_in_flight", 1);
    // `sf == SF - 1` and `nf == NF - 1`, registered as the counters step (their compares into
    // the fold counters' enables were the UP5K's critical path at 48 MHz).
    let last_sf = md.reg("last_sf", 1);
    let last_nf = md.reg("last_nf", 1);
    let restart = |flag: &Sig, folds: usize| flag.set_k(u64::from(folds == 1));
    let step_to = |flag: &Sig, counter: &Sig, folds: usize| {
        // After `counter + 1`; a counter of one fold never steps.
        flag.set(if folds >= 2 {
            counter.is((folds - 2) as u64)
        } else {
            e::k(1, 1)
        })
    };
    let last_fold = || match &last_pos {
        Some(p) => e::and(e::and(last_sf.e(), last_nf.e()), p.e()),
        None => e::and(last_sf.e(), last_nf.e()),
    };
    let (in_ready_w, advance) = if l.overlap {
        // Overlapped: the next input is accepted as soon as the last fold has been issued; the
        // last fold of an image waits (stalls) while the previous result still occupies
        // `out_vec` or is in flight, so a result never overwrites one that was not taken.
        let ready = md.wire("in_ready_w", 1, e::lnot(busy.e()));
        let stall = md.wire(
            "stall",
            1,
            e::and(
                e::and(busy.e(), last_fold()),
                e::bin(BinOp::LogicOr, e::r("out_valid"), final_in_flight.e()),
            ),
        );
        let advance = md.wire("advance", 1, e::and(busy.e(), e::lnot(stall.e())));
        md.wire("unused_draining", 1, draining.e());
        (ready, advance)
    } else {
        // The previous result must have been taken (or its last word written, and the next
        // buffer half be free) before a new input starts.
        let out_clear = if l.stream_out.is_some() {
            let written = e::and(e::lnot(e::r("out_we")), e::r("out_free"));
            if l.conv.is_some_and(|c| c.pool.is_some()) {
                // The pool's last group is a cycle or two behind the last result: until its
                // word is written, `out_free` still speaks of the half being finished.
                e::and(written, e::lnot(e::r("pool_pending")))
            } else {
                written
            }
        } else {
            e::lnot(e::r("out_valid"))
        };
        let ready = md.wire(
            "in_ready_w",
            1,
            e::and(e::and(e::lnot(busy.e()), out_clear), e::lnot(draining.e())),
        );
        let advance = md.wire("advance", 1, busy.e());
        md.wire("unused_final_in_flight", 1, final_in_flight.e());
        (ready, advance)
    };
    let accept = md.wire("accept", 1, e::and(e::r("in_valid"), in_ready_w.e()));
    let in_ready = if l.input != InputMode::Register {
        // Consumed: the last fold's slice is captured at this edge.
        e::and(advance.e(), last_fold())
    } else {
        in_ready_w.e()
    };
    md.push(Item::Assign(e::r("in_ready"), in_ready));
    let mut on_accept = Vec::new();
    if l.input == InputMode::Register {
        on_accept.push(in_buf.as_ref().expect("registered input").set(in_vec.e()));
    }
    on_accept.extend([
        busy.set_k(1),
        nf.set_k(0),
        sf.set_k(0),
        restart(&last_nf, d.nf),
        restart(&last_sf, d.sf),
    ]);
    let fold_done = match &last_pos {
        // A convolution starts the next position after its last neuron fold.
        Some(p) => vec![
            sf.set_k(0),
            restart(&last_sf, d.sf),
            s::when_else(
                last_nf.e(),
                vec![
                    nf.set_k(0),
                    restart(&last_nf, d.nf),
                    s::when(p.e(), vec![busy.set_k(0)]),
                ],
                vec![nf.inc(), step_to(&last_nf, &nf, d.nf)],
            ),
        ],
        None => vec![
            sf.set_k(0),
            restart(&last_sf, d.sf),
            nf.inc(),
            step_to(&last_nf, &nf, d.nf),
            s::when(last_nf.e(), vec![busy.set_k(0)]),
        ],
    };
    let step = s::when(
        advance.e(),
        vec![s::when_else(
            last_sf.e(),
            fold_done,
            vec![sf.inc(), step_to(&last_sf, &sf, d.sf)],
        )],
    );
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![busy.set_k(0)],
            vec![s::when_else(accept.e(), on_accept, vec![step])],
        )],
    ));
    Control {
        nf,
        sf,
        last_sf,
        last_nf,
        advance,
        accept,
        draining,
        final_in_flight,
        last_pos,
    }
}

/// Weight memory, read at `nf * SF + sf` by an address counter that runs alongside the fold
/// counters (no multiplier). Block RAM with an initial image, or SPRAM (single-port, loaded at
/// run time).
fn weights(md: &mut Module, l: &LayerPlan, d: &Dims, ctl: &Control) -> Sig {
    let (p, s_, aw) = (d.p, d.s, d.addr_w);
    md.push(Item::Comment(format!(
        "weights: {} words of {} bits (PE p at bits [p*{s_} +: {s_}])",
        d.nf * d.sf,
        p * s_
    )));
    let wword = md.reg("wword", p * s_);
    let waddr = md.reg("waddr", aw);
    let raddr = md.wire("raddr", aw, waddr.e());
    let (we, addr, data) = (
        Sig::new("wmem_we", 1),
        Sig::new("wmem_addr", aw),
        Sig::new("wmem_data", p * s_),
    );
    let mem_stmts = match l.mem {
        MemKind::BlockRam => {
            // Asked for by name: yosys would build a memory of up to 32 words from the ECP5's
            // distributed RAM (6 LUT sites per 64 bits, more than the lanes it feeds) and one
            // of fewer than 8 from the iCE40's flip-flops, where the plan counted block RAM.
            md.push(Item::Memory {
                name: "wmem".into(),
                width: p * s_,
                depth: d.nf * d.sf,
                init: Some(l.weights_file()),
                ram_style: Some("block"),
                no_rw_check: NO_RW_CHECK,
            });
            vec![
                s::when(
                    we.e(),
                    vec![Stmt::MemWrite("wmem".into(), addr.e(), data.e())],
                ),
                wword.set(Expr::MemRead("wmem".into(), Box::new(raddr.e()))),
            ]
        }
        MemKind::Spram => {
            // Single-port SPRAM (16 x 16384 per primitive, no initial contents): one address,
            // the host's write address while it loads weights, the fold counter otherwise.
            let (_, spd) = SPRAM_SHAPE;
            let depth = (d.nf * d.sf).div_ceil(spd) * spd;
            let pw = bits_for(depth - 1);
            md.push(Item::Comment(format!(
                "SPRAM: loaded at run time through wmem_we ({depth} words)"
            )));
            let mem = md.memory_styled("wmem", p * s_, depth, Some("huge"));
            let port = md.wire(
                "wmem_port_addr",
                pw,
                e::mux(
                    we.e(),
                    e::zext(addr.e(), aw, pw),
                    e::zext(raddr.e(), aw, pw),
                ),
            );
            vec![s::when_else(
                we.e(),
                vec![mem.write(port.e(), data.e())],
                vec![wword.set(mem.read(port.e()))],
            )]
        }
    };
    md.push(Item::Always("clk".into(), mem_stmts));
    let last = e::and(ctl.last_sf.e(), ctl.last_nf.e());
    let step = if l.conv.is_some() {
        // Every output position reads the weights from the start.
        s::when(
            ctl.advance.e(),
            vec![s::when_else(last, vec![waddr.set_k(0)], vec![waddr.inc()])],
        )
    } else {
        s::when(e::and(ctl.advance.e(), e::lnot(last)), vec![waddr.inc()])
    };
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            ctl.accept.e(),
            vec![waddr.set_k(0)],
            vec![step],
        )],
    ));
    wword
}

/// A convolution's window (docs/hardware.md): output position `(oy, ox)` reads, fold by fold,
/// the words of its `k x k` window from the input buffer in the weights' `(ky, kx, c)` order;
/// the words of one window row are consecutive, so the address counts up and jumps by a map row
/// at each window row's end, with no multiplier. Addresses are counted modulo the address width
/// (a padded position's address is not used); with same padding the input coordinates are
/// tracked too, and a position outside the map reads as the pad bit (or pixel 0). Returns the
/// slice for the fold, a cycle after its address, with its weight word.
fn window(md: &mut Module, l: &LayerPlan, c: &ConvPlan, ctl: &Control) -> Sig {
    let cw_n = c.input.channels / l.simd;
    let (k, st) = (c.kernel, c.stride);
    let fw = l.inbuf_addr_width() - 1;
    md.push(Item::Comment(format!(
        "window: {k}x{k} stride {st} over a {}x{}x{} map, {cw_n} word(s) per pixel",
        c.input.height, c.input.width, c.input.channels
    )));
    let modw = |v: i64| e::k(fw, v.rem_euclid(1 << fw) as u64);
    let row = (c.input.width * cw_n) as i64;
    let origin = -((c.pad_top as i64) * row + (c.pad_left * cw_n) as i64);
    let ox = md.reg("ox", bits_for(c.output.width - 1));
    let oy = md.reg("oy", bits_for(c.output.height - 1));
    let kx = md.reg("kx", bits_for(k - 1));
    let cw = md.reg("cw", bits_for(cw_n - 1));
    let [addr, rowstart, base, linebase] =
        ["rd_addr", "rowstart", "base", "linebase"].map(|n| md.reg(n, fw));
    let last_ox = md.wire("last_ox", 1, ox.is((c.output.width - 1) as u64));
    let last_oy = md.wire("last_oy", 1, oy.is((c.output.height - 1) as u64));
    let last_cw = md.wire("last_cw", 1, cw.is((cw_n - 1) as u64));
    let row_end = md.wire("row_end", 1, e::and(kx.is((k - 1) as u64), last_cw.e()));
    md.push(Item::Assign(
        e::r("last_pos"),
        e::and(last_ox.e(), last_oy.e()),
    ));
    md.push(Item::Assign(e::r("in_rd_addr"), addr.e()));
    let jump = |to: &Sig, from: &Sig, by: i64| {
        let target = e::add(from.e(), modw(by));
        vec![to.set(target.clone()), addr.set(target)]
    };
    let start = [
        addr.clone(),
        rowstart.clone(),
        base.clone(),
        linebase.clone(),
    ]
    .map(|r| r.set(modw(origin)));
    let next_column = {
        let mut v = vec![
            ox.inc(),
            base.set(e::add(base.e(), modw(st as i64 * cw_n as i64))),
        ];
        v.extend(jump(&rowstart, &base, st as i64 * cw_n as i64));
        v
    };
    let next_line = {
        let mut v = vec![
            ox.set_k(0),
            oy.inc(),
            linebase.set(e::add(linebase.e(), modw(st as i64 * row))),
            base.set(e::add(linebase.e(), modw(st as i64 * row))),
        ];
        v.extend(jump(&rowstart, &linebase, st as i64 * row));
        v
    };
    let window_done = vec![
        kx.set_k(0),
        cw.set_k(0),
        s::when_else(
            ctl.last_nf.e(),
            vec![s::when_else(last_ox.e(), next_line, next_column)],
            vec![rowstart.set(base.e()), addr.set(base.e())],
        ),
    ];
    let mut in_window = vec![s::when_else(
        last_cw.e(),
        vec![
            cw.set_k(0),
            s::when_else(row_end.e(), vec![kx.set_k(0)], vec![kx.inc()]),
        ],
        vec![cw.inc()],
    )];
    in_window.push(s::when_else(
        row_end.e(),
        jump(&rowstart, &rowstart, row),
        vec![addr.inc()],
    ));
    let mut on_accept = vec![ox.set_k(0), oy.set_k(0), kx.set_k(0), cw.set_k(0)];
    on_accept.extend(start);
    md.push(fold_steps(ctl, on_accept, window_done, in_window));
    let word_w = l.word_width();
    if c.pad_top == 0 && c.pad_left == 0 && !padded_after(c) {
        return md.wire("in_word", word_w, e::r("in_rd_data"));
    }
    let in_map = coordinates(md, c, ctl, &last_cw, &row_end, &last_ox);
    let pad_d = md.reg("pad_d", 1);
    md.push(Item::Always(
        "clk".into(),
        vec![pad_d.set(e::lnot(in_map.e()))],
    ));
    let pad_word = if c.pad_bit && !l.pixel_input {
        e::k(word_w, (1u64 << word_w).wrapping_sub(1))
    } else {
        e::k(word_w, 0)
    };
    md.wire(
        "in_word",
        word_w,
        e::mux(pad_d.e(), pad_word, e::r("in_rd_data")),
    )
}

/// A register block of the window: `on_accept` when an image starts, then at each fold
/// `window_done` after a window's last fold, `in_window` after the others.
fn fold_steps(
    ctl: &Control,
    on_accept: Vec<Stmt>,
    window_done: Vec<Stmt>,
    in_window: Vec<Stmt>,
) -> Item {
    Item::Always(
        "clk".into(),
        vec![s::when_else(
            ctl.accept.e(),
            on_accept,
            vec![s::when(
                ctl.advance.e(),
                vec![s::when_else(ctl.last_sf.e(), window_done, in_window)],
            )],
        )],
    )
}

/// Whether a convolution's windows reach past the bottom or right edge of its map.
fn padded_after(c: &ConvPlan) -> bool {
    let past = |out: usize, pad: usize, len: usize| (out - 1) * c.stride + c.kernel > pad + len;
    past(c.output.height, c.pad_top, c.input.height)
        || past(c.output.width, c.pad_left, c.input.width)
}

/// The input coordinates `(iy, ix)` of the current fold, tracked like the address; returns
/// `inside`: the position lies in the map.
fn coordinates(
    md: &mut Module,
    c: &ConvPlan,
    ctl: &Control,
    last_cw: &Sig,
    row_end: &Sig,
    last_ox: &Sig,
) -> Sig {
    let span = c.input.height.max(c.input.width) + 2 * c.kernel;
    let cb = bits_for(span) + 1;
    let kc = |v: i64| e::k(cb, v.rem_euclid(1 << cb) as u64);
    let st = c.stride as i64;
    let [ix, iy, ix0, iy0] = ["ix", "iy", "ix0", "iy0"].map(|n| md.reg(n, cb));
    let (left, top) = (-(c.pad_left as i64), -(c.pad_top as i64));
    let on_accept = vec![
        ix.set(kc(left)),
        ix0.set(kc(left)),
        iy.set(kc(top)),
        iy0.set(kc(top)),
    ];
    let window_done = s::when_else(
        ctl.last_nf.e(),
        vec![s::when_else(
            last_ox.e(),
            vec![
                ix0.set(kc(left)),
                ix.set(kc(left)),
                iy0.set(e::add(iy0.e(), kc(st))),
                iy.set(e::add(iy0.e(), kc(st))),
            ],
            vec![
                ix0.set(e::add(ix0.e(), kc(st))),
                ix.set(e::add(ix0.e(), kc(st))),
                iy.set(iy0.e()),
            ],
        )],
        vec![ix.set(ix0.e()), iy.set(iy0.e())],
    );
    let in_window = s::when(
        last_cw.e(),
        vec![s::when_else(
            row_end.e(),
            vec![ix.set(ix0.e()), iy.inc()],
            vec![ix.inc()],
        )],
    );
    md.push(fold_steps(
        ctl,
        on_accept,
        vec![window_done],
        vec![in_window],
    ));
    md.wire(
        "in_map",
        1,
        e::and(
            e::lt(ix.e(), ix.k(c.input.width as u64)),
            e::lt(iy.e(), iy.k(c.input.height as u64)),
        ),
    )
}

/// The input slice for this fold, from the zero-padded input vector (or the input buffer's
/// word, read and registered there).
fn input_slice(md: &mut Module, l: &LayerPlan, d: &Dims, ctl: &Control) -> Sig {
    let (s_, ew) = (d.s, d.ew);
    let padded = d.sf * s_ * ew;
    if l.input == InputMode::Buffer {
        if let Some(c) = &l.conv {
            return window(md, l, c, ctl);
        }
        return md.wire("in_word", s_ * ew, e::r("in_rd_data"));
    }
    let in_buf = Sig::new("in_buf", d.n * ew);
    let in_padded = md.wire("in_padded", padded, e::zext(in_buf.e(), d.n * ew, padded));
    let in_word = md.reg("in_word", s_ * ew);
    let value = if d.sf == 1 {
        // One input fold: the whole (padded) input is the slice.
        in_padded.e()
    } else {
        // A mux tree over the fold counter's bits picks the slice. (A part-select at a counted
        // bit offset looked the same in Verilog, but yosys cannot know the offset is a multiple
        // of S and built a full barrel shifter: 4,800 LUT4 for a 392-lane layer.)
        let words: Vec<Expr> = (0..d.sf)
            .map(|i| in_padded.slice((i + 1) * s_ * ew - 1, i * s_ * ew))
            .collect();
        mux_tree(&words, &ctl.sf, d.sf_w)
    };
    md.push(Item::Always("clk".into(), vec![in_word.set(value)]));
    in_word
}

/// Registers between the weight memory's read and the lanes: 1, or 2 where a block RAM feeds
/// ECP5 carry-cell trees: its read data leaves the RAM 5.8 ns after the clock, 1 ns from its
/// output register, which yosys 0.23 does not use; the build moves the second register in
/// (`bql_toolchain::netlist`), and the input word waits as long.
fn read_stages(l: &LayerPlan) -> usize {
    let carry_cells = matches!(l.tree().cell_tree(), Some(CellTree::Ccu2c(_)));
    1 + usize::from(carry_cells && l.mem == MemKind::BlockRam)
}

/// The weight and input words a second time registered where [`read_stages`] says so.
fn read_registers(md: &mut Module, l: &LayerPlan, wword: Sig, in_word: Sig) -> (Sig, Sig) {
    if read_stages(l) == 1 {
        return (wword, in_word);
    }
    let w = md.reg("wword_q", wword.width());
    let x = md.reg("in_word_q", in_word.width());
    md.push(Item::Always(
        "clk".into(),
        vec![w.set(wword.e()), x.set(in_word.e())],
    ));
    (w, x)
}

/// Tags travelling with the data (valid, first/last input fold, last fold of the image, neuron
/// fold) through the stages: memory read ([`read_stages`]), adder tree (`lat`), accumulate; the
/// tags one stage further (`fin_*`) go with the accumulated sum, which is compared and committed
/// a cycle after it is registered (the add, compare and result packing in one cycle were the
/// critical path).
fn pipeline_tags(md: &mut Module, l: &LayerPlan, d: &Dims, ctl: &Control) -> Tags {
    let lat = l.tree().latency();
    let read = read_stages(l);
    md.push(Item::Comment(format!(
        "pipeline: memory read ({read}) + adder tree ({lat}) stages"
    )));
    let depth = lat + read;
    let fin = depth + 1;
    let tag_w = 4 + d.nf_w;
    let tag0 = md.wire(
        "tag0",
        tag_w,
        Expr::Concat(vec![
            ctl.advance.e(),
            ctl.sf.is(0),
            ctl.last_sf.e(),
            ctl.image_end(),
            ctl.nf.e(),
        ]),
    );
    let mut tags = vec![tag0];
    let mut moves = Vec::new();
    for k in 1..=fin {
        let tag = md.reg(&format!("tag{k}"), tag_w);
        moves.push(s::when_else(
            e::r("rst"),
            vec![tag.set_k(0)],
            vec![tag.set(tags[k - 1].e())],
        ));
        tags.push(tag);
    }
    let (valid, first, last, final_) = (tag_w - 1, tag_w - 2, tag_w - 3, tag_w - 4);
    // Whether any tag past stage 0 is valid (of the image's final fold), registered from the
    // tags it is about to hold (tags 0..fin): exact, and a flip-flop where an OR over the
    // stages fed the input handshake (the UP5K's critical path at 48 MHz).
    // A dense layer packing into a buffer registers its results once more (`stream_output`).
    let result_stage = usize::from(l.stream_out.is_some() && l.conv.is_none());
    let ahead = &tags[..fin + result_stage];
    let valid_any = ahead
        .iter()
        .map(|t| t.bit(valid))
        .reduce(|a, b| e::bin(BinOp::Or, a, b))
        .expect("depth >= 1");
    let final_any = ahead
        .iter()
        .map(|t| e::and(t.bit(valid), t.bit(final_)))
        .reduce(|a, b| e::bin(BinOp::LogicOr, a, b))
        .expect("depth >= 1");
    moves.push(s::when_else(
        e::r("rst"),
        vec![ctl.draining.set_k(0), ctl.final_in_flight.set_k(0)],
        vec![
            ctl.draining.set(valid_any),
            ctl.final_in_flight.set(final_any),
        ],
    ));
    md.push(Item::Always("clk".into(), moves));
    let (at_acc, at_fin) = (&tags[depth], &tags[fin]);
    // The block RAM's output and a copy (the copy feeds the accumulator's first add), or one
    // register where the tree has no stage of its own (a single lane).
    let thr_stages = depth.min(2);
    let t = Tags {
        acc_valid: md.wire("acc_valid", 1, at_acc.bit(valid)),
        acc_first: md.wire("acc_first", 1, at_acc.bit(first)),
        thr_nf: tags[depth - thr_stages].slice(d.nf_w - 1, 0),
        thr_stages,
        fin_valid: md.wire("fin_valid", 1, at_fin.bit(valid)),
        fin_last: md.wire("fin_last", 1, at_fin.bit(last)),
        fin_final: md.wire("fin_final", 1, at_fin.bit(final_)),
        fin_nf: md.wire("fin_nf", d.nf_w, at_fin.slice(d.nf_w - 1, 0)),
    };
    md.wire(
        "unused_tag_bits",
        2,
        Expr::Concat(vec![at_acc.bit(last), at_fin.bit(first)]),
    );
    t
}

/// The weight and threshold memories need no old-data bypass ([`Item::Memory`]'s
/// `no_rw_check`): the host writes them only while no inference is in flight (the link's
/// executor holds a `WRITE` until then), and both are read every cycle, so a read that meets a
/// write of its word is read again the next cycle, cycles before the layer's next fold uses it.
/// The bypass cost a flip-flop per written bit and a LUT per read bit (on the full-speed ULX3S
/// design 6,957 of 9,526 LUT4s and 8,396 of 30,193 flip-flops; docs/hardware.md).
const NO_RW_CHECK: bool = true;

/// Threshold memory, read `thr_stages` stages ahead of the accumulate stage so that the word of
/// a neuron fold is registered when its first input fold is accumulated.
fn thresholds(md: &mut Module, l: &LayerPlan, d: &Dims, tags: &Tags) -> Option<Sig> {
    if l.output != OutputKind::Threshold {
        return None;
    }
    let (p, tw, nf) = (d.p, d.tw, d.nf);
    md.push(Item::Comment(format!(
        "thresholds: {nf} words of {p} x {tw} bits"
    )));
    md.push(Item::Memory {
        name: "tmem".into(),
        width: p * tw,
        depth: nf,
        init: Some(l.thresholds_file()),
        ram_style: l.thresholds_in_block_ram.then_some("block"),
        no_rw_check: NO_RW_CHECK,
    });
    // Registered again after the block RAM, so that the accumulator's first add starts at a
    // flip-flop, not at the block RAM's slow output (a compare from it was the UP5K's critical
    // path at 48 MHz).
    let raddr = md.wire("thr_raddr", d.nf_w, tags.thr_nf.clone());
    let mut stmts = vec![s::when(
        e::r("tmem_we"),
        vec![Stmt::MemWrite(
            "tmem".into(),
            e::r("tmem_addr"),
            e::r("tmem_data"),
        )],
    )];
    let mut word = Expr::MemRead("tmem".into(), Box::new(raddr.e()));
    let names = ["tword_ram", "tword"];
    for name in &names[names.len() - tags.thr_stages..] {
        let reg = md.reg(name, p * tw);
        stmts.push(reg.set(word));
        word = reg.e();
    }
    md.push(Item::Always("clk".into(), stmts));
    Some(Sig::new("tword", p * tw))
}

/// Where the PEs' results go: committed per fold, moved at the finish (overlapped layers), or
/// packed into stream words.
#[derive(Default)]
struct Results {
    commit: Vec<Stmt>,
    finish_moves: Vec<Stmt>,
    stream_bits: Vec<Expr>,
}

/// The processing elements: lanes, adder tree, accumulator and result per PE, then the output.
fn processing_elements(
    md: &mut Module,
    l: &LayerPlan,
    d: &Dims,
    wword: &Sig,
    in_word: &Sig,
    tword: Option<&Sig>,
    tags: &Tags,
) {
    let rw = if l.output == OutputKind::Scores {
        d.aw
    } else {
        1
    };
    let work_neurons = if l.overlap {
        ((d.nf - 1) * d.p).min(d.m)
    } else {
        0
    };
    if work_neurons > 0 {
        md.reg("work", work_neurons * rw);
    }
    let mut acc_stmts = Vec::new();
    let mut out = Results::default();
    for pe in 0..d.p {
        md.push(Item::Comment(format!("PE {pe}")));
        let tree = l.tree();
        let operands = if tree.takes_operands() {
            let weights = wword.slice(pe * d.s + d.s - 1, pe * d.s);
            vec![("x".into(), in_word.e()), ("w".into(), weights)]
        } else {
            vec![("terms".into(), lanes(md, l, d, pe, wword, in_word).e())]
        };
        let count = md.net(&format!("pe{pe}_count"), tree.out_width());
        let mut conns = vec![("clk".into(), e::r("clk"))];
        conns.extend(operands);
        conns.push(("sum".into(), count.e()));
        md.push(Item::Instance {
            module: tree.name(),
            name: format!("pe{pe}_tree"),
            conns,
        });
        let start = tword.map(|t| (t, pe * d.tw));
        let (acc, update) = accumulator(md, l, pe, &count, start, tags);
        acc_stmts.push(update);
        let result = result(md, l, d, pe, &acc);
        route(&mut out, l, d, pe, &result, tags);
    }
    md.push(Item::Always("clk".into(), acc_stmts));
    match l.stream_out {
        Some(ww) => stream_output(md, l, out.stream_bits, ww, d, tags),
        None => vector_output(md, out.commit, out.finish_moves, tags),
    }
}

/// PE `pe`'s lane terms: XOR of weights and input bits (popcount lanes), or for 8-bit layers
/// +pixel when the weight bit is 1 and -pixel when 0, as 9-bit two's complement.
fn lanes(md: &mut Module, l: &LayerPlan, d: &Dims, pe: usize, wword: &Sig, in_word: &Sig) -> Sig {
    let s_ = d.s;
    let name = format!("pe{pe}_terms");
    if l.pixel_input {
        let ew = d.ew;
        let parts = (0..s_)
            .rev()
            .map(|j| {
                // A pixel is a non-negative 9-bit term; a table operand is one already.
                let pos = match ew {
                    9 => in_word.slice(j * 9 + 8, j * 9),
                    _ => Expr::Concat(vec![e::k(1, 0), in_word.slice(j * 8 + 7, j * 8)]),
                };
                let neg = Expr::Bin(BinOp::Sub, Box::new(e::k(9, 0)), Box::new(pos.clone()));
                e::mux(wword.bit(pe * s_ + j), pos, neg)
            })
            .collect();
        md.wire(&name, s_ * 9, Expr::Concat(parts))
    } else {
        md.wire(
            &name,
            s_,
            e::bin(
                BinOp::Xor,
                wword.slice(pe * s_ + s_ - 1, pe * s_),
                in_word.e(),
            ),
        )
    }
}

/// PE `pe`'s accumulator over the input folds, and its update statement. The first fold adds
/// to `start` (the PE's threshold word at its offset, as wide as the accumulator) or to 0
/// (scores). With ECP5 cell trees the add and the choice are CCU2C cells
/// ([`compressor::accumulate`]).
fn accumulator(
    md: &mut Module,
    l: &LayerPlan,
    pe: usize,
    count: &Sig,
    start: Option<(&Sig, usize)>,
    tags: &Tags,
) -> (Sig, Stmt) {
    let aw = match start {
        Some(_) => l.threshold_width(),
        None => l.acc_width(),
    };
    let cw = count.width();
    let acc = md.reg(&format!("pe{pe}_acc"), aw);
    let sum = if l.carry_cell_accumulator() {
        // ECP5 cell trees count binary lanes (unsigned): the choice rides in the carry cells.
        compressor::accumulate(
            md,
            &format!("pe{pe}"),
            count,
            tags.acc_first.e(),
            start,
            &acc,
        )
    } else {
        let extended = if l.pixel_input {
            e::sext(count.name(), cw, aw)
        } else {
            e::zext(count.e(), cw, aw)
        };
        let first = start.map_or_else(
            || e::k(aw, 0),
            |(word, offset)| word.slice(offset + aw - 1, offset),
        );
        md.wire(
            &format!("pe{pe}_sum"),
            aw,
            e::add(e::mux(tags.acc_first.e(), first, acc.e()), extended),
        )
    };
    let update = s::when(tags.acc_valid.e(), vec![acc.set(sum.e())]);
    (acc, update)
}

/// PE `pe`'s result: the output bit, the accumulator's sign (binary layers fire when
/// `d - (N + 1 - T)` is negative, 8-bit layers when `sum - T` is not) or the score
/// (N - disagreements, or the signed sum).
fn result(md: &mut Module, l: &LayerPlan, d: &Dims, pe: usize, acc: &Sig) -> Sig {
    let aw = d.aw;
    let name = format!("pe{pe}_result");
    let sign = || acc.bit(acc.width() - 1);
    match (l.output, l.pixel_input) {
        (OutputKind::Threshold, false) => md.wire(&name, 1, sign()),
        (OutputKind::Threshold, true) => md.wire(&name, 1, e::not(sign())),
        (OutputKind::Scores, false) => {
            md.wire(&name, aw, e::bin(BinOp::Sub, e::k(aw, d.n as u64), acc.e()))
        }
        (OutputKind::Scores, true) => md.wire(&name, aw, acc.e()),
    }
}

/// Where PE `pe`'s result goes in each fold: neuron `nf * P + pe`.
fn route(out: &mut Results, l: &LayerPlan, d: &Dims, pe: usize, result: &Sig, tags: &Tags) {
    let (p, nf, m) = (d.p, d.nf, d.m);
    let in_fold = |f: usize| tags.fin_nf.is(f as u64);
    if l.stream_out.is_some() {
        // Neuron (NF-1) * P + pe does not exist when M is not a multiple of P: its bit in the
        // last fold is padding and must be 0 for the next layer.
        out.stream_bits.push(if (nf - 1) * p + pe >= m {
            e::and(result.e(), e::lnot(in_fold(nf - 1)))
        } else {
            result.e()
        });
        return;
    }
    let rw = result.width();
    for f in 0..nf {
        let neuron = f * p + pe;
        if neuron >= m {
            continue;
        }
        let slot = |v: &str| Expr::Slice(v.into(), neuron * rw + rw - 1, neuron * rw);
        if l.overlap && f + 1 < nf {
            // Earlier folds wait in `work`; the finishing fold moves everything to out_vec.
            out.commit
                .push(s::when(in_fold(f), vec![s::set(slot("work"), result.e())]));
            out.finish_moves.push(s::set(slot("out_vec"), slot("work")));
        } else if l.overlap {
            out.finish_moves.push(s::set(slot("out_vec"), result.e()));
        } else {
            out.commit.push(s::when(
                in_fold(f),
                vec![s::set(slot("out_vec"), result.e())],
            ));
        }
    }
}

/// `words[sel]` as a balanced tree of 2:1 muxes on the bits of `sel` (`bits` wide).
pub(crate) fn mux_tree(words: &[Expr], sel: &Sig, bits: usize) -> Expr {
    if words.len() == 1 || bits == 0 {
        return words[0].clone();
    }
    let half = 1usize << (bits - 1);
    if words.len() <= half {
        return mux_tree(words, sel, bits - 1);
    }
    e::mux(
        sel.bit(bits - 1),
        mux_tree(&words[half..], sel, bits - 1),
        mux_tree(&words[..half], sel, bits - 1),
    )
}

/// Results into the output vector, valid after the last fold.
fn vector_output(md: &mut Module, commit: Vec<Stmt>, finish_moves: Vec<Stmt>, tags: &Tags) {
    md.push(Item::Comment(
        "results into the output vector; valid after the last fold".into(),
    ));
    let commit_now = md.wire("commit", 1, e::and(tags.fin_valid.e(), tags.fin_last.e()));
    let finish = md.wire("finish", 1, e::and(tags.fin_valid.e(), tags.fin_final.e()));
    if commit.is_empty() {
        // Overlapped single-fold layers commit only at `finish`.
        md.wire(
            "unused_commit",
            1 + tags.fin_nf.width(),
            Expr::Concat(vec![commit_now.e(), tags.fin_nf.e()]),
        );
    } else {
        md.push(Item::Always(
            "clk".into(),
            vec![s::when(commit_now.e(), commit)],
        ));
    }
    if !finish_moves.is_empty() {
        md.push(Item::Always(
            "clk".into(),
            vec![s::when(finish.e(), finish_moves)],
        ));
    }
    let out_valid = Sig::new("out_valid", 1);
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![out_valid.set_k(0)],
            vec![s::when_else(
                finish.e(),
                vec![out_valid.set_k(1)],
                vec![s::when(e::r("out_ready"), vec![out_valid.set_k(0)])],
            )],
        )],
    ));
}

/// Results packed into words of `ww` bits for the next layer's input buffer: fold `nf`'s P bits
/// are chunk `nf mod (ww / P)` of word `nf * P / ww`; a word is written when its last chunk
/// arrives or the last fold ends it (its remaining chunks are 0, the next layer's padding).
fn stream_output(
    md: &mut Module,
    l: &LayerPlan,
    bits: Vec<Expr>,
    ww: usize,
    d: &Dims,
    tags: &Tags,
) {
    let (p, nf) = (d.p, d.nf);
    let chunks = ww / p;
    md.push(Item::Comment(format!(
        "results: {p} bits per fold, packed {chunks} folds to a {ww}-bit word of the next layer's buffer"
    )));
    let fin = e::and(tags.fin_valid.e(), tags.fin_last.e());
    let concat = |bits: Vec<Expr>| Expr::Concat(bits.into_iter().rev().collect());
    let (commit, fold_bits, fold_is_last) = match l.conv.as_ref() {
        // A convolution's pixels follow each other into the same words until its map ends.
        Some(c) => {
            let results = md.wire("results", 1, fin);
            let result_bits = md.wire("result_bits", p, concat(bits));
            md.wire("unused_fin_nf", d.nf_w, tags.fin_nf.e());
            match c.pool {
                Some(k) => {
                    // The pool knows where its map ends.
                    md.wire("unused_fin_final", 1, tags.fin_final.e());
                    pooled(md, l, c.output, k, &results, &result_bits)
                }
                None => (
                    results,
                    result_bits,
                    md.wire("fold_is_last", 1, tags.fin_final.e()),
                ),
            }
        }
        // A dense layer's results are registered once before they are packed (the compare of
        // a wide accumulator into the packing multiplexers held an 8-bit first layer below 48
        // MHz on the UP5K); `pipeline_tags` counts the stage as in flight.
        None => {
            let commit = md.reg("commit", 1);
            md.wire("unused_fin_final", 1, tags.fin_final.e());
            let fold_bits = md.reg("fold_bits", p);
            let last = md.reg("fold_is_last", 1);
            md.push(Item::Always(
                "clk".into(),
                s::reset_last(
                    e::r("rst"),
                    vec![commit.set_k(0)],
                    vec![
                        commit.set(fin),
                        fold_bits.set(concat(bits)),
                        last.set(tags.fin_nf.is((nf - 1) as u64)),
                    ],
                ),
            ));
            (commit, fold_bits, last)
        }
    };
    let (word, word_done) = if chunks == 1 {
        (vec![fold_bits.e()], md.wire("word_done", 1, e::k(1, 1)))
    } else {
        pack_chunks(md, chunks, &fold_bits, &fold_is_last, &commit)
    };
    let (out_we, out_last) = (Sig::new("out_we", 1), Sig::new("out_last", 1));
    md.push(Item::Always(
        "clk".into(),
        vec![
            s::when(
                commit.e(),
                vec![s::set(e::r("out_data"), Expr::Concat(word))],
            ),
            s::when_else(
                e::r("rst"),
                vec![out_we.set_k(0), out_last.set_k(0)],
                vec![
                    out_we.set(e::and(commit.e(), word_done.e())),
                    out_last.set(e::and(commit.e(), fold_is_last.e())),
                ],
            ),
        ],
    ));
}

/// The pool of a convolution's output stream (`layer<i>_pool`): returns its groups' strobe,
/// bits and image end, which the words are packed from.
fn pooled(
    md: &mut Module,
    l: &LayerPlan,
    map: crate::plan::MapDims,
    k: usize,
    results: &Sig,
    result_bits: &Sig,
) -> (Sig, Sig, Sig) {
    let p = l.pe;
    let (valid, bits, last, pending) = (
        md.net("pool_valid", 1),
        md.net("pool_bits", p),
        md.net("pool_last", 1),
        md.net("pool_pending", 1),
    );
    let module = crate::blocks::pool::module(&l.pool_name(), map, p, k);
    md.push(Item::Instance {
        module: module.name,
        name: "pool".into(),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("rst".into(), e::r("rst")),
            ("in_valid".into(), results.e()),
            ("in_bits".into(), result_bits.e()),
            ("out_valid".into(), valid.e()),
            ("out_bits".into(), bits.e()),
            ("out_last".into(), last.e()),
            ("pending".into(), pending.e()),
        ],
    });
    (valid, bits, last)
}

/// Several folds to a word: earlier chunks wait in `held_chunks` until the word is done. Returns
/// the word's parts (most significant first) and `word_done`.
fn pack_chunks(
    md: &mut Module,
    chunks: usize,
    fold_bits: &Sig,
    fold_is_last: &Sig,
    commit: &Sig,
) -> (Vec<Expr>, Sig) {
    let p = fold_bits.width();
    let kw = bits_for(chunks - 1);
    let chunk = md.reg("chunk", kw);
    let held = md.reg("held_chunks", (chunks - 1) * p);
    let word_done = md.wire(
        "word_done",
        1,
        e::bin(
            BinOp::LogicOr,
            fold_is_last.e(),
            chunk.is((chunks - 1) as u64),
        ),
    );
    let mut word = Vec::new();
    let mut keep = Vec::new();
    for i in (0..chunks).rev() {
        let here = chunk.is(i as u64);
        if i + 1 == chunks {
            word.push(e::mux(here, fold_bits.e(), e::k(p, 0)));
        } else {
            let slot = held.slice(i * p + p - 1, i * p);
            word.push(e::mux(here.clone(), fold_bits.e(), slot.clone()));
            // Emptied when a word is written, so a last, partial word is zero-padded.
            keep.push(s::set(
                slot.clone(),
                e::mux(word_done.e(), e::k(p, 0), e::mux(here, fold_bits.e(), slot)),
            ));
        }
    }
    keep.push(chunk.set(e::mux(
        word_done.e(),
        chunk.k(0),
        e::add(chunk.e(), chunk.k(1)),
    )));
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            e::r("rst"),
            vec![chunk.set_k(0), held.set_k(0)],
            vec![s::when(commit.e(), keep)],
        )],
    ));
    (word, word_done)
}
