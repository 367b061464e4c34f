//! Real builds with the real tools: a small generated design through yosys, nextpnr-ice40 and
//! icepack for the iCEBreaker, and through yosys, nextpnr-ecp5 and ecppack (YoWASP unless a
//! native build is on PATH) for the ULX3S. The bitstreams must exist, the reports must parse,
//! and the design must meet the board clock.

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_toolchain::{build, Tools};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn small_build(board_id: &str) {
    let net = bql_model::testing::random_network(100, &[24, 10], false, 100, 7, false);
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate(&net, &b, &[(0, 2, 10), (1, 2, 8)]).unwrap();
    assert!(design.plan.logic_overfull.is_none());
    let dir = root().join(format!("target/bql-tests/build-{board_id}"));
    let _ = std::fs::remove_dir_all(&dir);
    design.write(&dir).unwrap();
    let tools = Tools::locate(b.file.family, &root()).unwrap();
    let mut steps = Vec::new();
    let r = build(&design, &b, &dir, &tools, b.file.clock_mhz, |s| {
        steps.push(s.name)
    })
    .unwrap_or_else(|e| panic!("{board_id}: {e}"));
    assert_eq!(steps, ["synth", "pnr", "pack"]);
    let bit = r.bitstream.clone().expect("a bitstream");
    let size = std::fs::metadata(&bit).unwrap().len();
    assert!(size > 1000, "{board_id}: bitstream of {size} bytes");
    assert!(r.fmax_mhz >= r.target_mhz, "{board_id}: {r:?}");
    assert!(!r.util.summary().is_empty(), "{board_id}: {r:?}");
    assert!(r.util.overfull().is_empty(), "{board_id}: {r:?}");
    // A second build with the same inputs is taken from the cache.
    let again = build(&design, &b, &dir, &tools, b.file.clock_mhz, |_| {
        panic!("cached build ran a step")
    })
    .unwrap();
    assert!(again.cached);
    assert_eq!(again.bitstream, Some(bit));
}

#[test]
fn small_design_to_an_ice40_bitstream() {
    small_build("icebreaker");
}

#[test]
fn small_design_to_an_ecp5_bitstream() {
    small_build("ulx3s");
}
