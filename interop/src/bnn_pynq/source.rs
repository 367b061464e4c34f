//! What a BNN-PYNQ network's `config.h` and `top.cpp` say: each layer's folding and shape, the
//! input's width and fixed-point type, each threshold type, where the max-pools are and how the
//! last layer answers.

use crate::error::{Error, Result};

/// The shape of a convolutional layer (`Ll_K`, `Ll_IFM_CH`, `Ll_IFM_DIM`, `Ll_OFM_CH`,
/// `Ll_OFM_DIM`): square maps, stride 1, no padding (finn-hlslib's `ConvLayer_Batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Kernel size.
    pub kernel: usize,
    /// Input channels.
    pub ifm_ch: usize,
    /// Input rows and columns.
    pub ifm_dim: usize,
    /// Output channels.
    pub ofm_ch: usize,
    /// Output rows and columns.
    pub ofm_dim: usize,
}

/// One layer of a `config.h`.
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
    /// Matrix width: input columns, padded (`MW`; `K * K * IFM_CH` for a convolution).
    pub mw: usize,
    /// Matrix height: output rows, padded (`MH`; `OFM_CH` for a convolution).
    pub mh: usize,
    /// Weight bits (`WPI`).
    pub wpi: usize,
    /// Activation bits (`API`).
    pub api: usize,
    /// The convolution's shape, for a convolutional layer.
    pub conv: Option<ConvShape>,
}

/// Parses the `#define Ll_FIELD value` lines of a BNN-PYNQ `config.h` into layers 0, 1, ...
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
        let need = |f: &str| get(f).ok_or_else(|| Error::malformed(format!("{name}: no L{l}_{f}")));
        let conv = match get("K") {
            Some(kernel) => Some(ConvShape {
                kernel,
                ifm_ch: need("IFM_CH")?,
                ifm_dim: need("IFM_DIM")?,
                ofm_ch: need("OFM_CH")?,
                ofm_dim: need("OFM_DIM")?,
            }),
            None => None,
        };
        let (mw, mh) = match conv {
            Some(c) => (
                c.kernel
                    .checked_mul(c.kernel)
                    .and_then(|k2| k2.checked_mul(c.ifm_ch))
                    .ok_or_else(|| Error::malformed(format!("{name}: L{l}'s window overflows")))?,
                c.ofm_ch,
            ),
            None => (need("MW")?, need("MH")?),
        };
        layers.push(LayerConfig {
            simd: need("SIMD")?,
            pe: need("PE")?,
            wmem: need("WMEM")?,
            tmem: need("TMEM")?,
            mw,
            mh,
            wpi: need("WPI")?,
            api: need("API")?,
            conv,
        });
    }
    if layers.is_empty() {
        return Err(Error::malformed(format!(
            "{name}: no layer (L0_SIMD) defined"
        )));
    }
    Ok(layers)
}

/// An HLS number type: `ap_int<bits>` or `ap_fixed<bits, int_bits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedType {
    /// Total bits.
    pub bits: usize,
    /// Integer bits (including the sign); `bits - int_bits` are fraction bits.
    pub int_bits: usize,
}

impl FixedType {
    /// Fraction bits.
    pub fn fraction(&self) -> usize {
        self.bits - self.int_bits
    }
}

/// What `top.cpp` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopFacts {
    /// Input bits per image (`inBits`, a product such as `32 * 32 * 3 * 8`).
    pub input_bits: usize,
    /// The first layer's input type when it reads fixed-point values
    /// (`Slice<ap_fixed<8, 1, ...>>`), `None` for bits.
    pub input_fixed: Option<FixedType>,
    /// Each thresholded layer's `ThresholdsActivation` type (also its accumulator's).
    pub threshold_types: Vec<FixedType>,
    /// Fraction bits of each layer's threshold file values (`DoMemInit` reinterprets them as
    /// `ap_fixed<64, 56>`: 8), 0 when they are loaded as integers.
    pub threshold_file_fraction: Vec<usize>,
    /// `(layer, k)`: a `k x k` max-pool after layer `layer` (`StreamingMaxPool_Batch`).
    pub pools: Vec<(usize, usize)>,
    /// The last layer passes its accumulators through (`PassThroughActivation`) instead of
    /// thresholding them.
    pub last_passes_through: bool,
}

/// `text` without `//` comments and without whitespace, so that patterns match however the
/// file is formatted.
fn squeezed(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// `ap_int<16>` or `ap_fixed<24,16...>` at the start of `s`.
fn number_type(s: &str) -> Option<FixedType> {
    let (bits, int_bits) = if let Some(rest) = s.strip_prefix("ap_int<") {
        let bits: usize = rest.split('>').next()?.parse().ok()?;
        (bits, bits)
    } else {
        let mut args = s.strip_prefix("ap_fixed<")?.split(['>', ',']);
        (args.next()?.parse().ok()?, args.next()?.parse().ok()?)
    };
    // Up to 64 bits (the threshold files' words); at least one integer (sign) bit.
    ((1..=64).contains(&bits) && (1..=bits).contains(&int_bits))
        .then_some(FixedType { bits, int_bits })
}

/// The template arguments of the call that instantiates layer `l` (from `<Ll_` to the `(` of
/// its arguments), and the rest of that statement.
fn layer_call(t: &str, l: usize) -> Option<(&str, &str)> {
    let start = [format!("_Batch<L{l}_K,"), format!("_Batch<L{l}_MW,")]
        .iter()
        .find_map(|p| t.find(p.as_str()))?;
    let call = &t[start..];
    let open = call.find('(')?;
    let end = call.find(';').unwrap_or(call.len());
    Some((&call[..open], &call[open..end]))
}

/// Reads `top.cpp` for a network of `layers` layers.
pub fn parse_top(text: &str, name: &str, layers: usize) -> Result<TopFacts> {
    let t = squeezed(text);
    let input_bits = t
        .split("inBits=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|expr| {
            expr.split('*')
                .map(|f| f.parse::<usize>().ok())
                .product::<Option<usize>>()
        })
        .ok_or_else(|| Error::malformed(format!("{name}: no `inBits = ...;` line")))?;
    let first = layer_call(&t, 0)
        .ok_or_else(|| Error::malformed(format!("{name}: no call instantiating layer L0")))?;
    let input_fixed = first
        .0
        .split("Slice<")
        .skip(1)
        .find_map(|s| s.starts_with("ap_fixed<").then(|| number_type(s)))
        .flatten();
    let mut threshold_types = Vec::new();
    let mut threshold_file_fraction = Vec::new();
    for l in 0..layers {
        let tag = format!("ThresholdsActivation<L{l}_TMEM,L{l}_PE,L{l}_API,");
        let Some(rest) = t.split(tag.as_str()).nth(1) else {
            break;
        };
        threshold_types.push(number_type(rest).ok_or_else(|| {
            Error::malformed(format!("{name}: unreadable threshold type of L{l}"))
        })?);
        let init = format!("threshs{l}.m_thresholds[targetMem][targetInd][targetThresh]=");
        let loaded = t
            .split(init.as_str())
            .nth(1)
            .and_then(|r| r.split(';').next())
            .unwrap_or("");
        let fraction = match loaded.split("reinterpret_cast<").nth(1) {
            Some(cast) => number_type(cast).map(|f| f.fraction()).ok_or_else(|| {
                Error::malformed(format!("{name}: unreadable threshold load of L{l}"))
            })?,
            None => 0,
        };
        threshold_file_fraction.push(fraction);
    }
    let pools = t
        .split("StreamingMaxPool_Batch<L")
        .skip(1)
        .map(|rest| {
            let mut args = rest.split(['>', ',']);
            let layer = args.next()?.strip_suffix("_OFM_DIM")?.parse().ok()?;
            let k = args.next()?.parse().ok()?;
            Some((layer, k))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::malformed(format!("{name}: unreadable StreamingMaxPool_Batch")))?;
    let last_passes_through = layers > 0
        && layer_call(&t, layers - 1)
            .is_some_and(|(_, args)| args.contains("PassThroughActivation"));
    Ok(TopFacts {
        input_bits,
        input_fixed,
        threshold_types,
        threshold_file_fraction,
        pools,
        last_passes_through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_types_read_as_hls_spells_them() {
        let t = |s: &str| number_type(s).map(|f| (f.bits, f.int_bits));
        assert_eq!(t("ap_int<16>,ap_uint<1>"), Some((16, 16)));
        assert_eq!(t("ap_fixed<24,16>,ap_uint<L0_API>"), Some((24, 16)));
        assert_eq!(t("ap_fixed<8,1,AP_TRN,AP_SAT>>"), Some((8, 1)));
        assert_eq!(t("ap_fixed<8,9>"), None);
        assert_eq!(t("ap_uint<16>"), None);
    }

    #[test]
    fn comments_and_spacing_do_not_matter() {
        let text = "const unsigned int inBits = 4 * 4; // inBits = 9;\n\
                    StreamingFCLayer_Batch< L0_MW , L0_MH >(a, b, PassThroughActivation<ap_uint<16>>());";
        let facts = parse_top(text, "t", 1).unwrap();
        assert_eq!(facts.input_bits, 16);
        assert!(facts.last_passes_through);
        assert!(facts.input_fixed.is_none());
    }
}
