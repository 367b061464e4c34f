//! Where defaults come from: the embedded default model, the project's folders, and the dataset
//! (full MNIST when fetched, otherwise the committed slice).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bql_model::dataset::{is_dataset_dir, Dataset, Split};
use bql_model::Network;

/// The shipped default model, embedded so that every command works without a model file.
const DEFAULT_MODEL: &[u8] = include_bytes!("../../models/default.bqm");
/// Its file name in `models/`, for messages.
pub const DEFAULT_MODEL_NAME: &str = "models/default.bqm (embedded)";

/// The project root: `$BQL_HOME`, else the nearest ancestor of the current folder (or of the
/// executable) holding `data/slice`, else the current folder.
pub fn project_root() -> PathBuf {
    if let Some(h) = std::env::var_os("BQL_HOME") {
        return PathBuf::from(h);
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        if let Some(root) = start.ancestors().find(|a| a.join("data/slice").is_dir()) {
            return root.to_path_buf();
        }
    }
    PathBuf::from(".")
}

/// Loads `path`, or the embedded default model.
pub fn load_model(path: Option<&Path>) -> Result<(Network, String)> {
    match path {
        Some(p) => Ok((bql_model::format::load(p)?, p.display().to_string())),
        None => Ok((
            bql_model::format::from_bytes(DEFAULT_MODEL)
                .context("the embedded default model is corrupt (rebuild bql)")?,
            DEFAULT_MODEL_NAME.to_string(),
        )),
    }
}

/// Resolves a dataset argument: a folder, a name (`mnist`, `fashion-mnist`, `mnist-slice`), or
/// nothing (MNIST: full when fetched, else the committed slice).
pub fn dataset_dir(arg: Option<&str>) -> Result<PathBuf> {
    let root = project_root();
    let full = root.join("data/mnist");
    let slice = root.join("data/slice/mnist");
    let dir = match arg {
        None | Some("mnist") if is_dataset_dir(&full) => full,
        None => slice,
        Some("mnist") => anyhow::bail!(
            "MNIST is not fetched yet; run `bql data fetch mnist`, or use --dataset mnist-slice"
        ),
        Some("mnist-slice") => slice,
        Some("fashion-mnist") => root.join("data/fashion-mnist"),
        Some(other) => PathBuf::from(other),
    };
    if !is_dataset_dir(&dir) {
        anyhow::bail!(
            "{} does not hold an MNIST-layout dataset (train-/t10k- images and labels, IDX, \
             optionally .gz); fetch one with `bql data fetch mnist|fashion-mnist`",
            dir.display()
        );
    }
    Ok(dir)
}

/// Loads one split of a dataset, optionally keeping only the first `limit` images.
pub fn load_split(
    arg: Option<&str>,
    split: Split,
    limit: Option<usize>,
) -> Result<(Dataset, PathBuf)> {
    let dir = dataset_dir(arg)?;
    let mut d = Dataset::load_dir(&dir, split)?;
    if let Some(n) = limit {
        d.truncate(n);
    }
    Ok((d, dir))
}

/// Checks that a dataset's images match a network's input size.
pub fn check_fits(net: &Network, data: &Dataset) -> Result<()> {
    if data.image_len() != net.input.len() {
        anyhow::bail!(
            "the model takes {} inputs ({}x{}x{}) but the dataset's images are {}x{}",
            net.input.len(),
            net.input.height,
            net.input.width,
            net.input.channels,
            data.height,
            data.width
        );
    }
    if let Some(&l) = data.labels.iter().find(|&&l| l as usize >= net.classes()) {
        anyhow::bail!(
            "label {l} in the dataset but the model has {} classes",
            net.classes()
        );
    }
    Ok(())
}
