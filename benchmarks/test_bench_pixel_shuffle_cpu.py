"""pytest-benchmark cases for pixel_shuffle on the CPU: stock beside pyimg's cpu backend, with a
clone of the input as the roofline. Benchmarks, not timed assertions; outside tests/, so the
normal test run never collects them. Run with

    pytest benchmarks/ --benchmark-only
"""

import pytest
import torch
import torch.nn.functional as F

import pyimg
from pyimg import _backend

CASES = {"1x48x270x480-r4": ((1, 48, 270, 480), 4), "16x256x96x96-r2": ((16, 256, 96, 96), 2)}
_CPU_MISSING = _backend.unavailable("cpu", torch.device("cpu"))


def _pyimg_cpu(x, r):
    with pyimg.use_backend("cpu"):
        return pyimg.ops.pixel_shuffle(x, r)


PROVIDERS = {
    "clone": lambda x, r: x.clone(),
    "stock": F.pixel_shuffle,
    "pyimg-cpu": pytest.param(
        _pyimg_cpu, marks=pytest.mark.skipif(_CPU_MISSING is not None, reason=str(_CPU_MISSING))
    ),
}


@pytest.mark.parametrize("op", PROVIDERS.values(), ids=PROVIDERS.keys())
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "cl"])
def test_pixel_shuffle_fp32(benchmark, op, case, channels_last):
    shape, r = CASES[case]
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    benchmark.group = f"pixel_shuffle {case} fp32 {'CL' if channels_last else 'NCHW'}"
    with torch.no_grad():
        benchmark(op, x, r)
