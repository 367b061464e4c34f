//! The reference alone on a model and a dataset, for profilers (`perf stat -e cycles:u` counts
//! the cycles of this process only, so it gives MACs per cycle on a busy machine too):
//!
//! ```sh
//! cargo run --release -p bql-model --example reference_speed -- models/mnist-cnn.bqm data/mnist 20
//! ```
//! Arguments: model file, MNIST-layout folder, repetitions over the test set.

use std::path::Path;
use std::time::Instant;

use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, data, reps] = &args[..] else {
        return Err("usage: reference_speed MODEL.bqm MNIST_DIR REPETITIONS".into());
    };
    let net = bql_model::format::load(Path::new(model))?;
    let data = Dataset::load_dir(Path::new(data), Split::Test)?;
    let reps: usize = reps.parse()?;
    let engine = Engine::new(&net);
    let started = Instant::now();
    let mut correct = 0;
    for _ in 0..reps {
        let (_, pred) = engine.scores_batch(&data.pixels);
        correct = data.count_correct(&pred);
    }
    let seconds = started.elapsed().as_secs_f64();
    let images = (reps * data.len()) as f64;
    println!(
        "{} images in {seconds:.2} s: {:.0} images/s, {} MACs per image, {:.3e} MACs in all, \
         kernel {}, accuracy {:.2} %",
        images,
        images / seconds,
        net.macs(),
        images * net.macs() as f64,
        engine.kernel().name(),
        100.0 * correct as f64 / data.len() as f64
    );
    Ok(())
}
