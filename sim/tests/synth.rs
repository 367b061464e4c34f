//! yosys synthesizes generated designs for iCE40 and ECP5 without errors, and infers block RAM
//! for the weight memories.

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_model::Network;

#[path = "../../model/tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Synthesizes `net` planned for `board_id`; returns yosys's `stat` report.
fn synth(net: &Network, board_id: &str, folds: &[(usize, usize, usize)], tag: &str) -> String {
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate(net, &b, folds).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-synth-{}-{tag}", std::process::id()));
    design.write(&dir).unwrap();
    let rtl = dir.join("rtl");
    let files = design.rtl_sources();
    let synth = match (b.file.family, b.device.spram_blocks > 0) {
        (board::Family::Ice40, true) => "synth_ice40 -spram",
        (board::Family::Ice40, false) => "synth_ice40",
        (board::Family::Ecp5, _) => "synth_ecp5",
    };
    let script = format!(
        "read_verilog {}; {synth} -top bql_top; tee -o stat.txt stat",
        files.join(" ")
    );
    let out =
        bql_sim::tools::yosys(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
            .unwrap()
            .command()
            .current_dir(&rtl)
            .args(["-q", "-p", &script])
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "yosys {synth} failed for {tag}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stat = std::fs::read_to_string(rtl.join("stat.txt")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    stat
}

fn cells(stat: &str, cell: &str) -> usize {
    stat.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(cell))
                .then(|| w.next()?.parse::<usize>().ok())
                .flatten()
        })
        .next_back()
        .unwrap_or(0)
}

/// A small random model (binary or 8-bit input) synthesizes for both families, its weights in
/// block RAM. Folded so that the first layer's weights are 320 words deep: a block RAM's
/// natural shape.
fn small_model_synthesizes_for_ice40_and_ecp5(seed: u64, u8_input: bool) {
    let folds = [(0, 2, 10), (1, 2, 8), (2, 1, 8)];
    let net = common::random_network(100, &[40, 24, 10], u8_input, 100, seed, false);
    let ice = synth(&net, "icebreaker", &folds, &format!("ice{seed}"));
    assert!(cells(&ice, "SB_LUT4") > 0, "{ice}");
    assert!(cells(&ice, "SB_RAM40_4K") > 0, "weights in EBR: {ice}");
    let ecp = synth(&net, "ulx3s", &folds, &format!("ecp{seed}"));
    assert!(cells(&ecp, "LUT4") > 0, "{ecp}");
    assert!(
        cells(&ecp, "DP16KD") + cells(&ecp, "PDPW16KD") > 0,
        "weights in EBR: {ecp}"
    );
}

#[test]
fn a_small_binary_input_model_synthesizes_for_ice40_and_ecp5() {
    small_model_synthesizes_for_ice40_and_ecp5(1, false);
}

#[test]
fn a_small_8_bit_input_model_synthesizes_for_ice40_and_ecp5() {
    small_model_synthesizes_for_ice40_and_ecp5(2, true);
}
