//! `bql_link_rx`: the frame decoder. It parses request frames byte by byte, writes each payload
//! into the free frame slot (through the slot memory's write port), checks the CRC and, at the
//! frame's end, latches the slot's descriptor (opcode, sequence number, length, verdict) and
//! pulses `rx_commit`. A header announcing more than a slot is no frame: the search for a sync
//! byte resumes at the next byte, so a sync byte in garbage holds at most a slot's worth of the
//! bytes after it (the host's flush of a slot of zeros then completes it). A frame that finds its
//! slot still full is read to its end and dropped (counted in `overflows`); a frame that stops in
//! the middle is abandoned after a long silence (`timeouts`).

use bql_protocol::{Code, CRC_INIT, SYNC_REQUEST};

use crate::blocks::uart::crc_step;
use crate::ir::{bits_for, e, s, Expr, Item, Module, Sig, Stmt};

use super::{sat_inc, Geometry};

// Receiver states.
const R_HUNT: u64 = 0;
const R_OP: u64 = 1;
const R_SEQ: u64 = 2;
const R_LEN0: u64 = 3;
const R_LEN1: u64 = 4;
const R_PAY: u64 = 5;
const R_CRC0: u64 = 6;
const R_CRC1: u64 = 7;

/// The receiver's registers.
struct Regs {
    state: Sig,
    op: Sig,
    seq: Sig,
    len: Sig,
    /// `len - 1`, registered with the length's high byte: the payload's end then needs no
    /// subtractor of its own (a 16-bit subtract-and-compare was the UP5K's critical path at 48
    /// MHz).
    last_idx: Sig,
    idx: Sig,
    crc: Sig,
    /// The CRC's low byte matched (checked as it arrives, so the frame's last byte meets an
    /// 8-bit compare instead of a 16-bit one: the UP5K's 48 MHz).
    crc_lo_ok: Sig,
    /// The CRC's high byte matched, and the frame is to be finished: the frame's last byte is
    /// only compared and registered, and its descriptor and verdict are written the cycle
    /// after (the compare, the verdict and the descriptor's enable in one cycle were the
    /// UP5K's critical path at 48 MHz). Bytes come at least three clocks apart on every link.
    crc_hi_ok: Sig,
    finish: Sig,
    drop: Sig,
    timer: Sig,
    w_slot: Sig,
    crc_errors: Sig,
    overflows: Sig,
    timeouts: Sig,
    /// A frame just ended with a CRC error, or was dropped (counted next cycle).
    bad_crc: Sig,
    dropped: Sig,
    /// The length arriving with the current byte, if it is the length's high byte:
    /// `{rx_data, len[7:0]}`.
    new_len: Sig,
    /// `new_len` is more than a slot holds, as bit tests (a slot is a power of two).
    over_slot: Sig,
}

/// Builds `bql_link_rx` for frame slots of `g.slot` bytes; `timeout` clocks of silence abandon
/// a frame.
pub fn module(g: &Geometry, timeout: usize) -> Module {
    let mut m = Module::new("bql_link_rx");
    m.doc.push(format!(
        "bql_link_rx: request frames into {} slots of {} bytes.",
        g.slots, g.slot
    ));
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let rx_valid = m.input("rx_valid", 1);
    let rx_data = m.input("rx_data", 8);
    let full: Vec<Sig> = (0..g.slots)
        .map(|i| m.input(&format!("s_full{i}"), 1))
        .collect();
    let tw = bits_for(timeout);
    let len = m.reg("r_len", 16);
    let new_len = m.wire(
        "r_new_len",
        16,
        Expr::Concat(vec![rx_data.e(), len.slice(7, 0)]),
    );
    let regs = Regs {
        state: m.reg("r_state", bits_for(R_CRC1 as usize)),
        op: m.reg("r_op", 8),
        seq: m.reg("r_seq", 8),
        over_slot: over_slot(&mut m, &new_len, g.slot_bits),
        new_len,
        len,
        last_idx: m.reg("r_last_idx", 16),
        idx: m.reg("r_idx", 16),
        crc: m.reg("r_crc", 16),
        crc_lo_ok: m.reg("r_crc_lo_ok", 1),
        crc_hi_ok: m.reg("r_crc_hi_ok", 1),
        finish: m.reg("r_finish", 1),
        drop: m.reg("r_drop", 1),
        timer: m.reg("r_timer", tw),
        w_slot: m.output_reg("w_slot", g.slot_index_bits),
        crc_errors: m.output_reg("crc_errors", 8),
        overflows: m.output_reg("overflows", 8),
        timeouts: m.output_reg("timeouts", 8),
        bad_crc: m.reg("r_bad_crc", 1),
        dropped: m.reg("r_dropped", 1),
    };
    let descriptors: Vec<[Sig; 4]> = (0..g.slots)
        .map(|i| {
            [
                m.output_reg(&format!("s_op{i}"), 8),
                m.output_reg(&format!("s_seq{i}"), 8),
                m.output_reg(&format!("s_len{i}"), 16),
                m.output_reg(&format!("s_stat{i}"), 8),
            ]
        })
        .collect();
    let r = &regs;
    let crc_next = m.net("r_crc_next", 16);
    m.push(crc_step("rx_crc", &r.crc, &rx_data, &crc_next));
    let crc_ok = m.wire("r_crc_ok", 1, e::and(r.crc_lo_ok.e(), r.crc_hi_ok.e()));
    let w_full = m.wire(
        "w_full",
        1,
        e::select(&r.w_slot, full.iter().map(Sig::e).collect()),
    );
    let commit = e::and(r.finish.e(), e::lnot(r.drop.e()));
    m.output("rx_commit", 1);
    m.push(Item::Assign(e::r("rx_commit"), commit));
    let verdict = m.wire(
        "r_verdict",
        8,
        e::mux(
            e::lnot(crc_ok.e()),
            e::k(8, Code::BadCrc as u64),
            e::k(8, Code::Ok as u64),
        ),
    );
    // The slot memory's write port: payload bytes of a frame that is being kept.
    let storing = e::and(e::and(rx_valid.e(), r.state.is(R_PAY)), e::lnot(r.drop.e()));
    m.output("fb_we", 1);
    m.push(Item::Assign(
        e::r("fb_we"),
        e::and(e::lnot(rst.e()), storing),
    ));
    m.output("fb_waddr", g.slot_bits + g.slot_index_bits);
    m.push(Item::Assign(
        e::r("fb_waddr"),
        Expr::Concat(vec![r.w_slot.e(), r.idx.slice(g.slot_bits - 1, 0)]),
    ));
    m.output("fb_wdata", 8);
    m.push(Item::Assign(e::r("fb_wdata"), rx_data.e()));

    let on_byte = on_byte(r, &rx_data, &crc_next, &w_full);
    // `timer == timeout`, a cycle late (its compare into the state and the counter's enable was
    // the UP5K's critical path at 48 MHz); the timer runs on meanwhile.
    let timed_out = m.reg("r_timed_out", 1);
    m.push(Item::Always(
        clk.name().into(),
        vec![timed_out.set(r.timer.is(timeout as u64))],
    ));
    m.push(Item::Always(
        clk.name().into(),
        s::reset_last(
            rst.e(),
            vec![
                r.state.set_k(R_HUNT),
                r.timer.set_k(0),
                r.w_slot.set_k(0),
                r.crc_errors.set_k(0),
                r.overflows.set_k(0),
                r.timeouts.set_k(0),
                r.bad_crc.set_k(0),
                r.dropped.set_k(0),
                r.finish.set_k(0),
            ],
            vec![
                s::when(r.finish.e(), frame_end(r, &crc_ok, &verdict, &descriptors)),
                // The error counters count a frame's end a cycle later (a frame's last byte
                // into a counter's enable was the UP5K's critical path at 48 MHz).
                s::when(
                    r.bad_crc.e(),
                    vec![sat_inc(&r.crc_errors), r.bad_crc.set_k(0)],
                ),
                s::when(
                    r.dropped.e(),
                    vec![sat_inc(&r.overflows), r.dropped.set_k(0)],
                ),
                s::when_else(
                    e::or(rx_valid.e(), r.state.is(R_HUNT)),
                    vec![r.timer.set_k(0)],
                    vec![r.timer.inc()],
                ),
                s::when_else(
                    rx_valid.e(),
                    on_byte,
                    // A frame that stops in the middle is abandoned after a long silence.
                    vec![s::when(
                        timed_out.e(),
                        vec![r.state.set_k(R_HUNT), sat_inc(&r.timeouts)],
                    )],
                ),
            ],
        ),
    ));
    m
}

/// `len > 2^k`: a bit above `k` set, or bit `k` and one below it.
fn over_slot(m: &mut Module, len: &Sig, k: usize) -> Sig {
    let above = if k < 15 {
        e::ne(len.slice(15, k + 1), e::k(15 - k, 0))
    } else {
        e::k(1, 0)
    };
    let at = if k > 0 {
        e::and(len.bit(k), e::ne(len.slice(k - 1, 0), e::k(k, 0)))
    } else {
        e::k(1, 0)
    };
    m.wire("r_over_slot", 1, e::or(above, at))
}

/// What a received byte does, by state.
fn on_byte(r: &Regs, rx_data: &Sig, crc_next: &Sig, w_full: &Sig) -> Vec<Stmt> {
    let byte_crc = r.crc.set(crc_next.e());
    let header = |field: Stmt, next: u64| vec![field, byte_crc.clone(), r.state.set_k(next)];
    s::chain(
        vec![
            (
                r.state.is(R_HUNT),
                vec![s::when(
                    e::eq(rx_data.e(), e::k(8, SYNC_REQUEST as u64)),
                    vec![
                        r.state.set_k(R_OP),
                        r.crc.set_k(CRC_INIT as u64),
                        r.drop.set(w_full.e()),
                    ],
                )],
            ),
            (r.state.is(R_OP), header(r.op.set(rx_data.e()), R_SEQ)),
            (r.state.is(R_SEQ), header(r.seq.set(rx_data.e()), R_LEN0)),
            (
                r.state.is(R_LEN0),
                header(s::set(r.len.slice(7, 0), rx_data.e()), R_LEN1),
            ),
            (
                r.state.is(R_LEN1),
                vec![
                    s::set(r.len.slice(15, 8), rx_data.e()),
                    r.last_idx.set(e::sub(r.new_len.e(), e::k(16, 1))),
                    byte_crc.clone(),
                    r.idx.set_k(0),
                    s::when_else(
                        r.over_slot.e(),
                        vec![r.state.set_k(R_HUNT)],
                        vec![s::when_else(
                            e::eq(r.new_len.e(), e::k(16, 0)),
                            vec![r.state.set_k(R_CRC0)],
                            vec![r.state.set_k(R_PAY)],
                        )],
                    ),
                ],
            ),
            (
                r.state.is(R_PAY),
                vec![
                    byte_crc,
                    r.idx.inc(),
                    s::when(
                        e::eq(r.idx.e(), r.last_idx.e()),
                        vec![r.state.set_k(R_CRC0)],
                    ),
                ],
            ),
            (
                r.state.is(R_CRC0),
                vec![
                    r.crc_lo_ok.set(e::eq(rx_data.e(), r.crc.slice(7, 0))),
                    r.state.set_k(R_CRC1),
                ],
            ),
        ],
        // R_CRC1: the frame is complete; it is finished next cycle.
        vec![
            r.crc_hi_ok.set(e::eq(rx_data.e(), r.crc.slice(15, 8))),
            r.finish.set_k(1),
            r.state.set_k(R_HUNT),
        ],
    )
}

/// The cycle after R_CRC1: a kept frame fills its slot's descriptor.
fn frame_end(r: &Regs, crc_ok: &Sig, verdict: &Sig, descriptors: &[[Sig; 4]]) -> Vec<Stmt> {
    let mut v = vec![
        r.finish.set_k(0),
        r.bad_crc.set(e::lnot(crc_ok.e())),
        r.dropped.set(r.drop.e()),
        s::when(e::lnot(r.drop.e()), vec![r.w_slot.inc()]),
    ];
    for (i, [op, seq, len, stat]) in descriptors.iter().enumerate() {
        v.push(s::when(
            e::and(e::lnot(r.drop.e()), r.w_slot.is(i as u64)),
            vec![
                op.set(r.op.e()),
                seq.set(r.seq.e()),
                len.set(r.len.e()),
                stat.set(verdict.e()),
            ],
        ));
    }
    v
}
