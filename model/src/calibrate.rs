//! Re-estimating BatchNorm statistics from the integer model itself, and refolding the
//! thresholds.
//!
//! Training keeps running averages of each BatchNorm's input, taken in train mode on augmented
//! batches while the weights still move; they trail the final weights. This pass replaces, layer
//! after layer, each threshold layer's running mean and variance by the exact statistics of its
//! pre-activation over a set of images, computed from the integer accumulators of the network
//! whose earlier layers are already re-estimated, and folds the thresholds again
//! ([`crate::semantics::fold_batchnorm`]). The binary weights, gamma and beta do not change, so a
//! neuron with gamma < 0 keeps its negated weights. The result is exact in the same sense as the
//! training fold: the float graph with the new statistics and the integer model agree on every
//! input.

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{Dense, DenseOutput, Layer};
use crate::network::{FloatLayer, Network};
use crate::reference::Engine;
use crate::semantics::{fold_batchnorm, mirror, BatchNorm};

/// Per-output sums of the pre-activation and of its square, and the number of values.
#[derive(Clone)]
struct Moments {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: usize,
}

impl Moments {
    fn new(outputs: usize) -> Self {
        Moments {
            sum: vec![0.0; outputs],
            sum_sq: vec![0.0; outputs],
            count: 0,
        }
    }

    fn merge(mut self, other: Moments) -> Self {
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.sum_sq.iter_mut().zip(&other.sum_sq) {
            *a += b;
        }
        self.count += other.count;
        self
    }
}

/// The statistics of layer `l`'s pre-activation (as the float graph sees it, before BatchNorm)
/// over `data`: per output, mean and unbiased variance.
fn layer_moments(net: &Network, l: usize, bns: &[BatchNorm], data: &Dataset) -> Option<Moments> {
    let layer = &net.layers[l];
    let (n, kind) = (layer.fan_in()?, layer.accumulator()?);
    let outputs = bns.len();
    let engine = Engine::new(net);
    let moments = (0..data.len())
        .into_par_iter()
        .fold(
            || Moments::new(outputs),
            |mut m, i| {
                let accs = engine.accumulators(data.image(i), l).unwrap_or_default();
                for position in accs.chunks_exact(outputs) {
                    for (o, &stored) in position.iter().enumerate() {
                        // Undo the fold's negation: the float graph sees the trained weights.
                        let acc = if bns[o].gamma < 0.0 {
                            mirror(kind, stored, n)
                        } else {
                            stored
                        };
                        let x = kind.float_preactivation(acc, n);
                        m.sum[o] += x;
                        m.sum_sq[o] += x * x;
                    }
                    m.count += 1;
                }
                m
            },
        )
        .reduce(|| Moments::new(outputs), Moments::merge);
    Some(moments)
}

/// Re-estimates every BatchNorm of `net` on the images of `data` (their labels are not used)
/// and refolds the thresholds. `progress(layer)` is called as each layer starts. The network
/// must carry its float parameters.
pub fn reestimate_batchnorm(
    net: &Network,
    data: &Dataset,
    progress: &dyn Fn(usize),
) -> Result<Network> {
    let no_float = || {
        Error::new(
            ErrorKind::InvalidArgument,
            "the model has no float parameters (BatchNorm), so there is nothing to re-estimate",
        )
    };
    if data.is_empty() || data.image_len() != net.input.len() {
        return Err(Error::new(
            ErrorKind::Dataset,
            format!(
                "re-estimating needs images of the model's input size {} (got {} images of {})",
                net.input.len(),
                data.len(),
                data.image_len()
            ),
        ));
    }
    let mut current = net.clone();
    let float = current.float.clone().ok_or_else(no_float)?;
    for (l, params) in float.iter().enumerate() {
        let FloatLayer::BatchNorm(bns) = params else {
            continue;
        };
        progress(l);
        let m = layer_moments(&current, l, bns, data).ok_or_else(no_float)?;
        let count = m.count as f64;
        let updated: Vec<BatchNorm> = bns
            .iter()
            .enumerate()
            .map(|(o, bn)| {
                let mean = m.sum[o] / count;
                let var = (m.sum_sq[o] - m.sum[o] * m.sum[o] / count) / (count - 1.0).max(1.0);
                BatchNorm {
                    mean: mean as f32,
                    var: var as f32,
                    ..*bn
                }
            })
            .collect();
        refold(&mut current.layers[l], &updated);
        if let Some(f) = current.float.as_mut() {
            f[l] = FloatLayer::BatchNorm(updated);
        }
    }
    current.validate()?;
    Ok(current)
}

/// New thresholds of a threshold layer from new BatchNorm parameters (same gamma signs).
fn refold(layer: &mut Layer, bns: &[BatchNorm]) {
    let (Some(n), Some(kind)) = (layer.fan_in(), layer.accumulator()) else {
        return;
    };
    let thresholds: Vec<i64> = bns
        .iter()
        .map(|bn| fold_batchnorm(bn, kind, n).threshold)
        .collect();
    match layer {
        Layer::Conv2d(c) => c.thresholds = thresholds,
        Layer::Dense(Dense {
            output: DenseOutput::Threshold(t),
            ..
        }) => *t = thresholds,
        _ => {}
    }
}
