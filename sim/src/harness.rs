//! Stimulus and response of `bql_core`: images as input beats, scores out of the flat
//! `out_scores` vector, and the run-time configuration words.

use bql_hdl_gen::blocks::core::CoreInterface;
use bql_hdl_gen::ir::bits_for;

/// Splits one image into input beats: beat `b` holds pixels `[b*K, b*K + K)`, pixel `j` of a beat
/// at bits `[8j, 8j + 8)`; the last beat is padded with zero pixels. Returned as hex strings
/// (most significant digit first), the format of `$readmemh` and of Verilator's wide ports.
pub fn beats_hex(ifc: &CoreInterface, pixels: &[u8]) -> Vec<String> {
    let k = ifc.pixels_per_beat;
    (0..ifc.beats)
        .map(|b| {
            let mut s = String::with_capacity(2 * k);
            for j in (0..k).rev() {
                let p = pixels.get(b * k + j).copied().unwrap_or(0);
                s.push_str(&format!("{p:02x}"));
            }
            s
        })
        .collect()
}

/// Parses the flat scores vector (hex, most significant digit first; missing leading digits are
/// zeros) into `classes` scores. `None` when the text is not hex.
pub fn parse_scores(ifc: &CoreInterface, hex: &str, classes: usize) -> Option<Vec<i32>> {
    let bits: Vec<bool> = hex
        .trim()
        .chars()
        .rev()
        .map(|c| c.to_digit(16))
        .collect::<Option<Vec<u32>>>()?
        .into_iter()
        .flat_map(|d| (0..4).map(move |b| (d >> b) & 1 == 1))
        .collect();
    let w = ifc.score_width;
    (0..classes)
        .map(|i| {
            let mut v: i64 = 0;
            for b in 0..w {
                if bits.get(i * w + b).copied().unwrap_or(false) {
                    v |= 1 << b;
                }
            }
            if ifc.scores_signed && (v >> (w - 1)) & 1 == 1 {
                v -= 1 << w;
            }
            Some(v as i32)
        })
        .collect()
}

/// One write through the configuration port: memory `sel`, word `addr`, `data` (bit 0 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWrite {
    /// Memory: `2 l` weights of layer `l`, `2 l + 1` its thresholds.
    pub sel: usize,
    /// Word address.
    pub addr: usize,
    /// The word.
    pub data: Vec<bool>,
}

/// The writes that load a model into a design: every word of every memory when `all`, otherwise
/// only the memories that the bitstream cannot initialize (SPRAM).
pub fn config_writes(
    net: &bql_model::Network,
    plan: &bql_hdl_gen::plan::Plan,
    all: bool,
) -> Vec<ConfigWrite> {
    use bql_hdl_gen::memfiles::{threshold_words, weight_words};
    use bql_hdl_gen::plan::MemKind;
    let mut writes = Vec::new();
    for (stage, l) in plan.layers.iter().enumerate() {
        if all || l.mem == MemKind::Spram {
            for (addr, data) in weight_words(net, l).into_iter().enumerate() {
                writes.push(ConfigWrite {
                    sel: 2 * stage,
                    addr,
                    data,
                });
            }
        }
        if all {
            for (addr, data) in threshold_words(net, l).into_iter().enumerate() {
                writes.push(ConfigWrite {
                    sel: 2 * stage + 1,
                    addr,
                    data,
                });
            }
        }
    }
    writes
}

/// The widths of a configuration write packed into one hex word ([`config_hex`]), low field
/// first: the word's bytes, its address, its selector, and how many bytes it has.
pub struct ConfigLayout {
    /// Bits of the word: its bytes, whole.
    pub data: usize,
    /// Bits of the address.
    pub addr: usize,
    /// Bits of the selector.
    pub sel: usize,
    /// Bits of the byte count.
    pub bytes: usize,
}

impl ConfigLayout {
    /// The layout for a core's interface.
    pub fn new(ifc: &CoreInterface) -> Self {
        let bytes = ifc.cfg_data_width.div_ceil(8);
        ConfigLayout {
            data: bytes * 8,
            addr: ifc.cfg_addr_width,
            sel: ifc.cfg_sel_width,
            bytes: bits_for(bytes),
        }
    }

    /// All the bits.
    pub fn width(&self) -> usize {
        self.data + self.addr + self.sel + self.bytes
    }
}

/// A configuration write packed as `{bytes, sel, addr, data}` in one hex word of the
/// interface's widths ([`ConfigLayout`], for a `$readmemh` table in a testbench): a testbench
/// sends the word's bytes through `cfg_byte`, lowest first, then writes it.
pub fn config_hex(ifc: &CoreInterface, w: &ConfigWrite) -> String {
    let layout = ConfigLayout::new(ifc);
    let mut bits = vec![false; layout.width()];
    bits[..w.data.len()].copy_from_slice(&w.data);
    let mut put = |lo: usize, width: usize, value: usize| {
        for i in 0..width {
            bits[lo + i] = (value >> i) & 1 == 1;
        }
    };
    put(layout.data, layout.addr, w.addr);
    put(layout.data + layout.addr, layout.sel, w.sel);
    let lo = layout.data + layout.addr + layout.sel;
    put(lo, layout.bytes, ifc.cfg_write_bytes[w.sel]);
    let digits = bits.len().div_ceil(4);
    (0..digits)
        .rev()
        .map(|d| {
            let v = (0..4)
                .filter(|b| bits.get(d * 4 + b).copied().unwrap_or(false))
                .map(|b| 1 << b)
                .sum::<u32>();
            char::from_digit(v, 16).expect("nibble")
        })
        .collect()
}

/// The same words grouped per memory: `(sel, words from address 0)`, the form the host driver
/// streams in `WRITE` frames.
pub fn memory_images(
    net: &bql_model::Network,
    plan: &bql_hdl_gen::plan::Plan,
    all: bool,
) -> Vec<(usize, Vec<Vec<bool>>)> {
    let mut out: Vec<(usize, Vec<Vec<bool>>)> = Vec::new();
    for w in config_writes(net, plan, all) {
        match out.last_mut() {
            Some((sel, words)) if *sel == w.sel && words.len() == w.addr => words.push(w.data),
            _ => out.push((w.sel, vec![w.data])),
        }
    }
    out
}
