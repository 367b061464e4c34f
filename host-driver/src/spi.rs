//! The SPI link: the protocol's byte stream over SPI transactions (`bql gen --link spi`).
//!
//! SPI is full duplex and the host drives the clock: every byte sent brings a byte back. The
//! board answers [`IDLE`] when it has nothing to send, which the frame decoder skips as it skips
//! anything between frames. [`Spi`] turns a [`SpiBus`] (one transaction at a time) into a
//! [`Transport`]: `send` queues whole frames and `recv` sends them in one transaction followed by
//! idle bytes that bring the answers back (a USB round trip per transaction is what an MPSSE
//! link pays, so the frames of a window share one); a frame is never split between two
//! transactions unless it is longer than one.
//!
//! Buses: [`crate::mpsse::MpsseBus`] (an FTDI channel in MPSSE mode: the iCEBreaker's channel A),
//! [`SimSpiBus`] (the simulated board's socket), and [`FaultyBus`] around either for the
//! fault-injection tests (transactions dropped, corrupted, repeated, the board reset).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::faults::{ResetFn, Rng};
use crate::transport::Transport;

/// What MISO carries when the board has nothing to send (`bql_hdl_gen::blocks::spi::IDLE`),
/// and what the host clocks out when it only reads.
pub const IDLE: u8 = 0x00;

/// The longest transaction: an MPSSE data command carries at most 65,536 bytes.
pub const MAX_TRANSACTION: usize = 65_536;

/// Bytes a poll clocks after the queued frames: a result frame of the default model with room
/// to spare; a longer reply comes in several polls. Polls that bring nothing back grow by a
/// quarter, up to [`MAX_POLL_BYTES`], so that waiting for a slow model costs fewer round trips
/// while a fast one is not polled long past its answer.
const POLL_BYTES: usize = 64;
/// The longest poll: 4 KiB, 1.1 ms at 30 MHz SCK.
const MAX_POLL_BYTES: usize = 4096;

/// One SPI transaction at a time.
pub trait SpiBus: Send {
    /// Chip select low, `mosi` clocked out (most significant bit first) while as many bytes
    /// are clocked in, chip select high. Returns the bytes clocked in.
    fn transfer(&mut self, mosi: &[u8]) -> Result<Vec<u8>>;
    /// The SCK frequency, Hz.
    fn sck_hz(&self) -> u64;
    /// What the bus is connected to, for messages.
    fn describe(&self) -> String;
}

/// The protocol's byte pipe over an SPI bus.
pub struct Spi<B: SpiBus> {
    bus: B,
    queued: Vec<u8>,
    received: VecDeque<u8>,
    poll: usize,
}

impl<B: SpiBus> Spi<B> {
    /// A transport over `bus`.
    pub fn new(bus: B) -> Self {
        Spi {
            bus,
            queued: Vec::new(),
            received: VecDeque::new(),
            poll: POLL_BYTES,
        }
    }

    /// The bus.
    pub fn bus_mut(&mut self) -> &mut B {
        &mut self.bus
    }

    /// One transaction: the queued frames, then the poll's idle bytes. True when anything but
    /// idle came back.
    fn transfer(&mut self) -> Result<bool> {
        let mut mosi = std::mem::take(&mut self.queued);
        let sending = !mosi.is_empty();
        mosi.resize(mosi.len() + self.poll, IDLE);
        let miso = self.bus.transfer(&mosi)?;
        let any = miso.iter().any(|&b| b != IDLE);
        self.poll = if any || sending {
            POLL_BYTES
        } else {
            (self.poll + self.poll / 4).min(MAX_POLL_BYTES)
        };
        if any {
            self.received.extend(miso);
        }
        Ok(any)
    }
}

impl<B: SpiBus> Transport for Spi<B> {
    /// Queues `bytes`; a transaction goes out only when they would not fit beside what is
    /// queued and the poll.
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(MAX_TRANSACTION - MAX_POLL_BYTES) {
            if self.queued.len() + chunk.len() + MAX_POLL_BYTES > MAX_TRANSACTION {
                self.transfer()?;
            }
            self.queued.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        while self.received.is_empty() {
            if !self.transfer()? && Instant::now() >= deadline {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.received.len());
        for (slot, byte) in buf.iter_mut().zip(self.received.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }

    fn line_rate(&self) -> Option<f64> {
        Some(self.bus.sck_hz() as f64 / 8.0)
    }

    fn describe(&self) -> String {
        self.bus.describe()
    }

    fn idle_byte(&self) -> Option<u8> {
        Some(IDLE)
    }
}

/// The simulated board's SPI side: a Unix socket carrying each transaction's MOSI bytes (after
/// a little-endian u32 count) and returning as many MISO bytes (`bql_sim::serve`).
pub struct SimSpiBus {
    stream: UnixStream,
    path: String,
    sck_hz: u64,
}

impl SimSpiBus {
    /// Connects to the simulated board's socket at `path`; `sck_hz` is the SCK the simulation
    /// runs (the design's).
    pub fn connect(path: &Path, sck_hz: u64) -> Result<SimSpiBus> {
        let path_text = path.display().to_string();
        let stream = UnixStream::connect(path).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot connect to the simulated board's SPI socket {path_text}: {e}. Is \
                     `bql sim --serve --link spi` running?"
                ),
            )
        })?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| Error::new(ErrorKind::Io, format!("{path_text}: {e}")))?;
        Ok(SimSpiBus {
            stream,
            path: path_text,
            sck_hz,
        })
    }
}

impl SpiBus for SimSpiBus {
    fn transfer(&mut self, mosi: &[u8]) -> Result<Vec<u8>> {
        let fail = |what: &str, e: std::io::Error| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "{}: {what} failed: {e} (has the simulated board stopped?)",
                    self.path
                ),
            )
        };
        let mut request = Vec::with_capacity(4 + mosi.len());
        request.extend_from_slice(&(mosi.len() as u32).to_le_bytes());
        request.extend_from_slice(mosi);
        self.stream
            .write_all(&request)
            .map_err(|e| fail("write", e))?;
        let mut miso = vec![0; mosi.len()];
        self.stream
            .read_exact(&mut miso)
            .map_err(|e| fail("read", e))?;
        Ok(miso)
    }

    fn sck_hz(&self) -> u64 {
        self.sck_hz
    }

    fn describe(&self) -> String {
        format!(
            "the simulated board's SPI socket {} (SCK {:.1} MHz)",
            self.path,
            self.sck_hz as f64 / 1e6
        )
    }
}

/// Probabilities per transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransactionFaults {
    /// The transaction never reaches the board (its MISO reads idle).
    pub drop: f64,
    /// One bit flips in one byte, MOSI or MISO.
    pub corrupt: f64,
    /// The transaction happens twice; the host reads the second one's MISO.
    pub repeat: f64,
    /// The board is power-cycled before a transaction that carries `INFER` requests, with this
    /// chance per request: mid-stream, after the model was loaded (a reset during loading only
    /// makes the load start over). The requests draw from a sequence of their own, so whether
    /// the k-th `INFER` brings a reset does not depend on how the host's window grouped the
    /// requests into transactions (which follows the machine's load).
    pub reset: f64,
    /// Random seed.
    pub seed: u64,
}

/// What [`FaultyBus`] injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionFaultCounts {
    /// Transactions dropped.
    pub dropped: u64,
    /// Transactions with a flipped bit.
    pub corrupted: u64,
    /// Transactions repeated.
    pub repeated: u64,
    /// Board resets.
    pub resets: u64,
}

/// Mixed into the seed for the resets' sequence.
const RESET_STREAM: u64 = 0x5245_5345_5453_4551;

/// `INFER` requests among a transaction's MOSI bytes.
fn infer_requests(mosi: &[u8]) -> usize {
    let mut d = bql_protocol::Decoder::new(bql_protocol::SYNC_REQUEST, usize::from(u16::MAX));
    d.push(mosi);
    std::iter::from_fn(|| d.next_frame())
        .filter(|f| {
            matches!(f, bql_protocol::Decoded::Frame(r) if r.head == bql_protocol::Op::Infer as u8)
        })
        .count()
}

/// A bus that damages transactions, for the fault-injection tests.
pub struct FaultyBus<B: SpiBus> {
    inner: B,
    cfg: TransactionFaults,
    rng: Rng,
    /// The resets' own sequence ([`TransactionFaults::reset`]).
    reset_rng: Rng,
    reset: Option<ResetFn>,
    /// What was injected so far.
    pub injected: TransactionFaultCounts,
    /// Inject nothing while false.
    pub armed: bool,
}

impl<B: SpiBus> FaultyBus<B> {
    /// Wraps `inner`; `reset` power-cycles the board when the config asks for resets.
    pub fn new(inner: B, cfg: TransactionFaults, reset: Option<ResetFn>) -> Self {
        FaultyBus {
            inner,
            cfg,
            rng: Rng::new(cfg.seed),
            reset_rng: Rng::new(cfg.seed ^ RESET_STREAM),
            reset,
            injected: TransactionFaultCounts::default(),
            armed: true,
        }
    }

    fn flip_one(&mut self, bytes: &mut [u8]) {
        if !bytes.is_empty() {
            let i = (self.rng.next() % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << (self.rng.next() % 8);
        }
    }
}

impl<B: SpiBus> SpiBus for FaultyBus<B> {
    fn transfer(&mut self, mosi: &[u8]) -> Result<Vec<u8>> {
        if !self.armed {
            return self.inner.transfer(mosi);
        }
        let reset = self.reset.is_some()
            && (0..infer_requests(mosi))
                .map(|_| self.reset_rng.chance(self.cfg.reset))
                .fold(false, |any, draw| any | draw);
        if reset {
            self.injected.resets += 1;
            if let Some(r) = self.reset.as_mut() {
                r();
            }
        }
        if self.rng.chance(self.cfg.drop) {
            self.injected.dropped += 1;
            return Ok(vec![IDLE; mosi.len()]);
        }
        let corrupt = self.rng.chance(self.cfg.corrupt);
        let mut out = mosi.to_vec();
        let toward_board = self.rng.next() & 1 == 0;
        if corrupt && toward_board {
            self.flip_one(&mut out);
        }
        let mut miso = self.inner.transfer(&out)?;
        if self.rng.chance(self.cfg.repeat) {
            self.injected.repeated += 1;
            miso = self.inner.transfer(&out)?;
        }
        if corrupt {
            self.injected.corrupted += 1;
            if !toward_board {
                self.flip_one(&mut miso);
            }
        }
        Ok(miso)
    }

    fn sck_hz(&self) -> u64 {
        self.inner.sck_hz()
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
}
