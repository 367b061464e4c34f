//! Model files: round trips, and a clear error (never a panic) for every kind of bad file.

mod common;

use bql_model::format::{from_bytes, to_bytes};
use bql_model::layers::{DenseOutput, Layer};
use bql_model::ErrorKind;
use common::{arb_network, random_network};
use proptest::prelude::*;

fn sample() -> bql_model::Network {
    random_network(70, &[33, 10], false, 100, 7, true)
}

/// Rewrites the manifest of a valid file with `edit`, keeping the payload.
fn with_manifest(bytes: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut m: serde_json::Value = serde_json::from_slice(&bytes[16..16 + mlen]).unwrap();
    edit(&mut m);
    let json = serde_json::to_vec(&m).unwrap();
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[16 + mlen..]);
    out
}

fn kind_of(bytes: &[u8]) -> ErrorKind {
    from_bytes(bytes)
        .expect_err("a bad file must be rejected")
        .kind()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn save_load_round_trips(net in arb_network()) {
        let bytes = to_bytes(&net).unwrap();
        let back = from_bytes(&bytes).unwrap();
        prop_assert_eq!(back, net);
    }

    /// Any corruption of a valid file either loads (a byte that does not matter) or gives an
    /// error; it never panics. Weight bytes are covered by the CRC.
    #[test]
    fn corrupted_files_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let bytes = to_bytes(&sample()).unwrap();
        let mut flipped = bytes.clone();
        let i = pos.index(bytes.len());
        flipped[i] = byte;
        let _ = from_bytes(&flipped);
        let _ = from_bytes(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn garbage_is_rejected(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert!(from_bytes(&data).is_err());
    }
}

#[test]
fn payload_corruption_is_caught_by_the_crc() {
    let mut bytes = to_bytes(&sample()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // a weight bit of the last row, not a padding bit
    let kind = kind_of(&bytes);
    assert!(
        kind == ErrorKind::Checksum || kind == ErrorKind::ShapeMismatch,
        "{kind:?}"
    );
}

#[test]
fn unknown_version() {
    let mut bytes = to_bytes(&sample()).unwrap();
    bytes[8] = 2;
    assert_eq!(kind_of(&bytes), ErrorKind::UnknownVersion);
    let msg = from_bytes(&bytes).unwrap_err().to_string();
    assert!(msg.contains("version 2"), "{msg}");
}

#[test]
fn not_a_model_file() {
    assert_eq!(kind_of(b""), ErrorKind::BadFormat);
    assert_eq!(
        kind_of(b"{\"format\": \"bql-model\"}"),
        ErrorKind::BadFormat
    );
    assert_eq!(kind_of(&[0xff; 64]), ErrorKind::BadFormat);
}

#[test]
fn manifest_not_utf8_or_not_json() {
    let good = to_bytes(&sample()).unwrap();
    let mut bytes = good.clone();
    bytes[17] = 0xff; // inside the manifest
    assert_eq!(kind_of(&bytes), ErrorKind::BadFormat);
    assert!(from_bytes(&bytes)
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
    let mut bytes = good;
    bytes[16] = b'x';
    assert_eq!(kind_of(&bytes), ErrorKind::BadFormat);
}

#[test]
fn truncated_and_oversized() {
    let bytes = to_bytes(&sample()).unwrap();
    assert_eq!(kind_of(&bytes[..bytes.len() - 8]), ErrorKind::Truncated);
    assert_eq!(kind_of(&bytes[..20]), ErrorKind::Truncated);
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 8]);
    assert_eq!(kind_of(&longer), ErrorKind::Oversized);
}

#[test]
fn shape_mismatch_between_layers() {
    let bytes = to_bytes(&sample()).unwrap();
    // Layer 1 claims 34 inputs while layer 0 has 33 outputs; its weight size stays consistent.
    let bad = with_manifest(&bytes, |m| {
        m["layers"][1]["inputs"] = 34.into();
    });
    assert_eq!(kind_of(&bad), ErrorKind::ShapeMismatch);
    // The declared weight byte count disagrees with the shape.
    let bad = with_manifest(&bytes, |m| {
        m["layers"][0]["weights_bytes"] = 8.into();
    });
    assert_eq!(kind_of(&bad), ErrorKind::ShapeMismatch);
    // Fewer thresholds than neurons.
    let bad = with_manifest(&bytes, |m| {
        m["layers"][0]["thresholds"].as_array_mut().unwrap().pop();
    });
    assert_eq!(kind_of(&bad), ErrorKind::ShapeMismatch);
}

#[test]
fn threshold_out_of_range() {
    let net = sample();
    let bytes = to_bytes(&net).unwrap();
    let Some(Layer::Dense(d)) = net.layers.first() else {
        panic!()
    };
    assert!(matches!(d.output, DenseOutput::Threshold(_)));
    // 70 binary inputs: legal thresholds are 0..=71.
    for bad_value in [-1i64, 72] {
        let bad = with_manifest(&bytes, |m| {
            m["layers"][0]["thresholds"][5] = bad_value.into();
        });
        assert_eq!(kind_of(&bad), ErrorKind::ThresholdOutOfRange);
        let msg = from_bytes(&bad).unwrap_err().to_string();
        assert!(msg.contains("neuron 5") && msg.contains("0..=71"), "{msg}");
    }
    for ok_value in [0i64, 71] {
        let ok = with_manifest(&bytes, |m| {
            m["layers"][0]["thresholds"][5] = ok_value.into();
        });
        assert!(from_bytes(&ok).is_ok());
    }
}

#[test]
fn errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("bql-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("broken.bqm");
    std::fs::write(&p, b"BQLMODEL\x01\x00\x00\x00\xff\xff\x00\x00").unwrap();
    let e = bql_model::format::load(&p).unwrap_err();
    assert!(e.to_string().contains("broken.bqm"), "{e}");
    let e = bql_model::format::load(&dir.join("missing.bqm")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    std::fs::remove_dir_all(&dir).ok();
}
