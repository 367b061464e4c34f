//! XNOR-popcount compressors built from ECP5 carry cells (CCU2C), the lanes inside the adders.
//!
//! A CCU2C half is one adder bit whose propagate term is a free 4-input function `P(A, B, C, D)`
//! and whose generate term is the same table's 2-input corner `G(A, B) = P(A, B, 0, 0)`:
//! `S = P ^ CIN`, `COUT = P ? CIN : G`. Adding operand bits `a = f(A, B)` and `b = g(C, D)` with
//! `g(0, 0) = 0` takes `P = f ^ g` (then `G = f`, which equals `a & b` whenever `P = 0`). So a
//! lane, `x ^ w`, fits into an operand as `f = A ^ B` with no LUT of its own: the bit-0 halves of
//! the lowest adders take two lanes each.
//!
//! Every node's halves begin with a *lead* half whose `P` is 0, so that its carry-out is `G`
//! whatever comes in: an *inject* half (`C` tied high, `G = A ^ B`) that brings one more lane,
//! or a zero half when the node has none. Nothing then reads a chain's carry-in, and the
//! toolchain leaves it unconnected (`bql_toolchain::netlist`): nextpnr-ecp5 feeds a connected
//! carry-in from the fabric through a CCU2C of its own, two TRELLIS_COMB per chain
//! (docs/hardware.md).
//!
//! The tree is chosen by a small search over the lane count (each node: an optional carry-in
//! lane and two balanced children), minimizing halves, then depth; registers follow every
//! `stride` levels of adders and the root, and operands that reach a node from fewer registers
//! are delayed to match. Nodes at the same place in the pipeline share carry chains: a node's
//! lead half takes the place of the half that brought the last node's carry out (both have
//! `P = 0`), so a node costs one half per sum bit (64 lanes: 112 halves, 148 with a chain per
//! node). Costs: see docs/hardware.md "Popcount compressors".
//!
//! Simulation runs each cell's behavioural model (`ifdef SYNTHESIS` picks the primitive for
//! yosys); a test runs the vendor model of CCU2C against it.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::blocks::tree_search::{cheapest_tree, interface, Costs, Memo, Shape};
use crate::ir::{bits_for, e, Expr, Item, Module, Sig, Stmt};

/// Cells in one carry chain at most. nextpnr times a path through every carry of a chain,
/// even through a lead half whose carry-out ignores its carry-in: a longer chain adds 0.07 ns a
/// cell to such paths. A 262-lane tree out of context at 125 MHz (`nextpnr-ecp5
/// --out-of-context`, seed 1): 16 cells, 426 TRELLIS_COMB and 152 MHz; 8 cells, 444 and 170 MHz.
const SHARED_CHAIN_CELLS: usize = 8;

/// Registers on the lanes' inputs before the first adder ([`CarryTree::module`]).
const INPUT_REGISTERS: usize = 1;

/// Halves an adder node over an `l`-lane and an `r`-lane part adds to a chain that goes on: one
/// per sum bit, and its lead half (inject or zero) unless the chain's last half only brought a
/// carry out, which the search assumes of every node whose sum is wider than its parts.
fn node_halves(l: usize, r: usize, carry_in: bool) -> usize {
    let width = bits_for(l + r + usize::from(carry_in));
    let carries_out = width > bits_for(l).max(bits_for(r));
    width + usize::from(!carries_out)
}

thread_local! {
    /// The search's memo ([`cheapest_tree`]).
    static SHAPES: RefCell<Memo> = RefCell::new(HashMap::new());
    /// Halves laid out per (lanes, stride) ([`CarryTree::new`]).
    static HALVES: RefCell<HashMap<(usize, usize), usize>> = RefCell::new(HashMap::new());
}

/// The ECP5's costs in CCU2C halves: a lane rides in an adder half, no pair leaves. Splits
/// tried: balanced, and a part of `2^k - 1` or `2^k` lanes (their counts fill their widths, so
/// no half carries a zero operand).
const COSTS: Costs = Costs {
    lane: 0,
    pair: None,
    node: node_halves,
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
        let (_, shape) = cheapest_tree(lanes, &COSTS, &SHAPES);
        let mut tree = CarryTree {
            lanes,
            stride: stride.max(1),
            shape,
            halves: 0,
        };
        // The search's costs assume every chain goes on into the next node; the layout decides.
        tree.halves = HALVES.with(|memo| {
            *memo
                .borrow_mut()
                .entry((lanes, tree.stride))
                .or_insert_with(|| tree.build("").1)
        });
        tree
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
        self.build(&format!("{} CCU2C halves", self.halves)).0
    }

    /// The module, its header saying it holds `cells`, and the halves it holds.
    fn build(&self, cells: &str) -> (Module, usize) {
        let (mut m, x, w, sum) = interface(self.name(), self.lanes, cells, self.latency());
        // The lanes' inputs are registered first, each tree its own copy (kept apart: yosys
        // would merge the PEs' copies of the input bits): the weights come from a block RAM's
        // output register across the die, the input bits from one register that every PE reads.
        let (xq, wq) = (m.reg("x_q", self.lanes), m.reg("w_q", self.lanes));
        m.push(Item::KeptAlways(
            "clk".into(),
            vec![xq.set(x.e()), wq.set(w.e())],
        ));
        let mut b = Builder::new(m, xq, wq);
        let root = b.node(self, &self.shape, 0, true);
        let Value::Number { sig, .. } = root.value else {
            unreachable!("the root of a tree of two or more lanes is an adder")
        };
        for chain in std::mem::take(&mut b.open) {
            b.close_chain(chain);
        }
        b.m.push(Item::Assign(sum.e(), sig.e()));
        let width = b.unused.len();
        let unused = Expr::Concat(std::mem::take(&mut b.unused));
        b.m.wire("unused_chain_bits", width, unused);
        let regs = std::mem::take(&mut b.regs);
        b.m.push(Item::Always("clk".into(), regs));
        (b.m, b.halves)
    }
}

/// A node's output: a lane (its index), or a number held in a signal.
enum Value {
    Lane(usize),
    Number { sig: Sig },
}

/// A built node: its value, depth and register stages.
struct Built {
    value: Value,
    depth: usize,
    stage: usize,
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

    /// Whether the half only brings the carry in out as its sum (`P = 0`, `G = 0`).
    fn only_carries(&self) -> bool {
        matches!(self, Half::Add(Operand::Zero, Operand::Zero))
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
    /// The chains being laid out, one per place in the pipeline ([`OpenChain::place`]): nodes
    /// go on adding halves to the one of their place while it has room.
    open: Vec<OpenChain>,
    chains: usize,
    halves: usize,
}

/// One half laid out in a chain: its table, its inputs `A, B, C, D`, and where its sum goes
/// (none: nothing reads it).
struct PlacedHalf {
    init: u16,
    inputs: [Expr; 4],
    sum: Option<Expr>,
}

/// A carry chain not yet built into cells.
struct OpenChain {
    halves: Vec<PlacedHalf>,
    /// Where its nodes sit in the pipeline: the register stage their operands come from, and
    /// their adder level after it. A path through a joined carry then starts no earlier than
    /// the node's own operands arrive, and adds no adder level to any path.
    place: (usize, usize),
    /// Its last half only brings a carry out (`P = 0`): the next node's first half can be it.
    ends_in_carry: bool,
}

impl Builder {
    fn new(m: Module, x: Sig, w: Sig) -> Builder {
        Builder {
            m,
            x,
            w,
            regs: Vec::new(),
            lane_delays: HashMap::new(),
            nodes: 0,
            unused: Vec::new(),
            open: Vec::new(),
            chains: 0,
            halves: 0,
        }
    }

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
            };
        };
        let l = self.node(tree, left, first, false);
        let r = self.node(tree, right, first + left.lanes(), false);
        let depth = 1 + l.depth.max(r.depth);
        let stage = l.stage.max(r.stage);
        let k = self.nodes;
        self.nodes += 1;
        let lead = if *carry_in {
            let (x, w) = self.lane(first + left.lanes() + right.lanes(), stage);
            Half::Inject(x, w)
        } else {
            Half::Add(Operand::Zero, Operand::Zero)
        };
        let width = bits_for(*lanes);
        let (a, b) = (self.operands(&l, stage), self.operands(&r, stage));
        let adders: Vec<Half> = (0..width)
            .map(|j| {
                let pick = |ops: &[Operand]| ops.get(j).cloned().unwrap_or(Operand::Zero);
                Half::Add(pick(&a), pick(&b))
            })
            .collect();
        let sum = self.m.net(&format!("n{k}_sum"), width);
        self.lay((stage, (depth - 1) % tree.stride), lead, &adders, &sum);
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
        }
    }

    /// Lays a node's halves into the open chain of its `place` in the pipeline: its lead half
    /// (`P = 0`: its carry-out ignores the carry-in), then its adders, whose sums are `sum`'s
    /// bits. A chain holds at most [`SHARED_CHAIN_CELLS`]; where it ends in a half that only
    /// brings a carry out, the lead half takes that half's place (both have `P = 0`, so the
    /// half's sum is still the carry coming in, and its carry-out is the lead's).
    fn lay(&mut self, place: (usize, usize), lead: Half, adders: &[Half], sum: &Sig) {
        let at = self.open.iter().position(|c| c.place == place);
        let fits = |c: &OpenChain| {
            let merged = usize::from(c.ends_in_carry);
            c.halves.len() + 1 + adders.len() - merged <= 2 * SHARED_CHAIN_CELLS
        };
        let at = match at {
            Some(i) if fits(&self.open[i]) => i,
            _ => {
                if let Some(i) = at {
                    let full = self.open.swap_remove(i);
                    self.close_chain(full);
                }
                self.open.push(OpenChain {
                    halves: Vec::new(),
                    place,
                    ends_in_carry: false,
                });
                self.open.len() - 1
            }
        };
        let chain = &mut self.open[at];
        let lead = PlacedHalf {
            init: lead.init(),
            inputs: lead.inputs(),
            sum: None,
        };
        match chain.halves.last_mut() {
            Some(last) if chain.ends_in_carry => {
                last.init = lead.init;
                last.inputs = lead.inputs;
            }
            _ => chain.halves.push(lead),
        }
        for (j, half) in adders.iter().enumerate() {
            chain.halves.push(PlacedHalf {
                init: half.init(),
                inputs: half.inputs(),
                sum: Some(sum.bit(j)),
            });
        }
        chain.ends_in_carry = adders.last().is_some_and(Half::only_carries);
    }

    /// Builds a chain's cells (a padding half makes whole cells).
    fn close_chain(&mut self, mut chain: OpenChain) {
        if chain.halves.len() % 2 == 1 {
            let pad = Half::Add(Operand::Zero, Operand::Zero);
            chain.halves.push(PlacedHalf {
                init: pad.init(),
                inputs: pad.inputs(),
                sum: None,
            });
        }
        let c = self.chains;
        self.chains += 1;
        self.halves += chain.halves.len();
        let idle = chain.halves.iter().filter(|h| h.sum.is_none()).count();
        let idle_sums = (idle > 0).then(|| self.m.net(&format!("c{c}_idle"), idle));
        let mut idle_bits = idle_sums.iter().flat_map(|s| (0..idle).map(|i| s.bit(i)));
        let halves: Vec<(u16, [Expr; 4], Expr)> = chain
            .halves
            .into_iter()
            .map(|h| {
                let sum = h.sum.unwrap_or_else(|| {
                    let bit = idle_bits.next().expect("one idle sum per idle half");
                    self.unused.push(bit.clone());
                    bit
                });
                (h.init, h.inputs, sum)
            })
            .collect();
        let co = ccu2c_chain(&mut self.m, &format!("c{c}"), &halves, e::k(1, 0));
        self.unused.push(co.bit(co.width() - 1));
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
}

/// A carry chain of CCU2C cells named `name_cell0..`, one half per `(table, [A, B, C, D], sum)`
/// (an even number; `sum` is the net bit the half's sum drives), from `carry_in`; returns the
/// net `name_co` of every cell's carry out.
fn ccu2c_chain(
    m: &mut Module,
    name: &str,
    halves: &[(u16, [Expr; 4], Expr)],
    carry_in: Expr,
) -> Sig {
    let cells = halves.len() / 2;
    let co = m.net(&format!("{name}_co"), cells);
    for (c, pair) in halves.chunks(2).enumerate() {
        let cin = if c == 0 {
            carry_in.clone()
        } else {
            co.bit(c - 1)
        };
        let [(init0, in0, s0), (init1, in1, s1)] = [pair[0].clone(), pair[1].clone()];
        let outs = [s0, s1, co.bit(c)];
        ccu2c(
            m,
            &format!("{name}_cell{c}"),
            &[(init0, in0), (init1, in1)],
            cin,
            outs,
        );
    }
    co
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
    let s = m.net(&format!("{name}_s"), halves.len());
    let placed: Vec<(u16, [Expr; 4], Expr)> = (halves.into_iter().enumerate())
        .map(|(i, (init, inputs))| (init, inputs, s.bit(i)))
        .collect();
    let co = ccu2c_chain(m, name, &placed, e::k(1, 0));
    // The first half's sum, the top carry, and the padding half's sum go nowhere.
    let mut unused = vec![s.bit(0), co.bit(co.width() - 1)];
    if s.width() > width + 1 {
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
            let t = CarryTree::new(n, crate::blocks::tree::STRIDE);
            let cells = t
                .module()
                .items
                .iter()
                .filter(|i| matches!(i, Item::Cell { .. }))
                .count();
            assert_eq!(2 * cells, t.halves(), "{n} lanes");
            // Laid out: 3 lanes in 2 cells, 64 in 56; under 1.8 halves a lane.
            assert!(
                5 * t.halves() <= 9 * n + 20,
                "{n} lanes: {} halves",
                t.halves()
            );
            assert!(t.latency() >= 1);
        }
        assert_eq!(CarryTree::new(3, 2).halves(), 4);
        assert_eq!(CarryTree::new(64, 2).halves(), 112);
    }
}
