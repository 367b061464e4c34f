//! FINN-ONNX binarized MLPs (Brevitas exports tidied by FINN, such as TFC-W1A1), read with the
//! `onnx-protobuf` crate.
//!
//! The graph is a chain: input scaling (`Div`, `Mul`, `Sub`, `Add` by constants), `Reshape`,
//! a `MultiThreshold` that binarizes the pixels, then per layer a `MatMul` with +-1 weights,
//! elementwise constants (`Mul`, `Add`, `Sub`, `Div`), `BatchNormalization` (between
//! `Unsqueeze`/`Squeeze`) and a `MultiThreshold` (FINN's custom op: `out_scale * #(x >= t) +
//! out_bias`, here with one threshold, scale 2 and bias -1: a sign), and after the last
//! `MatMul` only scalar constants and an optional `TopK` (k = 1).
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
use bql_model::layers::{Dense, DenseOutput, Layer};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, InputSpec, Network};
use onnx_protobuf::{ModelProto, NodeProto, TensorProto};
use protobuf::Message;

use crate::error::{Error, Result};

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

impl Step {
    /// The step applied to value `x` of neuron `j`, in f32.
    fn apply(&self, x: f32, j: usize) -> f32 {
        let at = |c: &Constant| c.values[if c.values.len() == 1 { 0 } else { j }];
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
            } => (x - at(mean)) / (at(var) + eps).sqrt() * at(scale) + at(bias),
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

/// A `MultiThreshold` reduced to a sign: fires when `x >= threshold[j]`.
#[derive(Debug, Clone)]
struct Sign {
    thresholds: Vec<f32>,
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
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        for n in &g.node {
            if let Some(first) = n.input.first() {
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
    /// The node that ended the segment: the next `MatMul`, a `TopK`, or none (graph output).
    end: Option<&'a NodeProto>,
}

/// Follows the chain from `tensor`, collecting elementwise steps up to a `MultiThreshold`
/// (whose output continues to the next `MatMul`), a `MatMul`, a `TopK` or the graph's end.
fn segment<'a>(g: &Graph<'a>, mut tensor: String) -> Result<Segment<'a>> {
    let mut steps = Vec::new();
    let mut sign_found = None;
    loop {
        let Some(node) = g.next(&tensor)? else {
            return Ok(Segment {
                steps,
                sign: sign_found,
                end: None,
            });
        };
        match node.op_type.as_str() {
            "MatMul" | "TopK" => {
                return Ok(Segment {
                    steps,
                    sign: sign_found,
                    end: Some(node),
                })
            }
            _ if sign_found.is_some() => {
                if !matches!(node.op_type.as_str(), "Reshape" | "Flatten") {
                    return Err(bad(node, "expected a MatMul after a MultiThreshold"));
                }
            }
            "Mul" | "Div" | "Add" | "Sub" => steps.push(elementwise(g, node)?),
            "BatchNormalization" => steps.push(batchnorm(g, node)?),
            "MultiThreshold" => sign_found = Some(sign(g, node)?),
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" => {}
            _ => return Err(bad(node, "is not supported in a binarized MLP")),
        }
        tensor = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad(node, "has no output"))?;
    }
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

/// A hidden layer's neuron `j`: its bql threshold over `0..=n` agreements (after negating its
/// weights when `negate`), from the graph's float predicate. `None` when the firing set is not
/// a threshold in either direction.
fn neuron_threshold(steps: &[Step], s: &Sign, j: usize, n: usize) -> Option<(bool, i64)> {
    let t = s.thresholds[if s.thresholds.len() == 1 { 0 } else { j }];
    let fires = |acc: usize| {
        let dot = (2 * acc as i64 - n as i64) as f32;
        steps.iter().fold(dot, |x, st| st.apply(x, j)) >= t
    };
    let set: Vec<bool> = (0..=n).map(fires).collect();
    let rising = set.windows(2).all(|w| w[0] <= w[1]);
    let falling = set.windows(2).all(|w| w[0] >= w[1]);
    if rising {
        Some((false, set.iter().position(|&f| f).unwrap_or(n + 1) as i64))
    } else if falling {
        // Negated weights: acc' = n - acc; acc <= c fires, i.e. acc' >= n - c.
        let fired = set.iter().filter(|&&f| f).count() as i64;
        Some((
            true,
            if fired == 0 {
                n as i64 + 1
            } else {
                n as i64 - (fired - 1)
            },
        ))
    } else {
        None
    }
}

/// The same neuron's threshold computed exactly in f64 (for the rounding report).
fn neuron_threshold_f64(steps: &[Step], s: &Sign, j: usize, n: usize) -> Option<(bool, i64)> {
    let t = f64::from(s.thresholds[if s.thresholds.len() == 1 { 0 } else { j }]);
    let at = |c: &Constant| f64::from(c.values[if c.values.len() == 1 { 0 } else { j }]);
    let fires = |acc: usize| {
        let dot = (2 * acc as i64 - n as i64) as f64;
        let y = steps.iter().fold(dot, |x, st| match st {
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
            } => (x - at(mean)) / (at(var) + f64::from(*eps)).sqrt() * at(scale) + at(bias),
        });
        y >= t
    };
    let set: Vec<bool> = (0..=n).map(fires).collect();
    if set.windows(2).all(|w| w[0] <= w[1]) {
        Some((false, set.iter().position(|&f| f).unwrap_or(n + 1) as i64))
    } else if set.windows(2).all(|w| w[0] >= w[1]) {
        let fired = set.iter().filter(|&&f| f).count() as i64;
        Some((
            true,
            if fired == 0 {
                n as i64 + 1
            } else {
                n as i64 - (fired - 1)
            },
        ))
    } else {
        None
    }
}

/// The +-1 weights of a `MatMul` (`[inputs, outputs]`), as bql rows.
fn matmul_weights(g: &Graph<'_>, node: &NodeProto, inputs: usize) -> Result<BitMatrix> {
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
    let mut m = BitMatrix::zeros(cols, rows);
    for (i, &v) in w.values.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        match v {
            1.0 => m.set(c, r, true),
            -1.0 => {}
            other => {
                return Err(bad(
                    node,
                    format!("weight [{r}, {c}] is {other}, not +-1: not a binarized layer"),
                ))
            }
        }
    }
    Ok(m)
}

/// The last layer's scores must be a strictly increasing function of the dot product, the same
/// for every class (scalar constants only), over every possible dot product.
fn check_scores(steps: &[Step], n: usize, end: Option<&NodeProto>, g: &Graph<'_>) -> Result<()> {
    if let Some(step) = steps.iter().find(|s| s.width() != 1) {
        return Err(Error::unsupported(format!(
            "{}: the scores are scaled per class after the last MatMul ({step:?}); bql's argmax \
             needs one increasing map for all classes",
            g.name
        )));
    }
    let score = |acc: usize| {
        let dot = (2 * acc as i64 - n as i64) as f32;
        steps.iter().fold(dot, |x, st| st.apply(x, 0))
    };
    if !(0..n).all(|a| score(a) < score(a + 1)) {
        return Err(Error::unsupported(format!(
            "{}: the scores are not a strictly increasing function of the last layer's \
             accumulator, so their order is not bql's",
            g.name
        )));
    }
    if let Some(topk) = end {
        let k = g.constant(topk, 1)?.values.first().copied();
        let largest = attr_i(topk, "largest").unwrap_or(1);
        if k != Some(1.0) || largest != 1 {
            return Err(bad(
                topk,
                "only TopK with k = 1 and largest = 1 is imported",
            ));
        }
    }
    Ok(())
}

/// Imports the FINN-ONNX file at `path`; `input` is (height, width, channels) of its images.
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
    let mut n = h * w * c;
    let seg = segment(&g, first.to_string())?;
    let Some(s) = &seg.sign else {
        return Err(Error::unsupported(format!(
            "{name}: the input reaches the first MatMul without a MultiThreshold; 8-bit first \
             layers are not imported from ONNX yet"
        )));
    };
    let threshold = input_threshold(&seg.steps, s, &name)?;
    let mut layers = Vec::new();
    let mut rounding_sensitive = 0;
    let mut next = seg.end;
    loop {
        let Some(mm) = next.filter(|n| n.op_type == "MatMul") else {
            return Err(Error::unsupported(format!(
                "{name}: expected a MatMul after the thresholds"
            )));
        };
        let mut weights = matmul_weights(&g, mm, n)?;
        let out = mm
            .output
            .first()
            .cloned()
            .ok_or_else(|| bad(mm, "has no output"))?;
        let seg = segment(&g, out)?;
        let m = weights.rows();
        match &seg.sign {
            Some(s) => {
                let widths_fit = seg
                    .steps
                    .iter()
                    .map(Step::width)
                    .chain([s.thresholds.len()]);
                if let Some(w) = widths_fit.into_iter().find(|&w| w != 1 && w != m) {
                    return Err(bad(
                        mm,
                        format!("a constant after it has {w} values for {m} outputs"),
                    ));
                }
                let mut thresholds = Vec::with_capacity(m);
                for j in 0..m {
                    let (negate, t) = neuron_threshold(&seg.steps, s, j, n).ok_or_else(|| {
                        bad(mm, format!("output {j}'s firing set is not a threshold"))
                    })?;
                    if neuron_threshold_f64(&seg.steps, s, j, n) != Some((negate, t)) {
                        rounding_sensitive += 1;
                    }
                    if negate {
                        for col in 0..n {
                            let v = weights.get(j, col);
                            weights.set(j, col, !v);
                        }
                    }
                    thresholds.push(t);
                }
                layers.push(Layer::Dense(Dense {
                    weights,
                    accumulator: AccumulatorKind::Popcount,
                    output: DenseOutput::Threshold(thresholds),
                }));
                n = m;
                next = seg.end;
            }
            None => {
                check_scores(&seg.steps, n, seg.end, &g)?;
                layers.push(Layer::Dense(Dense {
                    weights,
                    accumulator: AccumulatorKind::Popcount,
                    output: DenseOutput::Scores,
                }));
                break;
            }
        }
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let network = Network {
        name: format!("onnx-{stem}"),
        input: InputSpec {
            height: h,
            width: w,
            channels: c,
            encoding: InputEncoding::Binary { threshold },
        },
        layers,
        float: None,
        provenance: serde_json::json!({
            "imported_from": "FINN-ONNX",
            "file": name,
            "semantics": "every float function of an accumulator evaluated in f32 in the graph's \
                          order for every accumulator value; thresholds are where it fires",
            "rounding_sensitive_neurons": rounding_sensitive,
        }),
    };
    network
        .validate()
        .map_err(|e| Error::malformed(format!("{name}: the imported network is invalid: {e}")))?;
    Ok(Imported {
        network,
        rounding_sensitive,
    })
}
