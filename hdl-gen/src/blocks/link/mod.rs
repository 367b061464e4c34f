//! `bql_top`: the board-level top, in parts. Power-on reset, the UART receiver and transmitter,
//! the framed command protocol of `docs/protocol.md` (constants and CRC from `bql_protocol`),
//! and `bql_core`, joined by registered valid/ready boundaries:
//!
//! - [`receiver`] (`bql_link_rx`) parses request frames byte by byte into the free frame slot
//!   and latches each kept frame's descriptor;
//! - [`slots`] (`bql_frame_slots`) is the receive buffer, two frame slots in one memory;
//! - [`executor`] (`bql_executor`) takes full slots in order, writes memory words through the
//!   core's configuration port, streams images into the core and asks for replies;
//! - [`transmitter`] (`bql_link_tx`) frames replies and results, results first;
//! - this file builds `bql_top`, which holds the reset, the UARTs, the sequence numbers of the
//!   inferences in flight, the core and the LEDs, and wires the parts together by port name.

pub mod executor;
pub mod receiver;
pub mod slots;
pub mod transmitter;

use bql_model::InputEncoding;
use bql_protocol::{Info, MAX_IN_FLIGHT};

use crate::blocks::core::CoreInterface;
use crate::ir::{bits_for, e, s, Expr, Item, Module, Sig, Stmt};

/// The physical link between the host and the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// A UART, 8N1.
    Uart {
        /// Design clocks per bit.
        divisor: usize,
    },
    /// An SPI slave (`spi_slave`), driven by the host's SCK.
    Spi {
        /// The SCK the host runs, Hz (at most `spi::MAX_SCK_PER_CLOCK` design clocks).
        sck_hz: u64,
    },
}

impl Link {
    /// Design clocks per bit on the line (an SPI bit: design clocks per SCK period, at least
    /// one), which sets the receiver's abandon time of [`bql_protocol::ABANDON_BITS`] bits.
    pub fn clocks_per_bit(self, clock_hz: u64) -> usize {
        match self {
            Link::Uart { divisor } => divisor,
            Link::Spi { sck_hz } => clock_hz.div_ceil(sck_hz.max(1)).max(1) as usize,
        }
    }

    /// The link's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Link::Uart { .. } => "uart",
            Link::Spi { .. } => "spi",
        }
    }
}

/// Constants of a generated top level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkParams {
    /// The host link.
    pub link: Link,
    /// The design clock, Hz.
    pub clock_hz: u64,
    /// The board has a red LED pin the link leaves free (the iCEBreaker's SPI chip select is
    /// the red LED's pin).
    pub red_led: bool,
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
    /// Each part of the link takes a registered copy of the reset (the ECP5; see
    /// `core::unit_reset`).
    pub local_resets: bool,
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
        // Pixels travel as they are; a table maps them on the board.
        InputEncoding::U8 | InputEncoding::Table(_) => input_len,
    }
}

/// The frame-slot size for a design: a power of two that holds an image and a `WRITE` of at
/// least one word (and at least 16 bytes).
pub fn slot_bytes(image_bytes: usize, word_bytes: usize) -> usize {
    image_bytes.max(3 + word_bytes).max(16).next_power_of_two()
}

/// Frame slots in the receive buffer for slots of `slot_bytes`: four where four fit the 512
/// bytes of one iCE40 block RAM (which the two the protocol needs take anyway), else two. A
/// host keeps at most this many requests unanswered ([`bql_protocol::Info::slots`]), so a frame
/// never finds every slot full.
pub fn frame_slots(slot_bytes: usize) -> usize {
    if 4 * slot_bytes <= 512 {
        4
    } else {
        bql_protocol::MIN_SLOTS
    }
}

/// Bytes per memory word in a `WRITE`: the configuration data width, rounded up to a power of
/// two bytes so that the executor checks the payload length with a mask.
pub fn word_bytes(ifc: &CoreInterface) -> usize {
    ifc.cfg_data_width.div_ceil(8).next_power_of_two()
}

/// Sizes the parts share, derived once from the parameters.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Bytes per frame slot (a power of two).
    pub slot: usize,
    /// Bits of a byte index inside a slot.
    pub slot_bits: usize,
    /// Frame slots (a power of two).
    pub slots: usize,
    /// Bits of a slot number.
    pub slot_index_bits: usize,
    /// Bytes of one image in an `INFER` payload.
    pub image_bytes: usize,
    /// Bytes per memory word in a `WRITE`.
    pub word_bytes: usize,
    /// The bytes of a `WRITE` word that hold the memory word (the rest is padding).
    pub word_used_bytes: usize,
    /// Bits of a byte's index within the used bytes (the core's `cfg_index`).
    pub word_index_bits: usize,
    /// Input elements per core beat.
    pub pixels_per_beat: usize,
    /// Bits per input element (1 for packed binary images, 8 for pixels).
    pub elem_width: usize,
    /// The input is packed bits.
    pub binary_input: bool,
    /// Elements per image.
    pub input_len: usize,
    /// Elements streamed per image: whole beats.
    pub elements: usize,
}

impl Geometry {
    /// The geometry of a design.
    pub fn new(p: &LinkParams, ifc: &CoreInterface) -> Self {
        let slot = p.info.max_payload as usize;
        Geometry {
            slot,
            slot_bits: bits_for(slot - 1),
            slots: p.info.slots as usize,
            slot_index_bits: bits_for(p.info.slots as usize - 1),
            image_bytes: p.info.image_bytes as usize,
            word_bytes: p.info.word_bytes as usize,
            word_used_bytes: ifc.cfg_data_width.div_ceil(8),
            word_index_bits: ifc.cfg_index_width,
            pixels_per_beat: ifc.pixels_per_beat,
            elem_width: if p.binary_input { 1 } else { 8 },
            binary_input: p.binary_input,
            input_len: p.input_len,
            elements: ifc.beats * ifc.pixels_per_beat,
        }
    }
}

// Reply kinds (what the payload bytes come from), between the executor and the transmitter.
pub(crate) const K_PING: u64 = 0;
pub(crate) const K_INFO: u64 = 1;
pub(crate) const K_STATUS: u64 = 2;
pub(crate) const K_CHECK: u64 = 3;
pub(crate) const K_ERR: u64 = 4;
pub(crate) const K_RESULT: u64 = 5;
/// Width of a reply kind.
pub(crate) const KIND_WIDTH: usize = 3;

/// Saturating increment of an 8-bit counter.
pub(crate) fn sat_inc(counter: &Sig) -> Stmt {
    s::when(e::ne(counter.e(), counter.k(255)), vec![counter.inc()])
}

/// Every module of the top level: `bql_top` and its parts.
pub fn modules(p: &LinkParams, ifc: &CoreInterface, header: &[String]) -> Vec<Module> {
    let g = Geometry::new(p, ifc);
    let parts = vec![
        receiver::module(
            &g,
            bql_protocol::ABANDON_BITS * p.link.clocks_per_bit(p.clock_hz),
        ),
        slots::module(&g),
        executor::module(&g, &p.valid_sels),
        transmitter::module(ifc, &p.info),
    ];
    let top = top(p, ifc, &g, &parts, header);
    let mut all = parts;
    all.push(top);
    all
}

/// Builds `bql_top` around the parts and `bql_core`.
fn top(
    p: &LinkParams,
    ifc: &CoreInterface,
    g: &Geometry,
    parts: &[Module],
    header: &[String],
) -> Module {
    let info = &p.info;
    let mut m = Module::new("bql_top");
    m.doc.extend(header.iter().cloned());
    let link = match p.link {
        Link::Uart { divisor } => format!("UART ({divisor} clocks per bit)"),
        Link::Spi { sck_hz } => format!("SPI (SCK up to {:.1} MHz)", sck_hz as f64 / 1e6),
    };
    m.doc.push(format!(
        "bql_top: {link} + framed protocol v{} + bql_core.",
        bql_protocol::VERSION
    ));
    m.doc.push(format!(
        "INFO: arch hash {:016x}, {} bytes per image, {} classes x {} bytes, {}-byte words, \
         {}-byte slots.",
        info.arch_hash, g.image_bytes, info.classes, info.score_bytes, g.word_bytes, g.slot
    ));
    let clk = m.input("clk", 1);
    let locked = p.clk_locked_port.then(|| m.input("clk_locked", 1));
    let link_ports: &[(&str, bool)] = match p.link {
        Link::Uart { .. } => &[("uart_rx", true), ("uart_tx", false)],
        Link::Spi { .. } => &[
            ("spi_sck", true),
            ("spi_cs_n", true),
            ("spi_mosi", true),
            ("spi_miso", false),
        ],
    };
    for &(name, input) in link_ports {
        if input {
            m.input(name, 1);
        } else {
            m.output(name, 1);
        }
    }
    let led_red = p.red_led.then(|| m.output("led_red", 1));
    let led_green = m.output("led_green", 1);
    power_on_reset(&mut m, &clk, locked.as_ref());
    match p.link {
        Link::Uart { divisor } => uarts(&mut m, divisor, p.local_resets),
        Link::Spi { .. } => spi(&mut m, p.local_resets),
    }
    // The parts' ports, as nets of this module (the ports of bql_top and those declared above
    // excepted); each part's instance connects by name.
    let mut declared: Vec<String> = m.ports.iter().map(|q| q.name.clone()).collect();
    declared.extend(["rst", "rx_valid", "rx_data", "utx_ready"].map(String::from));
    declared.extend(["t_send", "t_byte"].map(String::from));
    // A register of this module (see `in_flight`).
    declared.push("inflight".into());
    for part in parts {
        for q in &part.ports {
            if !declared.contains(&q.name) {
                m.push(Item::Wire(q.name.clone(), q.width));
                declared.push(q.name.clone());
            }
        }
    }
    m.push(Item::Comment("the protocol, in parts".into()));
    for (part, name) in parts
        .iter()
        .zip(["receiver_frames", "frame_slots", "executor", "framer"])
    {
        let instance = Module::instance_of(part, name);
        if part.ports.iter().any(|q| q.name == "rst") {
            let reset = part_reset(&mut m, name, p.local_resets);
            m.push(with_reset(instance, reset));
        } else {
            m.push(instance);
        }
    }
    in_flight(&mut m, &clk);
    core(&mut m, p, ifc, g);
    // LEDs: green toggles with every result, red lights after a CRC error.
    let (green, red) = (e::r("led_toggle"), e::ne(e::r("crc_errors"), e::k(8, 0)));
    let (green, red) = if p.led_active_low {
        (e::not(green), e::lnot(red))
    } else {
        (green, red)
    };
    m.push(Item::Assign(led_green.e(), green));
    match led_red {
        Some(led) => m.push(Item::Assign(led.e(), red)),
        None => {
            m.wire("unused_red_led", 1, red);
        }
    }
    m
}

/// Power-on reset: the flip-flops start at zero after configuration; 255 cycles of reset
/// (counted from the PLL's lock when the clock comes from one). The reset itself is a register
/// (on from configuration): its fan-out reaches every block, and the counter's compare in
/// front of it was on the critical path.
fn power_on_reset(m: &mut Module, clk: &Sig, locked: Option<&Sig>) {
    m.push(Item::Comment("power-on reset".into()));
    let count = m.reg_init("por_count", 8, 0);
    let busy = m.wire("por_busy", 1, e::ne(count.e(), count.k(255)));
    let rst = m.reg_init("rst", 1, 1);
    let counting = vec![rst.set(busy.e()), s::when(busy.e(), vec![count.inc()])];
    let body = match locked {
        Some(l) => vec![Stmt::If(
            e::lnot(l.e()),
            vec![count.set_k(0), rst.set_k(1)],
            counting,
        )],
        None => counting,
    };
    m.push(Item::Always(clk.name().into(), body));
}

/// The reset of the part instance `name`: `rst`, or with `local` a registered copy of its own
/// (`rst_<name>`), placed near the part rather than one flip-flop's route across the die (on the
/// half-device ULX3S design, `rst` into the frame receiver, 4.70 ns of route, became the
/// critical path at 115.2 MHz). The copies follow `rst` a cycle late, like the core's layers'.
fn part_reset(m: &mut Module, name: &str, local: bool) -> Expr {
    if !local {
        return e::r("rst");
    }
    crate::blocks::core::reset_copy(m, &format!("rst_{name}")).e()
}

/// `instance` with its `rst` port connected to `reset`.
fn with_reset(mut instance: Item, reset: Expr) -> Item {
    if let Item::Instance { conns, .. } = &mut instance {
        for (port, expr) in conns.iter_mut() {
            if port == "rst" {
                *expr = reset.clone();
            }
        }
    }
    instance
}

/// The UART receiver and transmitter.
fn uarts(m: &mut Module, divisor: usize, local_resets: bool) {
    m.push(Item::Comment("UART".into()));
    let (rx_rst, tx_rst) = (
        part_reset(m, "receiver", local_resets),
        part_reset(m, "transmitter", local_resets),
    );
    let rx_valid = m.net("rx_valid", 1);
    let rx_data = m.net("rx_data", 8);
    m.push(Item::Instance {
        module: format!("uart_rx_d{divisor}"),
        name: "receiver".into(),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("rst".into(), rx_rst),
            ("rx".into(), e::r("uart_rx")),
            ("out_valid".into(), rx_valid.e()),
            ("out_data".into(), rx_data.e()),
        ],
    });
    let ready = m.net("utx_ready", 1);
    let send = m.net("t_send", 1);
    let byte = m.net("t_byte", 8);
    m.push(Item::Instance {
        module: format!("uart_tx_d{divisor}"),
        name: "transmitter".into(),
        conns: vec![
            ("clk".into(), e::r("clk")),
            ("rst".into(), tx_rst),
            ("in_valid".into(), send.e()),
            ("in_ready".into(), ready.e()),
            ("in_data".into(), byte.e()),
            ("tx".into(), e::r("uart_tx")),
        ],
    });
}

/// The SPI slave, with the UART's byte interface.
fn spi(m: &mut Module, local_resets: bool) {
    m.push(Item::Comment("SPI".into()));
    let reset = part_reset(m, "link", local_resets);
    let rx_valid = m.net("rx_valid", 1);
    let rx_data = m.net("rx_data", 8);
    let ready = m.net("utx_ready", 1);
    let send = m.net("t_send", 1);
    let byte = m.net("t_byte", 8);
    let mut conns: Vec<(String, Expr)> = ["clk", "spi_sck", "spi_cs_n", "spi_mosi"]
        .into_iter()
        .map(|p| (p.to_string(), e::r(p)))
        .collect();
    conns.insert(1, ("rst".into(), reset));
    conns.extend([
        ("spi_miso".into(), e::r("spi_miso")),
        ("out_valid".into(), rx_valid.e()),
        ("out_data".into(), rx_data.e()),
        ("in_valid".into(), send.e()),
        ("in_ready".into(), ready.e()),
        ("in_data".into(), byte.e()),
    ]);
    m.push(Item::Instance {
        module: "spi_slave".into(),
        name: "link".into(),
        conns,
    });
}

/// The sequence numbers of up to [`MAX_IN_FLIGHT`] inferences in flight, and their count.
fn in_flight(m: &mut Module, clk: &Sig) {
    let fifo_bits = bits_for(MAX_IN_FLIGHT - 1);
    m.push(Item::Comment(format!(
        "sequence numbers of up to {MAX_IN_FLIGHT} inferences in flight"
    )));
    let fifo = m.memory("seq_fifo", 8, MAX_IN_FLIGHT);
    let wp = m.reg("fifo_wp", fifo_bits);
    let rp = m.reg("fifo_rp", fifo_bits);
    let inflight = Sig::new("inflight", fifo_bits + 1);
    m.push(Item::Reg(inflight.name().into(), inflight.width()));
    m.push(Item::Assign(e::r("fifo_head"), fifo.read(rp.e())));
    let (push, pop) = (e::r("x_push"), e::r("t_pop"));
    m.push(Item::Always(
        clk.name().into(),
        vec![s::when_else(
            e::r("rst"),
            vec![wp.set_k(0), rp.set_k(0), inflight.set_k(0)],
            vec![
                s::when(
                    push.clone(),
                    vec![fifo.write(wp.e(), e::r("x_seq")), wp.inc()],
                ),
                s::when(pop.clone(), vec![rp.inc()]),
                s::when(
                    e::and(push.clone(), e::lnot(pop.clone())),
                    vec![inflight.inc()],
                ),
                s::when(
                    e::and(e::lnot(push), pop),
                    vec![inflight.set(e::sub(inflight.e(), inflight.k(1)))],
                ),
            ],
        )],
    ));
}

/// `bql_core`, fed by the executor's configuration writes and beats; its results go to the
/// transmitter, which takes one (`t_pop`) when its last byte has gone out.
fn core(m: &mut Module, p: &LinkParams, ifc: &CoreInterface, g: &Geometry) {
    let kk = ifc.pixels_per_beat;
    m.push(Item::Comment("the accelerator".into()));
    let out_ready = m.wire("core_out_ready", 1, e::r("t_pop"));
    let beat = Sig::new("beat", kk * g.elem_width);
    let pixels = if p.binary_input {
        // A bit b becomes the pixel 0xFF or 0x00; the core's loader compares it with the
        // model's input threshold (a value 1..=255, or 0 when every bit is 1), which gives b
        // back: the host binarizes, the core's comparison becomes a wire after synthesis.
        Expr::Concat(
            (0..kk)
                .rev()
                .map(|j| Expr::Repl(8, Box::new(beat.bit(j))))
                .collect(),
        )
    } else {
        beat.e()
    };
    let in_pixels = m.wire("core_in_pixels", kk * 8, pixels);
    let (sel, addr) = (Sig::new("x_sel", 8), Sig::new("x_addr", 16));
    let r = e::r;
    m.push(Item::Instance {
        module: "bql_core".into(),
        name: "core".into(),
        conns: vec![
            ("clk".into(), r("clk")),
            ("rst".into(), r("rst")),
            ("in_valid".into(), r("beat_valid")),
            ("in_ready".into(), r("core_in_ready")),
            ("in_pixels".into(), in_pixels.e()),
            ("out_valid".into(), r("core_out_valid")),
            ("out_ready".into(), out_ready.e()),
            ("out_class".into(), r("core_out_class")),
            ("out_scores".into(), r("core_out_scores")),
            ("cfg_we".into(), r("x_we")),
            ("cfg_sel".into(), sel.slice(ifc.cfg_sel_width - 1, 0)),
            ("cfg_addr".into(), addr.slice(ifc.cfg_addr_width - 1, 0)),
            ("cfg_shift".into(), r("x_cfg_shift")),
            ("cfg_byte".into(), r("x_cfg_byte")),
            ("cfg_index".into(), r("x_cfg_index")),
        ],
    });
    // The high bits of the selector and address registers are checked, not wired.
    let unused: Vec<(Expr, usize)> = [(&sel, ifc.cfg_sel_width), (&addr, ifc.cfg_addr_width)]
        .into_iter()
        .filter(|(reg, used)| *used < reg.width())
        .map(|(reg, used)| (reg.slice(reg.width() - 1, used), reg.width() - used))
        .collect();
    if !unused.is_empty() {
        let width = unused.iter().map(|(_, w)| w).sum();
        let parts = unused.into_iter().map(|(x, _)| x).collect();
        m.wire("unused_cfg_bits", width, Expr::Concat(parts));
    }
}
