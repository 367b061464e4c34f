//! The float graph in eval mode, rerun from the float parameters a trained model keeps:
//! binarized weights, +-1 activations (or `pixel / 255` for an 8-bit input), BatchNorm with its
//! running statistics, max-pooling of +-1 values, and a positive output scale. Computed in f64,
//! independently of the integer path, so that comparing the two checks the BatchNorm fold and the
//! file's contents. Every dot product sums integers (+-1 times +-1 or a pixel value), which f64
//! holds exactly, so the order of the sums does not matter.

use crate::layers::{Conv2d, Layer, MaxPool2d};
use crate::network::{FloatLayer, InputEncoding, Network};
use crate::semantics::{argmax_f64, PIXEL_SCALE};

/// A layer with weights as the float graph sees them: the trained signs (rows of outputs with
/// gamma < 0 are stored negated in the integer model, so they are negated back) as +-1.0.
struct Weights {
    fan_in: usize,
    rows: Vec<f64>,
}

impl Weights {
    fn new(weights: &crate::bits::BitMatrix, params: &FloatLayer) -> Self {
        let n = weights.cols();
        let mut rows = Vec::with_capacity(weights.rows() * n);
        for o in 0..weights.rows() {
            let negated = matches!(params, FloatLayer::BatchNorm(bn) if bn[o].gamma < 0.0);
            rows.extend((0..n).map(|c| {
                if weights.get(o, c) != negated {
                    1.0
                } else {
                    -1.0
                }
            }));
        }
        Weights { fan_in: n, rows }
    }

    /// Activations of every output for operands `x` (divided by `scale` before BatchNorm).
    fn outputs<'a>(
        &'a self,
        params: &'a FloatLayer,
        x: &'a [f64],
        scale: f64,
    ) -> impl Iterator<Item = Option<f64>> + 'a {
        self.rows
            .chunks_exact(self.fan_in)
            .enumerate()
            .map(move |(o, w)| {
                let dot: f64 = w.iter().zip(x).map(|(w, x)| w * x).sum();
                activate(params, o, dot / scale)
            })
    }
}

/// The float graph of a network, prepared once for many images.
pub struct FloatGraph<'a> {
    net: &'a Network,
    float: &'a [FloatLayer],
    weights: Vec<Option<Weights>>,
}

impl<'a> FloatGraph<'a> {
    /// The graph of `net`, or `None` when it carries no float parameters.
    pub fn new(net: &'a Network) -> Option<Self> {
        let float = net.float.as_deref()?;
        let weights = net
            .layers
            .iter()
            .zip(float)
            .map(|(l, p)| match l {
                Layer::Dense(d) => Some(Weights::new(&d.weights, p)),
                Layer::Conv2d(c) => Some(Weights::new(&c.weights, p)),
                _ => None,
            })
            .collect();
        Some(FloatGraph {
            net,
            float,
            weights,
        })
    }

    /// Class predicted for one image (`None` if a layer's parameters do not fit it).
    pub fn classify(&self, pixels: &[u8]) -> Option<usize> {
        let mut x: Vec<f64> = match self.net.input.encoding {
            InputEncoding::Binary { threshold } => pixels
                .iter()
                .map(|&p| if p >= threshold { 1.0 } else { -1.0 })
                .collect(),
            InputEncoding::U8 => pixels.iter().map(|&p| p as f64).collect(),
            InputEncoding::Table(t) => pixels.iter().map(|&p| f64::from(t.0[p as usize])).collect(),
        };
        let u8_input = self.net.input.encoding.pixel_operands().is_some();
        for (i, layer) in self.net.layers.iter().enumerate() {
            let scale = if i == 0 && u8_input { PIXEL_SCALE } else { 1.0 };
            let params = &self.float[i];
            x = match (layer, &self.weights[i]) {
                (Layer::Dense(_), Some(w)) => {
                    w.outputs(params, &x, scale).collect::<Option<_>>()?
                }
                (Layer::Conv2d(c), Some(w)) => conv(c, w, params, &x, scale)?,
                (Layer::MaxPool2d(p), _) => max_pool(p, &x),
                (Layer::Flatten(_), _) => x,
                _ => return None,
            };
        }
        argmax_f64(&x)
    }
}

/// Class predicted by the float graph for one image, or `None` when the network carries no float
/// parameters.
pub fn classify(net: &Network, pixels: &[u8]) -> Option<usize> {
    FloatGraph::new(net)?.classify(pixels)
}

/// The neuron's activation after its pre-activation `dot`: sign(BN) or the scaled score.
fn activate(params: &FloatLayer, o: usize, dot: f64) -> Option<f64> {
    match params {
        FloatLayer::BatchNorm(bn) => Some(if bn.get(o)?.fires(dot) { 1.0 } else { -1.0 }),
        FloatLayer::Scale(s) => Some(*s as f64 * dot),
        FloatLayer::None => None,
    }
}

fn conv(c: &Conv2d, w: &Weights, params: &FloatLayer, x: &[f64], scale: f64) -> Option<Vec<f64>> {
    let (map, out, k) = (c.input, c.output(), c.kernel);
    let (top, left) = c.pad_before();
    // A padded operand: the pad bit as +-1, or pixel 0 for an 8-bit layer.
    let pad = if scale != 1.0 {
        0.0
    } else if c.pad_bit() {
        1.0
    } else {
        -1.0
    };
    let mut y = Vec::with_capacity(out.len());
    let mut window = Vec::with_capacity(c.window_len());
    for oy in 0..out.height {
        for ox in 0..out.width {
            window.clear();
            for ky in 0..k {
                for kx in 0..k {
                    let iy = (oy * c.stride + ky) as isize - top as isize;
                    let ix = (ox * c.stride + kx) as isize - left as isize;
                    if iy < 0 || ix < 0 || iy as usize >= map.height || ix as usize >= map.width {
                        window.extend(std::iter::repeat_n(pad, map.channels));
                    } else {
                        let at = (iy as usize * map.width + ix as usize) * map.channels;
                        window.extend_from_slice(&x[at..at + map.channels]);
                    }
                }
            }
            for v in w.outputs(params, &window, scale) {
                y.push(v?);
            }
        }
    }
    Some(y)
}

fn max_pool(p: &MaxPool2d, x: &[f64]) -> Vec<f64> {
    let (map, out, k) = (p.input, p.output(), p.kernel);
    let mut y = Vec::with_capacity(out.len());
    for py in 0..out.height {
        for px in 0..out.width {
            for ch in 0..map.channels {
                let mut m = f64::NEG_INFINITY;
                for dy in 0..k {
                    for dx in 0..k {
                        let pos = (py * k + dy) * map.width + px * k + dx;
                        m = m.max(x[pos * map.channels + ch]);
                    }
                }
                y.push(m);
            }
        }
    }
    y
}
