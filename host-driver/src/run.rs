//! A whole run: handshake, load, stream every image, compare each result with the software
//! reference, and summarize.

use std::time::Instant;

use bql_model::reference::Engine;
use bql_model::{InputEncoding, Network};
use bql_protocol::Info;

use crate::client::{Client, LinkStats, MemoryWrite};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::Transport;

/// The `INFER` payload of one image: packed input bits (bit `i` in byte `i / 8`, LSB first, a
/// bit is `pixel >= threshold`) for a binary-input model, the raw pixels for an 8-bit one.
pub fn encode_image(net: &Network, pixels: &[u8]) -> Vec<u8> {
    match net.input.encoding {
        InputEncoding::Binary { threshold } => {
            let mut out = vec![0u8; pixels.len().div_ceil(8)];
            for (i, &p) in pixels.iter().enumerate() {
                if p >= threshold {
                    out[i / 8] |= 1 << (i % 8);
                }
            }
            out
        }
        InputEncoding::U8 | InputEncoding::Table(_) => pixels.to_vec(),
    }
}

/// A result that differs from the reference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// Image index.
    pub index: usize,
    /// The reference's class.
    pub expected_class: usize,
    /// The reference's scores.
    pub expected_scores: Vec<i32>,
    /// The board's class.
    pub class: usize,
    /// The board's scores.
    pub scores: Vec<i32>,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Images streamed.
    pub images: usize,
    /// Share of images whose class equals the label.
    pub accuracy: f64,
    /// Results that differ from the reference.
    pub mismatches: usize,
    /// The first few of them.
    pub first_mismatches: Vec<Mismatch>,
    /// Wall-clock seconds of the stream (handshake and load excluded).
    pub seconds: f64,
    /// Images per second.
    pub inferences_per_s: f64,
    /// Request bytes per second over the line's byte rate, when the line rate is known.
    pub link_utilization: Option<f64>,
    /// Payload bytes / frame bytes of the `INFER` requests.
    pub protocol_efficiency: f64,
    /// Latency percentiles in milliseconds: 50th, 90th, 99th.
    pub latency_ms: [f64; 3],
    /// Seconds spent loading memories.
    pub load_seconds: f64,
    /// Link counters.
    pub link: LinkStats,
}

/// Handshakes, loads `writes` (when given), streams every image of `pixels` and compares each
/// result with the reference. `progress(done)` is called after every result.
pub fn run<T: Transport>(
    client: &mut Client<T>,
    net: &Network,
    expected: &Info,
    writes: Option<&[MemoryWrite]>,
    pixels: &[u8],
    labels: &[u8],
    mut progress: impl FnMut(usize),
) -> Result<Summary> {
    let n = net.input.len();
    if n == 0 || pixels.len() % n != 0 {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("{} pixels are not whole images of {n}", pixels.len()),
        ));
    }
    let images: Vec<Vec<u8>> = pixels.chunks(n).map(|p| encode_image(net, p)).collect();
    if images
        .first()
        .is_some_and(|i| i.len() != expected.image_bytes as usize)
    {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "an image is {} bytes, the design takes {}",
                images[0].len(),
                expected.image_bytes
            ),
        ));
    }
    client.handshake(expected)?;
    let t = Instant::now();
    if let Some(w) = writes {
        client.load(w)?;
    }
    let load_seconds = t.elapsed().as_secs_f64();
    let engine = Engine::new(net);
    let (ref_scores, ref_classes) = engine.scores_batch(pixels);
    let classes = net.classes();
    let mut got: Vec<Option<crate::client::Received>> = vec![None; images.len()];
    let before = client.stats;
    let t = Instant::now();
    let mut done = 0usize;
    client.infer_stream(&images, expected, |i, r| {
        got[i] = Some(r);
        done += 1;
        progress(done);
    })?;
    let seconds = t.elapsed().as_secs_f64();
    let mut mismatches = 0;
    let mut first = Vec::new();
    let mut correct = 0;
    let mut lat = Vec::with_capacity(images.len());
    for (i, r) in got.into_iter().enumerate() {
        let r = r.ok_or_else(|| {
            Error::new(ErrorKind::Timeout, format!("image {i} never got a result"))
        })?;
        let exp = &ref_scores[i * classes..(i + 1) * classes];
        if r.scores != exp || r.class != ref_classes[i] {
            mismatches += 1;
            if first.len() < 5 {
                first.push(Mismatch {
                    index: i,
                    expected_class: ref_classes[i],
                    expected_scores: exp.to_vec(),
                    class: r.class,
                    scores: r.scores.clone(),
                });
            }
        }
        if labels.get(i).is_some_and(|&l| l as usize == r.class) {
            correct += 1;
        }
        lat.push(r.latency * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    let sent = client.stats.bytes_sent - before.bytes_sent;
    let link = client.transport().line_rate();
    Ok(Summary {
        images: images.len(),
        accuracy: correct as f64 / images.len().max(1) as f64,
        mismatches,
        first_mismatches: first,
        seconds,
        inferences_per_s: images.len() as f64 / seconds,
        link_utilization: link.map(|rate| sent as f64 / seconds / rate),
        protocol_efficiency: client.stats.infer_payload_bytes as f64
            / client.stats.infer_frame_bytes.max(1) as f64,
        latency_ms: if lat.is_empty() {
            [0.0; 3]
        } else {
            [pct(0.5), pct(0.9), pct(0.99)]
        },
        load_seconds,
        link: client.stats,
    })
}
