//! `bql_executor`: runs the frame slots in order. A command executes only when its frame
//! checked; `WRITE` streams memory words into the core's configuration port and updates the
//! load checksum (a `WRITE` that repeats the sequence number of the last executed one is a
//! retransmission: acknowledged, not executed twice); `INFER` streams the image into the core,
//! one element per step, and pushes its sequence number for the transmitter; every other
//! command asks the transmitter for a reply through a valid/ready handshake whose fields are
//! registers (`p_*`).
//!
//! It reads the slot memory one byte per three cycles (`x_wait`): the address goes out, the
//! byte comes back registered by the memory and is registered again here (`x_q`), so that no
//! decision starts at the memory's output (that path held the UP5K below 48 MHz).

use bql_protocol::{Code, Info, Op, CRC_INIT, MAX_IN_FLIGHT, PING_MAGIC};

use crate::blocks::uart::crc_step;
use crate::ir::{bits_for, e, s, Expr, Item, Module, Sig, Stmt};

use super::{Geometry, KIND_WIDTH, K_CHECK, K_ERR, K_INFO, K_PING, K_STATUS};

// Executor states.
const X_IDLE: u64 = 0;
const X_DECODE: u64 = 1;
const X_REPLY: u64 = 2;
const X_WHDR: u64 = 3;
const X_WDATA: u64 = 4;
const X_IMG: u64 = 5;
/// A `WRITE` named a memory that does not exist: refused from a state of its own, so that the
/// reply registers' enable does not wait for the slot byte (that was the UP5K's critical path
/// at 48 MHz).
const X_BAD_SELECTOR: u64 = 6;

/// What the decode state does with a frame: one bit each of `x_act`, exactly one set. It is
/// decided from the registered descriptor a cycle before the decode state acts (which waits
/// two cycles of `x_wait` after the idle state), so that the state's actions are independent
/// of each other and start at a flip-flop (the chains of compares on the descriptor, then of
/// flags, held the UP5K below 48 MHz).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    /// The receiver's verdict was not OK.
    Refused,
    Ping,
    Info,
    Status,
    Clear,
    WriteBadLength,
    /// A `WRITE` that repeats the sequence number of the last executed one.
    WriteAgain,
    Write,
    InferBadLength,
    Infer,
    BadOpcode,
}

const ACTIONS: [Action; 11] = [
    Action::Refused,
    Action::Ping,
    Action::Info,
    Action::Status,
    Action::Clear,
    Action::WriteBadLength,
    Action::WriteAgain,
    Action::Write,
    Action::InferBadLength,
    Action::Infer,
    Action::BadOpcode,
];

/// Everything the executor's statements refer to.
struct Ex {
    g: Geometry,
    clk: Sig,
    rst: Sig,
    state: Sig,
    slot: Sig,
    /// The current slot is to be freed next cycle ([`free`]).
    free_pending: Sig,
    ptr: Sig,
    wait: Sig,
    /// `x_wait == 0`, as a flip-flop (set from the value `x_wait` takes at the same edge): the
    /// byte in `x_q` is the one at `x_ptr` (the compare fed the image and write steps' enables).
    ready: Sig,
    /// The slot byte, registered from the memory's output `buf_q`.
    buf_q: Sig,
    byte_in: Sig,
    /// The receiver's slot descriptors: op, seq, len, stat of each slot.
    slots: Vec<[Sig; 4]>,
    full: Vec<Sig>,
    reply: [Sig; 5],
    sel: Sig,
    addr: Sig,
    /// A byte of the memory word goes to the core (`cfg_shift`), with the byte (`cfg_byte`) and
    /// its index in the word (`cfg_index`): each layer keeps the bytes of its own memories'
    /// words (a word register here, 4,192 bits for the full-speed ULX3S design, crossed the
    /// device to every memory in one cycle). The padding's bytes are not sent.
    shift: Sig,
    byte: Sig,
    index: Sig,
    /// `x_wb` is below the used bytes, as a flip-flop kept with the counter; absent when a word
    /// has no padding.
    in_word: Option<Sig>,
    wb: Sig,
    /// A word's last byte went out: its write (`x_we`) follows a cycle later, after the core's
    /// write stage has taken the byte.
    word_done: Sig,
    we: Sig,
    load_crc: Sig,
    load_crc_next: Sig,
    /// A byte was taken into a `WRITE`: the load checksum takes it a cycle later, from `x_q`,
    /// which holds the byte one more cycle (the write states' decisions into the checksum's
    /// 16-bit enable were the UP5K's critical path at 48 MHz).
    crc_pending: Sig,
    wseq: Sig,
    wseq_valid: Sig,
    elem: Sig,
    /// `x_e < input_len` and `x_e == elements`, kept in step with the element counter (its
    /// 16-bit compares fed the image path's enables: below 48 MHz on the UP5K).
    elem_in_range: Sig,
    elem_at_end: Sig,
    lane: Sig,
    bit: Option<(Sig, Sig)>,
    beat: Sig,
    beat_valid: Sig,
    op: Sig,
    seq: Sig,
    len: Sig,
    stat: Sig,
    /// One bit per [`Action`].
    act: Sig,
    /// `x_ptr == x_len` a cycle late: a byte step raises `x_wait` for the cycle after it moves
    /// the pointer, so the flag is current whenever a byte could be taken (the 16-bit compare
    /// in the write enable's logic held the UP5K below 48 MHz).
    at_end: Sig,
    sel_ok: Sig,
    push: Sig,
    /// No inference in flight, a cycle late ([`module`]): a `WRITE` waits for it, so the core
    /// reads no memory word for an image while the host writes one (the memories need no
    /// old-data bypass, see the MVTU's `NO_RW_CHECK`), and every inference sees whole loads.
    idle: Sig,
}

/// Builds `bql_executor`: `valid_sels` are the memory selectors that exist.
pub fn module(g: &Geometry, valid_sels: &[usize]) -> Module {
    let mut m = Module::new("bql_executor");
    m.doc.push(
        "bql_executor: runs the frame slots in order; reads a slot byte per three cycles.".into(),
    );
    let x = declare(&mut m, g);
    descriptor(&mut m, &x);
    m.push(crc_step(
        "load_crc_step",
        &x.load_crc,
        &x.buf_q,
        &x.load_crc_next,
    ));
    // Checked on `x_q`, a cycle behind it, so that nothing but `x_q` starts at the memory's
    // output (the compare after the read was the half-device ULX3S design's critical path at
    // 98 MHz). The selector is the payload's first byte: it sits in `x_q` from the decode
    // state on, and the header's decision comes a cycle after that at the earliest.
    let sel_ok = valid_sels
        .iter()
        .map(|&v| e::eq(x.buf_q.e(), e::k(8, v as u64)))
        .reduce(e::or)
        .unwrap_or(e::k(1, 0));
    m.push(Item::Always(
        x.clk.name().into(),
        vec![x.sel_ok.set(sel_ok)],
    ));
    let fifo_w = bits_for(MAX_IN_FLIGHT - 1) + 1;
    let inflight = m.input("inflight", fifo_w);
    // A result slot is free, a cycle late: a push is followed by the image's many cycles
    // before the next decode (the count's compare into the push was the UP5K's critical path
    // at 48 MHz); a late "free" only delays a push.
    let room = m.reg("x_room", 1);
    // Likewise "nothing in flight": an INFER's push reaches it two cycles later, while its image
    // is still being streamed, before the next frame's decode.
    m.push(Item::Always(
        x.clk.name().into(),
        vec![
            room.set(e::ne(inflight.e(), inflight.k(MAX_IN_FLIGHT as u64))),
            x.idle.set(inflight.is(0)),
        ],
    ));
    m.push(Item::Assign(
        x.push.e(),
        e::and(
            e::and(x.state.is(X_DECODE), x.ready.e()),
            e::and(act(&x, Action::Infer), room.e()),
        ),
    ));
    let raddr = m.output("fb_raddr", g.slot_bits + g.slot_index_bits);
    m.push(Item::Assign(
        raddr.e(),
        Expr::Concat(vec![x.slot.e(), x.ptr.slice(g.slot_bits - 1, 0)]),
    ));
    let reply_ready = m.input("reply_ready", 1);
    let reply_valid = m.output("reply_valid", 1);
    m.push(Item::Assign(reply_valid.e(), x.state.is(X_REPLY)));
    let start_reply = m.wire(
        "start_reply",
        1,
        e::and(x.state.is(X_REPLY), reply_ready.e()),
    );
    let rx_commit = m.input("rx_commit", 1);
    let w_slot = m.input("w_slot", g.slot_index_bits);
    let core_in_ready = m.input("core_in_ready", 1);
    let mut steps = vec![
        x.buf_q.set(x.byte_in.e()),
        s::when(
            e::lnot(x.wait.is(0)),
            vec![x.wait.set(e::sub(x.wait.e(), x.wait.k(1)))],
        ),
        x.ready.set(e::lnot(x.wait.bit(1))),
    ];
    for (i, full) in x.full.iter().enumerate() {
        steps.push(s::when(
            e::and(rx_commit.e(), w_slot.is(i as u64)),
            vec![full.set_k(1)],
        ));
    }
    steps.push(apply_free(&x));
    steps.extend(write_pulses(&x));
    steps.push(x.crc_pending.set_k(0));
    steps.push(s::when(
        x.crc_pending.e(),
        vec![x.load_crc.set(x.load_crc_next.e())],
    ));
    steps.extend(s::chain(
        vec![
            (
                x.state.is(X_IDLE),
                vec![
                    x.ptr.set_k(0),
                    x.wait.set_k(2),
                    x.ready.set_k(0),
                    s::when(
                        e::and(
                            e::lnot(x.free_pending.e()),
                            e::select(&x.slot, x.full.iter().map(Sig::e).collect()),
                        ),
                        vec![x.state.set_k(X_DECODE)],
                    ),
                ],
            ),
            (x.state.is(X_DECODE), decode(&x)),
            (
                x.state.is(X_REPLY),
                vec![s::when(start_reply.e(), vec![x.state.set_k(X_IDLE)])],
            ),
            (x.state.is(X_WHDR), write_header(&x)),
            (x.state.is(X_WDATA), write_data(&x)),
            (
                x.state.is(X_BAD_SELECTOR),
                reply(&x, K_ERR, Code::BadArgument, 1),
            ),
        ],
        image(&x, &core_in_ready),
    ));
    m.push(Item::Always(
        x.clk.name().into(),
        s::reset_last(
            x.rst.e(),
            [
                x.state.set_k(X_IDLE),
                x.slot.set_k(0),
                x.free_pending.set_k(0),
                x.shift.set_k(0),
                x.word_done.set_k(0),
                x.we.set_k(0),
                x.beat_valid.set_k(0),
                x.load_crc.set_k(CRC_INIT as u64),
                x.crc_pending.set_k(0),
                x.wseq_valid.set_k(0),
            ]
            .into_iter()
            .chain(x.full.iter().map(|f| f.set_k(0)))
            .collect(),
            steps,
        ),
    ));
    m
}

/// Ports and registers.
fn declare(m: &mut Module, g: &Geometry) -> Ex {
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let kw = bits_for(g.pixels_per_beat.max(2) - 1);
    let wbw = bits_for(g.word_bytes.max(2) - 1);
    let beat_w = g.pixels_per_beat * g.elem_width;
    let slot_ins: Vec<[Sig; 4]> = (0..g.slots)
        .map(|i| {
            [
                m.input(&format!("s_op{i}"), 8),
                m.input(&format!("s_seq{i}"), 8),
                m.input(&format!("s_len{i}"), 16),
                m.input(&format!("s_stat{i}"), 8),
            ]
        })
        .collect();
    Ex {
        g: *g,
        clk,
        rst,
        state: m.reg("x_state", bits_for(X_BAD_SELECTOR as usize)),
        slot: m.reg("x_slot", g.slot_index_bits),
        free_pending: m.reg("x_free_pending", 1),
        ptr: m.reg("x_ptr", 16),
        wait: m.reg("x_wait", 2),
        ready: m.reg("x_ready", 1),
        buf_q: m.reg("x_q", 8),
        byte_in: m.input("buf_q", 8),
        slots: slot_ins,
        full: (0..g.slots)
            .map(|i| m.output_reg(&format!("s_full{i}"), 1))
            .collect(),
        reply: [
            m.output_reg("p_kind", KIND_WIDTH),
            m.output_reg("p_code", 8),
            m.output_reg("p_seq", 8),
            m.output_reg("p_len", 16),
            m.output_reg("p_op", 8),
        ],
        sel: m.output_reg("x_sel", 8),
        addr: m.output_reg("x_addr", 16),
        shift: m.output_reg("x_cfg_shift", 1),
        byte: m.output_reg("x_cfg_byte", 8),
        index: m.output_reg("x_cfg_index", g.word_index_bits),
        in_word: (g.word_used_bytes < g.word_bytes).then(|| m.reg("x_in_word", 1)),
        wb: m.reg("x_wb", wbw),
        word_done: m.reg("x_word_done", 1),
        we: m.output_reg("x_we", 1),
        load_crc: m.output_reg("load_crc", 16),
        load_crc_next: m.net("load_crc_next", 16),
        crc_pending: m.reg("x_crc_pending", 1),
        wseq: m.reg("wseq", 8),
        wseq_valid: m.reg("wseq_valid", 1),
        elem: m.reg("x_e", 16),
        elem_in_range: m.reg("x_e_in_range", 1),
        elem_at_end: m.reg("x_e_at_end", 1),
        lane: m.reg("x_k", kw),
        bit: g
            .binary_input
            .then(|| (m.reg("x_bit", 3), m.reg("x_byte", 8))),
        beat: m.output_reg("beat", beat_w),
        beat_valid: m.output_reg("beat_valid", 1),
        op: m.reg("x_op", 8),
        seq: m.output_reg("x_seq", 8),
        len: m.reg("x_len", 16),
        stat: m.reg("x_stat", 8),
        act: m.reg("x_act", ACTIONS.len()),
        at_end: m.reg("x_at_end", 1),
        sel_ok: m.reg("x_sel_ok", 1),
        push: m.output("x_push", 1),
        idle: m.reg("x_idle", 1),
    }
}

/// The current slot's descriptor, registered, and the [`Action`] decided from it a cycle later:
/// the executor reads the fields from the decode state on, at least a cycle after the slot or
/// its contents last changed, and the action two cycles after (the slot multiplexer and 16-bit
/// compares were on the critical path).
fn descriptor(m: &mut Module, x: &Ex) {
    let mut regs = Vec::new();
    for (f, (field, reg)) in ["op", "seq", "len", "stat"]
        .into_iter()
        .zip([&x.op, &x.seq, &x.len, &x.stat])
        .enumerate()
    {
        let sel = m.wire(
            &format!("x_{field}_sel"),
            reg.width(),
            e::select(&x.slot, x.slots.iter().map(|d| d[f].e()).collect()),
        );
        regs.push(reg.set(sel.e()));
    }
    regs.push(x.at_end.set(e::eq(x.ptr.e(), x.len.e())));
    let actions = actions(x);
    let bits = ACTIONS.iter().rev().map(|a| actions(*a)).collect();
    regs.push(x.act.set(Expr::Concat(bits)));
    m.push(Item::Always(x.clk.name().into(), regs));
}

/// The condition of each [`Action`] on the registered descriptor.
fn actions(x: &Ex) -> impl Fn(Action) -> Expr + '_ {
    move |a| {
        let ok = x.stat.is(Code::Ok as u64);
        let is = |o: Op| e::and(ok.clone(), x.op.is(o as u64));
        let image_len = x.len.is(x.g.image_bytes as u64);
        let again = e::and(x.wseq_valid.e(), e::eq(x.wseq.e(), x.seq.e()));
        match a {
            Action::Refused => e::lnot(ok),
            Action::Ping => is(Op::Ping),
            Action::Info => is(Op::Info),
            Action::Status => is(Op::Status),
            Action::Clear => is(Op::Clear),
            Action::WriteBadLength => e::and(is(Op::Write), e::lnot(write_len_ok(x))),
            Action::WriteAgain => e::and(e::and(is(Op::Write), write_len_ok(x)), again),
            Action::Write => e::and(e::and(is(Op::Write), write_len_ok(x)), e::lnot(again)),
            Action::InferBadLength => e::and(is(Op::Infer), e::lnot(image_len)),
            Action::Infer => e::and(is(Op::Infer), image_len),
            Action::BadOpcode => {
                let known = [
                    Op::Ping,
                    Op::Info,
                    Op::Status,
                    Op::Clear,
                    Op::Write,
                    Op::Infer,
                ];
                let any = known.iter().map(|&o| x.op.is(o as u64)).reduce(e::or);
                e::and(ok, e::lnot(any.expect("known commands")))
            }
        }
    }
}

/// A `WRITE`'s length holds its header and whole words: `len >= 3` and `(len - 3) % wb == 0`
/// (`wb` a power of two).
fn write_len_ok(x: &Ex) -> Expr {
    let wb = x.g.word_bytes;
    // `len >= 3` as `len[15:2] != 0 || len[1:0] == 3`: a 16-bit compare became a carry chain
    // that was the UP5K's critical path at 48 MHz.
    let at_least_header = e::or(
        e::ne(x.len.slice(15, 2), e::k(14, 0)),
        e::eq(x.len.slice(1, 0), e::k(2, 3)),
    );
    if wb == 1 {
        return at_least_header;
    }
    let bits = bits_for(wb - 1);
    e::and(
        at_least_header,
        e::eq(x.len.slice(bits - 1, 0), e::k(bits, (3 % wb) as u64)),
    )
}

/// The bit of `x_act` for `a`.
fn act(x: &Ex, a: Action) -> Expr {
    x.act
        .bit(ACTIONS.iter().position(|&b| b == a).expect("an action"))
}

/// Frees the current slot a cycle later (clears its full flag, moves to the next one): the
/// many states that free it made the slot's enable the UP5K's critical path at 48 MHz. The idle
/// state waits for a pending free, so a slot is never taken twice.
fn free(x: &Ex) -> Vec<Stmt> {
    vec![x.free_pending.set_k(1)]
}

/// The deferred half of [`free`].
fn apply_free(x: &Ex) -> Stmt {
    // One independent `if` per slot (one-hot conditions), not a priority chain of compares.
    let mut clear: Vec<Stmt> = (0..x.full.len())
        .map(|i| s::when(x.slot.is(i as u64), vec![x.full[i].set_k(0)]))
        .collect();
    clear.extend([x.slot.inc(), x.free_pending.set_k(0)]);
    s::when(x.free_pending.e(), clear)
}

/// Asks for a reply of `kind` with `code` and `len` payload bytes, and frees the slot.
fn reply(x: &Ex, kind: u64, code: Code, len: usize) -> Vec<Stmt> {
    let [p_kind, p_code, _, p_len, _] = &x.reply;
    let mut v = vec![
        p_kind.set_k(kind),
        p_code.set_k(code as u64),
        p_len.set_k(len as u64),
        x.state.set_k(X_REPLY),
    ];
    v.extend(free(x));
    v
}

/// Moves to the next slot byte (it arrives in `x_q` after two cycles of `x_wait`).
fn next_byte(x: &Ex) -> Vec<Stmt> {
    vec![x.ptr.inc(), x.wait.set_k(2), x.ready.set_k(0)]
}

/// The decode state: once `x_ready` says the decision in `x_act` is current, the one action.
fn decode(x: &Ex) -> Vec<Stmt> {
    let [p_kind, p_code, p_seq, p_len, p_op] = &x.reply;
    let mut start_image = vec![
        x.elem.set_k(0),
        x.elem_in_range.set_k(u64::from(x.g.input_len > 0)),
        x.elem_at_end.set_k(u64::from(x.g.elements == 0)),
        x.lane.set_k(0),
        x.state.set_k(X_IMG),
    ];
    if let Some((bit, _)) = &x.bit {
        start_image.push(bit.set_k(0));
    }
    let mut clear = vec![x.load_crc.set_k(CRC_INIT as u64), x.wseq_valid.set_k(0)];
    clear.extend(reply(x, K_CHECK, Code::Ok, 2));
    let mut refused = vec![
        p_kind.set_k(K_ERR),
        p_code.set(x.stat.e()),
        p_len.set_k(1),
        x.state.set_k(X_REPLY),
    ];
    refused.extend(free(x));
    let body = |a: Action| match a {
        Action::Refused => refused.clone(),
        Action::Ping => reply(x, K_PING, Code::Ok, PING_MAGIC.len()),
        Action::Info => reply(x, K_INFO, Code::Ok, Info::LEN),
        Action::Status => reply(x, K_STATUS, Code::Ok, bql_protocol::Status::LEN),
        Action::Clear => clear.clone(),
        Action::WriteBadLength | Action::InferBadLength => reply(x, K_ERR, Code::BadLength, 1),
        // A retransmitted WRITE: acknowledged, not executed twice.
        Action::WriteAgain => reply(x, K_CHECK, Code::Ok, 2),
        // Once no inference is in flight (the transmitter sends their results).
        Action::Write => vec![s::when(x.idle.e(), vec![x.state.set_k(X_WHDR)])],
        // Until a result slot is free (the transmitter empties one).
        Action::Infer => vec![s::when(x.push.e(), start_image.clone())],
        Action::BadOpcode => reply(x, K_ERR, Code::BadOpcode, 1),
    };
    let mut v = vec![p_seq.set(x.seq.e()), p_op.set(x.op.e())];
    // The actions are exclusive: independent `if`s, not a priority chain.
    v.extend(ACTIONS.iter().map(|&a| s::when(act(x, a), body(a))));
    vec![s::when(x.ready.e(), v)]
}

/// `WRITE` header: the selector (checked) and the first word's address. Every header byte moves
/// the pointer, a refused selector too (the pointer is not used after it), so that the
/// selector check stays out of the pointer's enable (the UP5K's critical path at 48 MHz).
fn write_header(x: &Ex) -> Vec<Stmt> {
    let crc_byte = x.crc_pending.set_k(1);
    let mut take = next_byte(x);
    take.extend(s::chain(
        vec![
            (
                // The header's three bytes: the pointer's low bits suffice.
                e::eq(x.ptr.slice(1, 0), e::k(2, 0)),
                vec![s::when_else(
                    x.sel_ok.e(),
                    vec![x.sel.set(x.buf_q.e()), crc_byte.clone()],
                    vec![x.state.set_k(X_BAD_SELECTOR)],
                )],
            ),
            (
                e::eq(x.ptr.slice(1, 0), e::k(2, 1)),
                vec![s::set(x.addr.slice(7, 0), x.buf_q.e()), crc_byte.clone()],
            ),
        ],
        [
            vec![s::set(x.addr.slice(15, 8), x.buf_q.e()), crc_byte],
            start_word(x),
            vec![x.state.set_k(X_WDATA)],
        ]
        .concat(),
    ));
    vec![s::when(x.ready.e(), take)]
}

/// The pulses of a `WRITE`, each lasting a cycle: a byte to the core, and the word's write a
/// cycle after its last byte; the address then moves to the next word, before that word's first
/// byte (bytes come three cycles apart at the least).
fn write_pulses(x: &Ex) -> Vec<Stmt> {
    vec![
        x.shift.set_k(0),
        x.word_done.set_k(0),
        x.we.set(x.word_done.e()),
        s::when(x.we.e(), vec![x.addr.inc()]),
    ]
}

/// `WRITE` data: the used bytes of each word to the core, a configuration write per whole
/// word.
fn write_data(x: &Ex) -> Vec<Stmt> {
    let wb = x.g.word_bytes;
    let mut done = vec![x.wseq.set(x.seq.e()), x.wseq_valid.set_k(1)];
    done.extend(reply(x, K_CHECK, Code::Ok, 2));
    let mut word_end = vec![x.word_done.set_k(1)];
    word_end.extend(start_word(x));
    let send = vec![
        x.shift.set_k(1),
        x.byte.set(x.buf_q.e()),
        x.index.set(x.wb.slice(x.index.width() - 1, 0)),
    ];
    let mut byte = vec![
        x.crc_pending.set_k(1),
        x.wb.inc(),
        s::when(x.wb.is((wb - 1) as u64), word_end),
    ];
    match &x.in_word {
        None => byte.extend(send),
        Some(in_word) => {
            let used = x.g.word_used_bytes;
            byte.push(s::when(in_word.e(), send));
            byte.push(s::when(x.wb.is((used - 1) as u64), vec![in_word.set_k(0)]));
        }
    }
    byte.extend(next_byte(x));
    s::chain(vec![(x.at_end.e(), done), (x.ready.e(), byte)], vec![])
}

/// A `WRITE` word begins: its byte counter, and whether its bytes are the memory word's.
fn start_word(x: &Ex) -> Vec<Stmt> {
    let mut v = vec![x.wb.set_k(0)];
    v.extend(x.in_word.iter().map(|w| w.set_k(1)));
    v
}

/// Image streaming: one element (bit or pixel) per step into the beat register; a full beat
/// waits for the core.
fn image(x: &Ex, core_in_ready: &Sig) -> Vec<Stmt> {
    let g = &x.g;
    let kk = g.pixels_per_beat;
    let ew = g.elem_width;
    let beat_w = kk * ew;
    let in_range = x.elem_in_range.e();
    // After this step the counter holds elem + 1.
    let count = vec![
        x.elem.inc(),
        x.elem_in_range.set(e::and(
            x.elem_in_range.e(),
            e::lnot(x.elem.is(g.input_len.saturating_sub(1) as u64)),
        )),
        x.elem_at_end
            .set(x.elem.is(g.elements.saturating_sub(1) as u64)),
    ];
    let shift_in = |elem: Expr| -> Expr {
        if beat_w == ew {
            elem
        } else {
            Expr::Concat(vec![elem, x.beat.slice(beat_w - 1, ew)])
        }
    };
    let advance = |elem: Expr| -> Vec<Stmt> {
        let mut v = vec![x.beat.set(shift_in(elem))];
        v.extend(count.clone());
        v.push(s::when_else(
            x.lane.is((kk - 1) as u64),
            vec![x.lane.set_k(0), x.beat_valid.set_k(1)],
            vec![x.lane.inc()],
        ));
        v
    };
    let fill = match &x.bit {
        Some((bit, byte)) => {
            let mut first = vec![
                byte.set(Expr::Concat(vec![e::k(1, 0), x.buf_q.slice(7, 1)])),
                bit.inc(),
            ];
            first.extend(next_byte(x));
            first.extend(advance(e::bin(
                crate::ir::BinOp::And,
                x.buf_q.bit(0),
                in_range.clone(),
            )));
            let mut rest = vec![
                byte.set(Expr::Concat(vec![e::k(1, 0), byte.slice(7, 1)])),
                bit.inc(),
            ];
            rest.extend(advance(e::bin(
                crate::ir::BinOp::And,
                byte.bit(0),
                in_range,
            )));
            vec![s::when_else(
                bit.is(0),
                vec![s::when(x.ready.e(), first)],
                rest,
            )]
        }
        None => {
            let mut step = next_byte(x);
            step.extend(advance(e::mux(in_range, x.buf_q.e(), e::k(8, 0))));
            vec![s::when(x.ready.e(), step)]
        }
    };
    let mut image_done = vec![x.state.set_k(X_IDLE)];
    image_done.extend(free(x));
    vec![s::when_else(
        x.beat_valid.e(),
        vec![s::when(
            core_in_ready.e(),
            vec![
                x.beat_valid.set_k(0),
                s::when(x.elem_at_end.e(), image_done),
            ],
        )],
        fill,
    )]
}
