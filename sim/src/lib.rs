//! bql-sim: runs the generated Verilog in real simulators and checks it against the reference.
//!
//! It locates the tools ([`tools`], through `bql-locate`), builds `bql_core` in Verilator with a
//! stimulus/response driver ([`verilator`], [`harness`]) and in Icarus ([`icarus`]), localizes a
//! mismatch to the first layer and output that differ ([`localize`]), and serves the whole
//! board design behind a pseudo-terminal (UART) or a socket of SPI transactions for the host
//! driver ([`serve`]). Errors are typed
//! ([`Error`] with an [`ErrorKind`]).

#![deny(missing_docs)]

mod error;
pub mod harness;
pub mod icarus;
pub mod localize;
mod runtime_cache;
pub mod serve;
pub mod tools;
pub mod verilator;

pub use error::{Error, ErrorKind, Result};
