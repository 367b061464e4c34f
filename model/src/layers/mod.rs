//! Layer kinds of the network IR, one file each, registered here.
//!
//! Only dense layers exist today. Binary conv2d and max-pool come next: they will be new variants
//! of [`Layer`] with their own file, reporting their sizes through the same methods, so nothing
//! outside this module assumes that a layer is a matrix.

mod dense;

pub use dense::{Dense, DenseOutput};

use crate::semantics::AccumulatorKind;

/// One layer of a binarized network.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Fully connected layer with binary weights.
    Dense(Dense),
}

impl Layer {
    /// Short name of the layer kind, as written in model files and reports.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
        }
    }

    /// Number of input values the layer consumes.
    pub fn input_len(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs(),
        }
    }

    /// Number of output values the layer produces.
    pub fn output_len(&self) -> usize {
        match self {
            Layer::Dense(d) => d.outputs(),
        }
    }

    /// Binary weights held by the layer.
    pub fn weight_bits(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs() * d.outputs(),
        }
    }

    /// Multiply-accumulates (XNOR-popcount steps) per input image.
    pub fn macs(&self) -> usize {
        match self {
            Layer::Dense(d) => d.inputs() * d.outputs(),
        }
    }

    /// The dense layer inside, if this is one.
    pub fn as_dense(&self) -> Option<&Dense> {
        match self {
            Layer::Dense(d) => Some(d),
        }
    }

    /// The accumulator kind of the layer.
    pub fn accumulator(&self) -> AccumulatorKind {
        match self {
            Layer::Dense(d) => d.accumulator,
        }
    }

    /// True when the layer produces integer scores (the network's last layer).
    pub fn is_scores(&self) -> bool {
        match self {
            Layer::Dense(d) => matches!(d.output, DenseOutput::Scores),
        }
    }
}
