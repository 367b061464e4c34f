//! bql-model: the core of bql. A binarized network IR with exact integer semantics, its file
//! format, IDX datasets, and the reference inference every other part is checked against.
//!
//! Design decisions:
//! - **Integers are the truth.** A trained network is folded once into integer form (binary
//!   weights, integer thresholds, integer scores); the float parameters are kept only to
//!   re-check that fold ([`float`]). `docs/semantics.md` is the contract; [`semantics`] is its
//!   code, [`reference`] its fast executable form.
//! - **gamma < 0 is folded into the weights**, not into a flipped comparison: negating a
//!   neuron's weights mirrors its accumulator, so every threshold is `acc >= T` and the hardware
//!   needs one comparator kind.
//! - **Nothing here knows about hardware, boards, transports or command lines.** Those crates
//!   depend on this one, never the reverse.
//! - The layer set is open: [`layers::Layer`] is `#[non_exhaustive]`, and consumers ask layers
//!   for their sizes instead of assuming a matrix.

#![deny(missing_docs)]

pub mod arch;
pub mod bits;
pub mod calibrate;
pub mod dataset;
mod error;
pub mod float;
pub mod format;
pub mod idx;
mod kernel;
pub mod layers;
pub mod network;
pub mod reference;
pub mod semantics;
pub mod testing;

pub use error::{Error, ErrorKind, Result};
pub use network::{FloatLayer, InputEncoding, InputSpec, Network, PixelTable, PIXEL_TABLE_LIMIT};
