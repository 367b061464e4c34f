//! Arguments shared by several commands.

use std::path::PathBuf;

/// `--model`, `--dataset`, `--limit`, `--json`.
#[derive(clap::Args)]
pub struct ModelData {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset: mnist, mnist-slice, fashion-mnist, cifar10:<folder>, or a folder with IDX or
    /// CIFAR-10 binary files (default: MNIST, full if fetched).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--model`, `--board`, `--out`, `--fold`, `--json`: what `gen` and `build` take.
#[derive(clap::Args)]
pub struct DesignArgs {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Board id (see `bql boards`).
    #[arg(long, default_value = "icebreaker")]
    pub board: String,
    /// Output folder (default: build/<board>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fix a layer's folding: LAYER:P:S (repeatable), e.g. --fold 0:16:49.
    #[arg(long, value_name = "L:P:S")]
    pub fold: Vec<String>,
    /// Also write the intermediate form after a pass: `plan` (the folding plan as a table,
    /// <out>/dump/plan.txt, and as JSON, plan.json) or `lower` (the checked hardware IR: every
    /// module's ports, signals with widths and drivers, memories, instances; dump/lower.txt).
    #[arg(long, value_name = "PASS", value_parser = ["plan", "lower"])]
    pub dump_after: Option<String>,
    /// Run the design at this clock (MHz) through the board's PLL: its parameters are computed
    /// for the highest frequency it can make that is not above this. Default: the board's
    /// oscillator, no PLL.
    #[arg(long, value_name = "MHZ")]
    pub clock: Option<f64>,
    /// Plan for the device's full speed (the cheapest design within 1/32 of the fastest
    /// interval that fits). By default the planner folds no faster than the board's UART
    /// delivers images, since faster lanes would only wait for the link.
    #[arg(long)]
    pub ignore_link: bool,
    /// How binary layers count their lanes: `carry-cells` (the default: the family's cells
    /// instantiated, on the ECP5 CCU2C carry cells with the lanes inside their propagate terms,
    /// on the iCE40 SB_LUT4 + SB_CARRY lane pairs and ripple adders) or `adders` (an adder tree
    /// that yosys maps, for comparison).
    #[arg(long, value_name = "KIND", value_parser = ["adders", "carry-cells"])]
    pub popcount: Option<String>,
    /// The host link: `uart` (the board's USB-serial bridge) or `spi` (the iCEBreaker's FTDI
    /// channel A in MPSSE mode, SCK up to 30 MHz; see docs/links.md for the wiring).
    #[arg(long, value_name = "LINK", default_value = "uart", value_parser = ["uart", "spi"])]
    pub link: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}
