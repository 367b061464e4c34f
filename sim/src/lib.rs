//! The bql simulator driver (planned): builds the generated Verilog with Verilator (and Icarus),
//! drives it cycle by cycle, compares every output with the software reference in bql-model and
//! serves the simulated board on a pseudo-terminal. It knows no pin-outs.

#![deny(missing_docs)]
