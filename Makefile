# pyimg developer entry points. `make bench` and `make test` each set up .venv on first use.
#   make bench   the main job: pixel-shuffle benchmark against stock PyTorch (CPU without a GPU)
#   make test    build the extension and run the test suite
#   make lint    ruff

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# A minimal CUDA toolkit's nvcc may be a wrapper script, from which torch guesses a wrong
# CUDA_HOME; name the toolkit folder when it is in the usual place.
export CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda))

.PHONY: env build test bench lint

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

build: env
	$(PY) setup.py -q build_ext --inplace

test: build
	PYIMG_REQUIRE_EXTENSION=1 $(PY) -m pytest tests -q

bench: build
	$(PY) benchmarks/bench_pixel_shuffle.py

lint: env
	$(VENV)/bin/ruff check .
