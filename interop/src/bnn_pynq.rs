//! Xilinx BNN-PYNQ parameter folders (fully connected W1A1 networks such as LFC).
//!
//! A folder holds, per layer `l` and processing element `pe`, `l-pe-weights.bin` (WMEM
//! little-endian u64 words) and `l-pe-thres.bin` (TMEM little-endian i64 values); the network's
//! `config.h` gives each layer's folding (`Ll_SIMD`, `Ll_PE`, `Ll_WMEM`, `Ll_TMEM`, `Ll_MW`,
//! `Ll_MH`, `Ll_WPI`, `Ll_API`) and `top.cpp` the input size (`inBits`) and the threshold type
//! (`ThresholdsActivation<..., ap_int<16>, ...>`).
//!
//! The arithmetic is finn-hlslib's (at the commit BNN-PYNQ pins, 8b7f5f5; `interpret.hpp`,
//! `activations.hpp`, `weights.hpp`, `mvau.hpp`), confirmed in the sources:
//! - weight word `nf * SF + sf` of PE `pe` holds output neuron `nf * PE + pe`; its bit `b` is
//!   input column `sf * SIMD + b` (bits above SIMD are dropped: `ap_uint<SIMD>`), 1 = +1;
//! - the accumulator counts agreements (`XnorMul`: `w == a ? 1 : 0`), as bql's popcount does;
//! - threshold `nf` of PE `pe` is loaded into the accumulator type (`ap_int<16>`: the i64 is
//!   truncated to its low 16 bits) and the neuron fires when `threshold < acc`;
//! - the input is padded to MW columns with 0 bits (-1), `FOLDEDMV_INPUT_PADCHAR`.
//!
//! bql fires when `acc >= T` over the valid columns only, so the importer stores
//! `T = t + 1 - p` for a neuron whose padding columns agree with the padding `p` times
//! (clamped to the legal range, which changes no output since `0 <= acc <= n`).
//!
//! The last layer is a threshold layer too in BNN-PYNQ: its host reads the class bits `v` and
//! answers `(unsigned int) log2(v)`, the highest set bit (0 when no bit is set;
//! `foldedmv-offload.cpp`, `testPrebinarized_nolabel_multiple_images`, which `inference_multiple`
//! and the published 98.4 % use; the single-image path rounds the logarithm instead). bql's last layer emits scores and takes their argmax (ties to
//! the lowest index), so the imported model keeps the accumulators as scores and
//! [`Imported::source_class`] applies BNN-PYNQ's own rule to them with the stored thresholds.

use std::path::{Path, PathBuf};

use bql_model::bits::BitMatrix;
use bql_model::layers::{Dense, DenseOutput, Layer};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network};

use crate::error::{Error, Result};

/// One fully connected layer of a `config.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    /// Lanes per PE (`SIMD`).
    pub simd: usize,
    /// Processing elements (`PE`).
    pub pe: usize,
    /// Weight words per PE (`WMEM`).
    pub wmem: usize,
    /// Thresholds per PE (`TMEM`).
    pub tmem: usize,
    /// Matrix width: input columns, padded (`MW`).
    pub mw: usize,
    /// Matrix height: output rows, padded (`MH`).
    pub mh: usize,
    /// Weight bits (`WPI`).
    pub wpi: usize,
    /// Activation bits (`API`).
    pub api: usize,
}

/// Parses the `#define Ll_FIELD value` lines of a BNN-PYNQ `config.h` into layers 0, 1, ...
/// A layer with convolution fields (`Ll_K`) is refused.
pub fn parse_config(text: &str, name: &str) -> Result<Vec<LayerConfig>> {
    let mut fields = std::collections::BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((layer, field)) = key
            .strip_prefix('L')
            .and_then(|k| k.split_once('_'))
            .and_then(|(l, f)| Some((l.parse::<usize>().ok()?, f)))
        else {
            continue;
        };
        let value: usize = value
            .parse()
            .map_err(|_| Error::malformed(format!("{name}: {key} is {value:?}, not a number")))?;
        fields.insert((layer, field.to_string()), value);
    }
    let mut layers = Vec::new();
    for l in 0.. {
        let get = |f: &str| fields.get(&(l, f.to_string())).copied();
        if get("SIMD").is_none() {
            break;
        }
        if get("K").is_some() {
            return Err(Error::unsupported(format!(
                "{name}: layer {l} is a convolution (L{l}_K); only fully connected BNN-PYNQ \
                 networks (LFC) are imported so far"
            )));
        }
        let need = |f: &str| get(f).ok_or_else(|| Error::malformed(format!("{name}: no L{l}_{f}")));
        layers.push(LayerConfig {
            simd: need("SIMD")?,
            pe: need("PE")?,
            wmem: need("WMEM")?,
            tmem: need("TMEM")?,
            mw: need("MW")?,
            mh: need("MH")?,
            wpi: need("WPI")?,
            api: need("API")?,
        });
    }
    if layers.is_empty() {
        return Err(Error::malformed(format!(
            "{name}: no layer (L0_SIMD) defined"
        )));
    }
    Ok(layers)
}

/// What `top.cpp` says: the input bits and each layer's threshold type width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopFacts {
    /// Input bits per image before padding (`inBits`).
    pub input_bits: usize,
    /// Width of each layer's `ap_int<W>` threshold and accumulator type.
    pub threshold_bits: Vec<usize>,
}

/// Reads `inBits` (a product such as `28 * 28`) and the `ThresholdsActivation` types.
pub fn parse_top(text: &str, name: &str) -> Result<TopFacts> {
    let input_bits = text
        .lines()
        .find_map(|l| {
            let rest = l.split("inBits =").nth(1)?;
            let expr = rest.split(';').next()?;
            expr.split('*')
                .map(|f| f.trim().parse::<usize>().ok())
                .product::<Option<usize>>()
        })
        .ok_or_else(|| Error::malformed(format!("{name}: no `inBits = ...;` line")))?;
    let mut threshold_bits = Vec::new();
    for l in 0.. {
        let tag = format!("ThresholdsActivation<L{l}_TMEM,L{l}_PE,L{l}_API,ap_int<");
        let Some(rest) = text.split(&tag).nth(1) else {
            break;
        };
        let bits = rest
            .split('>')
            .next()
            .and_then(|b| b.trim().parse::<usize>().ok())
            .ok_or_else(|| {
                Error::malformed(format!("{name}: unreadable threshold type of L{l}"))
            })?;
        threshold_bits.push(bits);
    }
    Ok(TopFacts {
        input_bits,
        threshold_bits,
    })
}

/// An imported network and what BNN-PYNQ's own output rule needs.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network under bql's semantics.
    pub network: Network,
    /// The last layer's thresholds as BNN-PYNQ's hardware holds them (`ap_int`), per class.
    pub class_thresholds: Vec<i64>,
}

impl Imported {
    /// The class BNN-PYNQ's host reports for the last layer's accumulators `scores`: the class
    /// bits `v` (bit `c` set when `threshold_c < score_c`), then `(unsigned) log2(v)`, the
    /// highest set bit, 0 when none.
    pub fn source_class(&self, scores: &[i64]) -> usize {
        let v: u64 = scores
            .iter()
            .zip(&self.class_thresholds)
            .enumerate()
            .filter(|(_, (s, t))| *t < *s)
            .map(|(c, _)| 1u64 << c)
            .sum();
        if v == 0 {
            0
        } else {
            (v as f64).log2() as usize
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

/// Imports a fully connected W1A1 network; `input` is (height, width, channels) of its images,
/// `classes` the number of valid outputs of the last layer.
pub fn import(src: &Sources, input: (usize, usize, usize), classes: usize) -> Result<Imported> {
    let config_name = src.config.display().to_string();
    let layers = parse_config(&read_text(&src.config)?, &config_name)?;
    let top = parse_top(&read_text(&src.top)?, &src.top.display().to_string())?;
    let (h, w, c) = input;
    if top.input_bits != h * w * c {
        return Err(Error::malformed(format!(
            "{}: inBits is {}, but the images have {h} x {w} x {c} = {} values",
            src.top.display(),
            top.input_bits,
            h * w * c
        )));
    }
    let mut net_layers = Vec::new();
    let mut valid_in = top.input_bits;
    let mut class_thresholds = Vec::new();
    for (l, cfg) in layers.iter().enumerate() {
        check_layer(l, cfg, &layers, valid_in, classes, &config_name)?;
        let last = l + 1 == layers.len();
        let rows = if last { classes } else { cfg.mh };
        let bits = *top.threshold_bits.get(l).ok_or_else(|| {
            Error::malformed(format!("{}: no threshold type for L{l}", src.top.display()))
        })?;
        let (weights, padding_agreements) = layer_weights(&src.params, l, cfg, rows, valid_in)?;
        let thresholds = layer_thresholds(&src.params, l, cfg, rows, bits)?;
        let output = if last {
            class_thresholds = thresholds;
            DenseOutput::Scores
        } else {
            let n = valid_in as i64;
            DenseOutput::Threshold(
                thresholds
                    .iter()
                    .zip(&padding_agreements)
                    .map(|(t, p)| (t + 1 - p).clamp(0, n + 1))
                    .collect(),
            )
        };
        net_layers.push(Layer::Dense(Dense {
            weights,
            accumulator: AccumulatorKind::Popcount,
            output,
        }));
        valid_in = rows;
    }
    let net_name = src
        .params
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let network = crate::checked_network(
        format!("bnn-pynq-{net_name}"),
        (h, w, c),
        InputEncoding::Binary {
            threshold: input_threshold(),
        },
        net_layers,
        serde_json::json!({
            "imported_from": "BNN-PYNQ",
            "params": src.params.display().to_string(),
            "config": src.config.display().to_string(),
            "semantics": "finn-hlslib: acc = agreements, fires when threshold < acc; stored as \
                          T = threshold + 1 - (agreements of the padding columns)",
            "class_thresholds": class_thresholds,
            "output_rule": "BNN-PYNQ answers (unsigned) log2(class bits), the highest set bit; bql \
                            answers the argmax of the last layer's accumulators",
        }),
        &src.params.display().to_string(),
    )?;
    Ok(Imported {
        network,
        class_thresholds,
    })
}

/// The folding must tile the matrix exactly, and each layer take the previous one's outputs.
fn check_layer(
    l: usize,
    cfg: &LayerConfig,
    layers: &[LayerConfig],
    valid_in: usize,
    classes: usize,
    name: &str,
) -> Result<()> {
    if cfg.wpi != 1 || cfg.api != 1 {
        return Err(Error::unsupported(format!(
            "{name}: L{l} has {}-bit weights and {}-bit activations; bql imports W1A1 only",
            cfg.wpi, cfg.api
        )));
    }
    if cfg.simd == 0 || cfg.pe == 0 || cfg.simd > 64 {
        return Err(Error::unsupported(format!(
            "{name}: L{l} SIMD {} (1..=64 supported), PE {}",
            cfg.simd, cfg.pe
        )));
    }
    if cfg.mw.checked_mul(cfg.mh).is_none_or(|bits| bits > 1 << 32) {
        return Err(Error::unsupported(format!(
            "{name}: L{l} is {} x {}: more than 2^32 weights",
            cfg.mw, cfg.mh
        )));
    }
    let (sf, nf) = (cfg.mw / cfg.simd, cfg.mh / cfg.pe);
    if cfg.mw % cfg.simd != 0 || cfg.mh % cfg.pe != 0 || cfg.wmem != nf * sf || cfg.tmem != nf {
        return Err(Error::malformed(format!(
            "{name}: L{l} MW {} x MH {} does not fold into SIMD {} x PE {} with WMEM {} and \
             TMEM {}",
            cfg.mw, cfg.mh, cfg.simd, cfg.pe, cfg.wmem, cfg.tmem
        )));
    }
    if valid_in > cfg.mw || (l > 0 && cfg.mw != layers[l - 1].mh) {
        return Err(Error::malformed(format!(
            "{name}: L{l} takes {} columns but receives {valid_in} values",
            cfg.mw
        )));
    }
    let last = l + 1 == layers.len();
    if last && classes > cfg.mh {
        return Err(Error::malformed(format!(
            "{name}: the last layer has {} rows, fewer than {classes} classes",
            cfg.mh
        )));
    }
    Ok(())
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

    #[test]
    fn the_output_rule_is_the_highest_class_bit() {
        let imported = |t: Vec<i64>| Imported {
            network: bql_model::testing::random_network(4, &[3], false, 1, 1, false),
            class_thresholds: t,
        };
        let m = imported(vec![5, 5, 5, 5]);
        assert_eq!(m.source_class(&[0, 0, 0, 0]), 0, "no bit: class 0");
        assert_eq!(m.source_class(&[0, 0, 9, 0]), 2);
        // Bits 0, 2 and 3: v = 13, log2 = 3.7, truncated to 3.
        assert_eq!(m.source_class(&[9, 0, 9, 9]), 3);
        assert_eq!(m.source_class(&[0, 5, 0, 0]), 0, "5 < 5 does not fire");
    }
}
