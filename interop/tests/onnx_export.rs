//! Exported models in onnxruntime: the onnx checker accepts them, and on every image of the
//! MNIST slice the class and every score equal bql's reference. Needs numpy, onnx and
//! onnxruntime in `.venv` (`make deps`); says SKIPPED otherwise.

use std::path::{Path, PathBuf};

use bql_interop::onnx_export::{self, Flavour};
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;
use bql_model::testing::{random_cnn, random_pixels};
use bql_model::{InputEncoding, Network, PixelTable};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `.venv` Python when it can import `modules` (`make deps` installs them), or None and a
/// SKIPPED line.
fn venv_python(modules: &str) -> Option<PathBuf> {
    let python = root().join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: {modules} not importable from .venv; run `make deps`");
    }
    ok.then_some(python)
}

fn python() -> Option<PathBuf> {
    venv_python("numpy, onnx, onnxruntime")
}

/// Exports `net`, runs it in onnxruntime on the IDX file `images` (holding `pixels`), and
/// checks the class and every score of every image against bql's reference.
fn assert_onnxruntime_agrees(
    python: &Path,
    net: &Network,
    name: &str,
    images: &Path,
    pixels: &[u8],
) {
    let dir = root().join("target/bql-tests/onnx-export");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, onnx_export::export(net).unwrap()).unwrap();
    assert_runner_agrees(python, "onnx-run.py", &path, net, name, images, pixels);
}

/// Runs `scripts/<runner>` on the ONNX file `path` and compares every class and score with
/// bql's reference of `net` on `pixels` (the images of the IDX file `images`, in order).
fn assert_runner_agrees(
    python: &Path,
    runner: &str,
    path: &Path,
    net: &Network,
    name: &str,
    images: &Path,
    pixels: &[u8],
) {
    let count = (pixels.len() / net.input.len()).to_string();
    let out = std::process::Command::new(python)
        .arg(root().join("scripts").join(runner))
        .args([path.as_os_str(), images.as_os_str(), count.as_ref()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (scores, classes) = Engine::new(net).scores_batch(pixels);
    let k = net.classes();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), pixels.len() / net.input.len(), "{name}");
    for (i, line) in lines.iter().enumerate() {
        let mut fields = line.split_whitespace().map(|v| v.parse::<i64>().unwrap());
        let class = fields.next().unwrap() as usize;
        let theirs: Vec<i64> = fields.collect();
        let ours: Vec<i64> = scores[i * k..(i + 1) * k]
            .iter()
            .map(|&s| i64::from(s))
            .collect();
        assert_eq!((class, &theirs), (classes[i], &ours), "{name}, image {i}");
    }
}

/// On the committed slice; `BQL_ONNX_FULL_MNIST=1` runs the full test set in `data/mnist`
/// (`bql data fetch mnist`) instead, for the figures in docs/import.md.
#[test]
fn onnxruntime_agrees_with_bql_on_every_image_and_score() {
    let Some(python) = python() else { return };
    let set = match std::env::var("BQL_ONNX_FULL_MNIST") {
        Ok(v) if v == "1" => "data/mnist",
        _ => "data/slice/mnist",
    };
    let data = Dataset::load_dir(&root().join(set), Split::Test).unwrap();
    let images = ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"]
        .iter()
        .map(|f| root().join(set).join(f))
        .find(|p| p.exists())
        .expect("the test images");
    for model in ["default.bqm", "mnist-u8.bqm", "small.bqm", "mnist-cnn.bqm"] {
        let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
        assert_onnxruntime_agrees(&python, &net, model, &images, &data.pixels);
    }
}

/// Random CNNs (kernels 1-5, strides 1-2, valid and same padding with either pad bit, pooling,
/// 1 or 3 channels, binary or 8-bit input, some with a pixel table) on random images: every
/// class and score.
#[test]
fn onnxruntime_agrees_with_bql_on_random_cnns() {
    let Some(python) = python() else { return };
    let dir = root().join("target/bql-tests/onnx-export");
    std::fs::create_dir_all(&dir).unwrap();
    for seed in 0..12u64 {
        let mut net = random_cnn(seed);
        if seed % 3 == 0 && net.input.encoding == InputEncoding::U8 {
            let table = std::array::from_fn(|p| (p as i16 * 7 % 511) - 255);
            net.input.encoding = InputEncoding::Table(PixelTable(table));
            net.float = None;
        }
        let count = 20;
        let pixels = random_pixels(seed, count, net.input.len());
        let images = dir.join(format!("random-{seed}.idx"));
        let mut idx = vec![0, 0, 8, 2];
        idx.extend_from_slice(&(count as u32).to_be_bytes());
        idx.extend_from_slice(&(net.input.len() as u32).to_be_bytes());
        idx.extend_from_slice(&pixels);
        std::fs::write(&images, idx).unwrap();
        assert_onnxruntime_agrees(
            &python,
            &net,
            &format!("random-cnn-{seed}"),
            &images,
            &pixels,
        );
    }
}

/// Export then import gives back the same layers (weights, accumulators, thresholds) and the
/// same input encoding, so the same prediction on every image.
#[test]
fn every_shipped_mlp_round_trips_through_onnx() {
    let dir = root().join("target/bql-tests/onnx-round-trip");
    std::fs::create_dir_all(&dir).unwrap();
    for model in ["default.bqm", "mnist-u8.bqm", "small.bqm"] {
        let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
        let path = dir.join(model.replace(".bqm", ".onnx"));
        std::fs::write(&path, onnx_export::export(&net).unwrap()).unwrap();
        let back = bql_interop::onnx::import(&path, (28, 28, 1)).unwrap();
        assert_eq!(back.network.input, net.input, "{model}");
        assert_eq!(back.network.layers, net.layers, "{model}");
        assert_eq!(back.rounding_sensitive, 0, "{model}");
    }
}

fn qonnx_python() -> Option<PathBuf> {
    venv_python("qonnx.core.onnx_exec")
}

fn write_qonnx(net: &Network, name: &str) -> PathBuf {
    let dir = root().join("target/bql-tests/qonnx-export");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, onnx_export::export_as(net, Flavour::Qonnx).unwrap()).unwrap();
    path
}

/// The QONNX flavour run by qonnx's own executor (its BipolarQuant and Quant) gives bql's class
/// and scores on every image of the slice, for every shipped model.
#[test]
fn qonnx_executes_the_qonnx_flavour_like_bql() {
    let Some(python) = qonnx_python() else { return };
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let images = root().join("data/slice/mnist/t10k-images-idx3-ubyte.gz");
    let pixels = &data.pixels[..200 * data.image_len()];
    for model in ["default.bqm", "mnist-u8.bqm", "small.bqm", "mnist-cnn.bqm"] {
        let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
        let path = write_qonnx(&net, model);
        assert_runner_agrees(&python, "qonnx-run.py", &path, &net, model, &images, pixels);
    }
}

/// QONNX export then import gives back the same MLP (BipolarQuant weights and signs, the u8
/// input's Quant).
#[test]
fn every_shipped_mlp_round_trips_through_qonnx() {
    for model in ["default.bqm", "mnist-u8.bqm", "small.bqm"] {
        let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
        let back = bql_interop::onnx::import(&write_qonnx(&net, model), (28, 28, 1)).unwrap();
        assert_eq!(back.network.input, net.input, "{model}");
        assert_eq!(back.network.layers, net.layers, "{model}");
    }
}

/// CNV's input written the QONNX way: `x = pixel * 2/255 - 1`, then an 8-bit signed `Quant`
/// of scale 1/128. The importer turns it into a pixel table equal to BNN-PYNQ's (two sources,
/// one exact table), and qonnx's executor agrees with bql's reference on the slice.
#[test]
fn a_quant_input_becomes_the_pixel_table_qonnx_computes() {
    use onnx_protobuf::{ModelProto, NodeProto, TensorProto};
    use protobuf::Message;
    let net = bql_model::format::load(&root().join("models/mnist-u8.bqm")).unwrap();
    let bytes = onnx_export::export_as(&net, Flavour::Qonnx).unwrap();
    let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let scalar = |name: &str, v: f32| {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = 1;
        t.float_data = vec![v];
        t
    };
    graph.initializer.push(scalar("x_scale", 2.0 / 255.0));
    graph.initializer.push(scalar("x_shift", -1.0));
    for t in graph
        .initializer
        .iter_mut()
        .filter(|t| t.name == "input_scale")
    {
        t.float_data = vec![1.0 / 128.0];
    }
    let op = |op: &str, inputs: [&str; 2], output: &str| {
        let mut n = NodeProto::new();
        (n.name, n.op_type, n.output) = (output.into(), op.into(), vec![output.into()]);
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n
    };
    let quant = graph
        .node
        .iter()
        .position(|n| n.op_type == "Quant")
        .unwrap();
    graph.node[quant].input[0] = "x".into();
    for a in graph.node[quant]
        .attribute
        .iter_mut()
        .filter(|a| a.name == "signed")
    {
        a.i = 1;
    }
    graph
        .node
        .insert(quant, op("Add", ["x_scaled", "x_shift"], "x"));
    graph
        .node
        .insert(quant, op("Mul", ["pixels", "x_scale"], "x_scaled"));
    let path = root().join("target/bql-tests/qonnx-export/cnv-input.onnx");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    let imported = bql_interop::onnx::import(&path, (28, 28, 1))
        .unwrap()
        .network;
    let cnv = bql_interop::bnn_pynq::fixed_input_table(8).unwrap();
    assert_eq!(imported.input.encoding, InputEncoding::Table(cnv));
    let Some(python) = qonnx_python() else { return };
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let images = root().join("data/slice/mnist/t10k-images-idx3-ubyte.gz");
    let pixels = &data.pixels[..100 * data.image_len()];
    let name = "CNV-style input";
    assert_runner_agrees(
        &python,
        "qonnx-run.py",
        &path,
        &imported,
        name,
        &images,
        pixels,
    );
}

/// Convolutional models export and import back to the same layers, in both flavours: the
/// shipped CNN and random CNNs (strides, same padding with either pad bit, pooling, 1 or 3
/// channels, binary, 8-bit and table input).
#[test]
fn cnns_round_trip_through_both_flavours() {
    let dir = root().join("target/bql-tests/onnx-round-trip");
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let mut nets = vec![("mnist-cnn".to_string(), shipped)];
    for seed in 0..24u64 {
        let mut net = random_cnn(seed);
        if seed % 3 == 0 && net.input.encoding == InputEncoding::U8 {
            net.input.encoding =
                InputEncoding::Table(PixelTable(std::array::from_fn(|p| p as i16 - 100)));
        }
        nets.push((format!("random-cnn-{seed}"), net));
    }
    for (name, net) in &nets {
        for flavour in [Flavour::Standard, Flavour::Qonnx] {
            let path = dir.join(format!("{name}-{flavour:?}.onnx"));
            std::fs::write(&path, onnx_export::export_as(net, flavour).unwrap()).unwrap();
            let s = net.input.shape();
            let back = bql_interop::onnx::import(&path, (s.height, s.width, s.channels))
                .unwrap_or_else(|e| panic!("{name} {flavour:?}: {e}"));
            assert_eq!(back.network.input, net.input, "{name} {flavour:?}");
            assert_eq!(back.network.layers, net.layers, "{name} {flavour:?}");
        }
    }
}

/// A graph that flattens its `NCHW` map directly, as Brevitas CNNs do (order `(c, y, x)`): the
/// importer permutes the dense weights into bql's `(y, x, c)` order. The edited graph is checked
/// in onnxruntime first, so the expectation is the graph's, not the importer's.
#[test]
fn an_nchw_flatten_is_permuted_into_bql_order() {
    use onnx_protobuf::ModelProto;
    use protobuf::Message;
    let net = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let mut model = ModelProto::parse_from_bytes(&onnx_export::export(&net).unwrap()).unwrap();
    let (flat, map) = net
        .layers
        .iter()
        .enumerate()
        .find_map(|(l, layer)| match layer {
            bql_model::layers::Layer::Flatten(f) => Some((l, f.input)),
            _ => None,
        })
        .unwrap();
    let graph = model.graph.as_mut().unwrap();
    let t = graph
        .node
        .iter()
        .position(|n| n.output[0] == format!("layer{flat}_nhwc"))
        .unwrap();
    let removed = graph.node.remove(t);
    for n in graph
        .node
        .iter_mut()
        .filter(|n| n.input.first() == Some(&removed.output[0]))
    {
        n.input[0] = removed.input[0].clone();
    }
    let name = format!("layer{}_weights", flat + 1);
    let w = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap();
    let cols = w.dims[1] as usize;
    let (h, wd, c) = (map.height, map.width, map.channels);
    let mut permuted = vec![0f32; w.float_data.len()];
    for (y, x, ch) in
        (0..h).flat_map(|y| (0..wd).flat_map(move |x| (0..c).map(move |ch| (y, x, ch))))
    {
        let (bql_row, chw_row) = ((y * wd + x) * c + ch, (ch * h + y) * wd + x);
        permuted[chw_row * cols..(chw_row + 1) * cols]
            .copy_from_slice(&w.float_data[bql_row * cols..(bql_row + 1) * cols]);
    }
    w.float_data = permuted;
    let path = root().join("target/bql-tests/onnx-export/mnist-cnn-nchw-flatten.onnx");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    if let Some(python) = python() {
        let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
        let images = root().join("data/slice/mnist/t10k-images-idx3-ubyte.gz");
        assert_runner_agrees(
            &python,
            "onnx-run.py",
            &path,
            &net,
            "nchw flatten",
            &images,
            &data.pixels,
        );
    }
    let back = bql_interop::onnx::import(&path, (28, 28, 1)).unwrap();
    assert_eq!(back.network.layers, net.layers);
}

/// ONNX's own zero padding has no binary value: a binary `Conv` with `pads` is refused by name,
/// as is a `MaxPool` with a stride other than its window.
#[test]
fn convolutions_bql_cannot_express_are_refused_by_node() {
    use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, ModelProto};
    use protobuf::Message;
    let net = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let exported = onnx_export::export(&net).unwrap();
    let dir = root().join("target/bql-tests/onnx-export");
    std::fs::create_dir_all(&dir).unwrap();
    let edits: [(&str, &str, Vec<i64>, &str); 2] = [
        ("Conv", "pads", vec![1, 1, 1, 1], "pads with 0"),
        ("MaxPool", "strides", vec![1, 1], "strides [1, 1]"),
    ];
    for (op, attr, value, message) in edits {
        let mut model = ModelProto::parse_from_bytes(&exported).unwrap();
        let graph = model.graph.as_mut().unwrap();
        let node = graph
            .node
            .iter_mut()
            .filter(|n| n.op_type == op)
            .nth(1)
            .unwrap();
        node.attribute.retain(|a| a.name != attr);
        let mut a = AttributeProto::new();
        (a.name, a.ints) = (attr.into(), value);
        a.type_ = AttributeType::INTS.into();
        node.attribute.push(a);
        let node_name = node.name.clone();
        let path = dir.join(format!("refused-{op}.onnx"));
        std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
        let e = bql_interop::onnx::import(&path, (28, 28, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&node_name) && e.contains(message), "{op}: {e}");
    }
}
