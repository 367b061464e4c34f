//! Random networks for property tests.
#![allow(dead_code, unused_imports)]

pub use bql_model::testing::{random_network, random_pixels, Rng};
use bql_model::Network;
use proptest::prelude::*;

/// A random valid network: input of `len` pixels (1 x len x 1), 1-4 layers of widths 1-300,
/// binary or 8-bit input, thresholds anywhere in their legal range, optional float params.
pub fn arb_network() -> impl Strategy<Value = Network> {
    (
        1usize..=300,
        prop::collection::vec(1usize..=300, 1..=4),
        any::<bool>(),
        any::<u8>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(input_len, widths, u8_input, pix_thr, seed, with_float)| {
            random_network(input_len, &widths, u8_input, pix_thr, seed, with_float)
        })
}

/// A random folding `(layer, P, S)` per layer, P up to `max_p`, S up to `max_s`.
pub fn random_folds(
    net: &Network,
    rng: &mut Rng,
    max_p: usize,
    max_s: usize,
) -> Vec<(usize, usize, usize)> {
    net.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = rng.range(1, l.output_len().min(max_p) as i64) as usize;
            let mut s = rng.range(1, l.input_len().min(max_s) as i64) as usize;
            // A design's memories hold at most 2^16 words (the link's u16 address).
            while l.output_len().div_ceil(p) * l.input_len().div_ceil(s) > 1 << 16 {
                s += 1;
            }
            (i, p, s)
        })
        .collect()
}

/// Sets every threshold to the accumulator value the first image produces (or one above it), so
/// that an off-by-one anywhere in the comparison path changes an output bit.
pub fn thresholds_on_the_boundary(net: &mut Network, pixels: &[u8], rng: &mut Rng) {
    use bql_model::layers::{DenseOutput, Layer};
    use bql_model::reference::LayerOutput;
    use bql_model::InputEncoding;
    for l in 0..net.layers.len() - 1 {
        let x: Vec<u64> = if l == 0 {
            let t = match net.input.encoding {
                InputEncoding::Binary { threshold } => threshold,
                InputEncoding::U8 => 0,
                InputEncoding::Table(_) => panic!("MLP boundary tests take binary or u8 input"),
            };
            bql_model::bits::pack(&pixels.iter().map(|&p| p >= t).collect::<Vec<_>>())
        } else {
            match &bql_model::reference::Engine::new(net).trace(pixels)[l - 1] {
                LayerOutput::Bits(b) => b.clone(),
                LayerOutput::Scores(_) => unreachable!("hidden layers emit bits"),
            }
        };
        let pixel_layer = l == 0 && net.input.encoding == InputEncoding::U8;
        let Some(Layer::Dense(d)) = net.layers.get_mut(l) else {
            unreachable!()
        };
        let accs: Vec<i64> = (0..d.outputs())
            .map(|o| {
                if pixel_layer {
                    d.pixel_acc(o, pixels)
                } else {
                    d.popcount_acc(o, &x)
                }
            })
            .collect();
        if let DenseOutput::Threshold(t) = &mut d.output {
            for (t, a) in t.iter_mut().zip(accs) {
                *t = a + (rng.next_u64() & 1) as i64;
            }
        }
    }
    net.validate().unwrap();
}
/// Sets every threshold to an accumulator value that image `pixels` produces (at a random
/// position for convolutions), or one above it, layer after layer, so that an off-by-one in any
/// comparison, window or padding changes an output bit.
pub fn cnn_thresholds_on_the_boundary(net: &mut Network, pixels: &[u8], rng: &mut Rng) {
    use bql_model::layers::{Dense, DenseOutput, Layer};
    for l in 0..net.layers.len() {
        let x = if l == 0 {
            oracle::operands(net, pixels)
        } else {
            oracle::naive_trace(net, pixels)[l - 1].clone()
        };
        let accs = match &net.layers[l] {
            Layer::Conv2d(c) => {
                let all = oracle::conv_accs(c, &x);
                all[rng.range(0, all.len() as i64 - 1) as usize].clone()
            }
            Layer::Dense(d) if !net.layers[l].is_scores() => oracle::dense_accs(d, &x),
            _ => continue,
        };
        let thresholds = match &mut net.layers[l] {
            Layer::Conv2d(c) => &mut c.thresholds,
            Layer::Dense(Dense {
                output: DenseOutput::Threshold(t),
                ..
            }) => t,
            _ => unreachable!(),
        };
        for (t, a) in thresholds.iter_mut().zip(accs) {
            *t = a + (rng.next_u64() & 1) as i64;
        }
    }
    net.validate().unwrap();
}

/// A random folding of a CNN that the hardware takes: a convolution's P divides its output
/// channels and its S its input channels, and where a map passes on, the consumer's S is a
/// multiple of the producer's P. Dense layers not fed by a map get P up to `max_p`, S up to
/// `max_s`.
pub fn random_cnn_folds(
    net: &Network,
    rng: &mut Rng,
    max_p: usize,
    max_s: usize,
) -> Vec<(usize, usize, usize)> {
    use bql_model::layers::Layer;
    let divisors = |n: usize| (1..=n).filter(|d| n % d == 0).collect::<Vec<_>>();
    let pick = |rng: &mut Rng, v: &[usize]| v[rng.range(0, v.len() as i64 - 1) as usize];
    let mut folds = Vec::new();
    let mut producer_p: Option<usize> = None;
    for (i, l) in net.layers.iter().enumerate() {
        let (p, s) = match l {
            Layer::Conv2d(c) => {
                // Within max_p and max_s, as the dense layers (a 61 x 69 convolution beside a
                // wide dense layer needed 266 of the 85k's 208 block RAMs); the producer's P
                // divides the channels and is at most max_p, so some S is always left.
                let ss: Vec<usize> = divisors(c.input.channels)
                    .into_iter()
                    .filter(|s| producer_p.is_none_or(|p| s % p == 0) && *s <= max_s.max(max_p))
                    .collect();
                let ps: Vec<usize> = divisors(c.out_channels())
                    .into_iter()
                    .filter(|p| *p <= max_p)
                    .collect();
                (pick(rng, &ps), pick(rng, &ss))
            }
            Layer::Dense(d) => {
                let p = rng.range(1, d.outputs().min(max_p) as i64) as usize;
                let s = match producer_p {
                    Some(pp) => {
                        let most = (d.inputs() / pp).min(8).min(max_s / pp).max(1);
                        pp * rng.range(1, most as i64) as usize
                    }
                    None => rng.range(1, d.inputs().min(max_s) as i64) as usize,
                };
                (p, s)
            }
            _ => continue,
        };
        producer_p = matches!(l, Layer::Conv2d(_)).then_some(p);
        folds.push((i, p, s));
    }
    folds
}

pub mod oracle;
