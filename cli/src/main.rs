//! `bql`: the command line of bql. It parses arguments, wires the library crates together and
//! prints reports; the work itself lives in the libraries. This is the only crate that uses clap
//! and anyhow.

mod args;
mod bench;
mod build;
mod data;
mod defaults;
mod eval;
mod export;
mod gen;
mod import;
mod info;
mod plot;
mod progress;
mod quantize;
mod recalibrate;
mod run;
mod sim;
mod train;

use clap::{Parser, Subcommand};

// candle allocates and frees tensors of a few hundred kilobytes on every training step; glibc's
// malloc hands those back to the kernel each time (mmap/munmap), which measured 30 s per MNIST
// epoch instead of 12 s here. mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// bql: binarized neural networks from training to open-source FPGAs.
#[derive(Parser)]
#[command(name = "bql", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model: layers, widths, weight bits, MACs.
    Info(info::Args),
    /// Accuracy of a model on a dataset, and its agreement with the float graph it came from.
    Eval(eval::Args),
    /// Throughput of the reference inference against an f32 GEMM of the same network.
    Bench(bench::Args),
    /// Train a binarized network with quantization-aware training and fold it to integers (or
    /// a float model with --precision float).
    Train(train::Args),
    /// Post-training quantization: binarize a float model (`bql train --precision float`),
    /// re-estimating its BatchNorm statistics on training images.
    Quantize(quantize::Args),
    /// Re-estimate a trained model's BatchNorm statistics from its integer accumulators on
    /// training images and refold the thresholds.
    Recalibrate(recalibrate::Args),
    /// Generate Verilog for a model and a board: plan, RTL, memory images, constraints.
    Gen(gen::Args),
    /// Simulate the generated design in Verilator and compare every result with the reference.
    Sim(sim::Args),
    /// Build a bitstream with yosys and nextpnr, and report utilization and Fmax.
    Build(build::Args),
    /// Load a model into a board (or the simulated board) over the UART, stream test images and
    /// check every result against the reference.
    Run(run::Args),
    /// Program a board with a bitstream (openFPGALoader, or iceprog for iCE40).
    Flash(run::FlashArgs),
    /// List the supported boards.
    Boards(gen::BoardsArgs),
    /// Import a network trained elsewhere (BNN-PYNQ parameter folders, FINN-ONNX) into a bql
    /// model file.
    Import {
        #[command(subcommand)]
        command: import::Command,
    },
    /// Export a model to another format (standard ONNX).
    Export {
        #[command(subcommand)]
        command: export::Command,
    },
    /// Fetch datasets.
    Data {
        #[command(subcommand)]
        command: data::Command,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Recalibrate(a) => recalibrate::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Data { command } => data::run(command),
        Command::Import { command } => import::run(command),
        Command::Export { command } => export::run(command),
        Command::Gen(a) => gen::run(a),
        Command::Boards(a) => gen::boards(a),
        Command::Sim(a) => sim::run(a),
        Command::Run(a) => run::run(a),
        Command::Build(a) => build::run(a),
        Command::Flash(a) => run::flash(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
