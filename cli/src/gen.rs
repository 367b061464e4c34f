//! `bql gen` and `bql boards`: Verilog for a model and a board.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bql_hdl_gen::board;

use crate::defaults;

pub use crate::args::DesignArgs as Args;

#[derive(clap::Args)]
pub struct BoardsArgs {
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// The folder of extra or overriding board files, from `BQL_BOARDS`.
fn boards_folder() -> Option<PathBuf> {
    std::env::var_os("BQL_BOARDS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Board `id`: from the `BQL_BOARDS` folder when it has one of that id, else the embedded one.
pub fn load_board(id: &str) -> Result<board::Board> {
    Ok(board::find(id, boards_folder().as_deref())?)
}

pub fn parse_fold(s: &str) -> Result<(usize, usize, usize)> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Option<Vec<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
    match nums.as_deref() {
        Some(&[l, p, s]) => Ok((l, p, s)),
        _ => bail!("--fold {s}: expected LAYER:P:S with three numbers, like 0:16:49"),
    }
}

/// A generated design with where it came from and where it goes.
pub struct Generated {
    /// Where the model came from, for messages.
    pub source: String,
    /// The board.
    pub b: board::Board,
    /// The design.
    pub design: bql_hdl_gen::Design,
    /// Output folder.
    pub out: PathBuf,
}

/// The link a `--link` value names (clap has checked it).
pub fn link_kind(name: &str) -> bql_hdl_gen::LinkKind {
    bql_hdl_gen::LinkKind::parse(name).unwrap_or_default()
}

/// The design `a` describes, and its output folder.
pub fn design(a: &Args) -> Result<Generated> {
    let (net, source) = defaults::load_model(a.model.as_deref())?;
    let b = load_board(&a.board)?;
    let folds = a
        .fold
        .iter()
        .map(|f| parse_fold(f))
        .collect::<Result<Vec<_>>>()?;
    let opts = bql_hdl_gen::Options {
        folds,
        dump_after: match a.dump_after.as_deref() {
            Some("plan") => Some(bql_hdl_gen::Pass::Plan),
            Some("lower") => Some(bql_hdl_gen::Pass::Lower),
            _ => None,
        },
        ignore_link: a.ignore_link,
        clock_mhz: a.clock,
        popcount: match a.popcount.as_deref() {
            Some("adders") => Some(bql_hdl_gen::blocks::tree::Popcount::Adders),
            Some(_) => Some(bql_hdl_gen::blocks::tree::Popcount::CarryCells),
            None => None,
        },
        link: link_kind(&a.link),
        ..Default::default()
    };
    let design = bql_hdl_gen::generate_with(&net, &b, &opts)
        .with_context(|| format!("generating {source} for {}", b.file.name))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| defaults::project_root().join("build").join(&a.board));
    Ok(Generated {
        source,
        b,
        design,
        out,
    })
}

pub fn run(a: Args) -> Result<()> {
    let Generated { b, design, out, .. } = design(&a)?;
    design.write(&out)?;
    let plan = &design.plan;
    if a.json {
        let layers: Vec<serde_json::Value> = plan
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({"name": l.mvtu_name(), "pe": l.pe, "simd": l.simd, "cycles": l.cycles()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "out_dir": out.display().to_string(),
                "board": b.file.id,
                "layers": layers,
                "cycles_per_inference": plan.cycles_per_inference,
                "ideal_cycles": plan.ideal_cycles,
                "estimate": plan.estimate,
                "logic_overfull": plan.logic_overfull,
                "arch_hash": format!("{:016x}", design.link.info.arch_hash),
                "digest": design.digest(),
            })
        );
    } else {
        print!(
            "{}",
            design
                .files
                .get("report.txt")
                .map(String::as_str)
                .unwrap_or("")
        );
        println!(
            "wrote {} files to {} (digest {})",
            design.files.len(),
            out.display(),
            design.digest()
        );
    }
    Ok(())
}

pub fn boards(a: BoardsArgs) -> Result<()> {
    let boards = board::all(boards_folder().as_deref())?;
    if a.json {
        let v: Vec<serde_json::Value> = boards
            .iter()
            .map(|b| {
                serde_json::json!({"id": b.file.id, "name": b.file.name, "family": b.file.family,
                    "device": b.file.device, "package": b.file.package, "clock_mhz": b.file.clock_mhz,
                    "luts": b.device.luts, "bram_blocks": b.device.bram_blocks, "source": b.source})
            })
            .collect();
        println!("{}", serde_json::json!({ "boards": v }));
        return Ok(());
    }
    println!(
        "{:<12} {:<28} {:<6} {:<10} {:>8} {:>7} {:>6}  from",
        "id", "board", "family", "device", "clock", "LUT4", "BRAM"
    );
    for b in boards {
        println!(
            "{:<12} {:<28} {:<6} {:<10} {:>5} MHz {:>7} {:>6}  {}",
            b.file.id,
            b.file.name,
            format!("{:?}", b.file.family).to_lowercase(),
            b.file.device,
            b.file.clock_mhz,
            b.device.luts,
            b.device.bram_blocks,
            b.source
        );
    }
    Ok(())
}
