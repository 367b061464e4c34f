//! `bql info`: what a model is.

use std::path::PathBuf;

use anyhow::Result;
use bql_model::semantics::AccumulatorKind;
use bql_model::InputEncoding;

use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (default: the embedded default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.model.as_deref())?;
    let input = match net.input.encoding {
        InputEncoding::Binary { threshold } => format!("binary (pixel >= {threshold})"),
        InputEncoding::U8 => "8-bit pixels".to_string(),
    };
    let layers: Vec<serde_json::Value> = net
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({
                "index": i,
                "kind": l.kind_name(),
                "inputs": l.input_len(),
                "outputs": l.output_len(),
                "output": if l.is_scores() { "scores" } else { "threshold" },
                "accumulator_bits": l.accumulator().bits(l.input_len()),
                "weight_bits": l.weight_bits(),
            })
        })
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": source,
                "name": net.name,
                "arch": net.arch_string(),
                "input": input,
                "layers": layers,
                "weight_bits": net.weight_bits(),
                "macs": net.macs(),
                "classes": net.classes(),
                "has_float_params": net.float.is_some(),
                "provenance": net.provenance,
            })
        );
        return Ok(());
    }
    println!("model     {source}");
    println!("name      {}", net.name);
    println!("arch      {}", net.arch_string());
    println!(
        "input     {}x{}x{}, {input}",
        net.input.height, net.input.width, net.input.channels
    );
    println!();
    println!(
        "{:<6} {:<6} {:>7} {:>8} {:<10} {:>9} {:>12}",
        "layer", "kind", "inputs", "outputs", "output", "acc bits", "weight bits"
    );
    for (i, l) in net.layers.iter().enumerate() {
        let acc = match l.accumulator() {
            AccumulatorKind::Popcount => "",
            AccumulatorKind::SignedPixelSum => " (signed)",
        };
        println!(
            "{:<6} {:<6} {:>7} {:>8} {:<10} {:>9} {:>12}",
            i,
            l.kind_name(),
            l.input_len(),
            l.output_len(),
            if l.is_scores() { "scores" } else { "threshold" },
            format!("{}{acc}", l.accumulator().bits(l.input_len())),
            l.weight_bits()
        );
    }
    println!();
    println!(
        "weights   {} bits ({:.1} KiB packed), {} MACs per image, {} classes",
        net.weight_bits(),
        net.weight_bits() as f64 / 8192.0,
        net.macs(),
        net.classes()
    );
    if !net.provenance.is_null() {
        println!("from      {}", net.provenance);
    }
    Ok(())
}
