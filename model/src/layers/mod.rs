//! Layer kinds of the network IR, one file each, registered here.
//!
//! Dense layers, binary 2-D convolutions, max-pooling and flatten. Every layer reports its input
//! and output [`Shape`] so that shapes are known statically along the whole chain (what the
//! hardware generator streams), and its sizes through the same methods, so nothing outside this
//! module assumes that a layer is a matrix.

mod conv;
mod dense;
mod pool;

pub use conv::{Conv2d, Padding};
pub use dense::{Dense, DenseOutput};
pub use pool::{Flatten, MaxPool2d};

use crate::semantics::AccumulatorKind;

/// Shape of a feature map, stored in `(y, x, c)` order (docs/semantics.md 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapShape {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels per position.
    pub channels: usize,
}

impl MapShape {
    /// Values in the map.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// True when the map holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for MapShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.height, self.width, self.channels)
    }
}

/// What flows between two layers: a feature map or a flat vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A feature map (height, width, channels).
    Map(MapShape),
    /// A flat vector of this many values.
    Vector(usize),
}

impl Shape {
    /// Values it holds.
    pub fn len(&self) -> usize {
        match self {
            Shape::Map(m) => m.len(),
            Shape::Vector(n) => *n,
        }
    }

    /// True when it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Map(m) => m.fmt(f),
            Shape::Vector(n) => write!(f, "{n}"),
        }
    }
}

/// One layer of a binarized network.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Fully connected layer with binary weights.
    Dense(Dense),
    /// Binary 2-D convolution with per-channel thresholds.
    Conv2d(Conv2d),
    /// Max-pooling of a binary map (OR of bits).
    MaxPool2d(MaxPool2d),
    /// A feature map seen as a vector, `(y, x, c)` order.
    Flatten(Flatten),
}

impl Layer {
    /// Short name of the layer kind, as written in model files and reports.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
            Layer::Conv2d(_) => "conv2d",
            Layer::MaxPool2d(_) => "maxpool2d",
            Layer::Flatten(_) => "flatten",
        }
    }

    /// Shape the layer consumes.
    pub fn input_shape(&self) -> Shape {
        match self {
            Layer::Dense(d) => Shape::Vector(d.inputs()),
            Layer::Conv2d(c) => Shape::Map(c.input),
            Layer::MaxPool2d(p) => Shape::Map(p.input),
            Layer::Flatten(f) => Shape::Map(f.input),
        }
    }

    /// Shape the layer produces.
    pub fn output_shape(&self) -> Shape {
        match self {
            Layer::Dense(d) => Shape::Vector(d.outputs()),
            Layer::Conv2d(c) => Shape::Map(c.output()),
            Layer::MaxPool2d(p) => Shape::Map(p.output()),
            Layer::Flatten(f) => Shape::Vector(f.input.len()),
        }
    }

    /// Number of input values the layer consumes.
    pub fn input_len(&self) -> usize {
        self.input_shape().len()
    }

    /// Number of output values the layer produces.
    pub fn output_len(&self) -> usize {
        self.output_shape().len()
    }

    /// Operands that one output value accumulates (the fan-in), for layers with weights.
    pub fn fan_in(&self) -> Option<usize> {
        match self {
            Layer::Dense(d) => Some(d.inputs()),
            Layer::Conv2d(c) => Some(c.window_len()),
            _ => None,
        }
    }

    /// Binary weights held by the layer.
    pub fn weight_bits(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs() * d.outputs(),
            Layer::Conv2d(c) => c.window_len() * c.out_channels(),
            _ => 0,
        }
    }

    /// Multiply-accumulates (XNOR-popcount steps) per input image.
    pub fn macs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs() * d.outputs(),
            Layer::Conv2d(c) => c.output().len() * c.window_len(),
            _ => 0,
        }
    }

    /// The dense layer inside, if this is one.
    pub fn as_dense(&self) -> Option<&Dense> {
        match self {
            Layer::Dense(d) => Some(d),
            _ => None,
        }
    }

    /// The convolution inside, if this is one.
    pub fn as_conv(&self) -> Option<&Conv2d> {
        match self {
            Layer::Conv2d(c) => Some(c),
            _ => None,
        }
    }

    /// The accumulator kind of a layer with weights; `None` for pooling and flatten.
    pub fn accumulator(&self) -> Option<AccumulatorKind> {
        match self {
            Layer::Dense(d) => Some(d.accumulator),
            Layer::Conv2d(c) => Some(c.accumulator),
            _ => None,
        }
    }

    /// Per-output-channel (or per-neuron) thresholds of a threshold layer with weights.
    pub fn thresholds(&self) -> Option<&[i64]> {
        match self {
            Layer::Dense(Dense {
                output: DenseOutput::Threshold(t),
                ..
            }) => Some(t),
            Layer::Conv2d(c) => Some(&c.thresholds),
            _ => None,
        }
    }

    /// True when the layer produces integer scores (the network's last layer).
    pub fn is_scores(&self) -> bool {
        matches!(
            self,
            Layer::Dense(Dense {
                output: DenseOutput::Scores,
                ..
            })
        )
    }
}
