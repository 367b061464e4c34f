//! Applies the build's netlist changes ([`bql_toolchain::netlist::prepare`]) to a yosys JSON
//! netlist, for measuring designs outside a build (`scripts/lanes.sh` packs them with
//! nextpnr-ecp5): `prepare_netlist IN.json OUT.json`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: prepare_netlist IN.json OUT.json");
        return ExitCode::from(2);
    };
    let run = || -> Result<bql_toolchain::netlist::Changes, String> {
        let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
        let mut v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{input}: {e}"))?;
        let changes = bql_toolchain::netlist::prepare(&mut v)?;
        std::fs::write(output, v.to_string()).map_err(|e| format!("{output}: {e}"))?;
        Ok(changes)
    };
    match run() {
        Ok(c) => {
            eprintln!(
                "{} carry-ins, {} carry-outs disconnected; {} flip-flops into block RAM output \
                 registers",
                c.freed.carry_ins, c.freed.carry_outs, c.output_registers
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prepare_netlist: {e}");
            ExitCode::FAILURE
        }
    }
}
