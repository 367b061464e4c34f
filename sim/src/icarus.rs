//! Icarus Verilog: a second opinion on the Verilog semantics. The same RTL, a small generated
//! testbench that loads configuration words and streams input beats from `$readmemh` tables, and
//! `vvp`. About 150 times slower than Verilator on our designs, so it runs short batches.

use std::path::Path;
use std::process::Command;

use bql_hdl_gen::blocks::core::CoreInterface;
use bql_hdl_gen::Design;

use crate::harness::{beats_hex, config_hex, parse_scores, ConfigLayout, ConfigWrite};
use crate::tools::Tool;

/// A Verilog testbench that streams `images` images from `beats.hex` and prints each result.
fn testbench(
    ifc: &CoreInterface,
    images: usize,
    score_bits: usize,
    cycles_per_image: usize,
    writes: &[ConfigWrite],
) -> String {
    // A word's bytes and its write, a cycle each.
    let load_cycles: usize = writes.iter().map(|w| ifc.cfg_write_bytes[w.sel] + 1).sum();
    let k8 = ifc.pixels_per_beat * 8;
    let cfg = ConfigLayout::new(ifc);
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
        .cfg_we(cfg_we), .cfg_sel(cfg_word[{sel_hi}:{sel_lo}]), .cfg_addr(cfg_word[{addr_hi}:{dw}]),
        .cfg_shift(cfg_shift), .cfg_byte(cfg_byte), .cfg_index(cfg_index[{iw_hi}:0])
    );
    reg cfg_we = 0;
    reg cfg_shift = 0;
    reg [7:0] cfg_byte = 0;
    reg [31:0] cfg_index = 0;
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
        // Load memories through the run-time write port: a word's bytes, lowest first, a cycle
        // each, then its write.
        for (c = 0; c < {writes}; c = c + 1) begin
            @(negedge clk);
            cfg_we = 0;
            cfg_word = cfg_table[c];
            for (cfg_index = 0; cfg_index < cfg_word[{cw_hi}:{bytes_lo}]; cfg_index = cfg_index + 1) begin
                cfg_shift = 1;
                cfg_byte = cfg_word[cfg_index * 8 +: 8];
                @(negedge clk);
            end
            cfg_shift = 0;
            cfg_we = 1;
        end
        @(negedge clk);
        cfg_we = 0;
        @(negedge clk);
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
        cw_hi = cfg.width() - 1,
        bytes_lo = cfg.data + cfg.addr + cfg.sel,
        sel_hi = cfg.data + cfg.addr + cfg.sel - 1,
        sel_lo = cfg.data + cfg.addr,
        addr_hi = cfg.data + cfg.addr - 1,
        dw = cfg.data,
        iw_hi = ifc.cfg_index_width - 1,
        writes = writes.len(),
        writes_max = writes.len().max(1) - 1,
        nb = ifc.beats * images - 1,
        total = ifc.beats * images,
        images = images,
        // Every image through every stage one after another, twice over: a hang, not a slow design.
        timeout = 10 * (load_cycles + 2 * cycles_per_image * (images + 1)),
    )
}

/// One `(class, scores)` per image.
pub type Results = Vec<(usize, Vec<i32>)>;

/// One Icarus run: the results, and the seconds `vvp` took.
pub fn run(
    iverilog: &Tool,
    design: &Design,
    dir: &Path,
    writes: &[ConfigWrite],
    pixels: &[u8],
    image_len: usize,
    classes: usize,
) -> crate::Result<(Results, f64)> {
    let rtl = dir.join("rtl");
    let ifc = &design.interface;
    let images = pixels.len() / image_len;
    let mut hex = String::new();
    for img in pixels.chunks(image_len) {
        for line in beats_hex(ifc, img) {
            hex.push_str(&line);
            hex.push('\n');
        }
    }
    let write = |name: &str, text: String| {
        std::fs::write(rtl.join(name), text)
            .map_err(|e| crate::Error::io(format!("cannot write {name}"), e))
    };
    write("beats.hex", hex)?;
    let latency: usize = design
        .plan
        .layers
        .iter()
        .map(|l| l.cycles() + bql_hdl_gen::plan::pipeline_overhead(l) + 4)
        .sum::<usize>()
        + ifc.beats
        + classes
        + 20;
    write(
        "cfg.hex",
        writes.iter().map(|w| config_hex(ifc, w) + "\n").collect(),
    )?;
    write(
        "tb.v",
        testbench(ifc, images, classes * ifc.score_width, latency, writes),
    )?;
    let mut cmd = iverilog.command();
    cmd.current_dir(&rtl).args(["-o", "tb.vvp", "tb.v"]);
    cmd.args(design.rtl_sources());
    let out = cmd
        .output()
        .map_err(|e| crate::Error::io("cannot run iverilog".into(), e))?;
    if !out.status.success() {
        return Err(crate::Error::tool_failed(format!(
            "iverilog failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let started = std::time::Instant::now();
    let out = Command::new("vvp")
        .current_dir(&rtl)
        .args(["-n", "tb.vvp"])
        .output()
        .map_err(|e| crate::Error::io("cannot run vvp".into(), e))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("TIMEOUT") {
        return Err(crate::Error::tool_failed(format!(
            "the Icarus simulation timed out:\n{text}"
        )));
    }
    let mut results = Vec::with_capacity(images);
    for line in text.lines().filter(|l| l.starts_with("RESULT")) {
        let mut parts = line.split_whitespace().skip(1);
        let class = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| crate::Error::bad_output(format!("bad line {line:?}")))?;
        let scores = parts
            .next()
            .and_then(|h| parse_scores(ifc, h, classes))
            .ok_or_else(|| crate::Error::bad_output(format!("bad scores in {line:?}")))?;
        results.push((class, scores));
    }
    if results.len() != images {
        return Err(crate::Error::bad_output(format!(
            "Icarus produced {} of {images} results:\n{text}",
            results.len()
        )));
    }
    Ok((results, seconds))
}
