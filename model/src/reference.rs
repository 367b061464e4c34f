//! The reference inference: the executable form of `docs/semantics.md`, and the oracle that
//! simulation and boards are compared against.
//!
//! Activations between layers are packed 64 to a `u64`; a binary neuron's accumulator is
//! `inputs - popcount(weights XOR activations)` (padding bits are zero on both sides, so they
//! never count). Images are processed in parallel with rayon; on x86-64 CPUs with POPCNT/AVX2 the
//! inner loops are compiled a second time with those instructions and chosen at run time.

use rayon::prelude::*;

use crate::bits::{self, words_for};
use crate::kernel::{disagreements, Interleaved};
use crate::layers::{Dense, DenseOutput, Layer};
use crate::network::{InputEncoding, Network};
use crate::semantics::{argmax, fires};

/// The output of one layer for one image, as the hardware would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOutput {
    /// Packed output bits of a threshold layer (bit 1 = +1).
    Bits(Vec<u64>),
    /// Integer scores of the last layer.
    Scores(Vec<i32>),
}

/// Classification of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Integer scores, one per class.
    pub scores: Vec<i32>,
    /// Argmax of the scores (lowest index on ties).
    pub class: usize,
}

/// A network prepared for fast inference.
pub struct Engine<'a> {
    net: &'a Network,
    /// For an 8-bit first layer: its weights as +1/-1 `i32`, row-major.
    signed_first: Option<Vec<i32>>,
    /// Weights of every binary layer interleaved for the AVX2 kernel (when the CPU has it).
    interleaved: Vec<Option<Interleaved>>,
    fast: bool,
}

/// Per-thread buffers, reused across images.
struct Scratch {
    a: Vec<u64>,
    b: Vec<u64>,
    /// Per-neuron disagreement counts or pixel sums of the current layer.
    acc: Vec<i64>,
    differ: Vec<u32>,
}

impl<'a> Engine<'a> {
    /// Prepares `net`, which must be valid ([`Network::validate`]).
    pub fn new(net: &'a Network) -> Self {
        let fast = cpu_has_fast_popcount();
        let signed_first = match (&net.input.encoding, &net.layers[0]) {
            (InputEncoding::U8, Layer::Dense(d)) => Some(
                (0..d.outputs())
                    .flat_map(|o| (0..d.inputs()).map(move |i| (o, i)))
                    .map(|(o, i)| if d.weights.get(o, i) { 1 } else { -1 })
                    .collect(),
            ),
            _ => None,
        };
        Engine {
            net,
            interleaved: net
                .layers
                .iter()
                .enumerate()
                .map(
                    |(i, l)| match (l.as_dense(), i == 0 && signed_first.is_some()) {
                        (Some(d), false) if fast => Some(Interleaved::new(&d.weights)),
                        _ => None,
                    },
                )
                .collect(),
            signed_first,
            fast,
        }
    }

    /// The network this engine runs.
    pub fn network(&self) -> &Network {
        self.net
    }

    fn scratch(&self) -> Scratch {
        let widest = self.net.widths().into_iter().max().unwrap_or(0);
        Scratch {
            a: vec![0; words_for(widest)],
            b: vec![0; words_for(widest)],
            acc: vec![0; widest],
            differ: vec![0; widest],
        }
    }

    /// Scores of one image (`pixels.len()` must equal the input size).
    pub fn scores(&self, pixels: &[u8]) -> Vec<i32> {
        let mut out = vec![0; self.net.classes()];
        let mut s = self.scratch();
        self.run(pixels, &mut s, &mut out);
        out
    }

    /// Scores and class of one image.
    pub fn predict(&self, pixels: &[u8]) -> Prediction {
        let scores = self.scores(pixels);
        let class = argmax(&scores).unwrap_or(0);
        Prediction { scores, class }
    }

    /// Scores of `n` images stored back to back in `pixels`, in parallel; returns the scores
    /// flattened (`n * classes`) and the classes.
    pub fn scores_batch(&self, pixels: &[u8]) -> (Vec<i32>, Vec<usize>) {
        let len = self.net.input.len();
        let classes = self.net.classes();
        let n = pixels.len() / len;
        let mut scores = vec![0i32; n * classes];
        const CHUNK: usize = 64;
        scores
            .par_chunks_mut(CHUNK * classes)
            .enumerate()
            .for_each(|(c, out)| {
                let mut s = self.scratch();
                for (j, o) in out.chunks_mut(classes).enumerate() {
                    let i = c * CHUNK + j;
                    self.run(&pixels[i * len..(i + 1) * len], &mut s, o);
                }
            });
        let predicted = scores
            .chunks(classes.max(1))
            .map(|s| argmax(s).unwrap_or(0))
            .collect();
        (scores, predicted)
    }

    /// Every layer's output for one image, first layer first (for localizing mismatches).
    pub fn trace(&self, pixels: &[u8]) -> Vec<LayerOutput> {
        let mut outputs = Vec::with_capacity(self.net.layers.len());
        let mut x = self.first_operand(pixels);
        for (i, layer) in self.net.layers.iter().enumerate() {
            let Layer::Dense(d) = layer;
            match &d.output {
                DenseOutput::Threshold(t) => {
                    let mut out = vec![0u64; words_for(d.outputs())];
                    for (o, &th) in t.iter().enumerate() {
                        if fires(self.acc(i, d, o, pixels, &x), th) {
                            bits::set(&mut out, o, true);
                        }
                    }
                    outputs.push(LayerOutput::Bits(out.clone()));
                    x = out;
                }
                DenseOutput::Scores => {
                    let s = (0..d.outputs())
                        .map(|o| self.acc(i, d, o, pixels, &x) as i32)
                        .collect();
                    outputs.push(LayerOutput::Scores(s));
                }
            }
        }
        outputs
    }

    fn first_operand(&self, pixels: &[u8]) -> Vec<u64> {
        let mut x = vec![0u64; words_for(pixels.len())];
        binarize::<false>(&self.net.input.encoding, pixels, &mut x);
        x
    }

    #[inline(always)]
    fn acc(&self, layer: usize, d: &Dense, o: usize, pixels: &[u8], x: &[u64]) -> i64 {
        match (&self.signed_first, layer) {
            (Some(w), 0) => signed_dot(&w[o * d.inputs()..(o + 1) * d.inputs()], pixels),
            _ => d.popcount_acc(o, x),
        }
    }

    fn run(&self, pixels: &[u8], s: &mut Scratch, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.fast {
            // SAFETY: `fast` is only true when the CPU reports POPCNT and AVX2.
            unsafe { self.run_fast(pixels, s, out) };
            return;
        }
        self.run_generic::<false>(pixels, s, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,avx2")]
    unsafe fn run_fast(&self, pixels: &[u8], s: &mut Scratch, out: &mut [i32]) {
        self.run_generic::<true>(pixels, s, out)
    }

    /// Accumulators of every neuron of layer `i` into `s.acc` (input activations in `s.a`).
    #[inline(always)]
    fn layer_accs<const AVX2: bool>(&self, i: usize, d: &Dense, pixels: &[u8], s: &mut Scratch) {
        let n = d.inputs() as i64;
        let acc = &mut s.acc[..d.outputs()];
        match (&self.signed_first, i) {
            (Some(w), 0) => {
                for (o, a) in acc.iter_mut().enumerate() {
                    *a = signed_dot(&w[o * d.inputs()..(o + 1) * d.inputs()], pixels);
                }
            }
            _ => {
                let differ = &mut s.differ[..d.outputs()];
                match &self.interleaved[i] {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX2 is only true inside `run_fast`, which requires AVX2.
                    Some(il) if AVX2 => unsafe {
                        crate::kernel::disagreements_avx2(il, &s.a, differ)
                    },
                    _ => disagreements(&d.weights, &s.a, differ),
                }
                for (a, &c) in acc.iter_mut().zip(differ.iter()) {
                    *a = n - c as i64;
                }
            }
        }
    }

    #[inline(always)]
    fn run_generic<const AVX2: bool>(&self, pixels: &[u8], s: &mut Scratch, out: &mut [i32]) {
        binarize::<AVX2>(&self.net.input.encoding, pixels, &mut s.a);
        for (i, layer) in self.net.layers.iter().enumerate() {
            let Layer::Dense(d) = layer;
            self.layer_accs::<AVX2>(i, d, pixels, s);
            let acc = &s.acc[..d.outputs()];
            match &d.output {
                DenseOutput::Threshold(t) => {
                    let y = &mut s.b[..words_for(d.outputs())];
                    for (word, (a, t)) in y.iter_mut().zip(acc.chunks(64).zip(t.chunks(64))) {
                        let mut bits = 0u64;
                        for (k, (&a, &th)) in a.iter().zip(t).enumerate() {
                            bits |= (fires(a, th) as u64) << k;
                        }
                        *word = bits;
                    }
                    std::mem::swap(&mut s.a, &mut s.b);
                }
                DenseOutput::Scores => {
                    for (slot, &a) in out.iter_mut().zip(acc) {
                        *slot = a as i32;
                    }
                }
            }
        }
    }
}

/// Packs the first layer's operand bits for a binary input (`pixel >= threshold`). For 8-bit
/// inputs the pixels are used directly and nothing is packed.
#[inline(always)]
fn binarize<const AVX2: bool>(enc: &InputEncoding, pixels: &[u8], out: &mut [u64]) {
    if let InputEncoding::Binary { threshold } = *enc {
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: AVX2 is only true inside `run_fast`, which requires AVX2.
            unsafe { crate::kernel::binarize_avx2(pixels, threshold, out) };
            return;
        }
        crate::kernel::binarize(pixels, threshold, out);
    }
}

#[inline(always)]
fn signed_dot(w: &[i32], pixels: &[u8]) -> i64 {
    w.iter()
        .zip(pixels)
        .map(|(&w, &p)| w * p as i32)
        .sum::<i32>() as i64
}

fn cpu_has_fast_popcount() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("popcnt") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
