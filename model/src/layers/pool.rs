//! Max-pooling of a binary feature map: `k x k` windows with stride `k`, per channel.
//!
//! On bits, the maximum of +-1 values is the OR of their bits (docs/semantics.md 10). Rows and
//! columns that do not fill a whole window (when `k` does not divide the size) are dropped.

use crate::error::{Error, ErrorKind, Result};

use super::MapShape;

/// `k x k` max-pooling with stride `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Shape of the input feature map.
    pub input: MapShape,
    /// Window size and stride.
    pub kernel: usize,
}

impl MaxPool2d {
    /// Shape of the output feature map: `floor(in / k)` rows and columns, same channels.
    pub fn output(&self) -> MapShape {
        MapShape {
            height: self.input.height / self.kernel.max(1),
            width: self.input.width / self.kernel.max(1),
            channels: self.input.channels,
        }
    }

    /// Checks the window against the input.
    pub fn check(&self) -> Result<()> {
        let (k, i) = (self.kernel, self.input);
        if k < 2 || k > i.height || k > i.width {
            return Err(Error::new(
                ErrorKind::ShapeMismatch,
                format!(
                    "a {k}x{k} pool needs k >= 2 and a map at least that large, not {}x{}",
                    i.height, i.width
                ),
            ));
        }
        if i.is_empty() {
            return Err(Error::new(ErrorKind::ShapeMismatch, "empty input map"));
        }
        Ok(())
    }
}

/// Flattening a feature map into a vector in `(y, x, c)` order: element `(y * W + x) * C + c`.
/// Feature maps are already stored in that order, so this layer moves no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten {
    /// Shape of the input feature map.
    pub input: MapShape,
}
