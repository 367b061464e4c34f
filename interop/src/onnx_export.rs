//! Export of bql MLPs and CNNs as standard ONNX (opset 13, no custom ops), which onnxruntime
//! runs with bql's predictions.
//!
//! Every value in the graph is an integer that float32 holds exactly (|values| < 2^24), so the
//! graph computes bql's arithmetic without rounding:
//!
//! - input `pixels`, float32 `[N, H*W*C]` with the 8-bit values: a binary input becomes
//!   `GreaterOrEqual(pixels, T_in)` -> `Cast` -> `2 b - 1` (+-1); a u8 input is used as it is;
//! - a layer is `MatMul` with the +-1 weights (`[n, m]`), the dot product `2 acc - n` for
//!   popcounts (or the signed pixel sum); a threshold layer fires when `acc >= T`, that is
//!   `dot >= 2 T - n` (`dot >= T` for pixel sums), again `GreaterOrEqual` -> `Cast` -> +-1;
//! - the last layer's scores are the accumulators (`(dot + n) / 2`, or the pixel sums), output
//!   `scores` `[N, classes]`, and `class` is `ArgMax` with `select_last_index = 0` (ties to the
//!   lowest index, as bql).
//!
//! - convolutional models keep their maps in ONNX's `NCHW` layout: the input is reshaped to
//!   `[N, H, W, C]` (bql's `(y, x, c)` order) and transposed; a convolution is `Conv` with the
//!   +-1 weights `[O, C, k, k]` and strides, after a `Pad` with the semantics' padded operand
//!   (the pad bit as +-1, or pixel 0) for `same` padding, then the per-channel sign; max-pooling
//!   is `MaxPool` on the +-1 values (their maximum is bql's OR); flatten transposes back to
//!   `NHWC` before `Flatten`, so the dense layer sees bql's `(y, x, c)` order;
//! - a pixel table is a `Gather` of the 256 operands indexed by the pixels.

use bql_model::layers::{Conv2d, Dense, DenseOutput, Layer, MaxPool2d, Padding};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use protobuf::Message;

use crate::error::{Error, Result};

/// ONNX element types used here.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
/// The opset the graph is written for (GreaterOrEqual needs 12).
const OPSET: i64 = 13;

/// The ONNX dialect written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// Standard operators only: signs are `GreaterOrEqual` -> `Cast` -> `2 b - 1`, weights are
    /// +-1 initializers. onnxruntime runs it.
    #[default]
    Standard,
    /// QONNX (the dialect Brevitas exports and FINN reads): signs are `BipolarQuant(x - bound,
    /// 1)`, weights are `BipolarQuant(w, 1)` of +-1 initializers, from the domain
    /// `qonnx.custom_op.general`. qonnx's executor runs it.
    Qonnx,
}

/// QONNX's custom-op domain.
const QONNX_DOMAIN: &str = "qonnx.custom_op.general";

/// A graph under construction.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    flavour: Flavour,
}

impl Builder {
    /// A float constant of shape `dims`.
    fn constant(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = FLOAT;
        t.float_data = values;
        self.initializers.push(t);
        name.into()
    }

    /// A node `op(inputs) -> output` with integer attributes.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, ints: &[(&str, i64)]) -> String {
        let mut n = NodeProto::new();
        n.name = format!("{op}_{}", self.nodes.len());
        n.op_type = op.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.into()];
        for (name, v) in ints {
            let mut a = AttributeProto::new();
            a.name = (*name).into();
            a.type_ = AttributeType::INT.into();
            a.i = *v;
            n.attribute.push(a);
        }
        self.nodes.push(n);
        output.into()
    }

    /// An int64 constant of shape `dims`.
    fn constant_i64(&mut self, name: &str, dims: &[usize], values: Vec<i64>) -> String {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = INT64;
        t.int64_data = values;
        self.initializers.push(t);
        name.into()
    }

    /// A node with integer-list attributes (and integer ones).
    fn node_lists(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        lists: &[(&str, &[i64])],
    ) -> String {
        let out = self.node(op, inputs, output, &[]);
        let n = self.nodes.last_mut().expect("just pushed");
        for (name, v) in lists {
            let mut a = AttributeProto::new();
            a.name = (*name).into();
            a.type_ = AttributeType::INTS.into();
            a.ints = v.to_vec();
            n.attribute.push(a);
        }
        out
    }

    /// A QONNX `BipolarQuant(x, 1)`: `x >= 0 ? 1 : -1`.
    fn bipolar(&mut self, x: &str, output: &str) -> String {
        let one = self.constant(&format!("{output}_scale"), &[], vec![1.0]);
        let out = self.node("BipolarQuant", &[x, &one], output, &[]);
        self.nodes.last_mut().expect("just pushed").domain = QONNX_DOMAIN.into();
        out
    }

    /// Binary weights (`values` are +-1) of shape `dims`: an initializer, quantized in the
    /// graph for QONNX.
    fn weights(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        match self.flavour {
            Flavour::Standard => self.constant(name, dims, values),
            Flavour::Qonnx => {
                let latent = self.constant(&format!("{name}_latent"), dims, values);
                self.bipolar(&latent, name)
            }
        }
    }

    /// `x >= bound` as +-1 floats.
    fn sign(&mut self, x: &str, bound: &str, prefix: &str) -> String {
        if self.flavour == Flavour::Qonnx {
            let diff = self.node("Sub", &[x, bound], &format!("{prefix}_diff"), &[]);
            return self.bipolar(&diff, &format!("{prefix}_pm1"));
        }
        let ge = self.node("GreaterOrEqual", &[x, bound], &format!("{prefix}_ge"), &[]);
        let bits = self.node(
            "Cast",
            &[&ge],
            &format!("{prefix}_bits"),
            &[("to", FLOAT as i64)],
        );
        let two = self.constant(&format!("{prefix}_two"), &[], vec![2.0]);
        let one = self.constant(&format!("{prefix}_one"), &[], vec![1.0]);
        let doubled = self.node("Mul", &[&bits, &two], &format!("{prefix}_x2"), &[]);
        self.node("Sub", &[&doubled, &one], &format!("{prefix}_pm1"), &[])
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<usize>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        match d {
            Some(v) => dim.set_dim_value(*v as i64),
            None => dim.set_dim_param("N".into()),
        }
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = elem_type;
    tensor.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.set_tensor_type(tensor);
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

/// One dense layer on `x`; returns the output tensor's name.
fn dense(b: &mut Builder, d: &Dense, x: &str, l: usize) -> String {
    let (n, m) = (d.weights.cols(), d.weights.rows());
    let w: Vec<f32> = (0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| if d.weights.get(j, i) { 1.0 } else { -1.0 })
        .collect();
    let weights = b.weights(&format!("layer{l}_weights"), &[n, m], w);
    let dot = b.node("MatMul", &[x, &weights], &format!("layer{l}_dot"), &[]);
    let popcount = d.accumulator == AccumulatorKind::Popcount;
    match &d.output {
        DenseOutput::Threshold(t) => {
            let bounds = t
                .iter()
                .map(|&t| if popcount { 2 * t - n as i64 } else { t } as f32)
                .collect();
            let bound = b.constant(&format!("layer{l}_bound"), &[m], bounds);
            b.sign(&dot, &bound, &format!("layer{l}"))
        }
        DenseOutput::Scores if popcount => {
            let n_c = b.constant(&format!("layer{l}_n"), &[], vec![n as f32]);
            let half = b.constant(&format!("layer{l}_half"), &[], vec![0.5]);
            let shifted = b.node("Add", &[&dot, &n_c], &format!("layer{l}_shifted"), &[]);
            b.node("Mul", &[&shifted, &half], "scores", &[])
        }
        DenseOutput::Scores => b.node("Identity", &[&dot], "scores", &[]),
    }
}

/// One convolution on the `NCHW` map `x`; returns the output map's name.
fn conv(b: &mut Builder, c: &Conv2d, x: &str, l: usize) -> String {
    let (k, ch, o) = (c.kernel, c.input.channels, c.out_channels());
    let n = c.window_len() as i64;
    let w: Vec<f32> = (0..o)
        .flat_map(|oc| (0..ch).flat_map(move |ic| (0..k * k).map(move |p| (oc, ic, p))))
        .map(|(oc, ic, p)| {
            if c.weights.get(oc, p * ch + ic) {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let weights = b.weights(&format!("layer{l}_weights"), &[o, ch, k, k], w);
    let input = match c.padding {
        Padding::Valid => x.to_string(),
        Padding::Same { pad_bit } => {
            let (top, left) = c.pad_before();
            let out = c.output();
            let span = |size: usize| (size - 1) * c.stride + k;
            let bottom = span(out.height).saturating_sub(c.input.height + top);
            let right = span(out.width).saturating_sub(c.input.width + left);
            let pads = [0, 0, top, left, 0, 0, bottom, right].map(|v| v as i64);
            let pads = b.constant_i64(&format!("layer{l}_pads"), &[8], pads.to_vec());
            let value = match (c.accumulator, pad_bit) {
                (AccumulatorKind::SignedPixelSum, _) => 0.0,
                (_, true) => 1.0,
                (_, false) => -1.0,
            };
            let value = b.constant(&format!("layer{l}_pad_value"), &[], vec![value]);
            b.node("Pad", &[x, &pads, &value], &format!("layer{l}_padded"), &[])
        }
    };
    let stride = c.stride as i64;
    let dot = b.node_lists(
        "Conv",
        &[&input, &weights],
        &format!("layer{l}_dot"),
        &[("strides", &[stride, stride])],
    );
    let popcount = c.accumulator == AccumulatorKind::Popcount;
    let bounds = c
        .thresholds
        .iter()
        .map(|&t| if popcount { 2 * t - n } else { t } as f32)
        .collect();
    let bound = b.constant(&format!("layer{l}_bound"), &[1, o, 1, 1], bounds);
    b.sign(&dot, &bound, &format!("layer{l}"))
}

fn max_pool(b: &mut Builder, p: &MaxPool2d, x: &str, l: usize) -> String {
    let k = p.kernel as i64;
    b.node_lists(
        "MaxPool",
        &[x],
        &format!("layer{l}_pooled"),
        &[("kernel_shape", &[k, k]), ("strides", &[k, k])],
    )
}

/// The standard ONNX model of `net`, serialized.
pub fn export(net: &Network) -> Result<Vec<u8>> {
    export_as(net, Flavour::Standard)
}

/// The ONNX model of `net` in `flavour`, serialized.
pub fn export_as(net: &Network, flavour: Flavour) -> Result<Vec<u8>> {
    let len = net.input.len();
    let mut b = Builder {
        flavour,
        ..Builder::default()
    };
    let mut x = match net.input.encoding {
        InputEncoding::Binary { threshold } => {
            let t = b.constant("input_threshold", &[], vec![f32::from(threshold)]);
            b.sign("pixels", &t, "input")
        }
        InputEncoding::U8 if flavour == Flavour::Qonnx => {
            // Brevitas' form of an 8-bit input: an unsigned 8-bit Quant of scale 1, which
            // leaves the pixel values as they are.
            let consts = [("scale", 1.0), ("zeropt", 0.0), ("bitwidth", 8.0)];
            let names: Vec<String> = consts
                .iter()
                .map(|(n, v)| b.constant(&format!("input_{n}"), &[], vec![*v]))
                .collect();
            let inputs = ["pixels", &names[0], &names[1], &names[2]];
            let out = b.node("Quant", &inputs, "input", &[("signed", 0), ("narrow", 0)]);
            let node = b.nodes.last_mut().expect("just pushed");
            node.domain = QONNX_DOMAIN.into();
            let mut rounding = AttributeProto::new();
            rounding.name = "rounding_mode".into();
            rounding.type_ = AttributeType::STRING.into();
            rounding.s = b"ROUND".to_vec();
            node.attribute.push(rounding);
            out
        }
        InputEncoding::U8 => "pixels".to_string(),
        InputEncoding::Table(t) => {
            let values = t.0.iter().map(|&v| f32::from(v)).collect();
            let table = b.constant("pixel_table", &[256], values);
            let index = b.node("Cast", &["pixels"], "pixel_index", &[("to", INT64 as i64)]);
            b.node("Gather", &[&table, &index], "input", &[("axis", 0)])
        }
    };
    if let Some(Layer::Conv2d(_)) = net.layers.first() {
        let s = net.input.shape();
        let shape = [-1, s.height as i64, s.width as i64, s.channels as i64];
        let shape = b.constant_i64("input_shape", &[4], shape.to_vec());
        let nhwc = b.node("Reshape", &[&x, &shape], "input_nhwc", &[]);
        x = b.node_lists(
            "Transpose",
            &[&nhwc],
            "input_nchw",
            &[("perm", &[0, 3, 1, 2])],
        );
    }
    for (l, layer) in net.layers.iter().enumerate() {
        x = match layer {
            Layer::Dense(d) => dense(&mut b, d, &x, l),
            Layer::Conv2d(c) => conv(&mut b, c, &x, l),
            Layer::MaxPool2d(p) => max_pool(&mut b, p, &x, l),
            Layer::Flatten(_) => {
                let nhwc = format!("layer{l}_nhwc");
                let nhwc = b.node_lists("Transpose", &[&x], &nhwc, &[("perm", &[0, 2, 3, 1])]);
                b.node(
                    "Flatten",
                    &[&nhwc],
                    &format!("layer{l}_flat"),
                    &[("axis", 1)],
                )
            }
            other => {
                return Err(Error::unsupported(format!(
                    "{}: layer {l} ({}) has no ONNX export",
                    net.name,
                    other.kind_name()
                )))
            }
        };
    }
    b.node(
        "ArgMax",
        &[&x],
        "class",
        &[("axis", 1), ("keepdims", 0), ("select_last_index", 0)],
    );
    let mut graph = GraphProto::new();
    graph.name = net.name.clone();
    graph.node = b.nodes;
    graph.initializer = b.initializers;
    graph.input = vec![value_info("pixels", FLOAT, &[None, Some(len)])];
    graph.output = vec![
        value_info("scores", FLOAT, &[None, Some(net.classes())]),
        value_info("class", INT64, &[None]),
    ];
    let mut opset = OperatorSetIdProto::new();
    opset.version = OPSET;
    let mut model = ModelProto::new();
    model.ir_version = 8;
    model.opset_import = vec![opset];
    if flavour == Flavour::Qonnx {
        let mut qonnx = OperatorSetIdProto::new();
        qonnx.domain = QONNX_DOMAIN.into();
        qonnx.version = 1;
        model.opset_import.push(qonnx);
    }
    model.producer_name = "bql".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.doc_string = format!(
        "{} ({}): bql's integer semantics in float32, exact (docs/import.md)",
        net.name,
        net.arch_string()
    );
    model.graph = Some(graph).into();
    model
        .write_to_bytes()
        .map_err(|e| Error::malformed(format!("cannot encode the ONNX model: {e}")))
}
