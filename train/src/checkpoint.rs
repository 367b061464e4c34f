//! Float checkpoints (`bql train --precision float`): the float graph's parameters in a
//! safetensors file, with what rebuilds the graph (architecture, input encoding, image shape) in
//! the file's metadata.
//!
//! Tensors: `w<l>` (the weights of skeleton layer `l`, `(outputs, fan-in)` in bql's column
//! order), `bn<l>.weight`, `bn<l>.bias`, `bn<l>.running_mean`, `bn<l>.running_var`, `log_scale`.
//! Metadata: `format` = `bql-float-checkpoint`, `version` = `1`, `arch`, `input` (`binary:<T>`,
//! `u8`, or `table:<256 values>`), `shape` (`HxWxC`), `provenance` (JSON).

use std::collections::HashMap;
use std::path::Path;

use bql_model::arch::ArchSpec;
use bql_model::dataset::Dataset;
use bql_model::{InputEncoding, PixelTable};
use candle_core::{Device, Tensor};

use crate::graph::Model;
use crate::{Error, ErrorKind, Precision, Result, TrainConfig};

const FORMAT: &str = "bql-float-checkpoint";

/// A float model: its parameters and what its graph is.
#[derive(Clone)]
pub struct FloatCheckpoint {
    /// The architecture.
    pub arch: ArchSpec,
    /// The input encoding it was trained with.
    pub input: InputEncoding,
    /// Image height, width, channels.
    pub shape: (usize, usize, usize),
    /// Parameters by name.
    pub tensors: HashMap<String, Tensor>,
    /// How it was made (JSON).
    pub provenance: String,
}

impl std::fmt::Debug for FloatCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FloatCheckpoint({}, {} tensors)",
            self.arch,
            self.tensors.len()
        )
    }
}

fn bad(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Checkpoint, format!("{}: {m}", path.display()))
}

fn encoding_text(e: &InputEncoding) -> String {
    match e {
        InputEncoding::Binary { threshold } => format!("binary:{threshold}"),
        InputEncoding::U8 => "u8".into(),
        InputEncoding::Table(t) => format!(
            "table:{}",
            t.0.iter().map(i16::to_string).collect::<Vec<_>>().join(",")
        ),
    }
}

fn parse_encoding(s: &str) -> Option<InputEncoding> {
    if s == "u8" {
        return Some(InputEncoding::U8);
    }
    if let Some(t) = s.strip_prefix("binary:") {
        return Some(InputEncoding::Binary {
            threshold: t.parse().ok()?,
        });
    }
    let values: Vec<i16> = s
        .strip_prefix("table:")?
        .split(',')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    Some(InputEncoding::Table(PixelTable(values.try_into().ok()?)))
}

fn parse_shape(s: &str) -> Option<(usize, usize, usize)> {
    let v: Vec<usize> = s
        .split('x')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match v[..] {
        [h, w, c] if h * w * c > 0 => Some((h, w, c)),
        _ => None,
    }
}

impl FloatCheckpoint {
    /// The parameters of a trained float `model`.
    pub(crate) fn of(model: &Model, cfg: &TrainConfig, data: &Dataset) -> Result<Self> {
        let tensors = model
            .named_tensors()?
            .into_iter()
            .map(|(name, t)| Ok((name, t.copy()?)))
            .collect::<Result<_>>()?;
        Ok(FloatCheckpoint {
            arch: cfg.arch.clone(),
            input: cfg.input,
            shape: (data.height, data.width, data.channels),
            tensors,
            provenance: crate::provenance(cfg).to_string(),
        })
    }

    /// A training configuration that rebuilds this checkpoint's graph (float precision).
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            arch: self.arch.clone(),
            input: self.input,
            precision: Precision::Float,
            ..TrainConfig::default()
        }
    }

    /// Refuses to initialize `cfg` on `data` from this checkpoint unless the graphs match.
    pub(crate) fn check_matches(&self, cfg: &TrainConfig, data: &Dataset) -> Result<()> {
        let shape = (data.height, data.width, data.channels);
        if self.arch != cfg.arch || self.input != cfg.input || self.shape != shape {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the float checkpoint is {} with {} input on {}x{}x{} images; this run is \
                     {} with {} input on {}x{}x{}: give the same --arch and --input",
                    self.arch,
                    encoding_text(&self.input),
                    self.shape.0,
                    self.shape.1,
                    self.shape.2,
                    cfg.arch,
                    encoding_text(&cfg.input),
                    shape.0,
                    shape.1,
                    shape.2
                ),
            ));
        }
        Ok(())
    }

    /// Writes the checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        let (h, w, c) = self.shape;
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), "1".to_string()),
            ("arch".to_string(), self.arch.to_string()),
            ("input".to_string(), encoding_text(&self.input)),
            ("shape".to_string(), format!("{h}x{w}x{c}")),
            ("provenance".to_string(), self.provenance.clone()),
        ]);
        let mut named: Vec<(&String, &Tensor)> = self.tensors.iter().collect();
        named.sort_by_key(|(n, _)| *n);
        safetensors::serialize_to_file(named, Some(metadata), path).map_err(|e| bad(path, e))
    }

    /// Reads a checkpoint that [`FloatCheckpoint::save`] wrote.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(path, format!("not a safetensors file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).map(String::as_str);
        if get("format") != Some(FORMAT) {
            return Err(bad(path, "not a bql float checkpoint (no format metadata)"));
        }
        if get("version") != Some("1") {
            return Err(bad(
                path,
                format!("checkpoint version {:?}; this bql reads 1", get("version")),
            ));
        }
        let arch = bql_model::arch::parse(get("arch").unwrap_or_default())
            .map_err(|e| bad(path, format!("bad arch metadata: {e}")))?;
        let input = get("input")
            .and_then(parse_encoding)
            .ok_or_else(|| bad(path, "bad input metadata"))?;
        let shape = get("shape")
            .and_then(parse_shape)
            .ok_or_else(|| bad(path, "bad shape metadata"))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| bad(path, e))?;
        Ok(FloatCheckpoint {
            arch,
            input,
            shape,
            tensors,
            provenance: get("provenance").unwrap_or("{}").to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_through_their_text() {
        let table = PixelTable(std::array::from_fn(|p| p as i16 - 128));
        for e in [
            InputEncoding::Binary { threshold: 77 },
            InputEncoding::U8,
            InputEncoding::Table(table),
        ] {
            assert_eq!(parse_encoding(&encoding_text(&e)), Some(e));
        }
        assert_eq!(parse_encoding("binary:300"), None);
        assert_eq!(parse_encoding("table:1,2"), None);
        assert_eq!(parse_shape("28x28x1"), Some((28, 28, 1)));
        assert_eq!(parse_shape("28x0x1"), None);
    }
}
