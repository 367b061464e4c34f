//! bql-hdl-gen: model + board -> folding plan -> hardware IR -> Verilog, as named passes.
//!
//! Lifecycle of a design:
//! 1. **plan**: [`plan::plan`] picks P x S per layer for the board's device (or takes `--fold`
//!    overrides) and estimates LUTs, FFs and block RAM; a model that cannot fit is refused here,
//!    with the resource that is short and by how much.
//! 2. **lower**: the blocks (`blocks::tree`, `blocks::mvtu`, `blocks::inbuf`, `blocks::argmax`, `blocks::core`)
//!    build [`ir::Module`]s from the plan; every size comes from the model at run time.
//! 3. **print**: [`verilog`] prints each module to its own file; it makes no decisions.
//! 4. **memories**: [`memfiles`] writes the weight and threshold images (`$readmemh`).
//!
//! The result is a [`Design`]: a set of files with a digest, written to a folder by
//! [`Design::write`]. Nothing here runs a tool; `sim` and `build` do that on the folder.

#![deny(missing_docs)]

pub mod blocks {
    //! Hardware blocks, one module each.
    pub mod argmax;
    pub mod clock;
    pub mod compressor;
    pub mod compressor_ice40;
    pub mod core;
    pub mod inbuf;
    pub mod link;
    pub mod mvtu;
    pub mod pool;
    pub mod spi;
    pub mod tree;
    pub(crate) mod tree_search;
    pub mod uart;
}
pub mod board;
pub mod check;
pub mod count;
pub mod dump;
mod error;
pub mod family;
pub mod ir;
pub mod memfiles;
pub mod plan;
pub mod verilog;

use std::collections::BTreeMap;
use std::path::Path;

use bql_model::Network;

pub use error::{Error, ErrorKind, Result};

/// Generator version, written into every file header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Choices of a generation beyond the model and the board.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `(layer, P, S)` folding overrides.
    pub folds: Vec<(usize, usize, usize)>,
    /// Clocks per UART bit; `None` takes the board's clock and baud rate. Simulation uses a
    /// small divisor so that the UART does not dominate the run time.
    pub uart_divisor: Option<usize>,
    /// Also write the intermediate form after this pass (`dump/<pass>.txt`).
    pub dump_after: Option<Pass>,
    /// Design clock in MHz; when it differs from the board's clock a PLL makes it (the highest
    /// frequency the PLL can make that is not above it). `None`: the board's clock, no PLL.
    pub clock_mhz: Option<f64>,
    /// Plan for the device's full speed. By default the planner folds no faster than the
    /// board's UART can deliver images ([`link_interval`]): lanes beyond that rate would idle
    /// behind the link and only cost logic, place-and-route time and power.
    pub ignore_link: bool,
    /// How binary layers count their lanes; `None`: the family's default (its cells: CCU2C on
    /// the ECP5, SB_LUT4 + SB_CARRY on the iCE40).
    pub popcount: Option<blocks::tree::Popcount>,
    /// The host link: the board's UART (the default) or its SPI link.
    pub link: LinkKind,
}

/// Which of a board's host links a design uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkKind {
    /// The USB-serial bridge's UART.
    #[default]
    Uart,
    /// SPI from the FTDI's MPSSE channel (boards with an `[spi]` section).
    Spi,
}

impl LinkKind {
    /// Parses `uart` or `spi`.
    pub fn parse(name: &str) -> Option<LinkKind> {
        match name {
            "uart" => Some(LinkKind::Uart),
            "spi" => Some(LinkKind::Spi),
            _ => None,
        }
    }
}

/// The link of `kind` on `board` at a design clock of `clock_mhz`; `uart_divisor` overrides the
/// UART's clocks per bit (simulation). An error names what the board lacks.
pub fn link_for(
    board: &board::Board,
    kind: LinkKind,
    clock_mhz: f64,
    uart_divisor: Option<usize>,
) -> Result<blocks::link::Link> {
    use blocks::link::Link;
    let f = &board.file;
    match (kind, uart_divisor) {
        (LinkKind::Spi, _) => f
            .sck_at(clock_mhz)
            .map(|sck_hz| Link::Spi { sck_hz })
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: no SPI host link (its board file has no [spi] section); use --link uart",
                    f.id
                ))
            }),
        (LinkKind::Uart, Some(d)) if d >= 4 => Ok(Link::Uart { divisor: d }),
        (LinkKind::Uart, Some(d)) => Err(Error::invalid(format!(
            "a UART divisor of {d} clocks per bit is too small; use 4 or more"
        ))),
        (LinkKind::Uart, None) => f
            .uart_divisor_at(clock_mhz)
            .map(|divisor| Link::Uart { divisor })
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: no rate of its {} (up to {} baud) is within 0.5 % of an integer divisor \
                     (>= 4) of the {clock_mhz} MHz clock; choose another --clock",
                    f.id,
                    f.bridge.name(),
                    f.max_baud()
                ))
            }),
    }
}

/// Cycles of a `clock_mhz` design clock between two images that the board's link of `kind`
/// can deliver (an `INFER` frame: 8N1 bytes over the UART, 8 SCK periods a byte over SPI): the
/// interval below which a faster core only waits.
pub fn link_interval(net: &Network, board: &board::Board, clock_mhz: f64, kind: LinkKind) -> usize {
    let image = blocks::link::image_bytes(net.input.len(), net.input.encoding);
    let frame = (image + bql_protocol::OVERHEAD) as u64;
    let clock_hz = (clock_mhz * 1e6).round() as u64;
    let (bits, rate) = match kind {
        LinkKind::Uart => (10 * frame, u64::from(board.file.baud_at(clock_mhz))),
        LinkKind::Spi => (8 * frame, board.file.sck_at(clock_mhz).unwrap_or(0)),
    };
    (clock_hz * bits).div_ceil(rate.max(1)) as usize
}

/// The generator's passes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Folding plan per layer, with estimates.
    Plan,
    /// Hardware IR: every module's ports, nets, registers, memories, statements.
    Lower,
}

impl Pass {
    /// The pass's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Plan => "plan",
            Pass::Lower => "lower",
        }
    }
}

/// A generated design: relative path -> contents.
#[derive(Debug, Clone)]
pub struct Design {
    /// The model it implements: its name and architecture (`default (784-256-256-10)`).
    pub model: String,
    /// The plan it was generated from.
    pub plan: plan::Plan,
    /// The core's interface.
    pub interface: blocks::core::CoreInterface,
    /// The signals inside `bql_core` a debug simulation may read (also in `taps.json`).
    pub taps: Vec<blocks::core::Tap>,
    /// The top level's protocol constants (what `INFO` answers).
    pub link: blocks::link::LinkParams,
    /// Files (relative paths) and their contents.
    pub files: BTreeMap<String, String>,
    /// The design clock, MHz (the board's, or the PLL's output).
    pub clock_mhz: f64,
    /// The PLL settings when the design clock comes from one.
    pub pll: Option<family::Pll>,
}

impl Design {
    /// The synthesis top: `bql_board` (PLL + `bql_top`) when there is a PLL, else `bql_top`.
    pub fn top(&self) -> &'static str {
        if self.pll.is_some() {
            "bql_board"
        } else {
            "bql_top"
        }
    }

    /// A digest of every file's name and contents (FNV-1a 64), to cache builds by.
    pub fn digest(&self) -> String {
        let h = bql_protocol::fnv1a64(self.files.iter().flat_map(|(n, t)| {
            [
                n.as_bytes(),
                b"\0".as_slice(),
                t.as_bytes(),
                b"\0".as_slice(),
            ]
        }));
        format!("{h:016x}")
    }

    /// FNV-1a 64 of a text, as 16 hex digits (build cache keys).
    pub fn text_digest(text: &str) -> String {
        format!("{:016x}", bql_protocol::fnv1a64([text.as_bytes()]))
    }

    /// The Verilog sources (paths relative to the design folder).
    pub fn verilog_files(&self) -> Vec<&str> {
        self.files
            .keys()
            .filter(|k| k.ends_with(".v"))
            .map(String::as_str)
            .collect()
    }

    /// The Verilog sources as names inside `rtl/`, where tools run (memory images are found
    /// relative to it).
    pub fn rtl_sources(&self) -> Vec<String> {
        self.verilog_files()
            .iter()
            .filter_map(|f| f.strip_prefix("rtl/"))
            .map(str::to_string)
            .collect()
    }

    /// Writes every file under `dir`, so that the folder never mixes two designs: a folder
    /// that holds another design (its [`DESIGN_MARKER`] names another digest, or it has a
    /// `plan.json` from before the marker existed) is emptied first, with everything built
    /// from that design (bitstream, reports, logs, simulations); a folder with the same design
    /// keeps its build products for the caches. A non-empty folder that bql did not write is
    /// refused rather than touched.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let digest = self.digest();
        let marker = dir.join(DESIGN_MARKER);
        let previous = std::fs::read_to_string(&marker).ok();
        match previous {
            Some(d) if d.trim() == digest => {}
            Some(_) => empty_folder(dir)?,
            None if dir.join("plan.json").is_file() => empty_folder(dir)?,
            None if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) => {
                return Err(Error::invalid(format!(
                    "{} is not empty and is not a bql design folder (no {DESIGN_MARKER}); \
                     choose a new or empty output folder",
                    dir.display()
                )))
            }
            None => {}
        }
        for (name, text) in &self.files {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
            }
            std::fs::write(&p, text)
                .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))?;
        }
        std::fs::write(&marker, format!("{digest}\n"))
            .map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))
    }
}

/// The file in a design folder that names the design it holds (its digest).
pub const DESIGN_MARKER: &str = ".bql-design";

/// Removes everything inside `dir` (a design folder bql wrote).
fn empty_folder(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(|e| Error::io(format!("cannot remove {}", p.display()), e))?;
    }
    Ok(())
}

/// Generates the design of `net` for `board`, with optional `(layer, P, S)` overrides.
pub fn generate(
    net: &Network,
    board: &board::Board,
    folds: &[(usize, usize, usize)],
) -> Result<Design> {
    generate_with(
        net,
        board,
        &Options {
            folds: folds.to_vec(),
            ..Options::default()
        },
    )
}

/// The canonical text the architecture hash is taken of: the input, every layer's shape,
/// folding and memory kind, and the core's interface. Weights are not part of it.
pub fn arch_description(net: &Network, plan: &plan::Plan) -> String {
    let ifc = blocks::core::interface(plan, net.input.len());
    let layers: Vec<String> = plan
        .layers
        .iter()
        .map(|l| {
            format!(
                "{}x{}:P{}:S{}:{:?}:{:?}:{}",
                l.inputs, l.outputs, l.pe, l.simd, l.mem, l.output, l.overlap
            )
        })
        .collect();
    format!(
        "bql-arch input={}:{:?} layers={} ifc={:?}",
        net.input.len(),
        net.input.encoding,
        layers.join(","),
        ifc
    )
}

/// The protocol constants of the design of `net` under `plan` (`clk_locked_port`: the clock
/// comes from a PLL whose lock `bql_top` waits for).
pub fn link_params(
    net: &Network,
    plan: &plan::Plan,
    board: &board::Board,
    link: blocks::link::Link,
    clock_mhz: f64,
    clk_locked_port: bool,
) -> blocks::link::LinkParams {
    use blocks::link;
    let ifc = blocks::core::interface(plan, net.input.len());
    let image_bytes = link::image_bytes(net.input.len(), net.input.encoding);
    let word_bytes = link::word_bytes(&ifc);
    let sels = 2 * plan.layers.len();
    let link_pins: &[&str] = match link {
        link::Link::Uart { .. } => &["uart_rx", "uart_tx"],
        link::Link::Spi { .. } => &["spi_sck", "spi_cs_n", "spi_mosi", "spi_miso"],
    };
    let pin = |name: &str| board.file.pins.get(name);
    let red_led = pin("led_red").is_some_and(|red| link_pins.iter().all(|l| pin(l) != Some(red)));
    link::LinkParams {
        link,
        clock_hz: (clock_mhz * 1e6).round() as u64,
        red_led,
        info: bql_protocol::Info {
            arch_hash: bql_protocol::arch_hash(&arch_description(net, plan)),
            image_bytes: image_bytes as u16,
            max_payload: link::slot_bytes(image_bytes, word_bytes) as u16,
            word_bytes: word_bytes as u16,
            classes: plan.layers.last().map_or(0, |l| l.outputs) as u16,
            score_bytes: link::score_bytes(&ifc) as u8,
            memories: sels as u8,
            slots: link::frame_slots(link::slot_bytes(image_bytes, word_bytes)) as u8,
        },
        input_len: net.input.len(),
        binary_input: matches!(net.input.encoding, bql_model::InputEncoding::Binary { .. }),
        valid_sels: (0..sels)
            .filter(|&s| blocks::core::memory_shape(&plan.layers, s).is_some())
            .collect(),
        led_active_low: board.file.led_active_low,
        clk_locked_port,
        // Registered reset copies per unit on the ECP5 only (`core::unit_reset` says why).
        local_resets: board.file.family == board::Family::Ecp5,
    }
}

/// Generates the design of `net` for `board` with `opts`.
pub fn generate_with(net: &Network, board: &board::Board, opts: &Options) -> Result<Design> {
    net.validate()
        .map_err(|e| Error::invalid(format!("invalid model: {e}")))?;
    // Pass 1: plan, for the design clock.
    let pll = match opts.clock_mhz {
        Some(f) if (f - board.file.clock_mhz).abs() > 1e-6 => {
            Some(blocks::clock::pll_for_board(board, f).ok_or_else(|| {
                Error::invalid(format!(
                    "--clock {f}: the {} PLL cannot make {f} MHz or less from the {} MHz board \
                     clock ({} PLLs make {})",
                    board.device.name,
                    board.file.clock_mhz,
                    board.file.family.def().name,
                    board.file.family.def().pll_range
                ))
            })?)
        }
        _ => None,
    };
    let clock_mhz = pll.as_ref().map_or(board.file.clock_mhz, |p| p.out_mhz);
    let kind = link_for(board, opts.link, clock_mhz, opts.uart_divisor)?;
    let floor = (!opts.ignore_link).then(|| link_interval(net, board, clock_mhz, opts.link));
    let mut plan = plan::plan_counting(net, &board.device, &opts.folds, floor, opts.popcount)?;
    let link = link_params(net, &plan, board, kind, clock_mhz, pll.is_some());
    let image_bytes = link.info.image_bytes as usize;
    if image_bytes > u16::MAX as usize / 2 || link.info.max_payload as usize > 32_768 {
        return Err(Error::unsupported(format!(
            "an input of {image_bytes} bytes does not fit the protocol's 32 KiB frame slots"
        )));
    }
    // Pass 2: lower to modules.
    let header = vec![
        format!("Generated by bql-hdl-gen {VERSION}. Do not edit; regenerate with `bql gen`."),
        format!(
            "Model: {} ({}), board: {} ({}).",
            net.name,
            net.arch_string(),
            board.file.id,
            board.device.name
        ),
        format!(
            "Plan: {}.",
            plan.layers
                .iter()
                .map(|l| format!("L{} {}x{}", l.index, l.pe, l.simd))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    let mut modules = layer_modules(&plan);
    let last = plan.layers.last().expect("planned layers");
    let ifc = blocks::core::interface(&plan, net.input.len());
    let am = blocks::argmax::module(last.outputs, ifc.score_width, ifc.scores_signed);
    modules.insert(am.name.clone(), am);
    // The core's units reset like the link's parts (one rule: `link_params`).
    let core = blocks::core::module(
        &plan,
        net.input.encoding,
        net.input.len(),
        &header,
        link.local_resets,
    );
    modules.insert(core.name.clone(), core);
    let physical = match kind {
        blocks::link::Link::Uart { divisor } => {
            vec![blocks::uart::rx(divisor), blocks::uart::tx(divisor)]
        }
        blocks::link::Link::Spi { .. } => vec![blocks::spi::module()],
    };
    let top = blocks::link::modules(&link, &ifc, &header);
    if let (Some(p), Some(t)) = (&pll, top.last()) {
        let md = blocks::clock::module(board, p, t, &header);
        modules.insert(md.name.clone(), md);
    }
    for md in physical
        .into_iter()
        .chain([blocks::uart::crc16_step()])
        .chain(top)
    {
        modules.insert(md.name.clone(), md);
    }
    // Pass 3: check every module (widths, names, drivers, uses) before anything is printed.
    check::check_design(modules.values()).map_err(Error::check)?;
    let top_name = if pll.is_some() {
        "bql_board"
    } else {
        "bql_top"
    };
    plan.estimate.ff = count::flip_flops(&modules, top_name, board.file.family);
    let mut files = BTreeMap::new();
    match opts.dump_after {
        Some(Pass::Plan) => {
            files.insert(
                "dump/plan.txt".to_string(),
                report(&plan, net, board, pll.as_ref(), kind),
            );
            let json = serde_json::to_string_pretty(&plan)
                .map_err(|e| Error::invalid(format!("cannot encode the plan: {e}")))?;
            files.insert("dump/plan.json".to_string(), json);
        }
        Some(Pass::Lower) => {
            files.insert("dump/lower.txt".to_string(), dump::lower(&modules));
        }
        None => {}
    }
    // Pass 4: print.
    for (name, mut m) in modules {
        if !["bql_core", "bql_top", "bql_board"].contains(&m.name.as_str()) {
            let mut doc = header.clone();
            doc.append(&mut m.doc);
            m.doc = doc;
        }
        files.insert(format!("rtl/{name}.v"), verilog::module(&m));
    }
    // Pass 5: memory images.
    for l in &plan.layers {
        files.insert(
            format!("rtl/{}", l.weights_file()),
            memfiles::hex(&memfiles::weight_words(net, l), l.lanes()),
        );
        if l.output == plan::OutputKind::Threshold {
            files.insert(
                format!("rtl/{}", l.thresholds_file()),
                memfiles::hex(
                    &memfiles::threshold_words(net, l),
                    l.pe * l.threshold_width(),
                ),
            );
        }
    }
    let plan_json = serde_json::to_string_pretty(&serde_json::json!({
        "model": net.name,
        "arch": net.arch_string(),
        "board": board.file.id,
        "device": board.device.name,
        "plan": plan,
        "interface": ifc,
        "link": link,
    }))
    .map_err(|e| Error::invalid(format!("cannot encode plan: {e}")))?;
    files.insert("plan.json".into(), plan_json);
    files.insert(
        "report.txt".into(),
        report(&plan, net, board, pll.as_ref(), kind),
    );
    // The pin file travels with the design (and so is part of its digest).
    files.insert(board.file.pin_file.clone(), board.pins.clone());
    let taps = blocks::core::taps(&plan);
    let taps_json = serde_json::to_string_pretty(&taps)
        .map_err(|e| Error::invalid(format!("cannot encode the debug taps: {e}")))?;
    files.insert("taps.json".into(), taps_json);
    Ok(Design {
        model: format!("{} ({})", net.name, net.arch_string()),
        plan,
        interface: ifc,
        taps,
        link,
        files,
        clock_mhz,
        pll,
    })
}

/// Every layer's modules: its adder tree, MVTU, input buffer and pool, by name.
fn layer_modules(plan: &plan::Plan) -> BTreeMap<String, ir::Module> {
    let mut modules = BTreeMap::new();
    for l in &plan.layers {
        let t = l.tree();
        modules.insert(t.name(), t.module());
        modules.insert(l.mvtu_name(), blocks::mvtu::module(l));
        if l.input == plan::InputMode::Buffer {
            modules.insert(l.inbuf_name(), blocks::inbuf::module(l));
        }
        if let Some((c, k)) = l.conv.and_then(|c| c.pool.map(|k| (c, k))) {
            modules.insert(
                l.pool_name(),
                blocks::pool::module(&l.pool_name(), c.output, l.pe, k),
            );
        }
    }
    modules
}

/// The plan table a person reads.
pub fn report(
    plan: &plan::Plan,
    net: &Network,
    board: &board::Board,
    pll: Option<&family::Pll>,
    link: blocks::link::Link,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "bql plan for {} ({}) on {} ({})",
        net.name,
        net.arch_string(),
        board.file.name,
        board.device.name
    );
    let _ = writeln!(
        s,
        "{:<6} {:>6} {:>6} {:>5} {:>5} {:>8} {:<10} {:>7} {:>7} {:>6}",
        "layer", "in", "out", "P", "S", "cycles", "memory", "LUT", "FF", "BRAM"
    );
    for l in &plan.layers {
        let est = plan::estimate_layer(l, &board.device);
        let _ = writeln!(
            s,
            "{:<6} {:>6} {:>6} {:>5} {:>5} {:>8} {:<10} {:>7} {:>7} {:>6}",
            l.index,
            l.inputs,
            l.outputs,
            l.pe,
            l.simd,
            l.cycles(),
            match l.mem {
                plan::MemKind::BlockRam => "block RAM",
                plan::MemKind::Spram => "SPRAM",
            },
            est.lut,
            est.ff,
            est.bram_blocks
        );
    }
    let e = &plan.estimate;
    let _ = writeln!(
        s,
        "total: about {} LUT4 of {}, {} FF (the generated design's registers), {} of {} block RAMs ({} bits), {} of {} SPRAMs",
        e.lut,
        board.device.luts,
        e.ff,
        e.bram_blocks,
        board.device.bram_blocks,
        e.bram_bits,
        e.spram_blocks,
        board.device.spram_blocks
    );
    if let Some(m) = &plan.logic_overfull {
        let _ = writeln!(
            s,
            "WARNING: no folding fits the logic of this device; this plan {m}. It simulates, but `bql build` refuses it"
        );
    }
    let _ = writeln!(
        s,
        "steady state: {} cycles per inference; ideal (MACs / lanes) {:.1}, ratio {:.2}",
        plan.cycles_per_inference,
        plan.ideal_cycles,
        plan.cycles_per_inference as f64 / plan.ideal_cycles
    );
    if let Some(floor) = plan.link_interval {
        let clock_mhz = pll.map_or(board.file.clock_mhz, |p| p.out_mhz);
        let line = match link {
            blocks::link::Link::Uart { .. } => format!(
                "{} baud ({})",
                board.file.baud_at(clock_mhz),
                board.file.bridge.name()
            ),
            blocks::link::Link::Spi { sck_hz } => {
                format!("SPI at SCK {:.1} MHz (FTDI MPSSE)", sck_hz as f64 / 1e6)
            }
        };
        let _ = writeln!(
            s,
            "link: {line} delivers an image every {floor} cycles at {clock_mhz} MHz; planned no \
             faster (--ignore-link plans for the device's full speed)",
        );
    }
    match pll {
        Some(p) => {
            let _ = writeln!(
                s,
                "clock: {:.3} MHz from the {} MHz board clock through the PLL ({})",
                p.out_mhz,
                board.file.clock_mhz,
                p.settings()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "clock: the {} MHz board clock, no PLL (--clock MHZ runs the design faster \
                 through the PLL)",
                board.file.clock_mhz
            );
        }
    }
    s
}
