//! The bql wire protocol (planned): frame layout, opcodes, CRC, error codes, constants and the
//! architecture hash. It does no I/O; it is the single source of truth that both the generated
//! Verilog (through hdl-gen) and the host driver follow, so the two cannot drift apart.

#![deny(missing_docs)]
