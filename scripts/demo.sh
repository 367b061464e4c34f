#!/usr/bin/env bash
# `make demo`: the whole path on the embedded default model, each step's JSON kept in build/demo/,
# then one summary table. Called by the Makefile after `make build mnist`.
set -uo pipefail
bql=target/release/bql
out=build/demo
mkdir -p "$out"
fail=0
step() { # name, then the bql arguments; JSON to $out/name.json, progress on stderr
  local name=$1; shift
  echo; echo "== bql $*"
  if "$bql" "$@" --json > "$out/$name.json"; then
    return 0
  else
    echo "   ($name did not succeed; see above)"; return 1
  fi
}
show() { python3 - "$@" <<'PY'
import json, sys
name, expr = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(f"build/demo/{name}.json"))
    print("   " + eval(expr, {}, {"d": d}))
except Exception as e:
    print(f"   ({name}: no result: {e})")
PY
}
step info info && show info '"model {} ({}), {} weight bits, {} MACs".format(d["model"], d["arch"], d["weight_bits"], d["macs"])'
step eval eval && show eval '"accuracy {:.2f} % on {} images ({}), {} disagreements with the float graph".format(100*d["accuracy"], d["images"], d["dataset"], d.get("float_disagreements"))'
step bench bench && show bench '"reference {:.0f} images/s vs f32 GEMM {:.0f}: {:.1f}x".format(d["images_per_s"], d["f32_images_per_s"], d["speedup_vs_f32"])'
# The binarized CNN (models/mnist-cnn.bqm, 8-bit first layer) next to the MLP, in software here
# and in hardware further down.
step info-cnn info --model models/mnist-cnn.bqm && show info-cnn '"model {} ({}), {} weight bits, {} MACs".format(d["model"], d["arch"], d["weight_bits"], d["macs"])'
step eval-cnn eval --model models/mnist-cnn.bqm && show eval-cnn '"accuracy {:.2f} % on {} images ({}), {} disagreements with the float graph".format(100*d["accuracy"], d["images"], d["dataset"], d.get("float_disagreements"))'
step bench-cnn bench --model models/mnist-cnn.bqm --limit 2000 && show bench-cnn '"reference {:.0f} images/s vs f32 im2col + GEMM {:.0f}: {:.1f}x, {:.1f} binary MACs/cycle/core ({} kernel)".format(d["images_per_s"], d["f32_images_per_s"], d["speedup_vs_f32"], d["macs_per_cycle_per_core"] or 0, d["kernel"])'
step gen gen --board icebreaker && cat build/icebreaker/report.txt
step sim sim --board icebreaker --limit 1000 || fail=1
show sim '"{} images, {} mismatches, {:.0f} cycles/inference, {:.2f} Mcycles/s in Verilator".format(d["images"], d["mismatches"], d["interval_cycles"], d["sim_mcycles_per_s"])'
step build build --board icebreaker || fail=1
show build '"iCEBreaker bitstream {}: Fmax {:.1f} MHz (target {:.0f}), logic cells {} of {}, {:.0f} s".format(d["bitstream"], d["fmax_mhz"], d["target_mhz"], d["util"]["lut"][0], d["util"]["lut"][1], d["total_seconds"])'
step run run --sim --board icebreaker --limit 100 || fail=1
show run '"{} images over the UART, {} mismatches, {:.0f} inferences/s, protocol efficiency {:.1f} %".format(d["images"], d["mismatches"], d["inferences_per_s"], 100*d["protocol_efficiency"])'
# The same over the iCEBreaker's SPI link (FTDI channel A, SCK 30 MHz) to the simulated board.
step run-spi run --sim --link spi --board icebreaker --limit 200 || fail=1
show run-spi '"{} images over SPI at SCK 30 MHz, {} mismatches, {:.0f} inferences/s simulated at 12 MHz (link bound {:.0f})".format(d["images"], d["mismatches"], d["simulated_inferences_per_s"] or 0, d["line_bits_per_s"] / 8 / 105)'
# The CNN in hardware: generated, simulated and built for the iCEBreaker.
cnn=(--model models/mnist-cnn.bqm --board icebreaker)
step gen-cnn gen "${cnn[@]}" --out build/icebreaker-cnn && cat build/icebreaker-cnn/report.txt
step sim-cnn sim "${cnn[@]}" --limit 200 || fail=1
show sim-cnn '"CNN: {} images, {} mismatches, {:.0f} cycles/inference (planned {}), {:.2f} Mcycles/s in Verilator".format(d["images"], d["mismatches"], d["interval_cycles"], d["planned_interval_cycles"], d["sim_mcycles_per_s"])'
step build-cnn build "${cnn[@]}" --out build/icebreaker-cnn || fail=1
show build-cnn '"CNN iCEBreaker bitstream {}: Fmax {:.1f} MHz (target {:.0f}), logic cells {} of {}, {:.0f} s".format(d["bitstream"], d["fmax_mhz"], d["target_mhz"], d["util"]["lut"][0], d["util"]["lut"][1], d["total_seconds"])'
# ECP5 in WebAssembly (nextpnr-ecp5 is not in Debian). The planner folds the design down to the
# rate at which the ULX3S's 1 Mbaud UART delivers images (`--ignore-link` fills the device).
step build-ecp5 build --board ulx3s || fail=1
show build-ecp5 '"ULX3S bitstream {}: Fmax {:.1f} MHz (target {:.0f}), LUT4 {} of {}, {:.0f} s".format(d["bitstream"], d["fmax_mhz"], d["target_mhz"], d["util"]["lut"][0], d["util"]["lut"][1], d["total_seconds"])'
python3 - <<'PY'
import json, os
def j(n):
    try: return json.load(open(f"build/demo/{n}.json"))
    except Exception: return None
rows = []
e, b, s, r, bu, be = j("eval"), j("bench"), j("sim"), j("run"), j("build"), j("build-ecp5")
rs = j("run-spi")
sc, bcn = j("sim-cnn"), j("build-cnn")
ec, bc = j("eval-cnn"), j("bench-cnn")
if e: rows.append(("MLP accuracy (reference, %d images)" % e["images"], "%.2f %%" % (100 * e["accuracy"])))
if b: rows.append(("MLP reference vs f32 GEMM", "%.1fx" % b["speedup_vs_f32"]))
if ec: rows.append(("CNN accuracy (reference, %d images)" % ec["images"], "%.2f %%" % (100 * ec["accuracy"])))
if bc: rows.append(("CNN reference vs f32 im2col + GEMM", "%.1fx" % bc["speedup_vs_f32"]))
if s:
    rows.append(("sim: images / mismatches", "%d / %d" % (s["images"], s["mismatches"])))
    rows.append(("sim: cycles per inference (planned)", "%.0f (%d)" % (s["interval_cycles"], s["planned_interval_cycles"])))
    rows.append(("sim: Verilator speed", "%.2f Mcycles/s" % s["sim_mcycles_per_s"]))
if r:
    rows.append(("run over UART: images / mismatches", "%d / %d" % (r["images"], r["mismatches"])))
    rows.append(("run: protocol efficiency", "%.1f %%" % (100 * r["protocol_efficiency"])))
    rows.append(("run: expected at %d baud" % r["baud"], "%.0f inferences/s (%s-bound)" % (r["expected_inferences_per_s"], r["bound"])))
if rs:
    rows.append(("run over SPI: images / mismatches", "%d / %d" % (rs["images"], rs["mismatches"])))
    rows.append(("run over SPI: simulated at 12 MHz", "%.0f inferences/s (%s-bound expected: %.0f)" % (rs["simulated_inferences_per_s"] or 0, rs["bound"], rs["expected_inferences_per_s"])))
if sc:
    rows.append(("CNN sim: images / mismatches", "%d / %d" % (sc["images"], sc["mismatches"])))
    rows.append(("CNN sim: cycles per inference (planned)", "%.0f (%d)" % (sc["interval_cycles"], sc["planned_interval_cycles"])))
for name, x in (("iCEBreaker", bu), ("iCEBreaker CNN", bcn), ("ULX3S", be)):
    if x:
        rows.append((name + " build: Fmax / target", "%.1f / %.0f MHz" % (x["fmax_mhz"], x["target_mhz"])))
        rows.append((name + " build: logic", "%d of %d" % tuple(x["util"]["lut"])))
        rows.append((name + " build: time", "%.0f s" % x["total_seconds"]))
print("\n== summary")
w = max(len(a) for a, _ in rows) if rows else 10
for a, v in rows:
    print(f"  {a:<{w}}  {v}")
PY
exit $fail
