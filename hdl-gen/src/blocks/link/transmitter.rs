//! `bql_link_tx`: frames one response at a time, results first. A result is taken from the core
//! (`t_pop`) only when its last byte has gone out; a reply is taken from the executor through
//! its valid/ready handshake when no result waits. The byte to send is registered twice (the
//! payload byte in `t_payload_q`, then `t_byte`, valid with `t_byte_ok` two cycles after the
//! index moves): the reply's byte multiplexers and the CRC step were the design's critical path,
//! and the payload multiplexers alone held the UP5K below 48 MHz.

use bql_protocol::{Code, Info, CRC_INIT, MAX_IN_FLIGHT, PING_MAGIC};

use crate::blocks::core::CoreInterface;
use crate::blocks::uart::crc_step;
use crate::ir::{bits_for, e, s, BinOp, Expr, Item, Module, Sig, Stmt};

use super::{KIND_WIDTH, K_CHECK, K_INFO, K_PING, K_RESULT, K_STATUS};

/// The frame being sent.
struct Tx {
    active: Sig,
    kind: Sig,
    code: Sig,
    seq: Sig,
    len: Sig,
    op: Sig,
    idx: Sig,
    /// The payload index of the byte after the one being sent (its low bits: every source is
    /// indexed within a power of two of bytes). Each source's byte at it is registered when a
    /// byte goes ([`source`]), so the index's fan-out into the byte multiplexers and the reply
    /// kind's AND-OR are a cycle apart (together they were the UP5K's critical path at 48 MHz).
    pnext: Sig,
    crc_at: Sig,
    end: Sig,
    crc: Sig,
    byte: Sig,
    byte_ok: Sig,
    byte_wait: Sig,
    results: Sig,
    led_toggle: Sig,
    /// Where `t_idx` is, registered a cycle after it moves (a byte goes out two cycles after):
    /// one flag per header byte, the CRC's bytes, the payload ([`AT_CRC_LO`] ..), and whether
    /// the CRC covers the byte. The 16-bit compares in the byte multiplexer and the CRC's
    /// enable were the UP5K's critical path at 48 MHz.
    at: Sig,
    crc_covers: Sig,
}

/// Bits of `t_at` after the five header bytes.
const AT_CRC_LO: usize = 5;
const AT_END: usize = 6;
const AT_PAYLOAD: usize = 7;

/// Builds `bql_link_tx` for a core with interface `ifc` answering `INFO` with `info`.
pub fn module(ifc: &CoreInterface, info: &Info) -> Module {
    let mut m = Module::new("bql_link_tx");
    m.doc
        .push("bql_link_tx: one response frame at a time, results first.".into());
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let utx_ready = m.input("utx_ready", 1);
    let t = Tx {
        active: m.reg("t_active", 1),
        kind: m.reg("t_kind", KIND_WIDTH),
        code: m.reg("t_code", 8),
        seq: m.reg("t_seq", 8),
        len: m.reg("t_len", 16),
        op: m.reg("t_op", 8),
        idx: m.reg("t_idx", 16),
        pnext: m.reg("t_pnext", payload_index_bits(info)),
        crc_at: m.reg("t_crc_at", 16),
        end: m.reg("t_end", 16),
        crc: m.reg("t_crc", 16),
        byte: m.output_reg("t_byte", 8),
        byte_ok: m.reg("t_byte_ok", 1),
        byte_wait: m.reg("t_byte_wait", 1),
        results: m.reg("results", 16),
        led_toggle: m.output_reg("led_toggle", 1),
        at: m.reg("t_at", AT_PAYLOAD + 1),
        crc_covers: m.reg("t_crc_covers", 1),
    };
    // Frame positions: header 0..=4, payload 5.., CRC at `t_crc_at` (low byte) and `t_end`.
    let send = m.output("t_send", 1);
    m.push(Item::Assign(send.e(), e::and(t.active.e(), t.byte_ok.e())));
    let fire = m.wire("t_fire", 1, e::and(send.e(), utx_ready.e()));
    let last = m.wire("t_last", 1, e::and(fire.e(), t.at.bit(AT_END)));
    let pop = m.output("t_pop", 1);
    m.push(Item::Assign(pop.e(), e::and(last.e(), t.kind.is(K_RESULT))));
    let core_valid = m.input("core_out_valid", 1);
    let start_result = m.wire(
        "start_result",
        1,
        e::and(core_valid.e(), e::lnot(t.active.e())),
    );
    let reply_valid = m.input("reply_valid", 1);
    let reply_ready = m.output("reply_ready", 1);
    m.push(Item::Assign(
        reply_ready.e(),
        e::and(e::lnot(t.active.e()), e::lnot(core_valid.e())),
    ));
    let start_reply = m.wire("start_reply", 1, e::and(reply_valid.e(), reply_ready.e()));
    let payload_byte = payload_byte(&mut m, ifc, info, &t, &fire);
    let payload = m.reg("t_payload_q", 8);
    let (position, at) = positions(&clk, &t);
    let byte_at = one_hot_mux(vec![
        (at[0].clone(), e::k(8, bql_protocol::SYNC_RESPONSE as u64)),
        (at[1].clone(), t.code.e()),
        (at[2].clone(), t.seq.e()),
        (at[3].clone(), t.len.slice(7, 0)),
        (at[4].clone(), t.len.slice(15, 8)),
        (at[AT_CRC_LO].clone(), t.crc.slice(7, 0)),
        (at[AT_END].clone(), t.crc.slice(15, 8)),
        (at[AT_PAYLOAD].clone(), payload.e()),
    ]);
    m.push(position);
    m.push(Item::Always(
        clk.name().into(),
        vec![
            payload.set(payload_byte.e()),
            t.byte.set(byte_at),
            t.byte_wait.set(e::and(t.active.e(), e::lnot(fire.e()))),
            t.byte_ok.set(e::and(
                t.byte_wait.e(),
                e::and(t.active.e(), e::lnot(fire.e())),
            )),
        ],
    ));
    let crc_next = m.net("t_crc_next", 16);
    m.push(crc_step("tx_crc", &t.crc, &t.byte, &crc_next));
    let reply_fields = ["p_kind", "p_code", "p_seq", "p_len", "p_op"]
        .into_iter()
        .zip([KIND_WIDTH, 8, 8, 16, 8])
        .map(|(n, w)| m.input(n, w))
        .collect::<Vec<_>>();
    let fifo_head = m.input("fifo_head", 8);
    let rb = info.result_bytes() as u64;
    let start = |kind: Expr, code: Expr, seq: Expr, len: Expr, crc_at: Expr, end: Expr| {
        vec![
            t.active.set_k(1),
            t.kind.set(kind),
            t.code.set(code),
            t.seq.set(seq),
            t.len.set(len),
            t.crc_at.set(crc_at),
            t.end.set(end),
            t.idx.set_k(0),
            // The payload's byte 0 is sent six bytes on: its source bytes load at the fifth.
            t.pnext.set_k((1u64 << t.pnext.width()) - 4),
            t.crc.set_k(CRC_INIT as u64),
        ]
    };
    let on_result = start(
        t.kind.k(K_RESULT),
        t.code.k(Code::Ok as u64),
        fifo_head.e(),
        t.len.k(rb),
        t.crc_at.k(rb + 5),
        t.end.k(rb + 6),
    );
    let [p_kind, p_code, p_seq, p_len, p_op] = &reply_fields[..] else {
        unreachable!("five reply fields")
    };
    let mut on_reply = start(
        p_kind.e(),
        p_code.e(),
        p_seq.e(),
        p_len.e(),
        e::add(p_len.e(), p_len.k(5)),
        e::add(p_len.e(), p_len.k(6)),
    );
    on_reply.push(t.op.set(p_op.e()));
    let on_fire = sending(&t, &last, &crc_next);
    m.push(Item::Always(
        clk.name().into(),
        s::reset_last(
            rst.e(),
            vec![t.active.set_k(0), t.results.set_k(0), t.led_toggle.set_k(0)],
            s::chain(
                vec![
                    (start_result.e(), on_result),
                    (start_reply.e(), on_reply),
                    (fire.e(), on_fire),
                ],
                vec![],
            ),
        ),
    ));
    m
}

/// A byte has gone: the next index, the CRC over header and payload, the frame's end.
fn sending(t: &Tx, last: &Sig, crc_next: &Sig) -> Vec<Stmt> {
    vec![
        t.idx.inc(),
        t.pnext.inc(),
        s::when(t.crc_covers.e(), vec![t.crc.set(crc_next.e())]),
        s::when(
            last.e(),
            vec![
                t.active.set_k(0),
                s::when(
                    t.kind.is(K_RESULT),
                    vec![t.results.inc(), t.led_toggle.inc()],
                ),
            ],
        ),
    ]
}

/// Bits of the payload index: every source fits a power of two of bytes below it.
fn payload_index_bits(info: &Info) -> usize {
    bits_for(info.result_bytes().max(Info::LEN).next_power_of_two() - 1)
}

/// The payload byte being sent: each source a flat vector (byte 0 lowest) of a power-of-two
/// number of bytes, its byte registered when the previous byte goes; then one byte multiplexer
/// by reply kind. (Multiplexing whole padded vectors first cost about 600 LUT4 on iCE40.)
fn payload_byte(m: &mut Module, ifc: &CoreInterface, info: &Info, t: &Tx, fire: &Sig) -> Sig {
    let at = Index {
        next: &t.pnext,
        load: fire,
    };
    let info_b = source(
        m,
        &at,
        "info",
        vec![const_flat(&info.to_bytes())],
        Info::LEN * 8,
    );
    let ping_b = source(m, &at, "ping", vec![const_flat(&PING_MAGIC)], 32);
    let fifo_bits = bits_for(MAX_IN_FLIGHT - 1);
    let counters: Vec<Sig> = [
        ("inflight", fifo_bits + 1),
        ("timeouts", 8),
        ("overflows", 8),
        ("crc_errors", 8),
        ("load_crc", 16),
    ]
    .into_iter()
    .map(|(n, w)| m.input(n, w))
    .collect();
    let [inflight, timeouts, overflows, crc_errors, load_crc] = &counters[..] else {
        unreachable!("five counters")
    };
    let status = vec![
        t.results.e(),
        e::zext(inflight.e(), fifo_bits + 1, 8),
        timeouts.e(),
        overflows.e(),
        crc_errors.e(),
        load_crc.e(),
    ];
    let status_b = source(m, &at, "status", status, 64);
    let check_b = source(m, &at, "check", vec![load_crc.e()], 16);
    let result_parts = result_parts(m, ifc, info, load_crc);
    let result_b = source(m, &at, "result", result_parts, info.result_bytes() * 8);
    // The kind decoded into flags a cycle after it is set (the payload comes five bytes
    // later), so that the byte is an AND-OR of the sources (a priority chain over kind compares
    // was the UP5K's critical path at 48 MHz); any other kind sends the opcode.
    let kinds = [K_RESULT, K_INFO, K_STATUS, K_CHECK, K_PING];
    let kind_is = m.reg("t_kind_is", kinds.len() + 1);
    let known: Vec<Expr> = kinds.iter().map(|&k| t.kind.is(k)).collect();
    let other = e::lnot(known.iter().cloned().reduce(e::or).expect("kinds"));
    let mut flags: Vec<Expr> = known.into_iter().chain([other]).collect();
    flags.reverse();
    m.push(Item::Always(
        "clk".into(),
        vec![kind_is.set(Expr::Concat(flags))],
    ));
    let sources = [result_b, info_b, status_b, check_b, ping_b, t.op.e()];
    m.wire(
        "t_payload_byte",
        8,
        one_hot_mux(
            sources
                .into_iter()
                .enumerate()
                .map(|(i, v)| (kind_is.bit(i), v))
                .collect(),
        ),
    )
}

/// Where the sources' bytes are taken: the next payload index, and when.
struct Index<'a> {
    next: &'a Sig,
    load: &'a Sig,
}

/// One payload source: `parts` (most significant first, `used_bits` in all) as a flat vector of a
/// power-of-two number of bytes, and its byte at `at.next`, registered when `at.load` (the byte
/// then stays while it is sent; a counter among the parts is taken a byte early).
fn source(m: &mut Module, at: &Index, name: &str, parts: Vec<Expr>, used_bits: usize) -> Expr {
    let bytes = used_bits.div_ceil(8).max(1).next_power_of_two();
    let mut all = Vec::new();
    if bytes * 8 > used_bits {
        all.push(e::k(bytes * 8 - used_bits, 0));
    }
    all.extend(parts);
    let flat = m.wire(&format!("{name}_flat"), bytes * 8, Expr::Concat(all));
    if bytes == 1 {
        return flat.e();
    }
    let ib = bits_for(bytes - 1);
    let index = Expr::Concat(vec![at.next.slice(ib - 1, 0), e::k(3, 0)]);
    let byte = m.reg(&format!("{name}_byte"), 8);
    m.push(Item::Always(
        "clk".into(),
        vec![s::when(
            at.load.e(),
            vec![byte.set(Expr::PartSelect(flat.name().into(), Box::new(index), 8))],
        )],
    ));
    byte.e()
}

/// A result's payload, most significant first: the load checksum (the host refuses results
/// computed from memories it did not load), every score sign- or zero-extended to its bytes,
/// the class.
fn result_parts(m: &mut Module, ifc: &CoreInterface, info: &Info, load_crc: &Sig) -> Vec<Expr> {
    let classes = info.classes as usize;
    let sbytes = info.score_bytes as usize;
    let scores = m.input("core_out_scores", classes * ifc.score_width);
    let class = m.input("core_out_class", ifc.class_width);
    let mut parts = vec![load_crc.e()];
    for c in (0..classes).rev() {
        let lo = c * ifc.score_width;
        let hi = lo + ifc.score_width - 1;
        let ext = sbytes * 8 - ifc.score_width;
        if ext > 0 {
            parts.push(if ifc.scores_signed {
                Expr::Repl(ext, Box::new(scores.bit(hi)))
            } else {
                e::k(ext, 0)
            });
        }
        parts.push(scores.slice(hi, lo));
    }
    parts.push(e::zext(class.e(), ifc.class_width, 16));
    parts
}

/// A constant byte string as a flat vector, byte 0 in the low bits.
fn const_flat(data: &[u8]) -> Expr {
    Expr::Concat(data.iter().rev().map(|&b| e::k(8, b as u64)).collect())
}

/// The process that registers `t_at` and `t_crc_covers` from `t_idx`, and `t_at`'s bits.
fn positions(clk: &Sig, t: &Tx) -> (Item, Vec<Expr>) {
    let header = (0..AT_CRC_LO as u64).map(|i| t.idx.is(i));
    let at_crc_lo = e::eq(t.idx.e(), t.crc_at.e());
    let at_end = e::eq(t.idx.e(), t.end.e());
    let past_header = e::lnot(e::lt(t.idx.e(), t.idx.k(AT_CRC_LO as u64)));
    let before_crc = e::lt(t.idx.e(), t.crc_at.e());
    let in_payload = e::and(past_header, before_crc.clone());
    let mut flags: Vec<Expr> = header.chain([at_crc_lo, at_end, in_payload]).collect();
    flags.reverse();
    let process = Item::Always(
        clk.name().into(),
        vec![
            t.at.set(Expr::Concat(flags)),
            t.crc_covers
                .set(e::and(e::ne(t.idx.e(), t.idx.k(0)), before_crc)),
        ],
    );
    let bits = (0..=AT_PAYLOAD).map(|i| t.at.bit(i)).collect();
    (process, bits)
}

/// The value whose flag is set, of flags of which at most one is (zero if none): an AND-OR, two
/// LUT levels for eight 8-bit values where a priority chain takes one per value.
fn one_hot_mux(arms: Vec<(Expr, Expr)>) -> Expr {
    arms.into_iter()
        .map(|(flag, v)| {
            let width = 8;
            e::bin(BinOp::And, Expr::Repl(width, Box::new(flag)), v)
        })
        .reduce(|a, b| e::bin(BinOp::Or, a, b))
        .expect("at least one value")
}
