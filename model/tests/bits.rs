//! Bit packing round trips and the zero-padding invariant.

use bql_model::bits::{pack, unpack, BitMatrix};
use proptest::prelude::*;

proptest! {
    #[test]
    fn pack_unpack_round_trips(bits in prop::collection::vec(any::<bool>(), 0..500)) {
        let words = pack(&bits);
        prop_assert_eq!(words.len(), bits.len().div_ceil(64));
        prop_assert_eq!(unpack(&words, bits.len()), bits.clone());
        // Padding stays zero: the popcount of the words is the number of set bits.
        let ones: u32 = words.iter().map(|w| w.count_ones()).sum();
        prop_assert_eq!(ones as usize, bits.iter().filter(|&&b| b).count());
    }

    #[test]
    fn matrix_round_trips_and_negates(rows in 1usize..20, cols in 1usize..200, seed in any::<u64>()) {
        let mut s = seed;
        let vals: Vec<bool> = (0..rows * cols).map(|_| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); s >> 63 == 1 }).collect();
        let m = BitMatrix::from_bools(rows, cols, &vals);
        for r in 0..rows {
            for c in 0..cols {
                prop_assert_eq!(m.get(r, c), vals[r * cols + c]);
            }
        }
        let back = BitMatrix::from_words(rows, cols, m.words().to_vec()).unwrap();
        prop_assert_eq!(&back, &m);
        let mut n = m.clone();
        n.negate_row(0);
        for c in 0..cols {
            prop_assert_eq!(n.get(0, c), !m.get(0, c));
        }
        // Negation keeps the padding clear, so from_words still accepts the words.
        prop_assert!(BitMatrix::from_words(rows, cols, n.words().to_vec()).is_some());
    }
}

#[test]
fn set_padding_bits_are_rejected() {
    // 70 columns: bits 70..127 of the second word are padding.
    let words = vec![0, 1u64 << 5, 0, 0];
    assert!(BitMatrix::from_words(2, 70, words.clone()).is_some());
    let mut bad = words;
    bad[1] |= 1u64 << 6;
    assert!(BitMatrix::from_words(2, 70, bad).is_none());
    assert!(BitMatrix::from_words(2, 70, vec![0; 3]).is_none());
}
