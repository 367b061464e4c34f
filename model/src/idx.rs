//! Reader for the IDX files that MNIST and Fashion-MNIST ship in (plain or gzip-compressed).
//!
//! IDX: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
//! big-endian u32 per dimension, then the data in row-major order.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// An IDX tensor of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxU8 {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The data, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed). `what` names the source in error messages.
pub fn parse(bytes: &[u8], what: &str) -> Result<IdxU8> {
    let bad = |m: String| Error::new(ErrorKind::BadFormat, format!("{what}: {m}"));
    if bytes.len() < 4 {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "{what}: only {} bytes, too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "wrong magic {:02x} {:02x} {:02x} {:02x}: not an IDX file",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "IDX element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(bad("IDX file with zero dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!("{what}: the file ends inside its IDX header"),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| {
            u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() < count {
        return Err(Error::new(
            ErrorKind::Truncated,
            format!(
                "{what}: truncated: dimensions {dims:?} need {count} bytes of data, the file has {}",
                data.len()
            ),
        ));
    }
    if data.len() > count {
        return Err(Error::new(
            ErrorKind::Oversized,
            format!(
                "{what}: {} bytes after the declared {dims:?} data",
                data.len() - count
            ),
        ));
    }
    Ok(IdxU8 {
        dims,
        data: data.to_vec(),
    })
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic.
pub fn read(path: &Path) -> Result<IdxU8> {
    let what = path.display().to_string();
    parse(&read_bytes(path)?, &what)
}

/// The bytes of a file, gunzipped when it starts with the gzip magic.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let what = path.display().to_string();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Truncated,
                    format!("{what}: corrupt or truncated gzip data: {e}"),
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Encodes a u8 tensor as IDX bytes (used to cut the committed data slice).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
