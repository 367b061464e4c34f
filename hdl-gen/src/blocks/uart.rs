//! UART receiver and transmitter, 8 data bits, no parity, one stop bit, `div` clocks per bit
//! (the divisor is a generation constant: `bql gen` computes it from the board clock and baud
//! rate, `bql sim --serve` uses a small simulation-only divisor).

use crate::ir::bits_for;
use crate::ir::{e, s, Item, Module};

/// Builds `uart_rx_d<div>`: a two-flop synchronizer, start-bit detection, sampling in the
/// middle of each bit; a byte whose stop bit is low (framing error) is dropped.
pub fn rx(div: usize) -> Module {
    assert!(div >= 4, "a UART divisor below 4 cannot sample mid-bit");
    let name = format!("uart_rx_d{div}");
    let cw = bits_for(div + div / 2);
    let mut m = Module::new(&name);
    m.doc.push(format!(
        "{name}: UART receiver, 8N1, {div} clocks per bit, sampled mid-bit."
    ));
    m.input("clk", 1);
    m.input("rst", 1);
    m.input("rx", 1);
    m.output_reg("out_valid", 1);
    m.output_reg("out_data", 8);
    for (n, w) in [
        ("sync1", 1),
        ("sync2", 1),
        ("busy", 1),
        ("cnt", cw),
        ("bitn", 4),
    ] {
        m.reg(n, w);
    }
    m.reg("shreg", 8);
    let body = vec![
        s::set_r("sync1", e::r("rx")),
        s::set_r("sync2", e::r("sync1")),
        s::when_else(
            e::r("rst"),
            vec![
                s::set_r("busy", e::k(1, 0)),
                s::set_r("out_valid", e::k(1, 0)),
                s::set_r("sync1", e::k(1, 1)),
                s::set_r("sync2", e::k(1, 1)),
            ],
            vec![
                s::set_r("out_valid", e::k(1, 0)),
                s::when_else(
                    e::lnot(e::r("busy")),
                    vec![s::when(
                        e::lnot(e::r("sync2")),
                        vec![
                            s::set_r("busy", e::k(1, 1)),
                            // Wait a bit and a half: the middle of data bit 0.
                            s::set_r("cnt", e::k(cw, (div + div / 2 - 1) as u64)),
                            s::set_r("bitn", e::k(4, 0)),
                        ],
                    )],
                    vec![s::when_else(
                        e::ne(e::r("cnt"), e::k(cw, 0)),
                        vec![s::set_r("cnt", e::sub(e::r("cnt"), e::k(cw, 1)))],
                        vec![s::when_else(
                            e::lt(e::r("bitn"), e::k(4, 8)),
                            vec![
                                s::set_r(
                                    "shreg",
                                    crate::ir::Expr::Concat(vec![
                                        e::r("sync2"),
                                        e::sl("shreg", 7, 1),
                                    ]),
                                ),
                                s::set_r("bitn", e::add(e::r("bitn"), e::k(4, 1))),
                                s::set_r("cnt", e::k(cw, (div - 1) as u64)),
                            ],
                            // The stop bit: a byte only when it is high.
                            vec![
                                s::set_r("busy", e::k(1, 0)),
                                s::when(
                                    e::r("sync2"),
                                    vec![
                                        s::set_r("out_valid", e::k(1, 1)),
                                        s::set_r("out_data", e::r("shreg")),
                                    ],
                                ),
                            ],
                        )],
                    )],
                ),
            ],
        ),
    ];
    m.push(Item::Always("clk".into(), body));
    m
}

/// Builds `uart_tx_d<div>`: takes a byte when `in_ready`, sends start bit, 8 data bits LSB
/// first and a stop bit, `div` clocks each.
pub fn tx(div: usize) -> Module {
    assert!(div >= 4, "a UART divisor below 4 is not supported");
    let name = format!("uart_tx_d{div}");
    let cw = bits_for(div);
    let mut m = Module::new(&name);
    m.doc.push(format!(
        "{name}: UART transmitter, 8N1, {div} clocks per bit."
    ));
    m.input("clk", 1);
    m.input("rst", 1);
    m.input("in_valid", 1);
    m.output("in_ready", 1);
    m.input("in_data", 8);
    m.output_reg("tx", 1);
    m.reg("busy", 1);
    m.reg("cnt", cw);
    m.reg("bitn", 4);
    m.reg("shreg", 9);
    m.push(Item::Assign(e::r("in_ready"), e::lnot(e::r("busy"))));
    let body = vec![s::when_else(
        e::r("rst"),
        vec![s::set_r("busy", e::k(1, 0)), s::set_r("tx", e::k(1, 1))],
        s::chain(
            vec![
                (
                    e::and(e::lnot(e::r("busy")), e::r("in_valid")),
                    vec![
                        s::set_r("busy", e::k(1, 1)),
                        s::set_r("tx", e::k(1, 0)),
                        s::set_r(
                            "shreg",
                            crate::ir::Expr::Concat(vec![e::k(1, 1), e::r("in_data")]),
                        ),
                        s::set_r("cnt", e::k(cw, (div - 1) as u64)),
                        s::set_r("bitn", e::k(4, 0)),
                    ],
                ),
                (
                    e::r("busy"),
                    vec![s::when_else(
                        e::ne(e::r("cnt"), e::k(cw, 0)),
                        vec![s::set_r("cnt", e::sub(e::r("cnt"), e::k(cw, 1)))],
                        vec![s::when_else(
                            e::eq(e::r("bitn"), e::k(4, 9)),
                            vec![s::set_r("busy", e::k(1, 0))],
                            vec![
                                s::set_r("tx", e::bit("shreg", 0)),
                                s::set_r(
                                    "shreg",
                                    crate::ir::Expr::Concat(vec![e::k(1, 1), e::sl("shreg", 8, 1)]),
                                ),
                                s::set_r("bitn", e::add(e::r("bitn"), e::k(4, 1))),
                                s::set_r("cnt", e::k(cw, (div - 1) as u64)),
                            ],
                        )],
                    )],
                ),
            ],
            vec![],
        ),
    )];
    m.push(Item::Always("clk".into(), body));
    m
}

/// Builds `crc16_ccitt_step`: one byte of the CRC-16/CCITT-FALSE register update, as the XOR
/// equations that `bql_protocol::crc16_update_matrix` derives from the protocol's definition.
pub fn crc16_step() -> Module {
    let (from_crc, from_data) = bql_protocol::crc16_update_matrix();
    let mut m = Module::new("crc16_ccitt_step");
    m.doc.push(
        "crc16_ccitt_step: CRC-16/CCITT-FALSE register after one more byte (poly 0x1021).".into(),
    );
    m.input("crc_in", 16);
    m.input("data", 8);
    m.output("crc_out", 16);
    for i in 0..16 {
        let mut terms = Vec::new();
        for j in 0..16 {
            if (from_crc[i] >> j) & 1 == 1 {
                terms.push(e::bit("crc_in", j));
            }
        }
        for j in 0..8 {
            if (from_data[i] >> j) & 1 == 1 {
                terms.push(e::bit("data", j));
            }
        }
        m.push(Item::Assign(e::bit("crc_out", i), e::xor_all(terms)));
    }
    m
}
