//! `bql export onnx`: a bql model as standard ONNX that onnxruntime runs with bql's predictions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bql_interop::onnx_export::Flavour;

use crate::defaults;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Standard ONNX (opset 13, no custom ops), MLPs and CNNs: input `pixels` (float32
    /// [N, H*W*C], values 0..=255, (y, x, c) order), outputs `scores` and `class`
    /// (docs/import.md).
    Onnx(OnnxArgs),
}

#[derive(clap::Args)]
pub struct OnnxArgs {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where to write the ONNX file.
    #[arg(long, short)]
    out: PathBuf,
    /// standard: onnxruntime runs it; qonnx: BipolarQuant weights and signs (and a Quant on an
    /// 8-bit input) from QONNX's domain, as Brevitas exports them for FINN.
    #[arg(long, value_enum, default_value = "standard")]
    flavour: FlavourArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FlavourArg {
    /// Standard ONNX operators only.
    Standard,
    /// QONNX (BipolarQuant, Quant).
    Qonnx,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Onnx(a) => {
            let (net, source) = defaults::load_model(a.model.as_deref())?;
            let flavour = match a.flavour {
                FlavourArg::Standard => Flavour::Standard,
                FlavourArg::Qonnx => Flavour::Qonnx,
            };
            let bytes = bql_interop::onnx_export::export_as(&net, flavour)
                .with_context(|| format!("exporting {source}"))?;
            std::fs::write(&a.out, &bytes)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!(
                "wrote {} ({} bytes): {} ({}) as {} ONNX",
                a.out.display(),
                bytes.len(),
                source,
                net.arch_string(),
                match flavour {
                    Flavour::Standard => "standard",
                    Flavour::Qonnx => "QONNX",
                }
            );
            Ok(())
        }
    }
}
