//! UART receiver and transmitter, 8 data bits, no parity, one stop bit, `div` clocks per bit
//! (the divisor is a generation constant: `bql gen` computes it from the board clock and baud
//! rate, `bql sim --serve` uses a small simulation-only divisor).

use crate::ir::bits_for;
use crate::ir::{e, s, Expr, Item, Module, Sig};

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
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let rx = m.input("rx", 1);
    let out_valid = m.output_reg("out_valid", 1);
    let out_data = m.output_reg("out_data", 8);
    let sync1 = m.reg("sync1", 1);
    let sync2 = m.reg("sync2", 1);
    let busy = m.reg("busy", 1);
    let cnt = m.reg("cnt", cw);
    let bitn = m.reg("bitn", 4);
    let shreg = m.reg("shreg", 8);
    let sample = s::when_else(
        e::lt(bitn.e(), bitn.k(8)),
        vec![
            shreg.set(Expr::Concat(vec![sync2.e(), shreg.slice(7, 1)])),
            bitn.inc(),
            cnt.set_k((div - 1) as u64),
        ],
        // The stop bit: a byte only when it is high.
        vec![
            busy.set_k(0),
            s::when(sync2.e(), vec![out_valid.set_k(1), out_data.set(shreg.e())]),
        ],
    );
    let body = vec![
        sync1.set(rx.e()),
        sync2.set(sync1.e()),
        s::when_else(
            rst.e(),
            vec![
                busy.set_k(0),
                out_valid.set_k(0),
                sync1.set_k(1),
                sync2.set_k(1),
            ],
            vec![
                out_valid.set_k(0),
                s::when_else(
                    e::lnot(busy.e()),
                    vec![s::when(
                        e::lnot(sync2.e()),
                        vec![
                            busy.set_k(1),
                            // Wait a bit and a half: the middle of data bit 0.
                            cnt.set_k((div + div / 2 - 1) as u64),
                            bitn.set_k(0),
                        ],
                    )],
                    vec![s::when_else(
                        e::ne(cnt.e(), cnt.k(0)),
                        vec![cnt.set(e::sub(cnt.e(), cnt.k(1)))],
                        vec![sample],
                    )],
                ),
            ],
        ),
    ];
    m.push(Item::Always(clk.name().into(), body));
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
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let in_valid = m.input("in_valid", 1);
    let in_ready = m.output("in_ready", 1);
    let in_data = m.input("in_data", 8);
    let tx = m.output_reg("tx", 1);
    let busy = m.reg("busy", 1);
    let cnt = m.reg("cnt", cw);
    let bitn = m.reg("bitn", 4);
    let shreg = m.reg("shreg", 9);
    // `cnt == 0` and `bitn == 9`, kept as flip-flops with their counters, so that the
    // registers' enables do not start at the compares (with the framer's `t_fire` in front, that
    // chain held mnist-u8's UP5K design below 48 MHz on one seed).
    let cnt_zero = m.reg("cnt_zero", 1);
    let at_stop = m.reg("at_stop", 1);
    m.push(Item::Assign(in_ready.e(), e::lnot(busy.e())));
    let start = vec![
        busy.set_k(1),
        tx.set_k(0),
        shreg.set(Expr::Concat(vec![e::k(1, 1), in_data.e()])),
        cnt.set_k((div - 1) as u64),
        cnt_zero.set_k(0),
        bitn.set_k(0),
        at_stop.set_k(0),
    ];
    let next_bit = vec![
        tx.set(shreg.bit(0)),
        shreg.set(Expr::Concat(vec![e::k(1, 1), shreg.slice(8, 1)])),
        bitn.inc(),
        at_stop.set(bitn.is(8)),
        cnt.set_k((div - 1) as u64),
        cnt_zero.set_k(0),
    ];
    let sending = vec![s::when_else(
        e::lnot(cnt_zero.e()),
        vec![cnt.set(e::sub(cnt.e(), cnt.k(1))), cnt_zero.set(cnt.is(1))],
        vec![s::when_else(at_stop.e(), vec![busy.set_k(0)], next_bit)],
    )];
    let body = vec![s::when_else(
        rst.e(),
        vec![busy.set_k(0), tx.set_k(1)],
        s::chain(
            vec![
                (e::and(e::lnot(busy.e()), in_valid.e()), start),
                (busy.e(), sending),
            ],
            vec![],
        ),
    )];
    m.push(Item::Always(clk.name().into(), body));
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
    let crc_in = m.input("crc_in", 16);
    let data = m.input("data", 8);
    let crc_out = m.output("crc_out", 16);
    for i in 0..16 {
        let mut terms = Vec::new();
        for j in 0..16 {
            if (from_crc[i] >> j) & 1 == 1 {
                terms.push(crc_in.bit(j));
            }
        }
        for j in 0..8 {
            if (from_data[i] >> j) & 1 == 1 {
                terms.push(data.bit(j));
            }
        }
        m.push(Item::Assign(crc_out.bit(i), e::xor_all(terms)));
    }
    m
}

/// An instance of `crc16_ccitt_step` named `name`: `out` is `crc` after the byte `data`.
pub fn crc_step(name: &str, crc: &Sig, data: &Sig, out: &Sig) -> Item {
    Item::Instance {
        module: "crc16_ccitt_step".into(),
        name: name.into(),
        conns: vec![
            ("crc_in".into(), crc.e()),
            ("data".into(), data.e()),
            ("crc_out".into(), out.e()),
        ],
    }
}
