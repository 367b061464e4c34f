//! Stimulus and response of `bql_core`: images as input beats, scores out of the flat
//! `out_scores` vector, and the run-time configuration words.

use bql_hdl_gen::blocks::core::CoreInterface;

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

/// Parses the flat scores vector (hex, most significant digit first) into `classes` scores.
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
                if *bits.get(i * w + b)? {
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
