//! `bql eval`: accuracy of the integer model, and its agreement with the float graph.

use anyhow::Result;
use bql_model::dataset::Split;
use bql_model::reference::Engine;
use rayon::prelude::*;

use crate::args::ModelData;
use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: ModelData,
    /// Evaluate on the training split instead of the test split.
    #[arg(long)]
    train: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.common.model.as_deref())?;
    let split = if a.train { Split::Train } else { Split::Test };
    let (data, dir) = defaults::load_split(a.common.dataset.as_deref(), split, a.common.limit)?;
    defaults::check_fits(&net, &data)?;
    let engine = Engine::new(&net);
    let (_, pred) = engine.scores_batch(&data.pixels);
    let correct = data.count_correct(&pred);
    let accuracy = correct as f64 / data.len().max(1) as f64;
    // The float graph, rerun from the kept float parameters (None for imported integer models).
    let disagreements: Option<usize> = bql_model::float::FloatGraph::new(&net).map(|graph| {
        (0..data.len())
            .into_par_iter()
            .filter(|&i| graph.classify(data.image(i)) != Some(pred[i]))
            .count()
    });
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "model": source,
                "dataset": dir.display().to_string(),
                "images": data.len(),
                "correct": correct,
                "accuracy": accuracy,
                "float_disagreements": disagreements,
            })
        );
    } else {
        println!(
            "{source} on {} ({} images): accuracy {:.2} % ({correct} correct)",
            dir.display(),
            data.len(),
            100.0 * accuracy
        );
        match disagreements {
            Some(d) => println!("float graph (f64, eval mode) disagrees on {d} images"),
            None => println!("no float parameters in this model: float agreement not checked"),
        }
    }
    Ok(())
}
