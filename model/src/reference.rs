//! The reference inference: the executable form of `docs/semantics.md`, and the oracle that
//! simulation and boards are compared against.
//!
//! Activations between layers are packed 64 to a `u64` in the flat `(y, x, c)` order of the
//! semantics, so flatten moves nothing and every layer's output is directly comparable with the
//! hardware's debug taps. A binary neuron's accumulator is `inputs - popcount(weights XOR
//! operands)` (padding bits are zero on both sides, so they never count). A convolution gathers
//! each output position's `k x k x C` window into a packed vector in weight-column order and runs
//! the same kernel as a dense layer over it. Images are processed in parallel with rayon; on
//! x86-64 CPUs with POPCNT/AVX2 the inner loops are compiled a second time with those
//! instructions and chosen at run time ([`Engine::kernel`] says which).

use rayon::prelude::*;

use crate::bits::{self, words_for};
use crate::kernel::{disagreements, Interleaved};
use crate::layers::{Conv2d, Dense, DenseOutput, Layer, MaxPool2d};
use crate::network::{InputEncoding, Network};
use crate::semantics::{argmax, fires, AccumulatorKind};

/// The output of one layer for one image, as the hardware would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOutput {
    /// Packed output bits of a threshold, pooling or flatten layer (bit 1 = +1), in the flat
    /// `(y, x, c)` order of docs/semantics.md.
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

/// The XNOR-popcount kernel an [`Engine`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// 256-bit XOR, nibble-table popcount (`vpshufb`) and `vpsadbw`, four neurons at a time.
    Avx2,
    /// Scalar 64-bit XOR and `count_ones`, four neurons at a time.
    Portable,
}

impl Kernel {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Binary MACs per cycle one core can at best retire with this kernel's instruction mix
    /// (the bound stated and derived in docs/semantics.md, "reference throughput").
    pub fn peak_macs_per_cycle(self) -> f64 {
        match self {
            // Per 256 weight bits: vpxor, 2x vpand, vpsrlw, 2x vpshufb, 2x vpaddb = 8 vector
            // µops on the four vector pipes of AMD Zen 2/3: 256 / (8 / 4) = 128 bits per cycle
            // (Intel Skylake-class cores, with three pipes, 96).
            Kernel::Avx2 => 128.0,
            // Per 64 bits: xor + popcnt + add, with popcnt on one port: 64 per cycle.
            Kernel::Portable => 64.0,
        }
    }
}

/// A layer's weights prepared for the kernel.
enum Prepared {
    /// Binary weights; the interleaved copy when the AVX2 kernel runs.
    Binary(Option<Interleaved>),
    /// The 8-bit first layer: per input (row) and output (column), the mask `-1` where the
    /// weight is +1 and `0` where it is -1, so `sum(w * x) = 2 * sum(x & mask) - sum(x)`, a loop
    /// over outputs of AND and add that vectorizes.
    Signed(Vec<i32>),
    /// Pooling and flatten.
    Nothing,
}

/// A network prepared for fast inference.
pub struct Engine<'a> {
    net: &'a Network,
    prepared: Vec<Prepared>,
    fast: bool,
    /// Largest packed vector between layers, in bits.
    widest: usize,
    /// Largest fan-in of a layer with weights (the window of a convolution).
    widest_fan_in: usize,
    /// Most outputs that one position computes (neurons, or output channels).
    widest_outputs: usize,
    /// The first layer's operand of each pixel value, for 8-bit and table input.
    operands: [i32; 256],
}

/// Per-thread buffers, reused across images.
struct Scratch {
    a: Vec<u64>,
    b: Vec<u64>,
    /// The packed window of a binary convolution.
    window: Vec<u64>,
    /// The pixel window of an 8-bit convolution.
    pixels: Vec<i32>,
    /// Per-output accumulators of the current position.
    acc: Vec<i64>,
    /// The same for signed pixel sums, in `i32`.
    sums: Vec<i32>,
    differ: Vec<u32>,
}

impl<'a> Engine<'a> {
    /// Prepares `net`, which must be valid ([`Network::validate`]).
    pub fn new(net: &'a Network) -> Self {
        let fast = cpu_has_fast_popcount();
        let prepared = net.layers.iter().map(|l| prepare(l, fast)).collect();
        let widest = net.widths().into_iter().max().unwrap_or(0);
        let widest_fan_in = net
            .layers
            .iter()
            .filter_map(Layer::fan_in)
            .max()
            .unwrap_or(0);
        let widest_outputs = net
            .layers
            .iter()
            .filter_map(|l| {
                l.thresholds()
                    .map(<[i64]>::len)
                    .or(l.is_scores().then(|| l.output_len()))
            })
            .max()
            .unwrap_or(0);
        Engine {
            net,
            prepared,
            fast,
            widest,
            widest_fan_in,
            widest_outputs,
            operands: net.input.encoding.pixel_operands().unwrap_or([0; 256]),
        }
    }

    /// The network this engine runs.
    pub fn network(&self) -> &Network {
        self.net
    }

    /// The kernel chosen for this CPU.
    pub fn kernel(&self) -> Kernel {
        if self.fast {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            a: vec![0; words_for(self.widest)],
            b: vec![0; words_for(self.widest)],
            window: vec![0; words_for(self.widest_fan_in)],
            pixels: vec![0; self.widest_fan_in],
            acc: vec![0; self.widest_outputs],
            sums: vec![0; self.widest_outputs],
            differ: vec![0; self.widest_outputs],
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
        const CHUNK: usize = 16;
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
        let mut scores = vec![0; self.net.classes()];
        let mut s = self.scratch();
        self.run_layers::<false>(pixels, &mut s, &mut scores, &mut |i, bits| {
            let len = self.net.layers[i].output_len();
            outputs.push(LayerOutput::Bits(bits[..words_for(len)].to_vec()));
        });
        outputs.push(LayerOutput::Scores(scores));
        outputs
    }

    fn run(&self, pixels: &[u8], s: &mut Scratch, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if self.fast {
            // SAFETY: `fast` is only true when the CPU reports POPCNT and AVX2.
            unsafe { self.run_fast(pixels, s, out) };
            return;
        }
        self.run_layers::<false>(pixels, s, out, &mut |_, _| {})
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,avx2")]
    unsafe fn run_fast(&self, pixels: &[u8], s: &mut Scratch, out: &mut [i32]) {
        self.run_layers::<true>(pixels, s, out, &mut |_, _| {})
    }

    /// Runs every layer; `tap(i, bits)` sees the packed output of each layer but the last.
    #[inline(always)]
    fn run_layers<const AVX2: bool>(
        &self,
        pixels: &[u8],
        s: &mut Scratch,
        out: &mut [i32],
        tap: &mut dyn FnMut(usize, &[u64]),
    ) {
        if let InputEncoding::Binary { threshold } = self.net.input.encoding {
            binarize::<AVX2>(threshold, pixels, &mut s.a);
        }
        for (i, layer) in self.net.layers.iter().enumerate() {
            match layer {
                Layer::Dense(d) => {
                    self.dense_accs::<AVX2>(i, d, pixels, s);
                    match &d.output {
                        DenseOutput::Threshold(t) => write_fired(&s.acc, t, &mut s.b, 0),
                        DenseOutput::Scores => {
                            for (slot, &a) in out.iter_mut().zip(&s.acc) {
                                *slot = a as i32;
                            }
                            continue;
                        }
                    }
                }
                Layer::Conv2d(c) => self.conv::<AVX2>(i, c, pixels, s),
                Layer::MaxPool2d(p) => max_pool(p, &s.a, &mut s.b),
                Layer::Flatten(_) => {
                    tap(i, &s.a);
                    continue;
                }
            }
            bits::clear_padding(&mut s.b, layer.output_len());
            std::mem::swap(&mut s.a, &mut s.b);
            tap(i, &s.a);
        }
    }

    /// `s.differ[..outputs]` = disagreements of every row of layer `i` with `x`.
    #[inline(always)]
    fn binary_differ<const AVX2: bool>(
        &self,
        i: usize,
        weights: &bits::BitMatrix,
        x: &[u64],
        differ: &mut [u32],
    ) {
        match &self.prepared[i] {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 is only true inside `run_fast`, which requires AVX2.
            Prepared::Binary(Some(il)) if AVX2 => unsafe {
                crate::kernel::disagreements_avx2(il, x, differ)
            },
            _ => disagreements(weights, x, differ),
        }
    }

    /// Accumulators of every neuron of dense layer `i` into `s.acc` (input activations in `s.a`).
    #[inline(always)]
    fn dense_accs<const AVX2: bool>(&self, i: usize, d: &Dense, pixels: &[u8], s: &mut Scratch) {
        let acc = &mut s.acc[..d.outputs()];
        if let Prepared::Signed(masks) = &self.prepared[i] {
            let sums = &mut s.sums[..d.outputs()];
            let operands = pixels.iter().map(|&p| self.operands[usize::from(p)]);
            signed_sums::<AVX2>(masks, operands, sums);
            for (a, &v) in acc.iter_mut().zip(sums.iter()) {
                *a = v as i64;
            }
            return;
        }
        let differ = &mut s.differ[..d.outputs()];
        self.binary_differ::<AVX2>(i, &d.weights, &s.a, differ);
        let n = d.inputs() as i64;
        for (a, &c) in acc.iter_mut().zip(differ.iter()) {
            *a = n - c as i64;
        }
    }

    /// Convolution layer `i`: input map in `s.a` (or `pixels` for an 8-bit first layer), output
    /// map into `s.b`.
    #[inline(always)]
    fn conv<const AVX2: bool>(&self, i: usize, c: &Conv2d, pixels: &[u8], s: &mut Scratch) {
        let out = c.output();
        let m = c.out_channels();
        for oy in 0..out.height {
            for ox in 0..out.width {
                self.conv_position::<AVX2>(i, c, pixels, (oy, ox), s);
                write_fired(
                    &s.acc[..m],
                    &c.thresholds,
                    &mut s.b,
                    (oy * out.width + ox) * m,
                );
            }
        }
    }

    /// The accumulators of every output channel of convolution `i` at one output position, into
    /// `s.acc` (input map in `s.a`, or `pixels` for an 8-bit first layer).
    #[inline(always)]
    fn conv_position<const AVX2: bool>(
        &self,
        i: usize,
        c: &Conv2d,
        pixels: &[u8],
        (oy, ox): (usize, usize),
        s: &mut Scratch,
    ) {
        let (n, m) = (c.window_len(), c.out_channels());
        let acc = &mut s.acc[..m];
        if let Prepared::Signed(masks) = &self.prepared[i] {
            pixel_window(c, pixels, &self.operands, (oy, ox), &mut s.pixels[..n]);
            let sums = &mut s.sums[..m];
            signed_sums::<AVX2>(masks, s.pixels[..n].iter().copied(), sums);
            for (a, &v) in acc.iter_mut().zip(sums.iter()) {
                *a = v as i64;
            }
        } else {
            binary_window(c, &s.a, oy, ox, &mut s.window);
            let differ = &mut s.differ[..m];
            self.binary_differ::<AVX2>(i, &c.weights, &s.window, differ);
            for (a, &d) in acc.iter_mut().zip(differ.iter()) {
                *a = n as i64 - d as i64;
            }
        }
    }

    /// The accumulators of layer `layer` (dense or conv) for one image: per output position (one
    /// for a dense layer), every output's accumulator, position-major. For re-estimating
    /// BatchNorm statistics ([`crate::calibrate`]). `None` for a layer without weights.
    pub fn accumulators(&self, pixels: &[u8], layer: usize) -> Option<Vec<i64>> {
        let l = self.net.layers.get(layer)?;
        let mut s = self.scratch();
        let mut input: Option<Vec<u64>> = None;
        if layer > 0 {
            let mut scores = vec![0; self.net.classes()];
            self.run_layers::<false>(pixels, &mut s, &mut scores, &mut |i, bits| {
                if i + 1 == layer {
                    input = Some(bits.to_vec());
                }
            });
            let input = input?;
            s.a[..input.len()].copy_from_slice(&input);
        } else if let InputEncoding::Binary { threshold } = self.net.input.encoding {
            binarize::<false>(threshold, pixels, &mut s.a);
        }
        match l {
            Layer::Dense(d) => {
                self.dense_accs::<false>(layer, d, pixels, &mut s);
                Some(s.acc[..d.outputs()].to_vec())
            }
            Layer::Conv2d(c) => {
                let out = c.output();
                let mut all = Vec::with_capacity(out.len());
                for oy in 0..out.height {
                    for ox in 0..out.width {
                        self.conv_position::<false>(layer, c, pixels, (oy, ox), &mut s);
                        all.extend_from_slice(&s.acc[..c.out_channels()]);
                    }
                }
                Some(all)
            }
            _ => None,
        }
    }
}

fn prepare(layer: &Layer, fast: bool) -> Prepared {
    let (weights, n) = match layer {
        Layer::Dense(d) => (&d.weights, d.inputs()),
        Layer::Conv2d(c) => (&c.weights, c.window_len()),
        _ => return Prepared::Nothing,
    };
    if layer.accumulator() == Some(AccumulatorKind::SignedPixelSum) {
        let masks = (0..n)
            .flat_map(|i| (0..weights.rows()).map(move |o| (o, i)))
            .map(|(o, i)| if weights.get(o, i) { -1 } else { 0 })
            .collect();
        return Prepared::Signed(masks);
    }
    Prepared::Binary(fast.then(|| Interleaved::new(weights)))
}

/// Writes the output bits `acc[o] >= thresholds[o]` at bit `off` of `dst`.
#[inline(always)]
fn write_fired(acc: &[i64], thresholds: &[i64], dst: &mut [u64], off: usize) {
    for (j, (a, t)) in acc.chunks(64).zip(thresholds.chunks(64)).enumerate() {
        let mut word = 0u64;
        for (k, (&a, &th)) in a.iter().zip(t).enumerate() {
            word |= (fires(a, th) as u64) << k;
        }
        bits::write_bits(dst, off + 64 * j, a.len(), word);
    }
}

/// The columns `kx_lo..kx_hi` of a window row at input column `x0 + kx` that lie inside a map
/// of `width` columns.
#[inline(always)]
fn inside(x0: isize, k: usize, width: usize) -> (usize, usize) {
    let lo = (-x0).clamp(0, k as isize) as usize;
    let hi = (width as isize - x0).clamp(lo as isize, k as isize) as usize;
    (lo, hi)
}

/// Top-left input coordinate of the window of output position (`oy`, `ox`), padding included.
#[inline(always)]
fn window_origin(c: &Conv2d, oy: usize, ox: usize) -> (isize, isize) {
    let (top, left) = c.pad_before();
    (
        (oy * c.stride) as isize - top as isize,
        (ox * c.stride) as isize - left as isize,
    )
}

/// Packs the window of output position (`oy`, `ox`) of a binary convolution from the packed
/// map `x` into `window`, in weight-column order `(ky, kx, c)`, padded positions as the pad bit.
#[inline(always)]
fn binary_window(c: &Conv2d, x: &[u64], oy: usize, ox: usize, window: &mut [u64]) {
    let (k, ch, map) = (c.kernel, c.input.channels, c.input);
    let pad = c.pad_bit();
    let (y0, x0) = window_origin(c, oy, ox);
    let (lo, hi) = inside(x0, k, map.width);
    for ky in 0..k {
        let row = ky * k * ch;
        let iy = y0 + ky as isize;
        if iy < 0 || iy >= map.height as isize {
            bits::fill_bits(window, row, k * ch, pad);
            continue;
        }
        bits::fill_bits(window, row, lo * ch, pad);
        let src = (iy as usize * map.width + (x0 + lo as isize) as usize) * ch;
        bits::copy_bits(x, src, window, row + lo * ch, (hi - lo) * ch);
        bits::fill_bits(window, row + hi * ch, (k - hi) * ch, pad);
    }
    // The buffer is shared with wider windows of other layers: its padding must be zero.
    bits::clear_padding(window, k * k * ch);
}

/// The operand window of output position (`oy`, `ox`) of an 8-bit convolution: each pixel's
/// entry in `operands`, padded positions 0.
#[inline(always)]
fn pixel_window(
    c: &Conv2d,
    pixels: &[u8],
    operands: &[i32; 256],
    (oy, ox): (usize, usize),
    window: &mut [i32],
) {
    let (k, ch, map) = (c.kernel, c.input.channels, c.input);
    let (y0, x0) = window_origin(c, oy, ox);
    let (lo, hi) = inside(x0, k, map.width);
    for (ky, row) in window.chunks_exact_mut(k * ch).enumerate() {
        let iy = y0 + ky as isize;
        row.fill(0);
        if iy < 0 || iy >= map.height as isize {
            continue;
        }
        let src = (iy as usize * map.width + (x0 + lo as isize) as usize) * ch;
        for (d, &p) in row[lo * ch..hi * ch].iter_mut().zip(&pixels[src..]) {
            *d = operands[usize::from(p)];
        }
    }
}

/// `k x k` max-pooling of the packed map `x` into `y`: the OR of each window's bits per channel.
fn max_pool(p: &MaxPool2d, x: &[u64], y: &mut [u64]) {
    let (k, map, out) = (p.kernel, p.input, p.output());
    let ch = map.channels;
    for py in 0..out.height {
        for px in 0..out.width {
            for c0 in (0..ch).step_by(64) {
                let len = (ch - c0).min(64);
                let mut v = 0u64;
                for dy in 0..k {
                    for dx in 0..k {
                        let pos = (py * k + dy) * map.width + px * k + dx;
                        v |= bits::read_bits(x, pos * ch + c0, len);
                    }
                }
                bits::write_bits(y, (py * out.width + px) * ch + c0, len, v);
            }
        }
    }
}

/// Packs the first layer's operand bits for a binary input (`pixel >= threshold`).
#[inline(always)]
fn binarize<const AVX2: bool>(threshold: u8, pixels: &[u8], out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 is only true inside `run_fast`, which requires AVX2.
        unsafe { crate::kernel::binarize_avx2(pixels, threshold, out) };
        return;
    }
    crate::kernel::binarize(pixels, threshold, out);
}

/// Signed pixel sums of every output: `out[o] = sum_j (w_jo = +1 ? x_j : -x_j)`, from the masks
/// of [`Prepared::Signed`] (`outputs` per input). Zero pixels (most of an MNIST image) are
/// skipped.
#[inline(always)]
fn signed_sums<const AVX2: bool>(masks: &[i32], x: impl Iterator<Item = i32>, out: &mut [i32]) {
    out.fill(0);
    let mut total = 0;
    for (row, xj) in masks.chunks_exact(out.len()).zip(x) {
        if xj == 0 {
            continue;
        }
        total += xj;
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: AVX2 is only true inside `run_fast`, which requires AVX2.
            unsafe { add_masked_avx2(out, row, xj) };
            continue;
        }
        for (a, &m) in out.iter_mut().zip(row) {
            *a += xj & m;
        }
    }
    for a in out.iter_mut() {
        *a = 2 * *a - total;
    }
}

/// `out[o] += x & masks[o]`, eight lanes per AVX2 instruction (the compiler left the plain loop
/// scalar, measured with perf), then the remainder.
///
/// # Safety
/// The CPU must support AVX2; `masks` holds at least `out.len()` entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_masked_avx2(out: &mut [i32], masks: &[i32], x: i32) {
    use std::arch::x86_64::*;
    let xv = _mm256_set1_epi32(x);
    let full = out.len() / 8 * 8;
    for k in (0..full).step_by(8) {
        // SAFETY: k + 8 <= full <= out.len() <= masks.len(); unaligned loads and stores.
        let m = _mm256_loadu_si256(masks.as_ptr().add(k) as *const __m256i);
        let a = _mm256_loadu_si256(out.as_ptr().add(k) as *const __m256i);
        let sum = _mm256_add_epi32(a, _mm256_and_si256(xv, m));
        _mm256_storeu_si256(out.as_mut_ptr().add(k) as *mut __m256i, sum);
    }
    for (a, &m) in out[full..].iter_mut().zip(&masks[full..]) {
        *a += x & m;
    }
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
