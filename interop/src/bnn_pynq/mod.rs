//! Xilinx BNN-PYNQ parameter folders: the fully connected LFC and the convolutional CNV
//! (W1A1, with CNV's 8-bit fixed-point first layer).
//!
//! A folder holds, per layer `l` and processing element `pe`, `l-pe-weights.bin` (WMEM
//! little-endian u64 words) and `l-pe-thres.bin` (TMEM little-endian i64 values); the network's
//! `config.h` gives each layer's folding and shape and `top.cpp` the input, the threshold types,
//! the max-pools and the last layer's activation ([`source`]).
//!
//! The arithmetic is finn-hlslib's (at the commit BNN-PYNQ pins, 8b7f5f5; `interpret.hpp`,
//! `activations.hpp`, `weights.hpp`, `mvau.hpp`, `slidingwindow.h`, `maxpool.h`), confirmed in
//! the sources:
//! - weight word `nf * SF + sf` of PE `pe` holds output neuron (channel) `nf * PE + pe`; its
//!   bit `b` is input column `sf * SIMD + b` (bits above SIMD are dropped: `ap_uint<SIMD>`),
//!   1 = +1. A convolution's columns are its window in `(ky, kx, c)` order (the sliding window
//!   unit's loops: channel fold innermost, then `kx`, then `ky`), bql's column order;
//! - a binary layer's accumulator counts agreements (`XnorMul`), as bql's popcount does; a
//!   fixed-point first layer (`Recast<Binary>` weights) sums `+-x`, bql's signed pixel sum;
//! - threshold `nf` of PE `pe` is loaded into the accumulator type (`ap_int<16>`: the i64 is
//!   truncated to its low 16 bits; CNV's first layer: the word reinterpreted as
//!   `ap_fixed<64, 56>`, then assigned to `ap_fixed<24, 16>`) and the neuron fires when
//!   `threshold < acc`;
//! - the input is padded to MW columns with 0 bits (-1), `FOLDEDMV_INPUT_PADCHAR`;
//! - max-pooling ORs the bits of each 2x2 window (`StreamingMaxPool_Batch` on `ap_uint<1>`),
//!   bql's pooling.
//!
//! bql fires when `acc >= T` over the valid columns only, so the importer stores
//! `T = t + 1 - p` for a neuron whose padding columns agree with the padding `p` times
//! (clamped to the legal range, which changes no output since `0 <= acc <= n`).
//!
//! CNV's host (`foldedmv-offload.h`, `quantiseAndPack<8, 1>`; tiny_cnn's
//! `parse_cifar10(..., -1.0, 1.0, 0, 0)`) turns pixel `p` into `x = -1 + 2p/255` and quantizes it
//! to `ap_fixed<8, 1, AP_RND, AP_SAT>`: `q = clamp(floor(128 x + 0.5), -128, 127)`, which the
//! first layer reads as `q / 128`. bql stores the 256 values `q` as the model's pixel table and
//! sums them; the first layer's threshold `t / 256` (8 fraction bits) against the sum `S / 128`
//! fires when `t < 2 S`, i.e. `S >= floor(t / 2) + 1`.
//!
//! The last layer is a threshold layer in LFC: its host reads the class bits `v` and answers
//! `(unsigned int) log2(v)`, the highest set bit (0 when no bit is set;
//! `foldedmv-offload.cpp`, `testPrebinarized_nolabel_multiple_images`, which `inference_multiple`
//! and the published 98.4 % use). CNV's last layer passes its accumulators through
//! (`PassThroughActivation<ap_uint<16>>`) and its host answers the first largest score
//! (`testPrebuiltCIFAR10_multiple_images`: `>` against a running maximum that starts at 0).
//! bql's last layer emits the accumulators as scores and takes their argmax (ties to the lowest
//! index); [`Imported::source_class`] applies the source's own rule to them.

mod source;

use std::path::{Path, PathBuf};

use bql_model::bits::BitMatrix;
use bql_model::layers::{
    Conv2d, Dense, DenseOutput, Flatten, Layer, MapShape, MaxPool2d, Padding, Shape,
};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network, PixelTable, PIXEL_TABLE_LIMIT};

pub use source::{parse_config, parse_top, ConvShape, FixedType, LayerConfig, TopFacts};

use crate::error::{Error, Result};

/// How the source turns the last layer's accumulators into a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputRule {
    /// LFC: class bits `threshold_c < acc_c`, then the highest set bit (0 when none).
    HighestClassBit {
        /// Per class, the threshold as the hardware holds it (`ap_int`).
        thresholds: Vec<i64>,
    },
    /// CNV: the first class whose accumulator is larger than every earlier one and than 0.
    FirstLargest,
}

/// An imported network and what the source's own output rule needs.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network under bql's semantics.
    pub network: Network,
    /// The source's output rule.
    pub rule: OutputRule,
    /// Per class, what the source's accumulator adds to bql's score: the agreements of the
    /// last layer's padding columns.
    pub score_offsets: Vec<i64>,
}

impl Imported {
    /// The class the source's host reports for bql's last-layer scores.
    pub fn source_class(&self, scores: &[i64]) -> usize {
        let acc = scores.iter().zip(&self.score_offsets).map(|(s, o)| s + o);
        match &self.rule {
            OutputRule::HighestClassBit { thresholds } => {
                let v: u64 = acc
                    .zip(thresholds)
                    .enumerate()
                    .filter(|(_, (a, t))| **t < *a)
                    .map(|(c, _)| 1u64 << c)
                    .sum();
                if v == 0 {
                    0
                } else {
                    (v as f64).log2() as usize
                }
            }
            OutputRule::FirstLargest => {
                let (mut best, mut best_value) = (0, 0);
                for (c, a) in acc.enumerate() {
                    if a > best_value {
                        (best, best_value) = (c, a);
                    }
                }
                best
            }
        }
    }

    /// The source's rule in words, for reports.
    pub fn rule_name(&self) -> &'static str {
        match self.rule {
            OutputRule::HighestClassBit { .. } => "BNN-PYNQ's output rule (the highest class bit)",
            OutputRule::FirstLargest => "BNN-PYNQ's output rule (the first largest score)",
        }
    }
}

/// Where the files of a BNN-PYNQ network are.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The parameter folder (`bnn/params/mnist/lfcW1A1`).
    pub params: PathBuf,
    /// Its `config.h`.
    pub config: PathBuf,
    /// Its `top.cpp`.
    pub top: PathBuf,
}

impl Sources {
    /// The files for parameter folder `params`: `config` when given (with `top.cpp` next to
    /// it), else the BNN-PYNQ repository layout (`bnn/params/<set>/<net>` next to
    /// `bnn/src/network/<net>/hw/`).
    pub fn find(params: &Path, config: Option<&Path>) -> Result<Sources> {
        let config = match config {
            Some(c) => c.to_path_buf(),
            None => {
                let net = params.file_name().unwrap_or_default();
                let bnn = params.ancestors().nth(3).unwrap_or(params);
                bnn.join("src/network").join(net).join("hw/config.h")
            }
        };
        if !config.is_file() {
            return Err(Error::malformed(format!(
                "no config.h for {} (looked at {}): pass --config path/to/hw/config.h",
                params.display(),
                config.display()
            )));
        }
        let top = config.with_file_name("top.cpp");
        Ok(Sources {
            params: params.to_path_buf(),
            config,
            top,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
}

/// `count` little-endian 8-byte values of `path`, which must hold exactly that many.
fn words(path: &Path, count: usize) -> Result<Vec<u64>> {
    let bytes = read(path)?;
    if bytes.len() != count * 8 {
        return Err(Error::malformed(format!(
            "{}: {} bytes, expected {} ({count} words of 8 bytes)",
            path.display(),
            bytes.len(),
            count * 8
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Sign-extends the low `bits` of `v` (loading an i64 into an `ap_int<bits>`).
fn truncate_signed(v: u64, bits: usize) -> i64 {
    let shift = 64 - bits as u32;
    ((v << shift) as i64) >> shift
}

/// The pixel threshold of BNN-PYNQ's MNIST input: the host scales pixels to `p / 255 * 2 - 1`
/// (tiny_cnn's `parse_mnist_images(..., -1.0, 1.0, 0, 0)`) and sets a bit when the value is
/// `>= 0`; the smallest such pixel.
fn input_threshold() -> u8 {
    (0..=255u8)
        .find(|&p| f64::from(p) / 255.0 * 2.0 - 1.0 >= 0.0)
        .expect("255 is >= 0")
}

/// The first layer's operand table for CNV-style fixed-point input: pixel `p` as the host
/// quantizes it, `x = -1 + 2p/255` rounded to `ap_fixed<bits, 1, AP_RND, AP_SAT>` (the integer
/// `q = clamp(floor(x * 2^(bits-1) + 0.5), -2^(bits-1), 2^(bits-1) - 1)`).
pub fn fixed_input_table(bits: usize) -> Option<PixelTable> {
    if !(2..=16).contains(&bits) {
        return None;
    }
    let scale = f64::from(1u32 << (bits - 1));
    let table: [i16; 256] = std::array::from_fn(|p| {
        let x = -1.0 + 2.0 * p as f64 / 255.0;
        (x * scale + 0.5).floor().clamp(-scale, scale - 1.0) as i16
    });
    table
        .iter()
        .all(|v| v.abs() <= PIXEL_TABLE_LIMIT)
        .then_some(PixelTable(table))
}

/// What the importer walks through: the files, the folding and what `top.cpp` says.
struct Walk<'a> {
    src: &'a Sources,
    name: String,
    layers: Vec<LayerConfig>,
    top: TopFacts,
    classes: usize,
}

/// Imports a BNN-PYNQ W1A1 network. `input` is (height, width, channels) of its images: for a
/// convolutional network it comes from `config.h` (and must agree when given); for a fully
/// connected one it defaults to a square single-channel image of `inBits` pixels. `classes` is
/// the number of valid outputs of the last layer.
pub fn import(
    src: &Sources,
    input: Option<(usize, usize, usize)>,
    classes: usize,
) -> Result<Imported> {
    let name = src.config.display().to_string();
    let layers = parse_config(&read_text(&src.config)?, &name)?;
    let top = parse_top(
        &read_text(&src.top)?,
        &src.top.display().to_string(),
        layers.len(),
    )?;
    let walk = Walk {
        src,
        name,
        layers,
        top,
        classes,
    };
    let shape = walk.input_shape(input)?;
    let (encoding, accumulator) = walk.encoding(shape)?;
    let (net_layers, rule, score_offsets) = walk.layers(shape, accumulator)?;
    let net_name = src
        .params
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let network = crate::checked_network(
        format!("bnn-pynq-{net_name}"),
        (shape.height, shape.width, shape.channels),
        encoding,
        net_layers,
        serde_json::json!({
            "imported_from": "BNN-PYNQ",
            "params": src.params.display().to_string(),
            "config": src.config.display().to_string(),
            "semantics": "finn-hlslib: acc = agreements (or the signed sum of fixed-point \
                          inputs), fires when threshold < acc; stored as the smallest bql \
                          accumulator that fires, less the agreements of padding columns",
            "output_rule": match &rule {
                OutputRule::HighestClassBit { thresholds } => serde_json::json!({
                    "kind": "highest class bit (unsigned) log2(v)", "class_thresholds": thresholds,
                }),
                OutputRule::FirstLargest => serde_json::json!({"kind": "first largest score"}),
            },
            "score_offsets": score_offsets,
        }),
        &src.params.display().to_string(),
    )?;
    Ok(Imported {
        network,
        rule,
        score_offsets,
    })
}

impl Walk<'_> {
    fn input_shape(&self, given: Option<(usize, usize, usize)>) -> Result<MapShape> {
        let map = |(height, width, channels)| MapShape {
            height,
            width,
            channels,
        };
        let from_config = self.layers[0]
            .conv
            .map(|c| map((c.ifm_dim, c.ifm_dim, c.ifm_ch)));
        match (given.map(map), from_config) {
            (Some(g), Some(c)) if g != c => Err(Error::malformed(format!(
                "{}: the first layer takes {c} images, not {g}",
                self.name
            ))),
            (Some(g), _) => Ok(g),
            (None, Some(c)) => Ok(c),
            (None, None) => {
                let side = (1..=self.top.input_bits)
                    .find(|s| s * s >= self.top.input_bits)
                    .filter(|s| s * s == self.top.input_bits)
                    .ok_or_else(|| {
                        Error::malformed(format!(
                            "{}: inBits is {}, not a square image: give the input shape",
                            self.src.top.display(),
                            self.top.input_bits
                        ))
                    })?;
                Ok(map((side, side, 1)))
            }
        }
    }

    /// Binary input (`pixel >= 128`) or a fixed-point pixel table, and the first layer's
    /// accumulator.
    fn encoding(&self, shape: MapShape) -> Result<(InputEncoding, AccumulatorKind)> {
        let values = shape.len();
        let per_value = self.top.input_bits / values.max(1);
        if per_value * values != self.top.input_bits {
            return Err(Error::malformed(format!(
                "{}: inBits is {}, not a multiple of the {shape} image's {values} values",
                self.src.top.display(),
                self.top.input_bits
            )));
        }
        match (per_value, self.top.input_fixed) {
            (1, None) => Ok((
                InputEncoding::Binary {
                    threshold: input_threshold(),
                },
                AccumulatorKind::Popcount,
            )),
            (w, Some(f)) if f.bits == w => {
                let table = fixed_input_table(w).ok_or_else(|| {
                    Error::unsupported(format!(
                        "{}: {w}-bit fixed-point input exceeds bql's pixel table range \
                         (+-{PIXEL_TABLE_LIMIT})",
                        self.src.top.display()
                    ))
                })?;
                Ok((InputEncoding::Table(table), AccumulatorKind::SignedPixelSum))
            }
            (w, f) => Err(Error::unsupported(format!(
                "{}: {w} input bits per value with first-layer input type {f:?}: bql imports \
                 binary or fixed-point (Slice<ap_fixed<W, I>>) first layers",
                self.src.top.display()
            ))),
        }
    }

    /// The network's layers (a flatten before the first dense layer after a map), the output
    /// rule, and the last layer's score offsets.
    fn layers(
        &self,
        input: MapShape,
        first: AccumulatorKind,
    ) -> Result<(Vec<Layer>, OutputRule, Vec<i64>)> {
        let mut out = Vec::new();
        let mut shape = Shape::Map(input);
        let mut accumulator = first;
        for (l, cfg) in self.layers.iter().enumerate() {
            let last = l + 1 == self.layers.len();
            self.check_layer(l, cfg, shape)?;
            if let (Some(_), Shape::Map(m)) = (cfg.conv, shape) {
                out.push(self.conv(l, cfg, m, accumulator)?);
            } else {
                // An MLP's first layer takes the image itself (docs/semantics.md 11).
                if let (Shape::Map(m), false) = (shape, out.is_empty()) {
                    out.push(Layer::Flatten(Flatten { input: m }));
                }
                let valid_in = shape.len();
                let rows = if last { self.classes } else { cfg.mh };
                let (weights, padding) = layer_weights(&self.src.params, l, cfg, rows, valid_in)?;
                if last {
                    let rule = self.output_rule(l, cfg, rows)?;
                    out.push(Layer::Dense(Dense {
                        weights,
                        accumulator,
                        output: DenseOutput::Scores,
                    }));
                    return Ok((out, rule, padding));
                }
                let thresholds = self.thresholds(l, cfg, rows, accumulator, valid_in, &padding)?;
                out.push(Layer::Dense(Dense {
                    weights,
                    accumulator,
                    output: DenseOutput::Threshold(thresholds),
                }));
            }
            shape = out.last().expect("a layer was pushed").output_shape();
            for &(_, kernel) in self.top.pools.iter().filter(|(after, _)| *after == l) {
                let Shape::Map(m) = shape else {
                    return Err(self.bad(format!("a max-pool after dense layer L{l}")));
                };
                let pool = MaxPool2d { input: m, kernel };
                pool.check()
                    .map_err(|e| self.bad(format!("the pool after L{l}: {e}")))?;
                if m.height % kernel != 0 || m.width % kernel != 0 {
                    return Err(self.bad(format!(
                        "the {kernel}x{kernel} pool after L{l} does not tile its {m} map"
                    )));
                }
                out.push(Layer::MaxPool2d(pool));
                shape = Shape::Map(pool.output());
            }
            accumulator = AccumulatorKind::Popcount;
        }
        Err(self.bad("no layers".into()))
    }

    fn bad(&self, m: String) -> Error {
        Error::malformed(format!("{}: {m}", self.name))
    }

    /// Convolution `l` on map `m`: square, stride 1, no padding.
    fn conv(
        &self,
        l: usize,
        cfg: &LayerConfig,
        m: MapShape,
        accumulator: AccumulatorKind,
    ) -> Result<Layer> {
        let c = cfg.conv.expect("a convolution");
        let (weights, padding) = layer_weights(&self.src.params, l, cfg, c.ofm_ch, cfg.mw)?;
        let thresholds = self.thresholds(l, cfg, c.ofm_ch, accumulator, cfg.mw, &padding)?;
        Ok(Layer::Conv2d(Conv2d {
            input: m,
            kernel: c.kernel,
            stride: 1,
            padding: Padding::Valid,
            weights,
            accumulator,
            thresholds,
        }))
    }

    /// Layer `l`'s bql thresholds: the smallest accumulator over the `n` valid columns at
    /// which the source fires.
    fn thresholds(
        &self,
        l: usize,
        cfg: &LayerConfig,
        rows: usize,
        accumulator: AccumulatorKind,
        n: usize,
        padding: &[i64],
    ) -> Result<Vec<i64>> {
        let ty = *self.top.threshold_types.get(l).ok_or_else(|| {
            Error::malformed(format!(
                "{}: no threshold type for L{l}",
                self.src.top.display()
            ))
        })?;
        let file_fraction = self.top.threshold_file_fraction[l];
        let raw = layer_thresholds(&self.src.params, l, cfg, rows, ty.bits)?;
        let n = n as i64;
        match accumulator {
            AccumulatorKind::Popcount => {
                if ty.fraction() != 0
                    || file_fraction != 0
                    || i128::from(n) >= 1i128 << (ty.bits - 1)
                {
                    return Err(self.bad(format!(
                        "L{l}: a binary layer of {n} columns with threshold type {ty:?} \
                         (loaded with {file_fraction} fraction bits) is not supported"
                    )));
                }
                Ok(raw
                    .iter()
                    .zip(padding)
                    .map(|(t, p)| (t + 1 - p).clamp(0, n + 1))
                    .collect())
            }
            AccumulatorKind::SignedPixelSum => {
                let input = self.top.input_fixed.expect("fixed-point input");
                let shift = ty.fraction().checked_sub(input.fraction());
                let biggest = i128::from(n) << (input.bits - 1);
                let Some(shift) = shift.filter(|&s| {
                    file_fraction == ty.fraction() && biggest << s < 1i128 << (ty.bits - 1)
                }) else {
                    return Err(self.bad(format!(
                        "L{l}: fixed-point input {input:?} against thresholds {ty:?} loaded \
                         with {file_fraction} fraction bits is not supported"
                    )));
                };
                // Fires when t < S * 2^shift, i.e. S >= floor(t / 2^shift) + 1.
                let (lo, hi) = (-255 * n, 255 * n + 1);
                Ok(raw
                    .iter()
                    .map(|t| ((t >> shift) + 1).clamp(lo, hi))
                    .collect())
            }
        }
    }

    /// The last layer's rule: thresholded class bits, or its accumulators passed through.
    fn output_rule(&self, l: usize, cfg: &LayerConfig, rows: usize) -> Result<OutputRule> {
        if self.top.last_passes_through {
            return Ok(OutputRule::FirstLargest);
        }
        let ty = *self.top.threshold_types.get(l).ok_or_else(|| {
            Error::malformed(format!(
                "{}: no threshold type for L{l}",
                self.src.top.display()
            ))
        })?;
        Ok(OutputRule::HighestClassBit {
            thresholds: layer_thresholds(&self.src.params, l, cfg, rows, ty.bits)?,
        })
    }

    /// The folding must tile the matrix exactly, and each layer take the previous one's
    /// outputs.
    fn check_layer(&self, l: usize, cfg: &LayerConfig, shape: Shape) -> Result<()> {
        let last = l + 1 == self.layers.len();
        let passes = last && self.top.last_passes_through;
        if cfg.wpi != 1 || (cfg.api != 1 && !passes) {
            return Err(Error::unsupported(format!(
                "{}: L{l} has {}-bit weights and {}-bit activations; bql imports W1A1 only",
                self.name, cfg.wpi, cfg.api
            )));
        }
        if cfg.simd == 0 || cfg.pe == 0 || cfg.simd > 64 {
            return Err(Error::unsupported(format!(
                "{}: L{l} SIMD {} (1..=64 supported), PE {}",
                self.name, cfg.simd, cfg.pe
            )));
        }
        if cfg.mw.checked_mul(cfg.mh).is_none_or(|bits| bits > 1 << 32) {
            return Err(Error::unsupported(format!(
                "{}: L{l} is {} x {}: more than 2^32 weights",
                self.name, cfg.mw, cfg.mh
            )));
        }
        let (sf, nf) = (cfg.mw / cfg.simd, cfg.mh / cfg.pe);
        let tmem_ok = cfg.tmem == nf || passes;
        if cfg.mw % cfg.simd != 0 || cfg.mh % cfg.pe != 0 || cfg.wmem != nf * sf || !tmem_ok {
            return Err(self.bad(format!(
                "L{l} MW {} x MH {} does not fold into SIMD {} x PE {} with WMEM {} and TMEM {}",
                cfg.mw, cfg.mh, cfg.simd, cfg.pe, cfg.wmem, cfg.tmem
            )));
        }
        match (cfg.conv, shape) {
            (Some(c), Shape::Map(m)) => {
                let fits = m.height == c.ifm_dim && m.width == c.ifm_dim && m.channels == c.ifm_ch;
                if !fits
                    || c.kernel == 0
                    || c.kernel > c.ifm_dim
                    || c.ofm_dim != c.ifm_dim - c.kernel + 1
                {
                    return Err(self.bad(format!(
                        "L{l} is a {k}x{k} convolution from {d}x{d}x{ci} to {o}x{o}x{co} \
                         (stride 1, no padding) but receives a {m} map",
                        k = c.kernel,
                        d = c.ifm_dim,
                        ci = c.ifm_ch,
                        o = c.ofm_dim,
                        co = c.ofm_ch
                    )));
                }
            }
            (Some(_), Shape::Vector(n)) => {
                return Err(self.bad(format!("L{l} is a convolution after a vector of {n}")));
            }
            (None, shape) if shape.len() > cfg.mw => {
                return Err(self.bad(format!(
                    "L{l} takes {} columns but receives {} values",
                    cfg.mw,
                    shape.len()
                )));
            }
            (None, _) => {}
        }
        if last && self.classes > cfg.mh {
            return Err(self.bad(format!(
                "the last layer has {} rows, fewer than {} classes",
                cfg.mh, self.classes
            )));
        }
        Ok(())
    }
}

/// Layer `l`'s weights for its first `rows` neurons over its `valid_in` valid columns, and per
/// neuron the agreements of its padding columns with the padding (0) inputs.
fn layer_weights(
    dir: &Path,
    l: usize,
    cfg: &LayerConfig,
    rows: usize,
    valid_in: usize,
) -> Result<(BitMatrix, Vec<i64>)> {
    let sf = cfg.mw / cfg.simd;
    let mut weights = BitMatrix::zeros(rows, valid_in);
    let mut padding = vec![0i64; rows];
    for pe in 0..cfg.pe {
        let file = dir.join(format!("{l}-{pe}-weights.bin"));
        let words = words(&file, cfg.wmem)?;
        for (tile, word) in words.iter().enumerate() {
            let (nf, s) = (tile / sf, tile % sf);
            let neuron = nf * cfg.pe + pe;
            if neuron >= rows {
                continue;
            }
            for b in 0..cfg.simd {
                let col = s * cfg.simd + b;
                let bit = (word >> b) & 1 == 1;
                if col < valid_in {
                    weights.set(neuron, col, bit);
                } else if !bit {
                    padding[neuron] += 1;
                }
            }
        }
    }
    Ok((weights, padding))
}

/// Layer `l`'s thresholds for its first `rows` neurons, as `ap_int<bits>` values.
fn layer_thresholds(
    dir: &Path,
    l: usize,
    cfg: &LayerConfig,
    rows: usize,
    bits: usize,
) -> Result<Vec<i64>> {
    let mut out = vec![0i64; rows];
    for pe in 0..cfg.pe {
        let file = dir.join(format!("{l}-{pe}-thres.bin"));
        for (nf, v) in words(&file, cfg.tmem)?.into_iter().enumerate() {
            let neuron = nf * cfg.pe + pe;
            if neuron < rows {
                out[neuron] = truncate_signed(v, bits);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_load_like_an_ap_int() {
        assert_eq!(truncate_signed(5, 16), 5);
        assert_eq!(truncate_signed((-3i64) as u64, 16), -3);
        assert_eq!(truncate_signed(0x1_0005, 16), 5);
        assert_eq!(truncate_signed(0xFFFF, 16), -1);
    }

    #[test]
    fn the_mnist_input_threshold_is_128() {
        assert_eq!(input_threshold(), 128);
    }

    fn imported(rule: OutputRule, offsets: Vec<i64>) -> Imported {
        Imported {
            network: bql_model::testing::random_network(4, &[3], false, 1, 1, false),
            rule,
            score_offsets: offsets,
        }
    }

    #[test]
    fn the_lfc_rule_is_the_highest_class_bit() {
        let thresholds = vec![5, 5, 5, 5];
        let m = imported(OutputRule::HighestClassBit { thresholds }, vec![0; 4]);
        assert_eq!(m.source_class(&[0, 0, 0, 0]), 0, "no bit: class 0");
        assert_eq!(m.source_class(&[0, 0, 9, 0]), 2);
        // Bits 0, 2 and 3: v = 13, log2 = 3.7, truncated to 3.
        assert_eq!(m.source_class(&[9, 0, 9, 9]), 3);
        assert_eq!(m.source_class(&[0, 5, 0, 0]), 0, "5 < 5 does not fire");
        let shifted = imported(
            OutputRule::HighestClassBit {
                thresholds: vec![5; 4],
            },
            vec![0, 1, 0, 0],
        );
        assert_eq!(
            shifted.source_class(&[0, 5, 0, 0]),
            1,
            "padding agreements count"
        );
    }

    #[test]
    fn the_cnv_rule_is_the_first_largest_score() {
        let m = imported(OutputRule::FirstLargest, vec![0; 4]);
        assert_eq!(m.source_class(&[3, 7, 7, 1]), 1, "ties: the first");
        assert_eq!(m.source_class(&[0, 0, 0, 0]), 0);
        let shifted = imported(OutputRule::FirstLargest, vec![0, 0, 1, 0]);
        assert_eq!(shifted.source_class(&[3, 7, 7, 1]), 2);
    }

    /// The host's `ap_fixed<8, 1, AP_RND, AP_SAT>` of `-1 + 2p/255`, in closed form: `p - 128`,
    /// plus 1 from 128 on, saturated at 127; the same in f32 (tiny_cnn's float) as in f64.
    #[test]
    fn the_cnv_pixel_table_is_the_hosts_quantization() {
        let table = fixed_input_table(8).unwrap();
        for p in 0..=255i32 {
            let closed = (p - 128 + i32::from(p >= 128)).min(127);
            assert_eq!(i32::from(table.0[p as usize]), closed, "pixel {p}");
            let x = -1.0f32 + 2.0f32 * p as f32 / 255.0;
            let q = (x * 128.0 + 0.5).floor().clamp(-128.0, 127.0) as i32;
            assert_eq!(q, closed, "pixel {p} in f32");
        }
        assert!(
            fixed_input_table(10).is_none(),
            "+-512 exceeds the table range"
        );
        assert!(fixed_input_table(0).is_none());
    }
}
