//! The generated core, simulated by Icarus Verilog on real MNIST images, computes exactly the
//! reference's scores and classes.

use std::path::{Path, PathBuf};

use bql_hdl_gen::board;
use bql_model::dataset::{Dataset, Split};
use bql_model::reference::Engine;
use bql_model::Network;
use bql_sim::harness::{beats_hex, parse_scores};
use proptest::prelude::*;

#[path = "../../model/tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Verilog testbench that streams `images` images from `beats.hex` and prints each result.
fn testbench(
    ifc: &bql_hdl_gen::blocks::core::CoreInterface,
    images: usize,
    score_bits: usize,
    cycles_per_image: usize,
    writes: usize,
) -> String {
    let k8 = ifc.pixels_per_beat * 8;
    let (sw, aw, dw) = (ifc.cfg_sel_width, ifc.cfg_addr_width, ifc.cfg_data_width);
    format!(
        r#"`timescale 1ns/1ps
module tb;
    reg clk = 0;
    always #5 clk = ~clk;
    reg rst = 1;
    reg in_valid = 0;
    wire in_ready;
    reg [{k}:0] in_pixels = 0;
    wire out_valid;
    wire [{cw}:0] out_class;
    wire [{sw}:0] out_scores;
    bql_core dut (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_pixels(in_pixels),
        .out_valid(out_valid), .out_ready(1'b1), .out_class(out_class), .out_scores(out_scores),
        .cfg_we(cfg_we), .cfg_sel(cfg_word[{cw_hi}:{cw_sel_lo}]), .cfg_addr(cfg_word[{cw_addr_hi}:{dw}]),
        .cfg_data(cfg_word[{dw_hi}:0])
    );
    reg cfg_we = 0;
    reg [{cw_hi}:0] cfg_word = 0;
    reg [{cw_hi}:0] cfg_table [0:{writes_max}];
    integer c;
    reg [{k}:0] beats [0:{nb}];
    integer i;
    integer done = 0;
    initial begin
        $readmemh("beats.hex", beats);
        if ({writes} > 0) $readmemh("cfg.hex", cfg_table);
        repeat (3) @(posedge clk);
        // Load memories through the run-time write port, one word per cycle.
        for (c = 0; c < {writes}; c = c + 1) begin
            @(negedge clk);
            cfg_word = cfg_table[c];
            cfg_we = 1;
        end
        @(negedge clk);
        cfg_we = 0;
        rst = 0;
        for (i = 0; i < {total}; i = i + 1) begin
            @(negedge clk);
            in_pixels = beats[i];
            in_valid = 1;
            while (!in_ready) @(negedge clk);
            @(posedge clk);
            #1 in_valid = 0;
        end
    end
    always @(posedge clk) begin
        if (out_valid) begin
            $display("RESULT %0d %h", out_class, out_scores);
            done = done + 1;
            if (done == {images}) $finish;
        end
    end
    initial begin
        #{timeout};
        $display("TIMEOUT");
        $finish;
    end
endmodule
"#,
        k = k8 - 1,
        cw = ifc.class_width - 1,
        sw = score_bits - 1,
        cw_hi = sw + aw + dw - 1,
        cw_sel_lo = aw + dw,
        cw_addr_hi = aw + dw - 1,
        dw = dw,
        dw_hi = dw - 1,
        writes = writes,
        writes_max = writes.max(1) - 1,
        nb = ifc.beats * images - 1,
        total = ifc.beats * images,
        images = images,
        // Every image through every stage one after another, twice over: a hang, not a slow design.
        timeout = 10 * 2 * cycles_per_image * (images + 1),
    )
}

/// Generates `net` for `board_id`, simulates `images` images with Icarus, and compares.
fn check(
    load_all: bool,
    net: &Network,
    board_id: &str,
    folds: &[(usize, usize, usize)],
    data: &Dataset,
    images: usize,
    dir: &Path,
) {
    let b = board::load(&root().join("constraints"), board_id).unwrap();
    let design = bql_hdl_gen::generate(net, &b, folds).unwrap();
    design.write(dir).unwrap();
    let rtl = dir.join("rtl");
    let ifc = &design.interface;
    let mut hex = String::new();
    for i in 0..images {
        for line in beats_hex(ifc, data.image(i)) {
            hex.push_str(&line);
            hex.push('\n');
        }
    }
    std::fs::write(rtl.join("beats.hex"), hex).unwrap();
    let classes = net.classes();
    let latency: usize = design
        .plan
        .layers
        .iter()
        .map(|l| l.cycles() + bql_hdl_gen::plan::pipeline_overhead(l) + 4)
        .sum::<usize>()
        + ifc.beats
        + classes
        + 20;
    let writes = bql_sim::harness::config_writes(net, &design.plan, load_all);
    let cfg: String = writes
        .iter()
        .map(|w| bql_sim::harness::config_hex(ifc, w) + "\n")
        .collect();
    std::fs::write(rtl.join("cfg.hex"), cfg).unwrap();
    let tb = testbench(
        ifc,
        images,
        classes * ifc.score_width,
        latency,
        writes.len(),
    );
    std::fs::write(rtl.join("tb.v"), tb).unwrap();
    let iverilog = bql_sim::tools::iverilog().expect("iverilog");
    let mut cmd = iverilog.command();
    cmd.current_dir(&rtl).args(["-o", "tb.vvp", "tb.v"]);
    cmd.args(design.rtl_sources());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "iverilog: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = std::time::Instant::now();
    let out = std::process::Command::new("vvp")
        .current_dir(&rtl)
        .args(["-n", "tb.vvp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("TIMEOUT"), "{text}");
    // For the speed comparison with Verilator (docs/hardware.md): `cargo test -- --nocapture`.
    eprintln!(
        "icarus: {board_id}, {images} images after {} writes, {:.2} s in vvp",
        writes.len(),
        started.elapsed().as_secs_f64()
    );
    let engine = Engine::new(net);
    let results: Vec<&str> = text.lines().filter(|l| l.starts_with("RESULT")).collect();
    assert_eq!(results.len(), images, "{text}");
    for (i, line) in results.iter().enumerate() {
        let mut parts = line.split_whitespace().skip(1);
        let class: usize = parts.next().unwrap().parse().unwrap();
        let scores = parse_scores(ifc, parts.next().unwrap(), classes).unwrap();
        let want = engine.predict(data.image(i));
        assert_eq!(scores, want.scores, "image {i} scores");
        assert_eq!(class, want.class, "image {i} class");
    }
}

#[test]
fn default_model_on_mnist_images_matches_the_reference() {
    let net = bql_model::format::load(&root().join("models/default.bqm")).unwrap();
    let data = Dataset::load_dir(&root().join("data/slice/mnist"), Split::Test).unwrap();
    let dir = std::env::temp_dir().join(format!("bql-icarus-{}", std::process::id()));
    // ULX3S: weights from the memory images in the bitstream.
    check(false, &net, "ulx3s", &[], &data, 6, &dir);
    // iCEBreaker: the two big layers live in SPRAM and are loaded through the write port.
    check(false, &net, "icebreaker", &[], &data, 3, &dir);
    std::fs::remove_dir_all(&dir).ok();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Random shapes (widths 1-300, 1-4 layers, binary or 8-bit input) with random folding and
    /// random pixels: every score of every image equals the reference.
    #[test]
    fn random_models_match_the_reference(net in common::arb_network(), seed in any::<u64>()) {
        let mut rng = common::Rng(seed);
        let folds = common::random_folds(&net, &mut rng, 12, 40);
        let len = net.input.len();
        let images = 3;
        let mut net = net;
        common::thresholds_on_the_boundary(&mut net, &common::random_pixels(seed, 1, len), &mut rng);
        let data = Dataset {
            height: 1,
            width: len,
            pixels: common::random_pixels(seed, images, len), // image 0 sits on every boundary
            labels: vec![0; images],
        };
        let dir = std::env::temp_dir().join(format!("bql-icarus-{}-{seed}", std::process::id()));
        // Every memory loaded through the write port, over the initial images.
        check(true, &net, "ulx3s", &folds, &data, images, &dir);
        std::fs::remove_dir_all(&dir).ok();
    }
}
