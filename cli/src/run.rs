//! `bql run`: load a model into a board (or the simulated board) over the UART, stream test
//! images, check every result against the reference. `bql flash`: program a board.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bql_hdl_gen::blocks::link::Link;
use bql_host_driver::spi::SimSpiBus;
use bql_host_driver::{run as hrun, Client, MemoryWrite, Serial, Spi, Transport};
use bql_model::dataset::Split;

use crate::args::ModelData;
use crate::{defaults, progress};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: ModelData,
    /// Board (see `bql boards`): its plan, its UART rate.
    #[arg(long, default_value = "icebreaker")]
    board: String,
    /// Serial port of the board (e.g. /dev/ttyUSB1). With `--link spi`: the FT2232H's serial
    /// number (default: the first FT2232H), or the socket of `bql sim --serve --link spi`.
    #[arg(long, conflicts_with = "sim")]
    port: Option<String>,
    /// Start the simulated board (the generated top level in Verilator behind a
    /// pseudo-terminal, or an SPI socket) and run against it.
    #[arg(long)]
    sim: bool,
    /// The host link: `uart` (the USB-serial bridge) or `spi` (the iCEBreaker's FTDI channel A
    /// in MPSSE mode, SCK up to 30 MHz; the bitstream must be built with `--link spi`).
    #[arg(long, value_name = "LINK", default_value = "uart", value_parser = ["uart", "spi"])]
    link: String,
    /// Baud rate (default: the fastest the board's USB-serial bridge and the design clock share,
    /// as `bql gen` chose it).
    #[arg(long)]
    baud: Option<u32>,
    /// Design clock in MHz of the bitstream on the board (as given to `bql gen`/`bql build`):
    /// its plan and its UART rate.
    #[arg(long)]
    clock: Option<f64>,
    /// Clocks per UART bit of the simulated board (default: the board's real divisor).
    #[arg(long)]
    divisor: Option<usize>,
    /// Do not load weights and thresholds; use what the bitstream holds.
    #[arg(long)]
    no_load: bool,
    /// Inferences in flight (default: as many as the board has frame slots, which never
    /// overflows them; more can hide a slow host's round trip, at the price of a frame dropped
    /// and sent again when every slot is full).
    #[arg(long)]
    window: Option<usize>,
}

/// Memory words of `net` for the design of `plan`, in `WRITE` order.
pub fn memory_writes(net: &bql_model::Network, plan: &bql_hdl_gen::plan::Plan) -> Vec<MemoryWrite> {
    bql_sim::harness::memory_images(net, plan, true)
        .into_iter()
        .map(|(sel, words)| MemoryWrite {
            sel: sel as u8,
            addr: 0,
            words,
        })
        .collect()
}

/// The simulated board's folder for `board` and its link (a UART and an SPI board may run side
/// by side).
pub fn sim_board_dir(board: &str, link: Link) -> PathBuf {
    let name = match link {
        Link::Uart { .. } => format!("board-{board}"),
        Link::Spi { .. } => format!("board-{board}-spi"),
    };
    defaults::project_root().join("build").join(name)
}

/// The link's rate, for messages.
pub fn describe_link(link: Link) -> String {
    match link {
        Link::Uart { divisor } => format!("{divisor} clocks per UART bit"),
        Link::Spi { sck_hz } => format!("SPI, SCK {:.1} MHz", sck_hz as f64 / 1e6),
    }
}

/// Opens the transport to the board: `port` (a serial port, an SPI socket or an FT2232H serial
/// number) over `link`.
fn open_transport(link: Link, port: Option<&str>, baud: u32) -> Result<Box<dyn Transport>> {
    Ok(match (link, port) {
        (Link::Uart { .. }, Some(p)) => Box::new(Serial::open(p, baud)?),
        (Link::Uart { .. }, None) => bail!("give --port PATH (the board's serial port) or --sim"),
        (Link::Spi { sck_hz }, Some(p)) if is_socket(p) => Box::new(Spi::new(SimSpiBus::connect(
            std::path::Path::new(p),
            sck_hz,
        )?)),
        (Link::Spi { .. }, Some(p)) if p.contains('/') => bail!(
            "--port {p}: no such socket. With --link spi, --port is the socket of `bql sim \
             --serve --link spi` or the FT2232H's USB serial number (omit it for the first one)"
        ),
        (Link::Spi { sck_hz }, serial) => Box::new(Spi::new(
            bql_host_driver::mpsse::MpsseBus::open(serial, sck_hz)?,
        )),
    })
}

fn is_socket(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Fractions of request frames the board reported damaged and of response frames that failed
/// their CRC here: the link's measured frame error rates.
fn damage_rates(l: &bql_host_driver::LinkStats) -> (f64, f64) {
    let up = l.error_codes as f64 / l.frames_sent.max(1) as f64;
    let down = l.bad_frames as f64 / (l.frames_received + l.bad_frames).max(1) as f64;
    (up, down)
}

/// What the line and the design allow at the board's real rate.
struct Expected {
    /// Line bits per second.
    line_bps: f64,
    /// The line's rate, for messages.
    line_name: String,
    /// Images per second.
    images_per_s: f64,
    /// What bounds it: `uplink`, `downlink` or `compute`.
    bound: &'static str,
}

impl Expected {
    fn new(design: &bql_hdl_gen::Design, baud: u32) -> Expected {
        let info = &design.link.info;
        // Line bits per second and per byte: 8N1 over the UART, 8 SCK periods over SPI.
        let (line_bps, bits_per_byte, line_name) = match design.link.link {
            Link::Uart { .. } => (baud as f64, 10.0, format!("{baud} baud")),
            Link::Spi { sck_hz } => (
                sck_hz as f64,
                8.0,
                format!("SCK {:.1} MHz", sck_hz as f64 / 1e6),
            ),
        };
        let frame_time =
            |payload: f64| (payload + bql_protocol::OVERHEAD as f64) * bits_per_byte / line_bps;
        let up = frame_time(info.image_bytes as f64);
        let down = frame_time(info.result_bytes() as f64);
        let compute = design.plan.cycles_per_inference as f64 / (design.clock_mhz * 1e6);
        let bound = if up >= down.max(compute) {
            "uplink"
        } else if down >= compute {
            "downlink"
        } else {
            "compute"
        };
        Expected {
            line_bps,
            line_name,
            images_per_s: 1.0 / up.max(down).max(compute),
            bound,
        }
    }
}

/// Starts the simulated board for `design`; returns it and its path.
fn start_sim_board(
    a: &Args,
    b: &bql_hdl_gen::board::Board,
    design: &bql_hdl_gen::Design,
) -> Result<(bql_sim::serve::SimBoard, String)> {
    let dir = sim_board_dir(&a.board, design.link.link);
    design.write(&dir)?;
    let tool = bql_sim::tools::verilator(&defaults::project_root())?;
    eprintln!(
        "starting the simulated {} (Verilator build in {}) ...",
        b.file.name,
        dir.display()
    );
    let sb = bql_sim::serve::SimBoard::start(&tool, design, &dir, None)?;
    let p = sb.path.display().to_string();
    eprintln!(
        "simulated board on {p} ({}{})",
        describe_link(sb.link),
        if sb.cached { ", cached build" } else { "" }
    );
    Ok((sb, p))
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.common.model.as_deref())?;
    let limit = a.common.limit.or(Some(100));
    let (data, data_dir) = defaults::load_split(a.common.dataset.as_deref(), Split::Test, limit)?;
    defaults::check_fits(&net, &data)?;
    let b = crate::gen::load_board(&a.board)?;
    let opts = bql_hdl_gen::Options {
        uart_divisor: a.divisor,
        clock_mhz: a.clock,
        link: crate::gen::link_kind(&a.link),
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&net, &b, &opts)
        .with_context(|| format!("planning {source} for {}", b.file.name))?;
    let info = design.link.info;
    let baud = a.baud.unwrap_or(b.file.baud_at(design.clock_mhz));
    let writes = memory_writes(&net, &design.plan);
    let (mut sim_board, port) = if a.sim {
        let (sb, p) = start_sim_board(&a, &b, &design)?;
        (Some(sb), Some(p))
    } else {
        (None, a.port.clone())
    };
    let transport = open_transport(design.link.link, port.as_deref(), baud)?;
    let port = transport.describe();
    let mut client = Client::new(transport);
    client.policy.window = a.window.map(|w| w.max(1));
    if a.sim {
        // Verilator runs a few times slower than the board: a slow model's results (the CNN's
        // 204,807 cycles, three in flight) take longer than a board's 300 ms wait.
        client.policy.timeout = std::time::Duration::from_secs(2);
    }
    // Simulated cycles from the first result on: the streaming rate, without the load.
    let mut first_result_cycles = None;
    let pb = progress::bar(data.len() as u64, "inferences");
    if !a.no_load {
        progress::line(
            &pb,
            &format!(
                "loading {} memory words ({} WRITE frames) and verifying the load checksum ...",
                writes.iter().map(|w| w.words.len()).sum::<usize>(),
                writes
                    .iter()
                    .map(|w| w.words.len().div_ceil(info.words_per_write().max(1)))
                    .sum::<usize>()
            ),
        );
    }
    let summary = hrun::run(
        &mut client,
        &net,
        &info,
        (!a.no_load).then_some(writes.as_slice()),
        &data.pixels,
        &data.labels,
        |d| {
            pb.set_position(d as u64);
            if d == 1 {
                first_result_cycles = sim_board.as_mut().and_then(|sb| sb.cycles().ok());
            }
        },
    )
    .with_context(|| format!("running on {port}"))?;
    pb.finish_and_clear();
    let sim_cycles = match (sim_board.as_mut(), first_result_cycles) {
        (Some(sb), Some(c0)) => Some(sb.cycles()? - c0),
        _ => None,
    };
    let report = Report {
        a: &a,
        design: &design,
        summary: &summary,
        expected: Expected::new(&design, baud),
        sim_cycles,
    };
    if a.common.json {
        report.json(baud);
    } else {
        println!(
            "{source} on {} via {port}, {} images from {}",
            b.file.name,
            summary.images,
            data_dir.display()
        );
        report.text();
    }
    if let Some(m) = summary.first_mismatches.first() {
        bail!(
            "{} of {} results differ from the reference; first: image {}, board {:?} (class {}), \
             reference {:?} (class {})",
            summary.mismatches,
            summary.images,
            m.index,
            m.scores,
            m.class,
            m.expected_scores,
            m.expected_class
        );
    }
    Ok(())
}

/// What a run reports.
struct Report<'a> {
    a: &'a Args,
    design: &'a bql_hdl_gen::Design,
    summary: &'a hrun::Summary,
    expected: Expected,
    /// Simulated cycles from the first result to the last.
    sim_cycles: Option<u64>,
}

impl Report<'_> {
    /// Results after the first, and their rate at the design clock in the simulation.
    fn simulated(&self) -> (usize, Option<f64>) {
        let streamed = self.summary.images.saturating_sub(1);
        let clock_hz = self.design.clock_mhz * 1e6;
        let rate = self
            .sim_cycles
            .map(|c| streamed as f64 * clock_hz / c.max(1) as f64);
        (streamed, rate)
    }

    fn json(&self, baud: u32) {
        let (s, e) = (self.summary, &self.expected);
        let (up, down) = damage_rates(&s.link);
        println!(
            "{}",
            serde_json::json!({
                "images": s.images, "accuracy": s.accuracy,
                "mismatches": s.mismatches, "inferences_per_s": s.inferences_per_s,
                "link_utilization": s.link_utilization,
                "protocol_efficiency": s.protocol_efficiency,
                "latency_ms": s.latency_ms, "load_seconds": s.load_seconds,
                "expected_inferences_per_s": e.images_per_s, "bound": e.bound, "baud": baud,
                "link_kind": self.a.link, "line_bits_per_s": e.line_bps,
                "clock_mhz": self.design.clock_mhz,
                "simulated_cycles": self.sim_cycles,
                "simulated_inferences_per_s": self.simulated().1,
                "link": s.link, "first_mismatches": s.first_mismatches,
                "request_frames_damaged": up, "response_frames_damaged": down,
            })
        );
    }

    fn text(&self) {
        let (s, e) = (self.summary, &self.expected);
        let mhz = self.design.clock_mhz;
        println!(
            "  mismatches          {} (every score of every image against the reference)",
            s.mismatches
        );
        println!("  accuracy            {:.2} %", 100.0 * s.accuracy);
        println!(
            "  load                {:.2} s (weights and thresholds, checksum verified)",
            s.load_seconds
        );
        println!(
            "  throughput          {:.0} inferences/s measured ({:.2} s)",
            s.inferences_per_s, s.seconds
        );
        println!(
            "  latency             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            s.latency_ms[0], s.latency_ms[1], s.latency_ms[2]
        );
        println!(
            "  protocol efficiency {:.1} % (INFER payload bytes / frame bytes)",
            100.0 * s.protocol_efficiency
        );
        if let Some(u) = s.link_utilization {
            let nominal = self.a.sim && self.a.link == "uart";
            println!(
                "  link utilization    {:.1} % of {}{}",
                100.0 * u,
                e.line_name,
                if nominal {
                    " (nominal: a pseudo-terminal has no baud rate)"
                } else {
                    ""
                }
            );
        }
        println!(
            "  expected at {} and {mhz} MHz: {:.0} inferences/s ({}-bound)",
            e.line_name, e.images_per_s, e.bound
        );
        if let (Some(c), (streamed, Some(rate))) = (self.sim_cycles, self.simulated()) {
            println!(
                "  simulated           {c} cycles for the {streamed} results after the first ({}) \
                 = {rate:.0} inferences/s at {mhz} MHz{}",
                describe_link(self.design.link.link),
                match self.design.link.link {
                    Link::Uart { .. } => " (includes cycles spent waiting for this host)",
                    Link::Spi { .. } => " (a host that clocks SCK without pause)",
                }
            );
        }
        self.faults();
    }

    fn faults(&self) {
        let l = &self.summary.link;
        if l.retransmissions + l.bad_frames + l.error_codes + l.rehandshakes == 0 {
            return;
        }
        println!(
            "  link faults         {} retransmissions, {} bad frames, {} error codes, {} \
             re-handshakes, {} reloads",
            l.retransmissions, l.bad_frames, l.error_codes, l.rehandshakes, l.reloads
        );
        let (up, down) = damage_rates(l);
        println!(
            "  link quality        {:.2} % of request frames arrived damaged at the board, \
             {:.2} % of response frames here{}",
            100.0 * up,
            100.0 * down,
            if up + down > 0.05 {
                ": check the cable and the rate (--baud lower for a UART)"
            } else {
                ""
            }
        );
    }
}

#[derive(clap::Args)]
pub struct FlashArgs {
    /// Board (see `bql boards`).
    #[arg(long, default_value = "icebreaker")]
    board: String,
    /// Bitstream (default: the last `bql build` for the board).
    bitstream: Option<PathBuf>,
}

pub fn flash(a: FlashArgs) -> Result<()> {
    let b = crate::gen::load_board(&a.board)?;
    let def = b.file.family.def();
    let bit = a.bitstream.unwrap_or_else(|| {
        defaults::project_root()
            .join("build")
            .join(&a.board)
            .join(def.bitstream)
    });
    let out = bql_host_driver::flash::flash(&b.file.loader_board, def.iceprog, &bit)?;
    print!("{out}");
    println!("programmed {} with {}", b.file.name, bit.display());
    Ok(())
}
