//! The one change bql makes to yosys's netlist before nextpnr reads it: carry connections that
//! nothing depends on become unconnected.
//!
//! nextpnr-ecp5 begins every CCU2C chain at a tile's first slice, whose carry input comes from
//! the neighbouring tile; a chain whose first cell has a connected carry-in (a constant is a
//! connection) gets a CCU2C in front that feeds it from the fabric, and a chain whose last
//! carry-out is connected (to a net nobody reads: yosys keeps it) gets one behind that carries it
//! out: two TRELLIS_COMB each, four per chain (docs/hardware.md, "Carry chains in nextpnr-ecp5").
//! The popcount trees' chains begin with a half whose propagate term is 0 and end in a carry
//! nobody reads, so neither cell is needed. Nothing else is touched; the rules are exact:
//!
//! - a carry-out that no cell and no module port reads is disconnected;
//! - a constant carry-in is disconnected when the cell's first half ignores it: its propagate
//!   term is 0 for every value of its inputs (so `COUT0 = G`) and nothing reads its sum `S0`.

use std::collections::HashMap;

use serde_json::Value;

/// How many connections [`free_idle_carries`] cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// Constant carry-ins that no output depended on.
    pub carry_ins: usize,
    /// Carry-outs that nothing read.
    pub carry_outs: usize,
}

/// The rule's version, part of the build cache's key.
pub const VERSION: &str = "free-idle-carries 1";

/// Applies the rules to every module of a yosys JSON netlist. Errors say what is malformed.
pub fn free_idle_carries(netlist: &mut Value) -> Result<Freed, String> {
    let modules = netlist
        .get_mut("modules")
        .and_then(Value::as_object_mut)
        .ok_or("the netlist has no modules")?;
    let mut freed = Freed::default();
    for module in modules.values_mut() {
        let readers = readers(module);
        let Some(cells) = module.get_mut("cells").and_then(Value::as_object_mut) else {
            continue;
        };
        for cell in cells.values_mut() {
            if cell.get("type").and_then(Value::as_str) != Some("CCU2C") {
                continue;
            }
            let conns = cell
                .get("connections")
                .ok_or("a CCU2C without connections")?;
            let unread = |port: &str| {
                net_of(conns, port).is_some_and(|n| readers.get(&n).copied().unwrap_or(0) == 0)
            };
            let cut_out = unread("COUT");
            let cut_in = is_constant(conns, "CIN") && unread("S0") && first_half_is_idle(cell)?;
            let conns = cell
                .get_mut("connections")
                .and_then(Value::as_object_mut)
                .ok_or("a CCU2C's connections are not an object")?;
            for (cut, port, count) in [
                (cut_out, "COUT", &mut freed.carry_outs),
                (cut_in, "CIN", &mut freed.carry_ins),
            ] {
                if cut {
                    conns.insert(port.into(), Value::Array(vec![Value::String("x".into())]));
                    *count += 1;
                }
            }
        }
    }
    Ok(freed)
}

/// Readers of each net bit: cell inputs and the module's output ports.
fn readers(module: &Value) -> HashMap<u64, usize> {
    let mut count = HashMap::new();
    let mut add = |bits: &Value| {
        for b in bits
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
        {
            *count.entry(b).or_insert(0) += 1;
        }
    };
    for port in module
        .get("ports")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if port.1.get("direction").and_then(Value::as_str) != Some("input") {
            add(&port.1["bits"]);
        }
    }
    for cell in module
        .get("cells")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let dirs = &cell.1["port_directions"];
        for (port, bits) in cell.1["connections"].as_object().into_iter().flatten() {
            if dirs.get(port).and_then(Value::as_str) != Some("output") {
                add(bits);
            }
        }
    }
    count
}

/// The net of a one-bit port, when it is a net (not a constant, not absent).
fn net_of(conns: &Value, port: &str) -> Option<u64> {
    match conns.get(port)?.as_array()?.as_slice() {
        [bit] => bit.as_u64(),
        _ => None,
    }
}

/// The port is tied to a constant 0 or 1.
fn is_constant(conns: &Value, port: &str) -> bool {
    matches!(
        conns.get(port).and_then(Value::as_array).map(Vec::as_slice),
        Some([Value::String(s)]) if s == "0" || s == "1"
    )
}

/// The first half's propagate term (`INIT0` over `A0 B0 C0 D0`) is 0 for every value of the
/// inputs that are not constants.
fn first_half_is_idle(cell: &Value) -> Result<bool, String> {
    let init = cell
        .get("parameters")
        .and_then(|p| p.get("INIT0"))
        .and_then(Value::as_str)
        .ok_or("a CCU2C without INIT0")?;
    let init = u16::from_str_radix(init.trim(), 2)
        .map_err(|_| format!("a CCU2C's INIT0 is not 16 binary digits: {init:?}"))?;
    let conns = &cell["connections"];
    // Per input: the values it can take (a constant one, a net either).
    let values: Vec<Vec<u16>> = ["A0", "B0", "C0", "D0"]
        .iter()
        .map(|port| {
            match conns
                .get(*port)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                Some([Value::String(s)]) if s == "0" => vec![0],
                Some([Value::String(s)]) if s == "1" => vec![1],
                _ => vec![0, 1],
            }
        })
        .collect();
    Ok((0..16u16).all(|index| {
        let reachable = (0..4).all(|k| values[k].contains(&(index >> k & 1)));
        !reachable || init >> index & 1 == 0
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(init0: &str, inputs: [&str; 4], cin: Value, s0: u64, cout: u64) -> Value {
        // "0", "1": constants; other numbers: nets.
        let bit = |s: &str| -> Value {
            match s.parse::<u64>() {
                Ok(n) if n > 1 => Value::from(n),
                _ => Value::String(s.into()),
            }
        };
        serde_json::json!({
            "type": "CCU2C",
            "parameters": { "INIT0": init0 },
            "port_directions": { "A0": "input", "B0": "input", "C0": "input", "D0": "input",
                "CIN": "input", "S0": "output", "COUT": "output" },
            "connections": { "A0": [bit(inputs[0])], "B0": [bit(inputs[1])],
                "C0": [bit(inputs[2])], "D0": [bit(inputs[3])], "CIN": [cin],
                "S0": [s0], "COUT": [cout] }
        })
    }

    fn netlist(cells: Vec<Value>, outputs: Vec<u64>) -> Value {
        let cells: serde_json::Map<String, Value> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c))
            .collect();
        serde_json::json!({ "modules": { "top": {
            "ports": { "y": { "direction": "output", "bits": outputs } },
            "cells": cells } } })
    }

    const INJECT: &str = "0000000000000110"; // P = 0 with C0 high, G = A ^ B
    const ADD: &str = "0110100110010110";

    #[test]
    fn cuts_exactly_the_carries_nothing_depends_on() {
        let chain = vec![
            // Chain 1: an inject half first (C0 = 1): the carry-in is idle; its carry-out feeds
            // cell 2 and stays.
            cell(INJECT, ["2", "3", "1", "0"], "0".into(), 10, 11),
            // Cell 2: continues the chain; its carry-out is read by nothing: cut.
            cell(ADD, ["4", "5", "6", "7"], 11.into(), 12, 13),
            // Chain 2: an adder half first: its carry-in matters and stays.
            cell(ADD, ["2", "3", "4", "5"], "0".into(), 14, 15),
            // Chain 3: an inject half whose C0 is a net: P is not 0 for every input: stays.
            cell(INJECT, ["2", "3", "6", "0"], "0".into(), 16, 17),
            // Chain 4: idle first half, but its sum S0 is a module output: stays.
            cell(INJECT, ["2", "3", "1", "0"], "0".into(), 18, 19),
        ];
        let mut n = netlist(chain, vec![12, 14, 16, 18, 15, 17]);
        let freed = free_idle_carries(&mut n).unwrap();
        assert_eq!(
            freed,
            Freed {
                carry_ins: 1,
                carry_outs: 2
            }
        );
        let conn = |c: usize, p: &str| {
            n["modules"]["top"]["cells"][format!("c{c}")]["connections"][p].clone()
        };
        assert_eq!(conn(0, "CIN"), serde_json::json!(["x"]));
        assert_eq!(conn(0, "COUT"), serde_json::json!([11]));
        assert_eq!(conn(1, "COUT"), serde_json::json!(["x"]));
        assert_eq!(conn(2, "CIN"), serde_json::json!(["0"]));
        assert_eq!(conn(3, "CIN"), serde_json::json!(["0"]));
        assert_eq!(conn(4, "CIN"), serde_json::json!(["0"]));
        assert_eq!(conn(4, "COUT"), serde_json::json!(["x"]));
        assert_eq!(conn(2, "COUT"), serde_json::json!([15]));
    }

    #[test]
    fn malformed_netlists_are_errors_not_panics() {
        assert!(free_idle_carries(&mut serde_json::json!({})).is_err());
        let mut bad = netlist(
            vec![cell("12", ["1", "1", "1", "1"], "0".into(), 1, 2)],
            vec![],
        );
        bad["modules"]["top"]["cells"]["c0"]["parameters"]["INIT0"] = "not binary".into();
        assert!(free_idle_carries(&mut bad).is_err());
    }
}
