//! Arguments shared by several commands.

use std::path::PathBuf;

/// `--model`, `--dataset`, `--limit`, `--json`.
#[derive(clap::Args)]
pub struct ModelData {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset: mnist, mnist-slice, fashion-mnist or a folder (default: MNIST, full if fetched).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}
