//! Convolutional networks: the fast reference against the naive oracle written from
//! docs/semantics.md, layer by layer, on random shapes.

mod common;

use bql_model::bits;
use bql_model::layers::{Conv2d, Dense, Layer};
use bql_model::reference::{Engine, LayerOutput};
use bql_model::semantics::BatchNorm;
use bql_model::testing::{random_cnn, random_pixels, Rng};
use bql_model::{FloatLayer, InputEncoding, Network, PixelTable};
use common::oracle::{conv_accs, naive_trace, operands};
use proptest::prelude::*;

/// Compares every layer's output of the reference with the oracle on `images` random images.
fn check(net: &bql_model::Network, seed: u64, images: usize) -> Result<(), TestCaseError> {
    let engine = Engine::new(net);
    let len = net.input.len();
    let pixels = random_pixels(seed, images, len);
    let (batch, _) = engine.scores_batch(&pixels);
    for i in 0..images {
        let image = &pixels[i * len..(i + 1) * len];
        let want = naive_trace(net, image);
        let got = engine.trace(image);
        for (l, (w, g)) in want.iter().zip(&got).enumerate() {
            match g {
                LayerOutput::Bits(b) => {
                    let bools: Vec<bool> = w.iter().map(|&v| v == 1).collect();
                    prop_assert_eq!(
                        b,
                        &bits::pack(&bools),
                        "layer {} of {}",
                        l,
                        net.arch_string()
                    );
                }
                LayerOutput::Scores(s) => {
                    let s64: Vec<i64> = s.iter().map(|&v| v as i64).collect();
                    prop_assert_eq!(&s64, w, "scores of {}", net.arch_string());
                    let classes = net.classes();
                    let b: Vec<i64> = batch[i * classes..(i + 1) * classes]
                        .iter()
                        .map(|&v| v as i64)
                        .collect();
                    prop_assert_eq!(&b, w, "batch scores of {}", net.arch_string());
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reference_matches_the_oracle_on_random_cnns(seed in any::<u64>()) {
        let net = random_cnn(seed);
        net.validate().unwrap();
        check(&net, seed ^ 0x55, 3)?;
    }

    /// Image 0 of `check` sits on a threshold boundary of every layer.
    #[test]
    fn reference_matches_the_oracle_on_threshold_boundaries(seed in any::<u64>()) {
        let mut net = random_cnn(seed);
        let pixels = random_pixels(seed ^ 0x55, 1, net.input.len());
        common::cnn_thresholds_on_the_boundary(&mut net, &pixels, &mut Rng(seed));
        check(&net, seed ^ 0x55, 2)?;
    }

    /// A pixel table (BNN-PYNQ's fixed-point input) in place of 8-bit pixels: every operand
    /// comes from the table, padded positions stay 0.
    #[test]
    fn reference_matches_the_oracle_with_pixel_tables(seed in any::<u64>()) {
        let mut net = random_cnn(seed);
        let mut rng = Rng(seed ^ 0x7ab1e);
        let table: [i16; 256] = std::array::from_fn(|_| rng.range(-255, 255) as i16);
        if net.input.encoding == InputEncoding::U8 {
            net.input.encoding = InputEncoding::Table(PixelTable(table));
            net.float = None;
            net.validate().unwrap();
            let pixels = random_pixels(seed ^ 0x55, 1, net.input.len());
            common::cnn_thresholds_on_the_boundary(&mut net, &pixels, &mut Rng(seed));
            check(&net, seed ^ 0x55, 2)?;
        }
    }

    /// Folded from random BatchNorms (gamma of either sign, tiny, zero), the float graph in f64
    /// and the integer reference predict the same class on every image.
    #[test]
    fn folded_cnns_agree_with_their_float_graph(seed in any::<u64>()) {
        let net = folded_cnn(seed);
        let engine = Engine::new(&net);
        let pixels = random_pixels(seed, 6, net.input.len());
        let (_, classes) = engine.scores_batch(&pixels);
        for (i, image) in pixels.chunks(net.input.len()).enumerate() {
            prop_assert_eq!(bql_model::float::classify(&net, image), Some(classes[i]));
        }
    }
}

/// A random CNN whose thresholds are folded from random BatchNorm parameters, with its float
/// parameters, so that the float graph can be rerun.
fn folded_cnn(seed: u64) -> Network {
    let mut rng = Rng(seed ^ 0xf0);
    let mut net = random_cnn(seed);
    let mut float = Vec::new();
    for layer in net.layers.iter_mut() {
        let (n, kind, outputs) = match (layer.fan_in(), layer.accumulator(), layer.thresholds()) {
            (Some(n), Some(kind), Some(t)) => (n, kind, t.len()),
            _ => {
                float.push(if layer.is_scores() {
                    FloatLayer::Scale(rng.f32(0.1, 3.0))
                } else {
                    FloatLayer::None
                });
                continue;
            }
        };
        let (lo, hi) = kind.range(n);
        let bns: Vec<BatchNorm> = (0..outputs)
            .map(|_| BatchNorm {
                gamma: match rng.next_u64() % 8 {
                    0 => 0.0,
                    1 => 1e-7,
                    _ => rng.f32(-2.0, 2.0),
                },
                beta: rng.f32(-1.0, 1.0),
                mean: kind.float_preactivation(rng.range(lo, hi), n) as f32,
                var: rng.f32(0.01, 50.0),
                eps: 1e-4,
            })
            .collect();
        match layer {
            Layer::Conv2d(c) => {
                *c = Conv2d::from_batchnorm(
                    c.input,
                    c.kernel,
                    c.stride,
                    c.padding,
                    c.weights.clone(),
                    kind,
                    &bns,
                )
            }
            Layer::Dense(d) => *d = Dense::from_batchnorm(d.weights.clone(), kind, &bns),
            _ => unreachable!(),
        }
        float.push(FloatLayer::BatchNorm(bns));
    }
    net.float = Some(float);
    net.validate().unwrap();
    net
}

#[test]
fn shapes_that_cannot_work_are_refused() {
    use bql_model::layers::{Layer, MaxPool2d, Padding};
    use bql_model::ErrorKind;
    let net = random_cnn(5);
    let Some(Layer::Conv2d(c)) = net.layers.first() else {
        panic!("random_cnn starts with a convolution")
    };
    let map = c.input;
    // A valid kernel larger than the map.
    let mut big = c.clone();
    big.padding = Padding::Valid;
    big.input.height = 3;
    big.kernel = 5;
    let e = big.check().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ShapeMismatch);
    assert!(e.to_string().contains("larger than"), "{e}");
    // Same padding with an even kernel, a stride larger than the kernel, a pad bit on pixels.
    for (kernel, stride, padding) in [
        (2, 1, Padding::Same { pad_bit: false }),
        (1, 2, Padding::Valid),
        (8, 1, Padding::Same { pad_bit: false }),
    ] {
        let mut bad = c.clone();
        (bad.kernel, bad.stride, bad.padding) = (kernel, stride, padding);
        assert_eq!(bad.check().unwrap_err().kind(), ErrorKind::ShapeMismatch);
    }
    // A pool larger than its map.
    let pool = MaxPool2d {
        input: map,
        kernel: map.height.max(map.width) + 1,
    };
    assert_eq!(pool.check().unwrap_err().kind(), ErrorKind::ShapeMismatch);
    // A dense layer straight after a map needs a flatten.
    let mut no_flatten = net.clone();
    if let Some(i) = no_flatten
        .layers
        .iter()
        .position(|l| matches!(l, Layer::Flatten(_)))
    {
        no_flatten.layers.remove(i);
        let e = no_flatten.validate().unwrap_err();
        assert!(e.to_string().contains("flatten"), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Re-estimated BatchNorm statistics are the exact moments of the pre-activations (checked
    /// for the first layer against the oracle's accumulators), and the refolded model still
    /// agrees with its float graph on every image.
    #[test]
    fn reestimated_batchnorm_is_exact_and_refolds_exactly(seed in any::<u64>()) {
        let net = folded_cnn(seed);
        let len = net.input.len();
        let images = 5;
        let data = bql_model::dataset::Dataset {
            height: net.input.height,
            width: net.input.width,
            channels: net.input.channels,
            pixels: random_pixels(seed ^ 7, images, len),
            labels: vec![0; images],
        };
        let new = bql_model::calibrate::reestimate_batchnorm(&net, &data, &|_| {}).unwrap();
        let Some(FloatLayer::BatchNorm(bns)) = new.float.as_ref().map(|f| &f[0]) else {
            panic!("layer 0 is a threshold layer")
        };
        let Some(FloatLayer::BatchNorm(old)) = net.float.as_ref().map(|f| &f[0]) else {
            panic!()
        };
        let (Layer::Conv2d(c), Some(kind)) = (&net.layers[0], net.layers[0].accumulator()) else {
            panic!("random CNNs start with a convolution")
        };
        let n = c.window_len();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); c.out_channels()];
        for image in data.pixels.chunks(len) {
            for position in conv_accs(c, &operands(&net, image)) {
                for (o, acc) in position.into_iter().enumerate() {
                    let acc = if old[o].gamma < 0.0 { bql_model::semantics::mirror(kind, acc, n) } else { acc };
                    values[o].push(kind.float_preactivation(acc, n));
                }
            }
        }
        for (o, v) in values.iter().enumerate() {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            prop_assert!((bns[o].mean as f64 - mean).abs() <= 1e-5 * mean.abs().max(1.0), "channel {}: {} vs {}", o, bns[o].mean, mean);
            prop_assert_eq!(bns[o].gamma, old[o].gamma);
        }
        let engine = Engine::new(&new);
        let test = random_pixels(seed ^ 9, 4, len);
        let (_, classes) = engine.scores_batch(&test);
        for (i, image) in test.chunks(len).enumerate() {
            prop_assert_eq!(bql_model::float::classify(&new, image), Some(classes[i]));
        }
    }
}
