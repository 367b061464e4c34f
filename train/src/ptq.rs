//! Post-training quantization: a float model ([`crate::FloatCheckpoint`]) binarized without
//! further training. Weights become their signs; each BatchNorm keeps its learned gamma and beta
//! but its statistics are re-estimated exactly from the binarized network's own integer
//! accumulators on calibration images, layer after layer
//! ([`bql_model::calibrate::reestimate_batchnorm`]), and folded into thresholds as training's
//! fold does. The float statistics describe pre-activations of real-valued weights and would be
//! meaningless for `+-1` weights, so the calibration is what makes PTQ work at all.

use bql_model::calibrate::reestimate_batchnorm;
use bql_model::dataset::Dataset;
use bql_model::Network;
use candle_core::Device;
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::graph::Model;
use crate::{eval_predictions, fold, invalid, skeleton, FloatCheckpoint, Result};

/// A quantized float model.
pub struct Quantized {
    /// The binarized network with re-estimated BatchNorm statistics.
    pub network: Network,
    /// The binarized network folded with the float model's own statistics (for comparison).
    pub uncalibrated: Network,
    /// The float graph's accuracy on the test images.
    pub float_accuracy: f64,
}

/// Binarizes `checkpoint`, re-estimating BatchNorm statistics on the `calibration` images;
/// `test` gives the float accuracy.
pub fn quantize(
    checkpoint: &FloatCheckpoint,
    calibration: &Dataset,
    test: &Dataset,
    name: &str,
) -> Result<Quantized> {
    let mut cfg = checkpoint.config();
    cfg.name = name.to_string();
    let (h, w, c) = checkpoint.shape;
    for (what, d) in [("calibration", calibration), ("test", test)] {
        if (d.height, d.width, d.channels) != (h, w, c) {
            return Err(invalid(format!(
                "the float model takes {h}x{w}x{c} images; the {what} images are {}x{}x{}",
                d.height, d.width, d.channels
            )));
        }
    }
    let skeleton = skeleton(&cfg, calibration)?;
    let dev = Device::Cpu;
    let model = Model::new(
        &cfg,
        &skeleton,
        &VarMap::new(),
        &mut StdRng::seed_from_u64(0),
        &dev,
    )?;
    model.load_tensors(&checkpoint.tensors)?;
    let predicted = eval_predictions(&model, cfg.input, test, &dev)?;
    let right = predicted
        .iter()
        .zip(&test.labels)
        .filter(|(&p, &l)| p == u32::from(l))
        .count();
    let mut uncalibrated = fold(&model, skeleton, &cfg, calibration)?;
    uncalibrated.provenance = serde_json::json!({
        "tool": format!("bql quantize {}", env!("CARGO_PKG_VERSION")),
        "float_model": serde_json::from_str::<serde_json::Value>(&checkpoint.provenance)
            .unwrap_or_default(),
        "method": "weights: sign; BatchNorm gamma, beta kept; statistics re-estimated on the \
                   calibration images from the integer accumulators; exact fold",
        "calibration_images": calibration.len(),
    });
    let network = reestimate_batchnorm(&uncalibrated, calibration, &|_| {})?;
    Ok(Quantized {
        network,
        uncalibrated,
        float_accuracy: right as f64 / test.len().max(1) as f64,
    })
}
