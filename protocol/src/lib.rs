//! The bql wire protocol: frame layout, opcodes, status codes, CRC, the information block a
//! design reports about itself, and the architecture hash. It does no I/O. It is the single
//! source of truth for both the generated Verilog (hdl-gen prints its constants and CRC
//! equations from here) and the host driver, so the two cannot drift apart. The format is
//! specified for people in `docs/protocol.md`.
//!
//! A request is `0xB5 op seq len_lo len_hi payload.. crc_lo crc_hi`, a response
//! `0x5B code seq len_lo len_hi payload.. crc_lo crc_hi`; the CRC is CRC-16/CCITT-FALSE over
//! every byte between the sync byte and the CRC.

#![deny(missing_docs)]

mod frame;

pub use frame::{
    crc16, crc16_update, crc16_update_matrix, encode_request, encode_response, Decoded, Decoder,
    Frame,
};

/// Protocol version, reported by `PING`.
pub const VERSION: u8 = 1;
/// First byte of every request frame.
pub const SYNC_REQUEST: u8 = 0xB5;
/// First byte of every response frame.
pub const SYNC_RESPONSE: u8 = 0x5B;
/// Bytes of framing around a payload: sync, op/code, seq, two length bytes, two CRC bytes.
pub const OVERHEAD: usize = 7;

/// Bit times of silence after which the board abandons an incomplete request frame (a frame
/// whose length byte was damaged, or that lost bytes) and hunts for the next sync byte.
pub const ABANDON_BITS: usize = 10_240;
/// Payload of a `PING` response.
pub const PING_MAGIC: [u8; 4] = [b'B', b'Q', b'L', VERSION];
/// Initial value of the CRC register (also the load checksum after reset or `CLEAR`).
pub const CRC_INIT: u16 = 0xFFFF;
/// Results a design accepts in flight before it stops reading `INFER` frames.
pub const MAX_IN_FLIGHT: usize = 4;
/// The fewest frame slots a design's receive buffer has (while one executes, the next can
/// arrive); [`Info::slots`] says how many a design has.
pub const MIN_SLOTS: usize = 2;
/// Words a `WRITE` can address in one memory (its address is a u16): the deepest memory a
/// design may have.
pub const MAX_MEMORY_WORDS: usize = 1 << 16;

/// Request opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Are you there? Answered with [`PING_MAGIC`].
    Ping = 0x01,
    /// The design's [`Info`] block.
    Info = 0x02,
    /// Write whole memory words: `sel`, `addr` (u16), then words of `word_bytes` each.
    Write = 0x03,
    /// Counters and the load checksum ([`Status`]).
    Status = 0x04,
    /// Reset the load checksum (before loading a model).
    Clear = 0x05,
    /// One input image; answered with the class and every score.
    Infer = 0x10,
}

impl Op {
    /// Every opcode.
    pub const ALL: [Op; 6] = [
        Op::Ping,
        Op::Info,
        Op::Write,
        Op::Status,
        Op::Clear,
        Op::Infer,
    ];

    /// The opcode of a byte.
    pub fn from_byte(b: u8) -> Option<Op> {
        Op::ALL.into_iter().find(|o| *o as u8 == b)
    }
}

/// Response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Done; the payload depends on the request.
    Ok = 0x00,
    /// The request frame failed its CRC; it was not executed.
    BadCrc = 0x01,
    /// The payload length is wrong for the opcode.
    BadLength = 0x02,
    /// Unknown opcode.
    BadOpcode = 0x03,
    /// An argument is out of range (a `WRITE` to a memory that does not exist).
    BadArgument = 0x04,
}

impl Code {
    /// The code of a byte.
    pub fn from_byte(b: u8) -> Option<Code> {
        [
            Code::Ok,
            Code::BadCrc,
            Code::BadLength,
            Code::BadOpcode,
            Code::BadArgument,
        ]
        .into_iter()
        .find(|c| *c as u8 == b)
    }

    /// What the code means, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::BadCrc => "the board saw a CRC error in the request",
            Code::BadLength => "the board rejected the payload length",
            Code::BadOpcode => "the board does not know the opcode",
            Code::BadArgument => "the board rejected an argument",
        }
    }
}

/// What a design says about itself in answer to `INFO` (19 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Info {
    /// Architecture hash: shapes, folding and interface, not the weights ([`arch_hash`]).
    pub arch_hash: u64,
    /// Bytes of one `INFER` payload.
    pub image_bytes: u16,
    /// Largest payload a frame slot holds.
    pub max_payload: u16,
    /// Bytes per memory word in a `WRITE` (a power of two; words are zero-padded).
    pub word_bytes: u16,
    /// Classes (scores per result).
    pub classes: u16,
    /// Bytes per score in a result (two's complement, little-endian).
    pub score_bytes: u8,
    /// Number of memory selectors (`sel` values below this may exist).
    pub memories: u8,
    /// Frame slots in the receive buffer: a host that keeps at most this many requests
    /// unanswered never has a frame dropped for want of a slot (a result leaves the board only
    /// after its image has left its slot).
    pub slots: u8,
}

impl Info {
    /// Encoded length.
    pub const LEN: usize = 19;

    /// Encodes the block.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.arch_hash.to_le_bytes());
        b[8..10].copy_from_slice(&self.image_bytes.to_le_bytes());
        b[10..12].copy_from_slice(&self.max_payload.to_le_bytes());
        b[12..14].copy_from_slice(&self.word_bytes.to_le_bytes());
        b[14..16].copy_from_slice(&self.classes.to_le_bytes());
        b[16] = self.score_bytes;
        b[17] = self.memories;
        b[18] = self.slots;
        b
    }

    /// Decodes the block; `None` when the length is wrong.
    pub fn from_bytes(b: &[u8]) -> Option<Info> {
        if b.len() != Self::LEN {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(Info {
            arch_hash: u64::from_le_bytes(b[..8].try_into().ok()?),
            image_bytes: u16_at(8),
            max_payload: u16_at(10),
            word_bytes: u16_at(12),
            classes: u16_at(14),
            score_bytes: b[16],
            memories: b[17],
            slots: b[18],
        })
    }

    /// Memory words that fit in one `WRITE` frame.
    pub fn words_per_write(&self) -> usize {
        (self.max_payload as usize).saturating_sub(3) / (self.word_bytes.max(1) as usize)
    }

    /// Bytes of a result payload: the class (u16), every score, then the load checksum.
    pub fn result_bytes(&self) -> usize {
        2 + self.classes as usize * self.score_bytes as usize + 2
    }
}

/// Counters a design keeps since power-on (8 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Status {
    /// CRC-16 over the payloads of every executed `WRITE` since reset or `CLEAR`.
    pub load_checksum: u16,
    /// Request frames that failed their CRC (saturates at 255).
    pub crc_errors: u8,
    /// Request frames dropped because both slots were full (saturates at 255).
    pub overflows: u8,
    /// Frames abandoned because the line went quiet in the middle (saturates at 255).
    pub timeouts: u8,
    /// Inferences accepted but not yet answered.
    pub in_flight: u8,
    /// Results sent (wraps at 65,536).
    pub results: u16,
}

impl Status {
    /// Encoded length.
    pub const LEN: usize = 8;

    /// Encodes the block.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let c = self.load_checksum.to_le_bytes();
        let r = self.results.to_le_bytes();
        [
            c[0],
            c[1],
            self.crc_errors,
            self.overflows,
            self.timeouts,
            self.in_flight,
            r[0],
            r[1],
        ]
    }

    /// Decodes the block; `None` when the length is wrong.
    pub fn from_bytes(b: &[u8]) -> Option<Status> {
        if b.len() != Self::LEN {
            return None;
        }
        Some(Status {
            load_checksum: u16::from_le_bytes([b[0], b[1]]),
            crc_errors: b[2],
            overflows: b[3],
            timeouts: b[4],
            in_flight: b[5],
            results: u16::from_le_bytes([b[6], b[7]]),
        })
    }
}

/// FNV-1a 64 over byte strings in order (no separators added): the architecture hash here, and
/// the build cache keys of hdl-gen.
pub fn fnv1a64<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The architecture hash of a design description (FNV-1a 64 of the canonical text, then the
/// protocol version). The text names the shapes, the folding and the interface, never the
/// weights, so one bitstream serves every model of the same shape and a model of another shape
/// is refused.
pub fn arch_hash(description: &str) -> u64 {
    fnv1a64([description.as_bytes(), &[VERSION]])
}

/// Packs one `WRITE` payload: `sel`, the first word's address, then each word zero-padded to
/// `word_bytes` bytes (bit 0 of a word is bit 0 of its first byte).
pub fn write_payload(sel: u8, addr: u16, words: &[Vec<bool>], word_bytes: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(3 + words.len() * word_bytes);
    p.push(sel);
    p.extend_from_slice(&addr.to_le_bytes());
    for w in words {
        let mut bytes = vec![0u8; word_bytes];
        for (i, &bit) in w.iter().enumerate() {
            if bit {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        p.extend_from_slice(&bytes);
    }
    p
}

/// A decoded result payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferResult {
    /// The class (argmax of the scores).
    pub class: usize,
    /// Every score, sign-extended.
    pub scores: Vec<i32>,
    /// The board's load checksum when it computed this result: a result computed after the
    /// board lost its loaded memories (a reset) carries a different checksum and is refused.
    pub load_checksum: u16,
}

/// Decodes a result payload: the class (u16), `classes` scores of `score_bytes` each, the load
/// checksum. `None` when the length is wrong.
pub fn parse_result(info: &Info, payload: &[u8]) -> Option<InferResult> {
    if payload.len() != info.result_bytes() {
        return None;
    }
    let sb = info.score_bytes as usize;
    let end = payload.len() - 2;
    let scores = payload[2..end]
        .chunks(sb)
        .map(|c| {
            let mut v: i64 = 0;
            for (i, &b) in c.iter().enumerate() {
                v |= (b as i64) << (8 * i);
            }
            let bits = 8 * sb;
            if bits < 64 && (v >> (bits - 1)) & 1 == 1 {
                v -= 1 << bits;
            }
            v as i32
        })
        .collect();
    Some(InferResult {
        class: u16::from_le_bytes([payload[0], payload[1]]) as usize,
        scores,
        load_checksum: u16::from_le_bytes([payload[end], payload[end + 1]]),
    })
}
