//! Flip-flops of a lowered design, counted from its modules: every register bit (`reg` items,
//! registered outputs, power-on registers), the words of a memory that synthesis builds from
//! flip-flops ([`Family::memory_kind`]), times the instances of each module under the top, less
//! the read registers that yosys puts into a block RAM (those of memories without the old-data
//! bypass). The plan's formulas choose the folding;
//! this count is the flip-flop figure the plan reports once the design is lowered (the formulas
//! fell 21 to 31 % short of yosys). It is an upper bound of what yosys keeps: it removes
//! constant and unused registers and merges equal ones (on a full-speed ECP5 design, the adder
//! trees' operand delay registers).

use std::collections::{BTreeMap, BTreeSet};

use crate::board::Family;
use crate::family::MemoryKind;
use crate::ir::{Expr, Item, Module, Stmt};

/// Flip-flops of `top` and everything it instantiates, on `family`.
pub fn flip_flops(modules: &BTreeMap<String, Module>, top: &str, family: Family) -> usize {
    let mut memo = BTreeMap::new();
    count(modules, top, family, &mut memo)
}

fn count(
    modules: &BTreeMap<String, Module>,
    name: &str,
    family: Family,
    memo: &mut BTreeMap<String, usize>,
) -> usize {
    if let Some(&n) = memo.get(name) {
        return n;
    }
    let Some(m) = modules.get(name) else {
        // A vendor primitive or cell: no flip-flops of its own.
        return 0;
    };
    let ports: usize = m.ports.iter().filter(|p| p.is_reg).map(|p| p.width).sum();
    let absorbed = read_registers_in_block_ram(m, family);
    let items: usize = m
        .items
        .iter()
        .map(|item| match item {
            Item::Reg(name, _) if absorbed.contains(name.as_str()) => 0,
            Item::Reg(_, w) | Item::RegInit(_, w, _) => *w,
            Item::Memory {
                width,
                depth,
                ram_style,
                ..
            } if family.memory_kind(*depth, *ram_style) == MemoryKind::FlipFlops => width * depth,
            Item::Instance { module, .. } => count(modules, module, family, memo),
            _ => 0,
        })
        .sum();
    memo.insert(name.to_string(), ports + items);
    ports + items
}

/// Registers that take a block memory's read unconditionally (`q <= mem[addr]` at the top of
/// a clocked block) where the memory is block RAM (not flip-flops or distributed RAM) and needs
/// no old-data bypass (`no_rw_check`): yosys makes them the block RAM's own output register.
/// (With the bypass it keeps about as many flip-flops for the written word, so those registers
/// stay counted.)
fn read_registers_in_block_ram(m: &Module, family: Family) -> BTreeSet<&str> {
    let unchecked: BTreeSet<&str> = m
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Memory {
                name,
                depth,
                ram_style,
                no_rw_check: true,
                ..
            } if family.memory_kind(*depth, *ram_style) == MemoryKind::BlockRam => {
                Some(name.as_str())
            }
            _ => None,
        })
        .collect();
    m.items
        .iter()
        .filter_map(|item| match item {
            Item::Always(_, body) => Some(body),
            _ => None,
        })
        .flatten()
        .filter_map(|stmt| match stmt {
            Stmt::Assign(Expr::Ref(reg), Expr::MemRead(mem, _))
                if unchecked.contains(mem.as_str()) =>
            {
                Some(reg.as_str())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_memories_and_instances_are_counted() {
        let mut leaf = Module::new("leaf");
        leaf.input("clk", 1);
        leaf.output_reg("q", 3);
        leaf.reg("r", 5);
        leaf.memory("small", 4, 4);
        leaf.memory("big", 8, 64);
        let mut top = Module::new("top");
        top.reg_init("por", 8, 0);
        for i in 0..2 {
            top.push(Item::Instance {
                module: "leaf".into(),
                name: format!("u{i}"),
                conns: Vec::new(),
            });
        }
        let modules = [leaf, top]
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        // 8 + 2 x (3 + 5 + 16): the 64-word memory is block RAM.
        assert_eq!(flip_flops(&modules, "top", Family::Ice40), 56);
        // 8 + 2 x (3 + 5): on the ECP5 the 4-word memory is distributed RAM.
        assert_eq!(flip_flops(&modules, "top", Family::Ecp5), 24);
    }

    /// A register that takes a read of a memory without the old-data bypass is the block
    /// RAM's; one that takes a read of a memory with it, or a read under a condition, is not;
    /// nor one that reads distributed RAM (an ECP5 memory of 32 words or fewer).
    #[test]
    fn read_registers_of_unchecked_memories_are_the_block_rams() {
        for (family, depth, counted) in [
            (Family::Ice40, 64, 16),
            (Family::Ecp5, 64, 16),
            (Family::Ecp5, 32, 24),
            (Family::Ice40, 32, 16),
        ] {
            let modules = [("m".to_string(), reads(depth))].into_iter().collect();
            assert_eq!(
                flip_flops(&modules, "m", family),
                counted,
                "{family:?}, {depth} words: a and c counted, b in a block RAM"
            );
        }
    }

    /// Three registers reading two memories of `depth` words: `a` one with the old-data
    /// bypass, `b` one without, `c` the latter under a condition.
    fn reads(depth: usize) -> Module {
        let mut m = Module::new("m");
        m.input("clk", 1);
        for (name, no_rw_check) in [("plain", false), ("unchecked", true)] {
            m.push(Item::Memory {
                name: name.into(),
                width: 8,
                depth,
                init: None,
                ram_style: None,
                no_rw_check,
            });
        }
        let read = |mem: &str| Expr::MemRead(mem.into(), Box::new(crate::ir::e::k(6, 0)));
        let (a, b, c) = (m.reg("a", 8), m.reg("b", 8), m.reg("c", 8));
        let body = vec![
            a.set(read("plain")),
            b.set(read("unchecked")),
            crate::ir::s::when(crate::ir::e::r("clk"), vec![c.set(read("unchecked"))]),
        ];
        m.push(Item::Always("clk".into(), body));
        m
    }
}
