//! Flip-flops of a lowered design, counted from its modules: every register bit (`reg` items,
//! registered outputs, power-on registers), the words of a memory that synthesis builds from
//! flip-flops (fewer than 8 words with no `ram_style`, see `plan::inferred_memory`), times the
//! instances of each module under the top. The plan's formulas choose the folding; this count
//! is the flip-flop figure the plan reports once the design is lowered (the formulas fell 21 to
//! 31 % short of yosys). It is an upper bound of what yosys keeps: it removes constant and
//! unused registers and merges equal ones (on a full-speed ECP5 design, the adder trees' operand
//! delay registers).

use std::collections::BTreeMap;

use crate::ir::{Item, Module};

/// Flip-flops of `top` and everything it instantiates.
pub fn flip_flops(modules: &BTreeMap<String, Module>, top: &str) -> usize {
    let mut memo = BTreeMap::new();
    count(modules, top, &mut memo)
}

fn count(
    modules: &BTreeMap<String, Module>,
    name: &str,
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
    let items: usize = m
        .items
        .iter()
        .map(|item| match item {
            Item::Reg(_, w) | Item::RegInit(_, w, _) => *w,
            Item::Memory {
                width,
                depth,
                ram_style: None,
                ..
            } if *depth < 8 => width * depth,
            Item::Instance { module, .. } => count(modules, module, memo),
            _ => 0,
        })
        .sum();
    memo.insert(name.to_string(), ports + items);
    ports + items
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
        assert_eq!(flip_flops(&modules, "top"), 56);
    }
}
