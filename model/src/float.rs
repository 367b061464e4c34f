//! The float graph in eval mode, rerun from the float parameters a trained model keeps:
//! binarized weights, +-1 activations (or `pixel / 255` for an 8-bit input), BatchNorm with its
//! running statistics, and a positive output scale. Computed in f64, independently of the integer
//! path, so that comparing the two checks the BatchNorm fold and the file's contents.

use crate::layers::{DenseOutput, Layer};
use crate::network::{FloatLayer, InputEncoding, Network};
use crate::semantics::{argmax_f64, PIXEL_SCALE};

/// Class predicted by the float graph for one image, or `None` when the network carries no float
/// parameters.
pub fn classify(net: &Network, pixels: &[u8]) -> Option<usize> {
    let float = net.float.as_ref()?;
    // Activations as f64 values; the first layer sees +-1 or scaled pixels.
    let mut x: Vec<f64> = match net.input.encoding {
        InputEncoding::Binary { threshold } => pixels
            .iter()
            .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
            .collect(),
        InputEncoding::U8 => pixels.iter().map(|&p| p as f64).collect(),
    };
    let mut scores = Vec::new();
    for (i, (layer, params)) in net.layers.iter().zip(float).enumerate() {
        let Layer::Dense(d) = layer;
        let mut y = Vec::with_capacity(d.outputs());
        for o in 0..d.outputs() {
            // Undo the sign fold: rows of neurons with gamma < 0 are stored negated.
            let negated = matches!(params, FloatLayer::BatchNorm(bn) if bn[o].gamma < 0.0);
            let mut dot = 0.0f64;
            for (c, &xv) in x.iter().enumerate() {
                let w = if d.weights.get(o, c) != negated {
                    1.0
                } else {
                    -1.0
                };
                dot += w * xv;
            }
            if i == 0 && net.input.encoding == InputEncoding::U8 {
                dot /= PIXEL_SCALE;
            }
            y.push(match (params, &d.output) {
                (FloatLayer::BatchNorm(bn), DenseOutput::Threshold(_)) => {
                    if bn[o].fires(dot) {
                        1.0
                    } else {
                        -1.0
                    }
                }
                (FloatLayer::Scale(s), _) => *s as f64 * dot,
                _ => return None,
            });
        }
        if layer.is_scores() {
            scores = y;
        } else {
            x = y;
        }
    }
    argmax_f64(&scores)
}
