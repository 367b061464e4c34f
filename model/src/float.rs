//! The float graph in eval mode, rerun from the float parameters a trained model keeps:
//! binarized weights, +-1 activations (or `pixel / 255` for an 8-bit input), BatchNorm with its
//! running statistics, max-pooling of +-1 values, and a positive output scale. Computed in f64,
//! independently of the integer path, so that comparing the two checks the BatchNorm fold and the
//! file's contents.

use crate::layers::{Conv2d, Dense, Layer, MaxPool2d};
use crate::network::{FloatLayer, InputEncoding, Network};
use crate::semantics::{argmax_f64, PIXEL_SCALE};

/// Class predicted by the float graph for one image, or `None` when the network carries no float
/// parameters.
pub fn classify(net: &Network, pixels: &[u8]) -> Option<usize> {
    let float = net.float.as_ref()?;
    // Activations as f64 values; the first layer sees +-1 or raw pixels (scaled after the sum).
    let mut x: Vec<f64> = match net.input.encoding {
        InputEncoding::Binary { threshold } => pixels
            .iter()
            .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
            .collect(),
        InputEncoding::U8 => pixels.iter().map(|&p| p as f64).collect(),
    };
    let u8_input = net.input.encoding == InputEncoding::U8;
    for (i, (layer, params)) in net.layers.iter().zip(float).enumerate() {
        let scale = if i == 0 && u8_input { PIXEL_SCALE } else { 1.0 };
        x = match layer {
            Layer::Dense(d) => dense(d, params, &x, scale)?,
            Layer::Conv2d(c) => conv(c, params, &x, scale)?,
            Layer::MaxPool2d(p) => max_pool(p, &x),
            Layer::Flatten(_) => x,
        };
    }
    argmax_f64(&x)
}

/// The neuron's activation after its pre-activation `dot`: sign(BN) or the scaled score.
fn activate(params: &FloatLayer, o: usize, dot: f64) -> Option<f64> {
    match params {
        FloatLayer::BatchNorm(bn) => Some(if bn[o].fires(dot) { 1.0 } else { -1.0 }),
        FloatLayer::Scale(s) => Some(*s as f64 * dot),
        FloatLayer::None => None,
    }
}

/// The trained sign of weight bit `bit` of output `o`: rows of outputs with gamma < 0 are stored
/// negated, so the float graph undoes that.
fn trained_weight(params: &FloatLayer, o: usize, bit: bool) -> f64 {
    let negated = matches!(params, FloatLayer::BatchNorm(bn) if bn[o].gamma < 0.0);
    if bit != negated {
        1.0
    } else {
        -1.0
    }
}

fn dense(d: &Dense, params: &FloatLayer, x: &[f64], scale: f64) -> Option<Vec<f64>> {
    (0..d.outputs())
        .map(|o| {
            let dot: f64 = x
                .iter()
                .enumerate()
                .map(|(c, &xv)| trained_weight(params, o, d.weights.get(o, c)) * xv)
                .sum();
            activate(params, o, dot / scale)
        })
        .collect()
}

fn conv(c: &Conv2d, params: &FloatLayer, x: &[f64], scale: f64) -> Option<Vec<f64>> {
    let (map, out, k) = (c.input, c.output(), c.kernel);
    let (top, left) = c.pad_before();
    // A padded operand: the pad bit as +-1, or pixel 0 for an 8-bit layer.
    let pad = if scale != 1.0 {
        0.0
    } else if c.pad_bit() {
        1.0
    } else {
        -1.0
    };
    let mut y = Vec::with_capacity(out.len());
    for oy in 0..out.height {
        for ox in 0..out.width {
            for o in 0..c.out_channels() {
                let mut dot = 0.0;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * c.stride + ky) as isize - top as isize;
                        let ix = (ox * c.stride + kx) as isize - left as isize;
                        let inside = iy >= 0
                            && ix >= 0
                            && (iy as usize) < map.height
                            && (ix as usize) < map.width;
                        for ch in 0..map.channels {
                            let v = if inside {
                                x[(iy as usize * map.width + ix as usize) * map.channels + ch]
                            } else {
                                pad
                            };
                            let w = c.weights.get(o, c.column(ky, kx, ch));
                            dot += trained_weight(params, o, w) * v;
                        }
                    }
                }
                y.push(activate(params, o, dot / scale)?);
            }
        }
    }
    Some(y)
}

fn max_pool(p: &MaxPool2d, x: &[f64]) -> Vec<f64> {
    let (map, out, k) = (p.input, p.output(), p.kernel);
    let mut y = Vec::with_capacity(out.len());
    for py in 0..out.height {
        for px in 0..out.width {
            for ch in 0..map.channels {
                let mut m = f64::NEG_INFINITY;
                for dy in 0..k {
                    for dx in 0..k {
                        let pos = (py * k + dy) * map.width + px * k + dx;
                        m = m.max(x[pos * map.channels + ch]);
                    }
                }
                y.push(m);
            }
        }
    }
    y
}
