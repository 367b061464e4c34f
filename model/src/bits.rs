//! Bit packing: the encoding of -1/+1 values as bits in little-endian `u64` words.
//!
//! Bit `i` of a vector lives in word `i / 64`, at bit position `i % 64` (least significant bit
//! first). A set bit means +1, a clear bit -1. Bits past the vector's length (the padding of the
//! last word) are always zero; the XOR-popcount identity in `docs/semantics.md` relies on it.

/// Bits per packed word.
pub const WORD_BITS: usize = 64;

/// Number of `u64` words needed for `bits` bits.
pub fn words_for(bits: usize) -> usize {
    bits.div_ceil(WORD_BITS)
}

/// Packs booleans (true = +1) into words, padding with zeros.
pub fn pack(bits: &[bool]) -> Vec<u64> {
    let mut words = vec![0u64; words_for(bits.len())];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            words[i / WORD_BITS] |= 1u64 << (i % WORD_BITS);
        }
    }
    words
}

/// Unpacks the first `len` bits of `words`.
pub fn unpack(words: &[u64], len: usize) -> Vec<bool> {
    (0..len).map(|i| get(words, i)).collect()
}

/// Bit `i` of a packed vector.
#[inline]
pub fn get(words: &[u64], i: usize) -> bool {
    (words[i / WORD_BITS] >> (i % WORD_BITS)) & 1 == 1
}

/// Sets bit `i` of a packed vector to `value`.
#[inline]
pub fn set(words: &mut [u64], i: usize, value: bool) {
    let mask = 1u64 << (i % WORD_BITS);
    if value {
        words[i / WORD_BITS] |= mask;
    } else {
        words[i / WORD_BITS] &= !mask;
    }
}

/// `len` (at most 64) bits of a packed vector starting at bit `off`, as the low bits of a word.
#[inline]
pub fn read_bits(words: &[u64], off: usize, len: usize) -> u64 {
    debug_assert!(len <= WORD_BITS);
    if len == 0 {
        return 0;
    }
    let (w, b) = (off / WORD_BITS, off % WORD_BITS);
    let mut v = words[w] >> b;
    if b + len > WORD_BITS {
        v |= words[w + 1] << (WORD_BITS - b);
    }
    v & low_mask(len)
}

/// Replaces `len` (at most 64) bits of a packed vector starting at bit `off` by the low bits of
/// `value`; the other bits stay as they are.
#[inline]
pub fn write_bits(words: &mut [u64], off: usize, len: usize, value: u64) {
    debug_assert!(len <= WORD_BITS);
    if len == 0 {
        return;
    }
    let value = value & low_mask(len);
    let (w, b) = (off / WORD_BITS, off % WORD_BITS);
    let mask = low_mask(len) << b;
    words[w] = (words[w] & !mask) | (value << b);
    if b + len > WORD_BITS {
        let spill = b + len - WORD_BITS;
        let mask = low_mask(spill);
        words[w + 1] = (words[w + 1] & !mask) | (value >> (WORD_BITS - b));
    }
}

/// Copies `len` bits from `src` at bit `src_off` to `dst` at bit `dst_off`.
#[inline]
pub fn copy_bits(src: &[u64], src_off: usize, dst: &mut [u64], dst_off: usize, len: usize) {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(WORD_BITS);
        write_bits(dst, dst_off + done, n, read_bits(src, src_off + done, n));
        done += n;
    }
}

/// Sets `len` bits of `dst` from bit `off` on to `value`.
#[inline]
pub fn fill_bits(dst: &mut [u64], off: usize, len: usize, value: bool) {
    let word = if value { !0u64 } else { 0 };
    let mut done = 0;
    while done < len {
        let n = (len - done).min(WORD_BITS);
        write_bits(dst, off + done, n, word);
        done += n;
    }
}

/// Clears every bit from `len` to the end of `words[..words_for(len)]`: the padding of a
/// vector of `len` bits, which section 1 of docs/semantics.md requires to be zero.
#[inline]
pub fn clear_padding(words: &mut [u64], len: usize) {
    let used = len % WORD_BITS;
    if used != 0 {
        words[len / WORD_BITS] &= low_mask(used);
    }
}

#[inline]
fn low_mask(len: usize) -> u64 {
    if len >= WORD_BITS {
        !0
    } else {
        (1u64 << len) - 1
    }
}

/// A matrix of bits stored row by row, each row padded to whole words.
///
/// Row `r` holds the weights of output neuron `r`; column `c` is input `c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMatrix {
    rows: usize,
    cols: usize,
    words_per_row: usize,
    data: Vec<u64>,
}

impl BitMatrix {
    /// An all-zero (all -1) matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        let words_per_row = words_for(cols);
        BitMatrix {
            rows,
            cols,
            words_per_row,
            data: vec![0; rows * words_per_row],
        }
    }

    /// Builds a matrix from row-major booleans (`rows * cols` of them).
    pub fn from_bools(rows: usize, cols: usize, values: &[bool]) -> Self {
        assert_eq!(
            values.len(),
            rows * cols,
            "BitMatrix::from_bools: wrong number of values"
        );
        let mut m = BitMatrix::zeros(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                if values[r * cols + c] {
                    m.set(r, c, true);
                }
            }
        }
        m
    }

    /// Builds a matrix from packed rows. Returns `None` when the length is wrong or a padding
    /// bit is set.
    pub fn from_words(rows: usize, cols: usize, data: Vec<u64>) -> Option<Self> {
        let words_per_row = words_for(cols);
        if data.len() != rows * words_per_row {
            return None;
        }
        let m = BitMatrix {
            rows,
            cols,
            words_per_row,
            data,
        };
        let pad = m.padding_mask();
        if words_per_row > 0 && (0..rows).any(|r| m.row(r)[words_per_row - 1] & pad != 0) {
            return None;
        }
        Some(m)
    }

    /// Mask of the padding bits in the last word of each row (zero when `cols` is a multiple of 64).
    fn padding_mask(&self) -> u64 {
        match self.cols % WORD_BITS {
            0 => 0,
            used => !0u64 << used,
        }
    }

    /// Number of rows (output neurons).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Words per packed row.
    pub fn words_per_row(&self) -> usize {
        self.words_per_row
    }

    /// The packed words of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[u64] {
        &self.data[r * self.words_per_row..(r + 1) * self.words_per_row]
    }

    /// All packed words, row after row.
    pub fn words(&self) -> &[u64] {
        &self.data
    }

    /// Bit at (`r`, `c`).
    pub fn get(&self, r: usize, c: usize) -> bool {
        get(self.row(r), c)
    }

    /// Sets the bit at (`r`, `c`).
    pub fn set(&mut self, r: usize, c: usize, value: bool) {
        let w = self.words_per_row;
        set(&mut self.data[r * w..(r + 1) * w], c, value);
    }

    /// Inverts every weight of row `r` (multiplies the neuron's weights by -1), keeping padding zero.
    pub fn negate_row(&mut self, r: usize) {
        let pad = self.padding_mask();
        let w = self.words_per_row;
        let row = &mut self.data[r * w..(r + 1) * w];
        for word in row.iter_mut() {
            *word = !*word;
        }
        if let Some(last) = row.last_mut() {
            *last &= !pad;
        }
    }
}
