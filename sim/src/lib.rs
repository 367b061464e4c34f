//! bql-sim: runs the generated Verilog in real simulators and checks it against the reference.
//!
//! Today: locating the tools (Verilator, Icarus, yosys) with overrides and helpful errors, and a
//! stimulus/response harness for `bql_core` ([`harness`]) that packs images into input beats
//! and unpacks scores. The cycle-accurate Verilator driver, the per-layer localization of
//! mismatches and the pseudo-terminal board come next (see the simulation issue).

#![deny(missing_docs)]

pub mod harness;
pub mod icarus;
pub mod localize;
pub mod serve;
pub mod tools;
pub mod verilator;
