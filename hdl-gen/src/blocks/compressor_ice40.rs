//! XNOR-popcount compressors built from iCE40 logic cells (SB_LUT4 with its SB_CARRY).
//!
//! An iCE40 logic cell is a LUT4 whose carry logic computes `MAJ(I1, I2, CI)` from the LUT's own
//! inputs `I1`, `I2`, so a lane's XOR cannot ride in the carry (as it does in an ECP5 CCU2C): it
//! needs a LUT before the chain. The parts of a tree, counted in logic cells:
//! - a *lane*: its XOR in one LUT, a 1-bit count;
//! - a *pair*: two lanes into two LUTs of four inputs each, their sum and their carry (a 2-bit
//!   count of two lanes for one cell per lane);
//! - an *adder* of two counts: a ripple chain of one cell per bit of the wider operand (the LUT
//!   makes the sum bit from `I1, I2, I3 = CI`, the SB_CARRY the next carry), and one more cell
//!   whose LUT passes the last carry to the fabric when the sum is a bit wider;
//! - optionally a third lane as the adder's carry in: its XOR LUT and a *feed-in* cell whose
//!   carry logic, `MAJ(l, l, 0) = l`, starts the chain with it. A chain's first carry input is a
//!   constant or a carry out, so a fabric signal costs that cell either way (nextpnr-ice40 adds
//!   it itself, "LCs used to legalise carry chains"); instantiated, it is counted.
//!
//! A feed-in cell's LUT is free (its carry reads `I1 = I2 = l`), so it computes the XOR of a
//! lane that is registered before it is used (`I0 ^ I3`): such a lane then costs no LUT of its
//! own. The table ignores `l`, but a timing analysis does not, so only lanes with a register
//! right after their XOR are placed there.
//!
//! The tree is chosen by a search over the lane count (each node: an optional carry-in lane
//! and a split in two), fewest cells first, then least depth, within one level of a balanced
//! tree; registers follow the first level, every `stride` levels after it, and the root. Costs:
//! docs/hardware.md "Popcount compressors (iCE40 logic cells)"; `scripts/ice40-tree-cost.py` is
//! the search's cost model, before the hosted XORs.
//!
//! Simulation runs each cell's behavioural model (`ifdef SYNTHESIS` picks the primitive for
//! yosys); a test runs yosys's models of SB_LUT4 and SB_CARRY against it.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::blocks::compressor::{lut, table};
use crate::blocks::tree_search::{cheapest_tree, interface, Costs, Memo, Shape};
use crate::ir::{bits_for, e, Expr, Item, Module, Sig, Stmt};

/// Cells of an adder node over an `l`-lane and an `r`-lane count, with a carry-in lane or not:
/// one per bit of the wider count, one for a carry out, and the carry-in lane's XOR and feed-in.
fn adder_cells(l: usize, r: usize, carry_in: bool) -> usize {
    let wider = bits_for(l).max(bits_for(r));
    let out = bits_for(l + r + usize::from(carry_in));
    wider + usize::from(out > wider) + 2 * usize::from(carry_in)
}

thread_local! {
    /// The search's memo ([`cheapest_tree`]).
    static SHAPES: RefCell<Memo> = RefCell::new(HashMap::new());
}

/// The iCE40's costs in logic cells: a lane's XOR LUT, a pair's two LUTs, [`adder_cells`].
const COSTS: Costs = Costs {
    lane: 1,
    pair: Some(2),
    node: adder_cells,
    splits: split_sizes,
};

/// Sizes of the larger part when `rest` lanes split in two: balanced, near powers of two, and
/// near 3 and 5 times them. On every count up to 1,100 this set finds trees as cheap as trying
/// every split (checked with the cost model of `scripts/ice40-tree-cost.py`), at a fraction of
/// the planner's time.
fn split_sizes(rest: usize) -> Vec<usize> {
    let mut sizes = vec![rest.div_ceil(2)];
    let mut add = |l: usize| {
        if l < rest && 2 * l >= rest && !sizes.contains(&l) {
            sizes.push(l);
        }
    };
    let mut p = 1;
    while p < rest {
        for l in [2 * p - 2, 2 * p - 1, 2 * p, 2 * p + 1] {
            add(l);
        }
        for m in [
            3 * p - 1,
            3 * p,
            3 * p + 1,
            3 * p + 2,
            5 * p - 1,
            5 * p,
            5 * p + 1,
            5 * p + 2,
        ] {
            add(m);
            add(rest.saturating_sub(m));
        }
        p *= 2;
    }
    sizes
}

/// A popcount of `lanes` XNOR lanes in iCE40 logic cells.
#[derive(Debug, Clone)]
pub struct LogicTree {
    lanes: usize,
    stride: usize,
    shape: Shape,
    cells: usize,
}

impl LogicTree {
    /// The cheapest tree for `lanes` (>= 2), registered every `stride` levels.
    pub fn new(lanes: usize, stride: usize) -> LogicTree {
        let (cells, shape) = cheapest_tree(lanes, &COSTS, &SHAPES);
        let mut tree = LogicTree {
            lanes,
            stride: stride.max(1),
            shape,
            cells,
        };
        let (mut hosts, mut guests) = (0, 0);
        tree.walk(&tree.shape, true, &mut |stage, lanes, carry_in| {
            hosts += usize::from(carry_in);
            if stage > 0 {
                guests += lanes + usize::from(carry_in);
            }
        });
        tree.cells -= hosts.min(guests);
        tree
    }

    /// Visits every adder node with (its register stage, its lane children, whether it has a
    /// carry-in lane); returns the node's (depth, stage at its output), as the builder sees them.
    fn walk(
        &self,
        shape: &Shape,
        root: bool,
        visit: &mut impl FnMut(usize, usize, bool),
    ) -> (usize, usize) {
        match shape {
            Shape::Lane => (0, 0),
            Shape::Pair => (1, usize::from(self.registered(1, root))),
            Shape::Add {
                left,
                right,
                carry_in,
                ..
            } => {
                let (ld, ls) = self.walk(left, false, visit);
                let (rd, rs) = self.walk(right, false, visit);
                let lane_children = [left, right]
                    .iter()
                    .filter(|c| matches!(c.as_ref(), Shape::Lane))
                    .count();
                let stage = ls.max(rs);
                visit(stage, lane_children, *carry_in);
                let depth = 1 + ld.max(rd);
                (depth, stage + usize::from(self.registered(depth, root)))
            }
        }
    }

    /// Logic cells (each a LUT4 with its carry logic).
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Module name.
    pub fn name(&self) -> String {
        format!("popcount_lc_{}", self.lanes)
    }

    /// Width of the count.
    pub fn out_width(&self) -> usize {
        bits_for(self.lanes)
    }

    /// Pipeline registers on the way from the lanes to the count.
    pub fn latency(&self) -> usize {
        self.walk(&self.shape, true, &mut |_, _, _| {}).1
    }

    /// Registers follow the first level (the pairs: the weight memory's word multiplexer, a
    /// lane's XOR, a feed-in and an adder chain in one cycle were the UP5K's critical path at 48
    /// MHz), every `stride` levels after it, and the root. The first level's flip-flops pack
    /// with the pair LUTs that drive them.
    fn registered(&self, depth: usize, root: bool) -> bool {
        root || depth == 1 || (depth - 1) % self.stride == 0
    }

    /// Builds the module: inputs `x`, `w` (lanes), output `sum` = popcount(`x ^ w`).
    pub fn module(&self) -> Module {
        let cells = format!("{} iCE40 logic cells", self.cells);
        let (m, x, w, sum) = interface(self.name(), self.lanes, &cells, self.latency());
        let mut b = Builder {
            m,
            x,
            w,
            regs: Vec::new(),
            cells: 0,
            guests: Vec::new(),
            hosts: Vec::new(),
        };
        let root = b.node(self, &self.shape, 0, true);
        b.place_guests();
        b.m.push(Item::Assign(sum.e(), root.sig.e()));
        let regs = std::mem::take(&mut b.regs);
        b.m.push(Item::Always("clk".into(), regs));
        b.m
    }
}

/// A built node: its count in a signal, its depth and register stages.
struct Built {
    sig: Sig,
    depth: usize,
    stage: usize,
}

/// The 16-entry table of `f(I0, I1, I2, I3)`.
fn init(f: impl Fn([bool; 4]) -> bool) -> u16 {
    (0..16u16)
        .filter(|i| f([0, 1, 2, 3].map(|k| (i >> k) & 1 == 1)))
        .fold(0, |t, i| t | 1 << i)
}

struct Builder {
    m: Module,
    x: Sig,
    w: Sig,
    regs: Vec<Stmt>,
    /// Cells made so far (each adder is named by the count at its start).
    cells: usize,
    /// Delayed lanes whose XOR LUT is still to be placed: (lane, its net).
    guests: Vec<(usize, Sig)>,
    /// Feed-in cells with a free LUT: (cell name, the lane its carry reads).
    hosts: Vec<(String, Expr)>,
}

impl Builder {
    fn node(&mut self, tree: &LogicTree, shape: &Shape, first: usize, root: bool) -> Built {
        match shape {
            Shape::Lane => Built {
                sig: self.lane_at(first, 0),
                depth: 0,
                stage: 0,
            },
            Shape::Pair => {
                let sig = self.pair(first);
                self.finish(tree, sig, 1, 0, root)
            }
            Shape::Add {
                left,
                right,
                carry_in,
                lanes,
            } => {
                // A lane child is built where its consumer's stage is known (`lane_at`).
                let split = first + left.lanes();
                let l = self.child(tree, left, first);
                let r = self.child(tree, right, split);
                let depth = 1 + [&l, &r]
                    .map(|c| c.as_ref().map_or(0, |c| c.depth))
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                let stage = [&l, &r]
                    .map(|c| c.as_ref().map_or(0, |c| c.stage))
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                let carry = carry_in.then(|| self.lane_at(split + right.lanes(), stage));
                let a = self.operand(l, first, stage);
                let b = self.operand(r, split, stage);
                let sum = self.adder(&a, &b, carry, bits_for(*lanes));
                self.finish(tree, sum, depth, stage, root)
            }
        }
    }

    /// A child node, or `None` for a lane (built by its consumer, [`Builder::operand`]).
    fn child(&mut self, tree: &LogicTree, shape: &Shape, first: usize) -> Option<Built> {
        match shape {
            Shape::Lane => None,
            _ => Some(self.node(tree, shape, first, false)),
        }
    }

    /// A child's count at register stage `stage` (a lane: lane `first`).
    fn operand(&mut self, child: Option<Built>, first: usize, stage: usize) -> Sig {
        match child {
            Some(c) => self.delayed(c.sig, c.stage, stage),
            None => self.lane_at(first, stage),
        }
    }

    /// Registers a node's count when its depth asks for it.
    fn finish(
        &mut self,
        tree: &LogicTree,
        sig: Sig,
        depth: usize,
        stage: usize,
        root: bool,
    ) -> Built {
        if !tree.registered(depth, root) {
            return Built { sig, depth, stage };
        }
        let q = self.m.reg(&format!("{}_q", sig.name()), sig.width());
        self.regs.push(q.set(sig.e()));
        Built {
            sig: q,
            depth,
            stage: stage + 1,
        }
    }

    /// `sig` (ready after `from` register stages) delayed to stage `to`.
    fn delayed(&mut self, mut sig: Sig, from: usize, to: usize) -> Sig {
        for t in from..to {
            let d = self
                .m
                .reg(&format!("{}_d{}", sig.name(), t + 1), sig.width());
            self.regs.push(d.set(sig.e()));
            sig = d;
        }
        sig
    }

    /// Lane `i`'s XOR, at register stage `stage`. At stage 0 in a LUT of its own; later, the
    /// XOR is registered on the way, and its LUT waits for a feed-in cell to host it
    /// ([`Builder::place_guests`]).
    fn lane_at(&mut self, i: usize, stage: usize) -> Sig {
        let o = self.m.net(&format!("lane{i}"), 1);
        if stage == 0 {
            let ins = [self.x.bit(i), self.w.bit(i), e::k(1, 0), e::k(1, 0)];
            self.lut4(&format!("lane{i}_lut"), init(|v| v[0] ^ v[1]), ins, o.e());
            return o;
        }
        self.guests.push((i, o.clone()));
        self.delayed(o, 0, stage)
    }

    /// The delayed lanes' XORs: each in the LUT of a feed-in cell while there are some (its
    /// carry logic reads `I1 = I2 = l` and the table `I0 ^ I3` ignores them), else in a LUT of
    /// its own. The table ignores the feed-in's lane, but a timing analysis follows it: the
    /// guest's register ends that path, so only delayed lanes are hosted.
    fn place_guests(&mut self) {
        let guests = std::mem::take(&mut self.guests);
        let mut hosts = std::mem::take(&mut self.hosts).into_iter();
        for (i, o) in guests {
            let (x, w) = (self.x.bit(i), self.w.bit(i));
            match hosts.next() {
                Some((name, l)) => {
                    let ins = [x, l.clone(), l, w];
                    self.lut4_in(&name, init(|v| v[0] ^ v[3]), ins, o.e());
                }
                None => {
                    let ins = [x, w, e::k(1, 0), e::k(1, 0)];
                    self.lut4(&format!("lane{i}_lut"), init(|v| v[0] ^ v[1]), ins, o.e());
                }
            }
        }
    }

    /// Lanes `i` and `i + 1` counted in two LUTs: `{carry, sum}`.
    fn pair(&mut self, i: usize) -> Sig {
        let o = self.m.net(&format!("pair{i}"), 2);
        let ins = [
            self.x.bit(i),
            self.w.bit(i),
            self.x.bit(i + 1),
            self.w.bit(i + 1),
        ];
        let sum = init(|v| v[0] ^ v[1] ^ v[2] ^ v[3]);
        let carry = init(|v| (v[0] ^ v[1]) && (v[2] ^ v[3]));
        self.lut4(&format!("pair{i}_sum"), sum, ins.clone(), o.bit(0));
        self.lut4(&format!("pair{i}_carry"), carry, ins, o.bit(1));
        o
    }

    /// `a + b (+ carry-in lane)` as a ripple chain, `width` bits.
    fn adder(&mut self, a: &Sig, b: &Sig, carry_in: Option<Sig>, width: usize) -> Sig {
        let name = format!("add{}", self.cells);
        let s = self.m.net(&format!("{name}_s"), width);
        let wider = a.width().max(b.width());
        let bit = |x: &Sig, j: usize| if j < x.width() { x.bit(j) } else { e::k(1, 0) };
        let mut carry = e::k(1, 0);
        if let Some(lane) = carry_in {
            // The feed-in cell: MAJ(l, l, 0) = l starts the chain.
            let co = self.m.net(&format!("{name}_c0"), 1);
            self.carry(&format!("{name}_feed"), [lane.e(), lane.e(), carry], co.e());
            self.cells += 1;
            self.hosts.push((format!("{name}_feed"), lane.e()));
            carry = co.e();
        }
        let sum_bit = init(|v| v[1] ^ v[2] ^ v[3]);
        for j in 0..wider {
            let (aj, bj) = (bit(a, j), bit(b, j));
            let ins = [e::k(1, 0), aj.clone(), bj.clone(), carry.clone()];
            self.lut4(&format!("{name}_b{j}"), sum_bit, ins, s.bit(j));
            if j + 1 < width {
                // In the logic cell of bit j's LUT, which shares its inputs.
                let co = self.m.net(&format!("{name}_c{}", j + 1), 1);
                self.carry(&format!("{name}_b{j}"), [aj, bj, carry], co.e());
                carry = co.e();
            }
        }
        if width > wider {
            let ins = [e::k(1, 0), e::k(1, 0), e::k(1, 0), carry];
            self.lut4(&format!("{name}_out"), init(|v| v[3]), ins, s.bit(wider));
        }
        s
    }

    /// One SB_LUT4 in a logic cell of its own.
    fn lut4(&mut self, name: &str, table16: u16, ins: [Expr; 4], o: Expr) {
        self.cells += 1;
        self.lut4_in(name, table16, ins, o);
    }

    /// One SB_LUT4 (in a cell already counted): the primitive for synthesis, its model for
    /// simulation.
    fn lut4_in(&mut self, name: &str, table16: u16, ins: [Expr; 4], o: Expr) {
        let model = vec![(o.clone(), lut(&table(table16, 16), &ins))];
        let inputs = ["I0", "I1", "I2", "I3"]
            .iter()
            .zip(ins)
            .map(|(p, x)| (p.to_string(), x))
            .collect();
        let primitive = Item::Primitive {
            module: "SB_LUT4".into(),
            name: name.into(),
            params: vec![("LUT_INIT".into(), format!("16'h{table16:04x}"))],
            inputs,
            outputs: vec![("O".into(), o)],
        };
        self.m.cell(primitive, model);
    }

    /// One SB_CARRY, `CO = MAJ(I0, I1, CI)`.
    fn carry(&mut self, name: &str, ins: [Expr; 3], co: Expr) {
        let [i0, i1, ci] = ins;
        let maj = e::or(
            e::and(i0.clone(), i1.clone()),
            e::and(e::or(i0.clone(), i1.clone()), ci.clone()),
        );
        let inputs = vec![("I0".into(), i0), ("I1".into(), i1), ("CI".into(), ci)];
        let model = vec![(co.clone(), maj)];
        let primitive = Item::Primitive {
            module: "SB_CARRY".into(),
            name: format!("{name}_carry"),
            params: Vec::new(),
            inputs,
            outputs: vec![("CO".into(), co)],
        };
        self.m.cell(primitive, model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_the_pin_order() {
        assert_eq!(init(|v| v[0] ^ v[1]), 0x6666);
        assert_eq!(init(|v| v[3]), 0xff00);
        assert_eq!(init(|v| v[1] ^ v[2] ^ v[3]), 0xc33c);
    }

    #[test]
    fn trees_cost_what_the_model_says() {
        // scripts/ice40-tree-cost.py (carry-in lanes at one feed-in cell): 17 cells for 8
        // lanes, 38 for 16, 80 for 32, 164 for 64; less the delayed lanes' XORs that feed-in
        // cells host.
        for (n, model) in [(8, 17), (16, 38), (32, 80), (64, 164), (100, 0), (257, 0)] {
            let t = LogicTree::new(n, 2);
            eprintln!("{n} lanes: {} cells (model {model})", t.cells());
            // A cell per LUT of its own, and one per feed-in (the others share their LUT's).
            let held = t
                .module()
                .items
                .iter()
                .filter(|i| match i {
                    Item::Cell { primitive, .. } => matches!(
                        primitive.as_ref(),
                        Item::Primitive { module, name, .. }
                            if (module == "SB_LUT4" && !name.ends_with("_feed"))
                                || name.ends_with("_feed_carry")
                    ),
                    _ => false,
                })
                .count();
            assert_eq!(held, t.cells(), "{n} lanes: cells in the module");
            if model > 0 {
                assert!(t.cells() <= model, "{n} lanes");
            }
            assert!(t.latency() >= 1);
        }
        assert_eq!(LogicTree::new(2, 2).cells(), 2);
        assert_eq!(LogicTree::new(3, 2).cells(), 5);
    }
}
