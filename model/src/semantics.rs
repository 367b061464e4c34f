//! The exact integer semantics of `docs/semantics.md`, as functions.
//!
//! Everything the hardware must reproduce bit for bit is defined here once: accumulator ranges,
//! the threshold comparison, the fold of BatchNorm + sign into an integer threshold, and argmax.

use serde::{Deserialize, Serialize};

/// Pixel scale used by the float graph for 8-bit inputs: the network sees `pixel / 255`.
pub const PIXEL_SCALE: f64 = 255.0;

/// What a layer's accumulator sums, which fixes its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccumulatorKind {
    /// Popcount of XNOR(weight, activation) over `n` binary inputs: `0..=n`.
    Popcount,
    /// Signed sum of `n` 8-bit pixels, each added (weight +1) or subtracted (weight -1):
    /// `-255 n ..= 255 n`.
    SignedPixelSum,
}

impl AccumulatorKind {
    /// Smallest and largest value the accumulator can hold for `n` inputs.
    pub fn range(self, n: usize) -> (i64, i64) {
        let n = n as i64;
        match self {
            AccumulatorKind::Popcount => (0, n),
            AccumulatorKind::SignedPixelSum => (-255 * n, 255 * n),
        }
    }

    /// Range a threshold may take: one past each end, so that "always fires" (`min`) and
    /// "never fires" (`max + 1`) are both expressible.
    pub fn threshold_range(self, n: usize) -> (i64, i64) {
        let (lo, hi) = self.range(n);
        (lo, hi + 1)
    }

    /// Two's-complement bits needed to hold every value of the threshold range (sign included
    /// for the signed kind); the width the hardware gives the accumulator and the threshold.
    pub fn bits(self, n: usize) -> u32 {
        let (lo, hi) = self.threshold_range(n);
        match self {
            AccumulatorKind::Popcount => 64 - (hi as u64).leading_zeros(),
            AccumulatorKind::SignedPixelSum => {
                let m = hi.max(-lo - 1) as u64;
                65 - m.leading_zeros()
            }
        }
    }

    /// The value the float graph sees before BatchNorm for accumulator value `acc` over `n`
    /// inputs: the +-1 dot product `2 acc - n` for popcounts, `acc / 255` for pixel sums.
    /// Both maps are monotone non-decreasing in f64, which the threshold fold relies on.
    pub fn float_preactivation(self, acc: i64, n: usize) -> f64 {
        match self {
            AccumulatorKind::Popcount => (2 * acc - n as i64) as f64,
            AccumulatorKind::SignedPixelSum => acc as f64 / PIXEL_SCALE,
        }
    }
}

/// The threshold comparison: a neuron fires (+1, bit 1) exactly when `acc >= threshold`.
#[inline]
pub fn fires(acc: i64, threshold: i64) -> bool {
    acc >= threshold
}

/// BatchNorm parameters of one neuron as trained (inference form, running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Scale.
    pub gamma: f32,
    /// Shift.
    pub beta: f32,
    /// Running mean.
    pub mean: f32,
    /// Running variance.
    pub var: f32,
    /// Epsilon added to the variance.
    pub eps: f32,
}

impl BatchNorm {
    /// sign(BN(x)) as the float graph computes it, in f64: true (+1) when
    /// `gamma * (x - mean) / sqrt(var + eps) + beta >= 0`. Zero maps to +1.
    pub fn fires(&self, x: f64) -> bool {
        let sigma = (self.var as f64 + self.eps as f64).sqrt();
        self.gamma as f64 * (x - self.mean as f64) / sigma + self.beta as f64 >= 0.0
    }
}

/// The result of folding BatchNorm + sign into integer form for one neuron.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// The neuron's weights are negated (gamma < 0): the accumulator becomes its mirror image.
    pub negate: bool,
    /// The integer threshold on the (possibly mirrored) accumulator.
    pub threshold: i64,
}

/// The mirror image of an accumulator value when all of the neuron's weights are negated:
/// `n - acc` for popcounts, `-acc` for pixel sums.
#[inline]
pub fn mirror(kind: AccumulatorKind, acc: i64, n: usize) -> i64 {
    match kind {
        AccumulatorKind::Popcount => n as i64 - acc,
        AccumulatorKind::SignedPixelSum => -acc,
    }
}

/// Folds BatchNorm + sign into an integer threshold, exactly.
///
/// `BatchNorm::fires(float_preactivation(acc))` is monotone in `acc`: non-decreasing when
/// gamma >= 0, non-increasing when gamma < 0 (every f64 operation in it rounds monotonically).
/// So the set of firing accumulator values is an upper (or lower) interval, found by binary
/// search with the very predicate the float graph uses. A lower interval `acc <= c` becomes an
/// upper one by negating the weights: `mirror(acc) >= mirror(c)`. The result agrees with
/// sign(BN(x)) for every accumulator value; the property tests check it exhaustively.
pub fn fold_batchnorm(bn: &BatchNorm, kind: AccumulatorKind, n: usize) -> Folded {
    let (lo, hi) = kind.range(n);
    let pred = |acc: i64| bn.fires(kind.float_preactivation(acc, n));
    let negate = bn.gamma < 0.0;
    if !negate {
        // Smallest acc in [lo, hi] that fires, or hi + 1 when none does.
        let (mut a, mut b) = (lo, hi + 1);
        while a < b {
            let m = a + (b - a) / 2;
            if pred(m) {
                b = m;
            } else {
                a = m + 1;
            }
        }
        Folded {
            negate,
            threshold: a,
        }
    } else {
        // Largest acc in [lo, hi] that fires (lo - 1 when none), then mirror it.
        let (mut a, mut b) = (lo - 1, hi);
        while a < b {
            let m = b - (b - a) / 2;
            if pred(m) {
                a = m;
            } else {
                b = m - 1;
            }
        }
        let threshold = if a < lo {
            hi_after_mirror(kind, n) + 1
        } else {
            mirror(kind, a, n)
        };
        Folded { negate, threshold }
    }
}

fn hi_after_mirror(kind: AccumulatorKind, n: usize) -> i64 {
    kind.range(n).1
}

/// Index of the largest score; ties go to the lowest index. `None` for an empty slice.
pub fn argmax(scores: &[i32]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some((_, b)) if s <= b => {}
            _ => best = Some((i, s)),
        }
    }
    best.map(|(i, _)| i)
}

/// Index of the largest float score; ties go to the lowest index (the float graph's rule).
pub fn argmax_f64(scores: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some((_, b)) if s <= b => {}
            _ => best = Some((i, s)),
        }
    }
    best.map(|(i, _)| i)
}
