#!/usr/bin/env bash
# The CNN hardware figures (docs/hardware.md, the README's table), measured in one run:
#   1. models/mnist-cnn.bqm on the iCEBreaker: 1,000 MNIST images in Verilator, planned against
#      simulated cycles, and the bitstream (12 MHz, and 30 MHz through the PLL);
#   2. BNN-PYNQ's CNV-W1A1 (imported from ../shared) on the ULX3S at full device speed: the
#      1,000 CIFAR-10 images of ../shared in Verilator. Its ECP5 build is left out: routing it in
#      WebAssembly does not finish in an hour (see the efficiency issue); `CNV_BUILD=1` adds it.
# Each step's JSON goes to build/cnn-hardware/. Usage: scripts/cnn-hardware.sh  (`make cnn-report`)
set -uo pipefail
bql=target/release/bql
out=build/cnn-hardware
shared=${SHARED:-../shared}
mkdir -p "$out"
run() { # name, then the bql arguments
  local name=$1; shift
  echo "== bql $*" >&2
  "$bql" "$@" --json > "$out/$name.json" || echo "   ($name did not succeed)" >&2
}
mnist=mnist-slice
[ -f data/mnist/t10k-images-idx3-ubyte ] && mnist=mnist
run sim-mnist-cnn sim --model models/mnist-cnn.bqm --board icebreaker --dataset "$mnist" --limit 1000
run build-mnist-cnn build --model models/mnist-cnn.bqm --board icebreaker --out "$out/icebreaker"
run build-mnist-cnn-30 build --model models/mnist-cnn.bqm --board icebreaker --clock 30 \
  --out "$out/icebreaker-30"
cnv_params="$shared/third-party/bnn-pynq/bnn/params/cifar10/cnvW1A1"
cifar="$shared/data/cifar10-jpeg-test-1k"
if [ -d "$cnv_params" ] && [ -d "$cifar" ]; then
  run import-cnv import bnn-pynq "$cnv_params" --dataset "cifar10:$cifar" -o "$out/cnv.bqm"
  run sim-cnv sim --model "$out/cnv.bqm" --board ulx3s --ignore-link --dataset "cifar10:$cifar" \
    --limit 1000
  if [ "${CNV_BUILD:-0}" = 1 ]; then
    run build-cnv build --model "$out/cnv.bqm" --board ulx3s --ignore-link --out "$out/ulx3s-cnv"
  fi
else
  echo "== CNV skipped: $cnv_params or $cifar is absent (see the README for the files)" >&2
fi
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def j(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except Exception:
        return None
rows = []
for name, label in (("sim-mnist-cnn", "mnist-cnn, iCEBreaker plan"), ("sim-cnv", "CNV-W1A1, ULX3S full speed")):
    s = j(name)
    if s:
        rows.append((f"{label}: images / mismatches", f"{s['images']} / {s['mismatches']}"))
        ratio = s["interval_cycles"] / s["ideal_cycles"]
        rows.append((f"{label}: cycles simulated (planned, ideal)",
                     f"{s['interval_cycles']:.0f} ({s['planned_interval_cycles']}, {s['ideal_cycles']:.0f}: {ratio:.2f}x)"))
        mhz = s["design_clock_mhz"]
        rows.append((f"{label}: images/s at {mhz} MHz", f"{mhz * 1e6 / s['interval_cycles']:.0f}"))
for name, label in (("build-mnist-cnn", "mnist-cnn iCEBreaker 12 MHz"), ("build-mnist-cnn-30", "mnist-cnn iCEBreaker 30 MHz"), ("build-cnv", "CNV ULX3S")):
    b = j(name)
    if b:
        rows.append((f"{label}: Fmax / target", f"{b['fmax_mhz']:.1f} / {b['target_mhz']:.0f} MHz"))
        rows.append((f"{label}: logic", "%d of %d" % tuple(b["util"]["lut"])))
        rows.append((f"{label}: build time", f"{b['total_seconds']:.0f} s"))
w = max((len(a) for a, _ in rows), default=10)
for a, v in rows:
    print(f"  {a:<{w}}  {v}")
PY
