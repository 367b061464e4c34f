//! Binarized MLPs in ONNX, read with the `onnx-protobuf` crate: FINN-ONNX (Brevitas exports
//! tidied by FINN, such as TFC-W1A1), QONNX (Brevitas' own export: `BipolarQuant` on weights
//! and activations, an 8-bit `Quant` on the input) and bql's own export (`onnx_export`, both
//! flavours), whose signs are `GreaterOrEqual` -> `Cast` -> `2 b - 1` and whose 8-bit first
//! layer multiplies the raw pixels.
//!
//! QONNX's quantizers follow qonnx's `binary_quant` and `int_quant`: a `BipolarQuant` of an
//! initializer is a constant (`scale * (w >= 0 ? 1 : -1)`, folded when the graph is read), one
//! on activations is a sign at 0 (its scale must make it exactly +-1); weights may carry a
//! power-of-two magnitude per output, which becomes a `Mul` step after the `MatMul`. An input
//! `Quant` (divide by the scale, add the zero point, clamp, round half to even or floor,
//! subtract the zero point) is evaluated in f32 for every pixel value: its integer levels
//! become a pixel table (or the plain 8-bit input when they are the pixels themselves), its
//! scale a step of the first layer; the scale must be a power of two so that the graph's float
//! sums are exact.
//!
//! The graph is a chain: input scaling (`Div`, `Mul`, `Sub`, `Add` by constants), `Reshape`,
//! a `MultiThreshold` that binarizes the pixels, then per layer a `MatMul` with +-1 weights,
//! elementwise constants (`Mul`, `Add`, `Sub`, `Div`), `BatchNormalization` (between
//! `Unsqueeze`/`Squeeze`) and a sign (FINN's custom `MultiThreshold`, `out_scale * #(x >= t) +
//! out_bias`, with one threshold, scale 2 and bias -1; or `GreaterOrEqual` followed by steps
//! that must map 0/1 to exactly -1/+1), and after the last `MatMul` only scalar constants and
//! an optional `TopK` (k = 1) or `ArgMax` (ties to the first index).
//!
//! Every function of an integer accumulator that the graph computes in floating point is
//! evaluated here, for **every** accumulator value, with the graph's own operations in f32 (as
//! FINN's execution does: numpy and onnxruntime in float32). A hidden neuron's firing set must
//! be a threshold (monotone in the accumulator) and becomes bql's `T` (neurons whose firing set
//! falls with the accumulator get negated weights, as in training's fold); the input's firing
//! set over the 256 pixel values becomes the input threshold; the scores after the last `MatMul`
//! must be a strictly increasing function of the dot product shared by all classes, so that
//! bql's argmax (ties to the lowest index) is the graph's `TopK`. Anything else is refused with
//! the node's name and op type.

use std::collections::HashMap;
use std::path::Path;

use bql_model::bits::BitMatrix;
use bql_model::layers::{Conv2d, Dense, DenseOutput, Flatten, Layer, MapShape, MaxPool2d};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network, PixelTable, PIXEL_TABLE_LIMIT};
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};
use protobuf::Message;

use crate::error::{Error, Result};

mod layout;
use layout::{Layout, Structural};

/// A constant tensor of the graph, as f32 values with its dimensions.
#[derive(Debug, Clone)]
struct Constant {
    dims: Vec<usize>,
    values: Vec<f32>,
}

/// An elementwise step on a float value (per neuron when the constant has one value per
/// neuron).
#[derive(Debug, Clone)]
enum Step {
    Mul(Constant),
    Div(Constant),
    Add(Constant),
    Sub(Constant),
    /// `(x - mean) / sqrt(var + eps) * scale + bias`, per neuron.
    BatchNorm {
        scale: Constant,
        bias: Constant,
        mean: Constant,
        var: Constant,
        eps: f32,
    },
}

/// The arithmetic the steps need, in f32 (the graph's) or f64 (the exact reference).
trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(v: f32) -> Self;
    fn of_int(v: i64) -> Self;
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    fn of(v: f32) -> Self {
        v
    }
    fn of_int(v: i64) -> Self {
        v as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    fn of(v: f32) -> Self {
        f64::from(v)
    }
    fn of_int(v: i64) -> Self {
        v as f64
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

impl Step {
    /// The step applied to value `x` of neuron `j`, in `R`'s arithmetic.
    fn apply<R: Real>(&self, x: R, j: usize) -> R {
        let at = |c: &Constant| R::of(c.values[if c.values.len() == 1 { 0 } else { j }]);
        match self {
            Step::Mul(c) => x * at(c),
            Step::Div(c) => x / at(c),
            Step::Add(c) => x + at(c),
            Step::Sub(c) => x - at(c),
            Step::BatchNorm {
                scale,
                bias,
                mean,
                var,
                eps,
            } => (x - at(mean)) / (at(var) + R::of(*eps)).sqrt() * at(scale) + at(bias),
        }
    }

    /// Values per neuron of its constants (1 when shared by all).
    fn width(&self) -> usize {
        match self {
            Step::Mul(c) | Step::Div(c) | Step::Add(c) | Step::Sub(c) => c.values.len(),
            Step::BatchNorm { scale, .. } => scale.values.len(),
        }
    }
}

/// A `MultiThreshold` (or `GreaterOrEqual`) reduced to a sign: fires when `x >= threshold[j]`,
/// giving `high` when it fires and `low` when not, before the steps that follow it.
#[derive(Debug, Clone)]
struct Sign {
    thresholds: Vec<f32>,
    low: f32,
    high: f32,
}

/// An imported ONNX network.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network under bql's semantics.
    pub network: Network,
    /// Hidden neurons whose threshold depends on the order of the float operations (f32 in the
    /// graph's order against exact f64): the import follows the graph's order; these are where
    /// another runtime's rounding could differ.
    pub rounding_sensitive: usize,
}

/// The graph, indexed.
struct Graph<'a> {
    name: String,
    constants: HashMap<String, Constant>,
    /// Nodes by the tensor they consume first.
    consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
}

fn bad(node: &NodeProto, what: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("node {} ({}): {what}", node.name, node.op_type))
}

fn tensor(t: &TensorProto) -> Result<Constant> {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            Error::malformed(format!(
                "initializer {}: dimensions {dims:?} overflow",
                t.name
            ))
        })?;
    let values: Vec<f32> = match t.data_type {
        // FLOAT
        1 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        1 => t.float_data.clone(),
        // INT64 (shapes, k of TopK)
        7 if !t.raw_data.is_empty() => t
            .raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        7 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => {
            return Err(Error::unsupported(format!(
                "initializer {}: data type {other} (float32 and int64 are read)",
                t.name
            )))
        }
    };
    if values.len() != count {
        return Err(Error::malformed(format!(
            "initializer {}: {} values for dimensions {dims:?}",
            t.name,
            values.len()
        )));
    }
    Ok(Constant { dims, values })
}

/// `scale * (w >= 0 ? 1 : -1)`, with one scale or one per element.
fn bipolar_constant(w: &Constant, scale: &Constant) -> Option<Constant> {
    let s = &scale.values;
    if s.len() != 1 && s.len() != w.values.len() {
        return None;
    }
    let values = w
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| s[if s.len() == 1 { 0 } else { i }] * if v >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    Some(Constant {
        dims: w.dims.clone(),
        values,
    })
}

impl<'a> Graph<'a> {
    fn new(model: &'a ModelProto, name: String) -> Result<Graph<'a>> {
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| Error::malformed(format!("{name}: the model has no graph")))?;
        let mut constants = HashMap::new();
        for t in &g.initializer {
            constants.insert(t.name.clone(), tensor(t)?);
        }
        // QONNX quantizes weights in the graph: `BipolarQuant(initializer, scale)` is a
        // constant, `scale * (w >= 0 ? 1 : -1)` (qonnx `binary_quant`).
        for n in &g.node {
            let input = |i: usize| n.input.get(i).and_then(|t| constants.get(t));
            if let ("BipolarQuant", Some(w), Some(scale)) = (n.op_type.as_str(), input(0), input(1))
            {
                let folded = bipolar_constant(w, scale)
                    .ok_or_else(|| bad(n, "its scale is not one value or one per element"))?;
                constants.insert(n.output.first().cloned().unwrap_or_default(), folded);
            }
        }
        // A node continues the chain of its first input that is not a constant (`Gather` takes
        // its table first).
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        for n in &g.node {
            if let Some(first) = n.input.iter().find(|i| !constants.contains_key(i.as_str())) {
                consumers.entry(first.as_str()).or_default().push(n);
            }
        }
        Ok(Graph {
            name,
            constants,
            consumers,
        })
    }

    /// The one node that consumes `tensor`, if any.
    fn next(&self, tensor: &str) -> Result<Option<&'a NodeProto>> {
        match self.consumers.get(tensor).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([n]) => Ok(Some(n)),
            Some(many) => Err(Error::unsupported(format!(
                "{}: tensor {tensor} feeds {} nodes; only chains are imported",
                self.name,
                many.len()
            ))),
        }
    }

    /// Input `i` of `node` as a constant.
    fn constant(&self, node: &NodeProto, i: usize) -> Result<&Constant> {
        node.input
            .get(i)
            .and_then(|n| self.constants.get(n))
            .ok_or_else(|| bad(node, format!("input {i} is not a constant initializer")))
    }
}

fn attr_f(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}
fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}
fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}
fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A `MultiThreshold` that is a sign: BIPOLAR output, one threshold per channel (or one for
/// all), scale 2, bias -1.
fn sign(g: &Graph<'_>, node: &NodeProto) -> Result<Sign> {
    let t = g.constant(node, 1)?;
    let steps = t.dims.last().copied().unwrap_or(1);
    let (scale, bias) = (attr_f(node, "out_scale"), attr_f(node, "out_bias"));
    let bipolar = attr_s(node, "out_dtype").as_deref() == Some("BIPOLAR");
    if steps != 1 || !bipolar || scale != Some(2.0) || bias != Some(-1.0) {
        return Err(bad(
            node,
            format!(
                "only BIPOLAR sign thresholds (one step, out_scale 2, out_bias -1) are imported; \
                 this one has {steps} steps, out_scale {scale:?}, out_bias {bias:?}"
            ),
        ));
    }
    Ok(Sign {
        thresholds: t.values.clone(),
        low: -1.0,
        high: 1.0,
    })
}

/// QONNX's `BipolarQuant(x, scale)`: `scale * (x >= 0 ? 1 : -1)`, a sign at 0.
fn bipolar_quant(g: &Graph<'_>, node: &NodeProto) -> Result<Sign> {
    let scale = g.constant(node, 1)?;
    let [s] = scale.values[..] else {
        return Err(bad(node, "only one scale for all values is imported"));
    };
    Ok(Sign {
        thresholds: vec![0.0],
        low: -s,
        high: s,
    })
}

/// QONNX's `Quant(x, scale, zeropt, bitwidth)` on the input (`int_quant`: divide by the scale,
/// add the zero point, clamp, round, subtract the zero point, multiply by the scale).
#[derive(Debug, Clone, Copy)]
struct InputQuant {
    scale: f32,
    zeropt: f32,
    min: f32,
    max: f32,
    /// `ROUND` (half to even, numpy's `round`) or `FLOOR`.
    half_even: bool,
}

impl InputQuant {
    fn of(g: &Graph<'_>, node: &NodeProto) -> Result<InputQuant> {
        let one = |i: usize| -> Result<f32> {
            match g.constant(node, i)?.values[..] {
                [v] => Ok(v),
                _ => Err(bad(node, format!("input {i} is not one value"))),
            }
        };
        let (scale, zeropt, bits) = (one(1)?, one(2)?, one(3)?);
        let signed = attr_i(node, "signed").unwrap_or(1) == 1;
        let narrow = attr_i(node, "narrow").unwrap_or(0) == 1;
        let rounding = attr_s(node, "rounding_mode").unwrap_or_else(|| "ROUND".into());
        if !(2.0..=16.0).contains(&bits)
            || bits.fract() != 0.0
            || !scale.is_finite()
            || scale <= 0.0
        {
            return Err(bad(
                node,
                format!("bit width {bits} with scale {scale} is not imported"),
            ));
        }
        let levels = 2f32.powi(bits as i32);
        let (min, max) = match (signed, narrow) {
            (true, false) => (-levels / 2.0, levels / 2.0 - 1.0),
            (true, true) => (-levels / 2.0 + 1.0, levels / 2.0 - 1.0),
            (false, false) => (0.0, levels - 1.0),
            (false, true) => (0.0, levels - 2.0),
        };
        let half_even = match rounding.as_str() {
            "ROUND" => true,
            "FLOOR" => false,
            other => return Err(bad(node, format!("rounding mode {other} is not imported"))),
        };
        Ok(InputQuant {
            scale,
            zeropt,
            min,
            max,
            half_even,
        })
    }

    /// The integer level of `x` (before the final `(q - zeropt) * scale`).
    fn level(&self, x: f32) -> f32 {
        let y = (x / self.scale + self.zeropt).clamp(self.min, self.max);
        let q = if self.half_even {
            y.round_ties_even()
        } else {
            y.floor()
        };
        q - self.zeropt
    }
}

/// `GreaterOrEqual(x, bound)` with a constant bound (bql's own export): 0 or 1, made +-1 by
/// the steps after it.
fn greater_or_equal(g: &Graph<'_>, node: &NodeProto) -> Result<Sign> {
    Ok(Sign {
        thresholds: g.constant(node, 1)?.values.clone(),
        low: 0.0,
        high: 1.0,
    })
}

/// An elementwise node with a constant second operand, as a step.
fn elementwise(g: &Graph<'_>, node: &NodeProto) -> Result<Step> {
    let c = g.constant(node, 1)?.clone();
    Ok(match node.op_type.as_str() {
        "Mul" => Step::Mul(c),
        "Div" => Step::Div(c),
        "Add" => Step::Add(c),
        "Sub" => Step::Sub(c),
        _ => unreachable!("called for elementwise ops"),
    })
}

fn batchnorm(g: &Graph<'_>, node: &NodeProto) -> Result<Step> {
    Ok(Step::BatchNorm {
        scale: g.constant(node, 1)?.clone(),
        bias: g.constant(node, 2)?.clone(),
        mean: g.constant(node, 3)?.clone(),
        var: g.constant(node, 4)?.clone(),
        eps: attr_f(node, "epsilon").unwrap_or(1e-5),
    })
}

/// What the walk found between two `MatMul`s (or from the input to the first).
struct Segment<'a> {
    steps: Vec<Step>,
    sign: Option<Sign>,
    /// A multi-bit `Quant` that ends the input's steps (before the first weights only).
    quant: Option<InputQuant>,
    /// A `Gather` of 256 operands indexed by the pixels (the input only): a pixel table.
    table: Option<PixelTable>,
    /// Nodes that move values (after the sign, or on the input), in order.
    structure: Vec<Structural>,
    /// The node that ended the segment: the next `MatMul` or `Conv`, a `TopK` or `ArgMax`, or
    /// none (the graph's output).
    end: Option<&'a NodeProto>,
}

/// A `Gather` of a 256-value constant by the pixels, as a pixel table.
fn gather_table(g: &Graph<'_>, node: &NodeProto) -> Result<PixelTable> {
    let data = g.constant(node, 0)?;
    let ok = data.values.len() == 256
        && attr_i(node, "axis").unwrap_or(0) == 0
        && data
            .values
            .iter()
            .all(|v| v.fract() == 0.0 && v.abs() <= f32::from(PIXEL_TABLE_LIMIT));
    if !ok {
        return Err(bad(node, format!("a table of {} operands: bql's pixel tables hold 256 integers within +-{PIXEL_TABLE_LIMIT}", data.values.len())));
    }
    Ok(PixelTable(std::array::from_fn(|p| data.values[p] as i16)))
}

/// Follows the chain from `tensor`, collecting elementwise steps up to a sign (whose output,
/// after steps that must map it to exactly -1 and +1, and nodes that move values, continues to
/// the next `MatMul` or `Conv`), a `TopK`/`ArgMax` or the graph's end. `input`: the segment
/// starts at the graph's input.
fn segment<'a>(g: &Graph<'a>, mut tensor: String, input: bool) -> Result<Segment<'a>> {
    let mut seg = Segment {
        steps: Vec::new(),
        sign: None,
        quant: None,
        table: None,
        structure: Vec::new(),
        end: None,
    };
    let mut after_sign = Vec::new();
    loop {
        let Some(node) = g.next(&tensor)? else {
            break;
        };
        let op = node.op_type.as_str();
        let moves = matches!(op, "Reshape" | "Flatten" | "Transpose" | "Pad" | "MaxPool");
        if (seg.quant.is_some() || seg.table.is_some())
            && !moves
            && !matches!(op, "MatMul" | "Conv")
        {
            return Err(bad(
                node,
                "follows the input's Quant or table; only weights may",
            ));
        }
        match op {
            "MatMul" | "Conv" | "TopK" | "ArgMax" => {
                check_bipolar(seg.sign.as_ref(), &after_sign, node)?;
                seg.end = Some(node);
                return Ok(seg);
            }
            "MaxPool" if seg.sign.is_none() => {
                return Err(bad(node, "pools values that are not signs; bql pools bits"));
            }
            _ if moves && (seg.sign.is_some() || input) => {
                seg.structure.push(Structural::of(g, node)?)
            }
            "Reshape" if seg.steps.is_empty() => seg.structure.push(Structural::of(g, node)?),
            // Before the sign, shape-only nodes leave a vector's values where they are.
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" => {}
            "Cast" if seg.sign.is_some() && attr_i(node, "to") == Some(1) => {}
            "Cast" if input && attr_i(node, "to") == Some(7) && seg.steps.is_empty() => {}
            "Gather" if input && seg.steps.is_empty() => seg.table = Some(gather_table(g, node)?),
            "Mul" | "Div" | "Add" | "Sub" if seg.sign.is_some() => {
                after_sign.push(elementwise(g, node)?)
            }
            _ if seg.sign.is_some() => {
                return Err(bad(node, "expected weights (MatMul, Conv) after a sign"));
            }
            "Mul" | "Div" | "Add" | "Sub" => seg.steps.push(elementwise(g, node)?),
            "BatchNormalization" => seg.steps.push(batchnorm(g, node)?),
            "MultiThreshold" => seg.sign = Some(sign(g, node)?),
            "GreaterOrEqual" => seg.sign = Some(greater_or_equal(g, node)?),
            "BipolarQuant" => seg.sign = Some(bipolar_quant(g, node)?),
            "Quant" => seg.quant = Some(InputQuant::of(g, node)?),
            _ => return Err(bad(node, "is not supported in a binarized network")),
        }
        tensor = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad(node, "has no output"))?;
    }
    if seg.sign.is_some() || seg.quant.is_some() || seg.table.is_some() {
        return Err(Error::unsupported(format!(
            "{}: the graph ends without a last MatMul",
            g.name
        )));
    }
    Ok(seg)
}

/// The steps after a sign must turn its two outputs into exactly -1 and +1, the binary values
/// the next `MatMul` multiplies.
fn check_bipolar(sign: Option<&Sign>, after: &[Step], next: &NodeProto) -> Result<()> {
    let Some(s) = sign else { return Ok(()) };
    let map = |v: f32| after.iter().fold(v, |x, st| st.apply(x, 0));
    if after.iter().any(|st| st.width() != 1) || map(s.low) != -1.0 || map(s.high) != 1.0 {
        return Err(bad(
            next,
            format!(
                "its input is not +-1: the sign's outputs {} and {} become {} and {}",
                s.low,
                s.high,
                map(s.low),
                map(s.high)
            ),
        ));
    }
    Ok(())
}

/// The input encoding: the pixel values (0..=255, as f32) through the input steps and the sign.
fn input_threshold(steps: &[Step], s: &Sign, name: &str) -> Result<u8> {
    if s.thresholds.len() != 1 || steps.iter().any(|st| st.width() != 1) {
        return Err(Error::unsupported(format!(
            "{name}: the input is scaled or thresholded per pixel; bql's binary input has one \
             threshold"
        )));
    }
    let fires = |p: u8| {
        let x = steps.iter().fold(f32::from(p), |x, st| st.apply(x, 0));
        x >= s.thresholds[0]
    };
    let first = (0..=255u8).find(|&p| fires(p));
    match first {
        Some(t) if (t..=255).all(fires) => Ok(t),
        _ => Err(Error::unsupported(format!(
            "{name}: the input binarization is not `pixel >= T` for any T in 0..=255"
        ))),
    }
}

/// The integer accumulator of a layer and what its `MatMul` computes from it.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    kind: AccumulatorKind,
    /// Inputs `n`.
    n: usize,
}

impl Accumulator {
    /// The accumulator's range `lo ..= hi`.
    fn range(self) -> (i64, i64) {
        match self.kind {
            AccumulatorKind::Popcount => (0, self.n as i64),
            AccumulatorKind::SignedPixelSum => (-255 * self.n as i64, 255 * self.n as i64),
        }
    }
    /// The `MatMul`'s exact result for accumulator `acc`: `2 acc - n` for +-1 inputs, `acc` for
    /// pixels.
    fn dot(self, acc: i64) -> i64 {
        match self.kind {
            AccumulatorKind::Popcount => 2 * acc - self.n as i64,
            AccumulatorKind::SignedPixelSum => acc,
        }
    }
    /// The accumulator of the same input after negating the weights.
    fn mirror(self, acc: i64) -> i64 {
        match self.kind {
            AccumulatorKind::Popcount => self.n as i64 - acc,
            AccumulatorKind::SignedPixelSum => -acc,
        }
    }
}

/// bql's threshold for a firing predicate over the accumulator range: `(false, T)` when the
/// set rises (`acc >= T`), `(true, T)` when it falls (the weights are then negated and the
/// mirrored accumulator compared with `T`), `None` otherwise.
fn threshold_of(a: Accumulator, fires: impl Fn(i64) -> bool) -> Option<(bool, i64)> {
    let (lo, hi) = a.range();
    let (mut rising, mut falling) = (true, true);
    let (mut first, mut last) = (None, None);
    let mut prev = fires(lo);
    if prev {
        first = Some(lo);
        last = Some(lo);
    }
    for acc in lo + 1..=hi {
        let f = fires(acc);
        rising &= !prev || f;
        falling &= prev || !f;
        if f {
            first.get_or_insert(acc);
            last = Some(acc);
        }
        prev = f;
    }
    if rising {
        Some((false, first.unwrap_or(hi + 1)))
    } else if falling {
        Some((true, last.map_or(hi + 1, |c| a.mirror(c))))
    } else {
        None
    }
}

/// A hidden neuron `j`'s predicate, in the graph's order of operations and `R`'s arithmetic
/// (f32 as the graph computes it; f64 for the rounding report).
fn fires<R: Real>(steps: &[Step], s: &Sign, j: usize, a: Accumulator, acc: i64) -> bool {
    let t = R::of(s.thresholds[if s.thresholds.len() == 1 { 0 } else { j }]);
    steps
        .iter()
        .fold(R::of_int(a.dot(acc)), |x, st| st.apply(x, j))
        >= t
}

/// The binary weights of a `MatMul` (`[inputs, outputs]`), as bql rows, and the magnitude of
/// each output's column when it is not 1 (QONNX's `BipolarQuant` scales: every weight of an
/// output must have the same magnitude, a power of two).
fn matmul_weights(
    g: &Graph<'_>,
    node: &NodeProto,
    inputs: usize,
) -> Result<(BitMatrix, Option<Constant>)> {
    let w = g.constant(node, 1)?;
    let [rows, cols] = w.dims[..] else {
        return Err(bad(node, format!("weights of shape {:?}, not 2-D", w.dims)));
    };
    if rows != inputs {
        return Err(bad(
            node,
            format!("takes {rows} inputs but receives {inputs}"),
        ));
    }
    let magnitudes: Vec<f32> = (0..cols)
        .map(|c| w.values.get(c).map_or(1.0, |v| v.abs()))
        .collect();
    let mut m = BitMatrix::zeros(cols, rows);
    for (i, &v) in w.values.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        if v.abs() != magnitudes[c] || !power_of_two(magnitudes[c]) {
            return Err(bad(
                node,
                format!(
                    "weight [{r}, {c}] is {v}, not +-{}: not a binarized layer with a \
                     power-of-two scale",
                    magnitudes[c]
                ),
            ));
        }
        m.set(c, r, v > 0.0);
    }
    let scale = magnitudes.iter().any(|&s| s != 1.0).then(|| Constant {
        dims: vec![cols],
        values: magnitudes,
    });
    Ok((m, scale))
}

/// The last layer's scores must be a strictly increasing function of the accumulator, the
/// same for every class (scalar constants only), over every value it can take; the graph's
/// answer must be the largest score, the lowest index on ties (`TopK` k = 1, or `ArgMax` with
/// `select_last_index = 0`).
fn check_scores(
    steps: &[Step],
    a: Accumulator,
    end: Option<&NodeProto>,
    g: &Graph<'_>,
) -> Result<()> {
    if let Some(step) = steps.iter().find(|s| s.width() != 1) {
        return Err(Error::unsupported(format!(
            "{}: the scores are scaled per class after the last MatMul ({step:?}); bql's argmax \
             needs one increasing map for all classes",
            g.name
        )));
    }
    let score = |acc: i64| steps.iter().fold(a.dot(acc) as f32, |x, st| st.apply(x, 0));
    let (lo, hi) = a.range();
    if !(lo..hi).all(|acc| score(acc) < score(acc + 1)) {
        return Err(Error::unsupported(format!(
            "{}: the scores are not a strictly increasing function of the last layer's \
             accumulator, so their order is not bql's",
            g.name
        )));
    }
    match end {
        Some(n) if n.op_type == "TopK" => {
            let k = g.constant(n, 1)?.values.first().copied();
            if k != Some(1.0) || attr_i(n, "largest").unwrap_or(1) != 1 {
                return Err(bad(n, "only TopK with k = 1 and largest = 1 is imported"));
            }
        }
        Some(n) if n.op_type == "ArgMax" && attr_i(n, "select_last_index").unwrap_or(0) != 0 => {
            return Err(bad(n, "ties go to the last index; bql's go to the first"));
        }
        _ => {}
    }
    Ok(())
}

/// The thresholds of a hidden layer (`weights` rows are its outputs) from the segment after
/// its weights; outputs whose firing set falls with the accumulator get negated weights.
fn thresholds(
    node: &NodeProto,
    weights: &mut BitMatrix,
    a: Accumulator,
    seg: &Segment<'_>,
    s: &Sign,
    rounding_sensitive: &mut usize,
) -> Result<Vec<i64>> {
    let m = weights.rows();
    let widths = seg
        .steps
        .iter()
        .map(Step::width)
        .chain([s.thresholds.len()]);
    if let Some(w) = widths.into_iter().find(|&w| w != 1 && w != m) {
        return Err(bad(
            node,
            format!("a constant after it has {w} values for {m} outputs"),
        ));
    }
    let mut thresholds = Vec::with_capacity(m);
    for j in 0..m {
        let rule = threshold_of(a, |acc| fires::<f32>(&seg.steps, s, j, a, acc))
            .ok_or_else(|| bad(node, format!("output {j}'s firing set is not a threshold")))?;
        if threshold_of(a, |acc| fires::<f64>(&seg.steps, s, j, a, acc)) != Some(rule) {
            *rounding_sensitive += 1;
        }
        let (negate, t) = rule;
        if negate {
            for col in 0..a.n {
                let v = weights.get(j, col);
                weights.set(j, col, !v);
            }
        }
        thresholds.push(t);
    }
    Ok(thresholds)
}

/// True for a positive power of two, whose products f32 computes exactly.
fn power_of_two(v: f32) -> bool {
    v > 0.0 && v.is_normal() && v.to_bits() & 0x7f_ffff == 0
}

/// The model's input encoding from the segment before the first `MatMul`, and the scale of
/// the values that reach it: a sign makes it binary; raw pixels an 8-bit first layer; a
/// `Quant` a pixel table of its integer levels (times its scale, a power of two so that the
/// graph's float sums stay exact).
fn input_encoding(seg: &Segment<'_>, name: &str) -> Result<(InputEncoding, AccumulatorKind, f32)> {
    if let (None, Some(table)) = (&seg.sign, seg.table) {
        return Ok((
            InputEncoding::Table(table),
            AccumulatorKind::SignedPixelSum,
            1.0,
        ));
    }
    match (&seg.sign, seg.quant) {
        (Some(s), _) => Ok((
            InputEncoding::Binary {
                threshold: input_threshold(&seg.steps, s, name)?,
            },
            AccumulatorKind::Popcount,
            1.0,
        )),
        (None, Some(q)) => {
            let levels: Vec<f32> = (0..=255u8)
                .map(|p| q.level(seg.steps.iter().fold(f32::from(p), |x, st| st.apply(x, 0))))
                .collect();
            let fits = levels
                .iter()
                .all(|l| l.fract() == 0.0 && l.abs() <= f32::from(PIXEL_TABLE_LIMIT));
            if !fits || !power_of_two(q.scale) || seg.steps.iter().any(|st| st.width() != 1) {
                return Err(Error::unsupported(format!(
                    "{name}: the input Quant ({q:?}) does not give integer levels within \
                     +-{PIXEL_TABLE_LIMIT} with a power-of-two scale for every pixel value"
                )));
            }
            let table: [i16; 256] = std::array::from_fn(|p| levels[p] as i16);
            let encoding = if table.iter().enumerate().all(|(p, &v)| v as usize == p) {
                InputEncoding::U8
            } else {
                InputEncoding::Table(PixelTable(table))
            };
            Ok((encoding, AccumulatorKind::SignedPixelSum, q.scale))
        }
        (None, None) if seg.steps.is_empty() => {
            Ok((InputEncoding::U8, AccumulatorKind::SignedPixelSum, 1.0))
        }
        (None, None) => Err(Error::unsupported(format!(
            "{name}: the pixels are scaled before the first MatMul without a sign or a Quant; \
             only the raw 8-bit values, a Quant of them or a binarization are imported"
        ))),
    }
}

/// A layer with weights, its thresholds still zero.
enum Weighted {
    Dense(BitMatrix),
    Conv(Conv2d),
}

/// The importer's state between layers with weights.
struct Walk<'g, 'a> {
    g: &'g Graph<'a>,
    layout: Layout,
    layers: Vec<Layer>,
    /// A `Pad` waiting for its `Conv`.
    pad: Option<(Vec<i64>, f32)>,
    rounding_sensitive: usize,
}

impl Walk<'_, '_> {
    fn refuse(&self, m: String) -> Error {
        Error::unsupported(format!("{}: {m}", self.g.name))
    }

    /// A new layout; flattening a map after a layer adds bql's flatten.
    fn set_layout(&mut self, new: Layout) {
        if let (Some(map), None, false) = (self.layout.map(), new.map(), self.layers.is_empty()) {
            self.layers.push(Layer::Flatten(Flatten { input: map }));
        }
        self.layout = new;
    }

    /// Follows the nodes that move values; pools and flattens become bql layers.
    fn apply(&mut self, structure: &[Structural]) -> Result<()> {
        for st in structure {
            match st {
                Structural::Reshape(dims) => {
                    let new = layout::reshape(self.layout, dims, &self.g.name)
                        .map_err(|m| self.refuse(m))?;
                    self.set_layout(new);
                }
                Structural::Flatten(1) => self.set_layout(layout::flatten(self.layout)),
                Structural::Flatten(axis) => {
                    return Err(self.refuse(format!(
                        "Flatten from axis {axis}; bql flattens from axis 1"
                    )))
                }
                Structural::Transpose(perm) => {
                    self.layout = layout::transpose(self.layout, perm).ok_or_else(|| {
                        self.refuse(format!(
                            "Transpose {perm:?} of {:?}: only NHWC <-> NCHW",
                            self.layout
                        ))
                    })?;
                }
                Structural::Pad(..) if self.pad.is_some() => {
                    return Err(self.refuse("two Pads in a row".into()))
                }
                Structural::Pad(p, v) => self.pad = Some((p.clone(), *v)),
                Structural::MaxPool(k) => self.pool(*k)?,
            }
        }
        Ok(())
    }

    fn pool(&mut self, kernel: usize) -> Result<()> {
        let Some(map) = self.layout.map() else {
            return Err(self.refuse(format!("MaxPool of {:?}", self.layout)));
        };
        let pool = MaxPool2d { input: map, kernel };
        pool.check()
            .map_err(|e| self.refuse(format!("MaxPool: {e}")))?;
        self.layers.push(Layer::MaxPool2d(pool));
        self.layout = match self.layout {
            Layout::Nhwc(_) => Layout::Nhwc(pool.output()),
            _ => Layout::Nchw(pool.output()),
        };
        Ok(())
    }

    /// The layer of a `MatMul` or `Conv`, its fan-in and its weights' scale.
    fn weighted(
        &mut self,
        node: &NodeProto,
        kind: AccumulatorKind,
    ) -> Result<(Weighted, usize, Option<Constant>)> {
        match (node.op_type.as_str(), self.layout) {
            ("Conv", Layout::Nchw(map)) => {
                let (conv, scale) = layout::conv(self.g, node, map, self.pad.take(), kind)?;
                let n = conv.window_len();
                self.layout = Layout::Nchw(conv.output());
                Ok((Weighted::Conv(conv), n, scale))
            }
            ("MatMul", Layout::Vector(_) | Layout::VectorChw(_)) if self.pad.is_none() => {
                let n = self.layout.len();
                let (rows, scale) = matmul_weights(self.g, node, n)?;
                let mut weights = BitMatrix::zeros(rows.rows(), n);
                for o in 0..rows.rows() {
                    for r in 0..n {
                        weights.set(o, layout::matmul_column(self.layout, r), rows.get(o, r));
                    }
                }
                self.layout = Layout::Vector(weights.rows());
                Ok((Weighted::Dense(weights), n, scale))
            }
            (op, layout) => Err(bad(
                node,
                format!("{op} on {layout:?} (a pending Pad: {})", self.pad.is_some()),
            )),
        }
    }
}

/// The layout of the graph's image input: a flat vector `[N, H*W*C]` in bql's `(y, x, c)` order,
/// or a map `[N, C, H, W]`.
fn input_layout(
    model: &ModelProto,
    input: &str,
    (h, w, c): (usize, usize, usize),
) -> Result<Layout> {
    let rank = model
        .graph
        .input
        .iter()
        .find(|i| i.name == input)
        .and_then(|i| i.type_.tensor_type().shape.as_ref().map(|s| s.dim.len()));
    let map = MapShape {
        height: h,
        width: w,
        channels: c,
    };
    match rank {
        Some(4) => Ok(Layout::Nchw(map)),
        Some(2) | None => Ok(Layout::Vector(map.len())),
        Some(r) => Err(Error::unsupported(format!(
            "the image input has rank {r}; bql reads [N, H*W*C] or [N, C, H, W]"
        ))),
    }
}

/// Imports the ONNX file at `path` (FINN-ONNX, QONNX, or bql's own export); `input` is
/// (height, width, channels) of its images.
pub fn import(path: &Path, input: (usize, usize, usize)) -> Result<Imported> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {name}"), e))?;
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| Error::malformed(format!("{name} is not an ONNX model: {e}")))?;
    let g = Graph::new(&model, name.clone())?;
    let inputs: Vec<&str> = model
        .graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| !g.constants.contains_key(*n))
        .collect();
    let [first] = inputs[..] else {
        return Err(Error::unsupported(format!(
            "{name}: {} graph inputs; one image input is imported",
            inputs.len()
        )));
    };
    let (h, w, c) = input;
    let seg = segment(&g, first.to_string(), true)?;
    let (encoding, mut kind, mut input_scale) = input_encoding(&seg, &name)?;
    let mut walk = Walk {
        g: &g,
        layout: input_layout(&model, first, input)?,
        layers: Vec::new(),
        pad: None,
        rounding_sensitive: 0,
    };
    walk.apply(&seg.structure)?;
    let mut next = seg.end;
    loop {
        let Some(node) = next.filter(|n| matches!(n.op_type.as_str(), "MatMul" | "Conv")) else {
            return Err(Error::unsupported(format!(
                "{name}: expected a MatMul or Conv after the thresholds"
            )));
        };
        let (layer, n, weight_scale) = walk.weighted(node, kind)?;
        let a = Accumulator { kind, n };
        let out = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad(node, "has no output"))?;
        let mut seg = segment(&g, out, false)?;
        // The weights' exact result is the dot product times these scales (powers of two).
        let scalar = |v: f32| Constant {
            dims: vec![],
            values: vec![v],
        };
        let scales = [
            (input_scale != 1.0).then(|| scalar(input_scale)),
            weight_scale,
        ];
        seg.steps
            .splice(0..0, scales.into_iter().flatten().map(Step::Mul));
        input_scale = 1.0;
        let rs = &mut walk.rounding_sensitive;
        match (layer, &seg.sign) {
            (Weighted::Dense(weights), None) => {
                check_scores(&seg.steps, a, seg.end, &g)?;
                walk.layers.push(Layer::Dense(Dense {
                    weights,
                    accumulator: kind,
                    output: DenseOutput::Scores,
                }));
                break;
            }
            (Weighted::Conv(_), None) => {
                return Err(bad(
                    node,
                    "the last layer is a convolution; bql's last layer is dense",
                ))
            }
            (Weighted::Dense(mut weights), Some(s)) => {
                let t = thresholds(node, &mut weights, a, &seg, s, rs)?;
                walk.layers.push(Layer::Dense(Dense {
                    weights,
                    accumulator: kind,
                    output: DenseOutput::Threshold(t),
                }));
            }
            (Weighted::Conv(mut conv), Some(s)) => {
                conv.thresholds = thresholds(node, &mut conv.weights, a, &seg, s, rs)?;
                walk.layers.push(Layer::Conv2d(conv));
            }
        }
        walk.apply(&seg.structure)?;
        kind = AccumulatorKind::Popcount;
        next = seg.end;
    }
    let (layers, rounding_sensitive) = (walk.layers, walk.rounding_sensitive);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let network = crate::checked_network(
        format!("onnx-{stem}"),
        (h, w, c),
        encoding,
        layers,
        serde_json::json!({
            "imported_from": "ONNX",
            "file": name,
            "semantics": "every float function of an accumulator evaluated in f32 in the graph's \
                          order for every accumulator value; thresholds are where it fires",
            "rounding_sensitive_neurons": rounding_sensitive,
        }),
        &name,
    )?;
    Ok(Imported {
        network,
        rounding_sensitive,
    })
}
