//! `bql sim`: the generated design in Verilator, cycle by cycle, every result compared with the
//! reference.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bql_hdl_gen::board;
use bql_model::dataset::Split;
use bql_model::reference::Engine;

use crate::args::ModelData;
use crate::defaults;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: ModelData,
    /// Board whose plan is simulated (see `bql boards`).
    #[arg(long, default_value = "icebreaker")]
    board: String,
    /// Load every memory through the run-time write port (not only SPRAM).
    #[arg(long)]
    load_all: bool,
    /// Fix a layer's folding, as for `bql gen`: LAYER:P:S (repeatable).
    #[arg(long = "fold", value_name = "L:P:S")]
    fold: Vec<String>,
    /// Simulate the plan for the device's full speed (as `bql gen --ignore-link`).
    #[arg(long)]
    ignore_link: bool,
    /// Serve the whole top level (UART included) on a pseudo-terminal instead: a host program
    /// (`bql run --port PATH`) talks to it as to a board. Runs until interrupted.
    #[arg(long)]
    serve: bool,
    /// With --serve: also make a symlink to the terminal here (UART), or the socket (SPI).
    /// Default: build/sim-uart, build/sim-spi.sock.
    #[arg(long, value_name = "PATH")]
    at: Option<PathBuf>,
    /// With --serve: clocks per UART bit (default: the board's real divisor).
    #[arg(long)]
    divisor: Option<usize>,
    /// With --serve: the link the simulated board exposes: `uart` (a pseudo-terminal) or `spi`
    /// (a Unix socket carrying SPI transactions, at the board's real SCK).
    #[arg(long, value_name = "LINK", default_value = "uart", value_parser = ["uart", "spi"])]
    link: String,
    /// Simulator: verilator, or icarus for a short second opinion on the same RTL (first 20
    /// images unless --limit).
    #[arg(long, value_enum, default_value_t = Simulator::Verilator)]
    simulator: Simulator,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Simulator {
    Verilator,
    Icarus,
}

/// What a batch simulation works on.
struct Prepared {
    net: bql_model::Network,
    source: String,
    data: bql_model::dataset::Dataset,
    data_dir: PathBuf,
    b: board::Board,
    design: bql_hdl_gen::Design,
    dir: PathBuf,
}

/// The model, the first `default_limit` test images (unless --limit), the board and its design,
/// written to `build/<prefix>-<board>`.
fn prepare(a: &Args, default_limit: usize, prefix: &str) -> Result<Prepared> {
    let (net, source) = defaults::load_model(a.common.model.as_deref())?;
    let limit = a.common.limit.or(Some(default_limit));
    let (data, data_dir) = defaults::load_split(a.common.dataset.as_deref(), Split::Test, limit)?;
    defaults::check_fits(&net, &data)?;
    let b = crate::gen::load_board(&a.board)?;
    let opts = bql_hdl_gen::Options {
        folds: a
            .fold
            .iter()
            .map(|f| crate::gen::parse_fold(f))
            .collect::<Result<Vec<_>>>()?,
        ignore_link: a.ignore_link,
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&net, &b, &opts)
        .with_context(|| format!("generating {source} for {}", b.file.name))?;
    let dir = defaults::project_root()
        .join("build")
        .join(format!("{prefix}-{}", a.board));
    design.write(&dir)?;
    Ok(Prepared {
        net,
        source,
        data,
        data_dir,
        b,
        design,
        dir,
    })
}

fn icarus(a: &Args) -> Result<()> {
    let Prepared {
        net,
        source,
        data,
        data_dir,
        b,
        design,
        dir,
    } = prepare(a, 20, "icarus")?;
    let tool = bql_sim::tools::iverilog()?;
    let writes = bql_sim::harness::config_writes(&net, &design.plan, a.load_all);
    eprintln!(
        "simulating {} images in Icarus Verilog ({} configuration writes first) ...",
        data.len(),
        writes.len()
    );
    let (results, seconds) = bql_sim::icarus::run(
        &tool,
        &design,
        &dir,
        &writes,
        &data.pixels,
        data.image_len(),
        net.classes(),
    )?;
    let engine = Engine::new(&net);
    let (scores, classes) = engine.scores_batch(&data.pixels);
    let k = net.classes();
    let mismatches = (0..data.len())
        .filter(|&i| results[i].1 != scores[i * k..(i + 1) * k] || results[i].0 != classes[i])
        .count();
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({"simulator": "icarus", "model": source, "board": b.file.id,
                "images": data.len(), "mismatches": mismatches, "vvp_seconds": seconds})
        );
    } else {
        println!(
            "{source} on {} in Icarus Verilog, {} images from {}: {mismatches} mismatches, \
             {seconds:.2} s in vvp",
            b.file.name,
            data.len(),
            data_dir.display()
        );
    }
    if mismatches > 0 {
        bail!(
            "{mismatches} of {} images differ from the reference",
            data.len()
        );
    }
    Ok(())
}

fn serve(a: &Args) -> Result<()> {
    let (net, source) = defaults::load_model(a.common.model.as_deref())?;
    let b = crate::gen::load_board(&a.board)?;
    let opts = bql_hdl_gen::Options {
        uart_divisor: a.divisor,
        link: crate::gen::link_kind(&a.link),
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&net, &b, &opts)
        .with_context(|| format!("generating {source} for {}", b.file.name))?;
    let root = defaults::project_root();
    let dir = crate::run::sim_board_dir(&a.board, design.link.link);
    design.write(&dir)?;
    let tool = bql_sim::tools::verilator(&root)?;
    eprintln!("building the board simulator in {} ...", dir.display());
    let at = a.at.clone().unwrap_or_else(|| {
        PathBuf::from(if a.link == "spi" {
            "build/sim-spi.sock"
        } else {
            "build/sim-uart"
        })
    });
    let link = if at.is_absolute() { at } else { root.join(at) };
    let mut sb = bql_sim::serve::SimBoard::start(&tool, &design, &dir, Some(&link))?;
    println!(
        "simulated {} serving on {} (link {}), {}",
        b.file.name,
        sb.path.display(),
        link.display(),
        crate::run::describe_link(sb.link)
    );
    println!(
        "design {} (architecture hash {:016x}); weights in block RAM come from {source}; SPRAM layers must be loaded by the host",
        design.digest(),
        design.link.info.arch_hash
    );
    let spi = if a.link == "spi" { " --link spi" } else { "" };
    println!(
        "try: bql run --port {}{spi} --board {}    (Ctrl-C stops the board)",
        link.display(),
        a.board
    );
    Ok(sb.wait()?)
}

pub fn run(a: Args) -> Result<()> {
    if a.serve {
        return serve(&a);
    }
    if a.simulator == Simulator::Icarus {
        return icarus(&a);
    }
    let Prepared {
        net,
        source,
        data,
        data_dir,
        b,
        design,
        dir,
    } = prepare(&a, 1000, "sim")?;
    let tool = bql_sim::tools::verilator(&defaults::project_root())?;
    let t = Instant::now();
    eprintln!(
        "building the Verilator model in {} ...",
        dir.join("verilator").display()
    );
    let built = bql_sim::verilator::build(&tool, &design, &dir, net.classes())?;
    let build_s = t.elapsed().as_secs_f64();
    if built.cached {
        eprintln!(
            "reused the cached build (same design digest {})",
            design.digest()
        );
    } else {
        eprintln!("built in {build_s:.1} s");
    }
    let writes = bql_sim::harness::config_writes(&net, &design.plan, a.load_all);
    let max_cycles = (design.plan.cycles_per_inference as u64 + 1000) * (data.len() as u64 + 10);
    eprintln!(
        "simulating {} images ({} configuration writes first) ...",
        data.len(),
        writes.len()
    );
    let job = bql_sim::verilator::Job {
        writes: &writes,
        pixels: &data.pixels,
        image_len: data.image_len(),
        max_cycles,
    };
    let batch = bql_sim::verilator::run(&built, job, &dir)?;
    let engine = Engine::new(&net);
    let (scores, classes) = engine.scores_batch(&data.pixels);
    let k = net.classes();
    let mismatches: Vec<usize> = (0..data.len())
        .filter(|&i| {
            batch.results[i].scores != scores[i * k..(i + 1) * k]
                || batch.results[i].class != classes[i]
        })
        .collect();
    let hw_classes: Vec<usize> = batch.results.iter().map(|r| r.class).collect();
    let accuracy = data.count_correct(&hw_classes) as f64 / data.len().max(1) as f64;
    let first = batch.results.first().map_or(0, |r| r.cycle);
    let n = batch.results.len();
    let interval = if n >= 2 {
        (batch.results[n - 1].cycle - batch.results[0].cycle) as f64 / (n - 1) as f64
    } else {
        first as f64
    };
    let mhz = b.file.target_mhz;
    let ips = mhz * 1e6 / interval;
    let mcps = batch.cycles as f64 / batch.seconds / 1e6;
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "model": source, "board": b.file.id, "dataset": data_dir.display().to_string(),
                "images": data.len(), "mismatches": mismatches.len(), "accuracy": accuracy,
                "first_latency_cycles": first, "interval_cycles": interval,
                "planned_interval_cycles": design.plan.cycles_per_inference,
                "ideal_cycles": design.plan.ideal_cycles, "clock_mhz": mhz,
                "design_clock_mhz": design.clock_mhz,
                "inferences_per_s": ips, "sim_cycles": batch.cycles, "sim_seconds": batch.seconds,
                "sim_mcycles_per_s": mcps, "build_seconds": build_s, "build_cached": built.cached,
            })
        );
    } else {
        println!(
            "{source} on {} ({}), {} images from {}",
            b.file.name,
            b.device.name,
            data.len(),
            data_dir.display()
        );
        println!(
            "  mismatches           {} (every score of every image compared with the reference)",
            mismatches.len()
        );
        println!("  accuracy             {:.2} %", 100.0 * accuracy);
        println!("  first-image latency  {first} cycles");
        println!(
            "  steady-state interval {interval:.1} cycles per image (planned {}, ideal {:.1})",
            design.plan.cycles_per_inference, design.plan.ideal_cycles
        );
        println!(
            "  at {} MHz            {:.0} inferences/s (the design clock; at the board's target \
             of {mhz} MHz through its PLL: {ips:.0})",
            design.clock_mhz,
            design.clock_mhz * 1e6 / interval
        );
        println!(
            "  simulator            {} cycles in {:.2} s: {mcps:.2} Mcycles/s",
            batch.cycles, batch.seconds
        );
    }
    if let Some(&i) = mismatches.first() {
        let n = data.image_len();
        eprintln!("localizing image {i} in a debug build (per-layer taps, VCD trace) ...");
        match bql_sim::localize::localize(
            &tool,
            &net,
            &design,
            &dir,
            &writes,
            &data.pixels[i * n..(i + 1) * n],
        ) {
            Ok(Some(f)) => eprintln!(
                "first difference: layer {} {}: hardware {}, reference {} (waveform: {})",
                f.layer,
                match f.position {
                    Some((y, x, c)) => format!("output pixel (row {y}, column {x}) channel {c}"),
                    None => format!("neuron {}", f.neuron),
                },
                f.hardware,
                f.reference,
                f.vcd.display()
            ),
            Ok(None) => eprintln!(
                "every layer's output agrees with the reference: the difference is in the \
                 argmax or the output port"
            ),
            Err(e) => eprintln!("could not localize: {e}"),
        }
        bail!(
            "{} of {} images differ from the reference; first: image {i}, hardware {:?} (class {}), \
             reference {:?} (class {})",
            mismatches.len(),
            data.len(),
            batch.results[i].scores,
            batch.results[i].class,
            &scores[i * k..(i + 1) * k],
            classes[i]
        );
    }
    Ok(())
}
