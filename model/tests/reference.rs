//! The reference against a naive +-1 integer implementation written straight from
//! docs/semantics.md, and the float graph against the integer path on folded networks.

mod common;

use bql_model::bits::BitMatrix;
use bql_model::layers::{Dense, DenseOutput, Layer};
use bql_model::reference::{Engine, LayerOutput};
use bql_model::semantics::{argmax, AccumulatorKind, BatchNorm};
use bql_model::{FloatLayer, InputEncoding, InputSpec, Network};
use common::{arb_network, random_pixels, Rng};
use proptest::prelude::*;

/// Naive semantics: activations as +-1 integers (or raw pixels), dot products, `acc >= T`.
fn naive_scores(net: &Network, pixels: &[u8]) -> Vec<i32> {
    let mut x = common::oracle::operands(net, pixels);
    for (i, layer) in net.layers.iter().enumerate() {
        let d = layer.as_dense().unwrap();
        let accs: Vec<i64> = (0..d.outputs())
            .map(|o| {
                let dot: i64 = (0..d.inputs())
                    .map(|c| if d.weights.get(o, c) { x[c] } else { -x[c] })
                    .sum();
                if i == 0 && net.input.encoding.pixel_operands().is_some() {
                    dot
                } else {
                    (dot + d.inputs() as i64) / 2 // popcount of agreements
                }
            })
            .collect();
        match &d.output {
            DenseOutput::Threshold(t) => {
                x = accs
                    .iter()
                    .zip(t)
                    .map(|(&a, &t)| if a >= t { 1 } else { -1 })
                    .collect()
            }
            DenseOutput::Scores => return accs.iter().map(|&a| a as i32).collect(),
        }
    }
    unreachable!("the last layer outputs scores")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reference_matches_naive_semantics(net in arb_network(), seed in any::<u64>()) {
        let engine = Engine::new(&net);
        let len = net.input.len();
        let pixels = random_pixels(seed, 9, len);
        let (batch_scores, classes) = engine.scores_batch(&pixels);
        for i in 0..9 {
            let img = &pixels[i * len..(i + 1) * len];
            let naive = naive_scores(&net, img);
            prop_assert_eq!(&engine.scores(img), &naive);
            prop_assert_eq!(&batch_scores[i * net.classes()..(i + 1) * net.classes()], &naive[..]);
            prop_assert_eq!(classes[i], argmax(&naive).unwrap());
            // The trace's last entry is the same scores.
            let trace = engine.trace(img);
            prop_assert_eq!(trace.len(), net.layers.len());
            prop_assert_eq!(trace.last().unwrap(), &LayerOutput::Scores(naive.clone()));
        }
    }

    /// A network folded from random BatchNorm parameters: the float graph (f64, eval mode)
    /// predicts exactly what the integer path predicts.
    #[test]
    fn float_graph_agrees_with_folded_integers(seed in any::<u64>(), u8_input in any::<bool>()) {
        let net = folded_network(seed, u8_input);
        let engine = Engine::new(&net);
        let pixels = random_pixels(seed ^ 1, 20, net.input.len());
        for img in pixels.chunks(net.input.len()) {
            prop_assert_eq!(bql_model::float::classify(&net, img), Some(engine.predict(img).class));
        }
    }
}

/// 60 -> 40 -> 30 -> 7 with random weights and BatchNorm (gamma of both signs and zero), folded
/// the way training folds.
fn folded_network(seed: u64, u8_input: bool) -> Network {
    let mut rng = Rng(seed);
    let widths = [60usize, 40, 30, 7];
    let mut layers = Vec::new();
    let mut float = Vec::new();
    for l in 0..3 {
        let (ins, outs) = (widths[l], widths[l + 1]);
        let bools: Vec<bool> = (0..ins * outs).map(|_| rng.next_u64() & 1 == 1).collect();
        let weights = BitMatrix::from_bools(outs, ins, &bools);
        let kind = if l == 0 && u8_input {
            AccumulatorKind::SignedPixelSum
        } else {
            AccumulatorKind::Popcount
        };
        if l == 2 {
            layers.push(Layer::Dense(Dense {
                weights,
                accumulator: kind,
                output: DenseOutput::Scores,
            }));
            float.push(FloatLayer::Scale(rng.f32(0.01, 3.0)));
            continue;
        }
        let scale = if kind == AccumulatorKind::SignedPixelSum {
            60.0
        } else {
            ins as f32
        };
        let bns: Vec<BatchNorm> = (0..outs)
            .map(|_| BatchNorm {
                gamma: if rng.next_u64() % 8 == 0 {
                    0.0
                } else {
                    rng.f32(-2.0, 2.0)
                },
                beta: rng.f32(-1.0, 1.0),
                mean: rng.f32(-0.3, 0.3) * scale,
                var: rng.f32(0.05, 1.0) * scale,
                eps: 1e-4,
            })
            .collect();
        layers.push(Layer::Dense(Dense::from_batchnorm(weights, kind, &bns)));
        float.push(FloatLayer::BatchNorm(bns));
    }
    let encoding = if u8_input {
        InputEncoding::U8
    } else {
        InputEncoding::Binary { threshold: 128 }
    };
    let net = Network {
        name: "folded".into(),
        input: InputSpec {
            height: 6,
            width: 10,
            channels: 1,
            encoding,
        },
        layers,
        float: Some(float),
        provenance: serde_json::Value::Null,
    };
    net.validate().unwrap();
    net
}

#[test]
fn validate_rejects_broken_networks() {
    let mut net = folded_network(3, false);
    net.layers.pop();
    assert!(net.validate().is_err(), "last layer must output scores");
    let net = folded_network(4, true);
    let mut wrong = net.clone();
    if let Some(Layer::Dense(d)) = wrong.layers.get_mut(1) {
        d.accumulator = AccumulatorKind::SignedPixelSum;
    }
    assert!(
        wrong.validate().is_err(),
        "only the first layer may sum pixels"
    );
}

/// Layers wider than 31 words (1,984 inputs) exercise the byte-counter flush of the AVX2 kernel.
#[test]
fn wide_layers_match_naive_semantics() {
    for (seed, u8_input) in [(11u64, false), (12, true)] {
        let net = common::random_network(2100, &[2050, 9, 3], u8_input, 90, seed, false);
        let engine = Engine::new(&net);
        let pixels = random_pixels(seed, 5, 2100);
        let (scores, _) = engine.scores_batch(&pixels);
        for (i, img) in pixels.chunks(2100).enumerate() {
            assert_eq!(
                &scores[i * 3..(i + 1) * 3],
                &naive_scores(&net, img)[..],
                "image {i}"
            );
        }
    }
}
