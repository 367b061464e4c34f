//! `bql bench`: the packed XNOR-popcount reference against an f32 GEMM of the same network.
//!
//! Both run on the same images with the same rayon thread pool; the f32 version uses
//! matrixmultiply's sgemm on +-1.0 weights and float threshold compares, in chunks of images.
//! The two must predict the same classes (checked), so the ratio compares equal work.

use std::time::Instant;

use anyhow::{bail, Result};
use bql_model::dataset::Split;
use bql_model::layers::DenseOutput;
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

/// The network as f32 matrices: per layer, weights transposed (inputs x outputs) as +-1.0, and
/// per neuron the float threshold on the +-1 dot product.
struct F32Layer {
    inputs: usize,
    outputs: usize,
    /// Weights transposed: `inputs x outputs`, +-1.0.
    wt: Vec<f32>,
    /// Per-neuron threshold on the dot product; `None` for the scores layer.
    thresholds: Option<Vec<f32>>,
}

struct F32Net {
    layers: Vec<F32Layer>,
    input: InputEncoding,
    classes: usize,
}

impl F32Net {
    fn new(net: &Network) -> Result<Self> {
        let layers = net
            .layers
            .iter()
            .enumerate()
            .map(|(li, l)| {
                let Some(d) = l.as_dense() else {
                    bail!(
                        "the f32 bench handles dense layers only, not {}",
                        l.kind_name()
                    );
                };
                let (k, m) = (d.inputs(), d.outputs());
                let mut wt = vec![0f32; k * m];
                for o in 0..m {
                    for i in 0..k {
                        wt[i * m + o] = if d.weights.get(o, i) { 1.0 } else { -1.0 };
                    }
                }
                let signed = li == 0 && net.input.encoding == InputEncoding::U8;
                // Popcount p >= T  <=>  dot = 2p - k >= 2T - k; a pixel sum is the dot itself.
                let thr = match &d.output {
                    DenseOutput::Threshold(t) => Some(
                        t.iter()
                            .map(|&t| {
                                if signed {
                                    t as f32
                                } else {
                                    (2 * t - k as i64) as f32
                                }
                            })
                            .collect(),
                    ),
                    DenseOutput::Scores => None,
                };
                Ok(F32Layer {
                    inputs: k,
                    outputs: m,
                    wt,
                    thresholds: thr,
                })
            })
            .collect::<Result<_>>()?;
        Ok(F32Net {
            layers,
            input: net.input.encoding,
            classes: net.classes(),
        })
    }

    /// Classes of `n` images.
    fn classify(&self, pixels: &[u8], n: usize) -> Vec<usize> {
        let k0 = self.layers[0].inputs;
        let mut x: Vec<f32> = match self.input {
            InputEncoding::Binary { threshold } => pixels
                .iter()
                .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
                .collect(),
            InputEncoding::U8 => pixels.iter().map(|&p| p as f32).collect(),
        };
        debug_assert_eq!(x.len(), n * k0);
        for F32Layer {
            inputs: k,
            outputs: m,
            wt,
            thresholds: thr,
        } in &self.layers
        {
            let mut y = vec![0f32; n * m];
            // SAFETY: x is n x k, wt is k x m, y is n x m, all row-major and fully allocated.
            unsafe {
                matrixmultiply::sgemm(
                    n,
                    *k,
                    *m,
                    1.0,
                    x.as_ptr(),
                    *k as isize,
                    1,
                    wt.as_ptr(),
                    *m as isize,
                    1,
                    0.0,
                    y.as_mut_ptr(),
                    *m as isize,
                    1,
                );
            }
            if let Some(t) = thr {
                for row in y.chunks_mut(*m) {
                    for (v, &t) in row.iter_mut().zip(t) {
                        *v = if *v >= t { 1.0 } else { -1.0 };
                    }
                }
            }
            x = y;
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
    const CHUNK: usize = 256;
    let run_f32 = || -> Vec<usize> {
        data.pixels
            .par_chunks(CHUNK * len)
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
    }
    Ok(())
}
