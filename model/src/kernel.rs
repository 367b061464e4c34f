//! The inner loop of the reference: per neuron, the number of inputs on which its weights and
//! the activations disagree, `popcount(row XOR x)`. A portable version, and an AVX2 version that
//! works on a word-interleaved copy of the weights.

use crate::bits::BitMatrix;

/// `out[o] = popcount(row_o XOR x)` for every row of `weights`. Rows are taken four at a time so
/// that each activation word is loaded once per block and four popcount chains run in parallel.
#[inline(always)]
pub(crate) fn disagreements(weights: &BitMatrix, x: &[u64], out: &mut [u32]) {
    let words = weights.words_per_row();
    let all = weights.words();
    let x = &x[..words];
    let blocks = weights.rows() / 4;
    for b in 0..blocks {
        let base = b * 4 * words;
        let (r0, rest) = all[base..base + 4 * words].split_at(words);
        let (r1, rest) = rest.split_at(words);
        let (r2, r3) = rest.split_at(words);
        let (mut c0, mut c1, mut c2, mut c3) = (0u32, 0u32, 0u32, 0u32);
        for (w, &a) in x.iter().enumerate() {
            c0 += (r0[w] ^ a).count_ones();
            c1 += (r1[w] ^ a).count_ones();
            c2 += (r2[w] ^ a).count_ones();
            c3 += (r3[w] ^ a).count_ones();
        }
        out[b * 4..b * 4 + 4].copy_from_slice(&[c0, c1, c2, c3]);
    }
    for (o, slot) in out.iter_mut().enumerate().skip(blocks * 4) {
        *slot = weights
            .row(o)
            .iter()
            .zip(x)
            .map(|(w, a)| (w ^ a).count_ones())
            .sum();
    }
}

/// A layer's weights in blocks of four neurons, interleaved by word: word `w` of neurons
/// `4b..4b+4` are adjacent, so one 256-bit load brings the same word of four neurons. Missing
/// neurons of the last block are zero rows whose results are dropped.
pub(crate) struct Interleaved {
    rows: usize,
    words: usize,
    data: Vec<u64>,
}

impl Interleaved {
    pub(crate) fn new(m: &BitMatrix) -> Self {
        let (rows, words) = (m.rows(), m.words_per_row());
        let blocks = rows.div_ceil(4);
        let mut data = vec![0u64; blocks * words * 4];
        for r in 0..rows {
            for (w, &v) in m.row(r).iter().enumerate() {
                data[((r / 4) * words + w) * 4 + r % 4] = v;
            }
        }
        Interleaved { rows, words, data }
    }
}

/// AVX2 version of [`disagreements`]: per block of four neurons, XOR with the broadcast
/// activation word, popcount each byte with a nibble lookup (`vpshufb`), add bytes across words
/// (at most 8 per word, so 31 words fit in a byte before `vpsadbw` folds them into 64-bit lanes).
///
/// # Safety
/// The CPU must support AVX2; `x` must hold at least `words` words and `out` `rows` entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn disagreements_avx2(il: &Interleaved, x: &[u64], out: &mut [u32]) {
    use std::arch::x86_64::*;
    let x = &x[..il.words];
    let lut = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    let mut lanes = [0u64; 4];
    for (b, block) in il.data.chunks_exact(il.words * 4).enumerate() {
        let mut total = zero;
        let mut bytes = zero;
        for (chunk_w, chunk_x) in block.chunks(31 * 4).zip(x.chunks(31)) {
            for (v, &a) in chunk_w.chunks_exact(4).zip(chunk_x) {
                // SAFETY: `v` is 4 u64 = 32 bytes; unaligned load.
                let d = _mm256_xor_si256(
                    _mm256_loadu_si256(v.as_ptr() as *const __m256i),
                    _mm256_set1_epi64x(a as i64),
                );
                let lo = _mm256_and_si256(d, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16(d, 4), low);
                let c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
                bytes = _mm256_add_epi8(bytes, c);
            }
            total = _mm256_add_epi64(total, _mm256_sad_epu8(bytes, zero));
            bytes = zero;
        }
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, total);
        let n = (il.rows - b * 4).min(4);
        for j in 0..n {
            out[b * 4 + j] = lanes[j] as u32;
        }
    }
}

/// Packs `pixel >= threshold` bits, 64 pixels per word (the scalar reference for
/// [`binarize_avx2`]).
#[inline(always)]
pub(crate) fn binarize(pixels: &[u8], threshold: u8, out: &mut [u64]) {
    for (w, chunk) in out.iter_mut().zip(pixels.chunks(64)) {
        let mut word = 0u64;
        for (k, &p) in chunk.iter().enumerate() {
            word |= ((p >= threshold) as u64) << k;
        }
        *w = word;
    }
}

/// AVX2 version of [`binarize`]: `max(p, t) == p` is `p >= t` for unsigned bytes, and
/// `vpmovmskb` gathers 32 such bits at once.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn binarize_avx2(pixels: &[u8], threshold: u8, out: &mut [u64]) {
    use std::arch::x86_64::*;
    let t = _mm256_set1_epi8(threshold as i8);
    let full = pixels.len() / 64;
    for (w, chunk) in out.iter_mut().zip(pixels.chunks_exact(64)) {
        // SAFETY: `chunk` holds 64 bytes; both loads are unaligned and in bounds.
        let a = _mm256_loadu_si256(chunk.as_ptr() as *const __m256i);
        let b = _mm256_loadu_si256(chunk.as_ptr().add(32) as *const __m256i);
        let ma = _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(a, t), a)) as u32 as u64;
        let mb = _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(b, t), b)) as u32 as u64;
        *w = ma | (mb << 32);
    }
    if full < out.len() {
        binarize(&pixels[full * 64..], threshold, &mut out[full..]);
    }
}
