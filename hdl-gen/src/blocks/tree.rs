//! Pipelined adder tree: sums `n` terms of `w` bits (unsigned popcount lanes, or signed pixel
//! terms), a register level after every `stride` adder levels (and after the last). This is the
//! popcount of an XNOR/XOR array when the terms are single bits.
//!
//! Registering every level cost more flip-flops than the adders' LUTs on iCE40, where a logic
//! cell pairs one LUT with one flip-flop: a 392-lane popcount had 1,184 pipeline flip-flops for
//! 973 LUTs. Registers now follow the first level (the memory read and the lanes' XOR come
//! before it) and then every second: at 48 MHz on the UP5K three adders after a register were
//! the critical path (22.8 ns), and a level's flip-flops pack with the adder LUTs that feed them.

use serde::Serialize;

use crate::blocks::compressor::CarryTree;
use crate::blocks::compressor_ice40::LogicTree;
use crate::ir::{bits_for, e, Expr, Item, Module, Stmt};

/// How a binary layer's PEs count their lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Popcount {
    /// XOR terms into a pipelined tree of adders, mapped by yosys (8-bit layers).
    Adders,
    /// ECP5 carry cells with the lanes' XORs inside their propagate terms
    /// ([`crate::blocks::compressor`]): cheaper per lane than what yosys maps on the ECP5.
    CarryCells,
    /// iCE40 logic cells, SB_LUT4 with SB_CARRY, instantiated as a tree of lane pairs and
    /// ripple adders ([`crate::blocks::compressor_ice40`]): cheaper per lane than what yosys
    /// maps on the iCE40.
    LogicCells,
}

impl Popcount {
    /// The counter for a family's binary layers (8-bit layers add pixels with adders).
    pub fn for_layer(family: crate::board::Family, pixel_input: bool) -> Popcount {
        match family {
            _ if pixel_input => Popcount::Adders,
            crate::board::Family::Ecp5 => Popcount::CarryCells,
            crate::board::Family::Ice40 => Popcount::LogicCells,
        }
    }

    /// The family's own cell compressor for `CarryCells` (the CLI's `carry-cells` names both).
    pub fn on(self, family: crate::board::Family) -> Popcount {
        match self {
            Popcount::Adders => Popcount::Adders,
            Popcount::CarryCells | Popcount::LogicCells => Popcount::for_layer(family, false),
        }
    }
}

/// A compressor built from a family's cells.
#[derive(Debug, Clone)]
pub enum CellTree {
    /// ECP5 CCU2C cells.
    Ccu2c(CarryTree),
    /// iCE40 logic cells.
    Logic(LogicTree),
}

impl CellTree {
    /// LUT sites it fills after packing: CCU2C halves (the toolchain leaves the chains' ends
    /// unconnected, so nextpnr-ecp5 adds no cells to them), or iCE40 logic cells.
    pub fn sites(&self) -> usize {
        match self {
            CellTree::Ccu2c(t) => t.halves(),
            CellTree::Logic(t) => t.cells(),
        }
    }

    /// Pipeline registers on the way from the lanes to the count.
    pub fn latency(&self) -> usize {
        match self {
            CellTree::Ccu2c(t) => t.latency(),
            CellTree::Logic(t) => t.latency(),
        }
    }

    /// Width of the count.
    pub fn out_width(&self) -> usize {
        match self {
            CellTree::Ccu2c(t) => t.out_width(),
            CellTree::Logic(t) => t.out_width(),
        }
    }

    /// Module name.
    pub fn name(&self) -> String {
        match self {
            CellTree::Ccu2c(t) => t.name(),
            CellTree::Logic(t) => t.name(),
        }
    }

    /// The module: inputs `clk`, `x`, `w`, output `sum`.
    pub fn module(&self) -> Module {
        match self {
            CellTree::Ccu2c(t) => t.module(),
            CellTree::Logic(t) => t.module(),
        }
    }
}

/// Shape of an adder tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    /// Number of terms.
    pub terms: usize,
    /// Width of each term.
    pub term_width: usize,
    /// Terms are two's-complement signed.
    pub signed: bool,
    /// Adder levels per register stage.
    pub stride: usize,
    /// Adders or carry cells (binary lanes only).
    pub kind: Popcount,
}

/// Adder levels between pipeline registers in generated trees.
pub const STRIDE: usize = 2;

impl Tree {
    /// Pipeline latency in cycles: one per registered level.
    pub fn latency(&self) -> usize {
        match self.cell_tree() {
            Some(t) => t.latency(),
            None => {
                let adders = (1..=self.levels()).filter(|&l| self.registered(l)).count();
                adders + usize::from(self.registers_terms())
            }
        }
    }

    /// Whether the terms are registered before the first adder: signed pixel terms are a
    /// negation and a multiplexer from the input buffer's block RAM, which with the first adder
    /// became the 8-bit layer's 48 MHz path on the UP5K once its threshold compare was gone
    /// (47.7 MHz, in an experiment since reverted). With the compare in place the gain is within
    /// the seeds' spread (mnist-u8 at `--clock 48`, seeds 1-3: 50.2, 48.7, 48.7 MHz before;
    /// 49.2, 50.1, 48.5 after).
    fn registers_terms(&self) -> bool {
        self.signed && self.levels() > 0
    }

    /// Whether adder level `level` (1-based) ends in registers: the first level (the memory
    /// read, the lanes' XOR and one adder were the UP5K's critical path at 48 MHz), then every
    /// `stride` levels, and the last.
    fn registered(&self, level: usize) -> bool {
        let stride = self.stride.max(1);
        level == 1 || (level - 1) % stride == 0 || level == self.levels()
    }

    /// The cell compressor, when the tree is one.
    pub fn cell_tree(&self) -> Option<CellTree> {
        if !self.uses_cell_tree() {
            return None;
        }
        Some(match self.kind {
            Popcount::LogicCells => CellTree::Logic(LogicTree::new(self.terms, self.stride)),
            _ => CellTree::Ccu2c(CarryTree::new(self.terms, self.stride)),
        })
    }

    /// Cell compressors need two lanes or more; a single lane is its own count.
    fn uses_cell_tree(&self) -> bool {
        self.kind != Popcount::Adders && self.terms >= 2
    }

    /// True when the module takes the lanes' two operands (`x`, `w`) rather than XOR terms.
    pub fn takes_operands(&self) -> bool {
        self.uses_cell_tree()
    }

    /// Adder levels.
    pub fn levels(&self) -> usize {
        let mut n = self.terms;
        let mut l = 0;
        while n > 1 {
            n = n.div_ceil(2);
            l += 1;
        }
        l
    }

    /// Width of the sum.
    pub fn out_width(&self) -> usize {
        if self.uses_cell_tree() {
            bits_for(self.terms)
        } else {
            self.term_width + self.levels()
        }
    }

    /// Module name, e.g. `popcount_64` or `adder_tree_16x9s`.
    pub fn name(&self) -> String {
        if let Some(t) = self.cell_tree() {
            t.name()
        } else if self.term_width == 1 && !self.signed {
            format!("popcount_{}", self.terms)
        } else {
            format!(
                "adder_tree_{}x{}{}",
                self.terms,
                self.term_width,
                if self.signed { "s" } else { "u" }
            )
        }
    }

    /// Builds the module: input `terms` (flat, term `i` at bits `[i*w +: w]`), output `sum`.
    pub fn module(&self) -> Module {
        if let Some(t) = self.cell_tree() {
            return t.module();
        }
        let mut m = Module::new(self.name());
        m.doc.push(format!(
            "{}: sum of {} {}-bit {} terms, {} pipeline stage(s).",
            self.name(),
            self.terms,
            self.term_width,
            if self.signed { "signed" } else { "unsigned" },
            self.latency()
        ));
        let w0 = self.term_width;
        m.input("clk", 1);
        m.input("terms", self.terms * w0);
        m.output("sum", self.out_width());
        // Level 0: the terms themselves, as named wires (or registers, `registers_terms`).
        let mut cur: Vec<(String, usize)> = Vec::new();
        let mut body = Vec::new();
        for i in 0..self.terms {
            let n = format!("l0_{i}");
            let term = Expr::Slice("terms".into(), i * w0 + w0 - 1, i * w0);
            if self.registers_terms() {
                m.reg(&n, w0);
                body.push(Stmt::Assign(e::r(&n), term));
            } else {
                m.wire(&n, w0, term);
            }
            cur.push((n, w0));
        }
        for level in 1..=self.levels() {
            let mut next = Vec::new();
            for (j, pair) in cur.chunks(2).enumerate() {
                let w = pair[0].1 + 1;
                let n = format!("l{level}_{j}");
                let registered = self.registered(level);
                let ext = |name: &str, from: usize| {
                    if self.signed {
                        e::sext(name, from, w)
                    } else {
                        e::zext(e::r(name), from, w)
                    }
                };
                let value = match pair {
                    [a, b] => e::add(ext(&a.0, a.1), ext(&b.0, b.1)),
                    [a] => ext(&a.0, a.1),
                    _ => unreachable!("chunks of two"),
                };
                if registered {
                    m.reg(&n, w);
                    body.push(Stmt::Assign(e::r(&n), value));
                } else {
                    m.wire(&n, w, value);
                }
                next.push((n, w));
            }
            cur = next;
        }
        if !body.is_empty() {
            m.push(Item::Always("clk".into(), body));
        }
        m.push(Item::Assign(e::r("sum"), e::r(&cur[0].0)));
        if self.levels() == 0 {
            // A single term needs no adder; keep the clock port for a uniform interface.
            m.push(Item::Comment(
                "single term: no adders, the clock is unused".into(),
            ));
            m.push(Item::Wire("unused_clk".into(), 1));
            m.push(Item::Assign(e::r("unused_clk"), e::r("clk")));
        }
        m
    }
}
