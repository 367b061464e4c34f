//! The search both cell compressors choose their trees with (ECP5 CCU2C, iCE40 logic cells): the
//! cheapest tree over a lane count under a family's costs, no deeper than a budget of levels.
//! Each node adds two parts and optionally one carry-in lane; leaves are lanes, and two-lane
//! pairs where the family has them. Also the compressors' common module interface.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::ir::{bits_for, Module, Sig};

/// How a node's lanes are counted.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Lane,
    /// Two lanes counted in a leaf of their own (iCE40: two LUTs, sum and carry).
    Pair,
    Add {
        // Shared: the search's memo hands out clones of its shapes.
        left: Rc<Shape>,
        right: Rc<Shape>,
        carry_in: bool,
        lanes: usize,
    },
}

impl Shape {
    pub(crate) fn lanes(&self) -> usize {
        match self {
            Shape::Lane => 1,
            Shape::Pair => 2,
            Shape::Add { lanes, .. } => *lanes,
        }
    }
}

/// A family's costs, in its own units (CCU2C halves, logic cells).
pub(crate) struct Costs {
    /// A lane alone.
    pub lane: usize,
    /// A two-lane leaf, where the family has one.
    pub pair: Option<usize>,
    /// An adder node over an `l`-lane and an `r`-lane part, with a carry-in lane or not.
    pub node: fn(usize, usize, bool) -> usize,
    /// Sizes of the larger part to try when `rest` lanes split in two.
    pub splits: fn(usize) -> Vec<usize>,
}

/// Search memo: (lanes, depth budget) -> (cost, depth, shape).
pub(crate) type Memo = HashMap<(usize, usize), Option<(usize, usize, Shape)>>;

/// The cheapest tree for `lanes` (>= 2) within one level of a balanced binary tree: (cost,
/// shape). The search is a pure function of (lanes, budget), and the planner asks for the same
/// lane counts in every candidate plan: one memo per family and thread serves them all.
pub(crate) fn cheapest_tree(
    lanes: usize,
    costs: &Costs,
    memo: &'static std::thread::LocalKey<RefCell<Memo>>,
) -> (usize, Shape) {
    assert!(lanes >= 2, "a compressor needs two lanes");
    let budget = bits_for(lanes - 1) + 1;
    let (cost, _, shape) = memo
        .with(|memo| cheapest(lanes, budget, costs, &mut memo.borrow_mut()))
        .expect("a balanced tree fits the budget");
    (cost, shape)
}

/// The cheapest shape for `n` lanes no deeper than `budget` levels: (cost, depth, shape); fewest
/// cost first, then least depth.
fn cheapest(
    n: usize,
    budget: usize,
    costs: &Costs,
    memo: &mut Memo,
) -> Option<(usize, usize, Shape)> {
    match (n, costs.pair) {
        (1, _) => return Some((costs.lane, 0, Shape::Lane)),
        (2, Some(pair)) if budget >= 1 => return Some((pair, 1, Shape::Pair)),
        _ if budget == 0 => return None,
        _ => {}
    }
    if let Some(b) = memo.get(&(n, budget)) {
        return b.clone();
    }
    let mut choice: Option<(usize, usize, Shape)> = None;
    for carry_in in [false, true] {
        let rest = n - usize::from(carry_in);
        if rest < 2 {
            continue;
        }
        for l in (costs.splits)(rest) {
            let (Some((lc, ld, ls)), Some((rc, rd, rs))) = (
                cheapest(l, budget - 1, costs, memo),
                cheapest(rest - l, budget - 1, costs, memo),
            ) else {
                continue;
            };
            let cost = lc + rc + (costs.node)(l, rest - l, carry_in);
            let depth = 1 + ld.max(rd);
            if choice
                .as_ref()
                .is_none_or(|(c, d, _)| (cost, depth) < (*c, *d))
            {
                let shape = Shape::Add {
                    left: Rc::new(ls),
                    right: Rc::new(rs),
                    carry_in,
                    lanes: n,
                };
                choice = Some((cost, depth, shape));
            }
        }
    }
    memo.insert((n, budget), choice.clone());
    choice
}

/// A compressor module's interface: `clk`, lanes `x` and `w`, the count `sum` (returned with the
/// module), and a header line saying what it holds (`cells`, e.g. "146 iCE40 logic cells").
pub(crate) fn interface(
    name: String,
    lanes: usize,
    cells: &str,
    latency: usize,
) -> (Module, Sig, Sig, Sig) {
    let mut m = Module::new(name.clone());
    m.doc.push(format!(
        "{name}: popcount of {lanes} XNOR lanes (x ^ w) in {cells}, {latency} pipeline stage(s)."
    ));
    m.input("clk", 1);
    let x = m.input("x", lanes);
    let w = m.input("w", lanes);
    let sum = m.output("sum", bits_for(lanes));
    (m, x, w, sum)
}
