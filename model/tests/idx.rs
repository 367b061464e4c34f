//! IDX reading: the committed MNIST slice, and clear errors for broken files.

use std::path::PathBuf;

use bql_model::dataset::{Dataset, Split};
use bql_model::idx::{encode, parse};
use bql_model::ErrorKind;

fn slice_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/slice/mnist")
}

#[test]
fn reads_the_committed_slice() {
    let train = Dataset::load_dir(&slice_dir(), Split::Train).unwrap();
    let test = Dataset::load_dir(&slice_dir(), Split::Test).unwrap();
    assert_eq!((train.len(), train.height, train.width), (1000, 28, 28));
    assert_eq!(test.len(), 1000);
    // The first MNIST labels, known from the original files.
    assert_eq!(&train.labels[..8], &[5, 0, 4, 1, 9, 2, 1, 3]);
    assert_eq!(&test.labels[..8], &[7, 2, 1, 0, 4, 1, 4, 9]);
    assert!(train.labels.iter().all(|&l| l < 10));
    // Every digit occurs; pixels use the full 0..=255 range.
    for d in 0..10 {
        assert!(test.labels.contains(&d));
    }
    assert_eq!(test.pixels.iter().max(), Some(&255));
}

#[test]
fn parse_errors_are_clear() {
    let good = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(parse(&good, "x").unwrap().dims, vec![2, 3]);
    let mut magic = good.clone();
    magic[0] = 7;
    let e = parse(&magic, "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadFormat);
    assert!(e.to_string().contains("magic"));
    let e = parse(&good[..good.len() - 1], "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Truncated);
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(
        parse(&good[..6], "x").unwrap_err().kind(),
        ErrorKind::Truncated
    );
    assert_eq!(
        parse(&[0, 0], "x").unwrap_err().kind(),
        ErrorKind::Truncated
    );
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        parse(&longer, "x").unwrap_err().kind(),
        ErrorKind::Oversized
    );
}

#[test]
fn image_and_label_counts_must_agree() {
    let images = parse(&encode(&[3, 2, 2], &[0; 12]), "i").unwrap();
    let labels = parse(&encode(&[2], &[0, 1]), "l").unwrap();
    let e = Dataset::from_idx(images, labels, "set").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Dataset);
    assert!(e.to_string().contains("3 images but 2 labels"), "{e}");
}

#[test]
fn truncated_gzip_is_an_error() {
    let dir = std::env::temp_dir().join(format!("bql-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full = std::fs::read(slice_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let p = dir.join("cut.gz");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let e = bql_model::idx::read(&p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Truncated);
    let e = Dataset::load_dir(&dir, Split::Test).unwrap_err();
    assert!(e.to_string().contains("bql data fetch"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
