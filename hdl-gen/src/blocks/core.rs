//! `bql_core`: the input loader, the chain of layer MVTUs, and the argmax, joined by valid/ready
//! handshakes. Pixels enter `K` per beat; weights and thresholds can be rewritten at run time
//! through one configuration port (`cfg_sel` picks the memory: `2 l` weights of layer `l`,
//! `2 l + 1` its thresholds). A word enters a byte at a time (`cfg_shift`, `cfg_byte`, its
//! index `cfg_index`, lowest byte first) into a register of the layer's own, next to its
//! memories, which takes every byte of its widest memory's word (`cfg_write_bytes`) even for a
//! narrower one; `cfg_we` then writes it at `cfg_addr`, at least a cycle after its last byte.

use bql_model::InputEncoding;

use crate::ir::bits_for;
use crate::ir::{e, s, BinOp, Expr, Item, Module, Sig};
use crate::plan::{InputMode, LayerPlan, OutputKind, Plan};

/// Interface facts of a generated core, for the simulator and host side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CoreInterface {
    /// Pixels per input beat.
    pub pixels_per_beat: usize,
    /// Beats per image.
    pub beats: usize,
    /// Width of `cfg_sel`.
    pub cfg_sel_width: usize,
    /// Width of `cfg_addr`.
    pub cfg_addr_width: usize,
    /// The widest memory word, in bits (its bytes enter through `cfg_byte`).
    pub cfg_data_width: usize,
    /// Width of `cfg_index`, the byte index within a word.
    pub cfg_index_width: usize,
    /// The bytes a write of each memory (by selector) sends: its layer's write word, which
    /// holds the layer's widest memory word (bytes past it are ignored). 0 where no memory is.
    pub cfg_write_bytes: Vec<usize>,
    /// Width of one score in `out_scores`.
    pub score_width: usize,
    /// Scores are two's-complement signed.
    pub scores_signed: bool,
    /// Width of `out_class`.
    pub class_width: usize,
}

/// Word width and depth of memory `sel` (weights or thresholds of a layer).
pub fn memory_shape(layers: &[LayerPlan], sel: usize) -> Option<(usize, usize)> {
    let l = layers.get(sel / 2)?;
    if sel % 2 == 0 {
        Some((l.lanes(), l.weight_depth()))
    } else if l.output == OutputKind::Threshold {
        Some((l.pe * l.threshold_width(), l.nf()))
    } else {
        None
    }
}

/// The core's interface for a plan.
pub fn interface(plan: &Plan, input_len: usize) -> CoreInterface {
    let l0 = &plan.layers[0];
    let k = l0.simd.min(64).min(input_len);
    let last = plan.layers.last().expect("a layer");
    let sels = 2 * plan.layers.len();
    let shapes: Vec<(usize, usize)> = (0..sels)
        .filter_map(|s| memory_shape(&plan.layers, s))
        .collect();
    let data_width = shapes.iter().map(|&(w, _)| w).max().unwrap_or(1);
    CoreInterface {
        pixels_per_beat: k,
        beats: input_len.div_ceil(k),
        cfg_sel_width: bits_for(sels - 1),
        cfg_addr_width: shapes
            .iter()
            .map(|&(_, d)| bits_for(d - 1))
            .max()
            .unwrap_or(1),
        cfg_data_width: data_width,
        cfg_index_width: bits_for(data_width.div_ceil(8) - 1),
        cfg_write_bytes: (0..sels)
            .map(|s| memory_shape(&plan.layers, s).map_or(0, |_| layer_word_bytes(plan, s / 2)))
            .collect(),
        score_width: last.acc_width(),
        scores_signed: last.pixel_input,
        class_width: bits_for(last.outputs - 1),
    }
}

/// The name of net `what` of layer `i` inside `bql_core` (`l3_out_vec`). Every layer net is
/// named here, and the debug taps ([`taps`]) are made from the same names, so the simulator
/// never builds a signal name of its own.
fn net(i: usize, what: &str) -> String {
    format!("l{i}_{what}")
}

/// The argmax's `in_ready` inside `bql_core`.
const ARGMAX_READY: &str = "argmax_in_ready";

/// A signal inside `bql_core` that a debug simulation may read, for mismatch localization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tap {
    /// The model layer whose output the tap carries (a convolution's pool, when it has one).
    pub layer: usize,
    /// The position of the MVTU in the plan.
    pub stage: usize,
    /// How the layer hands its output on.
    pub kind: TapKind,
    /// The data signal (`l0_out_vec` or `l0_out_data`).
    pub data: String,
    /// Its width.
    pub width: usize,
}

/// When a tap's data holds a layer output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TapKind {
    /// A whole output vector, taken in the cycle when both `valid` and `taken` are high.
    Vector {
        /// The layer's `out_valid`.
        valid: String,
        /// The consumer's `in_ready`.
        taken: String,
    },
    /// Words written into the next layer's input buffer, one per cycle with `strobe` high, in
    /// order.
    Words {
        /// The layer's `out_we`.
        strobe: String,
    },
}

/// The debug taps of a plan's `bql_core`: one per layer.
pub fn taps(plan: &Plan) -> Vec<Tap> {
    let n = plan.layers.len();
    plan.layers
        .iter()
        .enumerate()
        .map(|(i, l)| match l.stream_out {
            Some(word) => Tap {
                layer: l.emitted_layer(),
                stage: i,
                kind: TapKind::Words {
                    strobe: net(i, "out_we"),
                },
                data: net(i, "out_data"),
                width: word,
            },
            None => Tap {
                layer: l.emitted_layer(),
                stage: i,
                kind: TapKind::Vector {
                    valid: net(i, "out_valid"),
                    taken: if i + 1 < n {
                        net(i + 1, "in_ready")
                    } else {
                        ARGMAX_READY.into()
                    },
                },
                data: net(i, "out_vec"),
                width: match l.output {
                    OutputKind::Threshold => l.outputs,
                    OutputKind::Scores => l.outputs * l.acc_width(),
                },
            },
        })
        .collect()
}

/// Builds `bql_core`. With `local_resets` each layer and the argmax reset from a registered
/// copy of `rst` ([`unit_reset`]), and the core takes its first input a cycle after `rst` falls.
pub fn module(
    plan: &Plan,
    encoding: InputEncoding,
    input_len: usize,
    header: &[String],
    local_resets: bool,
) -> Module {
    let ifc = interface(plan, input_len);
    let k = ifc.pixels_per_beat;
    let mut md = Module::new("bql_core");
    md.doc.extend(header.iter().cloned());
    md.doc.push(
        "bql_core: input loader -> layer MVTUs -> argmax, valid/ready between stages.".into(),
    );
    md.input("clk", 1);
    md.input("rst", 1);
    md.input("in_valid", 1);
    md.output("in_ready", 1);
    md.input("in_pixels", k * 8);
    md.output("out_valid", 1);
    md.input("out_ready", 1);
    md.output("out_class", ifc.class_width);
    let last = plan.layers.last().expect("a layer");
    md.output("out_scores", last.outputs * ifc.score_width);
    md.input("cfg_we", 1);
    md.input("cfg_sel", ifc.cfg_sel_width);
    md.input("cfg_addr", ifc.cfg_addr_width);
    md.input("cfg_shift", 1);
    md.input("cfg_byte", 8);
    md.input("cfg_index", ifc.cfg_index_width);
    if ifc.cfg_data_width < 8 {
        // Verilator exempts signals named *unused* from its unused-signal warning.
        md.wire(
            "unused_cfg_byte",
            8 - ifc.cfg_data_width,
            e::sl("cfg_byte", 7, ifc.cfg_data_width),
        );
    }

    if (0..plan.layers.len())
        .all(|i| !takes_fewer_bytes_than_indices(layer_word_bytes(plan, i), &ifc))
    {
        md.wire("unused_cfg_index", ifc.cfg_index_width, e::r("cfg_index"));
    }
    for unit in (0..plan.layers.len())
        .map(layer_reset)
        .chain(["argmax_rst".into()])
    {
        unit_reset(&mut md, &unit, local_resets);
    }
    loader(&mut md, plan, &ifc, encoding, input_len, local_resets);
    // Layers: each takes the previous one's output vector (or reads its input buffer).
    let mut prev_valid = e::r("full");
    let mut prev_vec = e::r("in_vector");
    for (i, l) in plan.layers.iter().enumerate() {
        layer(&mut md, plan, &ifc, i, l, prev_valid, prev_vec);
        prev_valid = e::r(net(i, "out_valid"));
        prev_vec = e::r(net(i, "out_vec"));
    }
    md.push(Item::Comment("argmax".into()));
    md.push(Item::Instance {
        module: crate::blocks::argmax::module(last.outputs, ifc.score_width, ifc.scores_signed)
            .name,
        name: "argmax".into(),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("rst".into(), e::r("argmax_rst")),
            ("in_valid".into(), prev_valid),
            ("in_ready".into(), e::r(ARGMAX_READY)),
            ("in_scores".into(), prev_vec),
            ("out_valid".into(), e::r("out_valid")),
            ("out_ready".into(), e::r("out_ready")),
            ("out_class".into(), e::r("out_class")),
            ("out_scores".into(), e::r("out_scores")),
        ],
    });
    md
}

/// Input loader: beat b fills inputs `[b*K, b*K + K)`; a full vector waits for layer 0 (or each
/// beat is a word of layer 0's input buffer).
fn loader(
    md: &mut Module,
    plan: &Plan,
    ifc: &CoreInterface,
    encoding: InputEncoding,
    input_len: usize,
    local_resets: bool,
) {
    let (k, beats) = (ifc.pixels_per_beat, ifc.beats);
    let ew = plan.layers[0].elem_width();
    md.push(Item::Comment(format!(
        "input loader: {beats} beat(s) of {k} pixels per image"
    )));
    let bw = bits_for(beats.max(2) - 1);
    let buffered = plan.layers[0].input == InputMode::Buffer;
    let beat = md.reg("beat", bw);
    // Each beat is one word of layer 0's input buffer (the planner makes S = K), or part of
    // the input vector, which waits in `in_vector` (`full`) for layer 0.
    // Nothing is taken while layer 0 is still in reset (a local reset is a cycle behind `rst`).
    let when_running = |ready: Expr| match local_resets {
        true => e::and(ready, e::lnot(e::r(layer_reset(0)))),
        false => ready,
    };
    let (ready, vector) = if buffered {
        let free = md.net(&net(0, "buf_free"), 1);
        (md.wire("loader_ready", 1, when_running(free.e())), None)
    } else {
        let full = md.reg("full", 1);
        let vector = md.reg("in_vector", input_len * ew);
        let ready = md.wire("loader_ready", 1, when_running(e::lnot(full.e())));
        (ready, Some((full, vector)))
    };
    md.push(Item::Assign(e::r("in_ready"), ready.e()));
    let take = md.wire("take_beat", 1, e::and(e::r("in_valid"), ready.e()));
    let is_last = md.wire("is_last_beat", 1, beat.is((beats - 1) as u64));
    let pixels = Sig::new("in_pixels", k * 8);
    let operands = match encoding {
        InputEncoding::Table(t) => table_lookups(md, &t, &pixels, k),
        _ => Vec::new(),
    };
    let beat_value = |n: usize| match encoding {
        InputEncoding::Binary { threshold } => Expr::Concat(
            (0..n)
                .rev()
                .map(|j| match threshold {
                    // Every pixel is >= 0: a constant (a compare would be flagged CMPCONST).
                    0 => e::k(1, 1),
                    t => e::lnot(e::bin(
                        BinOp::Lt,
                        pixels.slice(j * 8 + 7, j * 8),
                        e::k(8, t as u64),
                    )),
                })
                .collect(),
        ),
        InputEncoding::U8 => pixels.slice(n * 8 - 1, 0),
        InputEncoding::Table(_) => Expr::Concat(operands[..n].iter().rev().map(Sig::e).collect()),
    };
    match &vector {
        None => {
            // The last beat may be short: its missing lanes are 0 (padding).
            let last_n = input_len - (beats - 1) * k;
            let word = md.wire("beat_word", k * ew, beat_value(k));
            let last = md.wire("last_word", last_n * ew, beat_value(last_n));
            md.wire(
                &net(0, "wr_data"),
                k * ew,
                e::mux(
                    is_last.e(),
                    e::zext(last.e(), last_n * ew, k * ew),
                    word.e(),
                ),
            );
        }
        Some((_, vector)) => {
            let fills = (0..beats)
                .map(|b| {
                    let n = k.min(input_len - b * k);
                    let lo = b * k * ew;
                    s::when(
                        beat.is(b as u64),
                        vec![s::set(vector.slice(lo + n * ew - 1, lo), beat_value(n))],
                    )
                })
                .collect();
            md.push(Item::Always("clk".into(), vec![s::when(take.e(), fills)]));
        }
    }
    if encoding == (InputEncoding::Binary { threshold: 0 }) {
        // Input threshold 0: every input bit is 1 and the pixel values do not matter. Verilator
        // exempts signals named *unused* from its unused-signal warning.
        md.wire("unused_in_pixels", k * 8, pixels.e());
    }
    let l0_ready = md.net(&net(0, "in_ready"), 1);
    let mut wrap = vec![beat.set_k(0)];
    let mut on_reset = vec![beat.set_k(0)];
    let mut running = Vec::new();
    if let Some((full, _)) = &vector {
        wrap.push(full.set_k(1));
        on_reset.push(full.set_k(0));
        running.push(s::when(e::and(full.e(), l0_ready.e()), vec![full.set_k(0)]));
    }
    let next_beat = s::when_else(is_last.e(), wrap, vec![beat.inc()]);
    running.insert(0, s::when(take.e(), vec![next_beat]));
    md.push(Item::Always(
        "clk".into(),
        vec![s::when_else(e::r("rst"), on_reset, running)],
    ));
}

/// The table's operand of each of the beat's `k` pixels (9-bit two's complement), looked up by
/// a tree of 2:1 muxes over the pixel's bits, which synthesis folds into logic.
fn table_lookups(
    md: &mut Module,
    table: &bql_model::PixelTable,
    pixels: &Sig,
    k: usize,
) -> Vec<Sig> {
    let values: Vec<Expr> = (0..256)
        .map(|p| e::k(9, (i64::from(table.0[p])).rem_euclid(1 << 9) as u64))
        .collect();
    (0..k)
        .map(|j| {
            let pixel = md.wire(&format!("pixel{j}"), 8, pixels.slice(j * 8 + 7, j * 8));
            let value = crate::blocks::mvtu::mux_tree(&values, &pixel, 8);
            md.wire(&format!("pixel{j}_operand"), 9, value)
        })
        .collect()
}

/// Layer `i`'s reset ([`unit_reset`]).
fn layer_reset(i: usize) -> String {
    format!("layer{i}_rst")
}

/// A unit's reset `name`: `rst` itself, or with `local` a registered copy of it, so that the
/// reset reaches the unit from a flip-flop placed near it rather than from one flip-flop across
/// the die (on the half-device ULX3S design that route, 5.2 ns into a layer's control, was the
/// critical path at 109 MHz). The copies follow `rst` a cycle late, together (kept apart: yosys
/// would merge equal registers), and the loader waits for layer 0's. Only for the ECP5: the
/// iCE40's nextpnr puts high-fanout resets on global buffers, and the copies took three of the
/// eight from the link's enables (the UP5K at 48 MHz fell to 46.3-49.9 MHz over five seeds).
fn unit_reset(md: &mut Module, name: &str, local: bool) {
    if local {
        reset_copy(md, name);
    } else {
        md.wire(name, 1, e::r("rst"));
    }
}

/// A registered copy `name` of `rst`, kept apart from the others (yosys would merge them).
pub(crate) fn reset_copy(md: &mut Module, name: &str) -> Sig {
    let r = md.reg(name, 1);
    md.push(Item::KeptAlways("clk".into(), vec![r.set(e::r("rst"))]));
    r
}

/// Layer `i`: its MVTU instance, its input (the previous vector, or an input buffer fed by the
/// loader or the previous layer), its output nets and its slice of the configuration port.
fn layer(
    md: &mut Module,
    plan: &Plan,
    ifc: &CoreInterface,
    i: usize,
    l: &LayerPlan,
    prev_valid: Expr,
    prev_vec: Expr,
) {
    md.push(Item::Comment(format!(
        "layer {i}: {} -> {}, {} PE x {} lanes, {} cycles",
        l.inputs,
        l.outputs,
        l.pe,
        l.simd,
        l.cycles()
    )));
    let ready_in = if i > 0 {
        md.net(&net(i, "in_ready"), 1)
    } else {
        Sig::new(net(i, "in_ready"), 1)
    };
    let mut conns = vec![
        ("clk".to_string(), e::r("clk")),
        ("rst".into(), e::r(layer_reset(i))),
        ("in_ready".into(), ready_in.e()),
    ];
    if l.input == InputMode::Buffer {
        conns.extend(input_buffer(md, i, l, &ready_in));
    } else {
        conns.push(("in_valid".into(), prev_valid.clone()));
        conns.push(("in_vec".into(), prev_vec.clone()));
    }
    conns.extend(layer_outputs(md, plan, i, l));
    conns.extend(write_stage(md, plan, ifc, i));
    md.push(Item::Instance {
        module: l.mvtu_name(),
        name: format!("layer{i}"),
        conns,
    });
}

/// The memories of layer `i` on the configuration port: `(selector, port prefix, width,
/// depth)`, weights first.
fn layer_memories(plan: &Plan, i: usize) -> Vec<(usize, &'static str, usize, usize)> {
    [(2 * i, "wmem"), (2 * i + 1, "tmem")]
        .into_iter()
        .filter_map(|(sel, prefix)| {
            memory_shape(&plan.layers, sel).map(|(w, d)| (sel, prefix, w, d))
        })
        .collect()
}

/// The widest of a layer's memory words, in bits.
fn widest_word(memories: &[(usize, &'static str, usize, usize)]) -> usize {
    memories
        .iter()
        .map(|m| m.2)
        .max()
        .expect("a layer has weights")
}

/// Bytes of layer `i`'s write word: its widest memory's.
fn layer_word_bytes(plan: &Plan, i: usize) -> usize {
    widest_word(&layer_memories(plan, i)).div_ceil(8)
}

/// Whether a word of `bytes` bytes must compare `cfg_index` to take only its own bytes (a word
/// of every index the port has takes them all).
fn takes_fewer_bytes_than_indices(bytes: usize, ifc: &CoreInterface) -> bool {
    bytes < 1 << ifc.cfg_index_width
}

/// Layer `i`'s write stage, registered next to its memories so that no configuration net
/// crosses the device within a cycle (a word register shared by every layer, 4,192 bits on the
/// full-speed ULX3S design, carried 17 % of its routing congestion): the layer takes the bytes
/// of its own memories' words into its own shift register (lowest byte first, so each byte
/// enters at the top), and the write enables and address a cycle late, in step with the bytes.
/// Returns the MVTU's write-port connections.
fn write_stage(md: &mut Module, plan: &Plan, ifc: &CoreInterface, i: usize) -> Vec<(String, Expr)> {
    let memories = layer_memories(plan, i);
    let widest = widest_word(&memories);
    let bytes = layer_word_bytes(plan, i);
    // A one-byte word is only as wide as its widest memory.
    let (byte_w, word_w) = if bytes == 1 {
        (widest, widest)
    } else {
        (8, bytes * 8)
    };
    let addr_w = memories
        .iter()
        .map(|m| bits_for(m.3 - 1))
        .max()
        .unwrap_or(1);
    let sel = Sig::new("cfg_sel", ifc.cfg_sel_width);
    let index = Sig::new("cfg_index", ifc.cfg_index_width);
    let mine = memories
        .iter()
        .map(|m| sel.is(m.0 as u64))
        .reduce(e::or)
        .expect("a layer has weights");
    let mut take = e::and(e::r("cfg_shift"), mine);
    if takes_fewer_bytes_than_indices(bytes, ifc) {
        take = e::and(take, e::lt(index.e(), index.k(bytes as u64)));
    }
    md.push(Item::Comment(format!(
        "layer {i}'s write stage: a {bytes}-byte word"
    )));
    let take_q = md.reg(&net(i, "cfg_take"), 1);
    let byte_q = md.reg(&net(i, "cfg_byte"), byte_w);
    let word = md.reg(&net(i, "cfg_word"), word_w);
    let addr = md.reg(&net(i, "cfg_addr"), addr_w);
    let shifted = if bytes == 1 {
        byte_q.e()
    } else {
        Expr::Concat(vec![byte_q.e(), word.slice(word_w - 1, 8)])
    };
    let mut stmts = vec![
        take_q.set(take),
        byte_q.set(e::sl("cfg_byte", byte_w - 1, 0)),
        s::when(take_q.e(), vec![word.set(shifted)]),
        addr.set(e::sl("cfg_addr", addr_w - 1, 0)),
    ];
    let mut conns = Vec::new();
    for &(selector, prefix, width, depth) in &memories {
        let we = md.reg(&net(i, &format!("{prefix}_we")), 1);
        stmts.push(we.set(e::and(e::r("cfg_we"), sel.is(selector as u64))));
        conns.extend([
            (format!("{prefix}_we"), we.e()),
            (
                format!("{prefix}_addr"),
                addr.slice(bits_for(depth - 1) - 1, 0),
            ),
            (format!("{prefix}_data"), word.slice(width - 1, 0)),
        ]);
    }
    md.push(Item::Always("clk".into(), stmts));
    conns
}

/// Layer `i`'s input buffer, written by its producer (the loader, or the previous layer packing
/// its results); returns the layer's connections to it.
fn input_buffer(md: &mut Module, i: usize, l: &LayerPlan, release: &Sig) -> Vec<(String, Expr)> {
    let (wr_en, wr_last, wr_data, wr_free) = if i == 0 {
        (
            "take_beat".to_string(),
            "is_last_beat".to_string(),
            net(0, "wr_data"),
            net(0, "buf_free"),
        )
    } else {
        let p = i - 1;
        (
            net(p, "out_we"),
            net(p, "out_last"),
            net(p, "out_data"),
            net(p, "out_free"),
        )
    };
    let valid = md.net(&net(i, "buf_valid"), 1);
    let addr = md.net(&net(i, "rd_addr"), l.inbuf_addr_width() - 1);
    let data = md.net(&net(i, "rd_data"), l.word_width());
    md.push(Item::Instance {
        module: l.inbuf_name(),
        name: format!("layer{i}_buffer"),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("rst".into(), e::r(layer_reset(i))),
            ("wr_en".into(), e::r(wr_en)),
            ("wr_last".into(), e::r(wr_last)),
            ("wr_data".into(), e::r(wr_data)),
            ("wr_free".into(), e::r(wr_free)),
            ("rd_valid".into(), valid.e()),
            ("rd_release".into(), release.e()),
            ("rd_addr".into(), addr.e()),
            ("rd_data".into(), data.e()),
        ],
    });
    vec![
        ("in_valid".into(), valid.e()),
        ("in_rd_addr".into(), addr.e()),
        ("in_rd_data".into(), data.e()),
    ]
}

/// Layer `i`'s output nets (words into the next layer's buffer, or a vector for the next layer
/// or the argmax) and its connections to them.
fn layer_outputs(md: &mut Module, plan: &Plan, i: usize, l: &LayerPlan) -> Vec<(String, Expr)> {
    if let Some(ww) = l.stream_out {
        return [
            ("out_we", 1),
            ("out_last", 1),
            ("out_data", ww),
            ("out_free", 1),
        ]
        .into_iter()
        .map(|(port, width)| (port.to_string(), md.net(&net(i, port), width).e()))
        .collect();
    }
    let out_w = match l.output {
        OutputKind::Threshold => l.outputs,
        OutputKind::Scores => l.outputs * l.acc_width(),
    };
    let next_ready = if i + 1 < plan.layers.len() {
        e::r(net(i + 1, "in_ready"))
    } else {
        md.net(ARGMAX_READY, 1).e()
    };
    let valid = md.net(&net(i, "out_valid"), 1);
    let vector = md.net(&net(i, "out_vec"), out_w);
    vec![
        ("out_valid".into(), valid.e()),
        ("out_ready".into(), next_ready),
        ("out_vec".into(), vector.e()),
    ]
}
