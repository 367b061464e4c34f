//! Fault injection: a transport wrapper that damages the byte stream in both directions, the
//! way a bad cable, a noisy line or an impatient user would, and can reset the board. The
//! fault-injection tests put it between the client and the simulated board and assert that a
//! run either completes with every result right or stops with a clear error.

use std::time::Duration;

use crate::error::Result;
use crate::transport::Transport;

/// Probabilities per byte (drop, flip, duplicate, garbage) and per request (delay, reset).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultConfig {
    /// A byte is lost.
    pub drop: f64,
    /// One bit of a byte is flipped.
    pub flip: f64,
    /// A byte arrives twice.
    pub duplicate: f64,
    /// A random byte is inserted before it.
    pub garbage: f64,
    /// A request is split in two with a pause between the halves.
    pub delay: f64,
    /// Length of that pause.
    pub delay_ms: u64,
    /// The board is reset (power-cycled) just before an `INFER` request: mid-stream, after the
    /// model was loaded (a reset during loading only makes the load start over).
    pub reset: f64,
    /// Damage the board-to-host direction too.
    pub both_directions: bool,
    /// Random seed (runs are reproducible).
    pub seed: u64,
}

/// What was injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    /// Bytes dropped.
    pub dropped: u64,
    /// Bytes with a flipped bit.
    pub flipped: u64,
    /// Bytes duplicated.
    pub duplicated: u64,
    /// Garbage bytes inserted.
    pub garbage: u64,
    /// Requests delayed.
    pub delayed: u64,
    /// Board resets.
    pub resets: u64,
}

impl FaultCounts {
    /// Every injected fault.
    pub fn total(&self) -> u64 {
        self.dropped + self.flipped + self.duplicated + self.garbage + self.delayed + self.resets
    }
}

/// A board reset the wrapper can trigger.
pub type ResetFn = Box<dyn FnMut() + Send>;

/// A small seeded generator (splitmix64): fault runs are reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The wrapper.
pub struct Faulty<T: Transport> {
    inner: T,
    cfg: FaultConfig,
    rng: Rng,
    reset: Option<ResetFn>,
    /// What was injected so far.
    pub injected: FaultCounts,
    /// Inject nothing while false (the handshake of a test, for example).
    pub armed: bool,
}

impl<T: Transport> Faulty<T> {
    /// Wraps `inner`; `reset` power-cycles the board when the config asks for resets.
    pub fn new(inner: T, cfg: FaultConfig, reset: Option<ResetFn>) -> Self {
        Faulty {
            inner,
            cfg,
            rng: Rng::new(cfg.seed),
            reset,
            injected: FaultCounts::default(),
            armed: true,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng.next()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.chance(p)
    }

    fn damage(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 4);
        for &b in bytes {
            if self.chance(self.cfg.garbage) {
                self.injected.garbage += 1;
                out.push(self.next() as u8);
            }
            if self.chance(self.cfg.drop) {
                self.injected.dropped += 1;
                continue;
            }
            let mut b = b;
            if self.chance(self.cfg.flip) {
                self.injected.flipped += 1;
                b ^= 1 << (self.next() % 8);
            }
            out.push(b);
            if self.chance(self.cfg.duplicate) {
                self.injected.duplicated += 1;
                out.push(b);
            }
        }
        out
    }
}

impl<T: Transport> Transport for Faulty<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if !self.armed {
            return self.inner.send(bytes);
        }
        let infer = bytes.get(1) == Some(&(bql_protocol::Op::Infer as u8));
        if infer && self.reset.is_some() && self.chance(self.cfg.reset) {
            self.injected.resets += 1;
            if let Some(r) = self.reset.as_mut() {
                r();
            }
        }
        let damaged = self.damage(bytes);
        if damaged.len() > 1 && self.chance(self.cfg.delay) {
            self.injected.delayed += 1;
            let half = damaged.len() / 2;
            self.inner.send(&damaged[..half])?;
            std::thread::sleep(Duration::from_millis(self.cfg.delay_ms));
            return self.inner.send(&damaged[half..]);
        }
        self.inner.send(&damaged)
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let n = self.inner.recv(buf, timeout)?;
        if !self.armed || !self.cfg.both_directions || n == 0 {
            return Ok(n);
        }
        let damaged = self.damage(&buf[..n]);
        // Duplicates and garbage can make it longer than the buffer: keep what fits (the rest
        // counts as dropped, which is just another fault).
        let m = damaged.len().min(buf.len());
        buf[..m].copy_from_slice(&damaged[..m]);
        Ok(m)
    }

    fn line_rate(&self) -> Option<f64> {
        self.inner.line_rate()
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }

    fn idle_byte(&self) -> Option<u8> {
        self.inner.idle_byte()
    }
}
