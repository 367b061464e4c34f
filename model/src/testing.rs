//! Deterministic random networks and inputs, for the property tests of this crate and of the
//! crates that consume models (generator, simulator). A network is a function of its seed.

use crate::bits::BitMatrix;
use crate::layers::{Dense, DenseOutput, Layer};
use crate::semantics::{AccumulatorKind, BatchNorm};
use crate::{FloatLayer, InputEncoding, InputSpec, Network};

/// Small deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    /// Uniform in `lo..hi`.
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// A valid network: `input_len` pixels, one layer per entry of `widths`, thresholds anywhere in
/// their legal range (mostly near the middle, sometimes at the ends).
pub fn random_network(
    input_len: usize,
    widths: &[usize],
    u8_input: bool,
    pix_thr: u8,
    seed: u64,
    with_float: bool,
) -> Network {
    let mut rng = Rng(seed);
    let encoding = if u8_input {
        InputEncoding::U8
    } else {
        InputEncoding::Binary { threshold: pix_thr }
    };
    let mut layers = Vec::new();
    let mut float = Vec::new();
    let mut fan_in = input_len;
    for (i, &w) in widths.iter().enumerate() {
        let acc = if i == 0 && u8_input {
            AccumulatorKind::SignedPixelSum
        } else {
            AccumulatorKind::Popcount
        };
        let bools: Vec<bool> = (0..w * fan_in).map(|_| rng.next_u64() & 1 == 1).collect();
        let weights = BitMatrix::from_bools(w, fan_in, &bools);
        let last = i + 1 == widths.len();
        let output = if last {
            float.push(FloatLayer::Scale(rng.f32(0.01, 2.0)));
            DenseOutput::Scores
        } else {
            let (lo, hi) = acc.threshold_range(fan_in);
            // Mostly near the middle of the range (where neurons toggle), sometimes the ends.
            let (mid, spread) = ((lo + hi) / 2, ((hi - lo) / 6).max(1));
            float.push(FloatLayer::BatchNorm(
                (0..w)
                    .map(|_| BatchNorm {
                        gamma: 1.0,
                        beta: 0.0,
                        mean: 0.0,
                        var: 1.0,
                        eps: 1e-5,
                    })
                    .collect(),
            ));
            DenseOutput::Threshold(
                (0..w)
                    .map(|_| match rng.next_u64() % 10 {
                        0 => lo,
                        1 => hi,
                        _ => rng.range(mid - spread, mid + spread).clamp(lo, hi),
                    })
                    .collect(),
            )
        };
        layers.push(Layer::Dense(Dense {
            weights,
            accumulator: acc,
            output,
        }));
        fan_in = w;
    }
    Network {
        name: format!("random-{seed}"),
        input: InputSpec {
            height: 1,
            width: input_len,
            channels: 1,
            encoding,
        },
        layers,
        // Float parameters here are placeholders that only exercise the file format; tests of
        // the float path build their networks by folding (see semantics tests).
        float: if with_float { Some(float) } else { None },
        provenance: serde_json::json!({ "seed": seed }),
    }
}

/// Random pixels for `n` images of `len` pixels.
pub fn random_pixels(seed: u64, n: usize, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n * len).map(|_| rng.next_u64() as u8).collect()
}
