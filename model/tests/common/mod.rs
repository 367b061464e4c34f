//! Random networks for property tests.
#![allow(dead_code, unused_imports)]

pub use bql_model::testing::{random_network, random_pixels, Rng};
use bql_model::Network;
use proptest::prelude::*;

/// A random valid network: input of `len` pixels (1 x len x 1), 1-4 layers of widths 1-300,
/// binary or 8-bit input, thresholds anywhere in their legal range, optional float params.
pub fn arb_network() -> impl Strategy<Value = Network> {
    (
        1usize..=300,
        prop::collection::vec(1usize..=300, 1..=4),
        any::<bool>(),
        any::<u8>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(input_len, widths, u8_input, pix_thr, seed, with_float)| {
            random_network(input_len, &widths, u8_input, pix_thr, seed, with_float)
        })
}

/// A random folding `(layer, P, S)` per layer, P up to `max_p`, S up to `max_s`.
pub fn random_folds(
    net: &Network,
    rng: &mut Rng,
    max_p: usize,
    max_s: usize,
) -> Vec<(usize, usize, usize)> {
    net.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = rng.range(1, l.output_len().min(max_p) as i64) as usize;
            let s = rng.range(1, l.input_len().min(max_s) as i64) as usize;
            (i, p, s)
        })
        .collect()
}
