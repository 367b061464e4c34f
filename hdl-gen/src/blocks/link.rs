//! `bql_top`: the board-level top. Power-on reset, UART receiver and transmitter, the framed
//! command protocol of `docs/protocol.md` (constants and CRC from `bql_protocol`), a receive
//! buffer of two frame slots in block RAM, a command executor that writes memory words through
//! the core's configuration port and streams images into the core, and a transmitter that
//! frames replies and results.
//!
//! Three state machines share the frame slots:
//! - the **receiver** parses request frames byte by byte, stores the payload in the free slot,
//!   checks the CRC and marks the slot full with its descriptor (opcode, sequence number,
//!   length, verdict); a frame that finds both slots full is dropped and counted;
//! - the **executor** takes full slots in order; a command executes only when its frame
//!   checked; a `WRITE` updates the load checksum and is skipped when it repeats the sequence
//!   number of the last executed `WRITE` (a retransmission);
//! - the **transmitter** sends one frame at a time, results first; a result is taken from the
//!   core only when its last byte has gone out.

use bql_model::InputEncoding;
use bql_protocol::{Code, Info, Op, CRC_INIT, MAX_IN_FLIGHT, PING_MAGIC, SYNC_REQUEST};

use crate::blocks::core::CoreInterface;
use crate::ir::bits_for;
use crate::ir::{e, s, Expr, Item, Module, Stmt};

/// Constants of a generated top level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkParams {
    /// Clocks per UART bit.
    pub divisor: usize,
    /// What the design answers to `INFO`.
    pub info: Info,
    /// Elements per image (pixels).
    pub input_len: usize,
    /// The input is packed bits (binary encoding) rather than bytes.
    pub binary_input: bool,
    /// Memory selectors that exist.
    pub valid_sels: Vec<usize>,
    /// The board's LEDs light on a low level.
    pub led_active_low: bool,
    /// The clock comes from a PLL: `bql_top` gets a `clk_locked` input and holds its power-on
    /// reset until the PLL has locked.
    pub clk_locked_port: bool,
}

/// Bytes per score in a result: enough for the score width, plus a sign bit of room when
/// unsigned, so that the host can always sign-extend.
pub fn score_bytes(ifc: &CoreInterface) -> usize {
    (ifc.score_width + usize::from(!ifc.scores_signed)).div_ceil(8)
}

/// Bytes of one image in an `INFER` payload.
pub fn image_bytes(input_len: usize, encoding: InputEncoding) -> usize {
    match encoding {
        InputEncoding::Binary { .. } => input_len.div_ceil(8),
        InputEncoding::U8 => input_len,
    }
}

/// The frame-slot size for a design: a power of two that holds an image and a `WRITE` of at
/// least one word (and at least 16 bytes).
pub fn slot_bytes(image_bytes: usize, word_bytes: usize) -> usize {
    image_bytes.max(3 + word_bytes).max(16).next_power_of_two()
}

/// Bytes per memory word in a `WRITE`: the configuration data width, rounded up to a power of
/// two bytes so that the executor checks the payload length with a mask.
pub fn word_bytes(ifc: &CoreInterface) -> usize {
    ifc.cfg_data_width.div_ceil(8).next_power_of_two()
}

// Receiver states.
const R_HUNT: u64 = 0;
const R_OP: u64 = 1;
const R_SEQ: u64 = 2;
const R_LEN0: u64 = 3;
const R_LEN1: u64 = 4;
const R_PAY: u64 = 5;
const R_CRC0: u64 = 6;
const R_CRC1: u64 = 7;
// Executor states.
const X_IDLE: u64 = 0;
const X_DECODE: u64 = 1;
const X_REPLY: u64 = 2;
const X_WHDR: u64 = 3;
const X_WDATA: u64 = 4;
const X_IMG: u64 = 5;
// Reply kinds (what the payload bytes come from).
const K_PING: u64 = 0;
const K_INFO: u64 = 1;
const K_STATUS: u64 = 2;
const K_CHECK: u64 = 3;
const K_ERR: u64 = 4;
const K_RESULT: u64 = 5;

fn r(n: &str) -> Expr {
    e::r(n)
}
fn k(w: usize, v: u64) -> Expr {
    e::k(w, v)
}
fn set(n: &str, v: Expr) -> Stmt {
    s::set_r(n, v)
}
fn is(n: &str, w: usize, v: u64) -> Expr {
    e::eq(r(n), k(w, v))
}
fn inc(n: &str, w: usize) -> Stmt {
    set(n, e::add(r(n), k(w, 1)))
}
/// Saturating 8-bit counter increment.
fn sat_inc(n: &str) -> Stmt {
    s::when(e::ne(r(n), k(8, 255)), vec![inc(n, 8)])
}

/// A constant byte string as a flat vector, byte 0 in the low bits, zero-padded to `bytes`.
fn const_flat(data: &[u8], bytes: usize) -> Expr {
    Expr::Concat(
        (0..bytes)
            .rev()
            .map(|i| k(8, data.get(i).copied().unwrap_or(0) as u64))
            .collect(),
    )
}

/// Builds `bql_top` around `bql_core`.
pub fn module(p: &LinkParams, ifc: &CoreInterface, header: &[String]) -> Module {
    let info = &p.info;
    let slot = info.max_payload as usize;
    let sb_bits = bits_for(slot - 1);
    let img = info.image_bytes as usize;
    let wb = info.word_bytes as usize;
    let sbytes = info.score_bytes as usize;
    let rb = info.result_bytes();
    // Payload index bits the transmitter uses: enough for the largest reply.
    let pw = bits_for(rb.max(Info::LEN).next_power_of_two() - 1);
    let kk = ifc.pixels_per_beat;
    let elems = ifc.beats * kk;
    // One input element: a bit of a packed binary image, or an 8-bit pixel.
    let ew = if p.binary_input { 1 } else { 8 };
    let beat_w = kk * ew;
    let kw = bits_for(kk.max(2) - 1);
    let fifo_bits = bits_for(MAX_IN_FLIGHT - 1);
    let timeout = 10_240 * p.divisor;
    let tw = bits_for(timeout);
    let classes = info.classes as usize;

    let mut m = Module::new("bql_top");
    m.doc.extend(header.iter().cloned());
    m.doc.push(format!(
        "bql_top: UART ({} clocks per bit) + framed protocol v{} + bql_core.",
        p.divisor,
        bql_protocol::VERSION
    ));
    m.doc.push(format!(
        "INFO: arch hash {:016x}, {img} bytes per image, {classes} classes x {sbytes} bytes, \
         {wb}-byte words, {slot}-byte slots.",
        info.arch_hash
    ));
    m.input("clk", 1);
    if p.clk_locked_port {
        m.input("clk_locked", 1);
    }
    m.input("uart_rx", 1);
    m.output("uart_tx", 1);
    m.output("led_red", 1);
    m.output("led_green", 1);

    // Power-on reset: the flip-flops start at zero after configuration; 255 cycles of reset
    // (counted from the PLL's lock when the clock comes from one).
    m.push(Item::Comment("power-on reset".into()));
    m.push(Item::RegInit("por_count".into(), 8, 0));
    m.wire("por_busy", 1, e::ne(r("por_count"), k(8, 255)));
    // The reset itself is a register (on from configuration): its fan-out reaches every
    // block, and the counter's compare in front of it was on the critical path.
    m.push(Item::RegInit("rst".into(), 1, 1));
    let count = vec![
        set("rst", r("por_busy")),
        s::when(r("por_busy"), vec![inc("por_count", 8)]),
    ];
    m.push(Item::Always(
        "clk".into(),
        if p.clk_locked_port {
            vec![Stmt::If(
                e::lnot(r("clk_locked")),
                vec![set("por_count", k(8, 0)), set("rst", k(1, 1))],
                count,
            )]
        } else {
            count
        },
    ));

    m.push(Item::Comment("UART".into()));
    m.push(Item::Wire("rx_valid".into(), 1));
    m.push(Item::Wire("rx_data".into(), 8));
    m.push(Item::Instance {
        module: format!("uart_rx_d{}", p.divisor),
        name: "receiver".into(),
        conns: vec![
            ("clk".into(), r("clk")),
            ("rst".into(), r("rst")),
            ("rx".into(), r("uart_rx")),
            ("out_valid".into(), r("rx_valid")),
            ("out_data".into(), r("rx_data")),
        ],
    });
    m.push(Item::Wire("utx_ready".into(), 1));
    // The byte to send is registered (`t_byte`, valid with `t_byte_ok` a cycle after the index
    // moves): the reply's byte multiplexers and the CRC step were the design's critical path.
    m.push(Item::Reg("t_byte".into(), 8));
    m.push(Item::Reg("t_byte_ok".into(), 1));
    m.push(Item::Reg("t_active".into(), 1));
    m.push(Item::Wire("t_send".into(), 1));
    m.push(Item::Instance {
        module: format!("uart_tx_d{}", p.divisor),
        name: "transmitter".into(),
        conns: vec![
            ("clk".into(), r("clk")),
            ("rst".into(), r("rst")),
            ("in_valid".into(), r("t_send")),
            ("in_ready".into(), r("utx_ready")),
            ("in_data".into(), r("t_byte")),
            ("tx".into(), r("uart_tx")),
        ],
    });

    // ---------------------------------------------------------------- receiver
    m.push(Item::Comment(format!(
        "receiver: request frames into two {slot}-byte slots"
    )));
    for (n, w) in [
        ("r_state", 3),
        ("r_op", 8),
        ("r_seq", 8),
        ("r_len", 16),
        ("r_idx", 16),
        ("r_crc", 16),
        ("r_crc_lo", 8),
        ("r_drop", 1),
        ("r_timer", tw),
        ("w_slot", 1),
        ("crc_errors", 8),
        ("overflows", 8),
        ("timeouts", 8),
    ] {
        m.reg(n, w);
    }
    for i in 0..2 {
        m.reg(&format!("s_full{i}"), 1);
        m.reg(&format!("s_op{i}"), 8);
        m.reg(&format!("s_seq{i}"), 8);
        m.reg(&format!("s_len{i}"), 16);
        m.reg(&format!("s_stat{i}"), 8);
    }
    m.push(Item::Memory {
        name: "frame_buf".into(),
        width: 8,
        depth: 2 * slot,
        init: None,
        block_ram: false,
    });
    m.push(Item::Wire("r_crc_next".into(), 16));
    m.push(Item::Instance {
        module: "crc16_ccitt_step".into(),
        name: "rx_crc".into(),
        conns: vec![
            ("crc_in".into(), r("r_crc")),
            ("data".into(), r("rx_data")),
            ("crc_out".into(), r("r_crc_next")),
        ],
    });
    m.wire(
        "r_crc_ok",
        1,
        e::eq(Expr::Concat(vec![r("rx_data"), r("r_crc_lo")]), r("r_crc")),
    );
    m.wire("w_full", 1, e::mux(r("w_slot"), r("s_full1"), r("s_full0")));
    m.wire(
        "rx_commit",
        1,
        e::and(
            e::and(r("rx_valid"), is("r_state", 3, R_CRC1)),
            e::lnot(r("r_drop")),
        ),
    );
    m.wire(
        "r_verdict",
        8,
        e::mux(
            e::lnot(r("r_crc_ok")),
            k(8, Code::BadCrc as u64),
            e::mux(
                e::bin(crate::ir::BinOp::Gt, r("r_len"), k(16, slot as u64)),
                k(8, Code::BadLength as u64),
                k(8, Code::Ok as u64),
            ),
        ),
    );
    let byte_crc = set("r_crc", r("r_crc_next"));
    let on_byte = s::chain(
        vec![
            (
                is("r_state", 3, R_HUNT),
                vec![s::when(
                    e::eq(r("rx_data"), k(8, SYNC_REQUEST as u64)),
                    vec![
                        set("r_state", k(3, R_OP)),
                        set("r_crc", k(16, CRC_INIT as u64)),
                        set("r_drop", r("w_full")),
                    ],
                )],
            ),
            (
                is("r_state", 3, R_OP),
                vec![
                    set("r_op", r("rx_data")),
                    byte_crc.clone(),
                    set("r_state", k(3, R_SEQ)),
                ],
            ),
            (
                is("r_state", 3, R_SEQ),
                vec![
                    set("r_seq", r("rx_data")),
                    byte_crc.clone(),
                    set("r_state", k(3, R_LEN0)),
                ],
            ),
            (
                is("r_state", 3, R_LEN0),
                vec![
                    s::set(e::sl("r_len", 7, 0), r("rx_data")),
                    byte_crc.clone(),
                    set("r_state", k(3, R_LEN1)),
                ],
            ),
            (
                is("r_state", 3, R_LEN1),
                vec![
                    s::set(e::sl("r_len", 15, 8), r("rx_data")),
                    byte_crc.clone(),
                    set("r_idx", k(16, 0)),
                    s::when_else(
                        e::and(
                            e::eq(r("rx_data"), k(8, 0)),
                            e::eq(e::sl("r_len", 7, 0), k(8, 0)),
                        ),
                        vec![set("r_state", k(3, R_CRC0))],
                        vec![set("r_state", k(3, R_PAY))],
                    ),
                ],
            ),
            (
                is("r_state", 3, R_PAY),
                vec![
                    byte_crc,
                    s::when(
                        e::and(e::lnot(r("r_drop")), e::lt(r("r_idx"), k(16, slot as u64))),
                        vec![Stmt::MemWrite(
                            "frame_buf".into(),
                            Expr::Concat(vec![r("w_slot"), e::sl("r_idx", sb_bits - 1, 0)]),
                            r("rx_data"),
                        )],
                    ),
                    inc("r_idx", 16),
                    s::when(
                        e::eq(r("r_idx"), e::sub(r("r_len"), k(16, 1))),
                        vec![set("r_state", k(3, R_CRC0))],
                    ),
                ],
            ),
            (
                is("r_state", 3, R_CRC0),
                vec![set("r_crc_lo", r("rx_data")), set("r_state", k(3, R_CRC1))],
            ),
        ],
        // R_CRC1: the frame is complete.
        {
            let mut v = vec![
                set("r_state", k(3, R_HUNT)),
                s::when(e::lnot(r("r_crc_ok")), vec![sat_inc("crc_errors")]),
                s::when(r("r_drop"), vec![sat_inc("overflows")]),
                s::when(e::lnot(r("r_drop")), vec![inc("w_slot", 1)]),
            ];
            for i in 0..2u64 {
                v.push(s::when(
                    e::and(e::lnot(r("r_drop")), is("w_slot", 1, i)),
                    vec![
                        set(&format!("s_op{i}"), r("r_op")),
                        set(&format!("s_seq{i}"), r("r_seq")),
                        set(&format!("s_len{i}"), r("r_len")),
                        set(&format!("s_stat{i}"), r("r_verdict")),
                    ],
                ));
            }
            v
        },
    );
    m.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            r("rst"),
            vec![
                set("r_state", k(3, R_HUNT)),
                set("r_timer", k(tw, 0)),
                set("w_slot", k(1, 0)),
                set("crc_errors", k(8, 0)),
                set("overflows", k(8, 0)),
                set("timeouts", k(8, 0)),
            ],
            vec![
                s::when_else(
                    e::or(r("rx_valid"), is("r_state", 3, R_HUNT)),
                    vec![set("r_timer", k(tw, 0))],
                    vec![inc("r_timer", tw)],
                ),
                s::when_else(
                    r("rx_valid"),
                    on_byte,
                    // A frame that stops in the middle is abandoned after a long silence.
                    vec![s::when(
                        e::eq(r("r_timer"), k(tw, timeout as u64)),
                        vec![set("r_state", k(3, R_HUNT)), sat_inc("timeouts")],
                    )],
                ),
            ],
        )],
    ));

    // ---------------------------------------------------------------- executor
    m.push(Item::Comment(
        "executor: runs the slots in order; reads the frame buffer one byte per two cycles".into(),
    ));
    for (n, w) in [
        ("x_state", 3),
        ("x_slot", 1),
        ("x_ptr", 16),
        ("x_wait", 1),
        ("buf_q", 8),
        ("p_kind", 3),
        ("p_code", 8),
        ("p_seq", 8),
        ("p_len", 16),
        ("p_op", 8),
        ("x_sel", 8),
        ("x_addr", 16),
        ("x_word", wb * 8),
        ("x_wb", bits_for(wb.max(2) - 1)),
        ("x_we", 1),
        ("load_crc", 16),
        ("wseq", 8),
        ("wseq_valid", 1),
        ("x_e", 16),
        ("x_k", kw),
        ("x_bit", 3),
        ("x_byte", 8),
        ("beat", beat_w),
        ("beat_valid", 1),
    ] {
        // The bit unpacker exists only for packed binary inputs.
        if p.binary_input || !matches!(n, "x_bit" | "x_byte") {
            m.reg(n, w);
        }
    }
    // The current slot's descriptor, registered (with its length checks): the executor reads
    // it only from the decode state on, at least a cycle after the slot or its contents last
    // changed, and the slot multiplexer and 16-bit compares were on the critical path.
    let mut descriptor = Vec::new();
    for (n, w) in [("op", 8), ("seq", 8), ("len", 16), ("stat", 8)] {
        let sel = format!("x_{n}_sel");
        m.wire(
            &sel,
            w,
            e::mux(r("x_slot"), r(&format!("s_{n}1")), r(&format!("s_{n}0"))),
        );
        m.reg(&format!("x_{n}"), w);
        descriptor.push(set(&format!("x_{n}"), r(&sel)));
    }
    m.reg("x_len_img", 1);
    m.reg("x_write_len_ok", 1);
    descriptor.push(set("x_len_img", is("x_len_sel", 16, img as u64)));
    descriptor.push(set(
        "x_write_len_ok",
        if wb == 1 {
            e::lnot(e::lt(r("x_len_sel"), k(16, 3)))
        } else {
            e::and(
                e::lnot(e::lt(r("x_len_sel"), k(16, 3))),
                // (len - 3) % wb == 0, wb a power of two.
                e::eq(
                    e::sl("x_len_sel", bits_for(wb - 1) - 1, 0),
                    k(bits_for(wb - 1), (3 % wb) as u64),
                ),
            )
        },
    ));
    m.push(Item::Always("clk".into(), descriptor));
    m.wire("x_full", 1, e::mux(r("x_slot"), r("s_full1"), r("s_full0")));
    m.push(Item::Always(
        "clk".into(),
        vec![set(
            "buf_q",
            Expr::MemRead(
                "frame_buf".into(),
                Box::new(Expr::Concat(vec![
                    r("x_slot"),
                    e::sl("x_ptr", sb_bits - 1, 0),
                ])),
            ),
        )],
    ));
    m.push(Item::Wire("load_crc_next".into(), 16));
    m.push(Item::Instance {
        module: "crc16_ccitt_step".into(),
        name: "load_crc_step".into(),
        conns: vec![
            ("crc_in".into(), r("load_crc")),
            ("data".into(), r("buf_q")),
            ("crc_out".into(), r("load_crc_next")),
        ],
    });
    m.push(Item::Reg("inflight".into(), fifo_bits + 1));
    let sel_ok = p
        .valid_sels
        .iter()
        .map(|&v| e::eq(r("buf_q"), k(8, v as u64)))
        .reduce(e::or)
        .unwrap_or(k(1, 0));
    m.wire("x_sel_ok", 1, sel_ok);
    m.wire(
        "x_push",
        1,
        e::and(
            e::and(is("x_state", 3, X_DECODE), is("x_stat", 8, Code::Ok as u64)),
            e::and(
                is("x_op", 8, Op::Infer as u64),
                e::and(
                    r("x_len_img"),
                    e::ne(r("inflight"), k(fifo_bits + 1, MAX_IN_FLIGHT as u64)),
                ),
            ),
        ),
    );
    // Freeing a slot: clear its full flag and move to the other one.
    let free = || -> Vec<Stmt> {
        vec![
            s::when_else(
                r("x_slot"),
                vec![set("s_full1", k(1, 0))],
                vec![set("s_full0", k(1, 0))],
            ),
            inc("x_slot", 1),
        ]
    };
    let reply = |kind: u64, code: Code, len: usize| -> Vec<Stmt> {
        let mut v = vec![
            set("p_kind", k(3, kind)),
            set("p_code", k(8, code as u64)),
            set("p_len", k(16, len as u64)),
            set("x_state", k(3, X_REPLY)),
        ];
        v.extend(free());
        v
    };
    let next_byte = || vec![inc("x_ptr", 16), set("x_wait", k(1, 1))];
    let crc_byte = set("load_crc", r("load_crc_next"));

    let decode = {
        let write = s::chain(
            vec![
                (
                    e::lnot(r("x_write_len_ok")),
                    reply(K_ERR, Code::BadLength, 1),
                ),
                (
                    e::and(r("wseq_valid"), e::eq(r("wseq"), r("x_seq"))),
                    // A retransmitted WRITE: acknowledged, not executed twice.
                    reply(K_CHECK, Code::Ok, 2),
                ),
            ],
            vec![set("x_state", k(3, X_WHDR))],
        );
        let infer = s::chain(
            vec![
                (e::lnot(r("x_len_img")), reply(K_ERR, Code::BadLength, 1)),
                (
                    r("x_push"),
                    vec![
                        set("x_e", k(16, 0)),
                        set("x_k", k(kw, 0)),
                        set("x_state", k(3, X_IMG)),
                    ]
                    .into_iter()
                    .chain(p.binary_input.then(|| set("x_bit", k(3, 0))))
                    .collect(),
                ),
            ],
            // Every result slot is taken: wait for the transmitter.
            vec![],
        );
        let mut clear = vec![
            set("load_crc", k(16, CRC_INIT as u64)),
            set("wseq_valid", k(1, 0)),
        ];
        clear.extend(reply(K_CHECK, Code::Ok, 2));
        let mut v = vec![set("p_seq", r("x_seq")), set("p_op", r("x_op"))];
        v.extend(s::chain(
            vec![
                (
                    e::ne(r("x_stat"), k(8, Code::Ok as u64)),
                    vec![
                        set("p_kind", k(3, K_ERR)),
                        set("p_code", r("x_stat")),
                        set("p_len", k(16, 1)),
                        set("x_state", k(3, X_REPLY)),
                    ]
                    .into_iter()
                    .chain(free())
                    .collect(),
                ),
                (
                    is("x_op", 8, Op::Ping as u64),
                    reply(K_PING, Code::Ok, PING_MAGIC.len()),
                ),
                (
                    is("x_op", 8, Op::Info as u64),
                    reply(K_INFO, Code::Ok, Info::LEN),
                ),
                (
                    is("x_op", 8, Op::Status as u64),
                    reply(K_STATUS, Code::Ok, bql_protocol::Status::LEN),
                ),
                (is("x_op", 8, Op::Clear as u64), clear),
                (is("x_op", 8, Op::Write as u64), write),
                (is("x_op", 8, Op::Infer as u64), infer),
            ],
            reply(K_ERR, Code::BadOpcode, 1),
        ));
        v
    };

    let whdr = vec![s::when(
        e::lnot(r("x_wait")),
        s::chain(
            vec![
                (
                    is("x_ptr", 16, 0),
                    vec![s::when_else(
                        r("x_sel_ok"),
                        [set("x_sel", r("buf_q")), crc_byte.clone()]
                            .into_iter()
                            .chain(next_byte())
                            .collect(),
                        reply(K_ERR, Code::BadArgument, 1),
                    )],
                ),
                (
                    is("x_ptr", 16, 1),
                    [s::set(e::sl("x_addr", 7, 0), r("buf_q")), crc_byte.clone()]
                        .into_iter()
                        .chain(next_byte())
                        .collect(),
                ),
            ],
            [
                s::set(e::sl("x_addr", 15, 8), r("buf_q")),
                crc_byte.clone(),
                set("x_wb", k(bits_for(wb.max(2) - 1), 0)),
                set("x_state", k(3, X_WDATA)),
            ]
            .into_iter()
            .chain(next_byte())
            .collect(),
        ),
    )];

    let wbw = bits_for(wb.max(2) - 1);
    let shifted_word = if wb == 1 {
        r("buf_q")
    } else {
        Expr::Concat(vec![r("buf_q"), e::sl("x_word", wb * 8 - 1, 8)])
    };
    let wdata = s::chain(
        vec![
            (r("x_we"), vec![set("x_we", k(1, 0)), inc("x_addr", 16)]),
            (
                e::eq(r("x_ptr"), r("x_len")),
                [set("wseq", r("x_seq")), set("wseq_valid", k(1, 1))]
                    .into_iter()
                    .chain(reply(K_CHECK, Code::Ok, 2))
                    .collect(),
            ),
            (
                e::lnot(r("x_wait")),
                [
                    set("x_word", shifted_word),
                    crc_byte,
                    inc("x_wb", wbw),
                    s::when(
                        is("x_wb", wbw, (wb - 1) as u64),
                        vec![set("x_we", k(1, 1)), set("x_wb", k(wbw, 0))],
                    ),
                ]
                .into_iter()
                .chain(next_byte())
                .collect(),
            ),
        ],
        vec![],
    );

    // Image streaming: one element (bit or pixel) per step into the beat register.
    let in_range = e::lt(r("x_e"), k(16, p.input_len as u64));
    let shift_in = |elem: Expr| -> Expr {
        if beat_w == ew {
            elem
        } else {
            Expr::Concat(vec![elem, e::sl("beat", beat_w - 1, ew)])
        }
    };
    let advance = |elem: Expr| -> Vec<Stmt> {
        vec![
            set("beat", shift_in(elem)),
            inc("x_e", 16),
            s::when_else(
                is("x_k", kw, (kk - 1) as u64),
                vec![set("x_k", k(kw, 0)), set("beat_valid", k(1, 1))],
                vec![inc("x_k", kw)],
            ),
        ]
    };
    let fill = if p.binary_input {
        vec![s::when_else(
            is("x_bit", 3, 0),
            vec![s::when(
                e::lnot(r("x_wait")),
                [
                    set("x_byte", Expr::Concat(vec![k(1, 0), e::sl("buf_q", 7, 1)])),
                    inc("x_bit", 3),
                ]
                .into_iter()
                .chain(next_byte())
                .chain(advance(e::bin(
                    crate::ir::BinOp::And,
                    e::bit("buf_q", 0),
                    in_range.clone(),
                )))
                .collect(),
            )],
            [
                set("x_byte", Expr::Concat(vec![k(1, 0), e::sl("x_byte", 7, 1)])),
                inc("x_bit", 3),
            ]
            .into_iter()
            .chain(advance(e::bin(
                crate::ir::BinOp::And,
                e::bit("x_byte", 0),
                in_range,
            )))
            .collect(),
        )]
    } else {
        vec![s::when(
            e::lnot(r("x_wait")),
            next_byte()
                .into_iter()
                .chain(advance(e::mux(in_range, r("buf_q"), k(8, 0))))
                .collect(),
        )]
    };
    m.push(Item::Wire("core_in_ready".into(), 1));
    let img_state = vec![s::when_else(
        r("beat_valid"),
        vec![s::when(
            r("core_in_ready"),
            [set("beat_valid", k(1, 0))]
                .into_iter()
                .chain([s::when(
                    e::eq(r("x_e"), k(16, elems as u64)),
                    [set("x_state", k(3, X_IDLE))]
                        .into_iter()
                        .chain(free())
                        .collect(),
                )])
                .collect(),
        )],
        fill,
    )];

    m.wire(
        "start_reply",
        1,
        e::and(
            is("x_state", 3, X_REPLY),
            e::and(e::lnot(r("t_active")), e::lnot(r("core_out_valid"))),
        ),
    );
    m.push(Item::Wire("core_out_valid".into(), 1));
    let mut ex = vec![set("x_wait", k(1, 0))];
    for i in 0..2u64 {
        ex.push(s::when(
            e::and(r("rx_commit"), is("w_slot", 1, i)),
            vec![set(&format!("s_full{i}"), k(1, 1))],
        ));
    }
    ex.extend(s::chain(
        vec![
            (
                is("x_state", 3, X_IDLE),
                vec![
                    set("x_ptr", k(16, 0)),
                    set("x_wait", k(1, 1)),
                    s::when(r("x_full"), vec![set("x_state", k(3, X_DECODE))]),
                ],
            ),
            (is("x_state", 3, X_DECODE), decode),
            (
                is("x_state", 3, X_REPLY),
                vec![s::when(
                    r("start_reply"),
                    vec![set("x_state", k(3, X_IDLE))],
                )],
            ),
            (is("x_state", 3, X_WHDR), whdr),
            (is("x_state", 3, X_WDATA), wdata),
        ],
        img_state,
    ));
    m.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            r("rst"),
            vec![
                set("x_state", k(3, X_IDLE)),
                set("x_slot", k(1, 0)),
                set("s_full0", k(1, 0)),
                set("s_full1", k(1, 0)),
                set("x_we", k(1, 0)),
                set("beat_valid", k(1, 0)),
                set("load_crc", k(16, CRC_INIT as u64)),
                set("wseq_valid", k(1, 0)),
            ],
            ex,
        )],
    ));

    // ---------------------------------------------------------------- results in flight
    m.push(Item::Comment(format!(
        "sequence numbers of up to {MAX_IN_FLIGHT} inferences in flight"
    )));
    m.push(Item::Memory {
        name: "seq_fifo".into(),
        width: 8,
        depth: MAX_IN_FLIGHT,
        init: None,
        block_ram: false,
    });
    m.reg("fifo_wp", fifo_bits);
    m.reg("fifo_rp", fifo_bits);
    m.push(Item::Wire("t_pop".into(), 1));
    m.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            r("rst"),
            vec![
                set("fifo_wp", k(fifo_bits, 0)),
                set("fifo_rp", k(fifo_bits, 0)),
                set("inflight", k(fifo_bits + 1, 0)),
            ],
            vec![
                s::when(
                    r("x_push"),
                    vec![
                        Stmt::MemWrite("seq_fifo".into(), r("fifo_wp"), r("x_seq")),
                        inc("fifo_wp", fifo_bits),
                    ],
                ),
                s::when(r("t_pop"), vec![inc("fifo_rp", fifo_bits)]),
                s::when(
                    e::and(r("x_push"), e::lnot(r("t_pop"))),
                    vec![inc("inflight", fifo_bits + 1)],
                ),
                s::when(
                    e::and(e::lnot(r("x_push")), r("t_pop")),
                    vec![set("inflight", e::sub(r("inflight"), k(fifo_bits + 1, 1)))],
                ),
            ],
        )],
    ));

    // ---------------------------------------------------------------- core
    m.push(Item::Comment("the accelerator".into()));
    m.push(Item::Wire("core_out_class".into(), ifc.class_width));
    m.push(Item::Wire(
        "core_out_scores".into(),
        classes * ifc.score_width,
    ));
    m.push(Item::Wire("core_out_ready".into(), 1));
    let pixels = if p.binary_input {
        // A bit b becomes the pixel 0xFF or 0x00; the core's loader compares it with the
        // model's input threshold (a value 1..=255, or 0 when every bit is 1), which gives b
        // back: the host binarizes, the core's comparison becomes a wire after synthesis.
        Expr::Concat(
            (0..kk)
                .rev()
                .map(|j| Expr::Repl(8, Box::new(e::bit("beat", j))))
                .collect(),
        )
    } else {
        r("beat")
    };
    m.wire("core_in_pixels", kk * 8, pixels);
    m.push(Item::Instance {
        module: "bql_core".into(),
        name: "core".into(),
        conns: vec![
            ("clk".into(), r("clk")),
            ("rst".into(), r("rst")),
            ("in_valid".into(), r("beat_valid")),
            ("in_ready".into(), r("core_in_ready")),
            ("in_pixels".into(), r("core_in_pixels")),
            ("out_valid".into(), r("core_out_valid")),
            ("out_ready".into(), r("core_out_ready")),
            ("out_class".into(), r("core_out_class")),
            ("out_scores".into(), r("core_out_scores")),
            ("cfg_we".into(), r("x_we")),
            ("cfg_sel".into(), e::sl("x_sel", ifc.cfg_sel_width - 1, 0)),
            (
                "cfg_addr".into(),
                e::sl("x_addr", ifc.cfg_addr_width - 1, 0),
            ),
            (
                "cfg_data".into(),
                e::sl("x_word", ifc.cfg_data_width - 1, 0),
            ),
        ],
    });
    if ifc.cfg_sel_width < 8 || ifc.cfg_addr_width < 16 {
        // The high bits of the selector and address registers are checked, not wired.
        let mut parts = Vec::new();
        if ifc.cfg_sel_width < 8 {
            parts.push(e::sl("x_sel", 7, ifc.cfg_sel_width));
        }
        if ifc.cfg_addr_width < 16 {
            parts.push(e::sl("x_addr", 15, ifc.cfg_addr_width));
        }
        if ifc.cfg_data_width < wb * 8 {
            parts.push(e::sl("x_word", wb * 8 - 1, ifc.cfg_data_width));
        }
        let w = (8 - ifc.cfg_sel_width) + (16 - ifc.cfg_addr_width) + (wb * 8 - ifc.cfg_data_width);
        m.wire("unused_cfg_bits", w, Expr::Concat(parts));
    } else if ifc.cfg_data_width < wb * 8 {
        m.wire(
            "unused_cfg_bits",
            wb * 8 - ifc.cfg_data_width,
            e::sl("x_word", wb * 8 - 1, ifc.cfg_data_width),
        );
    }

    // ---------------------------------------------------------------- transmitter
    m.push(Item::Comment(
        "transmitter: one response frame at a time, results first".into(),
    ));
    for (n, w) in [
        ("t_kind", 3),
        ("t_code", 8),
        ("t_seq", 8),
        ("t_len", 16),
        ("t_op", 8),
        ("t_idx", 16),
        ("t_pidx", 16),
        ("t_crc_at", 16),
        ("t_end", 16),
        ("t_crc", 16),
        ("results", 16),
        ("led_toggle", 1),
    ] {
        m.reg(n, w);
    }
    // Frame positions: header 0..=4, payload 5.., CRC at `t_crc_at` (low byte) and `t_end`.
    m.push(Item::Assign(
        r("t_send"),
        e::and(r("t_active"), r("t_byte_ok")),
    ));
    m.wire("t_fire", 1, e::and(r("t_send"), r("utx_ready")));
    m.wire(
        "t_last",
        1,
        e::and(r("t_fire"), e::eq(r("t_idx"), r("t_end"))),
    );
    m.push(Item::Assign(
        r("t_pop"),
        e::and(r("t_last"), is("t_kind", 3, K_RESULT)),
    ));
    m.push(Item::Assign(r("core_out_ready"), r("t_pop")));
    m.wire(
        "start_result",
        1,
        e::and(r("core_out_valid"), e::lnot(r("t_active"))),
    );
    // Payload sources, each a flat vector (byte 0 lowest) of a power-of-two number of bytes,
    // indexed by the payload position; then one byte mux by reply kind. (Muxing whole padded
    // vectors first cost about 600 LUT4 on iCE40.)
    let mut source = |name: &str, parts: Vec<Expr>, used_bits: usize| -> Expr {
        let bytes = used_bits.div_ceil(8).max(1).next_power_of_two();
        let mut all = Vec::new();
        if bytes * 8 > used_bits {
            all.push(k(bytes * 8 - used_bits, 0));
        }
        all.extend(parts);
        let flat = format!("{name}_flat");
        m.wire(&flat, bytes * 8, Expr::Concat(all));
        if bytes == 1 {
            return r(&flat);
        }
        let ib = bits_for(bytes - 1);
        let byte = format!("{name}_byte");
        m.wire(
            &byte,
            8,
            Expr::PartSelect(
                flat,
                Box::new(Expr::Concat(vec![e::sl("t_pidx", ib - 1, 0), k(3, 0)])),
                8,
            ),
        );
        r(&byte)
    };
    let info_bytes = info.to_bytes();
    let info_b = source(
        "info",
        vec![const_flat(&info_bytes, Info::LEN)],
        Info::LEN * 8,
    );
    let ping_b = source("ping", vec![const_flat(&PING_MAGIC, 4)], 32);
    let status = vec![
        r("results"),
        e::zext(r("inflight"), fifo_bits + 1, 8),
        r("timeouts"),
        r("overflows"),
        r("crc_errors"),
        r("load_crc"),
    ];
    let status_b = source("status", status, 64);
    let check_b = source("check", vec![r("load_crc")], 16);
    let mut res_parts = Vec::new();
    // The load checksum last: the host refuses results computed from memories it did not load.
    res_parts.push(r("load_crc"));
    for c in (0..classes).rev() {
        let lo = c * ifc.score_width;
        let hi = lo + ifc.score_width - 1;
        let ext = sbytes * 8 - ifc.score_width;
        if ext > 0 {
            res_parts.push(if ifc.scores_signed {
                Expr::Repl(ext, Box::new(e::bit("core_out_scores", hi)))
            } else {
                k(ext, 0)
            });
        }
        res_parts.push(e::sl("core_out_scores", hi, lo));
    }
    res_parts.push(e::zext(r("core_out_class"), ifc.class_width, 16));
    let result_b = source("result", res_parts, rb * 8);
    m.wire(
        "t_payload_byte",
        8,
        s_mux_chain(
            vec![
                (is("t_kind", 3, K_RESULT), result_b),
                (is("t_kind", 3, K_INFO), info_b),
                (is("t_kind", 3, K_STATUS), status_b),
                (is("t_kind", 3, K_CHECK), check_b),
                (is("t_kind", 3, K_PING), ping_b),
            ],
            r("t_op"),
        ),
    );
    if pw < 16 {
        m.wire("unused_t_pidx", 16 - pw, e::sl("t_pidx", 15, pw));
    }
    let byte_at = s_mux_chain(
        vec![
            (is("t_idx", 16, 0), k(8, bql_protocol::SYNC_RESPONSE as u64)),
            (is("t_idx", 16, 1), r("t_code")),
            (is("t_idx", 16, 2), r("t_seq")),
            (is("t_idx", 16, 3), e::sl("t_len", 7, 0)),
            (is("t_idx", 16, 4), e::sl("t_len", 15, 8)),
            (e::eq(r("t_idx"), r("t_crc_at")), e::sl("t_crc", 7, 0)),
            (e::eq(r("t_idx"), r("t_end")), e::sl("t_crc", 15, 8)),
        ],
        r("t_payload_byte"),
    );
    m.push(Item::Always(
        "clk".into(),
        vec![
            set("t_byte", byte_at),
            set("t_byte_ok", e::and(r("t_active"), e::lnot(r("t_fire")))),
        ],
    ));
    m.push(Item::Wire("t_crc_next".into(), 16));
    m.push(Item::Instance {
        module: "crc16_ccitt_step".into(),
        name: "tx_crc".into(),
        conns: vec![
            ("crc_in".into(), r("t_crc")),
            ("data".into(), r("t_byte")),
            ("crc_out".into(), r("t_crc_next")),
        ],
    });
    m.push(Item::Always(
        "clk".into(),
        vec![s::when_else(
            r("rst"),
            vec![
                set("t_active", k(1, 0)),
                set("results", k(16, 0)),
                set("led_toggle", k(1, 0)),
            ],
            s::chain(
                vec![
                    (
                        r("start_result"),
                        vec![
                            set("t_active", k(1, 1)),
                            set("t_kind", k(3, K_RESULT)),
                            set("t_code", k(8, Code::Ok as u64)),
                            set(
                                "t_seq",
                                Expr::MemRead("seq_fifo".into(), Box::new(r("fifo_rp"))),
                            ),
                            set("t_len", k(16, rb as u64)),
                            set("t_crc_at", k(16, rb as u64 + 5)),
                            set("t_end", k(16, rb as u64 + 6)),
                            set("t_idx", k(16, 0)),
                            set("t_pidx", k(16, 0x10000 - 5)),
                            set("t_crc", k(16, CRC_INIT as u64)),
                        ],
                    ),
                    (
                        r("start_reply"),
                        vec![
                            set("t_active", k(1, 1)),
                            set("t_kind", r("p_kind")),
                            set("t_code", r("p_code")),
                            set("t_seq", r("p_seq")),
                            set("t_len", r("p_len")),
                            set("t_crc_at", e::add(r("p_len"), k(16, 5))),
                            set("t_end", e::add(r("p_len"), k(16, 6))),
                            set("t_op", r("p_op")),
                            set("t_idx", k(16, 0)),
                            set("t_pidx", k(16, 0x10000 - 5)),
                            set("t_crc", k(16, CRC_INIT as u64)),
                        ],
                    ),
                    (
                        r("t_fire"),
                        vec![
                            inc("t_idx", 16),
                            inc("t_pidx", 16),
                            s::when(
                                e::and(
                                    e::ne(r("t_idx"), k(16, 0)),
                                    e::lt(r("t_idx"), r("t_crc_at")),
                                ),
                                vec![set("t_crc", r("t_crc_next"))],
                            ),
                            s::when(
                                r("t_last"),
                                vec![
                                    set("t_active", k(1, 0)),
                                    s::when(
                                        is("t_kind", 3, K_RESULT),
                                        vec![inc("results", 16), inc("led_toggle", 1)],
                                    ),
                                ],
                            ),
                        ],
                    ),
                ],
                vec![],
            ),
        )],
    ));

    // LEDs: green toggles with every result, red lights after a CRC error.
    let (g, rd) = (r("led_toggle"), e::ne(r("crc_errors"), k(8, 0)));
    let (g, rd) = if p.led_active_low {
        (e::not(g), e::lnot(rd))
    } else {
        (g, rd)
    };
    m.push(Item::Assign(r("led_green"), g));
    m.push(Item::Assign(r("led_red"), rd));
    m
}

/// `c0 ? v0 : c1 ? v1 : .. : default`.
fn s_mux_chain(arms: Vec<(Expr, Expr)>, default: Expr) -> Expr {
    arms.into_iter()
        .rev()
        .fold(default, |acc, (c, v)| e::mux(c, v, acc))
}
