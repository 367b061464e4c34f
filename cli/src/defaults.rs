//! Where defaults come from: the embedded default model, the project's folders, and the dataset
//! (full MNIST when fetched, otherwise the committed slice).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bql_model::dataset::{is_cifar10_dir, is_dataset_dir, Dataset, Split};
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

/// Where a dataset lives and in which format.
pub struct DatasetSource {
    /// The folder.
    pub dir: PathBuf,
    /// True for the CIFAR-10 binary format, false for IDX files.
    pub cifar10: bool,
}

/// Resolves a dataset argument: a folder (IDX or CIFAR-10 binary, told apart by file names),
/// `cifar10:<folder>`, a name (`mnist`, `fashion-mnist`, `mnist-slice`), or nothing (MNIST:
/// full when fetched, else the committed slice).
pub fn dataset_source(arg: Option<&str>) -> Result<DatasetSource> {
    let root = project_root();
    let full = root.join("data/mnist");
    let slice = root.join("data/slice/mnist");
    if let Some(folder) = arg.and_then(|a| a.strip_prefix("cifar10:")) {
        let dir = PathBuf::from(folder);
        if !is_cifar10_dir(&dir) {
            anyhow::bail!(
                "{} holds no CIFAR-10 test_batch.bin (the binary format, plain or .gz); the \
                 repository's tests use ../shared/data/cifar10-jpeg-test-1k (see the README)",
                dir.display()
            );
        }
        return Ok(DatasetSource { dir, cifar10: true });
    }
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
    if is_cifar10_dir(&dir) && !is_dataset_dir(&dir) {
        return Ok(DatasetSource { dir, cifar10: true });
    }
    if !is_dataset_dir(&dir) {
        anyhow::bail!(
            "{} does not hold an MNIST-layout dataset (train-/t10k- images and labels, IDX, \
             optionally .gz) nor CIFAR-10 binary files (test_batch.bin, data_batch_N.bin); fetch \
             one with `bql data fetch mnist|fashion-mnist`",
            dir.display()
        );
    }
    Ok(DatasetSource {
        dir,
        cifar10: false,
    })
}

/// Loads one split of a dataset, optionally keeping only the first `limit` images.
pub fn load_split(
    arg: Option<&str>,
    split: Split,
    limit: Option<usize>,
) -> Result<(Dataset, PathBuf)> {
    let source = dataset_source(arg)?;
    let mut d = if source.cifar10 {
        Dataset::load_cifar10(&source.dir, split)?
    } else {
        Dataset::load_dir(&source.dir, split)?
    };
    if let Some(n) = limit {
        d.truncate(n);
    }
    Ok((d, source.dir))
}

/// Checks that a dataset's images match a network's input size.
/// The reference's accuracy of `net` on `data`.
pub fn accuracy(net: &Network, data: &Dataset) -> f64 {
    let (_, pred) = bql_model::reference::Engine::new(net).scores_batch(&data.pixels);
    data.count_correct(&pred) as f64 / data.len().max(1) as f64
}

pub fn check_fits(net: &Network, data: &Dataset) -> Result<()> {
    if data.image_len() != net.input.len() {
        anyhow::bail!(
            "the model takes {} inputs ({}x{}x{}) but the dataset's images are {}x{}x{}",
            net.input.len(),
            net.input.height,
            net.input.width,
            net.input.channels,
            data.height,
            data.width,
            data.channels
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
