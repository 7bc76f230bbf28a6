# Two commands matter: `make demo` and `make test`. Both create .venv and install first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck unit bench format clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: a plain requirement would pull a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,metaworld]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m metarl.demo --out demo_output

lint: install
	$(VENV)/bin/ruff check metarl tests benchmarks
	$(VENV)/bin/ruff format --check metarl tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: install
	$(PY) benchmarks/env_throughput.py

format: install
	$(VENV)/bin/ruff format metarl tests benchmarks
	$(VENV)/bin/ruff check --fix metarl tests benchmarks

clean:
	rm -rf $(VENV) demo_output .mypy_cache .ruff_cache .pytest_cache
