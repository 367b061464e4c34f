//! `bql quantize`: post-training quantization of a float checkpoint (`bql train --precision
//! float`) into a binarized model, with the float, uncalibrated and calibrated accuracies.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bql_model::dataset::Split;
use bql_train::FloatCheckpoint;

use crate::defaults;

#[derive(clap::Args)]
#[command(after_help = "Example:
  bql train --precision float --epochs 20 -o mlp.bqf
  bql quantize mlp.bqf --calibrate 10000 -o ptq.bqm")]
pub struct Args {
    /// The float checkpoint (.bqf) from `bql train --precision float`.
    checkpoint: PathBuf,
    /// Training images on which BatchNorm statistics are re-estimated (the first N).
    #[arg(long, default_value_t = 10_000)]
    calibrate: usize,
    /// Dataset (as for `bql train`): calibration from its training split, accuracy on its test
    /// split.
    #[arg(long)]
    dataset: Option<String>,
    /// Where to write the binarized model.
    #[arg(long, short)]
    out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    anyhow::ensure!(a.calibrate > 0, "--calibrate needs at least one image");
    let checkpoint = FloatCheckpoint::load(&a.checkpoint)?;
    let (calibration, dir) =
        defaults::load_split(a.dataset.as_deref(), Split::Train, Some(a.calibrate))?;
    let (test, _) = defaults::load_split(a.dataset.as_deref(), Split::Test, None)?;
    let name = a
        .out
        .file_stem()
        .map_or("quantized".into(), |s| s.to_string_lossy().into_owned());
    eprintln!(
        "quantizing {} ({}): BatchNorm statistics from {} training images of {}",
        a.checkpoint.display(),
        checkpoint.arch,
        calibration.len(),
        dir.display()
    );
    let q = bql_train::quantize(&checkpoint, &calibration, &test, &name)
        .with_context(|| format!("quantizing {}", a.checkpoint.display()))?;
    bql_model::format::save(&q.network, &a.out)
        .with_context(|| format!("saving {}", a.out.display()))?;
    let uncalibrated = defaults::accuracy(&q.uncalibrated, &test);
    let binarized = defaults::accuracy(&q.network, &test);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "out": a.out.display().to_string(), "arch": checkpoint.arch.to_string(),
                "calibration_images": calibration.len(), "test_images": test.len(),
                "float_accuracy": q.float_accuracy,
                "binarized_accuracy_float_statistics": uncalibrated,
                "binarized_accuracy": binarized,
            })
        );
    } else {
        println!(
            "wrote {}: {} test images: float {:.2} %, binarized {:.2} % ({:.2} % with the float \
             model's BatchNorm statistics)",
            a.out.display(),
            test.len(),
            100.0 * q.float_accuracy,
            100.0 * binarized,
            100.0 * uncalibrated
        );
    }
    Ok(())
}
