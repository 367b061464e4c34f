//! Every generated design passes `verilator --lint-only -Wall` with zero warnings, for the default
//! model on every board it fits and for random models with random folding.

use std::path::{Path, PathBuf};

use bql_hdl_gen::board;
use bql_model::Network;
use proptest::prelude::*;

#[path = "../../model/tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Lints the design in `dir`; returns Verilator's complaints (empty when clean).
fn lint(dir: &Path, files: &[&str]) -> String {
    let v = bql_sim::tools::verilator(&root()).expect("verilator");
    let mut cmd = v.command();
    cmd.current_dir(dir)
        .args(["--lint-only", "-Wall", "--top-module", "bql_top"]);
    cmd.args(files);
    let out = cmd.output().expect("verilator runs");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() && !err.contains("%Warning") && !err.contains("%Error") {
        String::new()
    } else {
        err
    }
}

fn generate_and_lint(
    net: &Network,
    board_id: &str,
    folds: &[(usize, usize, usize)],
    tag: &str,
) -> Result<(), String> {
    let opts = bql_hdl_gen::Options {
        folds: folds.to_vec(),
        ..Default::default()
    };
    generate_with_and_lint(net, board_id, &opts, tag)
}

fn generate_with_and_lint(
    net: &Network,
    board_id: &str,
    opts: &bql_hdl_gen::Options,
    tag: &str,
) -> Result<(), String> {
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate_with(net, &b, opts).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("bql-lint-{}-{tag}", std::process::id()));
    design.write(&dir).unwrap();
    let files = design.rtl_sources();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let complaints = lint(&dir.join("rtl"), &refs);
    std::fs::remove_dir_all(&dir).ok();
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(format!("lint of {tag}: {complaints}"))
    }
}

/// Lints `model` on every board it fits; on the others its refusal must be a clear "does not
/// fit" that names block RAM and the shortfall (the HX8K has no SPRAM). Returns how many linted.
fn lint_on_every_board_it_fits(model: &str) -> usize {
    let net = bql_model::format::load(&root().join("models").join(model)).unwrap();
    let mut linted = 0;
    for b in board::list(&root().join("constraints")).unwrap() {
        let id = &b.file.id;
        match bql_hdl_gen::generate(&net, &b, &[]) {
            Ok(_) => {
                generate_and_lint(&net, id, &[], &format!("{model}-{id}")).unwrap();
                linted += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), bql_hdl_gen::ErrorKind::DoesNotFit, "{id}: {e}");
                let m = e.to_string();
                assert!(
                    m.contains("block RAM") && m.contains("short by"),
                    "{id}: {m}"
                );
                assert_eq!(b.file.family, board::Family::Ice40, "{id}: {m}");
            }
        }
    }
    linted
}

#[test]
fn default_model_is_lint_clean_on_every_board_it_fits() {
    // The HX8K refuses it: 334 kbit of weights exceed its 128 kbit of EBR.
    assert!(
        lint_on_every_board_it_fits("default.bqm") >= 4,
        "the ECP5 boards and the UP5K boards (with SPRAM) take the default model"
    );
}

/// The SPI top level (its two clock domains and the chip select's asynchronous reset), with
/// the board clock and through the PLL.
#[test]
fn the_spi_link_is_lint_clean() {
    let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
    for clock in [None, Some(24.0)] {
        let opts = bql_hdl_gen::Options {
            link: bql_hdl_gen::LinkKind::Spi,
            clock_mhz: clock,
            ..Default::default()
        };
        generate_with_and_lint(&net, "icebreaker", &opts, &format!("spi-{clock:?}")).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_models_with_random_folding_are_lint_clean(
        net in common::arb_network(),
        fold_seed in any::<u64>(),
    ) {
        let mut rng = common::Rng(fold_seed);
        let folds = common::random_folds(&net, &mut rng, 16, 64);
        let r = generate_and_lint(&net, "ulx3s", &folds, &format!("rand{fold_seed}"));
        prop_assert!(r.is_ok(), "{}\nfolds {:?}, arch {}", r.unwrap_err(), folds, net.arch_string());
    }

    /// Random CNNs (see `bql_model::testing::random_cnn`) with random foldings.
    #[test]
    fn random_cnns_with_random_folding_are_lint_clean(seed in any::<u64>()) {
        let net = bql_model::testing::random_cnn(seed);
        let mut rng = common::Rng(seed ^ 0xf01d);
        let folds = common::random_cnn_folds(&net, &mut rng, 16, 64);
        let r = generate_and_lint(&net, "ulx3s", &folds, &format!("cnn{seed}"));
        prop_assert!(r.is_ok(), "{}\nfolds {:?}, arch {}", r.unwrap_err(), folds, net.arch_string());
    }
}

/// The MNIST CNN on every board it fits: lint-clean; the HX8K refuses its 581 kbit of weights.
#[test]
fn mnist_cnn_is_lint_clean_on_every_board_it_fits() {
    assert!(
        lint_on_every_board_it_fits("mnist-cnn.bqm") >= 4,
        "the ECP5 boards and the UP5K boards take the CNN"
    );
}
