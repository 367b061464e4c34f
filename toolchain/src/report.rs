//! Reading nextpnr's JSON report (`--report`): utilization per cell type and achieved Fmax per
//! clock.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind};

/// Used and available cells per nextpnr cell type (`ICESTORM_LC`, `ICESTORM_RAM`,
/// `ICESTORM_SPRAM`, `SB_IO`, `TRELLIS_COMB`, `TRELLIS_FF`, `DP16KD`, `TRELLIS_IO`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Utilization(pub BTreeMap<String, [u64; 2]>);

impl Utilization {
    /// `[used, available]` of a cell type.
    pub fn get(&self, cell: &str) -> Option<[u64; 2]> {
        self.0.get(cell).copied()
    }

    /// The summary a person reads: logic, flip-flops, block RAM, SPRAM, DSP, IO, as
    /// `(name, [used, available])`, for the cell types the device has.
    pub fn summary(&self) -> Vec<(&'static str, [u64; 2])> {
        let rows: [(&str, &[&str]); 8] = [
            ("logic cells (LUT4+FF)", &["ICESTORM_LC"]),
            ("LUT4", &["TRELLIS_COMB"]),
            ("FF", &["TRELLIS_FF"]),
            ("block RAM", &["ICESTORM_RAM", "DP16KD"]),
            ("SPRAM", &["ICESTORM_SPRAM"]),
            ("DSP", &["ICESTORM_DSP", "MULT18X18D"]),
            ("IO", &["SB_IO", "TRELLIS_IO"]),
            ("PLL", &["ICESTORM_PLL", "EHXPLLL"]),
        ];
        rows.iter()
            .filter_map(|(name, cells)| cells.iter().find_map(|c| self.get(c)).map(|v| (*name, v)))
            .collect()
    }

    /// The resources used beyond what the device has: `(cell, used, available)`.
    pub fn overfull(&self) -> Vec<(String, u64, u64)> {
        self.0
            .iter()
            .filter(|(_, [u, a])| u > a)
            .map(|(c, [u, a])| (c.clone(), *u, *a))
            .collect()
    }
}

/// Achieved and wanted frequency of one clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fmax {
    /// nextpnr's clock net name.
    pub clock: String,
    /// Achieved, MHz.
    pub achieved_mhz: f64,
    /// Constraint, MHz.
    pub constraint_mhz: f64,
}

/// Parses a nextpnr `--report` file.
pub fn parse_nextpnr_report(text: &str) -> Result<(Utilization, Vec<Fmax>), Error> {
    let bad = |m: String| Error::new(ErrorKind::BadReport, m);
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("nextpnr report is not JSON: {e}")))?;
    let util = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .ok_or_else(|| bad("nextpnr report has no utilization".into()))?;
    let mut out = BTreeMap::new();
    for (cell, x) in util {
        let used = x.get("used").and_then(|n| n.as_u64());
        let avail = x.get("available").and_then(|n| n.as_u64());
        if let (Some(u), Some(a)) = (used, avail) {
            out.insert(cell.clone(), [u, a]);
        }
    }
    let mut fmax = Vec::new();
    if let Some(f) = v.get("fmax").and_then(|f| f.as_object()) {
        for (clock, x) in f {
            let a = x.get("achieved").and_then(|n| n.as_f64());
            let c = x.get("constraint").and_then(|n| n.as_f64());
            if let (Some(a), Some(c)) = (a, c) {
                fmax.push(Fmax {
                    clock: clock.clone(),
                    achieved_mhz: a,
                    constraint_mhz: c,
                });
            }
        }
    }
    Ok((Utilization(out), fmax))
}

/// The count of `cell` in a yosys `stat` report (the design total: the last occurrence).
pub fn yosys_cells(stat: &str, cell: &str) -> u64 {
    stat.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(cell))
                .then(|| w.next()?.parse::<u64>().ok())
                .flatten()
        })
        .next_back()
        .unwrap_or(0)
}

/// The LUT sites of a yosys `stat` report on `family` (each of the family's LUT cells times the
/// sites it fills: an ECP5 CCU2C two).
pub fn yosys_lut_sites(stat: &str, family: bql_hdl_gen::board::Family) -> u64 {
    family
        .def()
        .lut_cells
        .iter()
        .map(|(cell, sites)| sites * yosys_cells(stat, cell))
        .sum()
}

/// The "Device utilisation" table nextpnr prints in its log (`NAME: used/ available pct%`),
/// for runs that stop before writing a report.
pub fn parse_utilisation_log(log: &str) -> Utilization {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let l = line.trim_start_matches("Info:").trim();
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let Some((used, rest)) = rest.split_once('/') else {
            continue;
        };
        let avail = rest.split_whitespace().next();
        if let (Ok(u), Some(Ok(a))) = (used.trim().parse::<u64>(), avail.map(str::parse::<u64>)) {
            if !name.contains(' ') && !name.is_empty() {
                out.insert(name.to_string(), [u, a]);
            }
        }
    }
    Utilization(out)
}
