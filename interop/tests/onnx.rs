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
