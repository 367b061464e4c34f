//! The bql host driver (planned): a small Transport trait (serial port, simulated board, later
//! PCIe DMA), the protocol client that loads weights and streams inputs, and the comparison of
//! every result with the software reference. It knows nothing of HDL.

#![deny(missing_docs)]
