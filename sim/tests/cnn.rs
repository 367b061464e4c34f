//! Convolutional networks in hardware, cycle by cycle in Verilator: random CNN shapes with
//! random folds and many weight sets, and the shipped MNIST CNN on the committed slice, give
//! exactly the reference's scores and classes.

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_hdl_gen::plan::{ConvPlan, Plan};
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;
use bql_model::testing::{random_cnn, random_pixels, reweight};
use bql_model::Network;
use bql_sim::harness::config_writes;

#[path = "../../model/tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The window edge cases a plan's convolutions exercise.
#[derive(Default, Debug)]
struct Edges {
    /// Windows that reach above or left of the map (padded first rows and columns).
    before: usize,
    /// Windows that reach below or right of the map (padded last rows and columns).
    after: usize,
    /// Pools that drop a last row or column.
    dropped: usize,
    /// Strides above 1.
    strided: usize,
    /// Several words per pixel (S below the channels).
    split_pixels: usize,
    /// First convolutions on 8-bit pixels.
    pixel_inputs: usize,
    /// Pools keeping their pooled row in block RAM, and in flip-flops.
    ram_rings: usize,
    register_rings: usize,
}

impl Edges {
    fn count(&mut self, plan: &Plan) {
        for l in &plan.layers {
            let Some(c): Option<&ConvPlan> = l.conv.as_ref() else {
                continue;
            };
            let reach = |out: usize| (out - 1) * c.stride + c.kernel;
            self.before += usize::from(c.pad_top > 0 || c.pad_left > 0);
            self.after += usize::from(
                reach(c.output.height) > c.input.height + c.pad_top
                    || reach(c.output.width) > c.input.width + c.pad_left,
            );
            self.dropped += usize::from(
                c.pool
                    .is_some_and(|k| c.output.height % k != 0 || c.output.width % k != 0),
            );
            self.strided += usize::from(c.stride > 1);
            self.split_pixels += usize::from(l.simd < c.input.channels);
            self.pixel_inputs += usize::from(l.pixel_input);
            if let Some(k) = c.pool {
                if bql_hdl_gen::blocks::pool::ring_in_ram(c.output, l.pe, k) {
                    self.ram_rings += 1;
                } else {
                    self.register_rings += 1;
                }
            }
        }
    }
}

/// Runs `images` random images of `net` through `built` and compares every score.
fn compare(
    net: &Network,
    design: &bql_hdl_gen::Design,
    built: &bql_sim::verilator::Built,
    dir: &std::path::Path,
    pixels: &[u8],
    what: &str,
) {
    let len = net.input.len();
    let images = pixels.len() / len;
    let writes = config_writes(net, &design.plan, true);
    let max = (design.plan.cycles_per_inference as u64 + 1000) * (images as u64 + 10);
    let job = bql_sim::verilator::Job {
        writes: &writes,
        pixels,
        image_len: len,
        max_cycles: max,
    };
    let batch = bql_sim::verilator::run(built, job, dir).unwrap();
    let engine = Engine::new(net);
    assert_eq!(batch.results.len(), images, "{what}: results");
    for (i, r) in batch.results.iter().enumerate() {
        let want = engine.predict(&pixels[i * len..(i + 1) * len]);
        assert_eq!(r.scores, want.scores, "{what} image {i}");
        assert_eq!(r.class, want.class, "{what} image {i}");
    }
}

/// A random CNN shape to simulate: its first weight set, folding and design, and the generator
/// its weight sets continue from.
struct RandomCnn {
    seed: u64,
    first: Network,
    folds: Vec<(usize, usize, usize)>,
    design: bql_hdl_gen::Design,
    rng: common::Rng,
}

/// Random CNN shapes (inputs 3-20 rows and columns with 1 or 3 channels, binary or 8-bit; 1-3
/// convolutions with kernels 1-5, strides 1-2, valid or same padding with either pad bit, 1-70
/// channels, maybe pooled; dense layers after the flatten), each with a random folding:
/// twelve, then further seeds only until two pools with their row in block RAM (wide maps, many
/// channels: rarer among small random shapes) are among them. Generated, not simulated: the same
/// every call.
fn random_cnns() -> Vec<RandomCnn> {
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let mut chosen = Vec::new();
    let mut ram_rings = 0;
    for seed in 0..500u64 {
        if chosen.len() >= 12 && ram_rings >= 2 {
            break;
        }
        let first = random_cnn(0xc0ff_ee00 + seed);
        let mut rng = common::Rng(77 + seed);
        let folds = common::random_cnn_folds(&first, &mut rng, 12, 40);
        let design = bql_hdl_gen::generate(&first, &b, &folds).unwrap_or_else(|e| {
            panic!(
                "shape {seed} ({}), folds {folds:?}: {e}",
                first.arch_string()
            )
        });
        let mut these = Edges::default();
        these.count(&design.plan);
        if chosen.len() >= 12 && these.ram_rings == 0 {
            continue;
        }
        ram_rings += these.ram_rings;
        chosen.push(RandomCnn {
            seed,
            first,
            folds,
            design,
            rng,
        });
    }
    chosen
}

/// The random CNN shapes exercise every window edge case (checked on their plans; the part
/// tests below simulate them).
#[test]
fn random_cnns_exercise_every_window_edge_case() {
    let mut edges = Edges::default();
    for shape in random_cnns() {
        edges.count(&shape.design.plan);
    }
    assert!(
        edges.before >= 2
            && edges.after >= 2
            && edges.dropped >= 1
            && edges.strided >= 1
            && edges.split_pixels >= 1
            && edges.pixel_inputs >= 2
            && edges.pixel_inputs <= 10
            && edges.ram_rings >= 2
            && edges.register_rings >= 1,
        "window edge cases exercised: {edges:?}"
    );
}

/// The random CNNs are simulated in this many parts (tests that run in parallel).
const PARTS: usize = 4;

/// Simulates every `PARTS`-th random CNN from `part`: each built once; five weight sets per
/// shape are then loaded through the run-time write port, each with its thresholds on the
/// boundary of the first image at a random output position.
fn random_cnns_part(part: usize) {
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    for shape in random_cnns().into_iter().skip(part).step_by(PARTS) {
        let (seed, first, folds) = (shape.seed, shape.first, shape.folds);
        let (design, mut rng) = (shape.design, shape.rng);
        let dir = std::env::temp_dir().join(format!("bql-cnn-{}-{seed}", std::process::id()));
        design.write(&dir).unwrap();
        let built = bql_sim::verilator::build(&tool, &design, &dir, first.classes()).unwrap();
        for set in 0..5u64 {
            let mut net = first.clone();
            reweight(&mut net, rng.next_u64());
            let len = net.input.len();
            let pixels = random_pixels(rng.next_u64(), 3, len);
            common::cnn_thresholds_on_the_boundary(&mut net, &pixels[..len], &mut rng);
            let what = format!(
                "shape {seed} ({}, folds {folds:?}) set {set}",
                net.arch_string()
            );
            compare(&net, &design, &built, &dir, &pixels, &what);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn random_cnns_with_many_weight_sets_match_the_reference_part_1() {
    random_cnns_part(0);
}

#[test]
fn random_cnns_with_many_weight_sets_match_the_reference_part_2() {
    random_cnns_part(1);
}

#[test]
fn random_cnns_with_many_weight_sets_match_the_reference_part_3() {
    random_cnns_part(2);
}

#[test]
fn random_cnns_with_many_weight_sets_match_the_reference_part_4() {
    random_cnns_part(3);
}

/// The shipped MNIST CNN as planned for the iCEBreaker (its big layers in SPRAM, loaded through
/// the write port) on 200 slice images: every score equal, and results at the planned interval.
#[test]
fn mnist_cnn_on_the_slice_matches_the_reference_on_icebreaker() {
    let net = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let mut data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    data.truncate(200);
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    let design = bql_hdl_gen::generate(&net, &b, &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-cnn-mnist-{}", std::process::id()));
    design.write(&dir).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let built = bql_sim::verilator::build(&tool, &design, &dir, net.classes()).unwrap();
    compare(&net, &design, &built, &dir, &data.pixels, "mnist-cnn");
    std::fs::remove_dir_all(&dir).ok();
}

/// A deliberately corrupted CNN design: one threshold of the first convolution moved to the end
/// of its range in the generated design, so that its channel never (or always) fires. The
/// simulation must disagree with the reference, and the localization must name the first layer
/// whose map the hardware hands on (the pool after that convolution), an output pixel, and that
/// channel, and write a waveform.
#[test]
fn a_corrupted_conv_threshold_is_localized_to_a_pixel_and_channel() {
    use bql_model::layers::Layer;
    use bql_model::reference::LayerOutput;
    let net = bql_model::format::load(&root().join("models/mnist-cnn.bqm")).unwrap();
    let mut data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    data.truncate(1);
    let channel = 5;
    // Flip the channel the opposite way to what its pooled output shows at most positions.
    let pooled = match &Engine::new(&net).trace(&data.pixels)[1] {
        LayerOutput::Bits(w) => w.clone(),
        LayerOutput::Scores(_) => unreachable!("a pool emits bits"),
    };
    let channels = 32;
    let positions = 12 * 12;
    let fired = (0..positions)
        .filter(|p| {
            (pooled[(p * channels + channel) / 64] >> ((p * channels + channel) % 64)) & 1 == 1
        })
        .count();
    let mut bad = net.clone();
    let Layer::Conv2d(c) = &mut bad.layers[0] else {
        unreachable!("mnist-cnn starts with a convolution")
    };
    let (lo, hi) = c.accumulator.threshold_range(c.window_len());
    c.thresholds[channel] = if fired * 2 > positions { hi } else { lo };
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    let design = bql_hdl_gen::generate(&bad, &b, &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-cnn-corrupt-{}", std::process::id()));
    design.write(&dir).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let writes = config_writes(&bad, &design.plan, false);
    let found = bql_sim::localize::localize(&tool, &net, &design, &dir, &writes, &data.pixels)
        .unwrap()
        .expect("a layer differs");
    assert_eq!(found.layer, 1, "{found:?}");
    let (y, x, c) = found.position.expect("a map position");
    assert_eq!(c, channel, "{found:?}");
    assert!(y < 12 && x < 12, "{found:?}");
    assert_eq!(found.neuron, (y * 12 + x) * channels + c);
    assert!(std::fs::metadata(&found.vcd).unwrap().len() > 1000);
    std::fs::remove_dir_all(&dir).ok();
}
