//! `bql train`: quantization-aware training, then the folded model file; or a float model
//! (`--precision float`) for post-training quantization (`bql quantize`) and for `--init`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bql_model::dataset::Split;
use bql_model::InputEncoding;
use bql_train::{EpochReport, FloatCheckpoint, Precision, Progress, TrainConfig};
use clap::ValueEnum;
use indicatif::ProgressBar;

use crate::defaults;

/// Input encoding choice on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum InputKind {
    /// Binarized pixels (pixel >= --input-threshold).
    Binary,
    /// 8-bit pixels times binary weights in the first layer.
    U8,
}

/// What the training graph computes with.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Binary weights and activations (quantization-aware training): a .bqm model.
    Binary,
    /// Real weights, hardtanh activations: a float checkpoint (.bqf) for `bql quantize` or
    /// `--init`.
    Float,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  bql train                                   QAT of the default MLP on MNIST
  bql train --arch c32k5-p2-c64k5-p2-f512-f10 --input u8 --epochs 24 -o cnn.bqm
  bql train --precision float -o mlp.bqf      a float model, then:
  bql quantize mlp.bqf -o ptq.bqm             post-training quantization, or
  bql train --init mlp.bqf -o ft.bqm          QAT starting from the float model")]
pub struct Args {
    /// Architecture: an MLP as widths from input to classes (784-256-256-256-10), or layer
    /// tokens joined by '-': c<channels>k<kernel>[s<stride>][same|same1] a binary convolution
    /// (valid padding unless 'same': padded operands -1, 'same1': +1), p<k> k x k max-pooling,
    /// f<n> a dense layer (a flatten in (y, x, c) order is implied before the first one). The
    /// last layer is dense and gives the class scores. Examples: 784-256-10,
    /// c32k3-c32k3-p2-c64k3-c64k3-p2-f256-f10, c64k3same-p2-c128k3same-p2-f512-f10.
    #[arg(long, default_value = "784-256-256-256-10", verbatim_doc_comment)]
    arch: String,
    /// First-layer input encoding.
    #[arg(long, value_enum, default_value = "binary")]
    input: InputKind,
    /// Pixel value at and above which a binarized input is +1.
    #[arg(long, default_value_t = 128)]
    input_threshold: u8,
    /// Training epochs.
    #[arg(long, default_value_t = 64)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Initial learning rate (Adam).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Final learning rate (exponential decay).
    #[arg(long, default_value_t = 1e-5)]
    lr_end: f64,
    /// Dropout on input pixels.
    #[arg(long, default_value_t = 0.0)]
    dropout_input: f32,
    /// Dropout on hidden activations.
    #[arg(long, default_value_t = 0.0)]
    dropout_hidden: f32,
    /// Largest random shift of training images in pixels (augmentation; 0 = off).
    #[arg(long, default_value_t = 1)]
    shift: usize,
    /// BatchNorm momentum.
    #[arg(long, default_value_t = 0.02)]
    bn_momentum: f64,
    /// Recompute BatchNorm statistics exactly over the unaugmented training set at the end
    /// (measured to cost 0.1-0.2 % on MNIST; kept for experiments).
    #[arg(long)]
    recalibrate: bool,
    /// Hold out the last N training images; keep the epoch whose integer model scores best on
    /// them (0: keep the last epoch).
    #[arg(long, default_value_t = 0)]
    validation: usize,
    /// Seed for every random draw; the same seed gives the same model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Dataset: mnist, mnist-slice, fashion-mnist, cifar10:<folder>, or a folder with IDX or
    /// CIFAR-10 binary files (default: MNIST, full if fetched).
    #[arg(long)]
    dataset: Option<String>,
    /// Train on the first N training images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Binary (QAT, a .bqm model) or float (a .bqf checkpoint for `bql quantize`).
    #[arg(long, value_enum, default_value = "binary")]
    precision: PrecisionArg,
    /// Start from this float checkpoint (`--precision float`) instead of random weights; the
    /// architecture and input must match it.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Where to write the model (default: model.bqm, or float.bqf with --precision float).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

struct Bars {
    pb: ProgressBar,
}

impl Progress for Bars {
    fn step(&mut self, done: usize, total: usize) {
        self.pb.set_length(total as u64);
        self.pb.set_position(done as u64);
    }
    fn epoch(&mut self, r: &EpochReport) {
        crate::progress::line(
            &self.pb,
            &format!(
                "epoch {:>3}  {:>4.0} s  lr {:.2e}  loss {:.4}  train {:.2} %  test {:.2} %{}",
                r.epoch,
                r.seconds,
                r.lr,
                r.loss,
                100.0 * r.train_accuracy,
                100.0 * r.test_accuracy,
                r.validation_accuracy.map_or(String::new(), |v| format!(
                    "  validation {:.2} %",
                    100.0 * v
                ))
            ),
        );
    }
}

pub fn run(a: Args) -> Result<()> {
    let arch = bql_model::arch::parse(&a.arch)?;
    let input = match a.input {
        InputKind::Binary => InputEncoding::Binary {
            threshold: a.input_threshold,
        },
        InputKind::U8 => InputEncoding::U8,
    };
    let (train, dir) = defaults::load_split(a.dataset.as_deref(), Split::Train, a.train_limit)?;
    let (test, _) = defaults::load_split(a.dataset.as_deref(), Split::Test, None)?;
    eprintln!(
        "training {} ({:?} input) on {} images from {} ({} held out for validation), testing on {}",
        a.arch,
        input,
        train.len().saturating_sub(a.validation),
        dir.display(),
        a.validation,
        test.len()
    );
    let name = format!(
        "{}-{}-{}",
        dir.file_name()
            .map_or("data".into(), |f| f.to_string_lossy().to_string()),
        a.arch,
        match input {
            InputEncoding::Binary { .. } => "bin",
            _ => "u8",
        }
    );
    let cfg = TrainConfig {
        arch,
        name,
        input,
        epochs: a.epochs,
        batch: a.batch,
        lr_start: a.lr,
        lr_end: a.lr_end,
        dropout_input: a.dropout_input,
        dropout_hidden: a.dropout_hidden,
        shift: a.shift,
        seed: a.seed,
        bn_momentum: a.bn_momentum,
        recalibrate: a.recalibrate,
        validation: a.validation,
        precision: match a.precision {
            PrecisionArg::Binary => Precision::Binary,
            PrecisionArg::Float => Precision::Float,
        },
        init: a
            .init
            .as_deref()
            .map(FloatCheckpoint::load)
            .transpose()
            .context("loading the --init checkpoint")?,
    };
    let started = Instant::now();
    let mut bars = Bars {
        pb: crate::progress::bar(1, "training"),
    };
    if a.precision == PrecisionArg::Float {
        let out = a.out.clone().unwrap_or_else(|| "float.bqf".into());
        let trained = bql_train::train_float(&cfg, &train, &test, &mut bars)?;
        bars.pb.finish_and_clear();
        trained
            .checkpoint
            .save(&out)
            .with_context(|| format!("saving the float model to {}", out.display()))?;
        return report_float(&a, &out, &trained.history, started.elapsed().as_secs_f64());
    }
    let out = a.out.clone().unwrap_or_else(|| "model.bqm".into());
    let trained = bql_train::train(&cfg, &train, &test, &mut bars)?;
    bars.pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    bql_model::format::save(&trained.network, &out)
        .with_context(|| format!("saving the trained model to {}", out.display()))?;
    let last = trained.history.last().copied();
    let best = trained
        .history
        .iter()
        .map(|r| r.test_accuracy)
        .fold(0.0, f64::max);
    // The integer model's own accuracy, from the reference.
    let engine = bql_model::reference::Engine::new(&trained.network);
    let (_, pred) = engine.scores_batch(&test.pixels);
    let correct = test.count_correct(&pred);
    let accuracy = correct as f64 / test.len().max(1) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": out.display().to_string(),
                "arch": a.arch,
                "epochs": a.epochs,
                "seconds": seconds,
                "accuracy": accuracy,
                "float_test_accuracy": last.map(|r| r.test_accuracy),
                "best_float_test_accuracy": best,
                "f32_disagreements": trained.f32_disagreements,
                "kept_epoch": trained.kept_epoch,
                "history": history_json(&trained.history),
                "test_images": test.len(),
            })
        );
    } else {
        println!(
            "wrote {} (epoch {} of {}): integer accuracy {:.2} % on {} test images ({} \
             disagree with candle's f32 graph), trained in {:.0} s",
            out.display(),
            trained.kept_epoch,
            a.epochs,
            100.0 * accuracy,
            test.len(),
            trained.f32_disagreements,
            seconds
        );
    }
    Ok(())
}

/// The history as JSON, one object per epoch.
fn history_json(history: &[EpochReport]) -> Vec<serde_json::Value> {
    history
        .iter()
        .map(|r| {
            serde_json::json!({
                "epoch": r.epoch, "lr": r.lr, "loss": r.loss, "train_accuracy": r.train_accuracy,
                "test_accuracy": r.test_accuracy, "validation_accuracy": r.validation_accuracy,
                "seconds": r.seconds,
            })
        })
        .collect()
}

fn report_float(
    a: &Args,
    out: &std::path::Path,
    history: &[EpochReport],
    seconds: f64,
) -> Result<()> {
    let accuracy = history.last().map_or(0.0, |r| r.test_accuracy);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "checkpoint": out.display().to_string(), "arch": a.arch, "epochs": a.epochs,
                "seconds": seconds, "float_test_accuracy": accuracy,
                "history": history_json(history),
            })
        );
    } else {
        println!(
            "wrote {} (float): test accuracy {:.2} % after {} epochs, trained in {:.0} s; \
             binarize it with `bql quantize {}` or fine-tune with `bql train --init {}`",
            out.display(),
            100.0 * accuracy,
            a.epochs,
            seconds,
            out.display(),
            out.display()
        );
    }
    Ok(())
}
