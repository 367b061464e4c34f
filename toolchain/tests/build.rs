//! Real builds with the real tools: a small generated design through yosys, nextpnr-ice40 and
//! icepack for the iCEBreaker, and through yosys, nextpnr-ecp5 and ecppack (YoWASP unless a
//! native build is on PATH) for the ULX3S, at the board clock and through each family's PLL at
//! twice it. The bitstreams must exist, the reports must parse, the design must meet its clock,
//! and a PLL design must have placed exactly one PLL.

use std::path::PathBuf;

use bql_hdl_gen::board;
use bql_toolchain::{build, Tools};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn small_build(board_id: &str, clock_mhz: Option<f64>) {
    let net = bql_model::testing::random_network(100, &[24, 10], false, 100, 7, false);
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let opts = bql_hdl_gen::Options {
        folds: vec![(0, 2, 10), (1, 2, 8)],
        clock_mhz,
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&net, &b, &opts).unwrap();
    assert!(design.plan.logic_overfull.is_none());
    assert_eq!(design.pll.is_some(), clock_mhz.is_some());
    let dir = root().join(format!(
        "target/bql-tests/build-{board_id}-{}",
        if clock_mhz.is_some() {
            "pll"
        } else {
            "board-clock"
        }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    design.write(&dir).unwrap();
    let tools = Tools::locate(b.file.family, &root()).unwrap();
    let mut steps = Vec::new();
    let r = build(&design, &b, &dir, &tools, design.clock_mhz, |s| {
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
    let plls = r
        .util
        .summary()
        .iter()
        .find(|(name, _)| *name == "PLL")
        .map_or(0, |(_, v)| v[0]);
    assert_eq!(plls, u64::from(clock_mhz.is_some()), "{board_id}: {r:?}");
    // On the ECP5 the netlist changes apply to the generated design (toolchain/src/netlist.rs):
    // its trees' chains lose their open ends and its weight RAMs take their read registers.
    let note = std::fs::read_to_string(dir.join("yosys.log")).unwrap();
    let changed = note.lines().any(|l| {
        l.starts_with("bql: disconnected") && !l.contains(" 0 idle") && !l.contains("moved 0 ")
    });
    assert_eq!(
        changed,
        b.file.family == board::Family::Ecp5,
        "{board_id}: {}",
        note.lines().last().unwrap_or_default()
    );
    // The flip-flops the plan reports (counted from the lowered design) hold against yosys's.
    let stat = std::fs::read_to_string(dir.join("yosys-stat.txt")).unwrap();
    let def = b.file.family.def();
    let yosys_ff: u64 = def
        .ff_cells
        .iter()
        .map(|c| bql_toolchain::report::yosys_cells(&stat, c))
        .sum();
    let planned = design.plan.estimate.ff as f64;
    assert!(
        (planned - yosys_ff as f64).abs() <= 0.15 * yosys_ff as f64,
        "{board_id}: {planned} flip-flops planned, yosys {yosys_ff}"
    );
    // So does the planner's logic, in yosys's LUT sites (an ECP5 CCU2C fills two, a
    // distributed-RAM primitive six: the ECP5 design's threshold memory of 12 words is one).
    let yosys_luts = bql_toolchain::report::yosys_lut_sites(&stat, b.file.family);
    let planned = design.plan.estimate.lut as f64;
    assert!(
        (planned - yosys_luts as f64).abs() <= 0.15 * yosys_luts as f64,
        "{board_id}: {planned} LUT4 planned, yosys {yosys_luts} LUT sites"
    );
    if let Some(f) = clock_mhz {
        assert_eq!(
            design.clock_mhz, f,
            "an exact PLL setting exists for 2x the board clock"
        );
        assert_eq!(r.target_mhz, f);
    }
    // A second build with the same inputs is taken from the cache.
    let again = build(&design, &b, &dir, &tools, design.clock_mhz, |_| {
        panic!("cached build ran a step")
    })
    .unwrap();
    assert!(again.cached);
    assert_eq!(again.bitstream, Some(bit));
}

#[test]
fn small_design_to_an_ice40_bitstream() {
    small_build("icebreaker", None);
}

#[test]
fn small_design_to_an_ecp5_bitstream() {
    small_build("ulx3s", None);
}

#[test]
fn small_design_through_the_ice40_pll() {
    small_build("icebreaker", Some(24.0));
}

#[test]
fn small_design_through_the_ecp5_pll() {
    small_build("ulx3s", Some(50.0));
}

/// The cache key covers the pin file's contents: a board folder whose `.pcf` changed after a
/// build rebuilds (it used to reuse the old bitstream).
#[test]
fn editing_the_pin_file_rebuilds() {
    let boards = root().join("target/bql-tests/boards-pin-edit");
    let _ = std::fs::remove_dir_all(&boards);
    std::fs::create_dir_all(&boards).unwrap();
    for f in ["icebreaker.toml", "icebreaker.pcf"] {
        std::fs::copy(root().join("constraints").join(f), boards.join(f)).unwrap();
    }
    let net = bql_model::testing::random_network(100, &[24, 10], false, 100, 7, false);
    let opts = bql_hdl_gen::Options {
        folds: vec![(0, 2, 10), (1, 2, 8)],
        ..Default::default()
    };
    let dir = root().join("target/bql-tests/build-pin-edit");
    let _ = std::fs::remove_dir_all(&dir);
    // What `bql build` does on each call: load the board, generate, write, build.
    let generate_and_build = |steps: &mut Vec<&'static str>| {
        let b = board::load(&boards, "icebreaker").unwrap();
        let design = bql_hdl_gen::generate_with(&net, &b, &opts).unwrap();
        design.write(&dir).unwrap();
        let tools = Tools::locate(b.file.family, &root()).unwrap();
        build(&design, &b, &dir, &tools, design.clock_mhz, |s| {
            steps.push(s.name)
        })
        .unwrap()
    };
    let first = generate_and_build(&mut Vec::new());
    assert!(!first.cached);
    assert!(
        generate_and_build(&mut Vec::new()).cached,
        "nothing changed"
    );
    let pcf = boards.join("icebreaker.pcf");
    let mut text = std::fs::read_to_string(&pcf).unwrap();
    text.push_str("# edited after the first build\n");
    std::fs::write(&pcf, text).unwrap();
    let mut steps = Vec::new();
    let second = generate_and_build(&mut steps);
    assert!(
        !second.cached,
        "a changed pin file must not reuse the bitstream"
    );
    assert_eq!(steps, ["synth", "pnr", "pack"]);
}
