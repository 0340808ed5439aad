"""Test-session setup: Triton's interpreter when there is no GPU, and a hard failure when
the compiled extension is required (CI sets PYIMG_REQUIRE_EXTENSION=1) but did not load."""

import os

import torch

if not torch.cuda.is_available():
    # Must precede the first import of triton: @triton.jit reads it at decoration time.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pyimg
from pyimg import _extension


def pytest_sessionstart(session):
    if os.environ.get("PYIMG_REQUIRE_EXTENSION") == "1" and not _extension.loaded():
        raise RuntimeError(f"PYIMG_REQUIRE_EXTENSION=1 but pyimg._C: {_extension.LOAD_ERROR}")


def pytest_report_header(config):
    return [f"pyimg build: {pyimg.build_info}", f"pyimg backends: {pyimg.backends()}"]
