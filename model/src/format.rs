//! The model file format, version 2 (`.bqm`; version 1 files, which hold dense layers only, still
//! load). Documented for people in `docs/model-format.md`.
//!
//! ```text
//! offset  size  content
//! 0       8     magic "BQLMODEL"
//! 8       4     format version, u32 little-endian (2; 1 is read too)
//! 12      4     manifest length M, u32 little-endian
//! 16      M     manifest: UTF-8 JSON (shapes, thresholds, float parameters, payload size + CRC-32)
//! 16+M    P     payload: each layer's weight rows, packed as in `bits`, u64 little-endian words
//! ```
//! Loading checks everything before building the IR, so a bad file gives an [`Error`] that says
//! what is wrong, never a panic and never a half-built network.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bits::{words_for, BitMatrix};
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{Conv2d, Dense, DenseOutput, Flatten, Layer, MapShape, MaxPool2d, Padding};
use crate::network::{FloatLayer, InputEncoding, InputSpec, Network, PixelTable};
use crate::semantics::{AccumulatorKind, BatchNorm};

/// File magic.
pub const MAGIC: &[u8; 8] = b"BQLMODEL";
/// The format version this build writes.
pub const VERSION: u32 = 2;
/// The oldest format version this build reads (version 1: dense layers only).
pub const OLDEST_VERSION: u32 = 1;
/// Largest manifest accepted (guards against allocating for a garbage length).
const MAX_MANIFEST: usize = 256 << 20;

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    name: String,
    input: ManifestInput,
    layers: Vec<ManifestLayer>,
    payload: ManifestPayload,
    #[serde(default)]
    provenance: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct ManifestInput {
    height: usize,
    width: usize,
    channels: usize,
    /// "binary", "u8" or "table".
    encoding: String,
    /// Pixel threshold for the binary encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<u8>,
    /// The 256 operands of the table encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<Vec<i16>>,
}

#[derive(Serialize, Deserialize, Default)]
struct ManifestLayer {
    /// "dense", "conv2d", "maxpool2d" or "flatten".
    kind: String,
    /// Dense: input width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inputs: Option<usize>,
    /// Dense: neurons; conv2d: output channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outputs: Option<usize>,
    /// Conv2d, maxpool2d, flatten: input map `[height, width, channels]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_shape: Option<[usize; 3]>,
    /// Conv2d and maxpool2d: window size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<usize>,
    /// Conv2d: stride.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stride: Option<usize>,
    /// Conv2d: "valid" or "same".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    padding: Option<String>,
    /// Conv2d with same padding: the padded operand's bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pad_bit: Option<u8>,
    /// "popcount" or "signed_pixel_sum" (layers with weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accumulator: Option<String>,
    /// Byte range of the packed weights inside the payload (layers with weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights_offset: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights_bytes: Option<usize>,
    /// Thresholds, one per neuron or output channel; absent on the scores layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thresholds: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    float: Option<ManifestFloat>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ManifestFloat {
    Batchnorm {
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    },
    Scale {
        scale: f32,
    },
    None,
}

#[derive(Serialize, Deserialize)]
struct ManifestPayload {
    bytes: usize,
    crc32: u32,
}

fn acc_name(k: AccumulatorKind) -> &'static str {
    match k {
        AccumulatorKind::Popcount => "popcount",
        AccumulatorKind::SignedPixelSum => "signed_pixel_sum",
    }
}

fn parse_acc(name: Option<&str>, i: usize) -> Result<AccumulatorKind> {
    match name {
        Some("popcount") => Ok(AccumulatorKind::Popcount),
        Some("signed_pixel_sum") => Ok(AccumulatorKind::SignedPixelSum),
        Some(other) => Err(bad_format(format!(
            "layer {i}: unknown accumulator '{other}'"
        ))),
        None => Err(bad_format(format!("layer {i}: no accumulator"))),
    }
}

fn bad_format(m: String) -> Error {
    Error::new(ErrorKind::BadFormat, m)
}

fn shape_of(m: MapShape) -> [usize; 3] {
    [m.height, m.width, m.channels]
}

fn float_entry(f: &FloatLayer, i: usize) -> Result<ManifestFloat> {
    Ok(match f {
        FloatLayer::BatchNorm(bn) => {
            if bn.iter().any(|b| b.eps != bn[0].eps) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("layer {i}: the file format stores one BatchNorm eps per layer"),
                ));
            }
            ManifestFloat::Batchnorm {
                gamma: bn.iter().map(|b| b.gamma).collect(),
                beta: bn.iter().map(|b| b.beta).collect(),
                mean: bn.iter().map(|b| b.mean).collect(),
                var: bn.iter().map(|b| b.var).collect(),
                eps: bn.first().map_or(1e-5, |b| b.eps),
            }
        }
        FloatLayer::Scale(s) => ManifestFloat::Scale { scale: *s },
        FloatLayer::None => ManifestFloat::None,
    })
}

/// The manifest entry of one layer; its weights (if any) are appended to `payload`.
fn layer_entry(layer: &Layer, payload: &mut Vec<u8>) -> ManifestLayer {
    let mut entry = ManifestLayer {
        kind: layer.kind_name().into(),
        thresholds: layer.thresholds().map(<[i64]>::to_vec),
        accumulator: layer.accumulator().map(|a| acc_name(a).to_string()),
        ..Default::default()
    };
    let weights = match layer {
        Layer::Dense(d) => {
            entry.inputs = Some(d.inputs());
            entry.outputs = Some(d.outputs());
            Some(&d.weights)
        }
        Layer::Conv2d(c) => {
            entry.input_shape = Some(shape_of(c.input));
            entry.outputs = Some(c.out_channels());
            entry.kernel = Some(c.kernel);
            entry.stride = Some(c.stride);
            let (padding, pad_bit) = match c.padding {
                Padding::Valid => ("valid", None),
                Padding::Same { pad_bit } => ("same", Some(pad_bit as u8)),
            };
            entry.padding = Some(padding.into());
            entry.pad_bit = pad_bit;
            Some(&c.weights)
        }
        Layer::MaxPool2d(p) => {
            entry.input_shape = Some(shape_of(p.input));
            entry.kernel = Some(p.kernel);
            None
        }
        Layer::Flatten(f) => {
            entry.input_shape = Some(shape_of(f.input));
            None
        }
    };
    if let Some(w) = weights {
        let offset = payload.len();
        for word in w.words() {
            payload.extend_from_slice(&word.to_le_bytes());
        }
        entry.weights_offset = Some(offset);
        entry.weights_bytes = Some(payload.len() - offset);
    }
    entry
}

/// Serializes a network to the bytes of a model file. The network must be valid.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    net.validate()?;
    let mut payload = Vec::new();
    let mut layers = Vec::new();
    for (i, layer) in net.layers.iter().enumerate() {
        let mut entry = layer_entry(layer, &mut payload);
        entry.float = net
            .float
            .as_ref()
            .map(|f| float_entry(&f[i], i))
            .transpose()?;
        layers.push(entry);
    }
    let (threshold, table) = match net.input.encoding {
        InputEncoding::Binary { threshold } => (Some(threshold), None),
        InputEncoding::U8 => (None, None),
        InputEncoding::Table(t) => (None, Some(t.0.to_vec())),
    };
    let encoding = net.input.encoding.name();
    let manifest = Manifest {
        format: "bql-model".into(),
        name: net.name.clone(),
        input: ManifestInput {
            height: net.input.height,
            width: net.input.width,
            channels: net.input.channels,
            encoding: encoding.into(),
            threshold,
            table,
        },
        layers,
        payload: ManifestPayload {
            bytes: payload.len(),
            crc32: crc32fast::hash(&payload),
        },
        provenance: net.provenance.clone(),
    };
    let json = serde_json::to_vec(&manifest)
        .map_err(|e| Error::new(ErrorKind::BadFormat, format!("cannot encode manifest: {e}")))?;
    let mut out = Vec::with_capacity(16 + json.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Splits a file into its version, parsed manifest and payload, checking the framing.
fn split_file(bytes: &[u8]) -> Result<(u32, Manifest, &[u8])> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad_format(
            "not a bql model file (it does not start with \"BQLMODEL\")".into(),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::UnknownVersion,
            format!(
                "model file format version {version} is not supported; this bql reads versions \
                 {OLDEST_VERSION} to {VERSION} (a newer bql may read it, or retrain/export with \
                 this one)"
            ),
        ));
    }
    let mlen = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    if mlen > MAX_MANIFEST {
        return Err(bad_format(format!(
            "manifest length {mlen} is implausible; the file is corrupt"
        )));
    }
    if bytes.len() < 16 + mlen {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "the file ends inside its manifest ({} of {mlen} manifest bytes present)",
                bytes.len() - 16
            ),
        ));
    }
    let text = std::str::from_utf8(&bytes[16..16 + mlen])
        .map_err(|e| bad_format(format!("the manifest is not UTF-8 text ({e})")))?;
    let m: Manifest = serde_json::from_str(text)
        .map_err(|e| bad_format(format!("the manifest is not a valid bql manifest: {e}")))?;
    if m.format != "bql-model" {
        return Err(bad_format(format!(
            "manifest format is '{}', expected 'bql-model'",
            m.format
        )));
    }
    let payload = &bytes[16 + mlen..];
    if payload.len() < m.payload.bytes {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "weight data truncated: the manifest declares {} payload bytes, the file has {}",
                m.payload.bytes,
                payload.len()
            ),
        ));
    }
    if payload.len() > m.payload.bytes {
        return Err(Error::new(
            ErrorKind::Oversized,
            format!(
                "the file holds {} payload bytes but the manifest declares {}; trailing data",
                payload.len(),
                m.payload.bytes
            ),
        ));
    }
    Ok((version, m, payload))
}

fn parse_input(m: &ManifestInput) -> Result<InputSpec> {
    let encoding = match (m.encoding.as_str(), m.threshold) {
        ("binary", Some(threshold)) => InputEncoding::Binary { threshold },
        ("binary", None) => {
            return Err(bad_format(
                "binary input encoding without a threshold".into(),
            ))
        }
        ("u8", _) => InputEncoding::U8,
        ("table", _) => {
            let values = m.table.as_deref().unwrap_or_default();
            let table: [i16; 256] = values.try_into().map_err(|_| {
                bad_format(format!(
                    "the table input encoding needs 256 entries, the file has {}",
                    values.len()
                ))
            })?;
            InputEncoding::Table(PixelTable(table))
        }
        (other, _) => {
            return Err(bad_format(format!(
                "unknown input encoding '{other}' (expected binary, u8 or table)"
            )))
        }
    };
    Ok(InputSpec {
        height: m.height,
        width: m.width,
        channels: m.channels,
        encoding,
    })
}

/// Reads the layers' weights from the payload in order, each right after the previous one.
struct PayloadReader<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl PayloadReader<'_> {
    /// The `rows x cols` weight matrix that entry `l` (layer `i`) declares.
    fn weights(
        &mut self,
        i: usize,
        l: &ManifestLayer,
        rows: usize,
        cols: usize,
    ) -> Result<BitMatrix> {
        let shape = |msg: String| Error::new(ErrorKind::ShapeMismatch, format!("layer {i}: {msg}"));
        let words = rows
            .checked_mul(words_for(cols))
            .ok_or_else(|| shape(format!("{rows} x {cols} weights overflow")))?;
        if words > self.payload.len() / 8 {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!(
                    "layer {i}: {rows} x {cols} weights need {} bytes, more than the whole \
                     payload ({})",
                    words.saturating_mul(8),
                    self.payload.len()
                ),
            ));
        }
        if l.weights_bytes != Some(words * 8) || l.weights_offset != Some(self.offset) {
            return Err(shape(format!(
                "weights declared at offset {:?} with {:?} bytes, but {rows} x {cols} packed \
                 weights need {} bytes at offset {}",
                l.weights_offset,
                l.weights_bytes,
                words * 8,
                self.offset
            )));
        }
        let end = self.offset + words * 8;
        let chunk = self.payload.get(self.offset..end).ok_or_else(|| {
            Error::new(
                ErrorKind::Truncated,
                format!("layer {i}: weight data truncated (needs bytes up to {end})"),
            )
        })?;
        let data: Vec<u64> = chunk
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        self.offset = end;
        BitMatrix::from_words(rows, cols, data)
            .ok_or_else(|| shape("a padding bit past the last input is set".into()))
    }
}

fn need<T: Copy>(v: Option<T>, i: usize, field: &str) -> Result<T> {
    v.ok_or_else(|| bad_format(format!("layer {i}: missing '{field}'")))
}

fn map_shape(l: &ManifestLayer, i: usize) -> Result<MapShape> {
    let [height, width, channels] = need(l.input_shape, i, "input_shape")?;
    Ok(MapShape {
        height,
        width,
        channels,
    })
}

/// Builds layer `i` from its manifest entry (format `version`).
fn parse_layer(
    i: usize,
    l: &ManifestLayer,
    version: u32,
    reader: &mut PayloadReader,
) -> Result<Layer> {
    if version < 2 && l.kind != "dense" {
        return Err(bad_format(format!(
            "layer {i}: kind '{}' in a version-1 file (version 1 holds dense layers only)",
            l.kind
        )));
    }
    Ok(match l.kind.as_str() {
        "dense" => {
            let accumulator = parse_acc(l.accumulator.as_deref(), i)?;
            let (inputs, outputs) = (need(l.inputs, i, "inputs")?, need(l.outputs, i, "outputs")?);
            let weights = reader.weights(i, l, outputs, inputs)?;
            let output = match &l.thresholds {
                Some(t) => DenseOutput::Threshold(t.clone()),
                None => DenseOutput::Scores,
            };
            Layer::Dense(Dense {
                weights,
                accumulator,
                output,
            })
        }
        "conv2d" => parse_conv(i, l, reader)?,
        "maxpool2d" => Layer::MaxPool2d(MaxPool2d {
            input: map_shape(l, i)?,
            kernel: need(l.kernel, i, "kernel")?,
        }),
        "flatten" => Layer::Flatten(Flatten {
            input: map_shape(l, i)?,
        }),
        other => {
            return Err(bad_format(format!(
                "layer {i}: unknown layer kind '{other}'"
            )))
        }
    })
}

fn parse_conv(i: usize, l: &ManifestLayer, reader: &mut PayloadReader) -> Result<Layer> {
    let input = map_shape(l, i)?;
    let kernel = need(l.kernel, i, "kernel")?;
    if !(1..=7).contains(&kernel) {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!("layer {i}: kernel {kernel} is outside 1..=7"),
        ));
    }
    let padding = match (l.padding.as_deref(), l.pad_bit) {
        (Some("valid"), None) => Padding::Valid,
        (Some("same"), Some(b @ (0 | 1))) => Padding::Same { pad_bit: b == 1 },
        (p, b) => {
            return Err(bad_format(format!(
                "layer {i}: padding {p:?} with pad_bit {b:?}; expected \"valid\", or \"same\" \
                 with pad_bit 0 or 1"
            )))
        }
    };
    let window = kernel
        .checked_mul(kernel)
        .and_then(|k2| k2.checked_mul(input.channels))
        .filter(|&w| w <= 1 << 24)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ShapeMismatch,
                format!(
                    "layer {i}: a {kernel}x{kernel} window over {} channels is implausible",
                    input.channels
                ),
            )
        })?;
    let weights = reader.weights(i, l, need(l.outputs, i, "outputs")?, window)?;
    let thresholds = l.thresholds.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "layer {i}: a conv2d layer needs thresholds (only a dense last layer emits scores)"
            ),
        )
    })?;
    Ok(Layer::Conv2d(Conv2d {
        input,
        kernel,
        stride: need(l.stride, i, "stride")?,
        padding,
        weights,
        accumulator: parse_acc(l.accumulator.as_deref(), i)?,
        thresholds,
    }))
}

fn parse_float(f: &ManifestFloat, i: usize) -> Result<FloatLayer> {
    Ok(match f {
        ManifestFloat::Batchnorm {
            gamma,
            beta,
            mean,
            var,
            eps,
        } => {
            if [beta.len(), mean.len(), var.len()]
                .iter()
                .any(|&n| n != gamma.len())
            {
                return Err(Error::new(
                    ErrorKind::ShapeMismatch,
                    format!("layer {i}: BatchNorm arrays differ in length"),
                ));
            }
            FloatLayer::BatchNorm(
                (0..gamma.len())
                    .map(|j| BatchNorm {
                        gamma: gamma[j],
                        beta: beta[j],
                        mean: mean[j],
                        var: var[j],
                        eps: *eps,
                    })
                    .collect(),
            )
        }
        ManifestFloat::Scale { scale } => FloatLayer::Scale(*scale),
        ManifestFloat::None => FloatLayer::None,
    })
}

/// Parses the bytes of a model file, checking everything.
pub fn from_bytes(bytes: &[u8]) -> Result<Network> {
    let (version, m, payload) = split_file(bytes)?;
    let input = parse_input(&m.input)?;
    let mut reader = PayloadReader { payload, offset: 0 };
    let layers = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| parse_layer(i, l, version, &mut reader))
        .collect::<Result<Vec<_>>>()?;
    if reader.offset != m.payload.bytes {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "the layers use {} payload bytes but the manifest declares {}",
                reader.offset, m.payload.bytes
            ),
        ));
    }
    if crc32fast::hash(payload) != m.payload.crc32 {
        return Err(Error::new(
            ErrorKind::Checksum,
            "weight data does not match its CRC-32; the file is corrupt".to_string(),
        ));
    }
    let floats: Vec<_> = m.layers.iter().map(|l| l.float.as_ref()).collect();
    let float = match floats.iter().filter(|f| f.is_some()).count() {
        0 => None,
        n if n == floats.len() => Some(
            floats
                .iter()
                .enumerate()
                .map(|(i, f)| parse_float(f.expect("all present"), i))
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => {
            return Err(Error::new(
                ErrorKind::ShapeMismatch,
                "float parameters are present for some layers but not all".to_string(),
            ))
        }
    };
    let net = Network {
        name: m.name,
        input,
        layers,
        float,
        provenance: m.provenance,
    };
    net.validate()?;
    Ok(net)
}

/// Writes a model file.
pub fn save(net: &Network, path: &Path) -> Result<()> {
    let bytes = to_bytes(net)?;
    std::fs::write(path, bytes)
        .map_err(|e| Error::io(format!("cannot write model file {}", path.display()), e))
}

/// Reads and checks a model file.
pub fn load(path: &Path) -> Result<Network> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read model file {}", path.display()), e))?;
    from_bytes(&bytes).map_err(|e| Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Provenance kept verbatim in a model file (a JSON object).
pub type Provenance = serde_json::Value;

/// Builds a provenance object from key/value pairs.
pub fn provenance(pairs: &[(&str, String)]) -> Provenance {
    serde_json::Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}
