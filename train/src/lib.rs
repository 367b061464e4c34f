//! bql-train: quantization-aware training of binarized networks (MLPs and CNNs: dense, conv2d,
//! max-pool) with candle, and the fold of the trained float graph into a bql integer [`Network`].
//!
//! Lifecycle: the architecture ([`bql_model::arch`]) and the dataset's image shape give the
//! integer network's [`skeleton`] (its layers with zero weights, shapes checked by the model
//! crate); the training graph (`graph`) is built from that skeleton, trained, and folded back
//! into it, so the float graph and the integer model cannot disagree on a shape or an order.
//!
//! The training graph, per hidden layer: binary weights `sign(W)` through a clipped
//! straight-through estimator (the gradient passes where |W| <= 1; latent weights are clipped to
//! [-1, 1] after each step), BatchNorm, then a hardtanh straight-through sign for the activation.
//! The last layer is binary too and ends in one learned positive scale (`exp(log_scale)`) shared
//! by all classes, so that the float argmax equals the integer argmax of the popcounts exactly;
//! a per-class BatchNorm there would not fold into integers. `sign` is computed as `x >= 0`
//! mapped to +-1 (candle's `Tensor::sign` has no gradient and maps 0 to 0).
//!
//! Determinism: every random draw (initialization, shuffling, augmentation, dropout) comes from
//! one seeded `StdRng` on the Rust side; candle's own RNG is never used.
//!
//! This crate is the only one that depends on candle, so the ML dependency stays out of the rest.

#![deny(missing_docs)]

mod checkpoint;
mod graph;
mod ptq;

pub use checkpoint::FloatCheckpoint;
pub use ptq::{quantize, Quantized};

use bql_model::arch::{ArchSpec, LayerSpec};
use bql_model::bits::BitMatrix;
use bql_model::dataset::Dataset;
use bql_model::layers::{Conv2d, Dense, DenseOutput, Flatten, Layer, MapShape, MaxPool2d, Shape};
use bql_model::reference::Engine;
use bql_model::semantics::{AccumulatorKind, BatchNorm};
use bql_model::{FloatLayer, InputEncoding, InputSpec, Network};
use candle_core::{Device, Tensor, Var, D};
use candle_nn::{ModuleT, Optimizer, ParamsAdamW, VarMap};
use graph::{Model, Node};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// What went wrong in training.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A candle operation failed.
    Candle,
    /// The model crate refused the folded network or a dataset.
    Model,
    /// The configuration cannot be trained (architecture, dataset, sizes).
    InvalidConfig,
    /// The architecture asks for something training does not do.
    Unsupported,
    /// A float checkpoint could not be written or read, or is not one.
    Checkpoint,
}

/// A training error: a kind to match on, a message to act on, and the source when there is one.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e.as_ref() as _)
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error {
            kind: ErrorKind::Candle,
            message: "candle".into(),
            source: Some(Box::new(e)),
        }
    }
}

impl From<bql_model::Error> for Error {
    fn from(e: bql_model::Error) -> Self {
        Error {
            kind: ErrorKind::Model,
            message: "model".into(),
            source: Some(Box::new(e)),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that determines a training run.
#[derive(Clone)]
pub struct TrainConfig {
    /// The architecture (`bql_model::arch` syntax: `784-256-10` or `c32k3-p2-f256-f10`).
    pub arch: ArchSpec,
    /// Input encoding of the first layer.
    pub input: InputEncoding,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Learning rate at the start.
    pub lr_start: f64,
    /// Learning rate at the end (exponential decay between the two).
    pub lr_end: f64,
    /// Dropout probability on the input pixels.
    pub dropout_input: f32,
    /// Dropout probability on the activations of hidden dense layers.
    pub dropout_hidden: f32,
    /// Largest random shift of training images, in pixels (0 disables augmentation).
    pub shift: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// BatchNorm momentum (candle's convention: weight of the new batch statistic).
    pub bn_momentum: f64,
    /// After training, recompute BatchNorm statistics exactly over the unaugmented training set
    /// (MLPs only). Off by default: measured on MNIST it cost 0.1-0.2 % accuracy
    /// (docs/training.md).
    pub recalibrate: bool,
    /// Hold out the last `validation` training images (never trained on); after every epoch the
    /// folded integer model is scored on them and the best epoch's model is kept. 0: the last
    /// epoch's model.
    pub validation: usize,
    /// Name written into the model file.
    pub name: String,
    /// Binary (QAT) or float (the first step of post-training quantization).
    pub precision: Precision,
    /// Start from a float checkpoint's parameters instead of a random initialization (QAT
    /// fine-tuning of a float model).
    pub init: Option<FloatCheckpoint>,
}

/// What the training graph computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Binary weights and activations through straight-through estimators (QAT).
    Binary,
    /// Real weights and hardtanh activations: a float model to binarize afterwards
    /// ([`quantize`]) or to fine-tune from ([`TrainConfig::init`]).
    Float,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            arch: bql_model::arch::parse("784-256-256-256-10").expect("a valid architecture"),
            input: InputEncoding::Binary { threshold: 128 },
            epochs: 64,
            batch: 100,
            lr_start: 3e-3,
            lr_end: 1e-5,
            dropout_input: 0.0,
            dropout_hidden: 0.0,
            shift: 1,
            seed: 1,
            bn_momentum: 0.02,
            recalibrate: false,
            validation: 0,
            name: String::new(),
            precision: Precision::Binary,
            init: None,
        }
    }
}

/// Figures of one finished epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy during the epoch (train mode, augmented).
    pub train_accuracy: f64,
    /// Accuracy of the float graph in eval mode on the test set.
    pub test_accuracy: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Accuracy of the folded integer model on the held-out validation images, if any.
    pub validation_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// What a training run produced.
pub struct Trained {
    /// The folded integer network, with its float parameters.
    pub network: Network,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
    /// Test images on which candle's f32 eval-mode graph and the folded integer network predict
    /// different classes (of the final graph; with validation, the kept epoch may be earlier, and
    /// this compares the final graph with the final fold).
    pub f32_disagreements: usize,
    /// The epoch whose model was kept (1-based).
    pub kept_epoch: usize,
}

/// Progress callbacks: `step(done, total)` after each mini-batch, `epoch(report)` after each epoch.
pub trait Progress {
    /// A mini-batch finished.
    fn step(&mut self, _done: usize, _total: usize) {}
    /// An epoch finished.
    fn epoch(&mut self, _report: &EpochReport) {}
}

/// First-layer operands for a batch: +-1 for binary input, `pixel / 255` for 8-bit input,
/// `table[pixel] / 255` for a pixel table (the float graph's `x = acc / 255`).
fn operands(
    input: InputEncoding,
    pixels: &[u8],
    n: usize,
    len: usize,
    dev: &Device,
) -> Result<Tensor> {
    let data: Vec<f32> = match input {
        InputEncoding::Binary { threshold } => pixels
            .iter()
            .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
            .collect(),
        InputEncoding::U8 => pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        InputEncoding::Table(t) => pixels
            .iter()
            .map(|&p| f32::from(t.0[usize::from(p)]) / 255.0)
            .collect(),
    };
    Ok(Tensor::from_vec(data, (n, len), dev)?)
}

/// Copies image `src` (`h x w x c`) into `dst` shifted by (`dx`, `dy`), filling with zeros.
fn shifted(src: &[u8], (h, w, c): (usize, usize, usize), dx: i64, dy: i64, dst: &mut [u8]) {
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let (sx, sy) = (x - dx, y - dy);
            let to = (y as usize * w + x as usize) * c;
            if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                let from = (sy as usize * w + sx as usize) * c;
                dst[to..to + c].copy_from_slice(&src[from..from + c]);
            } else {
                dst[to..to + c].fill(0);
            }
        }
    }
}

fn dropout_mask(rng: &mut StdRng, p: f32, n: usize, width: usize, dev: &Device) -> Result<Tensor> {
    let keep = 1.0 - p;
    let data: Vec<f32> = (0..n * width)
        .map(|_| {
            if rng.gen::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(data, (n, width), dev)?)
}

/// The batch of images `start..start + n` as the model's first layer takes it.
fn batch_input(
    model: &Model,
    input: InputEncoding,
    data: &Dataset,
    pixels: &[u8],
    n: usize,
    dev: &Device,
) -> Result<Tensor> {
    let x = operands(input, pixels, n, data.image_len(), dev)?;
    model.input_view(x, data.height, data.width, data.channels)
}

fn eval_predictions(
    model: &Model,
    input: InputEncoding,
    data: &Dataset,
    dev: &Device,
) -> Result<Vec<u32>> {
    let len = data.image_len();
    let mut out = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(500) {
        let n = (data.len() - start).min(500);
        let x = batch_input(
            model,
            input,
            data,
            &data.pixels[start * len..(start + n) * len],
            n,
            dev,
        )?;
        let logits = model.forward(&x, false, None)?;
        out.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
    }
    Ok(out)
}

/// Replaces every BatchNorm's running statistics by the exact mean and (unbiased) variance of
/// its input over the whole training set, unaugmented, layer after layer with the earlier layers
/// already recalibrated (MLPs). The idea: running averages trail the weights and see shifted
/// images. Measured, it lowered test accuracy (97.70 -> 97.61 % binary, 98.48 -> 98.27 % u8),
/// so it is opt-in.
fn recalibrate(model: &Model, input: InputEncoding, data: &Dataset, dev: &Device) -> Result<()> {
    let len = data.image_len();
    let (weights, bns) = (model.weights(), model.batch_norms());
    for l in 0..bns.len() {
        let width = weights[l].dim(0)?;
        let (mut sum, mut sumsq) = (vec![0f64; width], vec![0f64; width]);
        for start in (0..data.len()).step_by(1000) {
            let n = (data.len() - start).min(1000);
            let mut h = operands(
                input,
                &data.pixels[start * len..(start + n) * len],
                n,
                len,
                dev,
            )?;
            for k in 0..=l {
                let z = h.matmul(&graph::binarized(weights[k])?.t()?)?;
                if k == l {
                    for row in z.to_vec2::<f32>()? {
                        for (j, v) in row.into_iter().enumerate() {
                            sum[j] += v as f64;
                            sumsq[j] += v as f64 * v as f64;
                        }
                    }
                } else {
                    h = graph::binarized_activation(&bns[k].forward_t(&z, false)?)?;
                }
            }
        }
        let count = data.len() as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let var: Vec<f32> = sum
            .iter()
            .zip(&sumsq)
            .map(|(s, q)| ((q - s * s / count) / (count - 1.0).max(1.0)) as f32)
            .collect();
        let bn = bns[l];
        Var::from_tensor(bn.running_mean())?.set(&Tensor::from_vec(mean, width, dev)?)?;
        Var::from_tensor(bn.running_var())?.set(&Tensor::from_vec(var, width, dev)?)?;
    }
    Ok(())
}

/// The dataset without its last `n` images, and those images.
fn split_off(data: &Dataset, n: usize) -> (Dataset, Dataset) {
    let keep = data.len() - n;
    let len = data.image_len();
    let part = |range: std::ops::Range<usize>| Dataset {
        height: data.height,
        width: data.width,
        channels: data.channels,
        pixels: data.pixels[range.start * len..range.end * len].to_vec(),
        labels: data.labels[range].to_vec(),
    };
    (part(0..keep), part(keep..data.len()))
}

pub(crate) fn invalid(m: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, m)
}

/// The integer network's layers for `cfg` on images of `data`'s shape, with zero weights and
/// thresholds: the shapes both the training graph and the fold follow. A flatten is inserted
/// before the first dense layer that follows a map.
pub fn skeleton(cfg: &TrainConfig, data: &Dataset) -> Result<Vec<Layer>> {
    let input = MapShape {
        height: data.height,
        width: data.width,
        channels: data.channels,
    };
    if let Some(n) = cfg.arch.input_len.filter(|&n| n != input.len()) {
        return Err(invalid(format!(
            "the architecture's input width {n} does not match the {input} images ({} values)",
            input.len()
        )));
    }
    if let Some(s) = cfg.arch.input_shape.filter(|&s| s != input) {
        return Err(invalid(format!(
            "the architecture's input shape {s} does not match the {input} images"
        )));
    }
    let mut layers = Vec::new();
    let mut current = Shape::Map(input);
    let count = cfg.arch.layers.len();
    for (i, spec) in cfg.arch.layers.iter().enumerate() {
        let accumulator = if layers.is_empty() && cfg.input.pixel_operands().is_some() {
            AccumulatorKind::SignedPixelSum
        } else {
            AccumulatorKind::Popcount
        };
        let layer = match (*spec, current) {
            (
                LayerSpec::Conv {
                    channels,
                    kernel,
                    stride,
                    padding,
                },
                Shape::Map(map),
            ) => Layer::Conv2d(Conv2d {
                input: map,
                kernel,
                stride,
                padding,
                weights: BitMatrix::zeros(channels, kernel * kernel * map.channels),
                accumulator,
                thresholds: vec![0; channels],
            }),
            (LayerSpec::Pool { kernel }, Shape::Map(map)) => {
                Layer::MaxPool2d(MaxPool2d { input: map, kernel })
            }
            (LayerSpec::Dense { outputs }, current) => {
                if let (Shape::Map(map), false) = (current, layers.is_empty()) {
                    layers.push(Layer::Flatten(Flatten { input: map }));
                }
                let output = if i + 1 == count {
                    DenseOutput::Scores
                } else {
                    DenseOutput::Threshold(vec![0; outputs])
                };
                Layer::Dense(Dense {
                    weights: BitMatrix::zeros(outputs, current.len()),
                    accumulator,
                    output,
                })
            }
            (_, Shape::Vector(_)) => {
                return Err(invalid(format!(
                    "layer {} of the architecture needs a map, but a dense layer came before it",
                    i + 1
                )))
            }
        };
        current = layer.output_shape();
        layers.push(layer);
    }
    let net = Network {
        name: String::new(),
        input: InputSpec {
            height: input.height,
            width: input.width,
            channels: input.channels,
            encoding: cfg.input,
        },
        layers,
        float: None,
        provenance: serde_json::Value::Null,
    };
    net.validate()
        .map_err(|e| invalid(format!("the architecture does not fit {input} images: {e}")))?;
    Ok(net.layers)
}

fn check_config(cfg: &TrainConfig, train: &Dataset, test: &Dataset) -> Result<()> {
    if (test.height, test.width, test.channels) != (train.height, train.width, train.channels) {
        return Err(invalid(
            "the test images differ in shape from the training images".into(),
        ));
    }
    let classes = cfg.arch.classes().unwrap_or(0);
    if let Some(&bad) = train
        .labels
        .iter()
        .chain(&test.labels)
        .find(|&&l| l as usize >= classes)
    {
        return Err(invalid(format!(
            "label {bad} does not fit the {classes} output classes"
        )));
    }
    if cfg.batch == 0 || cfg.epochs == 0 {
        return Err(invalid("epochs and batch size must be at least 1".into()));
    }
    if cfg.recalibrate && !cfg.arch.is_mlp() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "--recalibrate is implemented for MLPs only",
        ));
    }
    Ok(())
}

/// What a run trains: its images, the graph and the integer skeleton it folds into.
struct Run {
    train: Dataset,
    validation: Dataset,
    skeleton: Vec<Layer>,
    model: Model,
    rng: StdRng,
    dev: Device,
}

/// Checks the configuration, holds out the validation images and builds the graph (from the
/// seed, then from [`TrainConfig::init`] when given).
fn prepare(cfg: &TrainConfig, train: &Dataset, test: &Dataset) -> Result<Run> {
    check_config(cfg, train, test)?;
    if cfg.validation >= train.len() {
        return Err(invalid(format!(
            "--validation {} leaves no training images (the set has {})",
            cfg.validation,
            train.len()
        )));
    }
    let (train, validation) = split_off(train, cfg.validation);
    let skeleton = skeleton(cfg, &train)?;
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let varmap = VarMap::new();
    let model = Model::new(cfg, &skeleton, &varmap, &mut rng, &dev)?;
    if let Some(init) = &cfg.init {
        init.check_matches(cfg, &train)?;
        model.load_tensors(&init.tensors)?;
    }
    Ok(Run {
        train,
        validation,
        skeleton,
        model,
        rng,
        dev,
    })
}

/// Trains `run.model` for the configured epochs; after each, `after_epoch(model, epoch)` may
/// score it on the validation images.
fn fit(
    cfg: &TrainConfig,
    run: &mut Run,
    test: &Dataset,
    progress: &mut dyn Progress,
    after_epoch: &mut dyn FnMut(&Model, usize) -> Result<Option<f64>>,
) -> Result<Vec<EpochReport>> {
    let (model, train, dev) = (&run.model, &run.train, &run.dev);
    let mut opt = candle_nn::AdamW::new(
        model.trainable(),
        ParamsAdamW {
            lr: cfg.lr_start,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let hidden_widths: Vec<usize> = run
        .skeleton
        .iter()
        .filter_map(|l| l.as_dense().filter(|_| !l.is_scores()).map(|d| d.outputs()))
        .collect();
    let len = train.image_len();
    let shape = (train.height, train.width, train.channels);
    let steps_per_epoch = train.len().div_ceil(cfg.batch);
    let total_steps = steps_per_epoch * cfg.epochs;
    let decay = (cfg.lr_end / cfg.lr_start).powf(1.0 / (cfg.epochs.max(2) - 1) as f64);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut batch_pixels = vec![0u8; cfg.batch * len];
    let mut history = Vec::new();
    let rng = &mut run.rng;
    for epoch in 0..cfg.epochs {
        let started = std::time::Instant::now();
        let lr = cfg.lr_start * decay.powi(epoch as i32);
        opt.set_learning_rate(lr);
        order.shuffle(rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (b, idx) in order.chunks(cfg.batch).enumerate() {
            let n = idx.len();
            for (j, &i) in idx.iter().enumerate() {
                let dst = &mut batch_pixels[j * len..(j + 1) * len];
                if cfg.shift > 0 {
                    let s = cfg.shift as i64;
                    let (dx, dy) = (rng.gen_range(-s..=s), rng.gen_range(-s..=s));
                    shifted(train.image(i), shape, dx, dy, dst);
                } else {
                    dst.copy_from_slice(train.image(i));
                }
            }
            let x = batch_input(model, cfg.input, train, &batch_pixels[..n * len], n, dev)?;
            let labels: Vec<u32> = idx.iter().map(|&i| train.labels[i] as u32).collect();
            let y = Tensor::from_vec(labels.clone(), n, dev)?;
            let masks = if cfg.dropout_input > 0.0 || cfg.dropout_hidden > 0.0 {
                let mut m =
                    vec![dropout_mask(rng, cfg.dropout_input, n, len, dev)?.reshape(x.shape())?];
                for &w in &hidden_widths {
                    m.push(dropout_mask(rng, cfg.dropout_hidden, n, w, dev)?);
                }
                Some(m)
            } else {
                None
            };
            let logits = model.forward(&x, true, masks.as_deref())?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            opt.backward_step(&loss)?;
            model.clip()?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * n as f64;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            correct += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
            progress.step(epoch * steps_per_epoch + b + 1, total_steps);
        }
        let pred = eval_predictions(model, cfg.input, test, dev)?;
        let test_correct = pred
            .iter()
            .zip(&test.labels)
            .filter(|(&p, &l)| p == l as u32)
            .count();
        let report = EpochReport {
            epoch: epoch + 1,
            loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            test_accuracy: test_correct as f64 / test.len().max(1) as f64,
            lr,
            validation_accuracy: after_epoch(model, epoch + 1)?,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.epoch(&report);
        history.push(report);
    }
    Ok(history)
}

/// Trains a binarized network (QAT) on `train`, evaluating on `test` after each epoch, and
/// folds it.
pub fn train(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    progress: &mut dyn Progress,
) -> Result<Trained> {
    if cfg.precision != Precision::Binary {
        return Err(invalid(
            "train() trains binarized networks; a float model comes from train_float()".into(),
        ));
    }
    let mut run = prepare(cfg, train, test)?;
    let mut best: Option<(f64, usize, Network)> = None;
    let (skeleton, validation) = (run.skeleton.clone(), run.validation.clone());
    let folded_on = run.train.clone();
    let history = fit(cfg, &mut run, test, progress, &mut |model, epoch| {
        if validation.is_empty() {
            return Ok(None);
        }
        let net = fold(model, skeleton.clone(), cfg, &folded_on)?;
        let (_, pred) = Engine::new(&net).scores_batch(&validation.pixels);
        let accuracy = validation.count_correct(&pred) as f64 / validation.len() as f64;
        if best.as_ref().is_none_or(|(a, _, _)| accuracy > *a) {
            best = Some((accuracy, epoch, net));
        }
        Ok(Some(accuracy))
    })?;
    let (model, dev) = (&run.model, &run.dev);
    if cfg.recalibrate {
        recalibrate(model, cfg.input, &run.train, dev)?;
    }
    let last = fold(model, run.skeleton.clone(), cfg, &run.train)?;
    let float_pred = eval_predictions(model, cfg.input, test, dev)?;
    let (_, int_pred) = Engine::new(&last).scores_batch(&test.pixels);
    let f32_disagreements = float_pred
        .iter()
        .zip(&int_pred)
        .filter(|(&f, &i)| f as usize != i)
        .count();
    let (network, kept_epoch) = match best {
        Some((_, epoch, net)) => (net, epoch),
        None => (last, cfg.epochs),
    };
    Ok(Trained {
        network,
        history,
        f32_disagreements,
        kept_epoch,
    })
}

/// What a float training run produced.
pub struct FloatTrained {
    /// The float model.
    pub checkpoint: FloatCheckpoint,
    /// One report per epoch (test accuracy of the float graph).
    pub history: Vec<EpochReport>,
}

/// Trains the float graph of `cfg.arch` (real weights, hardtanh activations): the starting
/// point of post-training quantization ([`quantize`]) and of QAT from a float initialization.
pub fn train_float(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    progress: &mut dyn Progress,
) -> Result<FloatTrained> {
    if cfg.precision != Precision::Float {
        return Err(invalid("train_float() needs precision Float".into()));
    }
    let mut run = prepare(cfg, train, test)?;
    let history = fit(cfg, &mut run, test, progress, &mut |_, _| Ok(None))?;
    let checkpoint = FloatCheckpoint::of(&run.model, cfg, &run.train)?;
    Ok(FloatTrained {
        checkpoint,
        history,
    })
}

/// The trained BatchNorm of one layer as bql parameters, one per output.
fn batchnorm_params(bn: &candle_nn::BatchNorm) -> Result<Vec<BatchNorm>> {
    let mean = bn.running_mean().to_vec1::<f32>()?;
    let var = bn.running_var().to_vec1::<f32>()?;
    let (g, b) = bn
        .weight_and_bias()
        .ok_or_else(|| invalid("BatchNorm without affine".into()))?;
    let (gamma, beta) = (g.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
    Ok((0..mean.len())
        .map(|o| BatchNorm {
            gamma: gamma[o],
            beta: beta[o],
            mean: mean[o],
            var: var[o],
            eps: bn.eps() as f32,
        })
        .collect())
}

/// Binarized weights of a layer, `(O, I)` with columns in bql's order (`(ky, kx, c)` for a
/// convolution, as the graph keeps them).
fn weight_bits(w: &Var) -> Result<(usize, usize, Vec<bool>)> {
    let (rows, cols) = w.as_tensor().dims2()?;
    let values = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    Ok((rows, cols, values.into_iter().map(|v| v >= 0.0).collect()))
}

/// Folds the trained graph into an integer network (see `docs/semantics.md`).
fn fold(model: &Model, skeleton: Vec<Layer>, cfg: &TrainConfig, data: &Dataset) -> Result<Network> {
    let mut layers = Vec::with_capacity(skeleton.len());
    let mut float = Vec::with_capacity(skeleton.len());
    for (layer, node) in skeleton.into_iter().zip(&model.nodes) {
        let (folded, params) = match (layer, node) {
            (Layer::Conv2d(c), Node::Conv { w, bn, .. }) => {
                let (rows, cols, bits) = weight_bits(w)?;
                let params = batchnorm_params(bn)?;
                let weights = BitMatrix::from_bools(rows, cols, &bits);
                let conv = Conv2d::from_batchnorm(
                    c.input,
                    c.kernel,
                    c.stride,
                    c.padding,
                    weights,
                    c.accumulator,
                    &params,
                );
                (Layer::Conv2d(conv), FloatLayer::BatchNorm(params))
            }
            (Layer::Dense(d), Node::Dense { w, bn }) => {
                let (rows, cols, bits) = weight_bits(w)?;
                let weights = BitMatrix::from_bools(rows, cols, &bits);
                match bn {
                    Some(bn) => {
                        let params = batchnorm_params(bn)?;
                        let dense = Dense::from_batchnorm(weights, d.accumulator, &params);
                        (Layer::Dense(dense), FloatLayer::BatchNorm(params))
                    }
                    None => {
                        let scale = model.log_scale.as_tensor().exp()?.to_vec1::<f32>()?[0];
                        let dense = Dense {
                            weights,
                            accumulator: d.accumulator,
                            output: DenseOutput::Scores,
                        };
                        (Layer::Dense(dense), FloatLayer::Scale(scale))
                    }
                }
            }
            (other, _) => (other, FloatLayer::None),
        };
        layers.push(folded);
        float.push(params);
    }
    let network = Network {
        name: cfg.name.clone(),
        input: InputSpec {
            height: data.height,
            width: data.width,
            channels: data.channels,
            encoding: cfg.input,
        },
        layers,
        float: Some(float),
        provenance: provenance(cfg),
    };
    network.validate()?;
    Ok(network)
}

pub(crate) fn provenance(cfg: &TrainConfig) -> bql_model::format::Provenance {
    bql_model::format::provenance(&[
        ("tool", format!("bql-train {}", env!("CARGO_PKG_VERSION"))),
        ("arch", cfg.arch.to_string()),
        ("input", format!("{:?}", cfg.input)),
        ("epochs", cfg.epochs.to_string()),
        ("batch", cfg.batch.to_string()),
        (
            "lr",
            format!("{} -> {} (exponential)", cfg.lr_start, cfg.lr_end),
        ),
        (
            "dropout",
            format!("input {}, hidden {}", cfg.dropout_input, cfg.dropout_hidden),
        ),
        ("shift", cfg.shift.to_string()),
        ("seed", cfg.seed.to_string()),
        ("bn_recalibration", cfg.recalibrate.to_string()),
        ("validation", cfg.validation.to_string()),
        ("precision", format!("{:?}", cfg.precision).to_lowercase()),
        (
            "init",
            cfg.init
                .as_ref()
                .map_or("random".into(), |c| format!("float checkpoint {}", c.arch)),
        ),
    ])
}
