//! The host driver against the simulated board: the generated `bql_top` (UART included) in
//! Verilator behind a pseudo-terminal, opened as a serial port. Every result is compared with
//! the reference; the fault-injection tests damage the link and reset the board and require a
//! complete, correct run for every recoverable fault, and the right error for the unrecoverable
//! ones (a dead link, a wrong design).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bql_host_driver::faults::{FaultConfig, FaultCounts, Faulty};
use bql_host_driver::{run, Client, MemoryWrite, Serial};
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

/// The default model's iCEBreaker design (real UART divisor), built once per test process.
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
        let b = bql_hdl_gen::board::load(&root().join("constraints"), "icebreaker").unwrap();
        let design = bql_hdl_gen::generate(&net, &b, &[]).unwrap();
        let dir = root().join("target/bql-tests/board-icebreaker");
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

fn start() -> SimBoard {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let s = setup();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    SimBoard::start(&tool, &s.design, &s.dir, None).unwrap()
}

/// The simulated board's terminal, as a plain file.
fn terminal(board: &SimBoard) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&board.path)
        .unwrap()
}

/// Reads from a terminal until `enough(bytes so far)`, or 20 s.
fn read_until(f: &mut std::fs::File, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    while !enough(&got) && t.elapsed() < Duration::from_secs(20) {
        let n = f.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// The answer frames in `bytes`, in order.
fn answers(bytes: &[u8]) -> Vec<bql_protocol::Frame> {
    let mut d = bql_protocol::Decoder::responses(256);
    d.push(bytes);
    std::iter::from_fn(|| match d.next_frame() {
        Some(bql_protocol::Decoded::Frame(frame)) => Some(frame),
        _ => None,
    })
    .collect()
}

#[test]
fn a_plain_serial_client_gets_answers_to_ping_and_info() {
    let board = start();
    let mut f = terminal(&board);
    f.write_all(&bql_protocol::encode_request(0x01, 7, &[]))
        .unwrap();
    f.write_all(&bql_protocol::encode_request(0x02, 8, &[]))
        .unwrap();
    let want = 7 + 4 + 7 + bql_protocol::Info::LEN;
    let got = read_until(&mut f, |b| b.len() >= want);
    common::check_ping_and_info(&got, &setup().design.link.info);
}

/// A `WRITE` that arrives while an inference is in flight waits for its result, so the
/// answers come INFER first although the one-word `WRITE` takes far fewer cycles than the
/// inference: the core reads no memory word for an image while the host writes one
/// (docs/protocol.md). The write (layer 0's first word, unchanged) is acknowledged.
#[test]
fn a_write_waits_for_the_inference_in_flight() {
    let s = setup();
    let board = start();
    let mut f = terminal(&board);
    let image = bql_host_driver::run::encode_image(&s.net, &s.data.pixels[..s.data.image_len()]);
    let first_word = &s.writes[0];
    let write = bql_protocol::write_payload(
        first_word.sel,
        0,
        &first_word.words[..1],
        s.design.link.info.word_bytes as usize,
    );
    let mut requests = bql_protocol::encode_request(bql_protocol::Op::Infer as u8, 1, &image);
    requests.extend(bql_protocol::encode_request(
        bql_protocol::Op::Write as u8,
        2,
        &write,
    ));
    f.write_all(&requests).unwrap();
    let got = read_until(&mut f, |b| answers(b).len() >= 2);
    let order: Vec<(u8, u8)> = answers(&got).iter().map(|a| (a.seq, a.head)).collect();
    assert_eq!(
        order,
        [(1, 0), (2, 0)],
        "answers (seq, code) in arrival order"
    );
}

/// A `WRITE` that names a memory the design does not have is refused with `BAD_ARGUMENT` and
/// not executed: the load checksum (`STATUS`) leaves its payload out, and a good `WRITE` after
/// it is executed and counted.
#[test]
fn a_write_to_a_missing_memory_is_refused_and_not_counted() {
    let s = setup();
    let board = start();
    let mut f = terminal(&board);
    let word_bytes = s.design.link.info.word_bytes as usize;
    let first = &s.writes[0];
    let missing = s.design.link.info.memories;
    let bad = bql_protocol::write_payload(missing, 0, &first.words[..1], word_bytes);
    let good = bql_protocol::write_payload(first.sel, 0, &first.words[..1], word_bytes);
    let status = bql_protocol::Op::Status as u8;
    let mut requests = bql_protocol::encode_request(bql_protocol::Op::Write as u8, 1, &bad);
    requests.extend(bql_protocol::encode_request(status, 2, &[]));
    requests.extend(bql_protocol::encode_request(
        bql_protocol::Op::Write as u8,
        3,
        &good,
    ));
    requests.extend(bql_protocol::encode_request(status, 4, &[]));
    f.write_all(&requests).unwrap();
    let got = answers(&read_until(&mut f, |b| answers(b).len() >= 4));
    let heads: Vec<(u8, u8)> = got.iter().map(|a| (a.seq, a.head)).collect();
    let refused = bql_protocol::Code::BadArgument as u8;
    assert_eq!(heads, [(1, refused), (2, 0), (3, 0), (4, 0)]);
    let checksum = |a: &bql_protocol::Frame| {
        bql_protocol::Status::from_bytes(&a.payload)
            .expect("a status block")
            .load_checksum
    };
    assert_eq!(
        checksum(&got[1]),
        bql_protocol::crc16(&[]),
        "nothing executed yet"
    );
    assert_eq!(
        checksum(&got[3]),
        bql_protocol::crc16(&good),
        "the good write only"
    );
}

fn stream(
    images: usize,
    faults: Option<FaultConfig>,
) -> (
    bql_host_driver::Result<bql_host_driver::run::Summary>,
    FaultCounts,
) {
    let s = setup();
    let board = Arc::new(Mutex::new(start()));
    let serial = Serial::open(board.lock().unwrap().path.to_str().unwrap(), 3_000_000).unwrap();
    let n = images * s.data.image_len();
    let pixels = &s.data.pixels[..n];
    let labels = &s.data.labels[..images];
    let info = s.design.link.info;
    match faults {
        None => {
            let mut c = Client::new(serial);
            let r = run::run(
                &mut c,
                &s.net,
                &info,
                Some(&s.writes),
                pixels,
                labels,
                |_| {},
            );
            (r, FaultCounts::default())
        }
        Some(cfg) => {
            let b = Arc::clone(&board);
            let reset = Box::new(move || {
                b.lock().unwrap().power_cycle().unwrap();
            });
            let mut c = Client::new(Faulty::new(serial, cfg, Some(reset)));
            c.policy.timeout = Duration::from_millis(250);
            let r = run::run(
                &mut c,
                &s.net,
                &info,
                Some(&s.writes),
                pixels,
                labels,
                |_| {},
            );
            let injected = c.transport().injected;
            (r, injected)
        }
    }
}

#[test]
fn the_default_model_streams_through_the_uart_bit_exact() {
    let (r, _) = stream(100, None);
    let r = r.unwrap();
    assert_eq!(r.images, 100);
    assert_eq!(
        r.mismatches, 0,
        "first mismatches: {:?}",
        r.first_mismatches
    );
    assert!(r.accuracy > 0.9, "accuracy {}", r.accuracy);
    // 98 payload bytes in a 105-byte frame.
    assert!(r.protocol_efficiency >= 0.9, "{}", r.protocol_efficiency);
    assert_eq!(r.link.retransmissions, 0);
}

/// Every fault kind here is recoverable at its rate: the run must complete, with every one of
/// its 40 results right. A driver that gave up at the first fault, or let a damaged result
/// through, fails.
fn survives(name: &str, cfg: FaultConfig) -> FaultCounts {
    let (r, injected) = stream(40, Some(cfg));
    let s = r.unwrap_or_else(|e| {
        panic!("{name}: {injected:?} injected, the run stopped instead of recovering: {e}")
    });
    assert_eq!(s.mismatches, 0, "{name}: {:?}", s.first_mismatches);
    assert_eq!(s.images, 40, "{name}");
    eprintln!(
        "{name}: {injected:?} injected, run completed: {} retransmissions, {} bad frames, {} \
         error codes, {} re-handshakes, {} reloads",
        s.link.retransmissions,
        s.link.bad_frames,
        s.link.error_codes,
        s.link.rehandshakes,
        s.link.reloads
    );
    assert!(injected.total() > 0, "{name}: no fault was injected");
    injected
}

fn kind(seed: u64, f: impl FnOnce(&mut FaultConfig)) -> FaultConfig {
    let mut c = FaultConfig {
        both_directions: true,
        seed,
        ..Default::default()
    };
    f(&mut c);
    c
}

#[test]
fn flipped_bits() {
    survives("flip", kind(1, |c| c.flip = 0.001));
}

#[test]
fn dropped_bytes() {
    survives("drop", kind(2, |c| c.drop = 0.001));
}

#[test]
fn duplicated_bytes() {
    survives("duplicate", kind(3, |c| c.duplicate = 0.001));
}

#[test]
fn garbage_between_bytes() {
    survives("garbage", kind(4, |c| c.garbage = 0.001));
}

#[test]
fn delayed_requests() {
    survives(
        "delay",
        kind(5, |c| {
            c.delay = 0.05;
            c.delay_ms = 30;
        }),
    );
}

#[test]
fn board_resets_mid_stream() {
    survives("reset", kind(6, |c| c.reset = 0.08));
}

#[test]
fn everything_at_once() {
    survives(
        "all",
        kind(7, |c| {
            c.flip = 0.0005;
            c.drop = 0.0005;
            c.duplicate = 0.0005;
            c.garbage = 0.0005;
            c.delay = 0.02;
            c.delay_ms = 20;
            c.reset = 0.06;
        }),
    );
}

/// The wrong bitstream: a design whose architecture hash is not the model's is refused at the
/// handshake with both hashes in the message, before anything is loaded or inferred.
#[test]
fn a_wrong_design_is_refused_at_the_handshake() {
    let s = setup();
    let board = start();
    let serial = Serial::open(board.path.to_str().unwrap(), 3_000_000).unwrap();
    let mut c = Client::new(serial);
    let mut expected = s.design.link.info;
    expected.arch_hash ^= 1;
    let e = c.handshake(&expected).unwrap_err();
    assert_eq!(e.kind, bql_host_driver::ErrorKind::WrongDesign);
    assert!(
        e.message
            .contains(&format!("{:016x}", s.design.link.info.arch_hash))
            && e.message.contains(&format!("{:016x}", expected.arch_hash)),
        "{e}"
    );
}

/// A dead link (every byte to the board lost) cannot be recovered: the run ends with a
/// timeout, after its retries, and no result.
#[test]
fn a_dead_link_ends_in_a_timeout() {
    let (r, injected) = stream(
        2,
        Some(FaultConfig {
            drop: 1.0,
            seed: 8,
            ..Default::default()
        }),
    );
    let e = r.expect_err("nothing can get through");
    assert_eq!(e.kind, bql_host_driver::ErrorKind::Timeout, "{e}");
    assert!(injected.total() > 0);
}

/// A bad cable: 0.2 % of the bytes dropped, 0.2 % flipped and 0.2 % duplicated, both
/// directions, from the load on (the rate at which a WRITE used to fail 8 times in a row and stop
/// the run). The client splits WRITE frames while they keep arriving damaged, keeps retrying while
/// the board answers at all, and waits a few measured round trips (at least the board's
/// abandon time) instead of the full timeout: the run completes with every result right.
#[test]
fn a_noisy_link_at_two_per_mille_per_fault_kind() {
    let started = std::time::Instant::now();
    let (r, injected) = stream(
        20,
        Some(kind(11, |c| {
            c.flip = 0.002;
            c.drop = 0.002;
            c.duplicate = 0.002;
        })),
    );
    let s = r.unwrap_or_else(|e| panic!("{injected:?} injected: the run stopped: {e}"));
    assert_eq!(
        (s.images, s.mismatches),
        (20, 0),
        "{:?}",
        s.first_mismatches
    );
    eprintln!(
        "0.2 %: {injected:?} injected; {} frames sent, {} retransmissions, {} damaged requests \
         reported, {} damaged responses; {:.1} s",
        s.link.frames_sent,
        s.link.retransmissions,
        s.link.error_codes,
        s.link.bad_frames,
        started.elapsed().as_secs_f64()
    );
    assert!(injected.dropped > 0 && injected.flipped > 0 && injected.duplicated > 0);
}

/// A model's design for a board on a simulated board, with the host's writes (every memory, or
/// the SPRAM ones) and the MNIST slice.
struct Started {
    net: Network,
    design: bql_hdl_gen::Design,
    writes: Vec<MemoryWrite>,
    data: Dataset,
    serial: Serial,
    _board: SimBoard,
}

fn start_model(model: &str, all_memories: bool) -> Started {
    start_model_on("icebreaker", model, all_memories)
}

fn start_model_on(board: &str, model: &str, all_memories: bool) -> Started {
    let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
    let b = bql_hdl_gen::board::load(&root().join("constraints"), board).unwrap();
    let design = bql_hdl_gen::generate(&net, &b, &[]).unwrap();
    let dir = root().join(format!("target/bql-tests/board-{board}-{model}"));
    design.write(&dir).unwrap();
    let writes = common::memory_writes(&net, &design.plan, all_memories);
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let board = SimBoard::start(&tool, &design, &dir, None).unwrap();
    let serial = Serial::open(board.path.to_str().unwrap(), 3_000_000).unwrap();
    Started {
        net,
        design,
        writes,
        data,
        serial,
        _board: board,
    }
}

/// The default model's ULX3S design over the simulated UART (real divisor): the ECP5 top, whose
/// link parts and layers each reset from a registered copy of the power-on reset, answers every
/// image right.
#[test]
fn the_default_model_streams_through_the_ulx3s_uart_bit_exact() {
    streams_bit_exact(start_model_on("ulx3s", "default.bqm", false), 20);
}

/// The MNIST CNN's iCEBreaker design over the simulated UART: its SPRAM layers loaded by the
/// host, ten images streamed, every result checked against the reference.
#[test]
fn the_mnist_cnn_streams_through_the_uart_bit_exact() {
    streams_bit_exact(start_model("mnist-cnn.bqm", false), 10);
}

/// Streams the first `images` of the slice through a started board: every result arrives, and
/// every score matches the reference.
fn streams_bit_exact(started: Started, images: usize) {
    let Started {
        net,
        design,
        writes,
        data,
        serial,
        _board: _alive,
    } = started;
    let mut c = Client::new(serial);
    let r = run::run(
        &mut c,
        &net,
        &design.link.info,
        Some(&writes),
        &data.pixels[..images * data.image_len()],
        &data.labels[..images],
        |_| {},
    )
    .unwrap();
    assert_eq!(r.images, images);
    assert_eq!(
        r.mismatches, 0,
        "first mismatches: {:?}",
        r.first_mismatches
    );
}

/// `model` on the simulated iCEBreaker (every memory loaded by the host) behind a relay that
/// drops, flips and duplicates `rate` of the bytes per kind in both directions, from the load
/// on: the run must complete with every result right. Returns what was injected.
fn noisy_run(model: &str, images: usize, rate: f64, seed: u64) -> FaultCounts {
    let Started {
        net,
        design,
        writes,
        data,
        serial,
        _board: _alive,
    } = start_model(model, true);
    let cfg = kind(seed, |c| {
        c.flip = rate;
        c.drop = rate;
        c.duplicate = rate;
    });
    let mut c = Client::new(Faulty::new(serial, cfg, None));
    c.policy.timeout = Duration::from_millis(250);
    let started = Instant::now();
    let r = run::run(
        &mut c,
        &net,
        &design.link.info,
        Some(&writes),
        &data.pixels[..images * data.image_len()],
        &data.labels[..images],
        |_| {},
    );
    let injected = c.transport().injected;
    let s = r.unwrap_or_else(|e| panic!("{model}: {injected:?} injected: the run stopped: {e}"));
    assert_eq!(
        (s.images, s.mismatches),
        (images, 0),
        "{:?}",
        s.first_mismatches
    );
    eprintln!(
        "{model} at {} % per kind: {injected:?} injected; {} words loaded, {} frames sent, {} \
         retransmissions, {} damaged requests reported, {} damaged responses; {:.1} s",
        100.0 * rate,
        writes.iter().map(|w| w.words.len()).sum::<usize>(),
        s.link.frames_sent,
        s.link.retransmissions,
        s.link.error_codes,
        s.link.bad_frames,
        started.elapsed().as_secs_f64()
    );
    assert!(injected.dropped > 0 && injected.flipped > 0 && injected.duplicated > 0);
    injected
}

/// 1 % of the bytes dropped, 1 % flipped and 1 % duplicated, both ways: about 3 bytes in a
/// hundred damaged, so an MNIST `INFER` frame arrives whole about 4 times in a hundred. The
/// client pads its requests while the link is in trouble (a request that lost a byte gets a
/// quick "bad CRC" instead of swallowing the next one), retransmits as soon as an answer
/// arrives damaged, and sizes `WRITE` frames for the most words per attempt. The small model
/// keeps the load short here; `make noisy` runs the default model's 15,616-word load.
#[test]
fn a_noisy_link_at_one_percent_per_fault_kind() {
    noisy_run("small.bqm", 20, 0.01, 21);
}

/// The default model at 1 % per kind: a benchmark (about a minute and a half here), run by
/// `make noisy`.
#[test]
#[ignore = "benchmark: make noisy"]
fn the_default_model_over_a_one_percent_link() {
    noisy_run("default.bqm", 5, 0.01, 11);
}
