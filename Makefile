# Two commands matter: `make demo` and `make test`. Both create .venv and install first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# pytest-xdist workers (tests/conftest.py keeps the tests that start Ray on one of them)
PYTEST_WORKERS ?= auto

.PHONY: install demo test lint typecheck unit bench format clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: a plain requirement would pull a CUDA build of several GB.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,metaworld]"
	touch $(STAMP)

install: $(STAMP)

# Meta-trains RL2 on the point robot with the Ray sampler (2 workers), evaluates adaptation
# on the held-out goals against the random, multi-task and oracle baselines, and prints
# where the report and the plot are (about 2 minutes on 2 idle cores once installed; the
# first run installs first, about a minute and a half more).
demo: install
	$(VENV)/bin/metarl train configs/rl2_point_robot.yaml

lint: install
	$(VENV)/bin/ruff check metarl tests benchmarks examples
	$(VENV)/bin/ruff format --check metarl tests benchmarks examples

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: lint typecheck unit

bench: install
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/sampling_throughput.py
	$(PY) benchmarks/rl2_point_robot.py
	$(PY) benchmarks/adaptation.py configs/maml_trpo_point_robot.yaml configs/promp_point_robot.yaml

format: install
	$(VENV)/bin/ruff format metarl tests benchmarks examples
	$(VENV)/bin/ruff check --fix metarl tests benchmarks examples

clean:
	rm -rf $(VENV) demo_output runs .mypy_cache .ruff_cache .pytest_cache
