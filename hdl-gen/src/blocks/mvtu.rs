//! The matrix-vector-threshold unit (MVTU) of one layer: P processing elements of S lanes.
//!
//! Per cycle the unit reads one weight word (P x S bits, address `nf * SF + sf`) and the S-bit
//! slice `sf` of its input vector; each PE XORs its S weights with the slice and counts the
//! disagreements in a pipelined popcount tree (8-bit layers instead add or subtract S pixels);
//! the PE accumulates over the SF input folds and, on the last one, compares with its threshold
//! (or keeps the score). After NF neuron folds the output vector is complete.
//!
//! Binary layers count disagreements `d` (padding lanes are 0 on both sides, so they add 0)
//! and fire when `d < N + 1 - T`: the threshold memory holds `N + 1 - T` (docs/hardware.md).

use crate::board::SPRAM_SHAPE;
use crate::ir::bits_for;
use crate::ir::{e, BinOp, Expr, Item, Module, Stmt};
use crate::plan::{InputMode, LayerPlan, MemKind, OutputKind};

/// Width of one input element (1 bit, or 8 for pixels).
pub fn elem_width(l: &LayerPlan) -> usize {
    if l.pixel_input {
        8
    } else {
        1
    }
}

/// Builds `layer<i>_mvtu`.
pub fn module(l: &LayerPlan) -> Module {
    let (n, m, p, s, nf, sf) = (l.inputs, l.outputs, l.pe, l.simd, l.nf(), l.sf());
    let ew = elem_width(l);
    let t = l.tree();
    let lat = t.latency();
    let cw = t.out_width(); // per-fold count / sum width
    let aw = l.acc_width(); // accumulator width
    let tw = l.threshold_width();
    let addr_w = bits_for(nf * sf - 1);
    let nf_w = bits_for(nf - 1);
    let sf_w = bits_for(sf - 1);
    let mut md = Module::new(l.mvtu_name());
    md.doc.push(format!(
        "{}: layer {} MVTU, {n} -> {m}, {p} PE x {s} lanes, NF {nf} x SF {sf} = {} cycles per input.",
        l.mvtu_name(),
        l.index,
        nf * sf
    ));
    md.input("clk", 1);
    md.input("rst", 1);
    md.input("in_valid", 1);
    md.output("in_ready", 1);
    let buffered = l.input == InputMode::Buffer;
    if buffered {
        // The input buffer holds the vector as SF words; word `sf` arrives a cycle after its
        // address, with the weight word of the same fold.
        md.output("in_rd_addr", sf_w);
        md.input("in_rd_data", s * ew);
    } else {
        md.input("in_vec", n * ew);
    }
    if let Some(ww) = l.stream_out {
        // Results leave as words of the next layer's input buffer: `out_free` says the buffer
        // half being written is free, checked before each input is accepted.
        assert!(
            l.output == OutputKind::Threshold && !l.overlap && ww % p == 0,
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
            OutputKind::Threshold => m,
            OutputKind::Scores => m * aw,
        };
        md.output_reg("out_vec", out_w);
    }
    md.input("wmem_we", 1);
    md.input("wmem_addr", addr_w);
    md.input("wmem_data", p * s);
    if l.output == OutputKind::Threshold {
        md.input("tmem_we", 1);
        md.input("tmem_addr", nf_w);
        md.input("tmem_data", p * tw);
    }

    // Control: accept an input when idle and the previous output has been taken.
    md.push(Item::Comment("control".into()));
    md.reg("busy", 1);
    md.reg("nf", nf_w);
    md.reg("sf", sf_w);
    match l.input {
        // The producer holds the vector until `in_ready` says the last fold has read it.
        InputMode::Hold => {
            md.wire("in_buf", n * ew, e::r("in_vec"));
        }
        InputMode::Register => {
            md.reg("in_buf", n * ew);
        }
        InputMode::Buffer => md.push(Item::Assign(e::r("in_rd_addr"), e::r("sf"))),
    }
    md.push(Item::Wire("draining".into(), 1));
    md.push(Item::Wire("final_in_flight".into(), 1));
    md.wire("last_sf", 1, e::eq(e::r("sf"), e::k(sf_w, (sf - 1) as u64)));
    md.wire("last_nf", 1, e::eq(e::r("nf"), e::k(nf_w, (nf - 1) as u64)));
    if l.overlap {
        // Overlapped: the next input is accepted as soon as the last fold has been issued; the
        // last fold of an image waits (stalls) while the previous result still occupies
        // `out_vec` or is in flight, so a result never overwrites one that was not taken.
        md.wire("in_ready_w", 1, e::lnot(e::r("busy")));
        md.wire(
            "stall",
            1,
            e::and(
                e::and(e::r("busy"), e::and(e::r("last_sf"), e::r("last_nf"))),
                e::bin(BinOp::LogicOr, e::r("out_valid"), e::r("final_in_flight")),
            ),
        );
        md.wire("advance", 1, e::and(e::r("busy"), e::lnot(e::r("stall"))));
        md.wire("unused_draining", 1, e::r("draining"));
    } else {
        // The previous result must have been taken (or its last word written, and the next
        // buffer half be free) before a new input starts.
        let out_clear = if l.stream_out.is_some() {
            e::and(e::lnot(e::r("out_we")), e::r("out_free"))
        } else {
            e::lnot(e::r("out_valid"))
        };
        md.wire(
            "in_ready_w",
            1,
            e::and(
                e::and(e::lnot(e::r("busy")), out_clear),
                e::lnot(e::r("draining")),
            ),
        );
        md.wire("advance", 1, e::r("busy"));
        md.wire("unused_final_in_flight", 1, e::r("final_in_flight"));
    }
    md.wire("accept", 1, e::and(e::r("in_valid"), e::r("in_ready_w")));
    if l.input != InputMode::Register {
        // Consumed: the last fold's slice is captured at this edge.
        md.push(Item::Assign(
            e::r("in_ready"),
            e::and(e::r("advance"), e::and(e::r("last_sf"), e::r("last_nf"))),
        ));
    } else {
        md.push(Item::Assign(e::r("in_ready"), e::r("in_ready_w")));
    }
    let ctrl = vec![Stmt::If(
        e::r("rst"),
        vec![Stmt::Assign(e::r("busy"), e::k(1, 0))],
        vec![Stmt::If(
            e::r("accept"),
            [
                (l.input == InputMode::Register)
                    .then(|| Stmt::Assign(e::r("in_buf"), e::r("in_vec"))),
                Some(Stmt::Assign(e::r("busy"), e::k(1, 1))),
            ]
            .into_iter()
            .flatten()
            .chain([
                Stmt::Assign(e::r("nf"), e::k(nf_w, 0)),
                Stmt::Assign(e::r("sf"), e::k(sf_w, 0)),
            ])
            .collect(),
            vec![Stmt::If(
                e::r("advance"),
                vec![Stmt::If(
                    e::r("last_sf"),
                    vec![
                        Stmt::Assign(e::r("sf"), e::k(sf_w, 0)),
                        Stmt::Assign(e::r("nf"), e::add(e::r("nf"), e::k(nf_w, 1))),
                        Stmt::If(
                            e::r("last_nf"),
                            vec![Stmt::Assign(e::r("busy"), e::k(1, 0))],
                            vec![],
                        ),
                    ],
                    vec![Stmt::Assign(e::r("sf"), e::add(e::r("sf"), e::k(sf_w, 1)))],
                )],
                vec![],
            )],
        )],
    )];
    md.push(Item::Always("clk".into(), ctrl));

    // Weight memory, read at `nf * SF + sf`.
    md.push(Item::Comment(format!(
        "weights: {} words of {} bits (PE p at bits [p*{s} +: {s}])",
        nf * sf,
        p * s
    )));
    md.reg("wword", p * s);
    md.reg("waddr", addr_w);
    // The address counter runs alongside nf/sf so that no multiplier is needed.
    md.wire("raddr", addr_w, e::r("waddr"));
    let mem_stmts = match l.mem {
        MemKind::BlockRam => {
            md.push(Item::Memory {
                name: "wmem".into(),
                width: p * s,
                depth: nf * sf,
                init: Some(l.weights_file()),
                block_ram: false,
            });
            vec![
                Stmt::If(
                    e::r("wmem_we"),
                    vec![Stmt::MemWrite(
                        "wmem".into(),
                        e::r("wmem_addr"),
                        e::r("wmem_data"),
                    )],
                    vec![],
                ),
                Stmt::Assign(
                    e::r("wword"),
                    Expr::MemRead("wmem".into(), Box::new(e::r("raddr"))),
                ),
            ]
        }
        MemKind::Spram => {
            // Single-port SPRAM (16 x 16384 per primitive, no initial contents): one address,
            // the host's write address while it loads weights, the fold counter otherwise.
            let (_, spd) = SPRAM_SHAPE;
            let depth = (nf * sf).div_ceil(spd) * spd;
            let pw = bits_for(depth - 1);
            md.push(Item::Comment(format!(
                "SPRAM: loaded at run time through wmem_we ({depth} words)"
            )));
            md.push(Item::Memory {
                name: "wmem".into(),
                width: p * s,
                depth,
                init: None,
                block_ram: false,
            });
            md.wire(
                "wmem_port_addr",
                pw,
                e::mux(
                    e::r("wmem_we"),
                    e::zext(e::r("wmem_addr"), addr_w, pw),
                    e::zext(e::r("raddr"), addr_w, pw),
                ),
            );
            vec![Stmt::If(
                e::r("wmem_we"),
                vec![Stmt::MemWrite(
                    "wmem".into(),
                    e::r("wmem_port_addr"),
                    e::r("wmem_data"),
                )],
                vec![Stmt::Assign(
                    e::r("wword"),
                    Expr::MemRead("wmem".into(), Box::new(e::r("wmem_port_addr"))),
                )],
            )]
        }
    };
    md.push(Item::Always("clk".into(), mem_stmts));
    md.push(Item::Always(
        "clk".into(),
        vec![Stmt::If(
            e::r("accept"),
            vec![Stmt::Assign(e::r("waddr"), e::k(addr_w, 0))],
            vec![Stmt::If(
                e::and(
                    e::r("advance"),
                    e::lnot(e::and(e::r("last_sf"), e::r("last_nf"))),
                ),
                vec![Stmt::Assign(
                    e::r("waddr"),
                    e::add(e::r("waddr"), e::k(addr_w, 1)),
                )],
                vec![],
            )],
        )],
    ));

    // The input slice for this fold, from the zero-padded input vector.
    let padded = sf * s * ew;
    if buffered {
        // Word `sf` of the input buffer, read (and registered) there.
        md.wire("in_word", s * ew, e::r("in_rd_data"));
    } else if sf == 1 {
        md.wire("in_padded", padded, e::zext(e::r("in_buf"), n * ew, padded));
        md.reg("in_word", s * ew);
        // One input fold: the whole (padded) input is the slice.
        md.push(Item::Always(
            "clk".into(),
            vec![Stmt::Assign(e::r("in_word"), e::r("in_padded"))],
        ));
    } else {
        md.wire("in_padded", padded, e::zext(e::r("in_buf"), n * ew, padded));
        md.reg("in_word", s * ew);
        // A mux tree over the fold counter's bits picks the slice. (A part-select at a counted
        // bit offset looked the same in Verilog, but yosys cannot know the offset is a multiple
        // of S and built a full barrel shifter: 4,800 LUT4 for a 392-lane layer.)
        let words: Vec<Expr> = (0..sf)
            .map(|i| Expr::Slice("in_padded".into(), (i + 1) * s * ew - 1, i * s * ew))
            .collect();
        md.push(Item::Always(
            "clk".into(),
            vec![Stmt::Assign(e::r("in_word"), mux_tree(&words, sf_w))],
        ));
    }

    // Tags travelling with the data: valid, first/last input fold, neuron fold.
    md.push(Item::Comment(format!(
        "pipeline: memory read (1) + adder tree ({lat}) stages"
    )));
    // Stages: memory read (1), adder tree (lat), accumulate; the tags one stage further
    // (`fin_*`) go with the accumulated sum, which is compared and committed a cycle after it
    // is registered (the add, compare and result packing in one cycle were the critical path).
    let depth = lat + 1;
    let fin = depth + 1;
    let tag_w = 4 + nf_w;
    md.wire(
        "tag0",
        tag_w,
        Expr::Concat(vec![
            e::r("advance"),
            e::eq(e::r("sf"), e::k(sf_w, 0)),
            e::r("last_sf"),
            e::and(e::r("last_sf"), e::r("last_nf")),
            e::r("nf"),
        ]),
    );
    let mut tag_stmts = Vec::new();
    for k in 1..=fin {
        md.reg(&format!("tag{k}"), tag_w);
        tag_stmts.push(Stmt::If(
            e::r("rst"),
            vec![Stmt::Assign(e::r(format!("tag{k}")), e::k(tag_w, 0))],
            vec![Stmt::Assign(
                e::r(format!("tag{k}")),
                e::r(format!("tag{}", k - 1)),
            )],
        ));
    }
    md.push(Item::Always("clk".into(), tag_stmts));
    let valid_any: Expr = (1..=fin)
        .map(|k| Expr::Bit(format!("tag{k}"), tag_w - 1))
        .reduce(|a, b| e::bin(BinOp::Or, a, b))
        .expect("depth >= 1");
    md.push(Item::Assign(e::r("draining"), valid_any));
    let final_any: Expr = (1..=fin)
        .map(|k| {
            e::and(
                Expr::Bit(format!("tag{k}"), tag_w - 1),
                Expr::Bit(format!("tag{k}"), tag_w - 4),
            )
        })
        .reduce(|a, b| e::bin(BinOp::LogicOr, a, b))
        .expect("depth >= 1");
    md.push(Item::Assign(e::r("final_in_flight"), final_any));
    let tagd = format!("tag{depth}");
    md.wire("acc_valid", 1, Expr::Bit(tagd.clone(), tag_w - 1));
    md.wire("acc_first", 1, Expr::Bit(tagd.clone(), tag_w - 2));
    let tagf = format!("tag{fin}");
    md.wire("fin_valid", 1, Expr::Bit(tagf.clone(), tag_w - 1));
    md.wire("fin_last", 1, Expr::Bit(tagf.clone(), tag_w - 3));
    md.wire("fin_final", 1, Expr::Bit(tagf.clone(), tag_w - 4));
    md.wire("fin_nf", nf_w, Expr::Slice(tagf, nf_w - 1, 0));
    md.wire(
        "unused_tag_bits",
        2,
        Expr::Concat(vec![
            Expr::Bit(format!("tag{depth}"), tag_w - 3),
            Expr::Bit(format!("tag{fin}"), tag_w - 2),
        ]),
    );

    // Threshold memory, read one stage ahead of the accumulate stage.
    if l.output == OutputKind::Threshold {
        md.push(Item::Comment(format!(
            "thresholds: {nf} words of {p} x {tw} bits"
        )));
        md.push(Item::Memory {
            name: "tmem".into(),
            width: p * tw,
            depth: nf,
            init: Some(l.thresholds_file()),
            block_ram: false,
        });
        md.reg("tword", p * tw);
        md.wire(
            "thr_raddr",
            nf_w,
            Expr::Slice(format!("tag{depth}"), nf_w - 1, 0),
        );
        md.push(Item::Always(
            "clk".into(),
            vec![
                Stmt::If(
                    e::r("tmem_we"),
                    vec![Stmt::MemWrite(
                        "tmem".into(),
                        e::r("tmem_addr"),
                        e::r("tmem_data"),
                    )],
                    vec![],
                ),
                Stmt::Assign(
                    e::r("tword"),
                    Expr::MemRead("tmem".into(), Box::new(e::r("thr_raddr"))),
                ),
            ],
        ));
    }

    // Processing elements.
    let mut acc_stmts = Vec::new();
    let mut commit: Vec<Stmt> = Vec::new();
    let mut finish_moves: Vec<Stmt> = Vec::new();
    let rw_all = if l.output == OutputKind::Scores {
        aw
    } else {
        1
    };
    let mut stream_bits: Vec<Expr> = Vec::new();
    let work_neurons = if l.overlap { ((nf - 1) * p).min(m) } else { 0 };
    if work_neurons > 0 {
        md.reg("work", work_neurons * rw_all);
    }
    for pe in 0..p {
        md.push(Item::Comment(format!("PE {pe}")));
        let terms = format!("pe{pe}_terms");
        if l.pixel_input {
            // Lane j: +pixel when the weight bit is 1, -pixel when 0, as 9-bit two's complement.
            let mut parts = Vec::new();
            for j in (0..s).rev() {
                let px = Expr::Slice("in_word".into(), j * 8 + 7, j * 8);
                let pos = Expr::Concat(vec![e::k(1, 0), px]);
                let neg = Expr::Bin(BinOp::Sub, Box::new(e::k(9, 0)), Box::new(pos.clone()));
                parts.push(e::mux(Expr::Bit("wword".into(), pe * s + j), pos, neg));
            }
            md.wire(&terms, s * 9, Expr::Concat(parts));
        } else {
            md.wire(
                &terms,
                s,
                e::bin(
                    BinOp::Xor,
                    Expr::Slice("wword".into(), pe * s + s - 1, pe * s),
                    e::r("in_word"),
                ),
            );
        }
        let cnt = format!("pe{pe}_count");
        md.push(Item::Wire(cnt.clone(), cw));
        md.push(Item::Instance {
            module: t.name(),
            name: format!("pe{pe}_tree"),
            conns: vec![
                ("clk".into(), e::r("clk")),
                ("terms".into(), e::r(&terms)),
                ("sum".into(), e::r(&cnt)),
            ],
        });
        let acc = format!("pe{pe}_acc");
        let sum = format!("pe{pe}_sum");
        md.reg(&acc, aw);
        let cnt_ext = if l.pixel_input {
            e::sext(&cnt, cw, aw)
        } else {
            e::zext(e::r(&cnt), cw, aw)
        };
        md.wire(
            &sum,
            aw,
            e::add(e::mux(e::r("acc_first"), e::k(aw, 0), e::r(&acc)), cnt_ext),
        );
        acc_stmts.push(Stmt::If(
            e::r("acc_valid"),
            vec![Stmt::Assign(e::r(&acc), e::r(&sum))],
            vec![],
        ));
        let result = format!("pe{pe}_result");
        match (l.output, l.pixel_input) {
            (OutputKind::Threshold, false) => {
                // fires when disagreements < N + 1 - T (stored)
                let thr = Expr::Slice("tword".into(), pe * tw + tw - 1, pe * tw);
                md.wire(
                    &result,
                    1,
                    e::bin(
                        BinOp::Lt,
                        e::zext(e::r(&acc), aw, tw.max(aw)),
                        e::zext(thr, tw, tw.max(aw)),
                    ),
                );
            }
            (OutputKind::Threshold, true) => {
                let thr = Expr::Slice("tword".into(), pe * tw + tw - 1, pe * tw);
                md.wire(&result, 1, e::bin(BinOp::SignedGe, e::r(&acc), thr));
            }
            (OutputKind::Scores, false) => {
                // score = N - disagreements
                md.wire(
                    &result,
                    aw,
                    e::bin(BinOp::Sub, e::k(aw, n as u64), e::r(&acc)),
                );
            }
            (OutputKind::Scores, true) => {
                md.wire(&result, aw, e::r(&acc));
            }
        }
        if l.stream_out.is_some() {
            // Neuron (NF-1) * P + pe does not exist when M is not a multiple of P: its bit in
            // the last fold is padding and must be 0 for the next layer.
            if (nf - 1) * p + pe >= m {
                stream_bits.push(e::and(
                    e::r(&result),
                    e::lnot(e::eq(e::r("fin_nf"), e::k(nf_w, (nf - 1) as u64))),
                ));
            } else {
                stream_bits.push(e::r(&result));
            }
            continue;
        }
        // Neuron nf * P + pe receives this PE's result in fold nf.
        for f in 0..nf {
            let neuron = f * p + pe;
            if neuron >= m {
                continue;
            }
            let rw = if l.output == OutputKind::Scores {
                aw
            } else {
                1
            };
            let slot = |v: &str| Expr::Slice(v.into(), neuron * rw + rw - 1, neuron * rw);
            if l.overlap && f + 1 < nf {
                // Earlier folds wait in `work`; the finishing fold moves everything to out_vec.
                commit.push(Stmt::If(
                    e::eq(e::r("fin_nf"), e::k(nf_w, f as u64)),
                    vec![Stmt::Assign(slot("work"), e::r(&result))],
                    vec![],
                ));
                finish_moves.push(Stmt::Assign(slot("out_vec"), slot("work")));
            } else if l.overlap {
                finish_moves.push(Stmt::Assign(slot("out_vec"), e::r(&result)));
            } else {
                commit.push(Stmt::If(
                    e::eq(e::r("fin_nf"), e::k(nf_w, f as u64)),
                    vec![Stmt::Assign(slot("out_vec"), e::r(&result))],
                    vec![],
                ));
            }
        }
    }
    md.push(Item::Always("clk".into(), acc_stmts));
    match l.stream_out {
        Some(ww) => stream_output(&mut md, stream_bits, ww, p, nf, nf_w),
        None => vector_output(&mut md, commit, finish_moves, nf_w),
    }
    md
}

/// `words[sel]` as a balanced tree of 2:1 muxes on the bits of `sel` (`bits` wide).
fn mux_tree(words: &[Expr], bits: usize) -> Expr {
    if words.len() == 1 || bits == 0 {
        return words[0].clone();
    }
    let half = 1usize << (bits - 1);
    if words.len() <= half {
        return mux_tree(words, bits - 1);
    }
    e::mux(
        e::bit("sf", bits - 1),
        mux_tree(&words[half..], bits - 1),
        mux_tree(&words[..half], bits - 1),
    )
}

/// Results into the output vector, valid after the last fold.
fn vector_output(md: &mut Module, commit: Vec<Stmt>, finish_moves: Vec<Stmt>, nf_w: usize) {
    md.push(Item::Comment(
        "results into the output vector; valid after the last fold".into(),
    ));
    md.wire("commit", 1, e::and(e::r("fin_valid"), e::r("fin_last")));
    md.wire("finish", 1, e::and(e::r("fin_valid"), e::r("fin_final")));
    if commit.is_empty() {
        // Overlapped single-fold layers commit only at `finish`.
        md.wire(
            "unused_commit",
            1 + nf_w,
            Expr::Concat(vec![e::r("commit"), e::r("fin_nf")]),
        );
    } else {
        md.push(Item::Always(
            "clk".into(),
            vec![Stmt::If(e::r("commit"), commit, vec![])],
        ));
    }
    if !finish_moves.is_empty() {
        md.push(Item::Always(
            "clk".into(),
            vec![Stmt::If(e::r("finish"), finish_moves, vec![])],
        ));
    }
    md.push(Item::Always(
        "clk".into(),
        vec![Stmt::If(
            e::r("rst"),
            vec![Stmt::Assign(e::r("out_valid"), e::k(1, 0))],
            vec![Stmt::If(
                e::r("finish"),
                vec![Stmt::Assign(e::r("out_valid"), e::k(1, 1))],
                vec![Stmt::If(
                    e::r("out_ready"),
                    vec![Stmt::Assign(e::r("out_valid"), e::k(1, 0))],
                    vec![],
                )],
            )],
        )],
    ));
}

/// Results packed into words of `ww` bits for the next layer's input buffer: fold `nf`'s P bits
/// are chunk `nf mod (ww / P)` of word `nf * P / ww`; a word is written when its last chunk
/// arrives or the last fold ends it (its remaining chunks are 0, the next layer's padding).
fn stream_output(md: &mut Module, bits: Vec<Expr>, ww: usize, p: usize, nf: usize, nf_w: usize) {
    let chunks = ww / p;
    md.push(Item::Comment(format!(
        "results: {p} bits per fold, packed {chunks} folds to a {ww}-bit word of the next layer's buffer"
    )));
    md.wire("commit", 1, e::and(e::r("fin_valid"), e::r("fin_last")));
    md.wire("unused_fin_final", 1, e::r("fin_final"));
    md.wire(
        "fold_bits",
        p,
        Expr::Concat(bits.into_iter().rev().collect()),
    );
    md.wire(
        "fold_is_last",
        1,
        e::eq(e::r("fin_nf"), e::k(nf_w, (nf - 1) as u64)),
    );
    let mut word = Vec::new();
    let mut keep = Vec::new();
    if chunks == 1 {
        md.wire("word_done", 1, e::k(1, 1));
        word.push(e::r("fold_bits"));
    } else {
        let kw = bits_for(chunks - 1);
        md.reg("chunk", kw);
        md.reg("held_chunks", (chunks - 1) * p);
        md.wire(
            "word_done",
            1,
            e::bin(
                BinOp::LogicOr,
                e::r("fold_is_last"),
                e::eq(e::r("chunk"), e::k(kw, (chunks - 1) as u64)),
            ),
        );
        for i in (0..chunks).rev() {
            let here = e::eq(e::r("chunk"), e::k(kw, i as u64));
            if i + 1 == chunks {
                word.push(e::mux(here, e::r("fold_bits"), e::k(p, 0)));
            } else {
                let slot = Expr::Slice("held_chunks".into(), i * p + p - 1, i * p);
                word.push(e::mux(here.clone(), e::r("fold_bits"), slot.clone()));
                // Emptied when a word is written, so a last, partial word is zero-padded.
                keep.push(Stmt::Assign(
                    slot.clone(),
                    e::mux(
                        e::r("word_done"),
                        e::k(p, 0),
                        e::mux(here, e::r("fold_bits"), slot),
                    ),
                ));
            }
        }
        keep.push(Stmt::Assign(
            e::r("chunk"),
            e::mux(
                e::r("word_done"),
                e::k(kw, 0),
                e::add(e::r("chunk"), e::k(kw, 1)),
            ),
        ));
        md.push(Item::Always(
            "clk".into(),
            vec![Stmt::If(
                e::r("rst"),
                vec![
                    Stmt::Assign(e::r("chunk"), e::k(kw, 0)),
                    Stmt::Assign(e::r("held_chunks"), e::k((chunks - 1) * p, 0)),
                ],
                vec![Stmt::If(e::r("commit"), keep, vec![])],
            )],
        ));
    }
    md.push(Item::Always(
        "clk".into(),
        vec![
            Stmt::If(
                e::r("commit"),
                vec![Stmt::Assign(e::r("out_data"), Expr::Concat(word))],
                vec![],
            ),
            Stmt::If(
                e::r("rst"),
                vec![
                    Stmt::Assign(e::r("out_we"), e::k(1, 0)),
                    Stmt::Assign(e::r("out_last"), e::k(1, 0)),
                ],
                vec![
                    Stmt::Assign(e::r("out_we"), e::and(e::r("commit"), e::r("word_done"))),
                    Stmt::Assign(
                        e::r("out_last"),
                        e::and(e::r("commit"), e::r("fold_is_last")),
                    ),
                ],
            ),
        ],
    ));
}
