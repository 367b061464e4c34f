//! The FINN-ONNX importer on FINN's TFC-W1A1 (`../shared/third-party/finn`; SKIPPED with a
//! message when absent) and on damaged or foreign files.

use std::path::PathBuf;

use bql_interop::{onnx, ErrorKind};
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tfc() -> Option<PathBuf> {
    let dir = root().join("../shared/third-party/finn/tutorials/fpga_flow");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (FINN's TFC-W1A1; see README, \"Data and credits\")",
            dir.display()
        );
        None
    }
}

/// A little-endian `.npy` array's payload (version 1 header), as raw bytes.
fn npy_payload(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..].to_vec()
}

#[test]
fn tfc_imports_and_classifies_finns_sample_and_the_mnist_slice() {
    let Some(dir) = tfc() else { return };
    let imported = onnx::import(&dir.join("model.onnx"), (28, 28, 1)).unwrap();
    let net = &imported.network;
    assert_eq!(net.arch_string(), "784-64-64-64-10");
    // FINN's sample: one image as float32 pixels 0..=255, expected class 2 (int64).
    let pixels: Vec<u8> = npy_payload(&dir.join("input.npy"))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as u8)
        .collect();
    let expected = i64::from_le_bytes(
        npy_payload(&dir.join("expected_output.npy"))[..8]
            .try_into()
            .unwrap(),
    );
    let engine = Engine::new(net);
    assert_eq!(engine.predict(&pixels).class as i64, expected);
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let (_, predicted) = engine.scores_batch(&data.pixels);
    let right = data.count_correct(&predicted);
    eprintln!(
        "TFC-W1A1 on the MNIST slice: {right} of {} ({} rounding-sensitive neurons)",
        data.len(),
        imported.rounding_sensitive
    );
    assert!(right * 100 >= data.len() * 90, "{right}");
}

#[test]
fn foreign_and_damaged_files_are_refused() {
    let Some(dir) = tfc() else { return };
    let tmp = root().join("target/bql-tests/onnx-damaged");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    // Not ONNX at all.
    let not_onnx = tmp.join("not.onnx");
    std::fs::write(&not_onnx, b"this is not a protobuf \xff\xff\xff").unwrap();
    let e = onnx::import(&not_onnx, (28, 28, 1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    assert!(e.to_string().contains("not an ONNX model"), "{e}");
    // Truncated.
    let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
    let cut = tmp.join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(onnx::import(&cut, (28, 28, 1)).is_err());
    // The wrong image size for the first MatMul.
    let e = onnx::import(&dir.join("model.onnx"), (32, 32, 3)).unwrap_err();
    assert!(
        e.to_string().contains("MatMul_0") && e.to_string().contains("3072"),
        "{e}"
    );
}

/// bql's import against an independent execution of the same graph (numpy, float32, node by
/// node: scripts/onnx-numpy.py, in the `.venv` that `make deps` fills): the same class for
/// every image of the MNIST slice.
#[test]
fn the_import_agrees_with_an_independent_float32_execution_on_every_image() {
    let Some(dir) = tfc() else { return };
    let python = root().join(".venv/bin/python");
    let probe = std::process::Command::new(&python)
        .args(["-c", "import numpy, onnx"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: numpy and onnx are not in .venv; run `make deps`");
        return;
    }
    let model = dir.join("model.onnx");
    let images = root().join("data/slice/mnist/t10k-images-idx3-ubyte.gz");
    let out = std::process::Command::new(&python)
        .arg(root().join("scripts/onnx-numpy.py"))
        .arg(&model)
        .arg(&images)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let net = onnx::import(&model, (28, 28, 1)).unwrap().network;
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let (_, ours) = Engine::new(&net).scores_batch(&data.pixels);
    assert_eq!(theirs.len(), data.len());
    let differ: Vec<usize> = (0..data.len()).filter(|&i| theirs[i] != ours[i]).collect();
    assert!(
        differ.is_empty(),
        "images where bql and the graph differ: {differ:?}"
    );
}

mod corrupted {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Damaged copies of TFC (bytes overwritten, the file cut short): an error or a valid
        /// network, never a panic.
        #[test]
        fn corrupted_onnx_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let Some(dir) = tfc() else { return Ok(()) };
            let mut bytes = std::fs::read(dir.join("model.onnx")).unwrap();
            for (at, v) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            let path = root().join(format!("target/bql-tests/onnx-fuzz-{}.onnx", std::process::id()));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(imported) = onnx::import(&path, (28, 28, 1)) {
                prop_assert!(imported.network.validate().is_ok());
            }
        }
    }
}
