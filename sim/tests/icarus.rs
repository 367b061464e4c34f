//! The generated core, simulated by Icarus Verilog on real MNIST images, computes exactly the
//! reference's scores and classes.

use std::path::{Path, PathBuf};

use bql_hdl_gen::board;
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;
use bql_model::Network;
use proptest::prelude::*;

#[path = "../../model/tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Generates `net` for `board_id`, simulates `images` images with Icarus, and compares.
fn check(
    load_all: bool,
    net: &Network,
    board_id: &str,
    folds: &[(usize, usize, usize)],
    data: &Dataset,
    images: usize,
    dir: &Path,
) {
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate(net, &b, folds).unwrap();
    design.write(dir).unwrap();
    let writes = bql_sim::harness::config_writes(net, &design.plan, load_all);
    let n = data.image_len();
    let iverilog = bql_sim::tools::iverilog().expect("iverilog");
    let (results, seconds) = bql_sim::icarus::run(
        &iverilog,
        &design,
        dir,
        &writes,
        &data.pixels[..images * n],
        n,
        net.classes(),
    )
    .unwrap();
    // For the speed comparison with Verilator (docs/hardware.md): `cargo test -- --nocapture`.
    eprintln!(
        "icarus: {board_id}, {images} images after {} writes, {seconds:.2} s in vvp",
        writes.len()
    );
    let engine = Engine::new(net);
    for (i, (class, scores)) in results.iter().enumerate() {
        let want = engine.predict(data.image(i));
        assert_eq!(*scores, want.scores, "image {i} scores");
        assert_eq!(*class, want.class, "image {i} class");
    }
}

#[test]
fn default_model_on_mnist_images_matches_the_reference() {
    let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-icarus-{}", std::process::id()));
    // ULX3S: weights from the memory images in the bitstream.
    check(false, &net, "ulx3s", &[], &data, 6, &dir);
    // iCEBreaker: the two big layers live in SPRAM and are loaded through the write port.
    check(false, &net, "icebreaker", &[], &data, 3, &dir);
    std::fs::remove_dir_all(&dir).ok();
}

/// Three random CNNs (see `bql_model::testing::random_cnn`) with random folding: Icarus as a
/// second opinion on the convolution, window and pool logic.
#[test]
fn random_cnns_match_the_reference() {
    for seed in [3u64, 11, 29] {
        let mut net = bql_model::testing::random_cnn(seed);
        let mut rng = common::Rng(seed);
        let folds = common::random_cnn_folds(&net, &mut rng, 8, 32);
        let len = net.input.len();
        let images = 2;
        let pixels = common::random_pixels(seed, images, len);
        common::cnn_thresholds_on_the_boundary(&mut net, &pixels[..len], &mut rng);
        let data = Dataset {
            height: net.input.height,
            width: net.input.width,
            channels: net.input.channels,
            pixels,
            labels: vec![0; images],
        };
        let dir =
            std::env::temp_dir().join(format!("bql-icarus-cnn-{}-{seed}", std::process::id()));
        check(true, &net, "ulx3s", &folds, &data, images, &dir);
        std::fs::remove_dir_all(&dir).ok();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Random shapes (widths 1-300, 1-4 layers, binary or 8-bit input) with random folding and
    /// random pixels: every score of every image equals the reference.
    #[test]
    fn random_models_match_the_reference(net in common::arb_network(), seed in any::<u64>()) {
        let mut rng = common::Rng(seed);
        let folds = common::random_folds(&net, &mut rng, 12, 40);
        let len = net.input.len();
        let images = 3;
        let mut net = net;
        common::thresholds_on_the_boundary(&mut net, &common::random_pixels(seed, 1, len), &mut rng);
        let data = Dataset {
            height: 1,
            width: len,
            channels: 1,
            pixels: common::random_pixels(seed, images, len), // image 0 sits on every boundary
            labels: vec![0; images],
        };
        let dir = std::env::temp_dir().join(format!("bql-icarus-{}-{seed}", std::process::id()));
        // Every memory loaded through the write port, over the initial images.
        check(true, &net, "ulx3s", &folds, &data, images, &dir);
        std::fs::remove_dir_all(&dir).ok();
    }
}
