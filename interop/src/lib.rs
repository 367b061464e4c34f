//! bql-interop: networks trained elsewhere, into bql's model IR (and, later, out of it).
//!
//! One file per format, each following one contract: read the other tool's files, follow its
//! arithmetic exactly, and produce a [`bql_model::Network`] that computes the same thing under
//! bql's semantics (docs/semantics.md), or refuse with the file, layer or node named. Nothing is
//! approximated: where the source's semantics differ from bql's (an offset, a padding
//! convention, a threshold rule), the importer rewrites the parameters so that every
//! accumulator value gives the source's result, and says in the model's provenance what it did.
//!
//! - [`bnn_pynq`]: the parameter folders of Xilinx BNN-PYNQ (finn-hlslib's folded weights and
//!   thresholds) with the network's `config.h` and `top.cpp`, LFC and CNV;
//! - [`onnx`]: FINN-ONNX binarized MLPs (Brevitas exports such as TFC-W1A1);
//! - [`onnx_export`]: bql MLPs and CNNs as standard ONNX that onnxruntime runs with bql's
//!   predictions.

#![deny(missing_docs)]

pub mod bnn_pynq;
mod error;
pub mod onnx;
pub mod onnx_export;

pub use error::{Error, ErrorKind, Result};

use bql_model::layers::Layer;
use bql_model::{InputEncoding, InputSpec, Network};

/// What every importer ends with: the network with its input and provenance, checked by the
/// model's own validation (an importer bug or an inconsistent source is refused, naming
/// `source`).
pub(crate) fn checked_network(
    name: String,
    (height, width, channels): (usize, usize, usize),
    encoding: InputEncoding,
    layers: Vec<Layer>,
    provenance: serde_json::Value,
    source: &str,
) -> Result<Network> {
    let network = Network {
        name,
        input: InputSpec {
            height,
            width,
            channels,
            encoding,
        },
        layers,
        float: None,
        provenance,
    };
    network
        .validate()
        .map_err(|e| Error::malformed(format!("{source}: the imported network is invalid: {e}")))?;
    Ok(network)
}
