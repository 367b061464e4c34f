//! `spi_slave`: the host link over SPI (mode 0, most significant bit first), carrying the same
//! byte stream as the UART: request bytes in on MOSI, response bytes out on MISO, the framed
//! protocol of `docs/protocol.md` on top. The iCEBreaker's FTDI channel A drives it in MPSSE
//! mode after configuration (docs/links.md).
//!
//! SCK runs faster than the design clock (30 MHz against 12 MHz on the iCEBreaker), so the
//! shift registers live in SCK's own domain and each byte crosses by a toggle handshake:
//!
//! - **In**: on a byte's eighth rising edge the byte goes into one of two holding registers
//!   (alternately) and `s_rx_tog` flips. The design clock synchronizes the toggle through two
//!   flip-flops and reads the holding register the flip announced: that register stays
//!   unchanged for the next sixteen SCK periods, and the toggle keeps each value for eight.
//! - **Out**: two holding registers, each with a write toggle (design clock) and a take toggle
//!   (SCK), each synchronized into the other domain through two flip-flops. An entry is full
//!   while its toggles differ. At a byte's first rising edge the SCK side takes the next entry if
//!   it sees it full, else it sends [`IDLE`]; the host skips it as it skips anything between
//!   frames.
//! - The chip select resets the bit counter asynchronously (SCK does not run while it is high),
//!   so every transaction starts byte-aligned, whatever a glitch did to the one before.
//!
//! MISO changes on SCK's rising edge and the host samples it on the falling edge (MPSSE
//! command `0x35`, see `bql_host_driver::spi`).
//!
//! Both directions keep up when SCK is at most [`MAX_SCK_PER_CLOCK`] design clocks: the design
//! side then sees every toggle flip (eight SCK periods >= 3.2 design clocks > 2 synchronizer
//! clocks), reads a holding register well within the sixteen SCK periods it stays unchanged, and
//! refills an outgoing entry (about 3 design clocks to see it taken, 1 to write, 2 SCK periods
//! to be seen: 10 SCK periods at the limit) before its next turn sixteen SCK periods later.
//! The transmitter produces a byte every three design clocks, faster than the 3.2 it must.

use crate::ir::{e, s, Expr, Item, Module, Sig, Stmt};

/// The byte MISO carries when no response byte is ready.
pub const IDLE: u8 = 0x00;

/// The fastest SCK, in design clocks, both directions keep up with (see the module docs).
pub const MAX_SCK_PER_CLOCK: f64 = 2.5;

/// Builds `spi_slave`: ports `clk`, `rst`, the SPI pins (`spi_sck`, `spi_cs_n`, `spi_mosi`,
/// `spi_miso`), and the UART's byte interface (`out_valid`/`out_data` per received byte,
/// `in_valid`/`in_ready`/`in_data` per byte to send).
pub fn module() -> Module {
    let mut m = Module::new("spi_slave");
    m.doc.push(
        "spi_slave: SPI mode 0 link, SCK-domain shift registers, bytes cross by toggle \
         handshakes (see hdl-gen/src/blocks/spi.rs)."
            .into(),
    );
    let clk = m.input("clk", 1);
    let rst = m.input("rst", 1);
    let sck = m.input("spi_sck", 1);
    let cs_n = m.input("spi_cs_n", 1);
    let mosi = m.input("spi_mosi", 1);
    let miso = m.output("spi_miso", 1);
    let bit = bit_counter(&mut m, &sck, &cs_n);
    let incoming = incoming_sck(&mut m, &sck, &bit, &mosi);
    incoming_clk(&mut m, &clk, &rst, &incoming);
    let outgoing = Outgoing::declare(&mut m);
    outgoing_clk(&mut m, &clk, &outgoing);
    let shift = outgoing_sck(&mut m, &sck, &bit, &outgoing);
    m.push(Item::Assign(miso.e(), shift.bit(7)));
    m
}

/// The bit counter in SCK's domain, reset by the chip select (the only register that needs
/// it: every other SCK-domain register follows the counter).
fn bit_counter(m: &mut Module, sck: &Sig, cs_n: &Sig) -> Sig {
    let bit = m.reg("s_bit", 3);
    m.push(Item::AlwaysReset {
        clock: sck.name().into(),
        reset: cs_n.name().into(),
        on_reset: vec![bit.set_k(0)],
        body: vec![bit.inc()],
    });
    bit
}

/// SCK side of the incoming direction: the shift register, the two holding registers and
/// their toggle. Returns (toggle, holding registers).
fn incoming_sck(m: &mut Module, sck: &Sig, bit: &Sig, mosi: &Sig) -> (Sig, [Sig; 2]) {
    m.push(Item::Comment("SCK domain: bytes in".into()));
    let shift = m.reg("s_shift", 7);
    let hold = [m.reg("s_rx_hold0", 8), m.reg("s_rx_hold1", 8)];
    let tog = m.reg_init("s_rx_tog", 1, 0);
    let byte = Expr::Concat(vec![shift.e(), mosi.e()]);
    let body = vec![
        shift.set(Expr::Concat(vec![shift.slice(5, 0), mosi.e()])),
        s::when(
            bit.is(7),
            vec![
                s::when_else(
                    tog.e(),
                    vec![hold[1].set(byte.clone())],
                    vec![hold[0].set(byte)],
                ),
                tog.set(e::not(tog.e())),
            ],
        ),
    ];
    m.push(Item::Always(sck.name().into(), body));
    (tog, hold)
}

/// Design-clock side of the incoming direction: synchronize the toggle, read the holding
/// register it announces, one `out_valid` pulse per byte.
fn incoming_clk(m: &mut Module, clk: &Sig, rst: &Sig, (tog, hold): &(Sig, [Sig; 2])) {
    m.push(Item::Comment("design clock: bytes in".into()));
    let out_valid = m.output_reg("out_valid", 1);
    let out_data = m.output_reg("out_data", 8);
    let sync1 = m.reg_init("c_rx_sync1", 1, 0);
    let sync2 = m.reg_init("c_rx_sync2", 1, 0);
    let seen = m.reg_init("c_rx_seen", 1, 0);
    let arrived = e::ne(sync2.e(), seen.e());
    m.push(Item::Always(
        clk.name().into(),
        vec![
            sync1.set(tog.e()),
            sync2.set(sync1.e()),
            out_valid.set(e::and(arrived.clone(), e::lnot(rst.e()))),
            s::when(
                arrived,
                vec![
                    out_data.set(e::mux(seen.e(), hold[1].e(), hold[0].e())),
                    seen.set(e::not(seen.e())),
                ],
            ),
        ],
    ));
}

/// The outgoing direction's registers.
struct Outgoing {
    /// Holding registers (design clock).
    hold: [Sig; 2],
    /// Write toggles (design clock), one per entry.
    wrote: Sig,
    /// Take toggles (SCK), one per entry.
    took: Sig,
}

impl Outgoing {
    fn declare(m: &mut Module) -> Outgoing {
        Outgoing {
            hold: [m.reg("c_tx_hold0", 8), m.reg("c_tx_hold1", 8)],
            wrote: m.reg_init("c_tx_wrote", 2, 0),
            took: m.reg_init("s_tx_took", 2, 0),
        }
    }
}

/// Design-clock side of the outgoing direction: `in_ready` while the next entry (in turn) is
/// seen empty; a byte fills it and flips its write toggle.
fn outgoing_clk(m: &mut Module, clk: &Sig, o: &Outgoing) {
    m.push(Item::Comment("design clock: bytes out".into()));
    let in_valid = m.input("in_valid", 1);
    let in_ready = m.output("in_ready", 1);
    let in_data = m.input("in_data", 8);
    let sync1 = m.reg_init("c_tx_sync1", 2, 0);
    let sync2 = m.reg_init("c_tx_sync2", 2, 0);
    let turn = m.reg_init("c_tx_turn", 1, 0);
    let empty = |i: usize| e::eq(o.wrote.bit(i), sync2.bit(i));
    m.push(Item::Assign(
        in_ready.e(),
        e::mux(turn.e(), empty(1), empty(0)),
    ));
    let fill = |i: usize| -> Vec<Stmt> {
        vec![
            o.hold[i].set(in_data.e()),
            s::set(o.wrote.bit(i), e::not(o.wrote.bit(i))),
        ]
    };
    m.push(Item::Always(
        clk.name().into(),
        vec![
            sync1.set(o.took.e()),
            sync2.set(sync1.e()),
            s::when(
                e::and(in_valid.e(), in_ready.e()),
                vec![
                    s::when_else(turn.e(), fill(1), fill(0)),
                    turn.set(e::not(turn.e())),
                ],
            ),
        ],
    ));
}

/// SCK side of the outgoing direction: at a byte's first rising edge take the entry in turn if
/// it is seen full (else send [`IDLE`]); shift out most significant bit first. Returns the
/// shift register (MISO is its top bit).
fn outgoing_sck(m: &mut Module, sck: &Sig, bit: &Sig, o: &Outgoing) -> Sig {
    m.push(Item::Comment("SCK domain: bytes out".into()));
    let sync1 = m.reg_init("s_tx_sync1", 2, 0);
    let sync2 = m.reg_init("s_tx_sync2", 2, 0);
    let turn = m.reg_init("s_tx_turn", 1, 0);
    let shift = m.reg("s_tx_shift", 8);
    let full = |i: usize| e::ne(sync2.bit(i), o.took.bit(i));
    let take = |i: usize| -> Vec<Stmt> {
        vec![
            shift.set(o.hold[i].e()),
            s::set(o.took.bit(i), e::not(o.took.bit(i))),
            turn.set(e::not(turn.e())),
        ]
    };
    let load = s::chain(
        vec![
            (e::and(e::lnot(turn.e()), full(0)), take(0)),
            (e::and(turn.e(), full(1)), take(1)),
        ],
        vec![shift.set_k(IDLE as u64)],
    );
    let body = vec![
        sync1.set(o.wrote.e()),
        sync2.set(sync1.e()),
        s::when_else(
            bit.is(0),
            load,
            vec![shift.set(Expr::Concat(vec![shift.slice(6, 0), e::k(1, 0)]))],
        ),
    ];
    m.push(Item::Always(sck.name().into(), body));
    shift
}
