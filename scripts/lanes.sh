#!/usr/bin/env bash
# LUT4 per XNOR-popcount lane on iCE40: synthesizes one binary layer's MVTU (layer 1 of the default
# model, 256 -> 256) with 16 and with 32 PEs of 64 lanes (yosys synth_ice40, module alone) and
# prints the slope: (LUT4 at 32 PEs - LUT4 at 16 PEs) / (16 * 64 lanes). The XNORs, adder trees,
# accumulators and comparators of the extra PEs are all in the slope; shared control is not.
# Usage: scripts/lanes.sh [yosys]   (`make lanes`)
set -euo pipefail
yosys=${1:-${YOSYS:-yosys}}
bql=target/release/bql
out=build/lanes
mkdir -p "$out"
count() { # PEs -> LUT4 count
  local p=$1 dir="$out/p$1"
  "$bql" gen --board ulx3s --ignore-link --fold "1:$p:64" --out "$dir" > /dev/null
  (cd "$dir/rtl" && "$yosys" -q -l ../yosys-lanes.log -p \
    "read_verilog layer1_mvtu.v popcount_64.v; synth_ice40 -top layer1_mvtu; stat" > /dev/null)
  awk '/SB_LUT4/ {n=$2} END {print n}' "$dir/yosys-lanes.log"
}
a=$(count 16); b=$(count 32)
python3 - "$a" "$b" <<'PY'
import sys
a, b = int(sys.argv[1]), int(sys.argv[2])
print(f"layer1_mvtu, 64 lanes per PE: 16 PEs {a} LUT4, 32 PEs {b} LUT4")
print(f"slope: {(b - a) / (16 * 64):.2f} LUT4 per lane (target <= 1.5)")
PY
