//! Applies the build's netlist change ([`bql_toolchain::netlist`]) to a yosys JSON netlist, for
//! measuring trees outside a build (`scripts/lanes.sh` packs them with nextpnr-ecp5):
//! `free_carries IN.json OUT.json`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: free_carries IN.json OUT.json");
        return ExitCode::from(2);
    };
    let run = || -> Result<bql_toolchain::netlist::Freed, String> {
        let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
        let mut v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{input}: {e}"))?;
        let freed = bql_toolchain::netlist::free_idle_carries(&mut v)?;
        std::fs::write(output, v.to_string()).map_err(|e| format!("{output}: {e}"))?;
        Ok(freed)
    };
    match run() {
        Ok(f) => {
            eprintln!(
                "{} carry-ins, {} carry-outs disconnected",
                f.carry_ins, f.carry_outs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("free_carries: {e}");
            ExitCode::FAILURE
        }
    }
}
