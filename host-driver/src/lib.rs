//! bql-host-driver: talks to a bql accelerator and checks every result against the reference.
//!
//! - [`transport`]: the [`Transport`] trait and the serial port (a USB-UART bridge, or the
//!   simulated board's pseudo-terminal: the same code path). A PCIe DMA transport fits the same
//!   trait later.
//! - [`client`]: the protocol client (docs/protocol.md): handshake with the architecture
//!   check, loading and verifying memories, streaming inferences with several in flight,
//!   retries, resynchronization, re-handshake and reload after a board reset.
//! - [`run`]: a whole run: encode images, stream them, compare each result with the software
//!   reference, and the statistics of the run.
//! - [`spi`]: the SPI link: the byte stream over SPI transactions, the simulated board's socket
//!   bus and transaction-level fault injection; [`mpsse`]: an FTDI channel as the SPI master.
//! - [`faults`]: a transport wrapper that drops, flips, duplicates, delays and inserts bytes and
//!   resets the board, for the fault-injection tests.
//! - [`flash`]: programming a board with openFPGALoader or iceprog.
//!
//! It knows nothing of HDL: the caller passes the design's expected `INFO` and the memory
//! words (both come from hdl-gen, wired together by the CLI).

#![deny(missing_docs)]

pub mod client;
mod error;
pub mod faults;
pub mod flash;
pub mod mpsse;
pub mod run;
pub mod spi;
pub mod transport;

pub use client::{Client, LinkStats, MemoryWrite, Policy, Received};
pub use error::{Error, ErrorKind, Result};
pub use spi::Spi;
pub use transport::{Serial, Transport};
