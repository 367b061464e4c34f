//! The CIFAR-10 binary format: records, channel interleaving, and clear errors.

use bql_model::dataset::{is_cifar10_dir, Dataset, Split};
use bql_model::ErrorKind;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bql-cifar-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A record whose red plane counts up, green is 100 + index % 100, blue 255 - index % 256.
fn record(label: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..1024).map(|p| (p % 256) as u8));
    r.extend((0..1024).map(|p| (100 + p % 100) as u8));
    r.extend((0..1024).map(|p| (255 - p % 256) as u8));
    r
}

#[test]
fn planes_become_interleaved_pixels() {
    let d = tmp("planes");
    let bytes: Vec<u8> = [3u8, 9].iter().flat_map(|&l| record(l)).collect();
    std::fs::write(d.join("test_batch.bin"), &bytes).unwrap();
    std::fs::write(d.join("data_batch_2.bin"), record(1)).unwrap();
    assert!(is_cifar10_dir(&d));
    let test = Dataset::load_cifar10(&d, Split::Test).unwrap();
    assert_eq!(
        (test.height, test.width, test.channels, test.len()),
        (32, 32, 3, 2)
    );
    assert_eq!(test.labels, [3, 9]);
    let image = test.image(1);
    for p in [0usize, 1, 33, 1023] {
        let want = [
            (p % 256) as u8,
            (100 + p % 100) as u8,
            (255 - p % 256) as u8,
        ];
        assert_eq!(&image[p * 3..p * 3 + 3], &want, "pixel {p}");
    }
    let train = Dataset::load_cifar10(&d, Split::Train).unwrap();
    assert_eq!(train.labels, [1]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_files_are_refused_clearly() {
    let d = tmp("bad");
    let e = Dataset::load_cifar10(&d, Split::Test).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Dataset);
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
    let mut bytes = record(2);
    bytes.pop();
    std::fs::write(d.join("test_batch.bin"), &bytes).unwrap();
    let e = Dataset::load_cifar10(&d, Split::Test).unwrap_err();
    assert!(e.to_string().contains("3073-byte"), "{e}");
    std::fs::write(d.join("test_batch.bin"), record(10)).unwrap();
    let e = Dataset::load_cifar10(&d, Split::Test).unwrap_err();
    assert!(e.to_string().contains("label 10"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_shared_jpeg_copy_loads() {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/cifar10-jpeg-test-1k"
    ));
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} is absent (a user's clone has no ../shared; see the README's Data section)",
            dir.display()
        );
        return;
    }
    let d = Dataset::load_cifar10(dir, Split::Test).unwrap();
    assert_eq!(d.len(), 1000);
    for class in 0..10u8 {
        assert_eq!(
            d.labels.iter().filter(|&&l| l == class).count(),
            100,
            "class {class}"
        );
    }
}
