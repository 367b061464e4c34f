//! `bql info`: what a model is.

use std::path::PathBuf;

use anyhow::Result;
use bql_model::layers::{Layer, Padding};
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
        InputEncoding::Table(t) => {
            let (lo, hi) = (t.0.iter().min(), t.0.iter().max());
            format!(
                "8-bit pixels through a table (operands {}..={})",
                lo.copied().unwrap_or(0),
                hi.copied().unwrap_or(0)
            )
        }
    };
    let layers: Vec<serde_json::Value> = net
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({
                "index": i,
                "kind": l.kind_name(),
                "input_shape": l.input_shape().to_string(),
                "output_shape": l.output_shape().to_string(),
                "inputs": l.input_len(),
                "outputs": l.output_len(),
                "output": output_kind(l),
                "detail": detail(l),
                "fan_in": l.fan_in(),
                "accumulator_bits": accumulator_bits(l),
                "weight_bits": l.weight_bits(),
                "macs": l.macs(),
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
        "{:<6} {:<10} {:<14} {:<12} {:<12} {:<10} {:>9} {:>12} {:>12}",
        "layer",
        "kind",
        "detail",
        "input",
        "output",
        "output is",
        "acc bits",
        "weight bits",
        "MACs"
    );
    for (i, l) in net.layers.iter().enumerate() {
        let signed = match l.accumulator() {
            Some(AccumulatorKind::SignedPixelSum) => " (signed)",
            _ => "",
        };
        let acc = accumulator_bits(l).map_or("-".to_string(), |b| format!("{b}{signed}"));
        println!(
            "{:<6} {:<10} {:<14} {:<12} {:<12} {:<10} {:>9} {:>12} {:>12}",
            i,
            l.kind_name(),
            detail(l),
            l.input_shape().to_string(),
            l.output_shape().to_string(),
            output_kind(l),
            acc,
            l.weight_bits(),
            l.macs()
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

fn output_kind(l: &Layer) -> &'static str {
    match l {
        _ if l.is_scores() => "scores",
        Layer::MaxPool2d(_) => "pool (OR)",
        Layer::Flatten(_) => "(y, x, c)",
        _ => "threshold",
    }
}

fn accumulator_bits(l: &Layer) -> Option<u32> {
    Some(l.accumulator()?.bits(l.fan_in()?))
}

/// Kernel, stride and padding of a convolution or pool, e.g. `3x3 s1 same-1`.
fn detail(l: &Layer) -> String {
    match l {
        Layer::Conv2d(c) => {
            let pad = match c.padding {
                Padding::Valid => "valid".to_string(),
                Padding::Same { pad_bit } => format!("same{}", if pad_bit { "+1" } else { "-1" }),
            };
            format!("{k}x{k} s{} {pad}", c.stride, k = c.kernel)
        }
        Layer::MaxPool2d(p) => format!("{k}x{k} s{k}", k = p.kernel),
        _ => String::new(),
    }
}
