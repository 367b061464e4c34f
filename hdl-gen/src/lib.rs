//! The bql HDL generator (planned): model + board -> folding plan -> hardware IR -> Verilog and
//! constraints, as a pipeline of named passes. It writes a self-contained build folder and runs no
//! tools; one module per hardware block (popcount, MVTU, memories, UART, top).

#![deny(missing_docs)]
