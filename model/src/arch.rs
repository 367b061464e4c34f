//! Architecture strings, as `bql train --arch` takes them and [`crate::Network::arch_string`]
//! writes them.
//!
//! Tokens are joined by `-`:
//! - `784` (a plain number first): the input width of an MLP; later plain numbers are dense layers.
//! - `28x28x1`: an input map shape (optional; training takes it from the dataset).
//! - `c32k3`: a binary convolution, 32 output channels, 3x3 kernel, stride 1, valid padding;
//!   suffixes `s2` (stride 2), `same` (same padding, padded operands -1) or `same1` (+1), in
//!   that order, e.g. `c64k3s2same`.
//! - `p2`: 2x2 max-pooling with stride 2.
//! - `f256`: a dense layer of 256 neurons. A flatten is implied before the first dense layer
//!   that follows a map.

use crate::error::{Error, ErrorKind, Result};
use crate::layers::{MapShape, Padding};

/// One layer of an architecture string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSpec {
    /// Binary convolution.
    Conv {
        /// Output channels.
        channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: Padding,
    },
    /// Max-pooling `k x k`, stride `k`.
    Pool {
        /// Window size.
        kernel: usize,
    },
    /// Dense layer.
    Dense {
        /// Neurons.
        outputs: usize,
    },
}

/// A parsed architecture string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchSpec {
    /// The input width of an MLP string (`784-256-10`), if given.
    pub input_len: Option<usize>,
    /// The input map shape (`28x28x1-...`), if given.
    pub input_shape: Option<MapShape>,
    /// Layers, first to last.
    pub layers: Vec<LayerSpec>,
}

impl ArchSpec {
    /// True when every layer is dense.
    pub fn is_mlp(&self) -> bool {
        self.layers
            .iter()
            .all(|l| matches!(l, LayerSpec::Dense { .. }))
    }

    /// Output classes (the last dense layer's width), if the last layer is dense.
    pub fn classes(&self) -> Option<usize> {
        match self.layers.last() {
            Some(LayerSpec::Dense { outputs }) => Some(*outputs),
            _ => None,
        }
    }
}

impl std::fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => {
                write!(f, "c{channels}k{kernel}")?;
                if stride > 1 {
                    write!(f, "s{stride}")?;
                }
                match padding {
                    Padding::Valid => Ok(()),
                    Padding::Same { pad_bit: false } => f.write_str("same"),
                    Padding::Same { pad_bit: true } => f.write_str("same1"),
                }
            }
            LayerSpec::Pool { kernel } => write!(f, "p{kernel}"),
            LayerSpec::Dense { outputs } => write!(f, "f{outputs}"),
        }
    }
}

/// The canonical string: `784-256-10` for an MLP given by widths, tokens otherwise.
impl std::fmt::Display for ArchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(n) = self.input_len {
            parts.push(n.to_string());
        }
        if let Some(s) = self.input_shape {
            parts.push(s.to_string());
        }
        let widths = self.input_len.is_some() && self.is_mlp();
        for l in &self.layers {
            parts.push(match l {
                LayerSpec::Dense { outputs } if widths => outputs.to_string(),
                other => other.to_string(),
            });
        }
        f.write_str(&parts.join("-"))
    }
}

fn invalid(m: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, m)
}

/// Parses an architecture string (see the module documentation for the syntax).
pub fn parse(arch: &str) -> Result<ArchSpec> {
    let mut spec = ArchSpec {
        input_len: None,
        input_shape: None,
        layers: Vec::new(),
    };
    for (i, token) in arch.split('-').map(str::trim).enumerate() {
        let bad = || {
            invalid(format!(
                "'{token}' in architecture '{arch}' is not a layer; expected c<channels>k<kernel>\
                 [s<stride>][same|same1], p<k>, f<neurons> or a width (see `bql train --help`)"
            ))
        };
        if i == 0 {
            if let Ok(n) = token.parse::<usize>() {
                spec.input_len = Some(n);
                continue;
            }
            if let Some(shape) = parse_shape(token) {
                spec.input_shape = Some(shape);
                continue;
            }
        }
        spec.layers.push(parse_token(token).ok_or_else(bad)?);
    }
    check(&spec, arch)?;
    Ok(spec)
}

fn check(spec: &ArchSpec, arch: &str) -> Result<()> {
    if spec.layers.is_empty() {
        return Err(invalid(format!(
            "architecture '{arch}' has no layers; for example 784-256-10 or c32k3-p2-f10"
        )));
    }
    if spec.classes().is_none() {
        return Err(invalid(format!(
            "architecture '{arch}' must end in a dense layer (the scores), like f10"
        )));
    }
    let zero = spec.input_len == Some(0)
        || spec.layers.iter().any(|l| match *l {
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                ..
            } => channels == 0 || kernel == 0 || stride == 0,
            LayerSpec::Pool { kernel } => kernel == 0,
            LayerSpec::Dense { outputs } => outputs == 0,
        });
    if zero {
        return Err(invalid(format!("architecture '{arch}' has a zero size")));
    }
    Ok(())
}

fn parse_shape(token: &str) -> Option<MapShape> {
    let dims: Vec<usize> = token
        .split('x')
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    match dims[..] {
        [height, width, channels] => Some(MapShape {
            height,
            width,
            channels,
        }),
        _ => None,
    }
}

/// Splits a leading decimal number off `s`.
fn number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn parse_token(token: &str) -> Option<LayerSpec> {
    if let Ok(outputs) = token.parse::<usize>() {
        return Some(LayerSpec::Dense { outputs });
    }
    if let Some(rest) = token.strip_prefix('f') {
        let (outputs, rest) = number(rest)?;
        return rest.is_empty().then_some(LayerSpec::Dense { outputs });
    }
    if let Some(rest) = token.strip_prefix('p') {
        let (kernel, rest) = number(rest)?;
        return rest.is_empty().then_some(LayerSpec::Pool { kernel });
    }
    let rest = token.strip_prefix('c')?;
    let (channels, rest) = number(rest)?;
    let (kernel, mut rest) = number(rest.strip_prefix('k')?)?;
    let mut stride = 1;
    if let Some(r) = rest
        .strip_prefix('s')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        (stride, rest) = number(r)?;
    }
    let padding = match rest {
        "" => Padding::Valid,
        "same" => Padding::Same { pad_bit: false },
        "same1" => Padding::Same { pad_bit: true },
        _ => return None,
    };
    Some(LayerSpec::Conv {
        channels,
        kernel,
        stride,
        padding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_and_cnn_strings() {
        let mlp = parse("784-256-10").unwrap();
        assert_eq!(mlp.input_len, Some(784));
        assert_eq!(mlp.layers.len(), 2);
        assert!(mlp.is_mlp());
        let cnn = parse("28x28x1-c32k3-c64k5s2same1-p2-f256-f10").unwrap();
        assert_eq!(
            cnn.input_shape,
            Some(MapShape {
                height: 28,
                width: 28,
                channels: 1
            })
        );
        assert_eq!(
            cnn.layers[1],
            LayerSpec::Conv {
                channels: 64,
                kernel: 5,
                stride: 2,
                padding: Padding::Same { pad_bit: true }
            }
        );
        assert_eq!(cnn.layers[2], LayerSpec::Pool { kernel: 2 });
        assert_eq!(cnn.classes(), Some(10));
        for text in [
            "784-256-10",
            "28x28x1-c32k3-c64k5s2same1-p2-f256-f10",
            "c8k3same-p2-f10",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_strings_say_why() {
        for bad in [
            "",
            "784",
            "c32k3",
            "c32-f10",
            "c32k3x-f10",
            "f0",
            "784-0-10",
            "p2-c32",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("architecture"), "{bad}: {e}");
        }
    }
}
