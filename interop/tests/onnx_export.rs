//! Exported models in onnxruntime: the onnx checker accepts them, and on every image of the
//! MNIST slice the class and every score equal bql's reference. Needs numpy, onnx and
//! onnxruntime in `.venv` (`make deps`); says SKIPPED otherwise.

use std::path::PathBuf;

use bql_interop::{onnx_export, ErrorKind};
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Option<PathBuf> {
    let python = root().join(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import numpy, onnx, onnxruntime"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: numpy, onnx and onnxruntime are not in .venv; run `make deps`");
    }
    ok.then_some(python)
}

#[test]
fn onnxruntime_agrees_with_bql_on_every_image_and_score() {
    let Some(python) = python() else { return };
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let images = root().join("data/slice/mnist/t10k-images-idx3-ubyte.gz");
    let dir = root().join("target/bql-tests/onnx-export");
    std::fs::create_dir_all(&dir).unwrap();
    for model in ["default.bqm", "mnist-u8.bqm", "small.bqm"] {
        let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
        let path = dir.join(model.replace(".bqm", ".onnx"));
        std::fs::write(&path, onnx_export::export(&net).unwrap()).unwrap();
        let out = std::process::Command::new(&python)
            .arg(root().join("scripts/onnx-run.py"))
            .arg(&path)
            .arg(&images)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (scores, classes) = Engine::new(&net).scores_batch(&data.pixels);
        let k = net.classes();
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(lines.len(), data.len(), "{model}");
        for (i, line) in lines.iter().enumerate() {
            let mut fields = line.split_whitespace().map(|v| v.parse::<i64>().unwrap());
            let class = fields.next().unwrap() as usize;
            let theirs: Vec<i64> = fields.collect();
            let ours: Vec<i64> = scores[i * k..(i + 1) * k]
                .iter()
                .map(|&s| i64::from(s))
                .collect();
            assert_eq!((class, &theirs), (classes[i], &ours), "{model}, image {i}");
        }
    }
}

#[test]
fn convolutional_models_are_refused_for_now() {
    let net = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let e = onnx_export::export(&net).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("convolutional"), "{e}");
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
