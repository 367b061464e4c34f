//! Deterministic random networks and inputs, for the property tests of this crate and of the
//! crates that consume models (generator, simulator). A network is a function of its seed.

use crate::bits::BitMatrix;
use crate::layers::{Conv2d, Dense, DenseOutput, Flatten, Layer, MapShape, MaxPool2d, Padding};
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

/// Thresholds for `n` outputs of a layer whose accumulator covers `lo..=hi`: mostly near the
/// middle (where outputs toggle), sometimes the legal extremes.
fn random_thresholds(rng: &mut Rng, kind: AccumulatorKind, fan_in: usize, n: usize) -> Vec<i64> {
    let (lo, hi) = kind.threshold_range(fan_in);
    let (mid, spread) = ((lo + hi) / 2, ((hi - lo) / 6).max(1));
    (0..n)
        .map(|_| match rng.next_u64() % 10 {
            0 => lo,
            1 => hi,
            _ => rng.range(mid - spread, mid + spread).clamp(lo, hi),
        })
        .collect()
}

fn random_bits(rng: &mut Rng, rows: usize, cols: usize) -> BitMatrix {
    let bools: Vec<bool> = (0..rows * cols).map(|_| rng.next_u64() & 1 == 1).collect();
    BitMatrix::from_bools(rows, cols, &bools)
}

/// New random weights and thresholds for every layer of `net` (same shapes, same kinds): another
/// model for the same hardware.
pub fn reweight(net: &mut Network, seed: u64) {
    let mut rng = Rng(seed);
    for layer in &mut net.layers {
        match layer {
            Layer::Conv2d(c) => {
                let (rows, cols) = (c.out_channels(), c.window_len());
                c.weights = random_bits(&mut rng, rows, cols);
                c.thresholds = random_thresholds(&mut rng, c.accumulator, cols, rows);
            }
            Layer::Dense(d) => {
                let (rows, cols) = (d.outputs(), d.inputs());
                d.weights = random_bits(&mut rng, rows, cols);
                if let DenseOutput::Threshold(t) = &mut d.output {
                    *t = random_thresholds(&mut rng, d.accumulator, cols, rows);
                }
            }
            _ => {}
        }
    }
}

/// A random convolution over `input`, or `None` when no kernel fits.
fn random_conv(rng: &mut Rng, input: MapShape, accumulator: AccumulatorKind) -> Option<Conv2d> {
    let kernel = rng.range(1, 5) as usize;
    let same = rng.next_u64() % 2 == 0 && kernel % 2 == 1;
    let padding = if same {
        Padding::Same {
            pad_bit: accumulator == AccumulatorKind::Popcount && rng.next_u64() % 2 == 0,
        }
    } else {
        Padding::Valid
    };
    if !same && (kernel > input.height || kernel > input.width) {
        return None;
    }
    let stride = if kernel > 1 && rng.next_u64() % 4 == 0 {
        2
    } else {
        1
    };
    let channels = match rng.next_u64() % 4 {
        0 => rng.range(60, 70) as usize,
        _ => rng.range(1, 20) as usize,
    };
    let window = kernel * kernel * input.channels;
    Some(Conv2d {
        input,
        kernel,
        stride,
        padding,
        weights: random_bits(rng, channels, window),
        accumulator,
        thresholds: random_thresholds(rng, accumulator, window, channels),
    })
}

/// A valid random binarized CNN: an input of 3..=20 rows and columns (odd sizes included) with 1
/// or 3 channels, binary or 8-bit; 1-3 convolutions (kernel 1-5, stride 1 or 2, valid or same
/// padding with either pad bit, 1-70 channels), each maybe followed by a max-pool; a flatten;
/// maybe a hidden dense layer; dense scores.
pub fn random_cnn(seed: u64) -> Network {
    let mut rng = Rng(seed);
    let u8_input = rng.next_u64() % 2 == 0;
    let channels = if rng.next_u64() % 3 == 0 { 3 } else { 1 };
    let mut map = MapShape {
        height: rng.range(3, 20) as usize,
        width: rng.range(3, 20) as usize,
        channels,
    };
    let input = InputSpec {
        height: map.height,
        width: map.width,
        channels,
        encoding: if u8_input {
            InputEncoding::U8
        } else {
            InputEncoding::Binary {
                threshold: rng.next_u64() as u8,
            }
        },
    };
    let mut layers = Vec::new();
    for _ in 0..rng.range(1, 3) {
        let accumulator = if layers.is_empty() {
            input.first_accumulator()
        } else {
            AccumulatorKind::Popcount
        };
        let Some(conv) = random_conv(&mut rng, map, accumulator) else {
            continue;
        };
        map = conv.output();
        layers.push(Layer::Conv2d(conv));
        let k = rng.range(2, 3) as usize;
        if rng.next_u64() % 2 == 0 && k <= map.height && k <= map.width {
            let pool = MaxPool2d {
                input: map,
                kernel: k,
            };
            map = pool.output();
            layers.push(Layer::MaxPool2d(pool));
        }
    }
    if layers.is_empty() {
        let conv = Conv2d {
            input: map,
            kernel: 1,
            stride: 1,
            padding: Padding::Valid,
            weights: random_bits(&mut rng, 5, map.channels),
            accumulator: input.first_accumulator(),
            thresholds: random_thresholds(&mut rng, input.first_accumulator(), map.channels, 5),
        };
        map = conv.output();
        layers.push(Layer::Conv2d(conv));
    }
    layers.push(Layer::Flatten(Flatten { input: map }));
    let mut width = map.len();
    if rng.next_u64() % 2 == 0 {
        let n = rng.range(1, 70) as usize;
        layers.push(Layer::Dense(Dense {
            weights: random_bits(&mut rng, n, width),
            accumulator: AccumulatorKind::Popcount,
            output: DenseOutput::Threshold(random_thresholds(
                &mut rng,
                AccumulatorKind::Popcount,
                width,
                n,
            )),
        }));
        width = n;
    }
    let classes = rng.range(2, 10) as usize;
    layers.push(Layer::Dense(Dense {
        weights: random_bits(&mut rng, classes, width),
        accumulator: AccumulatorKind::Popcount,
        output: DenseOutput::Scores,
    }));
    Network {
        name: format!("random-cnn-{seed}"),
        input,
        layers,
        float: None,
        provenance: serde_json::json!({ "seed": seed }),
    }
}
