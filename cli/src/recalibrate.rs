//! `bql recalibrate`: re-estimate a trained model's BatchNorm statistics from its own integer
//! accumulators on training images, refold the thresholds, and compare test accuracy.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bql_model::dataset::Split;

use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    /// Model file with float parameters (default: the embedded default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Dataset (as for `bql train`); statistics come from its training split.
    #[arg(long)]
    dataset: Option<String>,
    /// Use only the first N training images, and report accuracy on the rest as validation (for
    /// example all but the ones held out with `bql train --validation`).
    #[arg(long)]
    limit: Option<usize>,
    /// Where to write the recalibrated model.
    #[arg(long, short)]
    out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.model.as_deref())?;
    let (mut train, dir) = defaults::load_split(a.dataset.as_deref(), Split::Train, None)?;
    let (test, _) = defaults::load_split(a.dataset.as_deref(), Split::Test, None)?;
    defaults::check_fits(&net, &train)?;
    let validation = a.limit.filter(|&n| n < train.len()).map(|n| {
        let mut rest = train.clone();
        rest.drop_first(n);
        train.truncate(n);
        rest
    });
    let before = defaults::accuracy(&net, &test);
    let validation_before = validation.as_ref().map(|v| defaults::accuracy(&net, v));
    let layers = net.layers.len();
    let recalibrated = bql_model::calibrate::reestimate_batchnorm(&net, &train, &|l| {
        eprintln!(
            "re-estimating layer {l} of {layers} on {} images",
            train.len()
        )
    })
    .with_context(|| format!("recalibrating {source}"))?;
    let mut recalibrated = recalibrated;
    if let Some(p) = recalibrated.provenance.as_object_mut() {
        p.insert(
            "bn_reestimated".into(),
            format!(
                "bql recalibrate {}: BatchNorm statistics from the first {} training images of {}",
                env!("CARGO_PKG_VERSION"),
                train.len(),
                a.dataset.as_deref().unwrap_or("the default dataset")
            )
            .into(),
        );
    }
    let after = defaults::accuracy(&recalibrated, &test);
    let validation_after = validation
        .as_ref()
        .map(|v| defaults::accuracy(&recalibrated, v));
    bql_model::format::save(&recalibrated, &a.out)
        .with_context(|| format!("saving {}", a.out.display()))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": source, "out": a.out.display().to_string(), "dataset": dir.display().to_string(),
                "images": train.len(), "test_accuracy_before": before, "test_accuracy_after": after,
                "validation_images": validation.as_ref().map(|v| v.len()),
                "validation_accuracy_before": validation_before,
                "validation_accuracy_after": validation_after,
            })
        );
    } else {
        if let (Some(v), Some(b), Some(af)) = (&validation, validation_before, validation_after) {
            println!(
                "validation ({} held-out training images): {:.2} % -> {:.2} %",
                v.len(),
                100.0 * b,
                100.0 * af
            );
        }
        println!(
            "wrote {}: test accuracy {:.2} % -> {:.2} % (statistics from {} training images)",
            a.out.display(),
            100.0 * before,
            100.0 * after,
            train.len()
        );
    }
    Ok(())
}
