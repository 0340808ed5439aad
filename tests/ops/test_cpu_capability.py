"""PYIMG_CPU_CAPABILITY: each instruction set's copy of the CPU kernels against stock PyTorch.

The kernels are compiled for baseline x86-64, AVX2 and AVX-512 and the capability is chosen once
a process, so each capability the processor supports, other than the one this process runs
(which the rest of tests/ops covers), is checked in a subprocess running this file.
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import pyimg
from pyimg import _extension
from pyimg.ops.max_pool import max_unpool2d_reference, unpool_geometry

CAPABILITIES = ("default", "avx2", "avx512")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")


def _close(actual, expected, what, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def _layouts(x):
    yield "NCHW", x.contiguous()
    yield "CL", x.contiguous(memory_format=torch.channels_last)


def _grads(f, *inputs):
    inputs = [t.detach().requires_grad_() for t in inputs]
    y = f(*inputs)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(7)).to(y.dtype)
    return y, torch.autograd.grad(y, inputs, grad)


def check_pixel_shuffle(gen):
    x0 = torch.randn(2, 27, 5, 7, generator=gen)
    bias, weight = torch.randn(27, generator=gen), torch.rand(3, generator=gen)
    for layout, x in _layouts(x0):
        for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
            xd, bd, wd = x.to(dtype), bias.to(dtype), weight.to(dtype)

            def ours(a, b, w):
                return pyimg.ops.pixel_shuffle(a, 3, b, "prelu", w)

            def stock(a, b, w):
                return F.prelu(F.pixel_shuffle(a + b.view(-1, 1, 1), 3), w)

            y, grads = _grads(ours, xd, bd, wd)
            y_ref, grads_ref = _grads(stock, xd, bd, wd)
            what = f"pixel_shuffle {layout} {dtype}"
            _close(y, y_ref, what, tol, tol)
            _close(grads[0], grads_ref[0], what + " grad x", tol, tol)
        large = F.pixel_shuffle(x, 3)
        _close(pyimg.ops.pixel_unshuffle(large, 3), x, f"pixel_unshuffle {layout}")


def _check_pool(x, k, s, p, what):
    size = x.shape[-2:]
    y, idx = pyimg.ops.max_pool2d_with_indices(x, k, s, p)
    y_ref, idx_ref = F.max_pool2d(x, k, s, p, return_indices=True)
    _close(y, y_ref, what)
    assert torch.equal(idx, idx_ref), what + ": indices differ"
    _, taps = pyimg.ops.max_pool2d_with_indices(x, k, s, p, compact=True)
    out_ref = F.max_unpool2d(y_ref, idx_ref, k, s, p, output_size=size)
    # Overlapping windows may name one position twice: only the winner gets its gradient.
    g = unpool_geometry(y, idx_ref, k, s, p, size)
    _, (grad_ref,) = _grads(lambda v: max_unpool2d_reference(v, idx_ref, g), y)
    for name, indices in (("flat", idx), ("compact", taps)):
        out = pyimg.ops.max_unpool2d(y, indices, k, s, p, output_size=size)
        _close(out, out_ref, f"{what} unpool {name}")
        _, (grad,) = _grads(lambda v, i=indices: pyimg.ops.max_unpool2d(v, i, k, s, p, size), y)
        _close(grad, grad_ref, f"{what} unpool {name} backward")
    _, (grad,) = _grads(lambda v: pyimg.ops.max_pool2d_with_indices(v, k, s, p)[0], x)
    _, (grad_ref,) = _grads(lambda v: F.max_pool2d(v, k, s, p), x)
    _close(grad, grad_ref, what + " backward")


def check_max_pool(gen):
    x0 = torch.randn(2, 5, 9, 11, generator=gen)
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        for layout, x in _layouts(x0):
            _check_pool(x, k, s, p, f"max_pool k{k} s{s} p{p} {layout}")


def _check_bn(x, weight, bias, alpha, mean, var, training, what):
    def ours(a, w, b, al):
        return pyimg.ops.batch_norm_prelu(a, mean.clone(), var.clone(), w, b, al,
                                          training=training)

    def stock(a, w, b, al):
        return F.prelu(F.batch_norm(a, mean.clone(), var.clone(), w, b, training=training), al)

    y, grads = _grads(ours, x, weight, bias, alpha)
    y_ref, grads_ref = _grads(stock, x, weight, bias, alpha)
    _close(y, y_ref, what, 1e-4, 1e-4)
    for name, g, g_ref in zip(("x", "weight", "bias", "prelu"), grads, grads_ref, strict=True):
        _close(g, g_ref, f"{what} grad {name}", 1e-4, 1e-4)


def check_batch_norm(gen):
    x0 = torch.randn(3, 5, 7, 9, generator=gen) * 2 + 1
    weight, bias = torch.rand(5, generator=gen) + 0.5, torch.randn(5, generator=gen)
    alpha = torch.rand(5, generator=gen)
    mean, var = torch.randn(5, generator=gen), torch.rand(5, generator=gen) + 0.5
    for layout, x in _layouts(x0):
        for training in (False, True):
            _check_bn(x, weight, bias, alpha, mean, var, training,
                      f"batch_norm_prelu {layout} training={training}")


def check_depthwise(gen):
    x0 = torch.randn(2, 6, 11, 13, generator=gen)
    weight, bias = torch.randn(6, 1, 3, 3, generator=gen), torch.randn(6, generator=gen)
    for layout, x in _layouts(x0):
        y = torch.ops.pyimg.depthwise_conv2d(x, weight, bias, [1, 1], [2, 2, 2, 2], [2, 2], None,
                                             None, "relu", None, 0.01, None, False)
        y_ref = F.relu(F.conv2d(x, weight, bias, 1, 2, 2, groups=6))
        _close(y, y_ref, f"depthwise_conv2d {layout}", 1e-5, 1e-5)


def check_prelu_channels(gen):
    x0 = torch.randn(2, 19, 5, 7, generator=gen)
    weight = torch.rand(19, generator=gen)
    for layout, x in _layouts(x0):
        for dtype in (torch.float32, torch.bfloat16):
            y = x.to(dtype).clone()
            torch.ops.pyimg.prelu_channels_(y, weight)
            # The weight stays float32 for bf16 values: the product is rounded once.
            expected = F.prelu(x.to(dtype).float(), weight).to(dtype)
            assert torch.equal(y, expected), (
                f"prelu_channels_ {layout} {dtype}")


def check_kernels():
    gen = torch.Generator().manual_seed(0)
    for check in (check_pixel_shuffle, check_max_pool, check_batch_norm, check_depthwise,
                  check_prelu_channels):
        check(gen)


def _python(code_or_file, **env):
    """Runs a Python file or -c code with this checkout on the path and env's overrides (None
    removes a variable)."""
    environ = {**os.environ, "PYTHONPATH": ROOT, **env}
    environ = {k: v for k, v in environ.items() if v is not None}
    args = [code_or_file] if code_or_file.endswith(".py") else ["-c", code_or_file]
    return subprocess.run([sys.executable, *args], env=environ, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def _this_process():
    return torch.ops.pyimg.cpu_capability()


def _supported():
    """The capabilities this processor runs: up to the best, which a process picks unless
    PYIMG_CPU_CAPABILITY says otherwise."""
    best = _this_process() if "PYIMG_CPU_CAPABILITY" not in os.environ else None
    if best is None:
        result = _python("import pyimg, torch; print(torch.ops.pyimg.cpu_capability())",
                         PYIMG_CPU_CAPABILITY=None)
        best = result.stdout.split()[-1]
    return CAPABILITIES[: CAPABILITIES.index(best) + 1]


def test_this_process_reports_its_capability():
    assert _this_process() in CAPABILITIES


def test_kernels_match_stock_in_this_process():
    check_kernels()


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_forced_capability_matches_stock(capability):
    if capability not in _supported():
        pytest.skip(f"this processor does not support {capability}")
    if capability == _this_process():
        pytest.skip("this process runs it: the rest of tests/ops checks it")
    result = _python(os.path.abspath(__file__), PYIMG_CPU_CAPABILITY=capability,
                     PYIMG_BACKEND="cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-1] == capability


def test_unknown_capability_is_a_clear_error():
    result = _python("import pyimg, torch; torch.ops.pyimg.cpu_capability()",
                     PYIMG_CPU_CAPABILITY="sse9")
    assert result.returncode != 0
    assert "PYIMG_CPU_CAPABILITY must be one of default, avx2, avx512, but got 'sse9'" in (
        result.stderr)


if __name__ == "__main__":
    check_kernels()
    print(torch.ops.pyimg.cpu_capability())
