# README command 1: `make install` (then `make lunarlander` runs the main job)
# README command 2: `make test` (installs first if needed; .ci/run calls it)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps test lint format lunarlander bench clean

install: system-deps $(STAMP)

# EGL and OSMesa for headless MuJoCo videos (apt-get; skipped when present, a note when not root)
system-deps:
	@bash .ci/system-deps.sh

# The CPU build of torch goes in first and alone: any later requirement on torch is
# then already satisfied, so pip never downloads a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,all]"
	touch $(STAMP)

test: install
	$(BIN)/ruff check rltool tests benchmarks
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check rltool tests benchmarks
	$(BIN)/ruff format --check rltool tests benchmarks

format: install
	$(BIN)/ruff format rltool tests benchmarks
	$(BIN)/ruff check --fix rltool tests benchmarks

lunarlander: install
	$(BIN)/rltool train configs/lunarlander.yaml

bench: install
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/threads.py
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) .pytest_cache
