//! The BatchNorm fold is exact: for every accumulator value the integer comparison equals
//! sign(BN(x)) of the float graph, for random parameters including gamma < 0 and gamma = 0.

mod common;

use bql_model::semantics::{argmax, fires, fold_batchnorm, mirror, AccumulatorKind, BatchNorm};
use proptest::prelude::*;

fn arb_bn() -> impl Strategy<Value = BatchNorm> {
    let gamma = prop_oneof![
        3 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => -1e-6f32..1e-6,
    ];
    (
        gamma,
        -5.0f32..5.0,
        -400.0f32..400.0,
        1e-3f32..5000.0,
        prop_oneof![Just(1e-5f32), Just(1e-3f32)],
    )
        .prop_map(|(gamma, beta, mean, var, eps)| BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
        })
}

fn check_exhaustively(
    bn: &BatchNorm,
    kind: AccumulatorKind,
    n: usize,
) -> Result<(), TestCaseError> {
    let f = fold_batchnorm(bn, kind, n);
    let (lo, hi) = kind.range(n);
    let (tlo, thi) = kind.threshold_range(n);
    prop_assert!(
        f.threshold >= tlo && f.threshold <= thi,
        "threshold {} outside {tlo}..={thi}",
        f.threshold
    );
    prop_assert_eq!(f.negate, bn.gamma < 0.0);
    for acc in lo..=hi {
        let float = bn.fires(kind.float_preactivation(acc, n));
        let stored = if f.negate { mirror(kind, acc, n) } else { acc };
        prop_assert_eq!(
            fires(stored, f.threshold),
            float,
            "acc {} (n {}) {:?} -> {:?}",
            acc,
            n,
            bn,
            f
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn popcount_fold_is_exact(bn in arb_bn(), n in 1usize..=1100) {
        check_exhaustively(&bn, AccumulatorKind::Popcount, n)?;
    }

    #[test]
    fn pixel_sum_fold_is_exact(bn in arb_bn(), n in 1usize..=12) {
        // Pixel sums see x = acc / 255, so scale the statistics into that range.
        let bn = BatchNorm { mean: bn.mean / 100.0, var: bn.var / 1000.0, ..bn };
        check_exhaustively(&bn, AccumulatorKind::SignedPixelSum, n)?;
    }
}

#[test]
fn gamma_zero_is_constant() {
    for beta in [-1.0f32, 0.0, 2.0] {
        let bn = BatchNorm {
            gamma: 0.0,
            beta,
            mean: 3.0,
            var: 1.0,
            eps: 1e-5,
        };
        let f = fold_batchnorm(&bn, AccumulatorKind::Popcount, 10);
        let expect = if beta >= 0.0 { 0 } else { 11 };
        assert_eq!(f.threshold, expect, "beta {beta}");
    }
}

#[test]
fn accumulator_widths() {
    // Popcount over 784 inputs: thresholds 0..=785 need 10 bits.
    assert_eq!(AccumulatorKind::Popcount.bits(784), 10);
    assert_eq!(AccumulatorKind::Popcount.bits(255), 9); // threshold 256
    assert_eq!(AccumulatorKind::Popcount.bits(254), 8);
    // Signed pixel sum over 784: -199920..=199921 needs 19 bits (two's complement).
    assert_eq!(AccumulatorKind::SignedPixelSum.bits(784), 19);
    assert_eq!(AccumulatorKind::SignedPixelSum.bits(1), 10); // -255..=256
}

#[test]
fn argmax_lowest_index_wins_ties() {
    assert_eq!(argmax(&[3, 7, 7, 1]), Some(1));
    assert_eq!(argmax(&[-5, -5]), Some(0));
    assert_eq!(argmax(&[0]), Some(0));
    assert_eq!(argmax(&[]), None);
}
