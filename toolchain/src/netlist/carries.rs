//! Carry connections that nothing depends on (see the parent module): a carry-out that no cell
//! and no module port reads is disconnected; a constant carry-in is disconnected when the cell's
//! first half ignores it, its propagate term 0 for every value of its inputs (so `COUT0 = G`),
//! and nothing reads its sum `S0`.

use serde_json::Value;

use super::{net_of, readers, tied};

/// How many connections [`free_idle_carries`] cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// Constant carry-ins that no output depended on.
    pub carry_ins: usize,
    /// Carry-outs that nothing read.
    pub carry_outs: usize,
}

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
                net_of(conns, port).is_some_and(|n| readers.get(&n).map_or(0, Vec::len) == 0)
            };
            let cut_out = unread("COUT");
            let cut_in = (tied(conns, "CIN", "0") || tied(conns, "CIN", "1"))
                && unread("S0")
                && first_half_is_idle(cell)?;
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
    use crate::netlist::test_netlist as netlist;

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
