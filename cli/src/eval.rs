//! `bql eval`: accuracy of the integer model, and its agreement with the float graph.

use std::path::PathBuf;

use anyhow::Result;
use bql_model::dataset::Split;
use bql_model::reference::Engine;
use rayon::prelude::*;

use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Dataset: mnist, mnist-slice, fashion-mnist or a folder (default: MNIST, full if fetched).
    #[arg(long)]
    dataset: Option<String>,
    /// Evaluate on the training split instead of the test split.
    #[arg(long)]
    train: bool,
    /// Only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.model.as_deref())?;
    let split = if a.train { Split::Train } else { Split::Test };
    let (data, dir) = defaults::load_split(a.dataset.as_deref(), split, a.limit)?;
    defaults::check_fits(&net, &data)?;
    let engine = Engine::new(&net);
    let (_, pred) = engine.scores_batch(&data.pixels);
    let correct = pred
        .iter()
        .zip(&data.labels)
        .filter(|(&p, &l)| p == l as usize)
        .count();
    let accuracy = correct as f64 / data.len().max(1) as f64;
    // The float graph, rerun from the kept float parameters (None for imported integer models).
    let disagreements: Option<usize> = net.float.as_ref().map(|_| {
        (0..data.len())
            .into_par_iter()
            .filter(|&i| bql_model::float::classify(&net, data.image(i)) != Some(pred[i]))
            .count()
    });
    if a.json {
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
