//! XNOR-popcount compressors built from ECP5 carry cells (CCU2C), the lanes inside the adders.
//!
//! A CCU2C half is one adder bit whose propagate term is a free 4-input function `P(A, B, C, D)`
//! and whose generate term is the same table's 2-input corner `G(A, B) = P(A, B, 0, 0)`:
//! `S = P ^ CIN`, `COUT = P ? CIN : G`. Adding operand bits `a = f(A, B)` and `b = g(C, D)` with
//! `g(0, 0) = 0` takes `P = f ^ g` (then `G = f`, which equals `a & b` whenever `P = 0`). So a
//! lane, `x ^ w`, fits into an operand as `f = A ^ B` with no LUT of its own: the bit-0 halves of
//! the lowest adders take two lanes each.
//!
//! Every node's chain begins with a half whose `P` is 0, so that its carry-out is `G` whatever
//! comes in: an *inject* half (`C` tied high, `G = A ^ B`) that brings one more lane, or a zero
//! half when the node has none. Nothing then reads a chain's carry-in, and the toolchain leaves
//! it unconnected (`bql_toolchain::netlist`): nextpnr-ecp5 feeds a connected carry-in from the
//! fabric through a CCU2C of its own, two TRELLIS_COMB per chain (docs/hardware.md).
//!
//! The tree is chosen by a small search over the lane count (each node: an optional carry-in
//! lane and two balanced children), minimizing halves, then depth; registers follow every
//! `stride` levels of adders and the root, and operands that reach a node from fewer registers
//! are delayed to match. A node continues the carry chain of a child whose sum it takes
//! without a register ([`SHARED_CHAIN_CELLS`]). Costs for 64 lanes: see docs/hardware.md
//! "Popcount compressors".
//!
//! Simulation runs each cell's behavioural model (`ifdef SYNTHESIS` picks the primitive for
//! yosys); a test runs the vendor model of CCU2C against it.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::blocks::tree_search::{cheapest_tree, interface, Costs, Memo, Shape};
use crate::ir::{bits_for, e, Expr, Item, Module, Sig, Stmt};

/// Cells in one carry chain at most, shared by a node and its children. nextpnr-ecp5 starts
/// every chain at the first slice of a tile, so short chains leave the rest of their tile to
/// plain LUTs; a node's chain continues its child's when the node takes the child's sum
/// directly (no register between): the carry follows the data, so it adds no loop and no
/// register stage to a path. The child's carry-out is 0 (its sum fits its width, or the last
/// half adds two zeros), and the node's first half ignores it anyway. The bound keeps the chains
/// placeable and the (false) timing paths through the joined carries short.
const SHARED_CHAIN_CELLS: usize = 16;

/// Registers on the lanes' inputs before the first adder ([`CarryTree::module`]).
const INPUT_REGISTERS: usize = 1;

/// Halves of one adder node of `lanes` lanes: the first half (inject or zero), one per sum bit,
/// rounded up to whole cells.
fn node_halves(lanes: usize) -> usize {
    (1 + bits_for(lanes)).next_multiple_of(2)
}

thread_local! {
    /// The search's memo ([`cheapest_tree`]).
    static SHAPES: RefCell<Memo> = RefCell::new(HashMap::new());
}

/// The ECP5's costs in CCU2C halves: a lane rides in an adder half, no pair leaves. Splits
/// tried: balanced, and a part of `2^k - 1` or `2^k` lanes (their counts fill their widths, so
/// no half carries a zero operand).
const COSTS: Costs = Costs {
    lane: 0,
    pair: None,
    node: |l, r, carry_in| node_halves(l + r + usize::from(carry_in)),
    splits: split_sizes,
};

/// Sizes of the larger part when `rest` lanes split in two.
fn split_sizes(rest: usize) -> Vec<usize> {
    let mut sizes = vec![rest.div_ceil(2)];
    let mut p = 2;
    while p - 1 < rest {
        for l in [p - 1, p] {
            if l < rest && 2 * l >= rest && !sizes.contains(&l) {
                sizes.push(l);
            }
        }
        p *= 2;
    }
    sizes
}

/// A popcount of `lanes` XNOR lanes in CCU2C cells.
#[derive(Debug, Clone)]
pub struct CarryTree {
    lanes: usize,
    stride: usize,
    shape: Shape,
    halves: usize,
}

impl CarryTree {
    /// The cheapest tree for `lanes` (>= 2), registered every `stride` adder levels.
    pub fn new(lanes: usize, stride: usize) -> CarryTree {
        let (halves, shape) = cheapest_tree(lanes, &COSTS, &SHAPES);
        CarryTree {
            lanes,
            stride: stride.max(1),
            shape,
            halves,
        }
    }

    /// CCU2C halves (each a LUT4's worth of a slice: TRELLIS_COMB cells after packing).
    pub fn halves(&self) -> usize {
        self.halves
    }

    /// Module name.
    pub fn name(&self) -> String {
        format!("popcount_ccu2c_{}", self.lanes)
    }

    /// Width of the count.
    pub fn out_width(&self) -> usize {
        bits_for(self.lanes)
    }

    /// Pipeline registers on the way from the lanes to the count: the lanes' own, then the
    /// adders'.
    pub fn latency(&self) -> usize {
        INPUT_REGISTERS + self.stages(&self.shape, true).1
    }

    /// (depth, register stages at the output) of a node.
    fn stages(&self, shape: &Shape, root: bool) -> (usize, usize) {
        match shape {
            Shape::Lane => (0, 0),
            Shape::Pair => unreachable!("the ECP5's costs have no pair leaves"),
            Shape::Add { left, right, .. } => {
                let (ld, ls) = self.stages(left, false);
                let (rd, rs) = self.stages(right, false);
                let depth = 1 + ld.max(rd);
                (
                    depth,
                    ls.max(rs) + usize::from(self.registered(depth, root)),
                )
            }
        }
    }

    fn registered(&self, depth: usize, root: bool) -> bool {
        root || depth % self.stride == 0
    }

    /// Builds the module: inputs `x`, `w` (lanes), output `sum` = popcount(`x ^ w`).
    pub fn module(&self) -> Module {
        let cells = format!("{} CCU2C halves", self.halves);
        let (mut m, x, w, sum) = interface(self.name(), self.lanes, &cells, self.latency());
        // The lanes' inputs are registered first, each tree its own copy (kept apart: yosys
        // would merge the PEs' copies of the input bits): the weights come from a block RAM's
        // output register across the die, the input bits from one register that every PE reads.
        let (xq, wq) = (m.reg("x_q", self.lanes), m.reg("w_q", self.lanes));
        m.push(Item::KeptAlways(
            "clk".into(),
            vec![xq.set(x.e()), wq.set(w.e())],
        ));
        let mut b = Builder {
            m,
            x: xq,
            w: wq,
            regs: Vec::new(),
            lane_delays: HashMap::new(),
            nodes: 0,
            unused: Vec::new(),
            last_chain: None,
        };
        let root = b.node(self, &self.shape, 0, true);
        let Value::Number { sig, .. } = root.value else {
            unreachable!("the root of a tree of two or more lanes is an adder")
        };
        b.m.push(Item::Assign(sum.e(), sig.e()));
        b.unused.extend(b.last_chain.take().map(|end| end.carry));
        let width = b.unused.len();
        let unused = Expr::Concat(std::mem::take(&mut b.unused));
        b.m.wire("unused_chain_bits", width, unused);
        let regs = std::mem::take(&mut b.regs);
        b.m.push(Item::Always("clk".into(), regs));
        b.m
    }
}

/// A node's output: a lane (its index), or a number held in a signal.
enum Value {
    Lane(usize),
    Number { sig: Sig },
}

/// A built node: its value, depth and register stages, and the chain its sum ends (none for a
/// lane, and none for a sum that leaves through a register).
struct Built {
    value: Value,
    depth: usize,
    stage: usize,
    chain_end: Option<usize>,
}

/// The end of the last chain built: its carry-out (always 0), its cells, and its node.
struct ChainEnd {
    carry: Expr,
    cells: usize,
    node: usize,
}

/// One operand of an adder half.
#[derive(Clone)]
enum Operand {
    Zero,
    Bit(Expr),
    Lane(Expr, Expr),
}

impl Operand {
    /// The operand's function of its two inputs (`A, B` or `C, D`).
    fn value(&self, a: bool, b: bool) -> bool {
        match self {
            Operand::Zero => false,
            Operand::Bit(_) => a,
            Operand::Lane(..) => a ^ b,
        }
    }

    /// The two inputs it drives.
    fn inputs(&self) -> [Expr; 2] {
        match self {
            Operand::Zero => [e::k(1, 0), e::k(1, 0)],
            Operand::Bit(b) => [b.clone(), e::k(1, 0)],
            Operand::Lane(x, w) => [x.clone(), w.clone()],
        }
    }
}

/// One half of a CCU2C: an adder bit of two operands, or a lane injected as the carry.
#[derive(Clone)]
enum Half {
    Add(Operand, Operand),
    Inject(Expr, Expr),
}

impl Half {
    /// The 16-entry table, index `D C B A`.
    fn init(&self) -> u16 {
        (0..16u16)
            .filter(|i| {
                let bit = |k: u16| (i >> k) & 1 == 1;
                match self {
                    Half::Add(a, b) => a.value(bit(0), bit(1)) ^ b.value(bit(2), bit(3)),
                    Half::Inject(..) => !bit(2) && !bit(3) && bit(0) ^ bit(1),
                }
            })
            .fold(0, |t, i| t | 1 << i)
    }

    /// Inputs A, B, C, D.
    fn inputs(&self) -> [Expr; 4] {
        match self {
            Half::Add(a, b) => {
                let ([a0, a1], [b0, b1]) = (a.inputs(), b.inputs());
                [a0, a1, b0, b1]
            }
            Half::Inject(x, w) => [x.clone(), w.clone(), e::k(1, 1), e::k(1, 0)],
        }
    }
}

/// `table[inputs]` as logic (the cell model's LUT), `inputs[0]` the least significant index bit.
pub(crate) fn lut(table: &[bool], inputs: &[Expr]) -> Expr {
    let Some((top, rest)) = inputs.split_last() else {
        return e::k(1, u64::from(table[0]));
    };
    let (lo, hi) = table.split_at(table.len() / 2);
    if let Expr::Const { value, .. } = top {
        return lut(if *value == 1 { hi } else { lo }, rest);
    }
    let complement: Vec<bool> = lo.iter().map(|b| !b).collect();
    if lo == hi {
        lut(lo, rest)
    } else if hi == complement.as_slice() {
        match lut(lo, rest) {
            Expr::Const { value: 0, .. } => top.clone(),
            Expr::Const { .. } => e::not(top.clone()),
            low => e::bin(crate::ir::BinOp::Xor, top.clone(), low),
        }
    } else {
        e::mux(top.clone(), lut(hi, rest), lut(lo, rest))
    }
}

/// The first `entries` bits of `init`, least significant first.
pub(crate) fn table(init: u16, entries: usize) -> Vec<bool> {
    (0..entries).map(|i| init >> i & 1 == 1).collect()
}

struct Builder {
    m: Module,
    x: Sig,
    w: Sig,
    regs: Vec<Stmt>,
    lane_delays: HashMap<(usize, usize), (Expr, Expr)>,
    nodes: usize,
    unused: Vec<Expr>,
    /// The end of the last chain built.
    last_chain: Option<ChainEnd>,
}

impl Builder {
    fn node(&mut self, tree: &CarryTree, shape: &Shape, first: usize, root: bool) -> Built {
        let Shape::Add {
            left,
            right,
            carry_in,
            lanes,
        } = shape
        else {
            debug_assert!(matches!(shape, Shape::Lane), "no pair leaves on the ECP5");
            return Built {
                value: Value::Lane(first),
                depth: 0,
                stage: 0,
                chain_end: None,
            };
        };
        let l = self.node(tree, left, first, false);
        let r = self.node(tree, right, first + left.lanes(), false);
        let depth = 1 + l.depth.max(r.depth);
        let stage = l.stage.max(r.stage);
        let k = self.nodes;
        self.nodes += 1;
        let mut halves = vec![if *carry_in {
            let (x, w) = self.lane(first + left.lanes() + right.lanes(), stage);
            Half::Inject(x, w)
        } else {
            Half::Add(Operand::Zero, Operand::Zero)
        }];
        let width = bits_for(*lanes);
        let (a, b) = (self.operands(&l, stage), self.operands(&r, stage));
        for j in 0..width {
            let pick = |ops: &[Operand]| ops.get(j).cloned().unwrap_or(Operand::Zero);
            halves.push(Half::Add(pick(&a), pick(&b)));
        }
        if halves.len() % 2 == 1 {
            halves.push(Half::Add(Operand::Zero, Operand::Zero));
        }
        // A child's chain continues into this node's if the child's sum comes in directly (not
        // through a register or a delay), so that the joined carry adds no register stage's
        // logic to a path (joined across a register, the 262-lane tree closed 54 MHz, not 203).
        let direct = [&l, &r]
            .into_iter()
            .filter(|c| c.stage == stage)
            .filter_map(|c| c.chain_end)
            .collect::<Vec<usize>>();
        let s = self.chain(k, &halves, &direct);
        let sum_bits: Vec<Expr> = (0..width).rev().map(|j| s.bit(j + 1)).collect();
        self.unused.push(s.bit(0));
        if halves.len() > width + 1 {
            self.unused.push(s.bit(halves.len() - 1));
        }
        let sum = self
            .m
            .wire(&format!("n{k}_sum"), width, Expr::Concat(sum_bits));
        let registered = tree.registered(depth, root);
        let value = if registered {
            let q = self.m.reg(&format!("n{k}_q"), width);
            self.regs.push(q.set(sum.e()));
            Value::Number { sig: q }
        } else {
            Value::Number { sig: sum }
        };
        Built {
            value,
            depth,
            stage: stage + usize::from(registered),
            chain_end: (!registered).then_some(k),
        }
    }

    /// Lane `i`'s inputs delayed by `stage` registers.
    fn lane(&mut self, i: usize, stage: usize) -> (Expr, Expr) {
        if stage == 0 {
            return (self.x.bit(i), self.w.bit(i));
        }
        if let Some(d) = self.lane_delays.get(&(i, stage)) {
            return d.clone();
        }
        let (px, pw) = self.lane(i, stage - 1);
        let x = self.m.reg(&format!("x{i}_d{stage}"), 1);
        let w = self.m.reg(&format!("w{i}_d{stage}"), 1);
        self.regs.push(x.set(px));
        self.regs.push(w.set(pw));
        let d = (x.e(), w.e());
        self.lane_delays.insert((i, stage), d.clone());
        d
    }

    /// A child's value as operand bits at register stage `stage`.
    fn operands(&mut self, child: &Built, stage: usize) -> Vec<Operand> {
        match &child.value {
            Value::Lane(i) => {
                let (x, w) = self.lane(*i, stage);
                vec![Operand::Lane(x, w)]
            }
            Value::Number { sig } => {
                let mut sig = sig.clone();
                for t in child.stage..stage {
                    let d = self
                        .m
                        .reg(&format!("{}_d{}", sig.name(), t + 1), sig.width());
                    self.regs.push(d.set(sig.e()));
                    sig = d;
                }
                (0..sig.width()).map(|j| Operand::Bit(sig.bit(j))).collect()
            }
        }
    }

    /// The CCU2C cells of node `k`'s chain; returns the wire of every half's sum output. The
    /// chain continues the last one built if that one ends at a node in `joinable` (a child
    /// whose sum this node takes directly) and stays within [`SHARED_CHAIN_CELLS`].
    fn chain(&mut self, k: usize, halves: &[Half], joinable: &[usize]) -> Sig {
        let tables: Vec<(u16, [Expr; 4])> = halves.iter().map(|h| (h.init(), h.inputs())).collect();
        let cells = tables.len() / 2;
        let (carry_in, shared) = match self.last_chain.take() {
            Some(end)
                if joinable.contains(&end.node) && end.cells + cells <= SHARED_CHAIN_CELLS =>
            {
                (end.carry, end.cells)
            }
            Some(end) => {
                self.unused.push(end.carry);
                (e::k(1, 0), 0)
            }
            None => (e::k(1, 0), 0),
        };
        let (s, co) = ccu2c_chain(&mut self.m, &format!("n{k}"), &tables, carry_in);
        self.last_chain = Some(ChainEnd {
            carry: co.bit(co.width() - 1),
            cells: shared + cells,
            node: k,
        });
        s
    }
}

/// A carry chain of CCU2C cells named `name_cell0..`, one half per `(table, [A, B, C, D])` (an
/// even number), from `carry_in` (0, or the carry-out of a chain that is always 0); returns its
/// nets `name_s` (every half's sum) and `name_co` (every cell's carry out).
fn ccu2c_chain(
    m: &mut Module,
    name: &str,
    halves: &[(u16, [Expr; 4])],
    carry_in: Expr,
) -> (Sig, Sig) {
    let cells = halves.len() / 2;
    let s = m.net(&format!("{name}_s"), halves.len());
    let co = m.net(&format!("{name}_co"), cells);
    for (c, pair) in halves.chunks(2).enumerate() {
        let cin = if c == 0 {
            carry_in.clone()
        } else {
            co.bit(c - 1)
        };
        let pair = [pair[0].clone(), pair[1].clone()];
        let outs = [s.bit(2 * c), s.bit(2 * c + 1), co.bit(c)];
        ccu2c(m, &format!("{name}_cell{c}"), &pair, cin, outs);
    }
    (s, co)
}

/// One CCU2C (two halves: each a table `INIT` over its inputs `[A, B, C, D]`), driving
/// `[S0, S1, COUT]`: the primitive for synthesis, its model for simulation.
fn ccu2c(m: &mut Module, name: &str, halves: &[(u16, [Expr; 4]); 2], cin: Expr, outs: [Expr; 3]) {
    let [(init0, in0), (init1, in1)] = halves;
    let mut inputs = vec![("CIN".to_string(), cin.clone())];
    for (half, ins) in [(0, in0), (1, in1)] {
        for (port, x) in ["A", "B", "C", "D"].iter().zip(ins.iter()) {
            inputs.push((format!("{port}{half}"), x.clone()));
        }
    }
    let [s0, s1, cout] = outs;
    let outputs = vec![
        ("S0".to_string(), s0.clone()),
        ("S1".to_string(), s1.clone()),
        ("COUT".to_string(), cout.clone()),
    ];
    let p = |init: u16, ins: &[Expr; 4]| lut(&table(init, 16), ins);
    let g = |init: u16, ins: &[Expr; 4]| lut(&table(init, 4), &ins[..2]);
    let xor = |a: Expr, b: Expr| e::bin(crate::ir::BinOp::Xor, a, b);
    // The carry between the halves, inside the cell.
    let mid = e::mux(p(*init0, in0), cin.clone(), g(*init0, in0));
    let model = vec![
        (s0, xor(p(*init0, in0), cin)),
        (s1, xor(p(*init1, in1), mid.clone())),
        (cout, e::mux(p(*init1, in1), mid, g(*init1, in1))),
    ];
    let primitive = Item::Primitive {
        module: "CCU2C".into(),
        name: name.into(),
        params: vec![
            ("INIT0".into(), format!("16'h{init0:04x}")),
            ("INIT1".into(), format!("16'h{init1:04x}")),
            ("INJECT1_0".into(), "\"NO\"".into()),
            ("INJECT1_1".into(), "\"NO\"".into()),
        ],
        inputs,
        outputs,
    };
    m.cell(primitive, model);
}

/// The table of an accumulator half, inputs `A` = the count's bit, `B` = first fold, `C` =
/// the start value's bit, `D` = the accumulator's bit: `P = A ^ (B ? C : D)`. Its corner
/// `G(A, B) = P(A, B, 0, 0) = A` is the generate term whenever `P = 0` (both operands equal `A`).
const ACCUMULATE: u16 = {
    let mut t = 0u16;
    let mut i = 0;
    while i < 16 {
        let (a, b, c, d) = (i & 1, i >> 1 & 1, i >> 2 & 1, i >> 3 & 1);
        if a ^ (if b == 1 { c } else { d }) == 1 {
            t |= 1 << i;
        }
        i += 1;
    }
    t
};

/// `(first ? start : acc) + count` (the count zero-extended; `start` is the bits of `word`
/// from `offset`, or zero when absent) as one chain of CCU2C cells, the start-or-accumulator
/// choice inside each half's table: one half per accumulator bit where a LUT multiplexer and an
/// adder half were two. Returns the sum's wire, `name_sum`, as wide as `acc`.
pub(crate) fn accumulate(
    m: &mut Module,
    name: &str,
    count: &Sig,
    first: Expr,
    start: Option<(&Sig, usize)>,
    acc: &Sig,
) -> Sig {
    let width = acc.width();
    let zero = || (0, [e::k(1, 0), e::k(1, 0), e::k(1, 0), e::k(1, 0)]);
    // A zero half first, as in the trees, so that nothing reads the chain's carry-in.
    let bits = (0..width).map(|i| {
        let a = if i < count.width() {
            count.bit(i)
        } else {
            e::k(1, 0)
        };
        let c = start.map_or(e::k(1, 0), |(word, offset)| word.bit(offset + i));
        (ACCUMULATE, [a, first.clone(), c, acc.bit(i)])
    });
    let mut halves: Vec<(u16, [Expr; 4])> = std::iter::once(zero()).chain(bits).collect();
    if halves.len() % 2 == 1 {
        halves.push(zero());
    }
    let (s, co) = ccu2c_chain(m, name, &halves, e::k(1, 0));
    // The first half's sum, the top carry, and the padding half's sum go nowhere.
    let mut unused = vec![s.bit(0), co.bit(co.width() - 1)];
    if halves.len() > width + 1 {
        unused.push(s.bit(width + 1));
    }
    m.wire(
        &format!("{name}_unused"),
        unused.len(),
        Expr::Concat(unused),
    );
    m.wire(&format!("{name}_sum"), width, s.slice(width, 1))
}

/// The accumulator of [`accumulate`] on its own, for tests: `acc` (`width` bits) takes
/// `(first ? start : acc) + count` on every clock edge with `valid` high.
pub fn accumulator_module(width: usize, count_width: usize) -> Module {
    let mut m = Module::new(format!("accumulate_{width}x{count_width}"));
    m.doc.push(format!(
        "A {width}-bit accumulator of {count_width}-bit counts in CCU2C cells, preloaded on the \
         first fold."
    ));
    m.input("clk", 1);
    let count = m.input("count", count_width);
    let first = m.input("first", 1);
    let valid = m.input("valid", 1);
    let start = m.input("start", width);
    let out = m.output("acc", width);
    let acc = m.reg("acc_q", width);
    let sum = accumulate(&mut m, "a", &count, first.e(), Some((&start, 0)), &acc);
    m.push(Item::Always(
        "clk".into(),
        vec![crate::ir::s::when(valid.e(), vec![acc.set(sum.e())])],
    ));
    m.push(Item::Assign(out.e(), acc.e()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_halves_encode_the_xor_of_two_lanes() {
        let h = Half::Add(
            Operand::Lane(e::k(1, 0), e::k(1, 0)),
            Operand::Lane(e::k(1, 0), e::k(1, 0)),
        );
        assert_eq!(h.init(), 0x6996);
        let exit = Half::Add(Operand::Zero, Operand::Zero);
        assert_eq!(exit.init(), 0);
        let inject = Half::Inject(e::k(1, 0), e::k(1, 0));
        assert_eq!(inject.init(), 0x0006);
    }

    #[test]
    fn trees_cost_what_their_modules_hold() {
        for n in [2, 3, 7, 16, 64, 100, 1024] {
            let t = CarryTree::new(n, 3);
            let cells = t
                .module()
                .items
                .iter()
                .filter(|i| matches!(i, Item::Cell { .. }))
                .count();
            assert_eq!(2 * cells, t.halves(), "{n} lanes");
            // Measured shapes: 3 lanes in 2 cells, 64 in 73; under 2.5 halves a lane.
            assert!(
                2 * t.halves() <= 5 * n + 4,
                "{n} lanes: {} halves",
                t.halves()
            );
            assert!(t.latency() >= 1);
        }
        assert_eq!(CarryTree::new(3, 3).halves(), 4);
        assert_eq!(CarryTree::new(64, 3).halves(), 148);
    }
}
