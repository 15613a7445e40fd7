# Quick start: `make demo` and `make test` set up a virtual environment on first use.
# On a CPU-only machine torch is installed as the CPU build (TORCH_SPEC); for a GPU,
# run e.g. `make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124" test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0 triton==3.7.1
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

test: $(STAMP)
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n 2

test-all: $(STAMP)
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n 2 -m ""

demo: $(STAMP)
	$(PY) examples/demo.py
	$(PY) examples/dna_demo.py

clean:
	rm -rf $(VENV) build *.egg-info
