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
