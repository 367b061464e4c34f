//! Memory images: the weights and thresholds of each layer in the layout of its MVTU, as
//! `$readmemh` files and as words for the run-time write port.

use bql_model::layers::Layer;
use bql_model::Network;

use crate::plan::{LayerPlan, OutputKind};

/// One memory word as little-endian bits (bit 0 first).
pub type Word = Vec<bool>;

/// The weight words of layer `l`: word `nf * SF + sf`, PE `p` at bits `[p*S, p*S + S)`, lane `j`
/// = weight (neuron `nf * P + p`, input `sf * S + j`); padding positions are 0.
pub fn weight_words(net: &Network, l: &LayerPlan) -> Vec<Word> {
    let matrix = match &net.layers[l.index] {
        Layer::Dense(d) => &d.weights,
        Layer::Conv2d(c) => &c.weights,
        other => unreachable!("planned layer {} is a {}", l.index, other.kind_name()),
    };
    let (p, s) = (l.pe, l.simd);
    let mut words = Vec::with_capacity(l.weight_depth());
    for nf in 0..l.nf() {
        for sf in 0..l.sf() {
            let mut w = vec![false; p * s];
            for pe in 0..p {
                let neuron = nf * p + pe;
                if neuron >= l.outputs {
                    continue;
                }
                for j in 0..s {
                    let input = sf * s + j;
                    if input < l.inputs {
                        w[pe * s + j] = matrix.get(neuron, input);
                    }
                }
            }
            words.push(w);
        }
    }
    words
}

/// The threshold words of layer `l` (empty for the scores layer): word `nf`, PE `p` at bits
/// `[p*TW, p*TW + TW)`, in two's complement: the value the accumulator starts from. Binary layers
/// store `-(N + 1 - T)` (they count disagreements `d` and fire when `d - (N + 1 - T) < 0`); 8-bit
/// layers store `-T` (they fire when `sum - T >= 0`).
pub fn threshold_words(net: &Network, l: &LayerPlan) -> Vec<Word> {
    if l.output == OutputKind::Scores {
        return Vec::new();
    }
    let Some(t) = net.layers[l.index].thresholds() else {
        return Vec::new();
    };
    let tw = l.threshold_width();
    (0..l.nf())
        .map(|nf| {
            let mut w = vec![false; l.pe * tw];
            for pe in 0..l.pe {
                let neuron = nf * l.pe + pe;
                // A missing neuron starts from 0 (its result is dropped).
                let v: i64 = match t.get(neuron) {
                    Some(&t) if l.pixel_input => -t,
                    Some(&t) => t - (l.inputs as i64 + 1),
                    None => 0,
                };
                for b in 0..tw {
                    w[pe * tw + b] = (v >> b) & 1 == 1;
                }
            }
            w
        })
        .collect()
}

/// Formats words as a `$readmemh` file (one word per line, most significant digit first).
pub fn hex(words: &[Word], width: usize) -> String {
    let digits = width.div_ceil(4);
    let mut out = String::with_capacity(words.len() * (digits + 1));
    for w in words {
        for dgt in (0..digits).rev() {
            let mut v = 0u32;
            for b in 0..4 {
                let i = dgt * 4 + b;
                if i < w.len() && w[i] {
                    v |= 1 << b;
                }
            }
            out.push(char::from_digit(v, 16).expect("nibble"));
        }
        out.push('\n');
    }
    out
}
