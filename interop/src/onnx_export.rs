//! Export of bql MLPs as standard ONNX (opset 13, no custom ops), which onnxruntime runs with
//! bql's predictions.
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
//! Convolutional models are refused for now.

use bql_model::layers::{Dense, DenseOutput, Layer};
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

/// A graph under construction.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
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

    /// `x >= bound` as +-1 floats.
    fn sign(&mut self, x: &str, bound: &str, prefix: &str) -> String {
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
    let weights = b.constant(&format!("layer{l}_weights"), &[n, m], w);
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

/// The ONNX model of `net`, serialized.
pub fn export(net: &Network) -> Result<Vec<u8>> {
    let len = net.input.len();
    let mut b = Builder::default();
    let mut x = match net.input.encoding {
        InputEncoding::Binary { threshold } => {
            let t = b.constant("input_threshold", &[], vec![f32::from(threshold)]);
            b.sign("pixels", &t, "input")
        }
        InputEncoding::U8 => "pixels".to_string(),
        InputEncoding::Table(t) => {
            let values = t.0.iter().map(|&v| f32::from(v)).collect();
            let table = b.constant("pixel_table", &[256], values);
            let index = b.node("Cast", &["pixels"], "pixel_index", &[("to", INT64 as i64)]);
            b.node("Gather", &[&table, &index], "input", &[("axis", 0)])
        }
    };
    for (l, layer) in net.layers.iter().enumerate() {
        let Layer::Dense(d) = layer else {
            return Err(Error::unsupported(format!(
                "{}: layer {l} is not dense; ONNX export of convolutional models is not \
                 supported yet",
                net.name
            )));
        };
        x = dense(&mut b, d, &x, l);
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
