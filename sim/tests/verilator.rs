//! Verilator, cycle by cycle: the default design on the committed MNIST slice gives exactly the
//! reference's scores and classes, on a board with weights in the bitstream (ULX3S) and on one
//! with weights in SPRAM loaded through the write port (iCEBreaker).

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;
use bql_sim::harness::config_writes;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn slice_through(board_id: &str, images: usize) {
    let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
    let mut data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    data.truncate(images);
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate(&net, &b, &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-verilator-{}-{board_id}", std::process::id()));
    design.write(&dir).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let built = bql_sim::verilator::build(&tool, &design, &dir, net.classes()).unwrap();
    let writes = config_writes(&net, &design.plan, false);
    let max = (design.plan.cycles_per_inference as u64 + 1000) * (images as u64 + 10);
    let job = bql_sim::verilator::Job {
        writes: &writes,
        pixels: &data.pixels,
        image_len: data.image_len(),
        max_cycles: max,
    };
    let batch = bql_sim::verilator::run(&built, job, &dir).unwrap();
    let engine = Engine::new(&net);
    let (scores, classes) = engine.scores_batch(&data.pixels);
    for (i, r) in batch.results.iter().enumerate() {
        assert_eq!(
            r.scores,
            scores[i * 10..(i + 1) * 10],
            "{board_id}: image {i} scores"
        );
        assert_eq!(r.class, classes[i], "{board_id}: image {i} class");
    }
    // Back-to-back inputs: the interval between results is the planned steady state.
    let n = batch.results.len();
    let interval =
        (batch.results[n - 1].cycle - batch.results[n / 2].cycle) as f64 / (n - 1 - n / 2) as f64;
    let planned = design.plan.cycles_per_inference as f64;
    assert!(
        (interval - planned).abs() <= 0.05 * planned + 2.0,
        "{board_id}: measured interval {interval:.1} cycles, planned {planned}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn default_design_on_the_slice_matches_the_reference_on_ulx3s() {
    slice_through("ulx3s", 1000);
}

#[test]
fn default_design_with_spram_matches_the_reference_on_icebreaker() {
    slice_through("icebreaker", 200);
}

#[path = "../../model/tests/common/mod.rs"]
mod common;

/// One of the twenty random shapes (1-4 layers, widths 1-300, both input kinds, random
/// folding): its first weight set, folding and design, and the generator its weight sets
/// continue from.
struct RandomShape {
    index: usize,
    input: usize,
    widths: Vec<usize>,
    u8_input: bool,
    first: bql_model::Network,
    folds: Vec<(usize, usize, usize)>,
    design: bql_hdl_gen::Design,
    rng: common::Rng,
}

/// The twenty random shapes, generated (not simulated): the same every call.
fn random_shapes() -> Vec<RandomShape> {
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let mut shapes = common::Rng(0x5eed);
    (0..20)
        .map(|index| {
            let input = shapes.range(1, 300) as usize;
            let depth = shapes.range(1, 4) as usize;
            let widths: Vec<usize> = (0..depth).map(|_| shapes.range(1, 300) as usize).collect();
            let u8_input = shapes.next_u64() & 1 == 1;
            let mut rng = common::Rng(1000 + index as u64);
            let first =
                common::random_network(input, &widths, u8_input, 100, rng.next_u64(), false);
            let folds = common::random_folds(&first, &mut rng, 12, 80);
            let design = bql_hdl_gen::generate(&first, &b, &folds).unwrap();
            RandomShape {
                index,
                input,
                widths,
                u8_input,
                first,
                folds,
                design,
                rng,
            }
        })
        .collect()
}

/// The random shapes exercise both input modes and packed words whose last word or fold is only
/// partly filled (checked on the plans; the part tests below simulate them).
#[test]
fn random_shapes_exercise_input_modes_and_partly_packed_words() {
    let (mut buffered, mut unbuffered, mut packed_partial) = (0, 0, 0);
    for shape in random_shapes() {
        for l in &shape.design.plan.layers {
            if l.input == bql_hdl_gen::plan::InputMode::Buffer {
                buffered += 1;
            } else {
                unbuffered += 1;
            }
            // Several folds per word, and a last word or fold that is only partly filled.
            if l.stream_out
                .is_some_and(|w| w > l.pe && (l.outputs % w != 0 || l.outputs % l.pe != 0))
            {
                packed_partial += 1;
            }
        }
    }
    assert!(
        buffered >= 5 && unbuffered >= 5 && packed_partial >= 2,
        "modes exercised: {buffered} buffered, {unbuffered} not, {packed_partial} partly packed"
    );
}

/// The random shapes are simulated in this many parts (tests that run in parallel).
const PARTS: usize = 4;

/// Simulates every `PARTS`-th random shape from `part`: each built once; twenty random weight
/// and threshold sets per shape are then loaded through the run-time write port into the same
/// build, each with its thresholds on the boundary of the first image.
fn random_shapes_part(part: usize) {
    let b = board::load(&root().join("constraints"), "ulx3s").unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    for shape in random_shapes().into_iter().skip(part).step_by(PARTS) {
        let (s, input, u8_input, widths) = (shape.index, shape.input, shape.u8_input, shape.widths);
        let (first, folds, design, mut rng) = (shape.first, shape.folds, shape.design, shape.rng);
        let dir = std::env::temp_dir().join(format!("bql-vrand-{}-{s}", std::process::id()));
        design.write(&dir).unwrap();
        let built = bql_sim::verilator::build(&tool, &design, &dir, first.classes()).unwrap();
        for set in 0..20 {
            let mut net =
                common::random_network(input, &widths, u8_input, 100, rng.next_u64(), false);
            let images = 4;
            let pixels = common::random_pixels(rng.next_u64(), images, input);
            common::thresholds_on_the_boundary(&mut net, &pixels[..input], &mut rng);
            let other = bql_hdl_gen::generate(&net, &b, &folds).unwrap();
            assert_eq!(other.plan, design.plan, "same shape, same plan");
            let writes = config_writes(&net, &other.plan, true);
            let max = (design.plan.cycles_per_inference as u64 + 1000) * (images as u64 + 10);
            let job = bql_sim::verilator::Job {
                writes: &writes,
                pixels: &pixels,
                image_len: input,
                max_cycles: max,
            };
            let batch = bql_sim::verilator::run(&built, job, &dir).unwrap();
            let engine = Engine::new(&net);
            for (i, r) in batch.results.iter().enumerate() {
                let want = engine.predict(&pixels[i * input..(i + 1) * input]);
                let arch = net.arch_string();
                assert_eq!(
                    r.scores, want.scores,
                    "shape {s} ({arch}, u8 {u8_input}, folds {folds:?}) set {set} image {i}"
                );
                assert_eq!(r.class, want.class, "shape {s} set {set} image {i}");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn random_shapes_with_many_weight_sets_match_the_reference_part_1() {
    random_shapes_part(0);
}

#[test]
fn random_shapes_with_many_weight_sets_match_the_reference_part_2() {
    random_shapes_part(1);
}

#[test]
fn random_shapes_with_many_weight_sets_match_the_reference_part_3() {
    random_shapes_part(2);
}

#[test]
fn random_shapes_with_many_weight_sets_match_the_reference_part_4() {
    random_shapes_part(3);
}

/// A deliberately corrupted design: one threshold of the hidden layer changed in the generated
/// memory image (the design is generated from a copy of the model with that threshold moved to the end
/// of its range, inverting the neuron for the image). The simulation must disagree with the
/// reference, and the localization must name layer 1 and that neuron, and write a waveform.
#[test]
fn a_corrupted_threshold_is_detected_and_localized() {
    use bql_model::layers::{DenseOutput, Layer};
    let net = bql_model::format::load(&root().join("models/small.bqm")).unwrap();
    let mut data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    data.truncate(1);
    let engine = Engine::new(&net);
    let trace = engine.trace(&data.pixels);
    let neuron = 7;
    let fired = match &trace[0] {
        bql_model::reference::LayerOutput::Bits(w) => (w[neuron / 64] >> (neuron % 64)) & 1 == 1,
        _ => unreachable!(),
    };
    let mut bad = net.clone();
    let Layer::Dense(d) = &mut bad.layers[0] else {
        unreachable!("the default model is dense")
    };
    let (lo, hi) = d.accumulator.threshold_range(d.inputs());
    let DenseOutput::Threshold(t) = &mut d.output else {
        unreachable!()
    };
    // Never fires if it fired, always fires if it did not.
    t[neuron] = if fired { hi } else { lo };
    let b = board::load(&root().join("constraints"), "icebreaker").unwrap();
    let design = bql_hdl_gen::generate(&bad, &b, &[]).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-corrupt-{}", std::process::id()));
    design.write(&dir).unwrap();
    let tool = bql_sim::tools::verilator(&root()).unwrap();
    let built = bql_sim::verilator::build(&tool, &design, &dir, 10).unwrap();
    // The hidden layer's weights live in SPRAM: loaded through the write port.
    let writes = config_writes(&bad, &design.plan, false);
    let job = bql_sim::verilator::Job {
        writes: &writes,
        pixels: &data.pixels,
        image_len: data.image_len(),
        max_cycles: 100_000,
    };
    let batch = bql_sim::verilator::run(&built, job, &dir).unwrap();
    let (scores, _) = engine.scores_batch(&data.pixels);
    assert_ne!(
        batch.results[0].scores, scores,
        "the corruption went unnoticed"
    );
    let found = bql_sim::localize::localize(&tool, &net, &design, &dir, &writes, &data.pixels)
        .unwrap()
        .expect("a layer differs");
    assert_eq!((found.layer, found.neuron), (0, neuron), "{found:?}");
    assert_eq!(found.hardware, i64::from(!fired));
    assert!(std::fs::metadata(&found.vcd).unwrap().len() > 1000);
    std::fs::remove_dir_all(&dir).ok();
}
