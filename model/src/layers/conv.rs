//! Binary 2-D convolution: a dense layer applied at every output position of a feature map.
//!
//! The weights of output channel `o` are row `o` of a [`BitMatrix`] with `k * k * C` columns in
//! `(ky, kx, c)` order: column `(ky * k + kx) * C + c` (docs/semantics.md 9). Every output
//! position sees exactly `k * k * C` operands, padded positions included, so one threshold per
//! output channel serves the whole map.

use crate::bits::BitMatrix;
use crate::error::{Error, ErrorKind, Result};
use crate::semantics::{AccumulatorKind, BatchNorm};

use super::MapShape;

/// How the border of the input map is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding: only positions where the whole window lies inside the map.
    Valid,
    /// Pad so that the output has `ceil(in / stride)` rows and columns (TensorFlow's rule).
    /// A padded binary operand is `pad_bit` (1 = +1, 0 = -1); a padded 8-bit pixel is 0.
    Same {
        /// The value of a padded binary operand.
        pad_bit: bool,
    },
}

/// A binary convolution with per-output-channel thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Shape of the input feature map.
    pub input: MapShape,
    /// Kernel size `k` (the window is `k x k`).
    pub kernel: usize,
    /// Step between windows, in both directions.
    pub stride: usize,
    /// Border treatment.
    pub padding: Padding,
    /// One row per output channel, `k * k * C` columns in `(ky, kx, c)` order (bit 1 = +1).
    pub weights: BitMatrix,
    /// What the accumulator sums: popcounts of binary activations, or signed 8-bit pixels.
    pub accumulator: AccumulatorKind,
    /// One threshold per output channel: the output bit is `acc >= thresholds[o]`.
    pub thresholds: Vec<i64>,
}

impl Conv2d {
    /// A convolution folded from binarized weights (rows as trained) and per-channel BatchNorm,
    /// exactly as for dense layers: channels with gamma < 0 get negated weights.
    pub fn from_batchnorm(
        input: MapShape,
        kernel: usize,
        stride: usize,
        padding: Padding,
        mut weights: BitMatrix,
        accumulator: AccumulatorKind,
        bns: &[BatchNorm],
    ) -> Self {
        let thresholds = super::dense::fold_rows(&mut weights, accumulator, bns);
        Conv2d {
            input,
            kernel,
            stride,
            padding,
            weights,
            accumulator,
            thresholds,
        }
    }

    /// Operands per output value: `k * k * C`.
    pub fn window_len(&self) -> usize {
        self.kernel * self.kernel * self.input.channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weights.rows()
    }

    /// Column of weight `(ky, kx, c)`.
    #[inline]
    pub fn column(&self, ky: usize, kx: usize, c: usize) -> usize {
        (ky * self.kernel + kx) * self.input.channels + c
    }

    fn out_extent(&self, n: usize) -> usize {
        match self.padding {
            Padding::Valid => (n.saturating_sub(self.kernel)) / self.stride + 1,
            Padding::Same { .. } => n.div_ceil(self.stride),
        }
    }

    fn pad_before_1d(&self, n: usize) -> usize {
        match self.padding {
            Padding::Valid => 0,
            Padding::Same { .. } => {
                let out = self.out_extent(n);
                ((out - 1) * self.stride + self.kernel).saturating_sub(n) / 2
            }
        }
    }

    /// Padding rows above and columns left of the map (`(top, left)`); the rest goes below and
    /// to the right.
    pub fn pad_before(&self) -> (usize, usize) {
        (
            self.pad_before_1d(self.input.height),
            self.pad_before_1d(self.input.width),
        )
    }

    /// Shape of the output feature map.
    pub fn output(&self) -> MapShape {
        MapShape {
            height: self.out_extent(self.input.height),
            width: self.out_extent(self.input.width),
            channels: self.out_channels(),
        }
    }

    /// The value of a padded binary operand (false for `valid`, where none occurs).
    pub fn pad_bit(&self) -> bool {
        matches!(self.padding, Padding::Same { pad_bit: true })
    }

    /// Checks kernel, stride and padding against the input shape and the weights.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::new(ErrorKind::ShapeMismatch, m));
        let (k, s, i) = (self.kernel, self.stride, self.input);
        if !(1..=7).contains(&k) {
            return bad(format!("kernel {k} is outside 1..=7"));
        }
        if s == 0 || s > k {
            return bad(format!("stride {s} must be in 1..={k} (the kernel size)"));
        }
        if i.is_empty() {
            return bad("the input map has zero size".into());
        }
        if self.padding == Padding::Valid && (k > i.height || k > i.width) {
            return bad(format!(
                "a {k}x{k} kernel is larger than the {}x{} input map (use same padding or a \
                 smaller kernel)",
                i.height, i.width
            ));
        }
        if matches!(self.padding, Padding::Same { .. }) && k % 2 == 0 {
            return bad(format!(
                "same padding needs an odd kernel, not {k} (the padding would be lopsided)"
            ));
        }
        if self.accumulator == AccumulatorKind::SignedPixelSum && self.pad_bit() {
            return bad("an 8-bit convolution pads with pixel 0; pad_bit must be 0".into());
        }
        if self.weights.cols() != self.window_len() {
            return bad(format!(
                "weights have {} columns, a {k}x{k} window over {} channels needs {}",
                self.weights.cols(),
                i.channels,
                self.window_len()
            ));
        }
        if self.thresholds.len() != self.out_channels() {
            return bad(format!(
                "{} thresholds for {} output channels",
                self.thresholds.len(),
                self.out_channels()
            ));
        }
        Ok(())
    }
}
