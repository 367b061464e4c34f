#!/usr/bin/env bash
# Logic per XNOR-popcount lane on iCE40 and ECP5, side by side in one run with the same yosys.
#
# Per lane: P processing elements of 64 lanes, each a popcount and a 16-bit accumulator, are
# synthesized (yosys synth_ice40 / synth_ecp5) with 16 and with 32 PEs; the figure is the slope
# (cells at 32 PEs - cells at 16 PEs) / (16 * 64 lanes). The popcount is bql's generated module
# (`adders`, the iCE40 default, or `carry-cells`, the ECP5 default) or the behavioural baseline,
# written the obvious way (`c = c + (x[i] ^ w[i])` in a loop). Then the same slope for a whole
# generated MVTU (layer 1 of the default model, 256 -> 256, with its memories, thresholds and
# control; at 32 PEs its 32-word weight memory goes to LUT RAM, which that slope includes).
# ECP5 cells: LUT4 and CCU2C; a CCU2C fills two LUT4 sites of a slice, so "LUT sites" counts
# LUT4 + 2 x CCU2C (what nextpnr reports as TRELLIS_COMB). iCE40: SB_LUT4 (an SB_CARRY rides in
# the logic cell of a LUT).
# Usage: scripts/lanes.sh [yosys]   (`make lanes`)
set -euo pipefail
yosys=${1:-${YOSYS:-yosys}}
bql=target/release/bql
out=build/lanes
mkdir -p "$out"

# synth FAMILY DIR TOP FILES... -> "LUT4 CARRY" cell counts
synth() {
  local fam=$1 dir=$2 top=$3
  shift 3
  (cd "$dir" && "$yosys" -q -l "synth-$fam-$top.log" -p \
    "read_verilog $*; synth_$fam -top $top; stat" > /dev/null)
  awk -v fam="$fam" '
    fam == "ice40" && /SB_LUT4/ {l = $2} fam == "ice40" && /SB_CARRY/ {c = $2}
    fam == "ecp5" && /^ +LUT4 / {l = $2} fam == "ecp5" && /CCU2C/ {c = $2}
    END {print (l ? l : 0), (c ? c : 0)}' "$dir/synth-$fam-$top.log"
}

# design KIND PES -> the folder of the default model generated with layer 1 at P x 64. The other
# layers are pinned so that layer 1's module (its input mode and output, and so the slope) does
# not move with what the planner picks for them: with these folds layer 1 takes its input in a
# register and is overlapped, as at full speed (plan.json).
design() {
  local dir="$out/$1-p$2"
  if [ ! -f "$dir/rtl/layer1_mvtu.v" ]; then
    "$bql" gen --board ulx3s --ignore-link --popcount "$1" --fold "1:$2:64" \
      --fold 0:16:264 --fold 2:8:32 --fold 3:1:32 --out "$dir" > /dev/null
  fi
  echo "$dir"
}

# mvtu FAMILY KIND PES -> cell counts of the generated layer1_mvtu with its popcount module
mvtu() {
  local dir tree
  dir=$(design "$2" "$3")
  tree=$(cd "$dir/rtl" && ls popcount*_64.v)
  synth "$1" "$dir/rtl" layer1_mvtu layer1_mvtu.v "$tree"
}

# pes FAMILY KIND PES -> cell counts of P PEs (popcount + accumulator); KIND: baseline, adders
# or carry-cells
pes() {
  local fam=$1 kind=$2 p=$3 dir="$out/pes-$2-p$3" count files=pes.v
  mkdir -p "$dir"
  case $kind in
    baseline)
      count='integer i; reg [6:0] c;
    always @* begin c = 0; for (i = 0; i < 64; i = i + 1) c = c + (x[i] ^ w[64 * j + i]); end' ;;
    adders)
      cp "$(design adders 16)/rtl/popcount_64.v" "$dir/"
      files="pes.v popcount_64.v"
      count='wire [6:0] c; popcount_64 t (.clk(clk), .terms(x ^ w[64 * j +: 64]), .sum(c));' ;;
    carry-cells)
      cp "$(design carry-cells 16)/rtl/popcount_ccu2c_64.v" "$dir/"
      files="pes.v popcount_ccu2c_64.v"
      count='wire [6:0] c; popcount_ccu2c_64 t (.clk(clk), .x(x), .w(w[64 * j +: 64]), .sum(c));' ;;
  esac
  cat > "$dir/pes.v" <<VERILOG
module pes (input clk, input first, input [63:0] x, input [$((64 * p - 1)):0] w,
            output [$((16 * p - 1)):0] acc);
  genvar j;
  for (j = 0; j < $p; j = j + 1) begin : pe
    $count
    reg [15:0] a;
    always @(posedge clk) a <= (first ? 16'd0 : a) + {9'd0, c};
    assign acc[16 * j +: 16] = a;
  end
endmodule
VERILOG
  # shellcheck disable=SC2086
  synth "$fam" "$dir" pes $files
}

slope() { # "l16 c16" "l32 c32" carry_weight -> per-lane figures
  python3 - "$1" "$2" "$3" <<'PY'
import sys
(l16, c16), (l32, c32) = (map(int, a.split()) for a in sys.argv[1:3])
w = int(sys.argv[3])
lanes = 16 * 64
sites = ((l32 + w * c32) - (l16 + w * c16)) / lanes
print(f"{(l32 - l16) / lanes:.2f} LUT4 + {(c32 - c16) / lanes:.2f} carry cells"
      + (f" = {sites:.2f} LUT sites" if w else ""))
PY
}

row() { # label FAMILY WHAT KIND carry_weight
  local a b
  a=$("$3" "$2" "$4" 16)
  b=$("$3" "$2" "$4" 32)
  printf "  %-36s 16 PEs: %-11s 32 PEs: %-11s per lane: %s\n" "$1" "$a" "$b" "$(slope "$a" "$b" "$5")"
}

echo "iCE40 (synth_ice40; target <= 2.3 LUT4 per lane)"
row "PEs, bql adders (default)" ice40 pes adders 0
row "PEs, behavioural baseline" ice40 pes baseline 0
row "whole MVTU, adders" ice40 mvtu adders 0
echo "ECP5 (synth_ecp5; target <= 1.5 LUT4 per lane)"
row "PEs, bql carry-cells (default)" ecp5 pes carry-cells 2
row "PEs, bql adders" ecp5 pes adders 2
row "PEs, behavioural baseline" ecp5 pes baseline 2
row "whole MVTU, carry-cells" ecp5 mvtu carry-cells 2
row "whole MVTU, adders" ecp5 mvtu adders 2
