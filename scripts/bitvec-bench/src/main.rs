//! The reference's inner loop, `popcount(row XOR x)` over packed rows, three ways on the same
//! data (the default MLP's first layer: 256 rows of 784 bits, 2,000 input vectors), one thread,
//! median of five runs: plain u64 words (what bql-model does, before its AVX2 kernel), bitvec's
//! `BitVec ^= BitSlice` + `count_ones`, and bitvec's bit iterators.

use bitvec::prelude::*;
use std::time::Instant;

/// xorshift64: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_rows(rng: &mut Rng, rows: usize, cols: usize) -> Vec<Vec<u64>> {
    let words = cols.div_ceil(64);
    (0..rows)
        .map(|_| {
            let mut v: Vec<u64> = (0..words).map(|_| rng.next()).collect();
            v[words - 1] &= (1u64 << (cols % 64)) - 1;
            v
        })
        .collect()
}

fn as_bitvecs(rows: &[Vec<u64>], cols: usize) -> Vec<BitVec<u64, Lsb0>> {
    rows.iter()
        .map(|r| {
            let mut b = BitVec::<u64, Lsb0>::from_slice(r);
            b.truncate(cols);
            b
        })
        .collect()
}

fn timed(f: impl Fn() -> u64) -> (f64, u64) {
    let mut runs: Vec<(f64, u64)> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let sum = f();
            (t.elapsed().as_secs_f64(), sum)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[2]
}

fn main() {
    let (rows, cols, n) = (256usize, 784usize, 2000usize);
    let mut rng = Rng(1);
    let w = random_rows(&mut rng, rows, cols);
    let x = random_rows(&mut rng, n, cols);
    let (wb, xb) = (as_bitvecs(&w, cols), as_bitvecs(&x, cols));
    let words = timed(|| {
        let mut sum = 0u64;
        for xi in &x {
            for row in &w {
                sum += row.iter().zip(xi).map(|(a, b)| (a ^ b).count_ones() as u64).sum::<u64>();
            }
        }
        sum
    });
    let xor_assign = timed(|| {
        let mut sum = 0u64;
        let mut tmp = BitVec::<u64, Lsb0>::repeat(false, cols);
        for xi in &xb {
            for row in &wb {
                tmp.copy_from_bitslice(row);
                tmp ^= xi.as_bitslice();
                sum += tmp.count_ones() as u64;
            }
        }
        sum
    });
    let iterators = timed(|| {
        let mut sum = 0u64;
        for xi in &xb {
            for row in &wb {
                sum += row.iter().zip(xi.iter()).filter(|(a, b)| **a != **b).count() as u64;
            }
        }
        sum
    });
    assert_eq!(words.1, xor_assign.1, "same disagreement counts");
    assert_eq!(words.1, iterators.1, "same disagreement counts");
    let macs = (rows * cols * n) as f64;
    for (name, (t, _)) in [
        ("u64 words (bql-model's portable loop)", words),
        ("bitvec: BitVec ^= BitSlice, count_ones", xor_assign),
        ("bitvec: bit iterators", iterators),
    ] {
        println!("{name:<42} {:>8.1} ms  {:>7.3} G binary MACs/s  {:>6.1}x the words loop's time", t * 1e3, macs / t / 1e9, t / words.0);
    }
}
