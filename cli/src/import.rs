//! `bql import`: networks trained elsewhere into bql model files, with their accuracy under
//! the source's own output rule and under bql's.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bql_interop::bnn_pynq;
use bql_model::dataset::Split;
use bql_model::reference::Engine;

use crate::defaults;

#[derive(clap::Subcommand)]
pub enum Command {
    /// A Xilinx BNN-PYNQ W1A1 parameter folder, fully connected (LFC) or convolutional (CNV):
    /// `bql import bnn-pynq bnn/params/mnist/lfcW1A1 -o lfc.bqm`,
    /// `bql import bnn-pynq bnn/params/cifar10/cnvW1A1 --dataset cifar10:DIR -o cnv.bqm`.
    BnnPynq(BnnPynqArgs),
    /// A binarized MLP in FINN-ONNX (a Brevitas export tidied by FINN, such as TFC-W1A1),
    /// QONNX (BipolarQuant, Quant) or bql's own export: `bql import onnx model.onnx -o tfc.bqm`.
    Onnx(OnnxArgs),
}

#[derive(clap::Args)]
pub struct OnnxArgs {
    /// The ONNX file.
    file: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// What every importer takes besides its source.
#[derive(clap::Args)]
pub struct Common {
    /// Image shape, HEIGHTxWIDTHxCHANNELS (default: from a convolutional network's first
    /// layer, else 28x28x1).
    #[arg(long)]
    input: Option<String>,
    /// Dataset to report accuracy on (as for `bql eval`; default: MNIST's test set, or the
    /// committed slice when MNIST is not fetched).
    #[arg(long)]
    dataset: Option<String>,
    /// Where to write the model.
    #[arg(long, short)]
    out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct BnnPynqArgs {
    /// The parameter folder (`<layer>-<pe>-weights.bin`, `<layer>-<pe>-thres.bin`).
    dir: PathBuf,
    /// The network's `hw/config.h` (its `top.cpp` is read next to it). Default: the BNN-PYNQ
    /// repository layout, `bnn/src/network/<folder name>/hw/config.h`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Valid outputs of the last layer (its rows beyond are padding).
    #[arg(long, default_value_t = 10)]
    classes: usize,
    #[command(flatten)]
    common: Common,
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::BnnPynq(a) => bnn_pynq_run(a),
        Command::Onnx(a) => onnx_run(a),
    }
}

fn parse_shape(s: Option<&str>) -> Result<Option<(usize, usize, usize)>> {
    let Some(s) = s else { return Ok(None) };
    let v: Option<Vec<usize>> = s.split('x').map(|p| p.parse().ok()).collect();
    match v.as_deref() {
        Some(&[h, w, c]) if h * w * c > 0 => Ok(Some((h, w, c))),
        _ => bail!("--input {s}: expected HEIGHTxWIDTHxCHANNELS, like 28x28x1"),
    }
}

/// Writes the imported model and loads the test images its accuracy is reported on.
fn save_and_load_test(
    net: &bql_model::Network,
    common: &Common,
) -> Result<(bql_model::dataset::Dataset, PathBuf)> {
    bql_model::format::save(net, &common.out)
        .with_context(|| format!("saving {}", common.out.display()))?;
    let (data, dir) = defaults::load_split(common.dataset.as_deref(), Split::Test, None)?;
    defaults::check_fits(net, &data)?;
    Ok((data, dir))
}

fn bnn_pynq_run(a: BnnPynqArgs) -> Result<()> {
    let src = bnn_pynq::Sources::find(&a.dir, a.config.as_deref())?;
    let imported = bnn_pynq::import(&src, parse_shape(a.common.input.as_deref())?, a.classes)
        .with_context(|| format!("importing {}", a.dir.display()))?;
    let net = &imported.network;
    let (data, dir) = save_and_load_test(net, &a.common)?;
    let (scores, predicted) = Engine::new(net).scores_batch(&data.pixels);
    let classes = net.classes();
    let source_predicted: Vec<usize> = scores
        .chunks(classes)
        .map(|s| imported.source_class(&s.iter().map(|&v| i64::from(v)).collect::<Vec<_>>()))
        .collect();
    let n = data.len().max(1) as f64;
    let bql_acc = data.count_correct(&predicted) as f64 / n;
    let source_acc = data.count_correct(&source_predicted) as f64 / n;
    let differ = predicted
        .iter()
        .zip(&source_predicted)
        .filter(|(a, b)| a != b)
        .count();
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "out": a.common.out.display().to_string(), "arch": net.arch_string(),
                "weight_bits": net.weight_bits(), "dataset": dir.display().to_string(),
                "images": data.len(), "accuracy_source_rule": source_acc,
                "accuracy_bql_argmax": bql_acc, "predictions_differing": differ,
            })
        );
    } else {
        println!(
            "wrote {} ({}, {} weight bits)",
            a.common.out.display(),
            net.arch_string(),
            net.weight_bits()
        );
        println!(
            "{} test images of {}: {:.2} % with {}, {:.2} % with bql's argmax of the last \
             layer's accumulators; {differ} predictions differ",
            data.len(),
            dir.display(),
            100.0 * source_acc,
            imported.rule_name(),
            100.0 * bql_acc
        );
    }
    Ok(())
}

fn onnx_run(a: OnnxArgs) -> Result<()> {
    let shape = parse_shape(a.common.input.as_deref())?.unwrap_or((28, 28, 1));
    let imported = bql_interop::onnx::import(&a.file, shape)
        .with_context(|| format!("importing {}", a.file.display()))?;
    let net = &imported.network;
    let (data, dir) = save_and_load_test(net, &a.common)?;
    let acc = defaults::accuracy(net, &data);
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "out": a.common.out.display().to_string(), "arch": net.arch_string(),
                "weight_bits": net.weight_bits(), "dataset": dir.display().to_string(),
                "images": data.len(), "accuracy": acc,
                "rounding_sensitive_neurons": imported.rounding_sensitive,
            })
        );
    } else {
        println!(
            "wrote {} ({}, {} weight bits; {} neurons whose threshold depends on float rounding)",
            a.common.out.display(),
            net.arch_string(),
            net.weight_bits(),
            imported.rounding_sensitive
        );
        println!(
            "{} test images of {}: {:.2} %",
            data.len(),
            dir.display(),
            100.0 * acc
        );
    }
    Ok(())
}
