//! The changes bql makes to yosys's ECP5 netlist before nextpnr reads it, each exact (the
//! netlist computes what it computed) and needing nothing from the generator:
//!
//! - [`carries`]: carry connections that nothing depends on become unconnected. nextpnr-ecp5
//!   begins every CCU2C chain at a tile's first slice, whose carry input comes from the
//!   neighbouring tile; a chain whose first carry-in is connected (a constant is a connection)
//!   gets a CCU2C in front that feeds it from the fabric, and a chain whose last carry-out is
//!   connected (to a net nobody reads: yosys keeps it) gets one behind that carries it out: four
//!   TRELLIS_COMB per chain (docs/hardware.md, "Carry chains in nextpnr-ecp5"). The popcount
//!   trees' chains begin with a half whose propagate term is 0 and end in a carry nobody reads.
//! - [`output_registers`]: flip-flops that register a block RAM's read data move into the block
//!   RAM's own output register (`REGMODE OUTREG`), which yosys 0.23 never uses: the read data
//!   then leaves the RAM 0.97 ns after the clock instead of 5.83 ns in nextpnr's timing
//!   (docs/hardware.md).

pub mod carries;
pub mod output_registers;

use std::collections::HashMap;

use serde_json::Value;

pub use carries::{free_idle_carries, Freed};
pub use output_registers::absorb_output_registers;

/// The rules' version, part of the build cache's key.
pub const VERSION: &str = "free-idle-carries 1, output-registers 2";

/// What [`prepare`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Carry connections cut.
    pub freed: Freed,
    /// Flip-flops moved into block RAM output registers.
    pub output_registers: usize,
}

/// Applies every rule to a yosys JSON netlist. Errors say what is malformed.
pub fn prepare(netlist: &mut Value) -> Result<Changes, String> {
    Ok(Changes {
        freed: free_idle_carries(netlist)?,
        output_registers: absorb_output_registers(netlist)?,
    })
}

/// Who reads a net bit: a cell's input port, or (`cell: None`) one of the module's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reader {
    pub cell: Option<String>,
    pub port: String,
}

/// Readers of each net bit of a module.
pub(crate) fn readers(module: &Value) -> HashMap<u64, Vec<Reader>> {
    let mut found: HashMap<u64, Vec<Reader>> = HashMap::new();
    let mut add = |bits: &Value, cell: Option<&str>, port: &str| {
        for b in bits
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
        {
            found.entry(b).or_default().push(Reader {
                cell: cell.map(str::to_string),
                port: port.to_string(),
            });
        }
    };
    for (name, port) in module
        .get("ports")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if port.get("direction").and_then(Value::as_str) != Some("input") {
            add(&port["bits"], None, name);
        }
    }
    for (name, cell) in module
        .get("cells")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let dirs = &cell["port_directions"];
        for (port, bits) in cell["connections"].as_object().into_iter().flatten() {
            if dirs.get(port).and_then(Value::as_str) != Some("output") {
                add(bits, Some(name), port);
            }
        }
    }
    found
}

/// The net of a one-bit port, when it is a net (not a constant, not absent).
pub(crate) fn net_of(conns: &Value, port: &str) -> Option<u64> {
    match conns.get(port)?.as_array()?.as_slice() {
        [bit] => bit.as_u64(),
        _ => None,
    }
}

/// A one-bit port tied to the constant `value` ("0" or "1").
pub(crate) fn tied(conns: &Value, port: &str, value: &str) -> bool {
    matches!(
        conns.get(port).and_then(Value::as_array).map(Vec::as_slice),
        Some([Value::String(s)]) if s == value
    )
}

/// A netlist of one module `top` holding `cells` (named `c0`, `c1`, ...) and an output port of
/// the bits `outputs`, for the rules' tests.
#[cfg(test)]
pub(crate) fn test_netlist(cells: Vec<Value>, outputs: Vec<u64>) -> Value {
    let cells: serde_json::Map<String, Value> = cells
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("c{i}"), c))
        .collect();
    serde_json::json!({ "modules": { "top": {
        "ports": { "y": { "direction": "output", "bits": outputs } },
        "cells": cells } } })
}
