//! Fully connected layer with binary weights and either thresholds or integer scores.

use crate::bits::BitMatrix;
use crate::semantics::{fold_batchnorm, AccumulatorKind, BatchNorm};

/// Folds one BatchNorm per row of `weights` (rows as trained): negates the rows whose gamma is
/// negative and returns the thresholds ([`fold_batchnorm`], docs/semantics.md 5.1). Shared by
/// every layer kind with weights.
pub(crate) fn fold_rows(
    weights: &mut BitMatrix,
    accumulator: AccumulatorKind,
    bns: &[BatchNorm],
) -> Vec<i64> {
    assert_eq!(bns.len(), weights.rows(), "one BatchNorm per output");
    let n = weights.cols();
    bns.iter()
        .enumerate()
        .map(|(o, bn)| {
            let f = fold_batchnorm(bn, accumulator, n);
            if f.negate {
                weights.negate_row(o);
            }
            f.threshold
        })
        .collect()
}

/// What a dense layer emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenseOutput {
    /// One bit per neuron: `acc >= thresholds[neuron]` (BatchNorm + sign, folded).
    Threshold(Vec<i64>),
    /// The accumulator itself, as an integer score per neuron (the last layer).
    Scores,
}

/// A dense layer: `outputs` neurons, each with `inputs` binary weights (row `o` of `weights`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Binary weights, one row per output neuron (bit 1 = +1).
    pub weights: BitMatrix,
    /// What the accumulator sums: popcounts of binary activations, or signed 8-bit pixels.
    pub accumulator: AccumulatorKind,
    /// Thresholds or scores.
    pub output: DenseOutput,
}

impl Dense {
    /// A threshold layer folded from binarized weights (rows as trained) and per-neuron
    /// BatchNorm: rows of neurons with gamma < 0 are negated, thresholds come from
    /// [`fold_batchnorm`] (docs/semantics.md 5.1). `bns` has one entry per row.
    pub fn from_batchnorm(
        mut weights: BitMatrix,
        accumulator: AccumulatorKind,
        bns: &[BatchNorm],
    ) -> Self {
        let thresholds = fold_rows(&mut weights, accumulator, bns);
        Dense {
            weights,
            accumulator,
            output: DenseOutput::Threshold(thresholds),
        }
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.weights.cols()
    }

    /// Number of output neurons.
    pub fn outputs(&self) -> usize {
        self.weights.rows()
    }

    /// Popcount accumulator of neuron `o` for packed binary activations `x`:
    /// `inputs - popcount(w XOR x)`, which counts the positions where weight and activation agree.
    #[inline]
    pub fn popcount_acc(&self, o: usize, x: &[u64]) -> i64 {
        let row = self.weights.row(o);
        let mut differ = 0u32;
        for (w, a) in row.iter().zip(x) {
            differ += (w ^ a).count_ones();
        }
        self.inputs() as i64 - differ as i64
    }

    /// Signed pixel-sum accumulator of neuron `o` for pixels `x`: `sum(+x_i if w_i else -x_i)`.
    pub fn pixel_acc(&self, o: usize, x: &[u8]) -> i64 {
        let row = self.weights.row(o);
        x.iter()
            .enumerate()
            .map(|(i, &p)| {
                if crate::bits::get(row, i) {
                    p as i64
                } else {
                    -(p as i64)
                }
            })
            .sum()
    }
}
