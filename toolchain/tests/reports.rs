//! The report readers on the outputs of real runs (committed under tests/data): nextpnr-ice40
//! 0.4's report of a small design on the iCEBreaker, nextpnr-ecp5's (YoWASP) of the same design
//! on the ULX3S, and the log of a run that did not fit the UP5K.

use bql_toolchain::report::{parse_nextpnr_report, parse_utilisation_log};

fn data(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn ice40_report() {
    let (u, f) = parse_nextpnr_report(&data("ice40-report.json")).unwrap();
    let lc = u.get("ICESTORM_LC").unwrap();
    assert_eq!(lc[1], 5280);
    assert!(lc[0] > 0 && lc[0] < lc[1]);
    assert_eq!(u.get("ICESTORM_SPRAM").unwrap()[1], 4);
    assert_eq!(f.len(), 1);
    assert!(f[0].achieved_mhz > 12.0, "{f:?}");
    assert_eq!(f[0].constraint_mhz, 12.0);
    assert!(u.overfull().is_empty());
}

#[test]
fn ecp5_report() {
    let (u, f) = parse_nextpnr_report(&data("ecp5-report.json")).unwrap();
    assert_eq!(u.get("TRELLIS_COMB").unwrap()[1], 83640);
    assert_eq!(u.get("DP16KD").unwrap()[1], 208);
    assert!(f.iter().all(|x| x.constraint_mhz == 25.0), "{f:?}");
    let names: Vec<&str> = u.summary().iter().map(|x| x.0).collect();
    assert!(
        names.contains(&"LUT4") && names.contains(&"block RAM"),
        "{names:?}"
    );
}

#[test]
fn overfull_log() {
    let u = parse_utilisation_log(&data("ice40-overfull.log"));
    let over = u.overfull();
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!(over[0].0, "ICESTORM_LC");
    assert_eq!(over[0].2, 5280);
    assert!(over[0].1 > 5280);
    assert_eq!(u.get("ICESTORM_RAM").unwrap()[1], 30);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(parse_nextpnr_report("not json").is_err());
    assert!(parse_nextpnr_report("{}").is_err());
    assert!(parse_utilisation_log("Info: nothing\n").0.is_empty());
}
