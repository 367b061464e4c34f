//! The float training graph in candle, built from the integer network's skeleton so that both
//! have the same layers, shapes and operand order.
//!
//! Per layer with weights: binary weights `sign(W)` through a clipped straight-through estimator,
//! then (all but the last) BatchNorm and a hardtanh straight-through sign; the last layer ends in
//! one learned positive scale shared by all classes.
//!
//! Maps are kept channels-last, `(N, H, W, C)`, which is bql's `(y, x, c)` order, so flatten is a
//! reshape and convolution weights are `(O, k * k * C)` in bql's column order `(ky, kx, c)`: the
//! fold reads them as they are, with no permutation that could silently disagree with the
//! semantics. A convolution pads with the operand value the semantics give a padded position
//! (the pad bit as +-1, or pixel 0), gathers its windows (im2col: `k * k` shifted views,
//! stacked) and runs one large matrix product; max-pooling follows the sign, as in the integer
//! model. (Measured on a 1,000-image epoch of a 4-convolution MNIST CNN, this and candle's
//! channels-first `conv2d` took the same 15 s; most of the time is elementwise work and
//! allocation, not the convolutions.)

use bql_model::layers::{Conv2d, Layer, Padding};
use bql_model::semantics::AccumulatorKind;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::Rng;

use crate::{Result, TrainConfig};

/// One layer of the training graph, in the order of the skeleton's layers.
pub(crate) enum Node {
    /// Convolution: latent weights `(O, k * k * C)`, BatchNorm over channels.
    Conv {
        w: Var,
        bn: candle_nn::BatchNorm,
        kernel: usize,
        stride: usize,
        /// Output rows and columns.
        out: (usize, usize),
        /// `(top, bottom, left, right, value)` of the padding, or `None` for valid.
        pad: Option<(usize, usize, usize, usize, f64)>,
    },
    /// Max-pooling with window and stride `k`.
    Pool(usize),
    /// `(N, H, W, C)` to `(N, H * W * C)`.
    Flatten,
    /// Dense: latent weights `(O, I)`; BatchNorm except on the last layer.
    Dense {
        w: Var,
        bn: Option<candle_nn::BatchNorm>,
    },
}

pub(crate) struct Model {
    pub(crate) nodes: Vec<Node>,
    pub(crate) log_scale: Var,
    /// True when the first layer is a convolution (the input is fed as a map).
    pub(crate) map_input: bool,
    /// A float graph (`--precision float`): real weights and hardtanh activations, no sign.
    pub(crate) float: bool,
}

fn sign_pm(x: &Tensor) -> candle_core::Result<Tensor> {
    x.ge(0f32)?.to_dtype(DType::F32)?.affine(2.0, -1.0)
}

/// Straight-through sign: forward `sign`, backward identity through `clamp(x, -1, 1)`.
pub(crate) fn ste_sign(x: &Tensor) -> candle_core::Result<Tensor> {
    let h = x.clamp(-1f32, 1f32)?;
    let s = sign_pm(x)?;
    h.add(&(s - &h)?.detach())
}

/// The sign of activations as +-1 (no gradient).
pub(crate) fn binarized_activation(x: &Tensor) -> candle_core::Result<Tensor> {
    sign_pm(x)
}

/// The sign of latent weights as +-1 (no gradient), as the fold binarizes them.
pub(crate) fn binarized(w: &Var) -> candle_core::Result<Tensor> {
    sign_pm(w.as_tensor())
}

fn uniform(rng: &mut StdRng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
}

/// Padding of a convolution as `(top, bottom, left, right, value)`.
fn conv_padding(c: &Conv2d) -> Option<(usize, usize, usize, usize, f64)> {
    if c.padding == Padding::Valid {
        return None;
    }
    let (top, left) = c.pad_before();
    let out = c.output();
    let span = |o: usize| (o - 1) * c.stride + c.kernel;
    let bottom = span(out.height).saturating_sub(c.input.height + top);
    let right = span(out.width).saturating_sub(c.input.width + left);
    let value = match (c.accumulator, c.pad_bit()) {
        (AccumulatorKind::SignedPixelSum, _) => 0.0,
        (_, true) => 1.0,
        (_, false) => -1.0,
    };
    Some((top, bottom, left, right, value))
}

impl Model {
    /// A graph for `skeleton` (the integer network's layers), initialized from `rng`: latent
    /// weights uniform in +-sqrt(6 / (fan_in + fan_out)), layer after layer.
    pub(crate) fn new(
        cfg: &TrainConfig,
        skeleton: &[Layer],
        varmap: &VarMap,
        rng: &mut StdRng,
        dev: &Device,
    ) -> Result<Self> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, dev);
        let bn_cfg = BatchNormConfig {
            eps: 1e-4,
            remove_mean: true,
            affine: true,
            momentum: cfg.bn_momentum,
        };
        let mut nodes = Vec::with_capacity(skeleton.len());
        let mut last_in = 1;
        for (l, layer) in skeleton.iter().enumerate() {
            nodes.push(match layer {
                Layer::Conv2d(c) => {
                    let (o, ch, k) = (c.out_channels(), c.input.channels, c.kernel);
                    let bound = (6.0 / (k * k * (ch + o)) as f64).sqrt() as f32;
                    let w = Tensor::from_vec(
                        uniform(rng, o * ch * k * k, bound),
                        (o, k * k * ch),
                        dev,
                    )?;
                    let out = c.output();
                    Node::Conv {
                        w: Var::from_tensor(&w)?,
                        bn: candle_nn::batch_norm(o, bn_cfg, vb.pp(format!("bn{l}")))?,
                        kernel: k,
                        stride: c.stride,
                        out: (out.height, out.width),
                        pad: conv_padding(c),
                    }
                }
                Layer::MaxPool2d(p) => Node::Pool(p.kernel),
                Layer::Flatten(_) => Node::Flatten,
                Layer::Dense(d) => {
                    let (fan_in, fan_out) = (d.inputs(), d.outputs());
                    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                    let w = Tensor::from_vec(
                        uniform(rng, fan_in * fan_out, bound),
                        (fan_out, fan_in),
                        dev,
                    )?;
                    last_in = fan_in;
                    let bn = if layer.is_scores() {
                        None
                    } else {
                        Some(candle_nn::batch_norm(
                            fan_out,
                            bn_cfg,
                            vb.pp(format!("bn{l}")),
                        )?)
                    };
                    Node::Dense {
                        w: Var::from_tensor(&w)?,
                        bn,
                    }
                }
                other => {
                    return Err(crate::Error::new(
                        crate::ErrorKind::Unsupported,
                        format!("layer {l}: training has no {} layer", other.kind_name()),
                    ))
                }
            });
        }
        let log_scale = Var::from_tensor(&Tensor::new(&[(4.0 / last_in as f32).ln()], dev)?)?;
        Ok(Model {
            nodes,
            log_scale,
            map_input: matches!(skeleton.first(), Some(Layer::Conv2d(_))),
            float: cfg.precision == crate::Precision::Float,
        })
    }

    /// The weights as the forward pass uses them: `sign` through the straight-through
    /// estimator, or the real values in a float graph.
    fn weight_op(&self, w: &Var) -> candle_core::Result<Tensor> {
        if self.float {
            Ok(w.as_tensor().clone())
        } else {
            ste_sign(w.as_tensor())
        }
    }

    /// A hidden activation: the straight-through sign, or hardtanh in a float graph (the
    /// function whose sign the binarized network takes).
    fn activation(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.float {
            x.clamp(-1f32, 1f32)
        } else {
            ste_sign(x)
        }
    }

    /// Every parameter and BatchNorm statistic by name: `w<l>` (latent weights of skeleton
    /// layer `l`), `bn<l>.weight`, `bn<l>.bias`, `bn<l>.running_mean`, `bn<l>.running_var`,
    /// `log_scale`.
    pub(crate) fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![("log_scale".to_string(), self.log_scale.as_tensor().clone())];
        for (l, node) in self.nodes.iter().enumerate() {
            let (w, bn) = match node {
                Node::Conv { w, bn, .. } => (w, Some(bn)),
                Node::Dense { w, bn } => (w, bn.as_ref()),
                _ => continue,
            };
            out.push((format!("w{l}"), w.as_tensor().clone()));
            if let Some(bn) = bn {
                let (g, b) = bn
                    .weight_and_bias()
                    .ok_or_else(|| crate::invalid("BatchNorm without affine".into()))?;
                out.push((format!("bn{l}.weight"), g.clone()));
                out.push((format!("bn{l}.bias"), b.clone()));
                out.push((format!("bn{l}.running_mean"), bn.running_mean().clone()));
                out.push((format!("bn{l}.running_var"), bn.running_var().clone()));
            }
        }
        Ok(out)
    }

    /// Sets every parameter from `tensors` (as [`Model::named_tensors`] names them); each must
    /// be present with the same shape.
    pub(crate) fn load_tensors(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        for (name, current) in self.named_tensors()? {
            let new = tensors
                .get(&name)
                .ok_or_else(|| crate::invalid(format!("the checkpoint has no tensor {name}")))?;
            if new.dims() != current.dims() {
                return Err(crate::invalid(format!(
                    "the checkpoint's {name} is {:?}, the graph needs {:?}",
                    new.dims(),
                    current.dims()
                )));
            }
            Var::from_tensor(&current)?.set(&new.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }

    /// Latent weights of every layer with weights, in order.
    pub(crate) fn weights(&self) -> Vec<&Var> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Conv { w, .. } | Node::Dense { w, .. } => Some(w),
                _ => None,
            })
            .collect()
    }

    /// BatchNorms in layer order.
    pub(crate) fn batch_norms(&self) -> Vec<&candle_nn::BatchNorm> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Conv { bn, .. } => Some(bn),
                Node::Dense { bn: Some(bn), .. } => Some(bn),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn trainable(&self) -> Vec<Var> {
        let mut v: Vec<Var> = self.weights().into_iter().cloned().collect();
        for bn in self.batch_norms() {
            if let Some((w, b)) = bn.weight_and_bias() {
                v.push(Var::from_tensor(w).expect("bn weight is a variable"));
                v.push(Var::from_tensor(b).expect("bn bias is a variable"));
            }
        }
        v.push(self.log_scale.clone());
        v
    }

    /// The input batch as the first layer takes it: `(N, H, W, C)` for a convolution, `(N, len)`
    /// for a dense layer. `x` is `(N, len)` in `(y, x, c)` order.
    pub(crate) fn input_view(&self, x: Tensor, h: usize, w: usize, c: usize) -> Result<Tensor> {
        if !self.map_input {
            return Ok(x);
        }
        let n = x.dim(0)?;
        Ok(x.reshape((n, h, w, c))?)
    }

    /// Logits for a batch of first-layer operands (already in [`Model::input_view`] form);
    /// `masks` holds the input's dropout mask and one per hidden dense layer, or is `None`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        train: bool,
        masks: Option<&[Tensor]>,
    ) -> Result<Tensor> {
        let mut h = match masks {
            Some(m) => x.mul(&m[0])?,
            None => x.clone(),
        };
        let mut hidden_dense = 0;
        for node in &self.nodes {
            h = match node {
                Node::Conv {
                    w,
                    bn,
                    kernel,
                    stride,
                    out,
                    pad,
                } => {
                    let padded = match *pad {
                        Some((t, b, l, r, v)) => (h
                            .affine(1.0, -v)?
                            .pad_with_zeros(1, t, b)?
                            .pad_with_zeros(2, l, r)?)
                        .affine(1.0, v)?,
                        None => h,
                    };
                    let cols = im2col(&padded, *kernel, *stride, *out)?;
                    let z = cols.matmul(&self.weight_op(w)?.t()?)?;
                    let a = self.activation(&bn.forward_t(&z, train)?)?;
                    let n = padded.dim(0)?;
                    a.reshape((n, out.0, out.1, w.dim(0)?))?
                }
                Node::Pool(k) => max_pool(&h, *k)?,
                Node::Flatten => h.flatten_from(1)?,
                Node::Dense { w, bn } => {
                    let z = h.matmul(&self.weight_op(w)?.t()?)?;
                    match bn {
                        Some(bn) => {
                            hidden_dense += 1;
                            let a = self.activation(&bn.forward_t(&z, train)?)?;
                            match masks {
                                Some(m) => a.mul(&m[hidden_dense])?,
                                None => a,
                            }
                        }
                        None => z.broadcast_mul(&self.log_scale.as_tensor().exp()?)?,
                    }
                }
            };
        }
        Ok(h)
    }

    /// Clips every latent weight to [-1, 1] (after each optimizer step).
    pub(crate) fn clip(&self) -> Result<()> {
        for w in self.weights() {
            w.set(&w.as_tensor().clamp(-1f32, 1f32)?)?;
        }
        Ok(())
    }
}

/// The windows of a channels-last map `x` (`(N, Hp, Wp, C)`, already padded) as rows
/// `(N * OH * OW, k * k * C)` in column order `(ky, kx, c)`.
fn im2col(x: &Tensor, k: usize, stride: usize, (oh, ow): (usize, usize)) -> Result<Tensor> {
    let (n, _, _, c) = x.dims4()?;
    let dev = x.device();
    let mut views = Vec::with_capacity(k * k);
    for ky in 0..k {
        let rows = if stride == 1 {
            x.narrow(1, ky, oh)?
        } else {
            let idx: Vec<u32> = (0..oh).map(|o| (o * stride + ky) as u32).collect();
            x.index_select(&Tensor::new(idx, dev)?, 1)?
        };
        for kx in 0..k {
            views.push(if stride == 1 {
                rows.narrow(2, kx, ow)?
            } else {
                let idx: Vec<u32> = (0..ow).map(|o| (o * stride + kx) as u32).collect();
                rows.index_select(&Tensor::new(idx, dev)?, 2)?
            });
        }
    }
    Ok(Tensor::stack(&views, 3)?.reshape((n * oh * ow, k * k * c))?)
}

/// `k x k` max-pooling with stride `k` of a channels-last map; rows and columns that do not fill
/// a window are dropped.
fn max_pool(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    let x = x.narrow(1, 0, oh * k)?.narrow(2, 0, ow * k)?;
    Ok(x.reshape((n, oh, k, ow, k, c))?.max(4)?.max(2)?)
}
