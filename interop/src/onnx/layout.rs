//! Where the values of an ONNX graph sit: flat vectors or maps in `NCHW` or `NHWC` layout, the
//! nodes that move them (`Reshape`, `Flatten`, `Transpose`, `Pad`, `MaxPool`), and the weights
//! of `Conv` and `MatMul` in bql's column order.
//!
//! bql's images and maps are `(y, x, c)`, its flatten keeps that order, and a convolution's
//! columns are `(ky, kx, c)` (docs/semantics.md 9, 11). ONNX convolutions work on `NCHW`: the
//! importer follows the layout through the graph, reads `[O, C, k, k]` weights into bql's
//! columns, and when a graph flattens an `NCHW` map (order `(c, y, x)`, as Brevitas models do)
//! it permutes the next `MatMul`'s rows into bql's order.

use bql_model::bits::BitMatrix;
use bql_model::layers::{Conv2d, MapShape, Padding};
use bql_model::semantics::AccumulatorKind;
use onnx_protobuf::NodeProto;

use super::{attr_i, attr_ints, bad, power_of_two, Constant, Graph};
use crate::error::Result;

/// The layout of the current tensor (batch dimension first, not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// A vector in bql's order.
    Vector(usize),
    /// A vector flattened from an `NCHW` map: element `(c * H + y) * W + x`.
    VectorChw(MapShape),
    /// A map `[N, H, W, C]`: bql's order.
    Nhwc(MapShape),
    /// A map `[N, C, H, W]`.
    Nchw(MapShape),
}

impl Layout {
    /// Values per image.
    pub(super) fn len(self) -> usize {
        match self {
            Layout::Vector(n) => n,
            Layout::VectorChw(m) | Layout::Nhwc(m) | Layout::Nchw(m) => m.len(),
        }
    }

    /// The map, for map layouts.
    pub(super) fn map(self) -> Option<MapShape> {
        match self {
            Layout::Nhwc(m) | Layout::Nchw(m) => Some(m),
            _ => None,
        }
    }
}

/// A node that moves values without computing on them.
#[derive(Debug, Clone)]
pub(super) enum Structural {
    /// `Reshape` to these dimensions (`-1` and `0` as ONNX means them), batch first.
    Reshape(Vec<i64>),
    /// `Flatten` from this axis.
    Flatten(i64),
    /// `Transpose` with this permutation.
    Transpose(Vec<i64>),
    /// `Pad` (constant mode): `[begin..., end...]` per axis, and the value.
    Pad(Vec<i64>, f32),
    /// `MaxPool` with window and stride `k`.
    MaxPool(usize),
}

impl Structural {
    /// The node as a structural step, or an error naming it.
    pub(super) fn of(g: &Graph<'_>, node: &NodeProto) -> Result<Structural> {
        Ok(match node.op_type.as_str() {
            "Reshape" => Structural::Reshape(
                g.constant(node, 1)?
                    .values
                    .iter()
                    .map(|&v| v as i64)
                    .collect(),
            ),
            "Flatten" => Structural::Flatten(attr_i(node, "axis").unwrap_or(1)),
            "Transpose" => Structural::Transpose(attr_ints(node, "perm").unwrap_or_default()),
            "Pad" => {
                let mode = super::attr_s(node, "mode").unwrap_or_else(|| "constant".into());
                let value = match node.input.get(2).filter(|n| !n.is_empty()) {
                    Some(_) => g.constant(node, 2)?.values.first().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                if mode != "constant" {
                    return Err(bad(node, format!("pad mode {mode}; only constant padding")));
                }
                let pads = g
                    .constant(node, 1)?
                    .values
                    .iter()
                    .map(|&v| v as i64)
                    .collect();
                Structural::Pad(pads, value)
            }
            "MaxPool" => {
                let k = attr_ints(node, "kernel_shape").unwrap_or_default();
                let s = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
                let pads = attr_ints(node, "pads").unwrap_or_default();
                let plain = attr_i(node, "ceil_mode").unwrap_or(0) == 0
                    && pads.iter().all(|&p| p == 0)
                    && attr_ints(node, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1));
                match (&k[..], &s[..]) {
                    ([a, b], [c, d]) if a == b && a == c && c == d && *a >= 2 && plain => {
                        Structural::MaxPool(*a as usize)
                    }
                    _ => {
                        return Err(bad(
                            node,
                            format!(
                                "kernel {k:?}, strides {s:?}, pads {pads:?}: bql pools square \
                                 windows with the window as stride, unpadded, floor mode"
                            ),
                        ))
                    }
                }
            }
            other => unreachable!("{other} is not structural"),
        })
    }
}

/// A `Reshape` of `layout` (to `[N, H, W, C]` from the input vector, or flat); the message
/// says why not.
pub(super) fn reshape(
    layout: Layout,
    dims: &[i64],
    node: &str,
) -> std::result::Result<Layout, String> {
    let rest: Vec<i64> = dims.iter().skip(1).copied().collect();
    let n = layout.len() as i64;
    match (&rest[..], layout) {
        ([m], _) if *m == n || *m == -1 => Ok(flatten(layout)),
        ([h, w, c], Layout::Vector(len)) if h * w * c == len as i64 => Ok(Layout::Nhwc(MapShape {
            height: *h as usize,
            width: *w as usize,
            channels: *c as usize,
        })),
        _ => Err(format!(
            "{node}: reshape of {layout:?} to {dims:?}: bql reads images as (y, x, c) and \
             reshapes them to [N, H, W, C] or flattens maps"
        )),
    }
}

/// A map flattened (a vector stays as it is).
pub(super) fn flatten(layout: Layout) -> Layout {
    match layout {
        Layout::Nhwc(m) => Layout::Vector(m.len()),
        Layout::Nchw(m) => Layout::VectorChw(m),
        other => other,
    }
}

/// A `Transpose` between the two map layouts.
pub(super) fn transpose(layout: Layout, perm: &[i64]) -> Option<Layout> {
    match (layout, perm) {
        (Layout::Nhwc(m), [0, 3, 1, 2]) => Some(Layout::Nchw(m)),
        (Layout::Nchw(m), [0, 2, 3, 1]) => Some(Layout::Nhwc(m)),
        _ => None,
    }
}

/// bql's column for row `r` of a `MatMul` after `layout`.
pub(super) fn matmul_column(layout: Layout, r: usize) -> usize {
    match layout {
        Layout::VectorChw(m) => {
            let plane = m.height * m.width;
            let (c, yx) = (r / plane, r % plane);
            yx * m.channels + c
        }
        _ => r,
    }
}

/// A `Conv` on the `NCHW` map `input` (after an optional `Pad`), as a bql convolution with zero
/// thresholds, and the magnitude of each output channel's weights when it is not 1.
pub(super) fn conv(
    g: &Graph<'_>,
    node: &NodeProto,
    input: MapShape,
    pad: Option<(Vec<i64>, f32)>,
    accumulator: AccumulatorKind,
) -> Result<(Conv2d, Option<Constant>)> {
    let w = g.constant(node, 1)?;
    let [o, ch, k, k2] = w.dims[..] else {
        return Err(bad(
            node,
            format!("weights of shape {:?}, not [O, C, k, k]", w.dims),
        ));
    };
    let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let unit = |a: &str| attr_ints(node, a).is_none_or(|d| d.iter().all(|&v| v == 1));
    let plain =
        unit("dilations") && attr_i(node, "group").unwrap_or(1) == 1 && node.input.len() == 2;
    let auto = super::attr_s(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    let stride = match strides[..] {
        [a, b] if a == b && a >= 1 && a as usize <= k => a as usize,
        _ => 0,
    };
    if k != k2 || ch != input.channels || stride == 0 || !plain || auto != "NOTSET" || k > 7 {
        return Err(bad(
            node,
            format!(
                "a {k}x{k2} convolution of {ch} channels, strides {strides:?} on a {input} map: \
                 bql takes square kernels up to 7 with equal strides up to the kernel, no \
                 dilation, groups, bias or auto_pad"
            ),
        ));
    }
    let own_pads = attr_ints(node, "pads").unwrap_or_default();
    let padding = padding_of(node, input, k, stride, pad, &own_pads, accumulator)?;
    let mut weights = BitMatrix::zeros(o, k * k * ch);
    let mut magnitudes = vec![0f32; o];
    for (i, &v) in w.values.iter().enumerate() {
        let (oc, ic, p) = (i / (ch * k * k), (i / (k * k)) % ch, i % (k * k));
        if magnitudes[oc] == 0.0 {
            magnitudes[oc] = v.abs();
        }
        if v.abs() != magnitudes[oc] || !power_of_two(v.abs()) {
            return Err(bad(
                node,
                format!("weight [{oc}, {ic}, {p}] is {v}: not binary with a power-of-two scale"),
            ));
        }
        weights.set(oc, p * ch + ic, v > 0.0);
    }
    let conv = Conv2d {
        input,
        kernel: k,
        stride,
        padding,
        weights,
        accumulator,
        thresholds: vec![0; o],
    };
    let scale = magnitudes.iter().any(|&s| s != 1.0).then(|| Constant {
        dims: vec![o],
        values: magnitudes,
    });
    Ok((conv, scale))
}

/// bql's padding for a convolution whose input was padded by a `Pad` node (`pad`) or by the
/// `Conv`'s own `pads` (zeros): it must be exactly the `same` padding, with the semantics'
/// padded operand (+-1 for binary layers, 0 for pixels).
fn padding_of(
    node: &NodeProto,
    input: MapShape,
    k: usize,
    stride: usize,
    pad: Option<(Vec<i64>, f32)>,
    own: &[i64],
    accumulator: AccumulatorKind,
) -> Result<Padding> {
    let own_zero = own.iter().all(|&p| p == 0);
    let (pads, value) = match (pad, own_zero) {
        (None, true) => return Ok(Padding::Valid),
        (Some((p, v)), true) if p.len() == 8 && p[..2] == [0, 0] && p[4..6] == [0, 0] => {
            ([p[2], p[3], p[6], p[7]], v)
        }
        (None, false) if own.len() == 4 => ([own[0], own[1], own[2], own[3]], 0.0),
        _ => {
            return Err(bad(
                node,
                "padded both by a Pad node and its own pads, or not in H and W",
            ))
        }
    };
    let pixel = accumulator == AccumulatorKind::SignedPixelSum;
    let pad_bit = match (pixel, value) {
        (true, 0.0) | (false, -1.0) => false,
        (false, 1.0) => true,
        _ => {
            return Err(bad(
                node,
                format!("pads with {value}: bql pads binary operands with +-1 and pixels with 0"),
            ))
        }
    };
    let same = Conv2d {
        input,
        kernel: k,
        stride,
        padding: Padding::Same { pad_bit },
        weights: BitMatrix::zeros(1, k * k * input.channels),
        accumulator,
        thresholds: vec![0],
    };
    let (top, left) = same.pad_before();
    let out = same.output();
    let span = |o: usize| (o - 1) * stride + k;
    let bottom = span(out.height).saturating_sub(input.height + top);
    let right = span(out.width).saturating_sub(input.width + left);
    let want = [top, left, bottom, right].map(|v| v as i64);
    if pads != want || k % 2 == 0 {
        return Err(bad(
            node,
            format!("pads {pads:?} (top, left, bottom, right) are not bql's same padding {want:?}"),
        ));
    }
    Ok(Padding::Same { pad_bit })
}
