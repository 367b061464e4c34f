//! `bql build`: generate, then yosys -> nextpnr -> icepack/ecppack, and a report of what fits
//! and how fast it runs.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use bql_hdl_gen::board;
use bql_toolchain::{report, BuildReport, ErrorKind, Tools};

use crate::defaults;

pub use crate::args::DesignArgs as Args;

pub fn run(a: Args) -> Result<()> {
    // The planner refuses a model that does not fit before any tool runs.
    let crate::gen::Generated {
        source,
        b,
        design,
        out: dir,
    } = crate::gen::design(&a)?;
    if let Some(m) = &design.plan.logic_overfull {
        bail!(
            "{source} does not fit the {} ({}) at any folding: the plan {m}. Refused before \
             synthesis; choose a board with more logic (bql boards) or a smaller model",
            b.file.name,
            b.device.name
        );
    }
    let root = defaults::project_root();
    design.write(&dir)?;
    let tools = Tools::locate(b.file.family, &root)?;
    // The design clock: the board's oscillator, or the PLL's output with --clock.
    let target = design.clock_mhz;
    let t = Instant::now();
    // YoWASP compiles each tool's WebAssembly on its first call (20-35 s), then reuses it.
    // (its cache: `.cache/YoWASP/<package>/<tool>.wasm`).
    let compiled = |program: &std::path::Path| {
        let Some(name) = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return false;
        };
        let wasm = format!("{}.wasm", name.trim_start_matches("yowasp-"));
        std::fs::read_dir(tools.cache.join("YoWASP"))
            .is_ok_and(|d| d.flatten().any(|e| e.path().join(&wasm).exists()))
    };
    let result = bql_toolchain::build(&design, &b, &dir, &tools, target, |step| {
        let wasm = match (step.program.wasm, step.program.wasm && compiled(&step.program.path)) {
            (true, false) => {
                " (YoWASP: this first call compiles WebAssembly for 20-35 s, then it is cached in .cache/)"
            }
            (true, true) => " (YoWASP, compiled WebAssembly from .cache/)",
            _ => "",
        };
        eprintln!(
            "[{:>5.1} s] {}: {}{wasm}",
            t.elapsed().as_secs_f64(),
            step.name,
            step.doc
        );
    });
    let total = t.elapsed().as_secs_f64();
    let r = match result {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::Timing => {
            if let Some(r) = e.report() {
                print_report(&a, &design, &b, &dir, r, total, &source)?;
            }
            return Err(e.into());
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("building {source} for {}", b.file.name))
            )
        }
    };
    print_report(&a, &design, &b, &dir, &r, total, &source)
}

fn print_report(
    a: &Args,
    design: &bql_hdl_gen::Design,
    b: &board::Board,
    dir: &std::path::Path,
    r: &BuildReport,
    total: f64,
    source: &str,
) -> Result<()> {
    let stat = std::fs::read_to_string(dir.join("yosys-stat.txt")).unwrap_or_default();
    let def = b.file.family.def();
    let luts = report::yosys_lut_sites(&stat, b.file.family);
    let ff_cells = def.ff_cells;
    let ffs: u64 = ff_cells.iter().map(|c| report::yosys_cells(&stat, c)).sum();
    let est = &design.plan.estimate;
    let lut_error = if luts > 0 {
        (est.lut as f64 - luts as f64) / luts as f64
    } else {
        0.0
    };
    let cycles = design.plan.cycles_per_inference as f64;
    let run_mhz = r.fmax_mhz.min(r.target_mhz);
    let bars: Vec<crate::plot::LayerBar> = design
        .plan
        .layers
        .iter()
        .map(|l| {
            let e = bql_hdl_gen::plan::estimate_layer(l, &b.device);
            crate::plot::LayerBar {
                name: format!("layer {} ({}x{})", l.index, l.pe, l.simd),
                lut: e.lut,
                ff: e.ff,
                cycles: l.cycles(),
            }
        })
        .collect();
    let svg_path = dir.join("report.svg");
    let footer = format!(
        "{}: Fmax {:.1} MHz (target {:.1}); {} LUT4 sites / {} FF after synthesis; {:.0} inferences/s",
        r.board,
        r.fmax_mhz,
        r.target_mhz,
        luts,
        ffs,
        run_mhz * 1e6 / cycles
    );
    std::fs::write(
        &svg_path,
        crate::plot::svg(
            &format!("{source} on {} ({})", b.file.name, r.device),
            &bars,
            design.plan.cycles_per_inference,
            &footer,
        ),
    )
    .with_context(|| format!("writing {}", svg_path.display()))?;
    if a.json {
        // Short names first (lut: logic cells on iCE40, LUT4 on ECP5), then nextpnr's own.
        let short = [
            ("lut", &["ICESTORM_LC", "TRELLIS_COMB"][..]),
            ("ff", &["TRELLIS_FF"][..]),
            ("bram", &["ICESTORM_RAM", "DP16KD"][..]),
            ("spram", &["ICESTORM_SPRAM"][..]),
            ("dsp", &["ICESTORM_DSP", "MULT18X18D"][..]),
            ("io", &["SB_IO", "TRELLIS_IO"][..]),
        ];
        let mut util = serde_json::Map::new();
        for (name, cells) in short {
            if let Some(v) = cells.iter().find_map(|c| r.util.get(c)) {
                util.insert(name.into(), serde_json::json!(v));
            }
        }
        for (k, v) in &r.util.0 {
            util.insert(k.clone(), serde_json::json!(v));
        }
        println!(
            "{}",
            serde_json::json!({
                "board": r.board, "device": r.device, "bitstream": r.bitstream,
                "fmax_mhz": r.fmax_mhz, "target_mhz": r.target_mhz, "util": util,
                "yosys": {"lut4": luts, "ff": ffs},
                "estimate": {"lut": est.lut, "ff": est.ff, "bram_blocks": est.bram_blocks,
                             "spram_blocks": est.spram_blocks, "lut_error": lut_error},
                "cycles_per_inference": cycles,
                "inferences_per_s": run_mhz * 1e6 / cycles,
                "seconds": r.seconds, "total_seconds": total, "cached": r.cached,
                "plot": svg_path,
            })
        );
        return Ok(());
    }
    println!(
        "{source} on {} ({}), build folder {}",
        b.file.name,
        r.device,
        dir.display()
    );
    println!("  {:<24} {:>8} {:>8} {:>6}", "resource", "used", "of", "%");
    for (name, [u, av]) in r.util.summary() {
        println!(
            "  {:<24} {:>8} {:>8} {:>5.1}%",
            name,
            u,
            av,
            100.0 * u as f64 / av.max(1) as f64
        );
    }
    println!(
        "  yosys: {luts} LUT4 sites (a CCU2C fills two), {ffs} FF; planner estimate {} LUT4 ({:+.1} %), {} FF",
        est.lut,
        100.0 * lut_error,
        est.ff
    );
    println!(
        "  Fmax {:.1} MHz, target {:.1} MHz ({}): {}",
        r.fmax_mhz,
        r.target_mhz,
        match design.pll {
            Some(_) => format!("PLL from the {} MHz board clock", b.file.clock_mhz),
            None => "the board clock; --clock MHZ adds a PLL".to_string(),
        },
        if r.fmax_mhz >= r.target_mhz {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  {cycles:.0} cycles per inference: {:.0} inferences/s at {run_mhz:.1} MHz",
        run_mhz * 1e6 / cycles
    );
    println!("  plot: {}", svg_path.display());
    let steps: Vec<String> = r
        .seconds
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    println!(
        "  {} in {total:.1} s ({}){}",
        match &r.bitstream {
            Some(p) => format!("bitstream {}", p.display()),
            None => "no bitstream".into(),
        },
        steps.join(", "),
        if r.cached {
            ", reused from the cache"
        } else {
            ""
        }
    );
    Ok(())
}
