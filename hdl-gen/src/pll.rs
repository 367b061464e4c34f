//! PLL parameters, computed from the families' documented ranges rather than guessed.
//!
//! iCE40 `SB_PLL40_*` in SIMPLE feedback (Lattice TN1251, "iCE40 sysCLOCK PLL Design and Usage
//! Guide"): `f_pfd = f_in / (DIVR + 1)` in 10..=133 MHz, `f_vco = f_pfd * (DIVF + 1)` in
//! 533..=1066 MHz, `f_out = f_vco / 2^DIVQ` in 16..=275 MHz, DIVR 0..=15, DIVF 0..=127, DIVQ
//! 1..=6; FILTER_RANGE follows `f_pfd`.
//!
//! ECP5 `EHXPLLL` with CLKOP fed back (Lattice TN1263, "ECP5 and ECP5-5G sysCLOCK PLL/DLL Design
//! and Usage Guide"): `f_pfd = f_in / CLKI_DIV` in 3.125..=400 MHz, `f_out = f_pfd * CLKFB_DIV`,
//! `f_vco = f_out * CLKOP_DIV` in 400..=800 MHz, `f_out` in 3.125..=400 MHz; CLKI_DIV and
//! CLKOP_DIV 1..=128, CLKFB_DIV 1..=80.
//!
//! Both searches return the highest output frequency that does not exceed the request (a design
//! is timed for the frequency it asked for, so rounding up could break timing).

use serde::Serialize;

/// iCE40 PLL settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ice40Pll {
    /// Reference divider (DIVR).
    pub divr: u8,
    /// Feedback divider (DIVF).
    pub divf: u8,
    /// Output divider, a power of two (DIVQ).
    pub divq: u8,
    /// Loop filter range for the phase detector frequency.
    pub filter_range: u8,
    /// Resulting output frequency, MHz.
    pub out_mhz: f64,
}

/// ECP5 PLL settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ecp5Pll {
    /// Input divider (CLKI_DIV).
    pub clki_div: u8,
    /// Feedback divider (CLKFB_DIV).
    pub clkfb_div: u8,
    /// Output divider (CLKOP_DIV).
    pub clkop_div: u8,
    /// Resulting output frequency, MHz.
    pub out_mhz: f64,
}

/// Keeps the candidate with the highest frequency not above `target` (ties: the first found).
fn better(best: Option<f64>, f: f64, target: f64) -> bool {
    f <= target + 1e-9 && best.is_none_or(|b| f > b + 1e-9)
}

/// The iCE40 settings for the highest output frequency `<= target_mhz` from `in_mhz`.
pub fn ice40(in_mhz: f64, target_mhz: f64) -> Option<Ice40Pll> {
    let mut best: Option<Ice40Pll> = None;
    for divr in 0..=15u8 {
        let pfd = in_mhz / f64::from(divr + 1);
        if !(10.0..=133.0).contains(&pfd) {
            continue;
        }
        for divf in 0..=127u8 {
            let vco = pfd * f64::from(divf as u16 + 1);
            if !(533.0..=1066.0).contains(&vco) {
                continue;
            }
            for divq in 1..=6u8 {
                let out = vco / f64::from(1u16 << divq);
                if !(16.0..=275.0).contains(&out) {
                    continue;
                }
                if better(best.map(|b| b.out_mhz), out, target_mhz) {
                    let filter_range = match pfd {
                        p if p < 17.0 => 1,
                        p if p < 26.0 => 2,
                        p if p < 44.0 => 3,
                        p if p < 66.0 => 4,
                        p if p < 101.0 => 5,
                        _ => 6,
                    };
                    best = Some(Ice40Pll {
                        divr,
                        divf,
                        divq,
                        filter_range,
                        out_mhz: out,
                    });
                }
            }
        }
    }
    best
}

/// The ECP5 settings for the highest output frequency `<= target_mhz` from `in_mhz`.
pub fn ecp5(in_mhz: f64, target_mhz: f64) -> Option<Ecp5Pll> {
    let mut best: Option<Ecp5Pll> = None;
    for clki_div in 1..=128u8 {
        let pfd = in_mhz / f64::from(clki_div);
        if !(3.125..=400.0).contains(&pfd) {
            continue;
        }
        for clkfb_div in 1..=80u8 {
            let out = pfd * f64::from(clkfb_div);
            if !(3.125..=400.0).contains(&out) {
                continue;
            }
            for clkop_div in 1..=128u8 {
                let vco = out * f64::from(clkop_div);
                if !(400.0..=800.0).contains(&vco) {
                    continue;
                }
                if better(best.map(|b| b.out_mhz), out, target_mhz) {
                    best = Some(Ecp5Pll {
                        clki_div,
                        clkfb_div,
                        clkop_div,
                        out_mhz: out,
                    });
                }
                break; // any valid CLKOP_DIV gives the same output frequency
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice40_settings_stay_in_range_and_hit_exact_multiples() {
        // 12 MHz -> 24 MHz: f_pfd 12, f_vco 12 * 64 = 768, / 2^5 = 24.
        let p = ice40(12.0, 24.0).unwrap();
        assert_eq!((p.divr, p.divf, p.divq, p.filter_range), (0, 63, 5, 1));
        assert_eq!(p.out_mhz, 24.0);
        for target in [17.0, 30.0, 48.0, 50.5, 100.0, 275.0] {
            let p = ice40(12.0, target).unwrap();
            let pfd = 12.0 / f64::from(p.divr + 1);
            let vco = pfd * f64::from(p.divf as u16 + 1);
            assert!((10.0..=133.0).contains(&pfd) && (533.0..=1066.0).contains(&vco));
            assert!(
                p.out_mhz <= target && p.out_mhz >= 0.97 * target,
                "{target}: {p:?}"
            );
        }
        assert_eq!(ice40(12.0, 15.0), None, "below the PLL's 16 MHz");
    }

    #[test]
    fn ecp5_settings_stay_in_range() {
        let p = ecp5(25.0, 50.0).unwrap();
        assert_eq!(p.out_mhz, 50.0);
        for target in [10.0, 48.0, 100.0, 125.0, 133.3, 400.0] {
            let p = ecp5(25.0, target).unwrap();
            let vco = p.out_mhz * f64::from(p.clkop_div);
            assert!((400.0..=800.0).contains(&vco), "{target}: {p:?}");
            assert!(
                p.out_mhz <= target && p.out_mhz >= 0.95 * target,
                "{target}: {p:?}"
            );
        }
    }
}
