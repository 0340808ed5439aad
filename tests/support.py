"""What every op's tests share: the backends to run, output poisoning, tolerances."""

import contextlib

import pytest
import torch

from pyimg import _backend

# (backend, device) pairs every op is tested on; each skips with the reason it can't run.
BACKEND_DEVICES = [("cpu", "cpu"), ("triton", "cpu"), ("cuda", "cuda"), ("triton", "cuda")]


def backend_params():
    params = []
    for backend, device in BACKEND_DEVICES:
        marks = [pytest.mark.cuda] if device == "cuda" else []
        if device == "cuda" and not torch.cuda.is_available():
            marks.append(pytest.mark.skip(reason="no CUDA device"))
        else:
            reason = _backend.unavailable(backend, torch.device(device))
            if reason is not None:
                marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param((backend, device), id=f"{backend}-{device}", marks=marks))
    return params


def backend_op(backend: str, op: str):
    """torch.ops.pyimg.<op> as the backend runs it: the _triton op for triton."""
    suffix = "_triton" if backend == "triton" else ""
    return getattr(torch.ops.pyimg, op + suffix).default


@contextlib.contextmanager
def poisoned_outputs():
    """Fresh allocations come filled with NaN, so an output element a kernel forgets to
    write fails the comparison instead of passing on leftover memory."""
    fill = torch.utils.deterministic.fill_uninitialized_memory
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill


# For values computed in one rounding from exact-ish fp32/fp64 arithmetic.
TOLERANCE = {
    torch.float64: {"atol": 1e-12, "rtol": 1e-10},
    torch.float32: {"atol": 1e-6, "rtol": 1e-5},
    torch.float16: {"atol": 1e-3, "rtol": 1e-3},
    torch.bfloat16: {"atol": 8e-3, "rtol": 8e-3},
}
LOW_PRECISION = (torch.float16, torch.bfloat16)


def assert_lowp_close(actual, stock_lowp, reference_fp32):
    """The flash-attention rule for fp16/bf16: the kernel's error against an fp32 reference is
    at most twice stock PyTorch's own error at that precision (plus one ulp of slack)."""
    ours = (actual.float() - reference_fp32).abs().max().item()
    stock = (stock_lowp.float() - reference_fp32).abs().max().item()
    ulp = torch.finfo(actual.dtype).eps * reference_fp32.abs().max().item()
    assert ours <= 2 * stock + ulp, f"error {ours:.3g} vs stock {stock:.3g} (ulp {ulp:.3g})"


def layouts(x: torch.Tensor):
    """x as NCHW-contiguous, channels_last, and a non-contiguous view with the same values."""
    yield "contiguous", x.contiguous()
    if x.dim() == 4:
        yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    padded = torch.empty(*x.shape[:-1], x.shape[-1] * 2 + 1, dtype=x.dtype, device=x.device)
    view = padded[..., 1::2]
    view.copy_(x)
    yield "strided", view


def step_each(models_and_optimizers, x: torch.Tensor, grad: torch.Tensor):
    """One optimizer step of each (model, optimizer) on a copy of x, back-propagating grad; the
    outputs and, per model, the gradients of its input and then of its parameters."""
    outputs, grads = [], []
    for model, opt in models_and_optimizers:
        opt.zero_grad()
        xi = x.clone().requires_grad_()
        y = model(xi)
        y.backward(grad)
        outputs.append(y)
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
        opt.step()
    return outputs, grads
