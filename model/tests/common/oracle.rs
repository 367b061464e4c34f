//! A naive oracle written straight from docs/semantics.md: activations as +-1 integers (or raw
//! pixels), explicit loops over every index, `acc >= T`, OR for pooling. Slow on purpose; it
//! shares no code with the reference but the IR's accessors.

use bql_model::layers::{Conv2d, DenseOutput, Layer};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network};

/// What each layer emits: +-1 values (threshold, pool, flatten) or the last layer's scores.
pub fn naive_trace(net: &Network, pixels: &[u8]) -> Vec<Vec<i64>> {
    let mut x = operands(net, pixels);
    let mut trace = Vec::new();
    for layer in &net.layers {
        x = match layer {
            Layer::Dense(d) => {
                let accs = dense_accs(d, &x);
                match &d.output {
                    DenseOutput::Threshold(t) => fire(&accs, t),
                    DenseOutput::Scores => accs,
                }
            }
            Layer::Conv2d(c) => conv(c, &x),
            Layer::MaxPool2d(p) => {
                let (m, o) = (p.input, p.output());
                let mut y = Vec::new();
                for py in 0..o.height {
                    for px in 0..o.width {
                        for ch in 0..m.channels {
                            let mut v = -1;
                            for dy in 0..p.kernel {
                                for dx in 0..p.kernel {
                                    let (iy, ix) = (py * p.kernel + dy, px * p.kernel + dx);
                                    v = v.max(x[(iy * m.width + ix) * m.channels + ch]);
                                }
                            }
                            y.push(v);
                        }
                    }
                }
                y
            }
            Layer::Flatten(_) => x,
            other => panic!("the oracle has no {} layer", other.kind_name()),
        };
        trace.push(x.clone());
    }
    trace
}

/// The accumulator over operands `ops` with weights `w`: agreements for +-1 operands, the signed
/// pixel sum for pixels.
fn accumulate(kind: AccumulatorKind, w: &[bool], ops: &[i64]) -> i64 {
    match kind {
        AccumulatorKind::Popcount => {
            w.iter().zip(ops).filter(|(&w, &a)| (a == 1) == w).count() as i64
        }
        AccumulatorKind::SignedPixelSum => w
            .iter()
            .zip(ops)
            .map(|(&w, &p)| if w { p } else { -p })
            .sum(),
    }
}

fn fire(accs: &[i64], t: &[i64]) -> Vec<i64> {
    accs.iter()
        .zip(t)
        .map(|(&a, &t)| if a >= t { 1 } else { -1 })
        .collect()
}

/// The accumulators of every output channel at every output position, position-major.
pub fn conv_accs(c: &Conv2d, x: &[i64]) -> Vec<Vec<i64>> {
    let (m, o) = (c.input, c.output());
    let (top, left) = c.pad_before();
    let pad = match (c.accumulator, c.pad_bit()) {
        (AccumulatorKind::SignedPixelSum, _) => 0,
        (_, true) => 1,
        (_, false) => -1,
    };
    let mut y = Vec::new();
    for oy in 0..o.height {
        for ox in 0..o.width {
            // The window in weight-column order (ky, kx, c).
            let mut ops = Vec::new();
            for ky in 0..c.kernel {
                for kx in 0..c.kernel {
                    let iy = (oy * c.stride + ky) as i64 - top as i64;
                    let ix = (ox * c.stride + kx) as i64 - left as i64;
                    for ch in 0..m.channels {
                        let inside =
                            iy >= 0 && ix >= 0 && iy < m.height as i64 && ix < m.width as i64;
                        ops.push(if inside {
                            x[(iy as usize * m.width + ix as usize) * m.channels + ch]
                        } else {
                            pad
                        });
                    }
                }
            }
            y.push(
                (0..c.out_channels())
                    .map(|oc| {
                        let w: Vec<bool> =
                            (0..c.window_len()).map(|j| c.weights.get(oc, j)).collect();
                        accumulate(c.accumulator, &w, &ops)
                    })
                    .collect(),
            );
        }
    }
    y
}

fn conv(c: &Conv2d, x: &[i64]) -> Vec<i64> {
    conv_accs(c, x)
        .iter()
        .flat_map(|accs| fire(accs, &c.thresholds))
        .collect()
}

/// The accumulators of a dense layer's neurons.
pub fn dense_accs(d: &bql_model::layers::Dense, x: &[i64]) -> Vec<i64> {
    (0..d.outputs())
        .map(|o| {
            let w: Vec<bool> = (0..d.inputs()).map(|c| d.weights.get(o, c)).collect();
            accumulate(d.accumulator, &w, x)
        })
        .collect()
}

/// The network's input as the oracle's first operands (+-1, pixel values, or table entries).
pub fn operands(net: &Network, pixels: &[u8]) -> Vec<i64> {
    match net.input.encoding {
        InputEncoding::Binary { threshold } => pixels
            .iter()
            .map(|&p| if p >= threshold { 1 } else { -1 })
            .collect(),
        InputEncoding::U8 => pixels.iter().map(|&p| p as i64).collect(),
        InputEncoding::Table(t) => pixels.iter().map(|&p| i64::from(t.0[p as usize])).collect(),
    }
}
