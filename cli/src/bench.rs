//! `bql bench`: the packed XNOR-popcount reference against an f32 GEMM of the same network.
//!
//! Both run on the same images with the same rayon thread pool; the f32 version uses
//! matrixmultiply's sgemm on +-1.0 weights and float threshold compares, in chunks of images.
//! The two must predict the same classes (checked), so the ratio compares equal work.

use std::time::Instant;

use anyhow::{bail, Result};
use bql_model::bits::BitMatrix;
use bql_model::dataset::Split;
use bql_model::layers::{Conv2d, Layer, MaxPool2d};
use bql_model::reference::Engine;
use bql_model::semantics::argmax;
use bql_model::{InputEncoding, Network};
use rayon::prelude::*;

use crate::args::ModelData;
use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: ModelData,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 7)]
    repeat: usize,
}

/// One layer in f32: weights as +-1.0 transposed for sgemm (`fan_in x outputs`), and per output
/// the float threshold on the dot product (`None` for the scores layer).
struct F32Weights {
    fan_in: usize,
    outputs: usize,
    wt: Vec<f32>,
    thresholds: Option<Vec<f32>>,
}

impl F32Weights {
    /// `weights` rows are outputs; `signed` for the 8-bit first layer, whose accumulator is the
    /// dot product itself (a popcount `p >= T` is the dot product `2p - n >= 2T - n`).
    fn new(weights: &BitMatrix, thresholds: Option<&[i64]>, signed: bool) -> Self {
        let (n, m) = (weights.cols(), weights.rows());
        let mut wt = vec![0f32; n * m];
        for o in 0..m {
            for i in 0..n {
                wt[i * m + o] = if weights.get(o, i) { 1.0 } else { -1.0 };
            }
        }
        let thresholds = thresholds.map(|t| {
            t.iter()
                .map(|&t| {
                    if signed {
                        t as f32
                    } else {
                        (2 * t - n as i64) as f32
                    }
                })
                .collect()
        });
        F32Weights {
            fan_in: n,
            outputs: m,
            wt,
            thresholds,
        }
    }

    /// `y = x * wt` for `rows` rows of `x`, then the thresholds (to +-1) where there are any.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (k, m) = (self.fan_in, self.outputs);
        let mut y = vec![0f32; rows * m];
        // SAFETY: x is rows x k, wt is k x m, y is rows x m, all row-major and fully allocated.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                m,
                1.0,
                x.as_ptr(),
                k as isize,
                1,
                self.wt.as_ptr(),
                m as isize,
                1,
                0.0,
                y.as_mut_ptr(),
                m as isize,
                1,
            );
        }
        if let Some(t) = &self.thresholds {
            for row in y.chunks_mut(m) {
                for (v, &t) in row.iter_mut().zip(t) {
                    *v = if *v >= t { 1.0 } else { -1.0 };
                }
            }
        }
        y
    }
}

/// A layer of the f32 network.
enum F32Layer {
    Dense(F32Weights),
    /// A convolution as im2col + sgemm; `pad` is the padded operand's value.
    Conv {
        conv: Conv2d,
        weights: F32Weights,
        pad: f32,
    },
    Pool(MaxPool2d),
    Flatten,
}

/// The network in f32 (the comparison `bql bench` makes): +-1.0 weights, sgemm, float threshold
/// compares; convolutions through im2col, one image at a time.
struct F32Net {
    layers: Vec<F32Layer>,
    input: InputEncoding,
    input_len: usize,
    classes: usize,
}

impl F32Net {
    fn new(net: &Network) -> Result<Self> {
        let layers = net
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let signed = i == 0 && net.input.encoding.pixel_operands().is_some();
                Ok(match l {
                    Layer::Dense(d) => {
                        F32Layer::Dense(F32Weights::new(&d.weights, l.thresholds(), signed))
                    }
                    Layer::Conv2d(c) => F32Layer::Conv {
                        conv: c.clone(),
                        weights: F32Weights::new(&c.weights, Some(&c.thresholds), signed),
                        pad: if signed {
                            0.0
                        } else if c.pad_bit() {
                            1.0
                        } else {
                            -1.0
                        },
                    },
                    Layer::MaxPool2d(p) => F32Layer::Pool(*p),
                    Layer::Flatten(_) => F32Layer::Flatten,
                    other => bail!("the f32 bench has no {} layer", other.kind_name()),
                })
            })
            .collect::<Result<_>>()?;
        Ok(F32Net {
            layers,
            input: net.input.encoding,
            input_len: net.input.len(),
            classes: net.classes(),
        })
    }

    /// Classes of `n` images.
    fn classify(&self, pixels: &[u8], n: usize) -> Vec<usize> {
        let mut x: Vec<f32> = match self.input {
            InputEncoding::Binary { threshold } => pixels
                .iter()
                .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
                .collect(),
            InputEncoding::U8 => pixels.iter().map(|&p| p as f32).collect(),
            InputEncoding::Table(t) => pixels
                .iter()
                .map(|&p| f32::from(t.0[usize::from(p)]))
                .collect(),
        };
        let mut len = self.input_len;
        for layer in &self.layers {
            x = match layer {
                F32Layer::Dense(w) => w.apply(&x, n),
                F32Layer::Conv { conv, weights, pad } => x
                    .chunks(len)
                    .flat_map(|image| {
                        weights.apply(
                            &im2col(conv, image, *pad),
                            conv.output().height * conv.output().width,
                        )
                    })
                    .collect(),
                F32Layer::Pool(p) => x.chunks(len).flat_map(|image| max_pool(p, image)).collect(),
                F32Layer::Flatten => x,
            };
            len = x.len() / n.max(1);
        }
        // Scores are affine in the dot product with a positive slope: argmax is unchanged.
        x.chunks(self.classes)
            .map(|s| {
                let ints: Vec<i32> = s.iter().map(|&v| v as i32).collect();
                argmax(&ints).unwrap_or(0)
            })
            .collect()
    }
}

/// The windows of one image's map as rows (one per output position) in column order
/// `(ky, kx, c)`, padded positions as `pad`.
fn im2col(c: &Conv2d, x: &[f32], pad: f32) -> Vec<f32> {
    let (map, out, k, ch) = (c.input, c.output(), c.kernel, c.input.channels);
    let (top, left) = c.pad_before();
    let mut cols = Vec::with_capacity(out.height * out.width * c.window_len());
    for oy in 0..out.height {
        for ox in 0..out.width {
            for ky in 0..k {
                let iy = (oy * c.stride + ky) as isize - top as isize;
                for kx in 0..k {
                    let ix = (ox * c.stride + kx) as isize - left as isize;
                    if iy < 0 || ix < 0 || iy as usize >= map.height || ix as usize >= map.width {
                        cols.extend(std::iter::repeat_n(pad, ch));
                    } else {
                        let at = (iy as usize * map.width + ix as usize) * ch;
                        cols.extend_from_slice(&x[at..at + ch]);
                    }
                }
            }
        }
    }
    cols
}

fn max_pool(p: &MaxPool2d, x: &[f32]) -> Vec<f32> {
    let (map, out, k) = (p.input, p.output(), p.kernel);
    let mut y = vec![f32::NEG_INFINITY; out.len()];
    for py in 0..out.height {
        for px in 0..out.width {
            let dst = &mut y[(py * out.width + px) * map.channels..][..map.channels];
            for dy in 0..k {
                for dx in 0..k {
                    let at = ((py * k + dy) * map.width + px * k + dx) * map.channels;
                    for (d, &v) in dst.iter_mut().zip(&x[at..at + map.channels]) {
                        *d = d.max(v);
                    }
                }
            }
        }
    }
    y
}

/// The cores' clock in Hz as the kernel reports it (`cpu MHz` in /proc/cpuinfo), if it does.
fn cpu_hz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(mhz * 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(a: Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.common.model.as_deref())?;
    let (data, dir) =
        defaults::load_split(a.common.dataset.as_deref(), Split::Test, a.common.limit)?;
    defaults::check_fits(&net, &data)?;
    if data.is_empty() || a.repeat == 0 {
        bail!("nothing to benchmark: no images or --repeat 0");
    }
    let n = data.len();
    let len = data.image_len();
    let engine = Engine::new(&net);
    let f32net = F32Net::new(&net)?;
    // Chunks of images per task: large for MLPs (one sgemm per layer and chunk), small for CNNs
    // (their convolutions run image by image).
    let chunk = if net.is_mlp() { 256 } else { 16 };
    let run_f32 = || -> Vec<usize> {
        data.pixels
            .par_chunks(chunk * len)
            .flat_map_iter(|c| f32net.classify(c, c.len() / len))
            .collect()
    };
    // Warm up both, and check they agree.
    let (_, ref_pred) = engine.scores_batch(&data.pixels);
    let f32_pred = run_f32();
    let disagree = ref_pred
        .iter()
        .zip(&f32_pred)
        .filter(|(a, b)| a != b)
        .count();
    if disagree != 0 {
        bail!("the f32 implementation disagrees with the reference on {disagree} images: a bug");
    }
    let (mut t_ref, mut t_f32) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        let t = Instant::now();
        std::hint::black_box(engine.scores_batch(&data.pixels));
        t_ref.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(run_f32());
        t_f32.push(t.elapsed().as_secs_f64());
    }
    let (m_ref, m_f32) = (median(t_ref), median(t_f32));
    let ips = n as f64 / m_ref;
    let f32_ips = n as f64 / m_f32;
    let threads = rayon::current_num_threads();
    let kernel = engine.kernel();
    let hz = cpu_hz();
    let macs_per_cycle = hz.map(|hz| net.macs() as f64 * ips / threads as f64 / hz);
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "model": source,
                "dataset": dir.display().to_string(),
                "images": n,
                "repeat": a.repeat,
                "threads": threads,
                "images_per_s": ips,
                "f32_images_per_s": f32_ips,
                "speedup_vs_f32": ips / f32_ips,
                "macs_per_image": net.macs(),
                "kernel": kernel.name(),
                "kernel_peak_macs_per_cycle": kernel.peak_macs_per_cycle(),
                "cpu_mhz": hz.map(|h| h / 1e6),
                "macs_per_cycle_per_core": macs_per_cycle,
                "median_s": m_ref,
                "f32_median_s": m_f32,
            })
        );
    } else {
        println!(
            "{source}: {n} images, median of {} runs, {threads} threads",
            a.repeat
        );
        println!(
            "  reference (packed XNOR-popcount) {:>12.0} images/s  ({:.1} ms)",
            ips,
            m_ref * 1e3
        );
        println!(
            "  f32 GEMM (matrixmultiply)        {:>12.0} images/s  ({:.1} ms)",
            f32_ips,
            m_f32 * 1e3
        );
        println!(
            "  speedup                          {:>12.1}x  (same predictions on all images)",
            ips / f32_ips
        );
        match (macs_per_cycle, hz) {
            (Some(m), Some(hz)) => println!(
                "  binary MACs per cycle per core   {:>12.1}   ({} MACs/image at {:.0} MHz; the {} \
                 kernel's bound is {:.0}: {:.0} %)",
                m,
                net.macs(),
                hz / 1e6,
                kernel.name(),
                kernel.peak_macs_per_cycle(),
                100.0 * m / kernel.peak_macs_per_cycle()
            ),
            _ => println!("  (no clock frequency in /proc/cpuinfo: MACs per cycle not computed)"),
        }
    }
    Ok(())
}
