//! Flip-flops that register a DP16KD's read data move into its output register (see the parent
//! module).
//!
//! A read port's data bits qualify when every bit that anything reads is read by exactly one
//! TRELLIS_FF, at its data input, clocked by the port's clock, with no clock enable and no
//! set/reset in use (clock-enable constant 1, set/reset constant 0, reset value 0); the port's
//! own output clock enable must be 1 and its reset 0 (both resets of a 36-bit RAM). Then each
//! such flip-flop goes, the RAM drives its output net, and the port's `REGMODE` becomes
//! `OUTREG`: the register is the same (it loads the read data on every clock edge), only inside
//! the RAM. A 36-bit (pseudo
//! dual-port) RAM reads all 36 bits on port B, so its `DOA` and `DOB` pins are one read port
//! with both `REGMODE`s (as nextpnr-ecp5 configures a PDPW16KD, whose `OCEA` it leaves at 1).

use std::collections::HashMap;

use serde_json::Value;

use super::{net_of, readers, tied, Reader};

/// One read port of a DP16KD: its data pins, the control pins that go with them, and the
/// parameters to set when its registers move in.
struct ReadPort {
    data: Vec<String>,
    clock: &'static str,
    clock_mux: &'static str,
    output_enable: &'static str,
    resets: &'static [&'static str],
    regmodes: &'static [&'static str],
}

/// The read ports of a DP16KD with these data widths.
fn read_ports(width_a: u64, width_b: u64) -> Vec<ReadPort> {
    let pins = |side: &'static str| (0..18).map(move |i| format!("DO{side}{i}"));
    let port = |data: Vec<String>, side: char, regmodes| ReadPort {
        data,
        clock: if side == 'A' { "CLKA" } else { "CLKB" },
        clock_mux: if side == 'A' { "CLKAMUX" } else { "CLKBMUX" },
        output_enable: if side == 'A' { "OCEA" } else { "OCEB" },
        resets: if side == 'A' { &["RSTA"] } else { &["RSTB"] },
        regmodes,
    };
    if width_a == 36 || width_b == 36 {
        // nextpnr resets a PDPW16KD's output register from both reset pins.
        let mut both = port(
            pins("A").chain(pins("B")).collect(),
            'B',
            &["REGMODE_A", "REGMODE_B"],
        );
        both.resets = &["RSTA", "RSTB"];
        vec![both]
    } else {
        vec![
            port(pins("A").collect(), 'A', &["REGMODE_A"]),
            port(pins("B").collect(), 'B', &["REGMODE_B"]),
        ]
    }
}

/// Moves qualifying flip-flops into the output registers of every DP16KD; returns how many
/// moved. Errors say what is malformed.
pub fn absorb_output_registers(netlist: &mut Value) -> Result<usize, String> {
    let modules = netlist
        .get_mut("modules")
        .and_then(Value::as_object_mut)
        .ok_or("the netlist has no modules")?;
    let mut moved = 0;
    for module in modules.values_mut() {
        let readers = readers(module);
        let Some(cells) = module.get_mut("cells").and_then(Value::as_object_mut) else {
            continue;
        };
        let rams: Vec<String> = cells
            .iter()
            .filter(|(_, c)| c.get("type").and_then(Value::as_str) == Some("DP16KD"))
            .map(|(name, _)| name.clone())
            .collect();
        for ram in rams {
            for port in read_ports(
                width(&cells[&ram], "DATA_WIDTH_A")?,
                width(&cells[&ram], "DATA_WIDTH_B")?,
            ) {
                let Some(registers) = registers_of(cells, &ram, &port, &readers) else {
                    continue;
                };
                moved += registers.len();
                move_in(cells, &ram, &port, registers);
            }
        }
    }
    Ok(moved)
}

/// A DP16KD's data width parameter (yosys writes it in binary digits; 18 when absent).
fn width(ram: &Value, param: &str) -> Result<u64, String> {
    match ram.get("parameters").and_then(|p| p.get(param)) {
        None => Ok(18),
        Some(Value::String(s)) => u64::from_str_radix(s.trim(), 2)
            .map_err(|_| format!("a DP16KD's {param} is not binary digits: {s:?}")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("a DP16KD's {param} is not a number: {v}")),
    }
}

/// The flip-flops (data pin, flip-flop name) that can move into `ram`'s `port`, if the port
/// qualifies and has any.
fn registers_of(
    cells: &serde_json::Map<String, Value>,
    ram: &str,
    port: &ReadPort,
    readers: &HashMap<u64, Vec<Reader>>,
) -> Option<Vec<(String, String)>> {
    let cell = &cells[ram];
    let (params, conns) = (&cell["parameters"], &cell["connections"]);
    let param = |name: &str| params.get(name).and_then(Value::as_str).map(str::trim);
    let controls = tied(conns, port.output_enable, "1")
        && port.resets.iter().all(|r| tied(conns, r, "0"))
        && param(port.clock_mux).is_none_or(|m| m == port.clock)
        && port
            .regmodes
            .iter()
            .all(|r| param(r).is_none_or(|m| m == "NOREG"));
    let clock = net_of(conns, port.clock).filter(|_| controls)?;
    let mut registers = Vec::new();
    for pin in &port.data {
        let Some(bit) = net_of(conns, pin) else {
            continue;
        };
        match readers.get(&bit).map(Vec::as_slice) {
            None | Some([]) => {}
            Some(
                [Reader {
                    cell: Some(ff),
                    port,
                }],
            ) if port == "DI" && plain_register(&cells[ff], clock) => {
                registers.push((pin.clone(), ff.clone()));
            }
            Some(_) => return None,
        }
    }
    (!registers.is_empty()).then_some(registers)
}

/// A TRELLIS_FF clocked by `clock` on its rising edge that loads on every edge and never sets or
/// resets, starting at 0.
fn plain_register(ff: &Value, clock: u64) -> bool {
    if ff.get("type").and_then(Value::as_str) != Some("TRELLIS_FF") {
        return false;
    }
    let (params, conns) = (&ff["parameters"], &ff["connections"]);
    let param = |name: &str, default: &'static str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .map_or(default, str::trim)
            .to_string()
    };
    let enabled = match param("CEMUX", "CE").as_str() {
        "1" => true,
        "CE" => conns.get("CE").is_none() || tied(conns, "CE", "1"),
        _ => false,
    };
    let no_reset =
        param("LSRMUX", "LSR") == "LSR" && (conns.get("LSR").is_none() || tied(conns, "LSR", "0"));
    net_of(conns, "CLK") == Some(clock)
        && param("CLKMUX", "CLK") == "CLK"
        && enabled
        && no_reset
        && param("REGSET", "RESET") == "RESET"
        && net_of(conns, "Q").is_some()
}

/// Deletes the flip-flops, has `ram` drive their outputs, and turns its output register on.
fn move_in(
    cells: &mut serde_json::Map<String, Value>,
    ram: &str,
    port: &ReadPort,
    registers: Vec<(String, String)>,
) {
    for (pin, ff) in registers {
        let q = cells[&ff]["connections"]["Q"].clone();
        cells.remove(&ff);
        cells[ram]["connections"][pin.as_str()] = q;
    }
    let cell = &mut cells[ram];
    for r in port.regmodes {
        cell["parameters"][*r] = Value::String("OUTREG".into());
    }
    // A 36-bit RAM's read port is B; nextpnr leaves a PDPW16KD's OCEA at 1.
    if port.regmodes.len() == 2 {
        cell["connections"]["OCEA"] = serde_json::json!(["1"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlist::test_netlist as netlist;

    /// A 36-bit DP16KD clocked by net 2 whose DOA0 drives net 10 and DOB3 net 11.
    fn ram(width: &str, ocea: &str) -> Value {
        serde_json::json!({
            "type": "DP16KD",
            "parameters": { "DATA_WIDTH_A": width, "DATA_WIDTH_B": width,
                "REGMODE_A": "NOREG", "REGMODE_B": "NOREG" },
            "port_directions": { "CLKA": "input", "CLKB": "input", "OCEA": "input",
                "OCEB": "input", "RSTA": "input", "RSTB": "input", "DOA0": "output",
                "DOB3": "output" },
            "connections": { "CLKA": [2], "CLKB": [2], "OCEA": [ocea], "OCEB": ["1"],
                "RSTA": ["0"], "RSTB": ["0"], "DOA0": [10], "DOB3": [11] }
        })
    }

    /// A TRELLIS_FF from `d` to `q` clocked by `clk`, as yosys writes one.
    fn ff(d: u64, q: u64, clk: u64) -> Value {
        serde_json::json!({
            "type": "TRELLIS_FF",
            "parameters": { "CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
                "LSRMUX": "LSR", "REGSET": "RESET" },
            "port_directions": { "CLK": "input", "DI": "input", "LSR": "input", "Q": "output" },
            "connections": { "CLK": [clk], "DI": [d], "LSR": ["0"], "Q": [q] }
        })
    }

    const WIDE: &str = "00000000000000000000000000100100";

    #[test]
    fn registers_after_a_wide_read_move_into_the_ram() {
        let mut n = netlist(
            vec![ram(WIDE, "0"), ff(10, 20, 2), ff(11, 21, 2)],
            vec![20, 21],
        );
        assert_eq!(absorb_output_registers(&mut n).unwrap(), 2);
        let cells = &n["modules"]["top"]["cells"];
        assert!(cells.get("c1").is_none() && cells.get("c2").is_none());
        let c = &cells["c0"];
        assert_eq!(c["connections"]["DOA0"], serde_json::json!([20]));
        assert_eq!(c["connections"]["DOB3"], serde_json::json!([21]));
        assert_eq!(c["connections"]["OCEA"], serde_json::json!(["1"]));
        assert_eq!(c["parameters"]["REGMODE_A"], "OUTREG");
        assert_eq!(c["parameters"]["REGMODE_B"], "OUTREG");
    }

    #[test]
    fn a_read_port_moves_only_when_every_read_bit_is_a_plain_register() {
        let cases: Vec<(&str, Vec<Value>, Vec<u64>)> = vec![
            (
                "a data bit also read elsewhere",
                vec![ram(WIDE, "0"), ff(10, 20, 2), ff(11, 21, 2)],
                vec![20, 21, 11],
            ),
            (
                "another clock",
                vec![ram(WIDE, "0"), ff(10, 20, 2), ff(11, 21, 3)],
                vec![20, 21],
            ),
            (
                "a clock enable",
                vec![ram(WIDE, "0"), ff(10, 20, 2), {
                    let mut f = ff(11, 21, 2);
                    f["parameters"]["CEMUX"] = "CE".into();
                    f["connections"]["CE"] = serde_json::json!([5]);
                    f
                }],
                vec![20, 21],
            ),
            (
                "the port A reset of a 36-bit RAM in use",
                vec![
                    {
                        let mut r = ram(WIDE, "0");
                        r["connections"]["RSTA"] = serde_json::json!([7]);
                        r
                    },
                    ff(10, 20, 2),
                    ff(11, 21, 2),
                ],
                vec![20, 21],
            ),
            (
                "a reset",
                vec![ram(WIDE, "0"), ff(10, 20, 2), {
                    let mut f = ff(11, 21, 2);
                    f["connections"]["LSR"] = serde_json::json!([6]);
                    f
                }],
                vec![20, 21],
            ),
        ];
        for (what, cells, outputs) in cases {
            let mut n = netlist(cells, outputs);
            assert_eq!(absorb_output_registers(&mut n).unwrap(), 0, "{what}");
            assert_eq!(
                n["modules"]["top"]["cells"]["c0"]["parameters"]["REGMODE_B"],
                "NOREG"
            );
        }
    }

    #[test]
    fn narrow_rams_move_each_read_port_on_its_own() {
        // 18 bits: DOA0 is port A's (output enable 0 here: stays), DOB3 port B's (moves).
        let narrow = "00000000000000000000000000010010";
        let mut n = netlist(
            vec![ram(narrow, "0"), ff(10, 20, 2), ff(11, 21, 2)],
            vec![20, 21],
        );
        assert_eq!(absorb_output_registers(&mut n).unwrap(), 1);
        let c = &n["modules"]["top"]["cells"]["c0"];
        assert_eq!(c["parameters"]["REGMODE_A"], "NOREG");
        assert_eq!(c["parameters"]["REGMODE_B"], "OUTREG");
        assert_eq!(c["connections"]["DOA0"], serde_json::json!([10]));
        assert_eq!(c["connections"]["DOB3"], serde_json::json!([21]));
    }
}
