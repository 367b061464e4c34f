//! The cell popcount compressors (ECP5 CCU2C, iCE40 SB_LUT4 + SB_CARRY) count right in both of
//! their forms: the behavioural cell model that simulations run, and the primitives that yosys
//! builds, simulated with yosys's own models of the cells (its `ecp5/cells_sim.v` and
//! `ice40/cells_sim.v`). Icarus runs each tree on random lanes and compares every count with a
//! plain loop over the lanes in the testbench.

use std::path::{Path, PathBuf};
use std::process::Command;

use bql_hdl_gen::blocks::compressor::CarryTree;
use bql_hdl_gen::blocks::compressor_ice40::LogicTree;
use bql_hdl_gen::blocks::tree::CellTree;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// yosys's simulation library of `family` (`ecp5`, `ice40`), next to the yosys that the
/// synthesis checks use.
fn vendor_cells(family: &str) -> PathBuf {
    let yosys = bql_sim::tools::yosys(&root()).expect("yosys (make deps installs it)");
    let program = std::fs::canonicalize(&yosys.program).unwrap_or(yosys.program);
    let share = program
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join(format!("share/yosys/{family}/cells_sim.v")))
        .filter(|p| p.is_file());
    share.unwrap_or_else(|| {
        panic!(
            "yosys's {family} cell library (share/yosys/{family}/cells_sim.v) is not next to {}: \
             install Debian's yosys (make deps)",
            program.display()
        )
    })
}

/// A testbench: `vectors` random lane words, each count checked `latency` cycles later.
fn testbench(t: &CellTree, lanes: usize, vectors: usize, seed: u32) -> String {
    let (lat, ow) = (t.latency(), t.out_width());
    let words = lanes.div_ceil(32);
    format!(
        r#"`timescale 1ns/1ps
module tb;
    reg clk = 0;
    reg [{top}:0] x, w;
    wire [{otop}:0] sum;
    reg [{otop}:0] want [0:{vectors}];
    integer i, k, errors, seed, count;
    {name} dut (.clk(clk), .x(x), .w(w), .sum(sum));
    always #5 clk = ~clk;
    initial begin
        errors = 0;
        seed = {seed};
        for (i = 0; i < {vectors} + {lat}; i = i + 1) begin
            for (k = 0; k < {words}; k = k + 1) begin
                x[k * 32 +: 32] = $random(seed);
                w[k * 32 +: 32] = $random(seed);
            end
            count = 0;
            for (k = 0; k < {lanes}; k = k + 1) count = count + (x[k] ^ w[k]);
            if (i < {vectors}) want[i] = count;
            #1;
            if ({lat} == 0 || i >= {lat}) begin
                if (sum !== want[i - {lat}]) begin
                    errors = errors + 1;
                    $display("BAD vector %0d: %0d, expected %0d", i - {lat}, sum, want[i - {lat}]);
                end
            end
            @(posedge clk);
            #1;
        end
        $display("DONE %0d vectors, %0d errors", {vectors}, errors);
        $finish;
    end
endmodule
"#,
        top = words * 32 - 1,
        otop = ow - 1,
        name = t.name(),
    )
}

/// Runs `t` in Icarus (with the vendor cell model when `primitives`); returns the output.
fn run(t: &CellTree, lanes: usize, primitives: bool, dir: &Path) -> String {
    let rtl = bql_hdl_gen::verilog::module(&t.module());
    let tb = testbench(t, lanes, 400, 7 + lanes as u32);
    let family = match t {
        CellTree::Ccu2c(_) => "ecp5",
        CellTree::Logic(_) => "ice40",
    };
    simulate(&rtl, &tb, primitives.then_some(family), dir)
}

/// Runs the testbench `tb` on the module `rtl` in Icarus in `dir`, with `family`'s vendor cell
/// models (and `SYNTHESIS` defined, so the primitives are simulated) when given; returns the
/// output.
fn simulate(rtl: &str, tb: &str, family: Option<&str>, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tree.v"), rtl).unwrap();
    std::fs::write(dir.join("tb.v"), tb).unwrap();
    let iverilog = bql_sim::tools::iverilog().expect("iverilog (make deps installs it)");
    let mut cmd = iverilog.command();
    cmd.current_dir(dir)
        .args(["-g2012", "-o", "tb.vvp", "tb.v", "tree.v"]);
    if let Some(family) = family {
        let cells = vendor_cells(family);
        cmd.arg("-DSYNTHESIS")
            .arg("-DNO_ICE40_DEFAULT_ASSIGNMENTS")
            .arg(format!("-I{}", cells.parent().unwrap().display()))
            .arg(&cells);
    }
    let out = cmd.output().expect("iverilog runs");
    assert!(
        out.status.success(),
        "iverilog: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("vvp")
        .current_dir(dir)
        .args(["-n", "tb.vvp"])
        .output()
        .expect("vvp runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs trees of the shapes below in Icarus, as models and as vendor cells.
fn check_trees(kind: &str, make: impl Fn(usize, usize) -> CellTree) {
    let base = root().join("build/test-compressor").join(kind);
    let mut checked = 0;
    for (lanes, stride) in [
        (2, 3),
        (3, 1),
        (5, 3),
        (14, 3),
        (31, 2),
        (64, 3),
        (100, 1),
        (257, 3),
    ] {
        let t = make(lanes, stride);
        for primitives in [false, true] {
            let dir = base.join(format!(
                "l{lanes}s{stride}{}",
                if primitives { "p" } else { "m" }
            ));
            let out = run(&t, lanes, primitives, &dir);
            assert!(
                out.contains("DONE 400 vectors, 0 errors"),
                "{kind}: {lanes} lanes, stride {stride}, {}: {out}",
                if primitives { "vendor cells" } else { "model" }
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn carry_trees_count_right_in_the_model_and_in_the_vendor_cells() {
    check_trees("ccu2c", |lanes, stride| {
        CellTree::Ccu2c(CarryTree::new(lanes, stride))
    });
}

#[test]
fn logic_cell_trees_count_right_in_the_model_and_in_the_vendor_cells() {
    check_trees("ice40", |lanes, stride| {
        CellTree::Logic(LogicTree::new(lanes, stride))
    });
}

/// A testbench for the CCU2C accumulator: random counts, start words and first-fold flags
/// (about one in four), `valid` mostly high; the register is checked against the same
/// arithmetic in the testbench after every clock edge.
fn accumulator_testbench(name: &str, width: usize, count_width: usize, seed: u32) -> String {
    format!(
        r#"`timescale 1ns/1ps
module tb;
    reg clk = 0;
    reg [{ctop}:0] count;
    reg [{top}:0] start, want;
    reg first, valid;
    wire [{top}:0] acc;
    integer i, errors, seed;
    {name} dut (.clk(clk), .count(count), .first(first), .valid(valid), .start(start), .acc(acc));
    always #5 clk = ~clk;
    initial begin
        errors = 0;
        seed = {seed};
        want = 0;
        // The register's power-on value is unknown: the first vector starts a fold.
        for (i = 0; i < 2000; i = i + 1) begin
            count = $random(seed);
            start = $random(seed);
            first = i == 0 || ($random(seed) & 3) == 0;
            valid = i == 0 || ($random(seed) & 7) != 0;
            if (valid) want = (first ? start : want) + count;
            @(posedge clk);
            #1;
            if (acc !== want) begin
                errors = errors + 1;
                $display("BAD vector %0d: %0d, expected %0d", i, acc, want);
            end
        end
        $display("DONE 2000 vectors, %0d errors", errors);
        $finish;
    end
endmodule
"#,
        top = width - 1,
        ctop = count_width - 1,
    )
}

/// The threshold-preloaded accumulator in CCU2C cells adds right in its model and in yosys's
/// CCU2C model, for odd and even widths and counts narrower than the accumulator.
#[test]
fn the_carry_cell_accumulator_adds_right_in_the_model_and_in_the_vendor_cells() {
    let base = root().join("build/test-compressor/accumulate");
    for (width, count_width) in [(2, 2), (7, 3), (10, 7), (17, 9)] {
        let m = bql_hdl_gen::blocks::compressor::accumulator_module(width, count_width);
        let rtl = bql_hdl_gen::verilog::module(&m);
        let tb = accumulator_testbench(&m.name, width, count_width, 11 + width as u32);
        for family in [None, Some("ecp5")] {
            let dir = base.join(format!("w{width}c{count_width}{}", family.unwrap_or("")));
            let out = simulate(&rtl, &tb, family, &dir);
            assert!(
                out.contains("DONE 2000 vectors, 0 errors"),
                "{width}-bit accumulator of {count_width}-bit counts, {}: {out}",
                family.map_or("model", |_| "vendor cells")
            );
        }
    }
}

/// Synthesizes `rtl` (top `top`) with yosys for the ECP5, applies the build's netlist change
/// (`bql_toolchain::netlist`: idle carry-ins and unread carry-outs disconnected) and returns the
/// changed netlist as Verilog, with what the change cut.
fn freed_netlist(rtl: &str, top: &str, dir: &Path) -> (String, bql_toolchain::netlist::Freed) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("rtl.v"), rtl).unwrap();
    let yosys = bql_sim::tools::yosys(&root()).expect("yosys (make deps installs it)");
    let run = |script: &str| {
        let out = yosys
            .command()
            .current_dir(dir)
            .args(["-q", "-p", script])
            .output()
            .expect("yosys runs");
        assert!(
            out.status.success(),
            "yosys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&format!(
        "read_verilog -DSYNTHESIS rtl.v; synth_ecp5 -top {top} -json synth.json"
    ));
    let text = std::fs::read_to_string(dir.join("synth.json")).unwrap();
    let mut netlist: serde_json::Value = serde_json::from_str(&text).unwrap();
    let freed = bql_toolchain::netlist::free_idle_carries(&mut netlist).unwrap();
    std::fs::write(dir.join("freed.json"), netlist.to_string()).unwrap();
    run("read_json freed.json; write_verilog -noattr freed.v");
    // Verilog has no `x` output connection; an open one says the same.
    let verilog = std::fs::read_to_string(dir.join("freed.v")).unwrap();
    (verilog.replace(".COUT(1'hx)", ".COUT()"), freed)
}

/// The netlists nextpnr-ecp5 gets (yosys's, with the carries nothing depends on disconnected)
/// count and add right in yosys's CCU2C model, where a disconnected carry-in is `x`: any output
/// that depended on one would be `x` and fail the comparison. Every chain's first half is idle,
/// so every chain loses its carry-in.
#[test]
fn freed_carry_netlists_count_and_add_right_in_the_vendor_cells() {
    let base = root().join("build/test-compressor/freed");
    for (lanes, stride) in [(5, 3), (31, 2), (100, 1)] {
        let t = CellTree::Ccu2c(CarryTree::new(lanes, stride));
        let dir = base.join(format!("l{lanes}s{stride}"));
        let rtl = bql_hdl_gen::verilog::module(&t.module());
        let (netlist, freed) = freed_netlist(&rtl, &t.name(), &dir);
        assert!(
            freed.carry_ins > 0 && freed.carry_ins == freed.carry_outs,
            "{lanes} lanes: {freed:?}"
        );
        let tb = testbench(&t, lanes, 400, 3 + lanes as u32);
        let out = simulate(&netlist, &tb, Some("ecp5"), &dir);
        assert!(
            out.contains("DONE 400 vectors, 0 errors"),
            "{lanes} lanes, stride {stride}, freed netlist: {out}"
        );
    }
    let m = bql_hdl_gen::blocks::compressor::accumulator_module(10, 7);
    let dir = base.join("accumulate");
    let (netlist, freed) = freed_netlist(&bql_hdl_gen::verilog::module(&m), &m.name, &dir);
    assert_eq!((freed.carry_ins, freed.carry_outs), (1, 1));
    let out = simulate(
        &netlist,
        &accumulator_testbench(&m.name, 10, 7, 5),
        Some("ecp5"),
        &dir,
    );
    assert!(
        out.contains("DONE 2000 vectors, 0 errors"),
        "freed accumulator: {out}"
    );
}
