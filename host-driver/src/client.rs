//! The protocol client: requests with sequence numbers and retries, the handshake, loading and
//! verifying memories, and streaming inferences with several requests in flight.
//!
//! Reliability rules (docs/protocol.md):
//! - a response counts only when its frame passed the CRC, its sequence number is one the
//!   client is waiting for, and its payload has the right length; a result must also agree with
//!   itself (its class is the argmax of its scores);
//! - a request that gets no valid answer in time, or an error code, is sent again with the same
//!   sequence number (inference and a repeated `WRITE` are idempotent), a bounded number of
//!   times;
//! - when retries run out during a stream, the client re-handshakes: if the board lost its
//!   memories (a reset: the load checksum no longer matches), it reloads them and resumes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bql_protocol::{
    crc16_update, encode_request, parse_result, Code, Decoded, Decoder, Frame, InferResult, Info,
    Op, Status, CRC_INIT, OVERHEAD, PING_MAGIC,
};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::Transport;

/// Filler bytes after each request while the link is in trouble: as many bytes as a request may
/// lose and still get a quick "bad CRC" answer. They are never a sync byte.
const PAD_BYTES: usize = 2;
/// Requests padded after each sign of trouble.
const PAD_FRAMES: u32 = 64;

/// Memory words to load: `words[i]` goes to address `addr + i` of memory `sel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryWrite {
    /// Memory selector.
    pub sel: u8,
    /// First word address.
    pub addr: u16,
    /// Words, bit 0 first.
    pub words: Vec<Vec<bool>>,
}

/// Counters of what happened on the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Request frames sent (retransmissions included).
    pub frames_sent: u64,
    /// Response frames that passed their CRC.
    pub frames_received: u64,
    /// Request bytes sent (frames included).
    pub bytes_sent: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Payload bytes of `INFER` requests sent (first transmissions only).
    pub infer_payload_bytes: u64,
    /// Frame bytes of `INFER` requests sent (first transmissions only).
    pub infer_frame_bytes: u64,
    /// Requests sent again.
    pub retransmissions: u64,
    /// Response frames that failed their CRC, bytes skipped as garbage not counted.
    pub bad_frames: u64,
    /// Error codes received.
    pub error_codes: u64,
    /// Valid frames ignored (stale or duplicate sequence numbers, malformed payloads).
    pub ignored: u64,
    /// Re-handshakes after retries ran out or a stale result.
    pub rehandshakes: u64,
    /// Results refused because the board's load checksum was not the loaded model's.
    pub stale_results: u64,
    /// Memory reloads after the board lost its memories.
    pub reloads: u64,
}

/// Timing and retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wait at most this long for an answer before sending again. The client waits less once
    /// it has measured the link: three times the longest recent round trip, but at least
    /// `min_timeout`.
    pub timeout: Duration,
    /// The shortest wait for an answer.
    pub min_timeout: Duration,
    /// Give a request up when the board stayed silent (not a byte back) for this many full
    /// timeouts, or refused it this many times in a row for another reason than a CRC error.
    pub attempts: u32,
    /// Give a request up after this many attempts in all, even while the board keeps answering
    /// that the request arrived damaged (a noisy but working link).
    pub noisy_attempts: u32,
    /// Inferences in flight; `None`: as many as the board has frame slots ([`Info::slots`]),
    /// which no timing can overflow (a result leaves the board only after its image has left
    /// its slot). More keep a slow host's round trip off the line but can find every slot full
    /// when the core takes an image late (dropped, counted in `STATUS.overflows`, sent again).
    pub window: Option<usize>,
    /// Re-handshakes allowed in a row without a result (a stream that keeps making progress
    /// survives any number of board resets).
    pub rehandshakes: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: Duration::from_millis(300),
            min_timeout: Duration::from_millis(20),
            attempts: 8,
            noisy_attempts: 256,
            window: None,
            rehandshakes: 8,
        }
    }
}

/// One inference result as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Class.
    pub class: usize,
    /// Scores.
    pub scores: Vec<i32>,
    /// Seconds from the first transmission of the request to the result.
    pub latency: f64,
}

/// A protocol client over a transport.
pub struct Client<T: Transport> {
    t: T,
    dec: Decoder,
    seq: u8,
    /// Timing and retries.
    pub policy: Policy,
    /// What happened on the link.
    pub stats: LinkStats,
    info: Option<Info>,
    loaded: Option<(Vec<MemoryWrite>, u16)>,
    /// The longest recent round trip of a request answered at its first attempt, and the
    /// longest recent time per bit of such an exchange (both decaying).
    rtt: Option<(Duration, Duration)>,
    /// An inference was answered at its first attempt, so `rtt` covers a result's compute
    /// time too; until then inferences get the full timeout (a slow model's first result
    /// takes longer than any `WRITE`).
    infer_rtt_seen: bool,
    /// What `WRITE` exchanges showed of the link; it sets the words per `WRITE`.
    write_link: WriteLink,
    /// Some byte arrived since the last request was sent: the board is alive, even if its
    /// answers arrive damaged.
    heard: bool,
    /// Sequence numbers of the inferences in flight (at most the window, so others remain).
    busy: std::collections::BTreeSet<u8>,
    /// Requests still to be padded (see [`Client::trouble`]).
    pad_frames: u32,
    /// The last [`Client::receive`] ended early on a damaged frame.
    damaged: bool,
}

impl<T: Transport> Client<T> {
    /// A client on `t`.
    pub fn new(t: T) -> Self {
        let mut dec = Decoder::responses(64);
        dec.set_idle(t.idle_byte());
        Client {
            t,
            dec,
            seq: 0,
            policy: Policy::default(),
            stats: LinkStats::default(),
            info: None,
            loaded: None,
            rtt: None,
            infer_rtt_seen: false,
            write_link: WriteLink::default(),
            heard: false,
            busy: Default::default(),
            pad_frames: 0,
            damaged: false,
        }
    }

    /// How long to wait for an answer: three times the longest recent round trip, and at least
    /// the time in which the board abandons a damaged frame (so that a retransmission is not
    /// swallowed by it), within the policy's bounds; the full timeout until a round trip was
    /// measured. The bit time comes from measured exchanges, so a simulated board slower than
    /// its nominal rate gets longer waits.
    fn wait_time(&self) -> Duration {
        match self.rtt {
            Some((rtt, bit)) => (rtt * 3)
                .max(bit * (bql_protocol::ABANDON_BITS as u32 + 1_000))
                .clamp(self.policy.min_timeout, self.policy.timeout),
            None => self.policy.timeout,
        }
    }

    /// A round trip of a request answered at its first attempt (Karn's rule: a retransmitted
    /// request's answer could belong to either transmission) that carried `bytes` bytes both
    /// ways.
    fn observe_rtt(&mut self, rtt: Duration, bytes: usize) {
        let bit = rtt / (10 * bytes.max(1)) as u32;
        let decay = |d: Duration| d.mul_f64(0.95);
        self.rtt = Some(match self.rtt {
            Some((r, b)) => (rtt.max(decay(r)), bit.max(decay(b))),
            None => (rtt, bit),
        });
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.t
    }

    /// The transport, mutably (fault injection in tests).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.t
    }

    /// The next sequence number that no inference in flight holds: after a recovery (its
    /// reload can take hundreds of requests) the 8-bit numbers wrap around, and a request must
    /// never share its number with an unanswered inference, whose late answer it would take.
    fn next_seq(&mut self) -> u8 {
        loop {
            self.seq = self.seq.wrapping_add(1);
            if !self.busy.contains(&self.seq) {
                return self.seq;
            }
        }
    }

    /// Sends a request frame; while the link is in trouble, [`PAD_BYTES`] filler bytes follow
    /// it. Returns the frame's length.
    fn send(&mut self, op: Op, seq: u8, payload: &[u8]) -> Result<usize> {
        let mut f = encode_request(op as u8, seq, payload);
        let frame = f.len();
        if self.pad_frames > 0 {
            self.pad_frames -= 1;
            f.resize(frame + PAD_BYTES, 0);
        }
        self.stats.bytes_sent += f.len() as u64;
        self.stats.frames_sent += 1;
        self.heard = false;
        self.t.send(&f)?;
        Ok(frame)
    }

    /// Something arrived damaged or not at all: pad the next [`PAD_FRAMES`] requests. A request
    /// that lost a byte on the way then completes with a filler byte and the board answers "bad
    /// CRC" at once, instead of waiting for the next request's bytes, which it would swallow.
    fn trouble(&mut self) {
        self.pad_frames = PAD_FRAMES;
    }

    /// How long a partly received frame may wait for its next byte: the longest recent round
    /// trip (a USB-serial bridge may hold bytes back for its latency timer, and that shows in
    /// the round trips too), at least 2 ms.
    fn stall_time(&self) -> Duration {
        self.rtt
            .map_or(self.policy.timeout, |(rtt, _)| rtt)
            .max(Duration::from_millis(2))
    }

    /// The next valid response frame within `timeout`, or `None`. `None` comes early, with
    /// `damaged` set, when a frame arrives damaged: its CRC fails, or, while the link is in
    /// trouble, part of it waits longer than [`Client::stall_time`] for the rest (a byte was
    /// lost) or bytes that made no frame are followed by as long a silence (its sync byte was
    /// lost). The caller retransmits then
    /// instead of waiting for its timeout.
    fn receive(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        let mut quiet = true;
        self.damaged = false;
        let skipped_before = self.dec.skipped();
        loop {
            while let Some(d) = self.dec.next_frame() {
                match d {
                    Decoded::Frame(f) => {
                        self.stats.frames_received += 1;
                        return Ok(Some(f));
                    }
                    Decoded::BadCrc => {
                        self.stats.bad_frames += 1;
                        self.damaged = true;
                    }
                }
            }
            if self.damaged {
                self.trouble();
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                // A frame still incomplete after a long silence is a false start in garbage (a
                // sync byte with a made-up length); a short wait says nothing about it.
                if quiet && timeout >= self.policy.min_timeout {
                    self.dec.skip_stalled();
                }
                return Ok(None);
            }
            // Part of a frame, or bytes that were no frame at all (an answer whose sync byte
            // was lost): when the line then stays quiet, the answer was damaged. Only while the
            // link is in trouble: on a clean link a busy host or simulator can pause a frame
            // for longer than a round trip, and the timeout is the right wait there.
            let watch = self.pad_frames > 0;
            let partial = watch && self.dec.pending() > 0;
            let garbage = watch && self.dec.skipped() > skipped_before;
            let wait = if partial || garbage {
                (deadline - now).min(self.stall_time())
            } else {
                deadline - now
            };
            let n = self.t.recv(&mut buf, wait)?;
            if n == 0 && (partial || garbage) && Instant::now() < deadline {
                self.dec.skip_stalled();
                self.stats.bad_frames += 1;
                self.damaged = true;
                continue;
            }
            quiet &= n == 0;
            self.heard |= n > 0;
            self.stats.bytes_received += n as u64;
            self.dec.push(&buf[..n]);
        }
    }

    /// How long the board may stay completely silent before a request is given up: `attempts`
    /// full timeouts, however short the measured waits have become.
    fn silence_limit(&self) -> Duration {
        self.policy.timeout * self.policy.attempts
    }

    /// After a request that got nothing back at all: bytes that are never a sync byte, as many as
    /// the longest frame, so that a frame the board is still waiting to complete (its length
    /// byte damaged, or bytes lost) completes and fails its CRC now, instead of swallowing the
    /// retransmission. In the board's hunt for a sync byte they are skipped.
    fn flush_board(&mut self) -> Result<()> {
        let longest = self.info.map_or(64, |i| i.max_payload as usize) + OVERHEAD;
        self.stats.bytes_sent += longest as u64;
        self.t.send(&vec![0u8; longest])
    }

    /// Drops whatever is buffered or still arriving (before a handshake).
    fn drain(&mut self) -> Result<()> {
        let mut buf = [0u8; 4096];
        while self.t.recv(&mut buf, Duration::from_millis(20))? > 0 {}
        self.dec.reset();
        Ok(())
    }

    /// One request and its answer, with retries. Returns the payload of an `Ok` answer.
    pub fn request(&mut self, op: Op, payload: &[u8]) -> Result<Vec<u8>> {
        self.request_counted(op, payload, u32::MAX).map(|(p, _)| p)
    }

    /// [`Client::request`] with at most `budget` attempts, and the number of attempts it took.
    fn request_counted(&mut self, op: Op, payload: &[u8], budget: u32) -> Result<(Vec<u8>, u32)> {
        let seq = self.next_seq();
        let mut last = String::from("no answer");
        let (mut refusals, mut attempts) = (0u32, 0u32);
        let mut silent = Duration::ZERO;
        let budget = budget.min(self.policy.noisy_attempts);
        while refusals < self.policy.attempts && silent < self.silence_limit() && attempts < budget
        {
            if attempts > 0 {
                self.stats.retransmissions += 1;
            }
            attempts += 1;
            let sent = Instant::now();
            self.send(op, seq, payload)?;
            let deadline = sent + self.wait_time();
            let (mut damaged, mut refused) = (false, false);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(f) = self.receive(left)? else { break };
                if f.seq != seq {
                    self.stats.ignored += 1;
                    continue;
                }
                match Code::from_byte(f.head) {
                    Some(Code::Ok) => {
                        if attempts == 1 {
                            let bytes = payload.len() + f.payload.len() + 2 * OVERHEAD;
                            self.observe_rtt(sent.elapsed(), bytes);
                        }
                        return Ok((f.payload, attempts));
                    }
                    Some(c) => {
                        self.stats.error_codes += 1;
                        last = format!("{} (code {:#04x})", c.describe(), f.head);
                        damaged = c == Code::BadCrc;
                        refused = !damaged;
                        break;
                    }
                    None => {
                        self.stats.ignored += 1;
                        continue;
                    }
                }
            }
            // The board reporting a damaged request, or any byte arriving at all, proves the link
            // works: only a long silence and repeated refusals count towards giving up.
            refusals = if refused { refusals + 1 } else { 0 };
            if damaged || refused || !self.heard {
                self.trouble();
            }
            if damaged || self.heard {
                silent = Duration::ZERO;
            } else {
                silent += sent.elapsed();
                self.flush_board()?;
            }
        }
        let kind = if last == "no answer" {
            ErrorKind::Timeout
        } else {
            ErrorKind::Refused
        };
        Err(Error::new(
            kind,
            format!(
                "{op:?} to {}: {last} after {attempts} attempts (up to {} ms each). Is the board \
                 programmed with a bql bitstream, and is the baud rate right?",
                self.t.describe(),
                self.policy.timeout.as_millis()
            ),
        ))
    }

    /// `PING`: is a bql design there?
    pub fn ping(&mut self) -> Result<()> {
        let p = self.request(Op::Ping, &[])?;
        if p != PING_MAGIC {
            return Err(Error::new(
                ErrorKind::WrongDesign,
                format!(
                    "{} answered PING with {p:02x?}, expected {PING_MAGIC:02x?}: not a bql \
                     design of protocol version {}",
                    self.t.describe(),
                    bql_protocol::VERSION
                ),
            ));
        }
        Ok(())
    }

    /// `INFO`.
    pub fn info(&mut self) -> Result<Info> {
        let p = self.request(Op::Info, &[])?;
        Info::from_bytes(&p).ok_or_else(|| {
            Error::new(
                ErrorKind::WrongDesign,
                format!("malformed INFO answer {p:02x?}"),
            )
        })
    }

    /// `STATUS`.
    pub fn status(&mut self) -> Result<Status> {
        let p = self.request(Op::Status, &[])?;
        Status::from_bytes(&p).ok_or_else(|| {
            Error::new(
                ErrorKind::WrongDesign,
                format!("malformed STATUS answer {p:02x?}"),
            )
        })
    }

    /// Ping, read `INFO` and check that the design is the one `expected` describes.
    pub fn handshake(&mut self, expected: &Info) -> Result<Info> {
        self.drain()?;
        self.ping()?;
        let info = self.info()?;
        if info.arch_hash != expected.arch_hash {
            return Err(Error::new(
                ErrorKind::WrongDesign,
                format!(
                    "the board runs a design with architecture hash {:016x}, but this model on \
                     this board needs {:016x}: the bitstream was built for another model shape \
                     or folding. Rebuild it with `bql build` for this model and flash it.",
                    info.arch_hash, expected.arch_hash
                ),
            ));
        }
        if info != *expected {
            return Err(Error::new(
                ErrorKind::WrongDesign,
                format!("the board's INFO {info:?} differs from the expected {expected:?}"),
            ));
        }
        self.dec.set_max_payload(64.max(info.result_bytes()));
        self.info = Some(info);
        Ok(info)
    }

    /// Loads memory words and verifies the board's load checksum after every frame. The whole
    /// load is repeated (from `CLEAR`) when a checksum disagrees.
    pub fn load(&mut self, writes: &[MemoryWrite]) -> Result<()> {
        let info = self.info.ok_or_else(|| {
            Error::new(
                ErrorKind::Invalid,
                "load before handshake: call handshake first",
            )
        })?;
        let per = info.words_per_write().max(1);
        let mut last = String::new();
        for _ in 0..3 {
            match self.load_once(writes, &info, per) {
                Ok(sum) => {
                    self.loaded = Some((writes.to_vec(), sum));
                    return Ok(());
                }
                Err(e) if e.kind == ErrorKind::LoadFailed => last = e.message,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(ErrorKind::LoadFailed, last))
    }

    fn load_once(&mut self, writes: &[MemoryWrite], info: &Info, max: usize) -> Result<u16> {
        let p = self.request(Op::Clear, &[])?;
        check_sum(&p, CRC_INIT)?;
        let mut sum = CRC_INIT;
        let word_bytes = info.word_bytes as usize;
        let mut per = self.write_link.best_words(word_bytes, max);
        for w in writes {
            let mut i = 0;
            while i < w.words.len() {
                let chunk = &w.words[i..(i + per).min(w.words.len())];
                let addr = w.addr as usize + i;
                let payload = bql_protocol::write_payload(
                    w.sel,
                    addr as u16,
                    chunk,
                    info.word_bytes as usize,
                );
                let after = payload.iter().fold(sum, |s, &b| crc16_update(s, b));
                let exchange = payload.len() + 2 * OVERHEAD + 2;
                match self.write(&payload, sum, after, chunk.len() > 1)? {
                    Some(attempts) => {
                        (sum, i) = (after, i + chunk.len());
                        self.write_link.observe(attempts, exchange);
                        per = self.write_link.best_words(word_bytes, max);
                    }
                    None => {
                        let failed = self.write_link.split_after();
                        self.write_link.observe(2 * failed, exchange);
                        per = chunk.len() / 2;
                    }
                }
            }
        }
        Ok(sum)
    }

    /// One `WRITE` that moves the board's load checksum from `before` to `after`. Returns the
    /// attempts it took, or `None` when it kept failing and the board did not apply it: then
    /// the caller splits it (`splittable`: more than one word), since shorter frames are likelier
    /// to arrive whole on a noisy link.
    fn write(
        &mut self,
        payload: &[u8],
        before: u16,
        after: u16,
        splittable: bool,
    ) -> Result<Option<u32>> {
        let budget = if splittable {
            self.write_link.split_after()
        } else {
            u32::MAX
        };
        match self.request_counted(Op::Write, payload, budget) {
            Ok((p, attempts)) => {
                check_sum(&p, after)?;
                Ok(Some(attempts))
            }
            Err(e) if splittable && matches!(e.kind, ErrorKind::Timeout | ErrorKind::Refused) => {
                // Applied with only its answers lost, or not applied at all: the checksum says.
                match self.status()?.load_checksum {
                    s if s == after => Ok(Some(budget)),
                    s if s == before => Ok(None),
                    s => Err(Error::new(
                        ErrorKind::LoadFailed,
                        format!("load checksum {s:04x} from the board, {before:04x} or {after:04x} expected"),
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Makes sure the board still holds what [`Client::load`] put there; reloads when a reset
    /// wiped it. Returns whether it reloaded.
    pub fn recover(&mut self, expected: &Info) -> Result<bool> {
        self.stats.rehandshakes += 1;
        self.handshake(expected)?;
        let st = self.status()?;
        match self.loaded.clone() {
            Some((writes, sum)) if st.load_checksum != sum => {
                self.stats.reloads += 1;
                self.load(&writes)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Streams `images` (encoded payloads) with `policy.window` requests in flight and calls
    /// `done(index, result)` once per image, in completion order. Only checked results are
    /// passed on; a stream that cannot complete ends with an error.
    pub fn infer_stream(
        &mut self,
        images: &[Vec<u8>],
        expected: &Info,
        done: impl FnMut(usize, Received),
    ) -> Result<()> {
        let r = self.stream_inner(images, expected, done);
        self.busy.clear();
        r
    }

    fn stream_inner(
        &mut self,
        images: &[Vec<u8>],
        expected: &Info,
        mut done: impl FnMut(usize, Received),
    ) -> Result<()> {
        let mut st = Stream {
            images,
            pending: BTreeMap::new(),
            next: 0,
            answered: 0,
            rehandshakes: 0,
        };
        while st.next < images.len() || !st.pending.is_empty() {
            self.fill_window(&mut st, expected.slots as usize)?;
            let timeout = if self.infer_rtt_seen {
                self.wait_time()
            } else {
                self.wait_time().max(self.policy.timeout)
            };
            let oldest = st.pending.values().map(|p| p.last_sent).min();
            let wait = oldest
                .map(|t| (t + timeout).saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let (mut resend, force_recover) = match self.receive(wait)? {
                Some(f) => self.on_answer(&mut st, f, expected, &mut done),
                None => (self.on_silence(&mut st, timeout)?, false),
            };
            let (limit, most) = (self.silence_limit(), self.policy.noisy_attempts);
            let exhausted = resend.iter().any(|s| {
                st.pending
                    .get(s)
                    .is_some_and(|p| p.silent >= limit || p.attempts >= most)
            });
            if force_recover || exhausted {
                resend = self.recover_stream(&mut st, expected)?;
            }
            self.resend(&mut st, resend)?;
        }
        Ok(())
    }

    /// Sends new inferences while the window has room. A window wider than the board's slots
    /// opens to its full width only after the first result: over a fast link (SPI) a first
    /// burst of more frames than slots arrives before the core has taken the first image out
    /// of its slot, and the last frame would overflow.
    fn fill_window(&mut self, st: &mut Stream, slots: usize) -> Result<()> {
        let slots = slots.max(bql_protocol::MIN_SLOTS);
        let window = match self.policy.window {
            None => slots,
            Some(w) if st.answered == 0 => w.clamp(1, slots),
            Some(w) => w.max(1),
        };
        while st.pending.len() < window && st.next < st.images.len() {
            let seq = self.next_seq();
            let image = &st.images[st.next];
            let n = self.send(Op::Infer, seq, image)?;
            self.stats.infer_frame_bytes += n as u64;
            self.stats.infer_payload_bytes += image.len() as u64;
            let now = Instant::now();
            self.busy.insert(seq);
            st.pending.insert(
                seq,
                Pending {
                    index: st.next,
                    first_sent: now,
                    last_sent: now,
                    attempts: 1,
                    silent: Duration::ZERO,
                },
            );
            st.next += 1;
        }
        Ok(())
    }

    /// A valid frame arrived: a result to check and pass on, or an error code. Returns the
    /// requests to send again, and whether the board must be recovered first.
    fn on_answer(
        &mut self,
        st: &mut Stream,
        f: Frame,
        expected: &Info,
        done: &mut impl FnMut(usize, Received),
    ) -> (Vec<u8>, bool) {
        let Some(p) = st.pending.get_mut(&f.seq) else {
            self.stats.ignored += 1;
            return (Vec::new(), false);
        };
        match Code::from_byte(f.head) {
            Some(Code::Ok) => {}
            Some(code) => {
                self.stats.error_codes += 1;
                self.trouble();
                if code == Code::BadCrc {
                    // Damaged on the way, but the board is there.
                    p.silent = Duration::ZERO;
                }
                return (vec![f.seq], false);
            }
            None => {
                self.stats.ignored += 1;
                return (Vec::new(), false);
            }
        }
        let want_sum = self.loaded.as_ref().map_or(CRC_INIT, |l| l.1);
        match parse_result(expected, &f.payload)
            .filter(|r| bql_model::semantics::argmax(&r.scores) == Some(r.class))
        {
            Some(res) if res.load_checksum != want_sum => {
                // Computed from other memories: the board was reset (or loaded by someone
                // else). Recover before anything else counts.
                self.stats.stale_results += 1;
                (Vec::new(), true)
            }
            Some(InferResult { class, scores, .. }) => {
                if p.attempts == 1 {
                    let bytes = st.images[p.index].len() + f.payload.len();
                    self.observe_rtt(p.last_sent.elapsed(), bytes + 2 * OVERHEAD);
                    self.infer_rtt_seen = true;
                }
                let r = Received {
                    class,
                    scores,
                    latency: p.first_sent.elapsed().as_secs_f64(),
                };
                let index = p.index;
                st.pending.remove(&f.seq);
                self.busy.remove(&f.seq);
                st.answered += 1;
                done(index, r);
                // Progress: the board is alive and loaded; only re-handshakes in a row without
                // a result count towards giving up.
                st.rehandshakes = 0;
                (Vec::new(), false)
            }
            None => {
                self.stats.ignored += 1;
                (vec![f.seq], false)
            }
        }
    }

    /// No valid frame within the wait: the requests to send again (those past `timeout`, and
    /// after a damaged answer the one waiting longest).
    fn on_silence(&mut self, st: &mut Stream, timeout: Duration) -> Result<Vec<u8>> {
        let now = Instant::now();
        let mut resend = Vec::new();
        if !self.heard {
            self.trouble();
            self.flush_board()?;
        }
        if self.damaged {
            // An answer arrived damaged: whose is unknown; the request waiting longest goes
            // again (the others keep their timeouts).
            let stall = self.stall_time();
            if let Some((s, _)) = st
                .pending
                .iter()
                .filter(|(_, p)| now.duration_since(p.last_sent) >= stall)
                .min_by_key(|(_, p)| p.last_sent)
            {
                resend.push(*s);
            }
        }
        for (s, p) in st.pending.iter_mut() {
            if now.duration_since(p.last_sent) >= timeout {
                // Bytes that arrived damaged still show a live board.
                p.silent = if self.heard {
                    Duration::ZERO
                } else {
                    p.silent + now.duration_since(p.last_sent)
                };
                resend.push(*s);
            }
        }
        Ok(resend)
    }

    /// Retries ran out, or a result came from other memories: is the board still there, and
    /// does it still hold the model? Returns every unanswered inference, to send again.
    fn recover_stream(&mut self, st: &mut Stream, expected: &Info) -> Result<Vec<u8>> {
        st.rehandshakes += 1;
        if st.rehandshakes > self.policy.rehandshakes {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{}: inferences kept failing after {} re-handshakes in a row without a \
                     result; giving up with {} of {} images done",
                    self.t.describe(),
                    self.policy.rehandshakes,
                    st.next - st.pending.len(),
                    st.images.len()
                ),
            ));
        }
        self.recover(expected)?;
        for p in st.pending.values_mut() {
            (p.attempts, p.silent) = (0, Duration::ZERO);
        }
        Ok(st.pending.keys().copied().collect())
    }

    /// Sends the inferences `seqs` again, each once.
    fn resend(&mut self, st: &mut Stream, mut seqs: Vec<u8>) -> Result<()> {
        seqs.sort_unstable();
        seqs.dedup();
        for seq in seqs {
            if let Some(p) = st.pending.get_mut(&seq) {
                p.attempts += 1;
                p.last_sent = Instant::now();
                let index = p.index;
                self.stats.retransmissions += 1;
                self.send(Op::Infer, seq, &st.images[index])?;
            }
        }
        Ok(())
    }
}

/// An inference in flight.
struct Pending {
    index: usize,
    first_sent: Instant,
    last_sent: Instant,
    attempts: u32,
    /// Time without any byte from the board since this request's last answer.
    silent: Duration,
}

/// A stream's state: the images, the inferences in flight by sequence number, the next image
/// to send, the results so far, and the re-handshakes in a row without a result.
struct Stream<'a> {
    images: &'a [Vec<u8>],
    pending: BTreeMap<u8, Pending>,
    next: usize,
    answered: usize,
    rehandshakes: u32,
}

/// What `WRITE` exchanges showed of the link: moving averages of the attempts a write took and
/// of the bytes of its exchange (request and answer).
#[derive(Debug, Clone, Copy)]
struct WriteLink {
    attempts: f64,
    bytes: f64,
}

impl Default for WriteLink {
    /// A clean link until shown otherwise.
    fn default() -> Self {
        WriteLink {
            attempts: 1.0,
            bytes: 64.0,
        }
    }
}

impl WriteLink {
    /// Attempts after which a `WRITE` is split in two: four times what writes take on average
    /// (at least four), so that a frame is split when the link got worse, not by bad luck.
    fn split_after(&self) -> u32 {
        (4.0 * self.attempts).ceil().max(4.0) as u32
    }

    fn observe(&mut self, attempts: u32, bytes: usize) {
        const K: f64 = 0.1;
        self.attempts += K * (f64::from(attempts) - self.attempts);
        self.bytes += K * (bytes as f64 - self.bytes);
    }

    /// Words per `WRITE` that move the most words per attempt. An exchange of `b` bytes
    /// arrives whole with probability `s = 1 / attempts`, so a byte with `q = s^(1/b)`; `n`
    /// words of `w` bytes then move `n q^(c + w n)` words per attempt (`c` the fixed bytes),
    /// most at `n = -1 / (w ln q)`: 4 words of 8 bytes at 1 % damaged bytes per direction and
    /// kind, the largest frame on a clean link.
    fn best_words(&self, word_bytes: usize, max: usize) -> usize {
        let survive = (1.0 / self.attempts.max(1.0)).powf(1.0 / self.bytes.max(1.0));
        let ln_q = survive.ln();
        if ln_q > -1e-6 {
            return max.max(1);
        }
        let n = -1.0 / (word_bytes.max(1) as f64 * ln_q);
        (n.round() as usize).clamp(1, max.max(1))
    }
}

fn check_sum(payload: &[u8], want: u16) -> Result<()> {
    let got = match payload {
        [a, b] => u16::from_le_bytes([*a, *b]),
        _ => {
            return Err(Error::new(
                ErrorKind::LoadFailed,
                format!("malformed load checksum {payload:02x?}"),
            ))
        }
    };
    if got != want {
        return Err(Error::new(
            ErrorKind::LoadFailed,
            format!("load checksum {got:04x} from the board, {want:04x} expected"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line to nowhere.
    struct Nowhere;

    impl Transport for Nowhere {
        fn send(&mut self, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn recv(&mut self, _: &mut [u8], _: Duration) -> Result<usize> {
            Ok(0)
        }
        fn line_rate(&self) -> Option<f64> {
            None
        }
        fn describe(&self) -> String {
            "nowhere".into()
        }
    }

    /// After a wrap-around, numbers held by inferences in flight are skipped.
    #[test]
    fn sequence_numbers_in_flight_are_never_handed_out_again() {
        let mut c = Client::new(Nowhere);
        c.busy.extend([3u8, 4, 200]);
        let handed: Vec<u8> = (0..600).map(|_| c.next_seq()).collect();
        assert!(handed.iter().all(|s| ![3, 4, 200].contains(s)));
        assert_eq!(&handed[..3], &[1, 2, 5]);
    }

    #[test]
    fn write_frames_shrink_to_the_size_that_moves_most_words_per_attempt() {
        let clean = WriteLink::default();
        assert_eq!(clean.best_words(8, 15), 15);
        // 3 % of bytes damaged (1 % per kind): a 43-byte exchange of 3 words arrives whole
        // with 0.97^43 = 27 %.
        let noisy = WriteLink {
            attempts: 1.0 / 0.97f64.powi(43),
            bytes: 43.0,
        };
        assert_eq!(noisy.best_words(8, 15), 4);
        // 0.6 % (0.2 % per kind): 20 words would be best; the frame holds 15.
        let mild = WriteLink {
            attempts: 1.0 / 0.994f64.powi(139),
            bytes: 139.0,
        };
        assert_eq!(mild.best_words(8, 15), 15);
        // The averages follow what happens and come back after clean writes.
        let mut l = WriteLink::default();
        for _ in 0..30 {
            l.observe(4, 43);
        }
        assert!(l.best_words(8, 15) < 15, "{l:?}");
        for _ in 0..60 {
            l.observe(1, 139);
        }
        assert_eq!(l.best_words(8, 15), 15, "{l:?}");
    }
}
