//! Where does the hardware first differ from the reference? For an image that gave a wrong
//! result, a debug build of the core (internal signals public, a VCD trace) replays the same
//! configuration writes and that one image, prints every layer's output vector as the next stage
//! takes it, and writes the waveform. The first layer (in order) whose output differs from the
//! reference's trace, and the first neuron in it, is the answer.

use std::path::{Path, PathBuf};
use std::process::Command;

use bql_hdl_gen::Design;
use bql_model::layers::Shape;
use bql_model::reference::{Engine, LayerOutput};
use bql_model::Network;

use crate::harness::ConfigWrite;
use crate::tools::Tool;
use crate::verilator::{driver, stimulus, verilate, Job};

/// The first difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    /// Layer index.
    pub layer: usize,
    /// Neuron (output) index in that layer: for a feature map, the value's index in `(y, x, c)`
    /// order.
    pub neuron: usize,
    /// For a feature map: the output pixel's row and column and the channel.
    pub position: Option<(usize, usize, usize)>,
    /// The hardware's value (a bit as 0/1, or a score).
    pub hardware: i64,
    /// The reference's value.
    pub reference: i64,
    /// The waveform of the replay.
    pub vcd: PathBuf,
}

/// Replays image `pixels` (after `writes`) in a debug build and finds the first layer and neuron
/// that differ from the reference. `None` when every layer output agrees (the difference is then
/// after the last layer: the argmax or the output port).
pub fn localize(
    tool: &Tool,
    net: &Network,
    design: &Design,
    dir: &Path,
    writes: &[ConfigWrite],
    pixels: &[u8],
) -> crate::Result<Option<Localized>> {
    let ifc = &design.interface;
    let layers = &design.plan.layers;
    let taps = &design.taps;
    let classes = net.classes();
    let (exe, _) = verilate(
        tool,
        design,
        dir,
        "verilator-debug",
        "bql_core",
        &driver(ifc, classes * ifc.score_width, taps, true),
        &["--public-flat-rw", "--trace"],
    )?;
    let job = Job {
        writes,
        pixels,
        image_len: pixels.len(),
        max_cycles: (design.plan.cycles_per_inference as u64 + 1000) * 4,
    };
    let stim = stimulus(ifc, &job);
    let path = dir.join("debug-stimulus.bin");
    let bytes: Vec<u8> = stim.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&path, bytes)
        .map_err(|e| crate::Error::io(format!("cannot write {}", path.display()), e))?;
    let vcd = dir.join("mismatch.vcd");
    let out = Command::new(&exe)
        .arg(&path)
        .arg(&vcd)
        .current_dir(dir.join("rtl"))
        .output()
        .map_err(|e| crate::Error::io(format!("cannot run {}", exe.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let reference = Engine::new(net).trace(pixels);
    // Each tap's output of the replayed image: a whole vector (`L`), or the words it wrote into
    // the next layer's buffer (`W`), in order.
    let mut outputs: Vec<Option<Vec<bool>>> = vec![None; taps.len()];
    for line in text.lines() {
        let mut p = line.split_whitespace();
        let kind = p.next();
        if kind != Some("L") && kind != Some("W") {
            continue;
        }
        let (Some(tap), Some(hex)) = (p.next().and_then(|l| l.parse::<usize>().ok()), p.next())
        else {
            return Err(crate::Error::bad_output(format!("bad layer line {line:?}")));
        };
        let mut bits = hex_bits(hex)
            .ok_or_else(|| crate::Error::bad_output(format!("bad hex in {line:?}")))?;
        let Some(slot) = outputs.get_mut(tap) else {
            return Err(crate::Error::bad_output(format!(
                "no tap {tap} in {line:?}"
            )));
        };
        match (kind, slot) {
            (Some("L"), slot @ None) => *slot = Some(bits),
            (Some("W"), slot) => {
                bits.resize(taps[tap].width, false);
                slot.get_or_insert_with(Vec::new).extend(bits);
            }
            _ => {}
        }
    }
    for (tap, bits) in taps.iter().zip(outputs) {
        let Some(bits) = bits else { continue };
        let l = &layers[tap.stage];
        let diff = match &reference[tap.layer] {
            LayerOutput::Bits(words) => (0..net.layers[tap.layer].output_len()).find_map(|o| {
                let r = (words[o / 64] >> (o % 64)) & 1 == 1;
                let h = bits.get(o).copied().unwrap_or(false);
                (r != h).then_some((o, h as i64, r as i64))
            }),
            LayerOutput::Scores(s) => {
                let w = l.acc_width();
                (0..l.outputs).find_map(|o| {
                    let mut v: i64 = 0;
                    for b in 0..w {
                        if bits.get(o * w + b).copied().unwrap_or(false) {
                            v |= 1 << b;
                        }
                    }
                    if l.pixel_input && (v >> (w - 1)) & 1 == 1 {
                        v -= 1 << w;
                    }
                    (v != s[o] as i64).then_some((o, v, s[o] as i64))
                })
            }
        };
        if let Some((neuron, hardware, reference)) = diff {
            let position = match net.layers[tap.layer].output_shape() {
                Shape::Map(m) => Some((
                    neuron / m.channels / m.width,
                    neuron / m.channels % m.width,
                    neuron % m.channels,
                )),
                Shape::Vector(_) => None,
            };
            return Ok(Some(Localized {
                layer: tap.layer,
                neuron,
                position,
                hardware,
                reference,
                vcd,
            }));
        }
    }
    Ok(None)
}

/// Hex (most significant digit first) to bits, bit 0 first.
fn hex_bits(hex: &str) -> Option<Vec<bool>> {
    Some(
        hex.chars()
            .rev()
            .map(|c| c.to_digit(16))
            .collect::<Option<Vec<u32>>>()?
            .into_iter()
            .flat_map(|d| (0..4).map(move |b| (d >> b) & 1 == 1))
            .collect(),
    )
}
