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
    bytes[8] = 3;
    assert_eq!(kind_of(&bytes), ErrorKind::UnknownVersion);
    let msg = from_bytes(&bytes).unwrap_err().to_string();
    assert!(msg.contains("version 3"), "{msg}");
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

// ---- Version 2: convolutional networks -------------------------------------------------------

/// A random CNN with placeholder float parameters on every layer (they only exercise the file).
fn cnn_with_float(seed: u64) -> bql_model::Network {
    use bql_model::semantics::BatchNorm;
    use bql_model::FloatLayer;
    let mut net = bql_model::testing::random_cnn(seed);
    let bn = BatchNorm {
        gamma: 1.5,
        beta: -0.25,
        mean: 3.0,
        var: 2.0,
        eps: 1e-4,
    };
    net.float = Some(
        net.layers
            .iter()
            .map(|l| match (l.thresholds(), l.is_scores()) {
                (Some(t), _) => FloatLayer::BatchNorm(vec![bn; t.len()]),
                (None, true) => FloatLayer::Scale(0.5),
                (None, false) => FloatLayer::None,
            })
            .collect(),
    );
    net.validate().unwrap();
    net
}

/// The index of the first layer of `kind` in a saved manifest.
fn first(bytes: &[u8], kind: &str) -> usize {
    let mlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let m: serde_json::Value = serde_json::from_slice(&bytes[16..16 + mlen]).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["kind"] == kind)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cnns_round_trip(seed in any::<u64>(), float in any::<bool>()) {
        let net = if float { cnn_with_float(seed) } else { bql_model::testing::random_cnn(seed) };
        let bytes = to_bytes(&net).unwrap();
        prop_assert_eq!(from_bytes(&bytes).unwrap(), net);
    }

    #[test]
    fn corrupted_cnn_files_never_panic(seed in any::<u64>(), pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let bytes = to_bytes(&cnn_with_float(seed)).unwrap();
        let mut flipped = bytes.clone();
        flipped[pos.index(bytes.len())] = byte;
        let _ = from_bytes(&flipped);
        prop_assert!(from_bytes(&bytes[..cut.index(bytes.len())]).is_err());
    }
}

#[test]
fn version_1_files_still_load() {
    // models/default.bqm was written by format version 1.
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/default.bqm"
    ))
    .unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let net = from_bytes(&bytes).unwrap();
    assert_eq!(net.arch_string(), "784-256-256-256-10");
    // Written again, it is version 2 and loads to the same network.
    let again = to_bytes(&net).unwrap();
    assert_eq!(u32::from_le_bytes(again[8..12].try_into().unwrap()), 2);
    assert_eq!(from_bytes(&again).unwrap(), net);
}

#[test]
fn a_version_1_file_cannot_hold_a_convolution() {
    let mut bytes = to_bytes(&bql_model::testing::random_cnn(3)).unwrap();
    bytes[8] = 1;
    assert_eq!(kind_of(&bytes), ErrorKind::BadFormat);
    assert!(from_bytes(&bytes)
        .unwrap_err()
        .to_string()
        .contains("version 1"));
}

#[test]
fn inconsistent_cnn_files_are_refused() {
    let bytes = to_bytes(&bql_model::testing::random_cnn(11)).unwrap();
    let conv = first(&bytes, "conv2d");
    // A kernel larger than the image (with valid padding), keeping the weight size consistent
    // is impossible, so any of the shape or size checks may answer; never a panic or a load.
    let bad = with_manifest(&bytes, |m| {
        m["layers"][conv]["kernel"] = 99.into();
        m["layers"][conv]["padding"] = "valid".into();
        m["layers"][conv]["pad_bit"] = serde_json::Value::Null;
    });
    assert_eq!(kind_of(&bad), ErrorKind::ShapeMismatch);
    // The shape chain breaks: the flatten claims another map than the one it receives.
    let flatten = first(&bytes, "flatten");
    let bad = with_manifest(&bytes, |m| {
        let c = m["layers"][flatten]["input_shape"][2].as_u64().unwrap();
        m["layers"][flatten]["input_shape"][2] = (c + 1).into();
    });
    assert_eq!(kind_of(&bad), ErrorKind::ShapeMismatch);
    let msg = from_bytes(&bad).unwrap_err().to_string();
    assert!(msg.contains("flatten") && msg.contains("receives"), "{msg}");
    // Unknown padding, a pad bit of 2, a missing kernel: format errors naming the layer.
    for edit in [
        |m: &mut serde_json::Value, l: usize| m["layers"][l]["padding"] = "full".into(),
        |m: &mut serde_json::Value, l: usize| {
            m["layers"][l]["padding"] = "same".into();
            m["layers"][l]["pad_bit"] = 2.into();
        },
        |m: &mut serde_json::Value, l: usize| m["layers"][l]["kernel"] = serde_json::Value::Null,
    ] {
        let bad = with_manifest(&bytes, |m| edit(m, conv));
        assert_eq!(kind_of(&bad), ErrorKind::BadFormat);
        assert!(from_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains(&format!("layer {conv}")));
    }
    // A truncated payload.
    assert_eq!(kind_of(&bytes[..bytes.len() - 1]), ErrorKind::Truncated);
}

#[test]
fn pixel_tables_round_trip_and_bad_tables_are_refused() {
    use bql_model::{InputEncoding, PixelTable};
    let mut net = random_network(7, &[5, 3], true, 1, 1, false);
    let table: [i16; 256] = std::array::from_fn(|p| p as i16 - 128);
    net.input.encoding = InputEncoding::Table(PixelTable(table));
    let bytes = to_bytes(&net).unwrap();
    assert_eq!(from_bytes(&bytes).unwrap(), net);
    let short = with_manifest(&bytes, |m| {
        m["input"]["table"].as_array_mut().unwrap().pop();
    });
    assert_eq!(kind_of(&short), ErrorKind::BadFormat);
    let missing = with_manifest(&bytes, |m| {
        m["input"].as_object_mut().unwrap().remove("table");
    });
    assert_eq!(kind_of(&missing), ErrorKind::BadFormat);
    let too_big = with_manifest(&bytes, |m| m["input"]["table"][3] = 256.into());
    assert_eq!(kind_of(&too_big), ErrorKind::InvalidArgument);
    let not_i16 = with_manifest(&bytes, |m| m["input"]["table"][3] = 70000.into());
    assert_eq!(kind_of(&not_i16), ErrorKind::BadFormat);
}
