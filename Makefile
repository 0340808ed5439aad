# pyimg developer entry points. Each sets up .venv on first use.
#   make upscale the main job: the packaged sample clip upscaled by ESPCN x2 (CPU without a
#                GPU), its fps and PSNR against the truth beside bicubic's
#   make test    build the extension and run the test suite (CI's; long tests deselected)
#   make test-slow  the long tests alone: fuzz long profile, real trainings, full-size sweeps
#   make bench   pixel-shuffle benchmark against stock PyTorch
#   make lint    ruff

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# A minimal CUDA toolkit's nvcc may be a wrapper script, from which torch guesses a wrong
# CUDA_HOME; name the toolkit folder when it is in the usual place.
export CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda))

.PHONY: env build test test-slow bench lint upscale

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

build: env
	$(PY) setup.py -q build_ext --inplace

test: build
	PYIMG_REQUIRE_EXTENSION=1 $(PY) -m pytest tests -q -m "not slow"

test-slow: build
	PYIMG_REQUIRE_EXTENSION=1 $(PY) -m pytest tests -q -m slow

bench: build
	$(PY) benchmarks/bench_pixel_shuffle.py

upscale: build
	mkdir -p build
	$(PY) -m pyimg upscale --sample build/sample_x2_espcn-x2.mp4 --model espcn-x2

lint: env
	$(VENV)/bin/ruff check .
