//! The network IR: an input specification, a chain of layers, and optionally the float
//! parameters the integer model was folded from.
//!
//! Lifecycle: training (bql-train) produces float parameters and binarized weights, folds them
//! with [`crate::semantics::fold_batchnorm`] into a [`Network`], which [`Network::validate`]
//! checks and [`crate::format`] saves. Loading validates again; from then on every consumer
//! (reference inference, HDL generation, the host driver) can rely on the invariants below.

use crate::error::{Error, ErrorKind, Result};
use crate::layers::{DenseOutput, Layer};
use crate::semantics::{AccumulatorKind, BatchNorm};

/// How input pixels become the first layer's operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEncoding {
    /// Binarized pixels: bit = `pixel >= threshold`.
    Binary {
        /// Pixel value at and above which the input bit is 1 (+1).
        threshold: u8,
    },
    /// Raw 8-bit unsigned pixels, multiplied by the first layer's binary weights.
    U8,
}

/// Shape and encoding of the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// Encoding of pixels into first-layer operands.
    pub encoding: InputEncoding,
}

impl InputSpec {
    /// Values per input image.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// True for a zero-sized input (never valid in a network).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The accumulator kind of the first layer that this encoding implies.
    pub fn first_accumulator(&self) -> AccumulatorKind {
        match self.encoding {
            InputEncoding::Binary { .. } => AccumulatorKind::Popcount,
            InputEncoding::U8 => AccumulatorKind::SignedPixelSum,
        }
    }
}

/// Float parameters of one layer, kept from training so the float graph can be rerun.
#[derive(Debug, Clone, PartialEq)]
pub enum FloatLayer {
    /// Per-neuron BatchNorm followed by sign (threshold layers).
    BatchNorm(Vec<BatchNorm>),
    /// A positive scale applied to every score (the last layer); it does not change the argmax.
    Scale(f32),
}

/// A binarized network with exact integer semantics.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Human-readable name.
    pub name: String,
    /// Input shape and encoding.
    pub input: InputSpec,
    /// Layers, first to last. The last produces scores, all others thresholds.
    pub layers: Vec<Layer>,
    /// Float parameters per layer, when the model came from training.
    pub float: Option<Vec<FloatLayer>>,
    /// Free-form provenance (training command, seed, dataset), kept verbatim in the file.
    pub provenance: serde_json::Value,
}

impl Network {
    /// Checks every structural invariant: layers chain, the first layer matches the input
    /// encoding, only the last layer emits scores, thresholds lie in their accumulator's range,
    /// float parameters (if any) match the layers.
    pub fn validate(&self) -> Result<()> {
        let shape = |m: String| Err(Error::new(ErrorKind::ShapeMismatch, m));
        if self.input.is_empty() {
            return shape("the input has zero size".into());
        }
        if self.layers.is_empty() {
            return shape("the network has no layers".into());
        }
        let mut width = self.input.len();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.input_len() != width {
                return shape(format!(
                    "layer {i} ({}) takes {} inputs but receives {width}",
                    layer.kind_name(),
                    layer.input_len()
                ));
            }
            if layer.output_len() == 0 {
                return shape(format!("layer {i} has no outputs"));
            }
            let expected_acc = if i == 0 {
                self.input.first_accumulator()
            } else {
                AccumulatorKind::Popcount
            };
            if layer.accumulator() != expected_acc {
                return shape(format!(
                    "layer {i} accumulates {:?} but its input calls for {expected_acc:?}",
                    layer.accumulator()
                ));
            }
            if layer.is_scores() != (i == last) {
                return shape(format!(
                    "layer {i}: only the last layer may output scores, and it must"
                ));
            }
            match layer {
                Layer::Dense(d) => {
                    if let DenseOutput::Threshold(t) = &d.output {
                        if t.len() != d.outputs() {
                            return shape(format!(
                                "layer {i} has {} thresholds for {} neurons",
                                t.len(),
                                d.outputs()
                            ));
                        }
                        let (lo, hi) = d.accumulator.threshold_range(d.inputs());
                        if let Some((n, v)) = t.iter().enumerate().find(|(_, &v)| v < lo || v > hi)
                        {
                            return Err(Error::new(
                                ErrorKind::ThresholdOutOfRange,
                                format!(
                                    "layer {i}, neuron {n}: threshold {v} is outside {lo}..={hi}, \
                                     the range of its {:?} accumulator over {} inputs",
                                    d.accumulator,
                                    d.inputs()
                                ),
                            ));
                        }
                    }
                }
            }
            width = layer.output_len();
        }
        if let Some(float) = &self.float {
            if float.len() != self.layers.len() {
                return shape(format!(
                    "float parameters cover {} layers, the network has {}",
                    float.len(),
                    self.layers.len()
                ));
            }
            for (i, (f, layer)) in float.iter().zip(&self.layers).enumerate() {
                let ok = match f {
                    FloatLayer::BatchNorm(bn) => {
                        !layer.is_scores()
                            && bn.len() == layer.output_len()
                            && bn.iter().all(|b| {
                                [b.gamma, b.beta, b.mean, b.var, b.eps]
                                    .iter()
                                    .all(|v| v.is_finite())
                                    && b.var + b.eps > 0.0
                            })
                    }
                    FloatLayer::Scale(s) => layer.is_scores() && s.is_finite() && *s > 0.0,
                };
                if !ok {
                    return shape(format!(
                        "float parameters of layer {i} do not match it (count, kind, or a \
                         non-finite / non-positive value)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of output scores (classes).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output_len())
    }

    /// Total binary weights.
    pub fn weight_bits(&self) -> usize {
        self.layers.iter().map(Layer::weight_bits).sum()
    }

    /// Multiply-accumulates per image.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Widths from input to output, e.g. `[784, 256, 256, 256, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input.len())
            .chain(self.layers.iter().map(Layer::output_len))
            .collect()
    }

    /// The architecture string, e.g. `784-256-256-256-10`.
    pub fn arch_string(&self) -> String {
        self.widths()
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// Parses an architecture string such as `784-256-256-10` into widths (at least two, none zero).
pub fn parse_arch(arch: &str) -> Result<Vec<usize>> {
    let bad = |m: String| Error::new(ErrorKind::InvalidArgument, m);
    let widths = arch
        .split('-')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("'{p}' in architecture '{arch}' is not a width")))
        })
        .collect::<Result<Vec<_>>>()?;
    if widths.len() < 2 {
        return Err(bad(format!(
            "architecture '{arch}' needs an input width and at least one layer, like 784-256-10"
        )));
    }
    if widths.contains(&0) {
        return Err(bad(format!("architecture '{arch}' has a zero width")));
    }
    Ok(widths)
}
