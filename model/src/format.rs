//! The model file format, version 1 (`.bqm`). Documented for people in `docs/model-format.md`.
//!
//! ```text
//! offset  size  content
//! 0       8     magic "BQLMODEL"
//! 8       4     format version, u32 little-endian (1)
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
use crate::layers::{Dense, DenseOutput, Layer};
use crate::network::{FloatLayer, InputEncoding, InputSpec, Network};
use crate::semantics::{AccumulatorKind, BatchNorm};

/// File magic.
pub const MAGIC: &[u8; 8] = b"BQLMODEL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
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
    /// "binary" or "u8".
    encoding: String,
    /// Pixel threshold for the binary encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<u8>,
}

#[derive(Serialize, Deserialize)]
struct ManifestLayer {
    kind: String,
    inputs: usize,
    outputs: usize,
    /// "popcount" or "signed_pixel_sum".
    accumulator: String,
    /// Byte range of the packed weights inside the payload.
    weights_offset: usize,
    weights_bytes: usize,
    /// Thresholds, one per neuron; absent on the scores layer.
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

/// Serializes a network to the bytes of a model file. The network must be valid.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>> {
    net.validate()?;
    let mut payload = Vec::new();
    let mut layers = Vec::new();
    for (i, layer) in net.layers.iter().enumerate() {
        let Layer::Dense(d) = layer;
        let offset = payload.len();
        for w in d.weights.words() {
            payload.extend_from_slice(&w.to_le_bytes());
        }
        let float = net.float.as_ref().map(|f| match &f[i] {
            FloatLayer::BatchNorm(bn) => ManifestFloat::Batchnorm {
                gamma: bn.iter().map(|b| b.gamma).collect(),
                beta: bn.iter().map(|b| b.beta).collect(),
                mean: bn.iter().map(|b| b.mean).collect(),
                var: bn.iter().map(|b| b.var).collect(),
                eps: bn.first().map_or(1e-5, |b| b.eps),
            },
            FloatLayer::Scale(s) => ManifestFloat::Scale { scale: *s },
        });
        if let Some(FloatLayer::BatchNorm(bn)) = net.float.as_ref().map(|f| &f[i]) {
            if bn.iter().any(|b| b.eps != bn[0].eps) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("layer {i}: the file format stores one BatchNorm eps per layer"),
                ));
            }
        }
        layers.push(ManifestLayer {
            kind: "dense".into(),
            inputs: d.inputs(),
            outputs: d.outputs(),
            accumulator: acc_name(d.accumulator).into(),
            weights_offset: offset,
            weights_bytes: payload.len() - offset,
            thresholds: match &d.output {
                DenseOutput::Threshold(t) => Some(t.clone()),
                DenseOutput::Scores => None,
            },
            float,
        });
    }
    let (encoding, threshold) = match net.input.encoding {
        InputEncoding::Binary { threshold } => ("binary", Some(threshold)),
        InputEncoding::U8 => ("u8", None),
    };
    let manifest = Manifest {
        format: "bql-model".into(),
        name: net.name.clone(),
        input: ManifestInput {
            height: net.input.height,
            width: net.input.width,
            channels: net.input.channels,
            encoding: encoding.into(),
            threshold,
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

/// Parses the bytes of a model file, checking everything.
pub fn from_bytes(bytes: &[u8]) -> Result<Network> {
    let bad = |m: String| Error::new(ErrorKind::BadFormat, m);
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad(
            "not a bql model file (it does not start with \"BQLMODEL\")".into(),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::new(
            ErrorKind::UnknownVersion,
            format!(
                "model file format version {version} is not supported; this bql reads version \
                 {VERSION} (a newer bql may read it, or retrain/export with this one)"
            ),
        ));
    }
    let mlen = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    if mlen > MAX_MANIFEST {
        return Err(bad(format!(
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
        .map_err(|e| bad(format!("the manifest is not UTF-8 text ({e})")))?;
    let m: Manifest = serde_json::from_str(text)
        .map_err(|e| bad(format!("the manifest is not a valid bql manifest: {e}")))?;
    if m.format != "bql-model" {
        return Err(bad(format!(
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
    let encoding = match (m.input.encoding.as_str(), m.input.threshold) {
        ("binary", Some(threshold)) => InputEncoding::Binary { threshold },
        ("binary", None) => return Err(bad("binary input encoding without a threshold".into())),
        ("u8", _) => InputEncoding::U8,
        (other, _) => {
            return Err(bad(format!(
                "unknown input encoding '{other}' (expected binary or u8)"
            )))
        }
    };
    let input = InputSpec {
        height: m.input.height,
        width: m.input.width,
        channels: m.input.channels,
        encoding,
    };
    let mut expected_offset = 0usize;
    let mut layers = Vec::with_capacity(m.layers.len());
    let mut float = Vec::with_capacity(m.layers.len());
    for (i, l) in m.layers.iter().enumerate() {
        let shape = |msg: String| Error::new(ErrorKind::ShapeMismatch, format!("layer {i}: {msg}"));
        if l.kind != "dense" {
            return Err(bad(format!("layer {i}: unknown layer kind '{}'", l.kind)));
        }
        let accumulator = match l.accumulator.as_str() {
            "popcount" => AccumulatorKind::Popcount,
            "signed_pixel_sum" => AccumulatorKind::SignedPixelSum,
            other => return Err(bad(format!("layer {i}: unknown accumulator '{other}'"))),
        };
        let words = l
            .outputs
            .checked_mul(words_for(l.inputs))
            .ok_or_else(|| shape(format!("{} x {} weights overflow", l.outputs, l.inputs)))?;
        if words > payload.len() / 8 {
            return Err(Error::new(
                ErrorKind::Truncated,
                format!(
                    "layer {i}: {} x {} weights need {} bytes, more than the whole payload ({})",
                    l.outputs,
                    l.inputs,
                    words.saturating_mul(8),
                    payload.len()
                ),
            ));
        }
        if l.weights_bytes != words * 8 || l.weights_offset != expected_offset {
            return Err(shape(format!(
                "weights declared at offset {} with {} bytes, but {} x {} packed weights need \
                 {} bytes at offset {expected_offset}",
                l.weights_offset,
                l.weights_bytes,
                l.outputs,
                l.inputs,
                words * 8
            )));
        }
        let end = expected_offset + l.weights_bytes;
        let chunk = payload.get(expected_offset..end).ok_or_else(|| {
            Error::new(
                ErrorKind::Truncated,
                format!("layer {i}: weight data truncated (needs bytes up to {end})"),
            )
        })?;
        let data: Vec<u64> = chunk
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let weights = BitMatrix::from_words(l.outputs, l.inputs, data)
            .ok_or_else(|| shape("a padding bit past the last input is set".into()))?;
        expected_offset = end;
        let output = match &l.thresholds {
            Some(t) => DenseOutput::Threshold(t.clone()),
            None => DenseOutput::Scores,
        };
        layers.push(Layer::Dense(Dense {
            weights,
            accumulator,
            output,
        }));
        float.push(l.float.as_ref().map(|f| match f {
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
                    return Err(shape("BatchNorm arrays differ in length".into()));
                }
                Ok(FloatLayer::BatchNorm(
                    (0..gamma.len())
                        .map(|j| BatchNorm {
                            gamma: gamma[j],
                            beta: beta[j],
                            mean: mean[j],
                            var: var[j],
                            eps: *eps,
                        })
                        .collect(),
                ))
            }
            ManifestFloat::Scale { scale } => Ok(FloatLayer::Scale(*scale)),
        }));
    }
    if expected_offset != m.payload.bytes {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "the layers use {expected_offset} payload bytes but the manifest declares {}",
                m.payload.bytes
            ),
        ));
    }
    if crc32fast::hash(payload) != m.payload.crc32 {
        return Err(Error::new(
            ErrorKind::Checksum,
            "weight data does not match its CRC-32; the file is corrupt".to_string(),
        ));
    }
    let float = match float.iter().filter(|f| f.is_some()).count() {
        0 => None,
        n if n == float.len() => Some(
            float
                .into_iter()
                .map(|f| f.expect("all some"))
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
