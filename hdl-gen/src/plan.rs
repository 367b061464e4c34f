//! The folding planner: chooses P (processing elements) and S (SIMD lanes) for every layer so
//! that the layers' cycle counts are balanced and the design fits the device.

use bql_model::layers::{Layer, MapShape};
use bql_model::semantics::AccumulatorKind;
use bql_model::{InputEncoding, Network};
use serde::Serialize;

use crate::blocks::tree::{Popcount, Tree};
use crate::board::{Device, SPRAM_SHAPE};
use crate::error::{Error, Result};

/// What a layer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// One bit per neuron.
    Threshold,
    /// An integer score per neuron (the last layer).
    Scores,
}

/// Where a layer's weights live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemKind {
    /// Block RAM, initialized from the bitstream.
    BlockRam,
    /// iCE40 UltraPlus SPRAM: large, single-port, not initializable; the host loads the
    /// weights at run time through the configuration port.
    Spram,
}

/// The plan of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerPlan {
    /// Layer index.
    pub index: usize,
    /// Inputs (N).
    pub inputs: usize,
    /// Outputs (M).
    pub outputs: usize,
    /// Processing elements (P).
    pub pe: usize,
    /// SIMD lanes per PE (S).
    pub simd: usize,
    /// The layer's input is 8-bit pixels (first layer of a u8 model), or a pixel table's signed
    /// operands (`table_input`).
    pub pixel_input: bool,
    /// The layer's input is a pixel table's operands, 9-bit two's complement (docs/semantics.md
    /// 2): the input loader looks every pixel up.
    pub table_input: bool,
    /// Threshold bits or scores.
    pub output: OutputKind,
    /// Memory for weights.
    pub mem: MemKind,
    /// Accept the next input while the pipeline drains (costs an extra result register of M
    /// bits; chosen when the drain would cost more than 5 % of the layer's cycles).
    pub overlap: bool,
    /// How the layer holds its input vector.
    pub input: InputMode,
    /// Set when the next layer reads its input from a block-RAM buffer ([`InputMode::Buffer`]):
    /// the width of that buffer's words (the next layer's S). This layer then packs its P
    /// result bits per neuron fold into such words instead of keeping an M-bit output vector.
    pub stream_out: Option<usize>,
    /// The geometry of a convolution (`None` for dense layers): the MVTU then runs its folds
    /// once per output position, reading each position's window from its input buffer.
    pub conv: Option<ConvPlan>,
    /// The layer reads a feature map or a flattened one: its input must be a buffer that its
    /// producer fills pixel by pixel ([`InputMode::Buffer`]).
    pub map_input: bool,
    /// How the PEs count their lanes (set for the device's family).
    pub popcount: Popcount,
    /// The threshold memory asks for block RAM (yosys would build it from distributed RAM):
    /// set where the device has block RAM to spare ([`spare_block_ram_for_thresholds`]).
    pub thresholds_in_block_ram: bool,
}

/// Height, width and channels of a feature map in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapDims {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
}

impl MapDims {
    fn of(m: MapShape) -> MapDims {
        MapDims {
            height: m.height,
            width: m.width,
            channels: m.channels,
        }
    }

    /// Positions (rows x columns).
    pub fn positions(&self) -> usize {
        self.height * self.width
    }

    /// Values in the map.
    pub fn len(&self) -> usize {
        self.positions() * self.channels
    }

    /// True when the map holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A convolution layer's geometry (docs/semantics.md 9), with the max-pool that follows it, if
/// any, done on its output stream (docs/hardware.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConvPlan {
    /// The input map.
    pub input: MapDims,
    /// Kernel size k.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding rows above and columns left of the map.
    pub pad_top: usize,
    /// Padding columns left of the map.
    pub pad_left: usize,
    /// The value of a padded binary operand (8-bit layers pad with pixel 0).
    pub pad_bit: bool,
    /// The output map of the convolution.
    pub output: MapDims,
    /// The window of the max-pool applied to the output stream.
    pub pool: Option<usize>,
}

impl ConvPlan {
    /// The map the layer hands on: the pooled output, or the output.
    pub fn emitted(&self) -> MapDims {
        match self.pool {
            Some(k) => MapDims {
                height: self.output.height / k,
                width: self.output.width / k,
                channels: self.output.channels,
            },
            None => self.output,
        }
    }
}

/// Where a layer's input vector lives while the layer reads it, one S-lane slice per cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Copied from the producer's output register into an N-bit input register at the
    /// handshake; an SF-to-1 mux picks each cycle's slice. Costs 2 N flip-flops and the mux.
    Register,
    /// Read in place from the producer's vector, which holds it until the last input fold has
    /// been read (`in_ready` pulses then). Saves N flip-flops; costs the producer's refill time
    /// per input, so it is chosen for a first layer whose loader beats are under 5 % of its
    /// cycles when the loader cannot write words of the layer's width.
    Hold,
    /// A double-buffered block RAM of S-bit words (`layer<i>_inbuf`): the producer writes one
    /// half word by word as it computes while the layer reads the other half, one word per
    /// cycle at the fold counter. No vector registers and no mux; needs the producer's P to
    /// divide S (the loader's beat to equal S for the first layer) and a producer that does not
    /// overlap its drain.
    Buffer,
}

impl InputMode {
    /// Every mode, in the order of [`InputMode::index`].
    pub const ALL: [InputMode; 3] = [InputMode::Register, InputMode::Hold, InputMode::Buffer];

    /// Position in [`InputMode::ALL`] (estimates per mode are kept in that order).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl LayerPlan {
    /// Neuron folds `ceil(M / P)`.
    pub fn nf(&self) -> usize {
        self.outputs.div_ceil(self.pe)
    }
    /// Input folds `ceil(N / S)`.
    pub fn sf(&self) -> usize {
        self.inputs.div_ceil(self.simd)
    }
    /// Cycles per image: `NF * SF` per output position.
    pub fn cycles(&self) -> usize {
        self.positions() * self.weight_depth()
    }
    /// Output positions per image (1 for a dense layer).
    pub fn positions(&self) -> usize {
        self.conv.map_or(1, |c| c.output.positions())
    }
    /// Words of the weight memory, `NF * SF`.
    pub fn weight_depth(&self) -> usize {
        self.nf() * self.sf()
    }
    /// Words of one half of the input buffer: the input map in words of S channels of a pixel
    /// (a convolution), or the SF folds of the input vector.
    pub fn in_words(&self) -> usize {
        match &self.conv {
            Some(c) => c.input.positions() * c.input.channels.div_ceil(self.simd),
            None => self.sf(),
        }
    }
    /// Lanes `P * S`.
    pub fn lanes(&self) -> usize {
        self.pe * self.simd
    }
    /// The adder tree each PE sums its lanes with: popcount of single-bit lanes, or a signed
    /// sum of 9-bit pixel terms for an 8-bit first layer.
    pub fn tree(&self) -> Tree {
        Tree {
            terms: self.simd,
            term_width: if self.pixel_input { 9 } else { 1 },
            signed: self.pixel_input,
            stride: crate::blocks::tree::STRIDE,
            kind: self.popcount,
        }
    }
    /// The PEs accumulate in carry cells (ECP5 CCU2C trees of binary lanes, see
    /// `blocks::compressor::accumulate`), not in an adder and a multiplexer.
    pub fn carry_cell_accumulator(&self) -> bool {
        !self.pixel_input
            && matches!(
                self.tree().cell_tree(),
                Some(crate::blocks::tree::CellTree::Ccu2c(_))
            )
    }
    /// Accumulator width.
    pub fn acc_width(&self) -> usize {
        let tree = self.tree().out_width();
        let need = if self.pixel_input {
            AccumulatorKind::SignedPixelSum.bits(self.inputs) as usize
        } else {
            crate::ir::bits_for(self.inputs)
        };
        need.max(tree)
    }
    /// Threshold word width per PE, and the width of a threshold layer's accumulator, which
    /// starts from the stored word and ends negative or not (see `blocks::mvtu`): binary layers
    /// hold `d - (N + 1 - T)` for `d` disagreements in `0..=N` and `T` in `0..=N + 1`, signed;
    /// 8-bit layers `sum - T`, one bit wider than the sum.
    pub fn threshold_width(&self) -> usize {
        if self.pixel_input {
            self.acc_width() + 1
        } else {
            crate::ir::bits_for(self.inputs + 1) + 1
        }
    }
    /// Module name.
    pub fn mvtu_name(&self) -> String {
        format!("layer{}_mvtu", self.index)
    }
    /// Weight memory image file.
    pub fn weights_file(&self) -> String {
        format!("layer{}_weights.hex", self.index)
    }
    /// Width of one input element: a bit, an 8-bit pixel or a 9-bit table operand.
    pub fn elem_width(&self) -> usize {
        match (self.pixel_input, self.table_input) {
            (false, _) => 1,
            (true, false) => 8,
            (true, true) => 9,
        }
    }
    /// Width of one input word (one fold's slice): S elements.
    pub fn word_width(&self) -> usize {
        self.simd * self.elem_width()
    }
    /// The model layer whose output this layer hands on: its own, or its pool's.
    pub fn emitted_layer(&self) -> usize {
        self.index + usize::from(self.conv.is_some_and(|c| c.pool.is_some()))
    }
    /// Module name of the max-pool on the output stream.
    pub fn pool_name(&self) -> String {
        format!("layer{}_pool", self.index)
    }
    /// Module name of the input buffer ([`InputMode::Buffer`]).
    pub fn inbuf_name(&self) -> String {
        format!("layer{}_inbuf", self.index)
    }
    /// Address width of the input buffer: a half-select bit above the word index.
    pub fn inbuf_addr_width(&self) -> usize {
        1 + crate::ir::bits_for(self.in_words() - 1)
    }
    /// Threshold memory image file.
    pub fn thresholds_file(&self) -> String {
        format!("layer{}_thresholds.hex", self.index)
    }
}

/// Resource estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Estimate {
    /// LUT4 (iCE40) or LUT4-equivalents (ECP5 TRELLIS_COMB).
    pub lut: usize,
    /// Flip-flops.
    pub ff: usize,
    /// Block RAM bits used by memories (as instantiated, padded).
    pub bram_bits: usize,
    /// Block RAM primitives.
    pub bram_blocks: usize,
    /// SPRAM bits (UP5K).
    pub spram_bits: usize,
    /// SPRAM primitives (16 x 16384 each).
    pub spram_blocks: usize,
}

impl Estimate {
    /// Logic cells, as the family packs LUT4s and flip-flops (see `family`).
    pub fn cells(&self, family: crate::board::Family) -> usize {
        (family.def().logic_cells)(self.lut, self.ff)
    }
}

impl std::ops::Add for Estimate {
    type Output = Estimate;
    fn add(self, o: Estimate) -> Estimate {
        Estimate {
            lut: self.lut + o.lut,
            ff: self.ff + o.ff,
            bram_bits: self.bram_bits + o.bram_bits,
            bram_blocks: self.bram_blocks + o.bram_blocks,
            spram_bits: self.spram_bits + o.spram_bits,
            spram_blocks: self.spram_blocks + o.spram_blocks,
        }
    }
}

/// Cost model constants (LUT4 per lane and per PE); measured values are in docs/hardware.md.
const LUT_PER_BINARY_LANE: f64 = 4.0; // measured: 3.97 (docs/hardware.md)
const LUT_PER_PIXEL_LANE: f64 = 22.0;
/// LUT4s of `lut` iCE40-calibrated LUT4s on `dev`'s family.
fn family_luts(dev: &Device, lut: usize) -> usize {
    (lut as f64 * dev.family.def().lut_factor) as usize
}

/// LUT4s (iCE40-calibrated) that pack a layer's `pe` results per fold into the next layer's
/// `word`-bit input words (`stream_out`): a chunk decode and two multiplexers per held bit, about
/// 4 LUT4 each (measured per module on the ECP5-EVN default design). Known once the modes are
/// set, so it is in the final estimate, not the search's: counted there, the CNN's estimate
/// (already 13 % above yosys's LUT4s) no longer fit the iCEBreaker at the interval it builds at.
fn packing_luts(pe: usize, word: usize) -> usize {
    4 * word.saturating_sub(pe)
}

/// Estimated resources of one layer on `dev`. A layer counts the storage of its input vector
/// (the producer's output register and its own copy, or its input buffer), so that the
/// estimate follows the layer's [`InputMode`]; the last layer also counts its score vector.
pub fn estimate_layer(l: &LayerPlan, dev: &Device) -> Estimate {
    // Carry-cell popcounts are counted exactly, in LUT sites of the family (not calibrated).
    let carry_sites = l.tree().cell_tree().map_or(0, |t| l.pe * t.sites());
    let lane = if l.pixel_input {
        LUT_PER_PIXEL_LANE
    } else if carry_sites > 0 {
        0.0
    } else {
        LUT_PER_BINARY_LANE
    };
    let aw = l.acc_width();
    let ew = l.elem_width();
    let n = l.inputs * ew;
    // An accumulator in carry cells takes a LUT site per bit and about two for its result
    // (measured: 12.2 sites per PE of a 10-bit accumulator, ULX3S half-device plan's layer 1
    // between 22 and 44 PEs); otherwise an adder, a multiplexer and a compare, calibrated.
    let (pe_sites, pe) = if l.carry_cell_accumulator() {
        (l.pe * (aw + 2), 0)
    } else {
        (0, l.pe * (2 * aw + 2))
    };
    let out = match l.output {
        OutputKind::Scores => l.outputs * aw,
        OutputKind::Threshold => 0,
    };
    // Input storage: the producer's vector (with a write enable per bit), the layer's copy of
    // it, and the slice mux (S*ew outputs, each an SF-to-1 mux of about SF/2 LUT4); or the
    // buffer's counters, the producer's word packing and the block RAM.
    let (in_lut, in_ff, in_ram) = match l.input {
        InputMode::Register => (n + l.word_width() * l.sf().div_ceil(2), 2 * n, (0, 0)),
        InputMode::Hold => (n + l.word_width() * l.sf().div_ceil(2), n, (0, 0)),
        InputMode::Buffer => (
            l.word_width() + 4 * l.inbuf_addr_width() + 16,
            l.word_width() + 2 * l.inbuf_addr_width() + 4,
            memory_blocks(dev, l.word_width(), 1 << l.inbuf_addr_width()),
        ),
    };
    let packing = l.stream_out.map_or(0, |word| packing_luts(l.pe, word));
    let lut = carry_sites
        + pe_sites
        + family_luts(
            dev,
            (l.lanes() as f64 * lane) as usize + in_lut + pe + out + packing + 40,
        );
    let tree_ff = l.pe * l.simd * ew / crate::blocks::tree::STRIDE; // about one register per term
                                                                    // An overlapped layer keeps earlier folds' results in a work register of M results.
    let result_width = if l.output == OutputKind::Scores {
        aw
    } else {
        1
    };
    let work = if l.overlap {
        l.outputs * result_width
    } else {
        0
    };
    // The threshold word is registered twice (the block RAM's output and a copy the compare
    // starts from).
    let thr_ff = match l.output {
        OutputKind::Threshold => l.pe * l.threshold_width(),
        OutputKind::Scores => 0,
    };
    let ff = in_ff + out + work + l.pe * aw + tree_ff + thr_ff + l.lanes() + 40;
    let thresholds = match l.output {
        OutputKind::Threshold if l.thresholds_in_block_ram => {
            let (bram_bits, bram_blocks) = memory_blocks(dev, l.pe * l.threshold_width(), l.nf());
            Estimate {
                bram_bits,
                bram_blocks,
                ..Default::default()
            }
        }
        OutputKind::Threshold => inferred_memory(dev, l.pe * l.threshold_width(), l.nf()),
        OutputKind::Scores => Estimate::default(),
    };
    let (conv_lut, conv_ff) = conv_logic(l);
    let mut est = thresholds
        + pool_estimate(l, dev)
        + Estimate {
            lut: lut + family_luts(dev, conv_lut),
            ff: ff + conv_ff,
            bram_bits: in_ram.0,
            bram_blocks: in_ram.1,
            ..Default::default()
        };
    match l.mem {
        MemKind::BlockRam => {
            let (bits, blocks) = memory_blocks(dev, l.lanes(), l.weight_depth());
            est.bram_bits += bits;
            est.bram_blocks += blocks;
        }
        MemKind::Spram => {
            est.spram_blocks = spram_blocks(l.lanes(), l.weight_depth());
            est.spram_bits = est.spram_blocks * SPRAM_SHAPE.0 * SPRAM_SHAPE.1;
            // The shared read/write address costs a mux per address bit.
            est.lut += 14;
        }
    }
    est
}

/// LUT4s and flip-flops a convolution adds to its MVTU: the window's counters and address, and
/// the padded-operand mux.
fn conv_logic(l: &LayerPlan) -> (usize, usize) {
    let Some(c) = &l.conv else { return (0, 0) };
    let coord = crate::ir::bits_for(c.input.height.max(c.input.width) + 2 * c.kernel) + 1;
    let addr = l.inbuf_addr_width();
    let counters = 6 * coord + 4 * addr;
    (3 * counters + l.word_width(), counters + 4)
}

/// The max-pool on a convolution's output: counters, the pixel's ring, and the pooled row in
/// flip-flops or in block RAM (see `blocks::pool`).
fn pool_estimate(l: &LayerPlan, dev: &Device) -> Estimate {
    let Some((c, k)) = l.conv.and_then(|c| c.pool.map(|k| (c, k))) else {
        return Estimate::default();
    };
    let (entries, bits) = crate::blocks::pool::ring_size(c.output, l.pe, k);
    let pixel = c.output.channels;
    let row = if crate::blocks::pool::ring_in_ram(c.output, l.pe, k) {
        let (bits, blocks) = memory_blocks(dev, l.pe, entries);
        Estimate {
            lut: 3 * l.pe + 20,
            ff: 4 * l.pe + 20,
            bram_bits: bits,
            bram_blocks: blocks,
            ..Default::default()
        }
    } else {
        Estimate {
            lut: l.pe,
            ff: bits + l.pe,
            ..Default::default()
        }
    };
    row + Estimate {
        lut: family_luts(dev, 2 * pixel.min(l.pe * 2) + 40),
        ff: pixel + 30,
        ..Default::default()
    }
}

/// A memory left to synthesis ([`crate::board::Family::memory_kind`]): yosys builds one of
/// fewer than 8 words from flip-flops and multiplexers on the iCE40 (measured with yosys 0.23's
/// `synth_ice40`: 4 words x 112 bits took 560 flip-flops, 8 words took 7 block RAMs), one of 2
/// to 32 words from distributed RAM on the ECP5, a deeper one from block RAM.
fn inferred_memory(dev: &Device, width: usize, depth: usize) -> Estimate {
    use crate::family::MemoryKind;
    match (
        dev.family.memory_kind(depth, None),
        dev.family.def().lut_ram,
    ) {
        (MemoryKind::FlipFlops, _) => Estimate {
            lut: family_luts(dev, width * depth.div_ceil(2)),
            ff: width * (depth + 1),
            ..Default::default()
        },
        // Counted in LUT sites, not calibrated; the read register stays a flip-flop.
        (MemoryKind::LutRam, Some(ram)) => Estimate {
            lut: ram.sites(width, depth),
            ff: width,
            ..Default::default()
        },
        _ => {
            let (bram_bits, bram_blocks) = memory_blocks(dev, width, depth);
            Estimate {
                bram_bits,
                bram_blocks,
                ..Default::default()
            }
        }
    }
}

/// SPRAM primitives for a `width x depth` memory. yosys puts a power of two of narrow words
/// side by side in a 16-bit row (measured: `models/mnist-u8.bqm`'s 7 x 28,672 first layer takes
/// one SPRAM, which the plan used to count as two).
pub fn spram_blocks(width: usize, depth: usize) -> usize {
    let (row, rows) = SPRAM_SHAPE;
    let mut side_by_side = 1;
    while width * side_by_side * 2 <= row {
        side_by_side *= 2;
    }
    width.div_ceil(row) * depth.div_ceil(rows * side_by_side)
}

/// Block RAM primitives for a `width x depth` memory: the best of the device's aspect ratios.
pub fn memory_blocks(dev: &Device, width: usize, depth: usize) -> (usize, usize) {
    let blocks = dev
        .bram_shapes
        .iter()
        .map(|&(w, d)| width.div_ceil(w) * depth.div_ceil(d))
        .min()
        .unwrap_or(usize::MAX);
    (width * depth, blocks)
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Per-layer plans.
    pub layers: Vec<LayerPlan>,
    /// Estimated resources of the whole design.
    pub estimate: Estimate,
    /// Steady-state cycles per inference (the slowest layer plus its pipeline overhead).
    pub cycles_per_inference: usize,
    /// Total MACs / total lanes.
    pub ideal_cycles: f64,
    /// Set when even the most folded design needs more logic cells than the device has: the
    /// plan is the fastest one that fits the LUT and memory budgets (it simulates), and `bql
    /// build` refuses it before synthesis with this message.
    pub logic_overfull: Option<String>,
    /// The interval the plan was not allowed to go below (the UART's image rate), if any.
    pub link_interval: Option<usize>,
}

/// Fixed cost of the design outside the layers (argmax, input loader, control), LUT4.
const BASE_LUT: usize = 150;

/// The board-level top (UART, protocol, frame slots, executor, transmitter): measured on iCE40
/// at about 930 LUT4 and 530 flip-flops besides its memory-word register.
fn top_estimate(dev: &Device, net: &Network) -> Estimate {
    // The receive buffer: frame slots of a power of two bytes that hold an image (an 8-bit
    // MNIST image's two take 4 EBR on the iCE40, which the plan used to leave out).
    use crate::blocks::link;
    let image = link::image_bytes(net.input.len(), net.input.encoding);
    let slot = link::slot_bytes(image, 1);
    let (bram_bits, bram_blocks) = memory_blocks(dev, 8, link::frame_slots(slot) * slot);
    Estimate {
        lut: family_luts(dev, 900),
        ff: 600,
        bram_bits,
        bram_blocks,
        ..Default::default()
    }
}

fn layer_template(net: &Network) -> Result<Vec<LayerPlan>> {
    let mut plans: Vec<LayerPlan> = Vec::new();
    let mut after_map = false;
    for (i, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Dense(d) => {
                plans.push(weight_layer(
                    i,
                    d.inputs(),
                    d.outputs(),
                    d.accumulator,
                    None,
                    after_map,
                ));
                after_map = false;
            }
            Layer::Conv2d(c) => {
                plans.push(weight_layer(
                    i,
                    c.window_len(),
                    c.out_channels(),
                    c.accumulator,
                    Some(conv_plan(c)),
                    true,
                ));
                after_map = true;
            }
            Layer::MaxPool2d(p) => {
                let fused = match plans.last_mut().and_then(|l| l.conv.as_mut()) {
                    Some(c) if c.pool.is_none() && net.layers[i - 1].as_conv().is_some() => c,
                    _ => {
                        return Err(Error::unsupported(format!(
                            "layer {i} (maxpool2d) does not follow a convolution directly: the \
                         hardware pools a convolution's output stream"
                        )))
                    }
                };
                fused.pool = Some(p.kernel);
            }
            Layer::Flatten(_) => {}
            other => {
                return Err(Error::unsupported(format!(
                    "layer {i} ({}) has no hardware block yet",
                    other.kind_name()
                )))
            }
        }
    }
    if let Some(last) = plans.last_mut() {
        last.output = OutputKind::Scores;
    }
    if let (Some(first), InputEncoding::Table(_)) = (plans.first_mut(), net.input.encoding) {
        first.table_input = true;
    }
    Ok(plans)
}

/// The template of a layer with weights (model layer `index`), P = S = 1.
fn weight_layer(
    index: usize,
    inputs: usize,
    outputs: usize,
    accumulator: AccumulatorKind,
    conv: Option<ConvPlan>,
    map_input: bool,
) -> LayerPlan {
    LayerPlan {
        index,
        inputs,
        outputs,
        pe: 1,
        simd: 1,
        pixel_input: accumulator == AccumulatorKind::SignedPixelSum,
        table_input: false,
        output: OutputKind::Threshold,
        mem: MemKind::BlockRam,
        overlap: false,
        input: InputMode::Register,
        stream_out: None,
        conv,
        map_input,
        popcount: Popcount::Adders,
        thresholds_in_block_ram: false,
    }
}

fn conv_plan(c: &bql_model::layers::Conv2d) -> ConvPlan {
    let (pad_top, pad_left) = c.pad_before();
    ConvPlan {
        input: MapDims::of(c.input),
        kernel: c.kernel,
        stride: c.stride,
        pad_top,
        pad_left,
        pad_bit: c.pad_bit(),
        output: MapDims::of(c.output()),
        pool: None,
    }
}

/// Whether P and S suit a layer: a convolution's P divides its output channels (its output
/// stream has no padding bits between pixels) and its S divides its input channels (each fold
/// reads S channels of one pixel).
pub fn fold_suits(l: &LayerPlan, p: usize, s: usize) -> bool {
    match &l.conv {
        Some(c) => c.output.channels % p == 0 && c.input.channels % s == 0,
        None => true,
    }
}

/// Memory kinds a device offers for weights.
fn mem_kinds(dev: &Device) -> Vec<MemKind> {
    if dev.spram_blocks > 0 {
        vec![MemKind::BlockRam, MemKind::Spram]
    } else {
        vec![MemKind::BlockRam]
    }
}

/// Candidate values for P (or S) of a dimension `n`, up to `cap`: its divisors, powers of two,
/// multiples of 8 (word widths that match memory widths: SPRAM is 16 bits wide), and for every
/// fold count `f` the fewest lanes that make it, `ceil(n / f)` (the last fold padded). Without
/// the last, a layer that could keep pace with 3 lanes took 4 (256 inputs: 86 folds of 3), and
/// plans were less balanced than their lanes allowed.
fn candidates(n: usize, cap: usize) -> Vec<usize> {
    let mut c: Vec<usize> = (1..=n.min(cap))
        .filter(|d| n % d == 0 || d.is_power_of_two() || d % 8 == 0)
        .chain((1..=n).map(|folds| n.div_ceil(folds)).filter(|&d| d <= cap))
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// The input mode of layer `l` after `prev` (`None` for the first layer, fed by the input
/// loader), with or without input buffers.
pub fn input_mode(l: &LayerPlan, prev: Option<&LayerPlan>, buffers: bool) -> InputMode {
    let buffer_ok = (buffers || l.map_input)
        && match prev {
            // The loader writes one beat of min(S, 64, N) pixels per word.
            None => l.simd <= 64 && l.simd <= l.inputs,
            Some(p) => !p.overlap && p.output == OutputKind::Threshold && l.simd % p.pe == 0,
        };
    if buffer_ok {
        InputMode::Buffer
    } else if prev.is_none() && wants_hold(l) {
        InputMode::Hold
    } else {
        InputMode::Register
    }
}

/// Whether a layer may take its input in `mode`: a layer reading a map needs its buffer.
pub fn mode_allowed(l: &LayerPlan, mode: InputMode) -> bool {
    !l.map_input || mode == InputMode::Buffer
}

/// Sets every layer's input mode (and its producer's packing) from the folds.
fn set_modes(layers: &mut [LayerPlan], buffers: bool) {
    for i in 0..layers.len() {
        let mode = input_mode(&layers[i], i.checked_sub(1).map(|p| &layers[p]), buffers);
        layers[i].input = mode;
        if i > 0 {
            layers[i - 1].stream_out = (mode == InputMode::Buffer).then_some(layers[i].simd);
        }
    }
}

fn finish(mut layers: Vec<LayerPlan>, dev: &Device, net: &Network) -> Plan {
    spare_block_ram_for_thresholds(&mut layers, dev, net);
    let estimate = layers.iter().map(|l| estimate_layer(l, dev)).fold(
        Estimate {
            lut: BASE_LUT,
            ff: 100,
            ..Default::default()
        },
        |a, b| a + b,
    );
    let lanes: usize = layers.iter().map(LayerPlan::lanes).sum();
    let argmax = layers
        .last()
        .map_or(0, |l| crate::blocks::argmax::interval(l.outputs));
    let cycles_per_inference = layers
        .iter()
        .map(|l| l.cycles() + pipeline_overhead(l))
        .max()
        .unwrap_or(0)
        .max(argmax);
    Plan {
        layers,
        estimate: estimate + top_estimate(dev, net),
        cycles_per_inference,
        ideal_cycles: net.macs() as f64 / lanes as f64,
        logic_overfull: None,
        link_interval: None,
    }
}

/// Share of the device's block RAMs a plan may fill by moving threshold memories out of
/// distributed RAM. Routing, not capacity, sets it: on the ULX3S (85F) the half-device design
/// (101 of 208 DP16KD) meets 125 MHz, designs with 147 and 198 did not finish routing.
const SPARE_BLOCK_RAM_SHARE: f64 = 0.6;

/// On a family with distributed RAM, moves the threshold memories that yosys would build from it
/// into block RAM, layer by layer, while the plan's block RAMs stay within
/// [`SPARE_BLOCK_RAM_SHARE`] of the device's: a `TRELLIS_DPR16X4` fills 6 LUT sites and holds
/// 64 bits, a DP16KD 18 kbits (the half-device ULX3S design held its thresholds in 266
/// DPR16X4, 1,596 LUT sites of its 12,791).
fn spare_block_ram_for_thresholds(layers: &mut [LayerPlan], dev: &Device, net: &Network) {
    use crate::family::MemoryKind;
    if dev.family.def().lut_ram.is_none() {
        return;
    }
    let budget = (dev.bram_blocks as f64 * SPARE_BLOCK_RAM_SHARE) as usize;
    let blocks_of = |l: &LayerPlan| estimate_layer(l, dev).bram_blocks;
    let mut blocks =
        layers.iter().map(blocks_of).sum::<usize>() + top_estimate(dev, net).bram_blocks;
    for l in layers.iter_mut() {
        let in_lut_ram = l.output == OutputKind::Threshold
            && dev.family.memory_kind(l.nf(), None) == MemoryKind::LutRam;
        if !in_lut_ram || l.thresholds_in_block_ram {
            continue;
        }
        let before = blocks_of(l);
        l.thresholds_in_block_ram = true;
        let moved = blocks - before + blocks_of(l);
        if moved <= budget {
            blocks = moved;
        } else {
            l.thresholds_in_block_ram = false;
        }
    }
}

/// Cycles a layer spends per input beyond `NF * SF`: one accept cycle when overlapped,
/// otherwise the handshake, memory read and tree latency.
pub fn pipeline_overhead(l: &LayerPlan) -> usize {
    // A held input is refilled by the loader after the last fold has read it.
    let refill = if l.input == InputMode::Hold {
        input_beats(l) + 2
    } else {
        0
    };
    // A layer writing into a buffer waits for its last word to be written.
    let packing = usize::from(l.stream_out.is_some());
    refill + packing + if l.overlap { 1 } else { drain(l) }
}

/// Whether a layer reads its input in place: the first layer, when the loader's refill costs
/// under 5 % of its cycles.
pub fn wants_hold(l: &LayerPlan) -> bool {
    l.index == 0 && input_beats(l) * 20 <= l.cycles()
}

/// Beats the input loader takes per image for a first layer (see `blocks::core`).
pub fn input_beats(l0: &LayerPlan) -> usize {
    l0.inputs.div_ceil(l0.simd.min(64).min(l0.inputs))
}

fn drain(l: &LayerPlan) -> usize {
    l.tree().latency() + 4
}

/// Whether a layer should overlap its next input with its drain (never a convolution: its
/// positions follow each other without a drain, and its output streams into a buffer).
pub fn wants_overlap(l: &LayerPlan) -> bool {
    l.conv.is_none() && drain(l) * 20 > l.cycles()
}

/// What the planner's search needs besides the options.
#[derive(Clone, Copy)]
struct SearchCtx<'a> {
    fits: &'a dyn Fn(&Estimate) -> bool,
    family: crate::board::Family,
    buffers: bool,
    /// Designs with more logic cells are dropped.
    cell_cap: usize,
    /// Rank by lanes first (the balanced pass), else by cells first.
    lanes_first: bool,
}

/// One folding choice for a layer: its cycles per input, the layer, and its estimate in each
/// input mode (the mode depends on the previous layer's choice, so it is settled while
/// choosing).
type Choice = (usize, LayerPlan, [Estimate; 3]);

/// Plans `net` for `dev`: the smallest steady-state interval whose cheapest per-layer choices fit
/// the LUT budget (a fraction of the device, leaving room for routing and the I/O) and the
/// block RAM. `overrides` fixes (layer, P, S) triples; `floor` is an interval not worth going
/// below (the link's), so the plan is the smallest design at or above it.
pub fn plan(
    net: &Network,
    dev: &Device,
    overrides: &[(usize, usize, usize)],
    floor: Option<usize>,
) -> Result<Plan> {
    plan_counting(net, dev, overrides, floor, None)
}

/// [`plan`] with the binary layers' lane counter chosen (`None`: the family's default,
/// [`Popcount::for_layer`]). `CarryCells` means the family's own cells ([`Popcount::on`]).
pub fn plan_counting(
    net: &Network,
    dev: &Device,
    overrides: &[(usize, usize, usize)],
    floor: Option<usize>,
    popcount: Option<Popcount>,
) -> Result<Plan> {
    let popcount = popcount.map(|p| p.on(dev.family));
    let link_interval = floor;
    let floor = floor.unwrap_or(0);
    let mut plan = match plan_within(net, dev, overrides, true, floor, popcount) {
        Err(e) if e.kind() == crate::ErrorKind::DoesNotFit => {
            let mut p = plan_within(net, dev, overrides, false, floor, popcount)?;
            let budget = (dev.luts as f64 * dev.lut_fill) as usize;
            let cells = p.estimate.cells(dev.family);
            p.logic_overfull = Some(format!(
                "needs about {cells} logic cells ({} LUT4 + {} flip-flops) of the {budget} usable \
                 on the {} ({} on the device), short by {}",
                p.estimate.lut,
                p.estimate.ff,
                dev.name,
                dev.luts,
                cells.saturating_sub(budget)
            ));
            p
        }
        r => r?,
    };
    plan.link_interval = link_interval;
    Ok(plan)
}

/// [`plan`] with the logic budget on logic cells (`cells`) or on LUT4s alone.
fn plan_within(
    net: &Network,
    dev: &Device,
    overrides: &[(usize, usize, usize)],
    cells: bool,
    floor: usize,
    popcount: Option<Popcount>,
) -> Result<Plan> {
    let mut template = layer_template(net)?;
    for t in &mut template {
        let default = Popcount::for_layer(dev.family, t.pixel_input);
        t.popcount = if t.pixel_input {
            Popcount::Adders
        } else {
            popcount.unwrap_or(default)
        };
    }
    check_overrides(&template, overrides)?;
    let lut_budget = (dev.luts as f64 * dev.lut_fill) as usize;
    let options: Vec<Vec<Choice>> = template
        .iter()
        .map(|t| layer_choices(t, overrides, dev))
        .collect();
    let top = top_estimate(dev, net);
    let fits = |t: &Estimate| {
        let logic = if cells {
            (*t + top).cells(dev.family)
        } else {
            t.lut
        };
        logic <= lut_budget
            && t.bram_blocks + top.bram_blocks <= dev.bram_blocks
            && t.spram_blocks <= dev.spram_blocks
    };
    // "Costs nothing more": within 2 % of the whole design's logic cells (the top level's too),
    // well inside the estimates' error (1 % left `small` on the ECP5-EVN 1.0 % short of its
    // balanced plan, at 1.32x the ideal cycles, once distributed RAM was counted).
    let slack = |cells: usize| (top.cells(dev.family) + cells) / 50;
    let choose = |target: usize| {
        choose_with(&options, target, true, &fits, &slack, dev)
            .or_else(|| choose_with(&options, target, false, &fits, &slack, dev))
    };
    let targets = candidate_intervals(&options, floor);
    // Feasibility is monotone in the target interval: binary search for the smallest.
    let (mut lo, mut hi) = (0usize, targets.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if choose(targets[mid]).is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if floor == 0 && lo < targets.len() {
        let interval = |t: usize| choose(t).map(|l| finish(l, dev, net).cycles_per_inference);
        lo = relaxed_target(&targets, lo, interval);
    }
    match targets.get(lo).and_then(|&t| choose(t)) {
        Some(layers) => Ok(finish(layers, dev, net)),
        None => Err(does_not_fit(
            &options,
            dev,
            net,
            lut_budget,
            !overrides.is_empty(),
        )),
    }
}

/// At full speed (no link floor) a design a few percent slower can cost far less logic (the
/// default model on the ULX3S: 48 cycles for 38 k LUT4, 49 for 25 k). From the index of the
/// fastest target that fits, the index of the largest target whose design (the cheapest within
/// it) keeps the interval within 1/32 of the fastest design's. Under a link floor the interval
/// is the link's, and this is not used.
fn relaxed_target(
    targets: &[usize],
    fastest: usize,
    interval: impl Fn(usize) -> Option<usize>,
) -> usize {
    let Some(best) = interval(targets[fastest]) else {
        return fastest;
    };
    let bound = best + best / 32;
    // A design's interval is at least its target: targets above the bound cannot keep it.
    let (mut lo, mut hi) = (fastest, targets.partition_point(|&t| t <= bound));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if interval(targets[mid]).is_some_and(|i| i <= bound) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `--fold` triples must name a layer and lie within its shape and the link's address space.
fn check_overrides(template: &[LayerPlan], overrides: &[(usize, usize, usize)]) -> Result<()> {
    for &(i, p, s) in overrides {
        let l = template.iter().find(|l| l.index == i).ok_or_else(|| {
            Error::invalid(format!(
                "--fold {i}:{p}:{s}: layer {i} is not a layer with weights (those are {})",
                template
                    .iter()
                    .map(|l| l.index.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if p == 0 || s == 0 || p > l.outputs || s > l.inputs {
            return Err(Error::invalid(format!(
                "--fold {i}:{p}:{s}: P must be 1..={} and S 1..={} for layer {i}",
                l.outputs, l.inputs
            )));
        }
        if let (Some(c), false) = (&l.conv, fold_suits(l, p, s)) {
            return Err(Error::invalid(format!(
                "--fold {i}:{p}:{s}: layer {i} is a convolution: P must divide its {} output \
                 channels and S its {} input channels",
                c.output.channels, c.input.channels
            )));
        }
        let depth = l.outputs.div_ceil(p) * l.inputs.div_ceil(s);
        if depth > bql_protocol::MAX_MEMORY_WORDS {
            return Err(Error::invalid(format!(
                "--fold {i}:{p}:{s}: layer {i}'s weight memory would be {depth} words deep, more \
                 than the {} the link can address; raise P or S",
                bql_protocol::MAX_MEMORY_WORDS
            )));
        }
    }
    Ok(())
}

/// Every (P, S, memory) choice for one layer, or only the pinned one.
fn layer_choices(t: &LayerPlan, overrides: &[(usize, usize, usize)], dev: &Device) -> Vec<Choice> {
    let with_estimates = |l: LayerPlan| -> Choice {
        let est =
            InputMode::ALL.map(|input| estimate_layer(&LayerPlan { input, ..l.clone() }, dev));
        (l.cycles(), l, est)
    };
    let fixed = overrides.iter().find(|o| o.0 == t.index);
    let mut opts = Vec::new();
    for p in candidates(t.outputs, 512) {
        for s in candidates(t.inputs, 1024) {
            if let Some(&(_, fp, fs)) = fixed {
                if (p, s) != (fp, fs) {
                    continue;
                }
            }
            if t.outputs.div_ceil(p) * t.inputs.div_ceil(s) > bql_protocol::MAX_MEMORY_WORDS
                || !fold_suits(t, p, s)
            {
                continue;
            }
            for mem in mem_kinds(dev) {
                let mut l = LayerPlan {
                    pe: p,
                    simd: s,
                    mem,
                    ..t.clone()
                };
                l.overlap = wants_overlap(&l);
                opts.push(with_estimates(l));
            }
        }
    }
    if let Some(&(_, fp, fs)) = fixed {
        if opts.is_empty() {
            let mut l = LayerPlan {
                pe: fp,
                simd: fs,
                ..t.clone()
            };
            l.overlap = wants_overlap(&l);
            opts.push(with_estimates(l));
        }
    }
    opts
}

/// For a target interval: per layer, the choices that no other choice beats on logic, block RAM
/// and SPRAM at once (each in the input mode it would get after a producer that allows
/// buffers); then a search over those, with the actual modes, for the design with the fewest
/// logic cells that fits, and then for the one with the fewest lanes within `slack(cells)` more
/// cells. `buffers`: with input buffers where their conditions hold.
fn choose_with(
    options: &[Vec<Choice>],
    target: usize,
    buffers: bool,
    fits: &dyn Fn(&Estimate) -> bool,
    slack: &dyn Fn(usize) -> usize,
    dev: &Device,
) -> Option<Vec<LayerPlan>> {
    let fronts: Vec<Vec<&Choice>> = options
        .iter()
        .enumerate()
        .map(|(i, opts)| {
            let feeds_map = options
                .get(i + 1)
                .and_then(|o| o.first())
                .is_some_and(|c| c.1.map_input);
            pareto_front(i, opts, target, buffers, feeds_map, dev)
        })
        .collect();
    if fronts.iter().any(Vec::is_empty) {
        return None;
    }
    let ctx = SearchCtx {
        fits,
        family: dev.family,
        buffers,
        cell_cap: usize::MAX,
        lanes_first: false,
    };
    let mut best = None;
    let start = Estimate {
        lut: BASE_LUT,
        ..Default::default()
    };
    // The fewest logic cells; then, within `slack` of those (well inside the estimates' error),
    // the fewest lanes: at one interval that is the balanced design.
    search(&fronts, &mut Vec::new(), start, &ctx, &mut best);
    let (cheapest, _) = best.as_ref()?.0;
    let balanced = SearchCtx {
        cell_cap: cheapest + slack(cheapest),
        lanes_first: true,
        ..ctx
    };
    search(&fronts, &mut Vec::new(), start, &balanced, &mut best);
    best.map(|(_, mut c)| {
        set_modes(&mut c, buffers);
        c
    })
}

/// Layer `i`'s choices within `target` cycles that no other beats on logic, block RAM, SPRAM and
/// lanes (fewer lanes at the same logic make a more balanced plan, see [`search`]).
/// Where a feature map passes between two layers the producer's P must divide the consumer's
/// S, so choices with another such P or S are not compared (`feeds_map`: the next layer reads
/// this one's map).
fn pareto_front<'a>(
    i: usize,
    opts: &'a [Choice],
    target: usize,
    buffers: bool,
    feeds_map: bool,
    dev: &Device,
) -> Vec<&'a Choice> {
    let key = |l: &LayerPlan| {
        (
            if l.map_input { l.simd } else { 0 },
            if feeds_map { l.pe } else { 0 },
        )
    };
    let assumed = |l: &LayerPlan| {
        let mode = match i {
            0 => input_mode(l, None, buffers),
            _ if buffers || l.map_input => InputMode::Buffer,
            _ => InputMode::Register,
        };
        mode.index()
    };
    let mut cands: Vec<&Choice> = opts.iter().filter(|(c, _, _)| *c <= target).collect();
    cands.sort_by_key(|(c, l, e)| (e[assumed(l)].cells(dev.family), *c));
    let mut front: Vec<&Choice> = Vec::new();
    for o in cands {
        let e = &o.2[assumed(&o.1)];
        let dominated = front.iter().any(|f| {
            let g = &f.2[assumed(&f.1)];
            key(&f.1) == key(&o.1)
                && g.bram_blocks <= e.bram_blocks
                && g.spram_blocks <= e.spram_blocks
                && f.1.lanes() <= o.1.lanes()
                && feeds_like(&f.1, &o.1)
        });
        if !dominated {
            front.push(o);
        }
    }
    front
}

/// Whether `f` can stand in for `o` wherever `o` gets an input buffer or feeds one: a buffer
/// needs the producer's P to divide the consumer's S, so every producer P that divides o's S must
/// divide f's (o's S divides f's), and every consumer S that o's P divides, f's P must divide.
/// Without this a cheaper choice with an S no producer divides (11 lanes after P = 2) crowded
/// out the ones the search needed, and feasible intervals were missed.
fn feeds_like(f: &LayerPlan, o: &LayerPlan) -> bool {
    f.simd % o.simd == 0 && o.pe % f.pe == 0
}

/// Depth-first over the layers for the fewest logic cells then lanes, or (`lanes_first`) the
/// fewest lanes then cells among designs within `cell_cap`. At one interval the ratio to the
/// ideal cycles is `interval * lanes / MACs`, so of two designs that cost about the same logic
/// the one with fewer lanes is the balanced one (block RAM is spent if it fits). Cells and lanes
/// only grow, so a partial design over a budget, or already no better than the best, is dropped.
/// `best` holds the (cells, lanes) of the best design and the design.
fn search(
    fronts: &[Vec<&Choice>],
    chosen: &mut Vec<LayerPlan>,
    total: Estimate,
    ctx: &SearchCtx<'_>,
    best: &mut Option<((usize, usize), Vec<LayerPlan>)>,
) {
    let i = chosen.len();
    let cost = (
        total.cells(ctx.family),
        chosen.iter().map(LayerPlan::lanes).sum::<usize>(),
    );
    let rank = |(cells, lanes): (usize, usize)| {
        if ctx.lanes_first {
            (lanes, cells)
        } else {
            (cells, lanes)
        }
    };
    if !(ctx.fits)(&total)
        || cost.0 > ctx.cell_cap
        || best.as_ref().is_some_and(|(b, _)| rank(cost) >= rank(*b))
    {
        return;
    }
    if i == fronts.len() {
        *best = Some((cost, chosen.clone()));
        return;
    }
    for (_, l, est) in fronts[i].iter().copied() {
        let mode = input_mode(l, chosen.last(), ctx.buffers);
        if !mode_allowed(l, mode) {
            continue;
        }
        let e = est[mode.index()];
        chosen.push(LayerPlan {
            input: mode,
            ..l.clone()
        });
        search(fronts, chosen, total + e, ctx, best);
        chosen.pop();
    }
}

/// The intervals worth trying, ascending: every layer choice's cycles, from the largest not
/// above the link floor (intervals further below it gain nothing: the slowest layer still
/// keeps pace with the link).
fn candidate_intervals(options: &[Vec<Choice>], floor: usize) -> Vec<usize> {
    let max_cycles = options
        .iter()
        .map(|o| o.iter().map(|x| x.0).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut all_cycles: Vec<usize> = options
        .iter()
        .flatten()
        .map(|x| x.0)
        .filter(|&c| c <= max_cycles)
        .collect();
    all_cycles.sort_unstable();
    all_cycles.dedup();
    let first = all_cycles
        .partition_point(|&c| c <= floor)
        .saturating_sub(1);
    all_cycles.drain(..first);
    all_cycles
}

/// The error for a model that does not fit even fully folded (its other layers, when some have
/// their folds given): the smallest design (most folded) and what it lacks.
fn does_not_fit(
    options: &[Vec<Choice>],
    dev: &Device,
    net: &Network,
    lut_budget: usize,
    folds_given: bool,
) -> Error {
    // The fewest LUTs and the fewest block RAMs come from different foldings (many lanes can
    // need fewer memory blocks): each shortfall is reported for the design that minimizes it.
    let smallest = |by_lut: bool| {
        let mut layers: Vec<LayerPlan> = options
            .iter()
            .map(|o| {
                o.iter()
                    .filter(|(_, l, _)| l.mem == MemKind::BlockRam)
                    .min_by_key(|(_, l, e)| {
                        let mode = if l.map_input {
                            InputMode::Buffer
                        } else {
                            InputMode::Register
                        };
                        let e = &e[mode.index()];
                        if by_lut {
                            (e.lut, e.bram_blocks)
                        } else {
                            (e.bram_blocks, e.lut)
                        }
                    })
                    .expect("options")
                    .1
                    .clone()
            })
            .collect();
        set_modes(&mut layers, false);
        finish(layers, dev, net)
    };
    let (p, fewest_luts) = (smallest(false), smallest(true));
    let mut short = Vec::new();
    if fewest_luts.estimate.lut > lut_budget {
        short.push(format!(
            "LUTs: needs about {} of the {} usable ({} on the device), short by {}",
            fewest_luts.estimate.lut,
            lut_budget,
            dev.luts,
            fewest_luts.estimate.lut - lut_budget
        ));
    }
    if p.estimate.bram_blocks > dev.bram_blocks {
        short.push(format!(
            "block RAM: the weights and thresholds need {} blocks ({} bits), the device has {} \
             ({} bits), short by {} blocks",
            p.estimate.bram_blocks,
            p.estimate.bram_bits,
            dev.bram_blocks,
            dev.bram_blocks * dev.bram_block_bits,
            p.estimate.bram_blocks - dev.bram_blocks
        ));
    }
    if dev.spram_blocks > 0 {
        short.push(format!(
            "its {} SPRAMs ({} bits) do not make up the difference",
            dev.spram_blocks,
            dev.spram_blocks * SPRAM_SHAPE.0 * SPRAM_SHAPE.1
        ));
    }
    let how = if folds_given {
        "with the folds given (--fold) and its other layers fully folded"
    } else {
        "even fully folded"
    };
    Error::does_not_fit(format!(
        "the model ({} weight bits) does not fit the {} {how}: {}",
        net.weight_bits(),
        dev.name,
        short.join("; ")
    ))
}
