//! The host driver over the SPI link against the simulated board: the generated `bql_top` with
//! its `spi_slave` in Verilator, both clocks at their real periods (12 MHz design clock, 30 MHz
//! SCK), behind the socket that carries transactions. Everything but USB: the MPSSE bus only
//! changes how a transaction reaches the pins. Every result is compared with the reference; the
//! fault-injection tests drop, corrupt and repeat transactions and reset the board, and require
//! a complete, correct run.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bql_hdl_gen::blocks::link::Link;
use bql_host_driver::spi::{
    FaultyBus, SimSpiBus, SpiBus, TransactionFaultCounts, TransactionFaults, IDLE,
};
use bql_host_driver::{run, Client, MemoryWrite, Spi};
use bql_model::dataset::{Dataset, Split};
use bql_model::Network;
use bql_sim::serve::SimBoard;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Setup {
    net: Network,
    design: bql_hdl_gen::Design,
    dir: PathBuf,
    writes: Vec<MemoryWrite>,
    data: Dataset,
}

/// The default model's iCEBreaker design with the SPI link, built once per test process.
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
        let b = bql_hdl_gen::board::load(&root().join("constraints"), "icebreaker").unwrap();
        let opts = bql_hdl_gen::Options {
            link: bql_hdl_gen::LinkKind::Spi,
            ..Default::default()
        };
        let design = bql_hdl_gen::generate_with(&net, &b, &opts).unwrap();
        let dir = root().join("target/bql-tests/board-icebreaker-spi");
        design.write(&dir).unwrap();
        let writes = common::memory_writes(&net, &design.plan, true);
        let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
        Setup {
            net,
            design,
            dir,
            writes,
            data,
        }
    })
}

fn sck_hz() -> u64 {
    match setup().design.link.link {
        Link::Spi { sck_hz } => sck_hz,
        other => panic!("not an SPI design: {other:?}"),
    }
}

fn start() -> SimBoard {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let s = setup();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    SimBoard::start(&tool, &s.design, &s.dir, None).unwrap()
}

#[test]
fn the_board_runs_at_30_mhz_sck_against_a_12_mhz_clock() {
    assert_eq!(sck_hz(), 30_000_000);
    assert_eq!(setup().design.clock_mhz, 12.0);
}

#[test]
fn raw_transactions_get_answers_to_ping_and_info() {
    let board = start();
    let mut bus = SimSpiBus::connect(&board.path, sck_hz()).unwrap();
    let mut mosi = bql_protocol::encode_request(0x01, 7, &[]);
    mosi.extend(bql_protocol::encode_request(0x02, 8, &[]));
    let mut miso = bus.transfer(&mosi).unwrap();
    // The answers come back while the host clocks idle bytes.
    for _ in 0..4 {
        miso.extend(bus.transfer(&[IDLE; 32]).unwrap());
    }
    common::check_ping_and_info(&miso, &setup().design.link.info);
    // Nothing but the two answers and idle bytes came back.
    let frames = 2 * bql_protocol::OVERHEAD + 4 + bql_protocol::Info::LEN;
    let busy = miso.iter().filter(|&&b| b != IDLE).count();
    assert!(
        busy <= frames,
        "{busy} bytes beside idle, {frames} in the two answers"
    );
}

#[test]
fn a_header_announcing_more_than_a_slot_does_not_swallow_the_next_frame() {
    // A sync byte in garbage followed by a length of 65,535: the board takes it for no frame
    // (more than its 128-byte slots hold) and finds the PING right after it.
    let board = start();
    let mut bus = SimSpiBus::connect(&board.path, sck_hz()).unwrap();
    let mut mosi = vec![bql_protocol::SYNC_REQUEST, 0x01, 0x00, 0xFF, 0xFF];
    mosi.extend(bql_protocol::encode_request(0x01, 9, &[]));
    let mut miso = bus.transfer(&mosi).unwrap();
    for _ in 0..4 {
        miso.extend(bus.transfer(&[IDLE; 32]).unwrap());
    }
    let mut d = bql_protocol::Decoder::responses(64);
    d.push(&miso);
    let mut frames = Vec::new();
    while let Some(x) = d.next_frame() {
        if let bql_protocol::Decoded::Frame(f) = x {
            frames.push(f);
        }
    }
    let want = bql_protocol::Frame {
        head: 0,
        seq: 9,
        payload: bql_protocol::PING_MAGIC.to_vec(),
    };
    assert_eq!(frames, vec![want]);
}

/// Loads the model and streams `images` over SPI, with `faults` on the transactions; then reads
/// the board's STATUS if `read_status`.
fn stream(
    images: usize,
    faults: TransactionFaults,
    read_status: bool,
) -> (
    run::Summary,
    bql_host_driver::LinkStats,
    TransactionFaultCounts,
    Option<bql_protocol::Status>,
) {
    let s = setup();
    let board = Arc::new(Mutex::new(start()));
    let path = board.lock().unwrap().path.clone();
    let bus = SimSpiBus::connect(&path, sck_hz()).unwrap();
    let b = Arc::clone(&board);
    let reset = Box::new(move || b.lock().unwrap().power_cycle().unwrap());
    let mut c = Client::new(Spi::new(FaultyBus::new(bus, faults, Some(reset))));
    let n = images * s.data.image_len();
    let summary = run::run(
        &mut c,
        &s.net,
        &s.design.link.info,
        Some(&s.writes),
        &s.data.pixels[..n],
        &s.data.labels[..images],
        |_| {},
    )
    .unwrap_or_else(|e| panic!("the run over SPI failed: {e}"));
    let injected = c.transport_mut().bus_mut().injected;
    let stats = c.stats;
    // The board's counters, on a clean link only (a faulty one would fault this request too).
    let status = read_status.then(|| c.status().expect("STATUS after the run"));
    (summary, stats, injected, status)
}

#[test]
fn the_default_model_streams_through_spi_bit_exact() {
    let (summary, stats, _, status) = stream(100, TransactionFaults::default(), true);
    assert_eq!(summary.images, 100);
    assert_eq!(summary.mismatches, 0, "{:?}", summary.first_mismatches);
    // A clean link: no frame damaged or lost either way (a byte lost at the clock crossing
    // would show here).
    assert_eq!(
        (stats.bad_frames, stats.error_codes),
        (0, 0),
        "link stats {stats:?}"
    );
    assert_eq!(stats.retransmissions, 0, "link stats {stats:?}");
    // The host kept as many INFER frames unanswered as the board has slots (four of 128 bytes
    // in the block RAM two would take): none found them all full.
    assert_eq!(setup().design.link.info.slots, 4);
    let status = status.expect("a clean link reads STATUS");
    assert_eq!(status.overflows, 0, "board status {status:?}");
}

/// A run with `cfg`'s faults completes with every result right; returns what was injected.
fn survives(name: &str, cfg: TransactionFaults) -> TransactionFaultCounts {
    let (summary, stats, injected, _) = stream(40, cfg, false);
    assert_eq!(summary.images, 40, "{name}");
    assert_eq!(
        summary.mismatches, 0,
        "{name}: {:?}",
        summary.first_mismatches
    );
    eprintln!(
        "{name}: {injected:?} injected, run completed: {} retransmissions, {} bad frames, {} \
         error codes, {} re-handshakes, {} reloads",
        stats.retransmissions,
        stats.bad_frames,
        stats.error_codes,
        stats.rehandshakes,
        stats.reloads
    );
    injected
}

#[test]
fn dropped_transactions() {
    let cfg = TransactionFaults {
        drop: 0.02,
        seed: 11,
        ..Default::default()
    };
    assert!(survives("drop", cfg).dropped > 0);
}

#[test]
fn corrupted_transactions() {
    let cfg = TransactionFaults {
        corrupt: 0.02,
        seed: 12,
        ..Default::default()
    };
    assert!(survives("corrupt", cfg).corrupted > 0);
}

#[test]
fn repeated_transactions() {
    let cfg = TransactionFaults {
        repeat: 0.02,
        seed: 13,
        ..Default::default()
    };
    assert!(survives("repeat", cfg).repeated > 0);
}

#[test]
fn board_resets_mid_stream() {
    let cfg = TransactionFaults {
        reset: 0.08,
        seed: 14,
        ..Default::default()
    };
    assert!(survives("reset", cfg).resets > 0);
}

#[test]
fn everything_at_once() {
    let cfg = TransactionFaults {
        drop: 0.01,
        corrupt: 0.01,
        repeat: 0.01,
        reset: 0.1,
        seed: 15,
    };
    let i = survives("all", cfg);
    assert!(i.dropped > 0 && i.corrupted > 0 && i.repeated > 0 && i.resets > 0);
}

/// A design run through the PLL (`--clock 24`): the simulation tells `bql_top` that the PLL has
/// locked, and SCK meets the faster design clock at another ratio (30 MHz against 24 MHz).
#[test]
fn a_design_behind_the_pll_streams_through_spi_bit_exact() {
    let s = setup();
    let b = bql_hdl_gen::board::load(&root().join("constraints"), "icebreaker").unwrap();
    let opts = bql_hdl_gen::Options {
        link: bql_hdl_gen::LinkKind::Spi,
        clock_mhz: Some(24.0),
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&s.net, &b, &opts).unwrap();
    assert!(design.link.clk_locked_port);
    let dir = root().join("target/bql-tests/board-icebreaker-spi-24");
    design.write(&dir).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let board = SimBoard::start(&tool, &design, &dir, None).unwrap();
    let bus = SimSpiBus::connect(&board.path, sck_hz()).unwrap();
    let mut c = Client::new(Spi::new(bus));
    let images = 30;
    let writes = common::memory_writes(&s.net, &design.plan, true);
    let r = run::run(
        &mut c,
        &s.net,
        &design.link.info,
        Some(&writes),
        &s.data.pixels[..images * s.data.image_len()],
        &s.data.labels[..images],
        |_| {},
    )
    .unwrap();
    assert_eq!((r.images, r.mismatches), (images, 0));
    assert_eq!((c.stats.bad_frames, c.stats.error_codes), (0, 0));
}
