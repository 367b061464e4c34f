//! The network IR: an input specification, a chain of layers, and optionally the float
//! parameters the integer model was folded from.
//!
//! Lifecycle: training (bql-train) produces float parameters and binarized weights, folds them
//! with [`crate::semantics::fold_batchnorm`] into a [`Network`], which [`Network::validate`]
//! checks and [`crate::format`] saves. Loading validates again; from then on every consumer
//! (reference inference, HDL generation, the host driver) can rely on the invariants below.

use crate::error::{Error, ErrorKind, Result};
use crate::layers::{DenseOutput, Layer, MapShape, Padding, Shape};
use crate::semantics::{AccumulatorKind, BatchNorm};

/// How input pixels become the first layer's operands.
///
/// The table variant is 512 bytes inline: the encoding is copied a few times per model load
/// or design, never per image, and staying `Copy` keeps its many by-value uses plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEncoding {
    /// Binarized pixels: bit = `pixel >= threshold`.
    Binary {
        /// Pixel value at and above which the input bit is 1 (+1).
        threshold: u8,
    },
    /// Raw 8-bit unsigned pixels, multiplied by the first layer's binary weights.
    U8,
    /// Each pixel value `p` becomes the signed operand `table[p]` (|value| <= 255) of the first
    /// layer, which sums it like a `U8` pixel: the exact form of a source's fixed-point input
    /// quantization (BNN-PYNQ's CNV).
    Table(PixelTable),
}

/// The largest operand magnitude of a [`PixelTable`]: with it, a table's first-layer sums stay
/// within the 8-bit pixel sums' range (`-255 n ..= 255 n`), so widths and threshold ranges are
/// those of [`InputEncoding::U8`].
pub const PIXEL_TABLE_LIMIT: i16 = 255;

/// The operand of every pixel value 0..=255.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PixelTable(pub [i16; 256]);

impl std::fmt::Debug for PixelTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.0;
        write!(
            f,
            "PixelTable[0: {}, 1: {}, .., 255: {}]",
            t[0], t[1], t[255]
        )
    }
}

impl InputEncoding {
    /// The first layer's operand for each pixel value when the first layer sums signed pixels
    /// (`U8`: the pixel itself; `Table`: its entry); `None` for binary input.
    pub fn pixel_operands(&self) -> Option<[i32; 256]> {
        match self {
            InputEncoding::Binary { .. } => None,
            InputEncoding::U8 => Some(std::array::from_fn(|p| p as i32)),
            InputEncoding::Table(t) => Some(t.0.map(i32::from)),
        }
    }

    /// Short name: `binary`, `u8` or `table`.
    pub fn name(&self) -> &'static str {
        match self {
            InputEncoding::Binary { .. } => "binary",
            InputEncoding::U8 => "u8",
            InputEncoding::Table(_) => "table",
        }
    }
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

    /// The input as a feature map.
    pub fn shape(&self) -> MapShape {
        MapShape {
            height: self.height,
            width: self.width,
            channels: self.channels,
        }
    }

    /// True for a zero-sized input (never valid in a network).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The accumulator kind of the first layer that this encoding implies.
    pub fn first_accumulator(&self) -> AccumulatorKind {
        match self.encoding {
            InputEncoding::Binary { .. } => AccumulatorKind::Popcount,
            InputEncoding::U8 | InputEncoding::Table(_) => AccumulatorKind::SignedPixelSum,
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
    /// A layer without parameters (pooling, flatten).
    None,
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
    /// Checks every structural invariant: shapes chain, the first layer with weights matches
    /// the input encoding, only the last layer emits scores (and it is dense), thresholds lie in
    /// their accumulator's range, float parameters (if any) match the layers.
    pub fn validate(&self) -> Result<()> {
        if self.input.is_empty() {
            return shape_err("the input has zero size".into());
        }
        if self.layers.is_empty() {
            return shape_err("the network has no layers".into());
        }
        if let InputEncoding::Table(t) = &self.input.encoding {
            if let Some(p) = (0..256).find(|&p| t.0[p].abs() > PIXEL_TABLE_LIMIT) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "pixel table entry {p} is {}, outside -{PIXEL_TABLE_LIMIT}..={PIXEL_TABLE_LIMIT}",
                        t.0[p]
                    ),
                ));
            }
        }
        let mut current = Shape::Map(self.input.shape());
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            check_chain(i, layer, current)?;
            check_layer(i, layer, i == last, self.input.first_accumulator())?;
            current = layer.output_shape();
        }
        if let Some(float) = &self.float {
            self.check_float(float)?;
        }
        Ok(())
    }

    fn check_float(&self, float: &[FloatLayer]) -> Result<()> {
        if float.len() != self.layers.len() {
            return shape_err(format!(
                "float parameters cover {} layers, the network has {}",
                float.len(),
                self.layers.len()
            ));
        }
        for (i, (f, layer)) in float.iter().zip(&self.layers).enumerate() {
            let ok = match f {
                FloatLayer::BatchNorm(bn) => {
                    layer.thresholds().is_some()
                        && bn.len() == layer.thresholds().map_or(0, <[i64]>::len)
                        && bn.iter().all(|b| {
                            [b.gamma, b.beta, b.mean, b.var, b.eps]
                                .iter()
                                .all(|v| v.is_finite())
                                && b.var + b.eps > 0.0
                        })
                }
                FloatLayer::Scale(s) => layer.is_scores() && s.is_finite() && *s > 0.0,
                FloatLayer::None => layer.fan_in().is_none(),
            };
            if !ok {
                return shape_err(format!(
                    "float parameters of layer {i} ({}) do not match it (count, kind, or a \
                     non-finite / non-positive value)",
                    layer.kind_name()
                ));
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

    /// True when every layer is dense (a multilayer perceptron).
    pub fn is_mlp(&self) -> bool {
        self.layers.iter().all(|l| matches!(l, Layer::Dense(_)))
    }

    /// The architecture string: `784-256-256-256-10` for an MLP, and for other networks the
    /// input shape followed by `bql train --arch` tokens, e.g. `28x28x1-c32k3-p2-f256-f10`.
    pub fn arch_string(&self) -> String {
        if self.is_mlp() {
            return self
                .widths()
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("-");
        }
        std::iter::once(self.input.shape().to_string())
            .chain(self.layers.iter().filter_map(layer_token))
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// The `--arch` token of a layer (`c32k3`, `c32k3s2same`, `p2`, `f256`); none for flatten.
fn layer_token(layer: &Layer) -> Option<String> {
    match layer {
        Layer::Dense(d) => Some(format!("f{}", d.outputs())),
        Layer::Conv2d(c) => {
            let stride = if c.stride > 1 {
                format!("s{}", c.stride)
            } else {
                String::new()
            };
            let pad = match c.padding {
                Padding::Valid => "",
                Padding::Same { pad_bit: false } => "same",
                Padding::Same { pad_bit: true } => "same1",
            };
            Some(format!("c{}k{}{stride}{pad}", c.out_channels(), c.kernel))
        }
        Layer::MaxPool2d(p) => Some(format!("p{}", p.kernel)),
        Layer::Flatten(_) => None,
    }
}

fn shape_err(m: String) -> Result<()> {
    Err(Error::new(ErrorKind::ShapeMismatch, m))
}

/// Layer `i` consumes what the previous layer (or the input) produces. A dense layer takes a
/// vector, or the network input itself (an MLP flattens its input in `(y, x, c)` order, as
/// [`Layer::Flatten`] does); convolution, pooling and flatten take a map of exactly their shape.
fn check_chain(i: usize, layer: &Layer, current: Shape) -> Result<()> {
    let wanted = layer.input_shape();
    let ok = match (wanted, current) {
        (Shape::Vector(n), Shape::Vector(m)) => n == m,
        (Shape::Vector(n), Shape::Map(m)) => i == 0 && n == m.len(),
        (Shape::Map(a), Shape::Map(b)) => a == b,
        (Shape::Map(_), Shape::Vector(_)) => false,
    };
    if ok {
        return Ok(());
    }
    let hint = match (wanted, current) {
        (Shape::Vector(_), Shape::Map(_)) => " (put a flatten layer before a dense layer)",
        (Shape::Map(_), Shape::Vector(_)) => " (a vector cannot become a map again)",
        _ => "",
    };
    shape_err(format!(
        "layer {i} ({}) takes {wanted} but receives {current}{hint}",
        layer.kind_name()
    ))
}

/// Layer-local invariants: sizes, accumulator kind, scores only last, thresholds in range.
fn check_layer(i: usize, layer: &Layer, last: bool, first_acc: AccumulatorKind) -> Result<()> {
    match layer {
        Layer::Conv2d(c) => c
            .check()
            .map_err(|e| Error::new(e.kind(), format!("layer {i} (conv2d): {e}")))?,
        Layer::MaxPool2d(p) => p
            .check()
            .map_err(|e| Error::new(e.kind(), format!("layer {i} (maxpool2d): {e}")))?,
        _ => {}
    }
    if layer.output_len() == 0 {
        return shape_err(format!("layer {i} has no outputs"));
    }
    if let Some(acc) = layer.accumulator() {
        let expected = if i == 0 {
            first_acc
        } else {
            AccumulatorKind::Popcount
        };
        if acc != expected {
            return shape_err(format!(
                "layer {i} accumulates {acc:?} but its input calls for {expected:?}"
            ));
        }
    } else if i == 0 {
        return shape_err(format!(
            "layer 0 ({}) has no weights; a network starts with a dense or conv2d layer",
            layer.kind_name()
        ));
    }
    if layer.is_scores() != last {
        return shape_err(format!(
            "layer {i}: only the last layer may output scores, and it must (a dense layer)"
        ));
    }
    if let Layer::Dense(d) = layer {
        if let DenseOutput::Threshold(t) = &d.output {
            if t.len() != d.outputs() {
                return shape_err(format!(
                    "layer {i} has {} thresholds for {} neurons",
                    t.len(),
                    d.outputs()
                ));
            }
        }
    }
    let (Some(t), Some(acc), Some(n)) = (layer.thresholds(), layer.accumulator(), layer.fan_in())
    else {
        return Ok(());
    };
    let (lo, hi) = acc.threshold_range(n);
    let what = if layer.as_conv().is_some() {
        "output channel"
    } else {
        "neuron"
    };
    if let Some((o, v)) = t.iter().enumerate().find(|(_, &v)| v < lo || v > hi) {
        return Err(Error::new(
            ErrorKind::ThresholdOutOfRange,
            format!(
                "layer {i}, {what} {o}: threshold {v} is outside {lo}..={hi}, the range of its \
                 {acc:?} accumulator over {n} inputs"
            ),
        ));
    }
    Ok(())
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
