//! Frames: encoding, a streaming decoder that resynchronizes after garbage, and the CRC.

use crate::OVERHEAD;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC.checksum(bytes)
}

/// One byte of the CRC register update, bit by bit: the definition the hardware follows.
pub fn crc16_update(crc: u16, byte: u8) -> u16 {
    let mut c = crc ^ ((byte as u16) << 8);
    for _ in 0..8 {
        c = if c & 0x8000 != 0 {
            (c << 1) ^ 0x1021
        } else {
            c << 1
        };
    }
    c
}

/// The update as XOR equations, for the generated Verilog: bit `i` of the new register is the
/// XOR of the old register bits in `.0[i]` (a mask over 16 bits) and of the data bits in
/// `.1[i]` (a mask over 8 bits). The update is linear over GF(2), so the columns are the images
/// of the unit vectors.
pub fn crc16_update_matrix() -> ([u16; 16], [u8; 16]) {
    let mut from_crc = [0u16; 16];
    let mut from_data = [0u8; 16];
    for j in 0..16 {
        let out = crc16_update(1 << j, 0);
        for (i, m) in from_crc.iter_mut().enumerate() {
            if (out >> i) & 1 == 1 {
                *m |= 1 << j;
            }
        }
    }
    for j in 0..8 {
        let out = crc16_update(0, 1 << j);
        for (i, m) in from_data.iter_mut().enumerate() {
            if (out >> i) & 1 == 1 {
                *m |= 1 << j;
            }
        }
    }
    (from_crc, from_data)
}

fn encode(sync: u8, head: u8, seq: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= u16::MAX as usize, "payload too long");
    let mut f = Vec::with_capacity(payload.len() + OVERHEAD);
    f.push(sync);
    f.push(head);
    f.push(seq);
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let c = crc16(&f[1..]);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

/// A request frame.
pub fn encode_request(op: u8, seq: u8, payload: &[u8]) -> Vec<u8> {
    encode(crate::SYNC_REQUEST, op, seq, payload)
}

/// A response frame.
pub fn encode_response(code: u8, seq: u8, payload: &[u8]) -> Vec<u8> {
    encode(crate::SYNC_RESPONSE, code, seq, payload)
}

/// A frame that passed its CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Opcode (request) or code (response).
    pub head: u8,
    /// Sequence number.
    pub seq: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame whose CRC checked.
    Frame(Frame),
    /// A frame-shaped run of bytes whose CRC failed (it is dropped).
    BadCrc,
}

/// A streaming decoder for one direction: feed it bytes as they arrive, take complete frames.
/// Bytes before a sync byte are skipped; a header whose length exceeds `max_payload` or whose
/// CRC fails makes it resume the search one byte after that sync byte, so a sync byte inside
/// garbage costs nothing but a rescan.
#[derive(Debug, Clone)]
pub struct Decoder {
    sync: u8,
    max_payload: usize,
    buf: Vec<u8>,
    skipped: usize,
    idle: Option<u8>,
}

impl Decoder {
    /// A decoder for frames that start with `sync`.
    pub fn new(sync: u8, max_payload: usize) -> Self {
        Decoder {
            sync,
            max_payload,
            buf: Vec::new(),
            skipped: 0,
            idle: None,
        }
    }

    /// A byte the line carries between frames when the sender has nothing (an SPI link's
    /// MISO): skipped like garbage, but not counted as garbage.
    pub fn set_idle(&mut self, idle: Option<u8>) {
        self.idle = idle;
    }

    /// Drops the first `n` buffered bytes as garbage.
    fn skip(&mut self, n: usize) {
        let idle = self.idle;
        self.skipped += self.buf[..n].iter().filter(|&&b| Some(b) != idle).count();
        self.buf.drain(..n);
    }

    /// Response frames (what the host reads).
    pub fn responses(max_payload: usize) -> Self {
        Self::new(crate::SYNC_RESPONSE, max_payload)
    }

    /// Bytes skipped so far as garbage (idle bytes not counted).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Bytes waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Sets the largest payload a header may announce; longer ones are taken as garbage.
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// Gives up on a frame that has waited too long for its remaining bytes: its sync byte is
    /// taken as garbage and the search resumes after it.
    pub fn skip_stalled(&mut self) {
        if !self.buf.is_empty() {
            self.skip(1);
        }
    }

    /// Forgets a partial frame (after a timeout).
    pub fn reset(&mut self) {
        self.skip(self.buf.len());
    }

    /// Adds bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame (or CRC failure), if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Option<Decoded> {
        loop {
            match self.buf.iter().position(|&b| b == self.sync) {
                None => {
                    self.skip(self.buf.len());
                    return None;
                }
                Some(p) => self.skip(p),
            }
            if self.buf.len() < 5 {
                return None;
            }
            let len = u16::from_le_bytes([self.buf[3], self.buf[4]]) as usize;
            if len > self.max_payload {
                self.skip(1);
                continue;
            }
            let total = len + OVERHEAD;
            if self.buf.len() < total {
                return None;
            }
            let got = u16::from_le_bytes([self.buf[total - 2], self.buf[total - 1]]);
            if crc16(&self.buf[1..total - 2]) != got {
                self.skip(1);
                return Some(Decoded::BadCrc);
            }
            let f = Frame {
                head: self.buf[1],
                seq: self.buf[2],
                payload: self.buf[5..total - 2].to_vec(),
            };
            self.buf.drain(..total);
            return Some(Decoded::Frame(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CRC_INIT;

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        // CRC-16/IBM-3740 (CCITT-FALSE) check value of "123456789".
        assert_eq!(crc16(b"123456789"), 0x29B1);
        let mut c = CRC_INIT;
        for &b in b"123456789" {
            c = crc16_update(c, b);
        }
        assert_eq!(c, 0x29B1);
    }

    #[test]
    fn matrix_reproduces_the_update() {
        let (mc, md) = crc16_update_matrix();
        for (crc, byte) in [
            (0xFFFFu16, 0x00u8),
            (0x1234, 0xAB),
            (0x8001, 0x7F),
            (0, 0xFF),
        ] {
            let mut out = 0u16;
            for i in 0..16 {
                let p = (crc & mc[i]).count_ones() + (byte & md[i]).count_ones();
                out |= ((p & 1) as u16) << i;
            }
            assert_eq!(out, crc16_update(crc, byte));
        }
    }
}
