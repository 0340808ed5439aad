"""Batch normalization (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift") fused with PReLU (He et al. 2015, "Delving Deep
into Rectifiers") or with a residual sum, for training and inference.

Three ops carry every backend (csrc/ops/batch_norm.h has the contract):

* ``batch_norm_stats(x) -> (mean, var)``: per-channel mean and biased variance, numerically
  stable (per-run two-pass moments combined with Chan et al.'s formula), deterministic.
* ``bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, training, relu)``: one
  elementwise pass, ``prelu(z) + residual`` with ``z = (x - mean) * invstd * weight + bias``
  (``relu(z)`` with ``relu``: a PReLU of slope 0 differs at a NaN z, where ReLU's gradient
  passes and PReLU's is its slope). Eval feeds it the running statistics, training the
  batch's.
* ``bn_prelu_backward``: one reduction pass (sums of dL/dz, dL/dz * xhat, dL/dy * min(z, 0))
  and one elementwise pass for grad_x, through the batch statistics when training.

Backends: ``cpu`` and ``cuda`` run ``torch.ops.pyimg.*`` (csrc/ops/), ``triton`` the
``*_triton`` ops (pyimg/triton/batch_norm.py), ``torch`` the stock-op reference. The per-channel
tensors the ops take and return are float64 for float64 inputs and float32 otherwise, so
float16/bfloat16 inputs keep float32 statistics as stock does. Running statistics are updated
with the formula of ATen's CPU batch norm: here with torch ops on C values, in the eager entry
by one C++ loop (csrc/ops/batch_norm_update.cpp), both to the same bits.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyimg import _backend
from pyimg._extension import eager
from pyimg._format import (
    accumulate_dtype,
    empty_like_format,
    in_dtype,
    output_memory_format,
    with_canonical_strides,
)
from pyimg.ops._common import check_4d, check_same_device, unsupported_dtype
from pyimg.ops._registry import ByBackend, callable_op, register

# -- the torch reference backend -------------------------------------------------------------


def batch_norm_prelu_reference(x, running_mean, running_var, weight=None, bias=None,
                               prelu_weight=None, training=False, momentum=0.1, eps=1e-5,
                               residual=None, relu=False):
    """Stock ops: batch_norm, then prelu (when prelu_weight is given) or relu, then
    + residual."""
    x = with_canonical_strides(x)
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    if prelu_weight is not None:
        y = F.prelu(y, prelu_weight)
    if relu:
        y = F.relu(y)
    if residual is not None:
        y = y + residual
    return y.contiguous(memory_format=output_memory_format(x))


# -- the Triton ops --------------------------------------------------------------------------


@torch.library.custom_op("pyimg::batch_norm_stats_triton", mutates_args=())
def _batch_norm_stats_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from pyimg.triton import batch_norm as kernels

    check_4d(x, "batch_norm_stats")
    return kernels.stats(x, accumulate_dtype(x))


@torch.library.custom_op("pyimg::bn_prelu_triton", mutates_args=())
def _bn_prelu_triton(x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
                     weight: torch.Tensor | None, bias: torch.Tensor | None,
                     prelu_weight: torch.Tensor | None, residual: torch.Tensor | None,
                     training: bool, relu: bool = False) -> torch.Tensor:
    from pyimg.triton import batch_norm as kernels

    check_bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, relu)
    return kernels.forward(x, mean, invstd, weight, bias, prelu_weight, residual, relu,
                           output_memory_format(x) == torch.channels_last)


@torch.library.custom_op("pyimg::bn_prelu_backward_triton", mutates_args=())
def _bn_prelu_backward_triton(
    grad: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor,
    weight: torch.Tensor | None, bias: torch.Tensor | None, prelu_weight: torch.Tensor | None,
    training: bool, relu: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from pyimg.triton import batch_norm as kernels

    check_bn_prelu(x, mean, invstd, weight, bias, prelu_weight, None, relu, grad)
    return kernels.backward(grad, x, mean, invstd, weight, bias, prelu_weight, training, relu,
                            output_memory_format(x) == torch.channels_last)


def _check_channels(t: torch.Tensor, x: torch.Tensor, name: str, op: str,
                    one_ok: bool = False) -> None:
    check_same_device(t, x, name)
    if t.dtype != accumulate_dtype(x):
        raise RuntimeError(f"{op}: {name} must be {accumulate_dtype(x)} for a {x.dtype} input, "
                           f"but got {t.dtype}")
    channels = x.shape[1]
    if t.dim() != 1 or not (t.numel() == channels or (one_ok and t.numel() == 1)):
        raise RuntimeError(f"{op}: {name} must be 1-D with {channels} element(s), but got shape "
                           f"{tuple(t.shape)}")


def _check_like(t: torch.Tensor, x: torch.Tensor, name: str, op: str) -> None:
    if t.shape != x.shape:
        raise RuntimeError(f"{op}: {name} has shape {tuple(t.shape)} but the input has shape "
                           f"{tuple(x.shape)}")
    if t.device != x.device or t.dtype != x.dtype:
        raise RuntimeError(f"{op}: {name} must match the input's device and dtype")


def check_bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, relu,
                   grad=None) -> None:
    """The checks of the bn_prelu op's arguments (and, given grad, bn_prelu_backward's), as
    the C++ ops make them: the Triton ops and the fake kernels run this."""
    op = "bn_prelu" if grad is None else "bn_prelu_backward"
    check_4d(x, op)
    if grad is not None:
        _check_like(grad, x, "grad", op)
    if relu and prelu_weight is not None:
        raise RuntimeError(f"{op}: relu=True takes no PReLU weight")
    for t, name in ((mean, "mean"), (invstd, "invstd"), (weight, "weight"), (bias, "bias")):
        if t is not None:
            _check_channels(t, x, name, op)
    if prelu_weight is not None:
        _check_channels(prelu_weight, x, "PReLU weight", op, one_ok=True)
    if residual is not None:
        _check_like(residual, x, "residual", op)


# -- fake kernels and autograd, shared by the C++ and the Triton ops -------------------------


@dataclass(frozen=True)
class _Ops:
    """One backend family's three ops."""

    stats: object
    forward: object
    backward: object


def _channels(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape[1], dtype=accumulate_dtype(x))


def _fake_stats(x):
    check_4d(x, "batch_norm_stats")
    return _channels(x), _channels(x)


def _fake_forward(x, mean, invstd, weight, bias, prelu_weight, residual, training, relu=False):
    check_bn_prelu(x, mean, invstd, weight, bias, prelu_weight, residual, relu)
    return empty_like_format(x.shape, x)


def _fake_backward(grad, x, mean, invstd, weight, bias, prelu_weight, training, relu=False):
    check_bn_prelu(x, mean, invstd, weight, bias, prelu_weight, None, relu, grad)
    return empty_like_format(x.shape, x), _channels(x), _channels(x), _channels(x)


def _setup_stats(ctx, inputs, output):
    (x,) = inputs
    ctx.save_for_backward(x, output[0])


def _stats_backward(ctx, grad_mean, grad_var):
    # mean = sum(x) / M, var = sum((x - mean)^2) / M; d var / d x = 2 (x - mean) / M.
    x, mean = ctx.saved_tensors
    m = x.numel() // x.shape[1]
    view = (1, -1, 1, 1)
    grad = torch.zeros_like(x, dtype=mean.dtype)
    if grad_mean is not None:
        grad = grad + grad_mean.view(view) / m
    if grad_var is not None:
        grad = grad + grad_var.view(view) * 2 * (x.to(mean.dtype) - mean.view(view)) / m
    return grad.to(x.dtype)


def _setup_forward(ctx, inputs, output):
    # relu may be left out of a call (its default).
    x, mean, invstd, weight, bias, prelu_weight, residual, training, *relu = inputs
    ctx.training, ctx.relu = training, bool(relu and relu[0])
    # From the inputs rather than ctx.needs_input_grad, whose length follows the call's
    # argument count for custom_op-defined ops.
    ctx.needs = [t is not None and t.requires_grad for t in (weight, bias, prelu_weight)]
    ctx.has_residual = residual is not None
    ctx.save_for_backward(x, mean, invstd, weight, bias, prelu_weight)


def _make_forward_backward(ops: _Ops):
    def backward(ctx, grad):
        x, mean, invstd, weight, bias, prelu_weight = ctx.saved_tensors
        grad_x, sum_dz, sum_dz_xhat, sum_negz = ops.backward(
            grad, x, mean, invstd, weight, bias, prelu_weight, ctx.training, ctx.relu)
        grad_weight = sum_dz_xhat if ctx.needs[0] else None
        grad_bias = sum_dz if ctx.needs[1] else None
        grad_prelu = None
        if ctx.needs[2]:
            grad_prelu = sum_negz.sum().reshape(1) if prelu_weight.numel() == 1 else sum_negz
        grad_residual = grad if ctx.has_residual else None
        return grad_x, None, None, grad_weight, grad_bias, grad_prelu, grad_residual, None, None

    return backward


def _family(suffix: str) -> _Ops:
    ops = _Ops(callable_op(f"batch_norm_stats{suffix}"), callable_op(f"bn_prelu{suffix}"),
               callable_op(f"bn_prelu_backward{suffix}"))
    register(f"batch_norm_stats{suffix}", _fake_stats, _stats_backward, _setup_stats)
    register(f"bn_prelu{suffix}", _fake_forward, _make_forward_backward(ops), _setup_forward)
    register(f"bn_prelu_backward{suffix}", _fake_backward)
    return ops


OPS = ByBackend(_family)


# -- the public functions --------------------------------------------------------------------


def _check_input(x, running_mean, running_var, training, eps, residual) -> None:
    # The checks, messages and exception types of nn.BatchNorm2d and F.batch_norm.
    if x.dim() != 4:
        raise ValueError(f"expected 4D input (got {x.dim()}D input)")
    if training and x.numel() // x.shape[1] == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {x.size()}"
        )
    if training and eps <= 0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    if training and x.numel() > 0 and (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be "
                         "None")
    if not training and (running_mean is None or running_var is None):
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    if residual is not None and residual.shape != x.shape:
        raise RuntimeError(f"residual has shape {tuple(residual.shape)} but the input has "
                           f"shape {tuple(x.shape)}")


def _check_channel_tensor(t: torch.Tensor | None, x: torch.Tensor, name: str,
                          one_ok: bool = False) -> None:
    channels = x.shape[1]
    if t is None:
        return
    check_same_device(t, x, name)
    if t.dim() != 1 or t.numel() not in ((1, channels) if one_ok else (channels,)):
        raise RuntimeError(f"{name} should contain {channels} elements not {t.numel()}")


@torch.no_grad()
def _update_running_stats(running_mean, running_var, mean, var, count: int, momentum: float,
                          eps: float) -> torch.Tensor:
    """Updates the running statistics in place as ATen's CPU batch norm does and returns
    invstd: with m the momentum in mean's dtype (the accumulation dtype),
    ``running_mean = m * mean + (1 - m) * running_mean`` in that dtype,
    ``running_var = m * unbiased var + (1 - m) * running_var`` with the sum in float64, and
    ``invstd = 1 / sqrt(var + eps)`` in float64. The same bits as the eager entry's C++ step
    (RunningStatsStep in csrc/ops/batch_norm.h); running statistics of another dtype are
    updated in the accumulation dtype and rounded to theirs."""
    invstd = torch.rsqrt(var.double() + eps).to(var.dtype)
    # An empty batch has no statistics: stock leaves the running ones as they are.
    if count == 0:
        return invstd
    # Rounded to the accumulation dtype as a tensor: tracing struct's rounding of a Python
    # float recursed without end in torch.compile (dynamic shapes, triton backend).
    m = torch.full((), momentum, dtype=mean.dtype, device=mean.device)
    if running_mean is not None:
        running_mean.copy_(mean * m + running_mean.to(mean.dtype) * (1 - m))
    if running_var is not None:
        unbiased = var.double() * (count / (count - 1))
        running_var.copy_(unbiased * m.double() + (running_var.to(var.dtype) * (1 - m)).double())
    return invstd


def _batch_norm_fused(x, running_mean, running_var, weight, bias, prelu_weight, training,
                      momentum, eps, residual, op, relu=False):
    if eager is not None and not torch.compiler.is_compiling():
        y = eager.batch_norm_fused(x, running_mean, running_var, weight, bias, prelu_weight,
                                   training, momentum, eps, residual, relu)
        if y is not None:
            return y
    _check_input(x, running_mean, running_var, training, eps, residual)
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        _check_channel_tensor(t, x, name)
    _check_channel_tensor(prelu_weight, x, "prelu weight", one_ok=True)
    if relu and prelu_weight is not None:
        raise ValueError("relu=True replaces the PReLU: prelu_weight must be None")
    backend = _backend.choose(op, x.device, unsupported_dtype(x))
    if backend == "torch":
        return batch_norm_prelu_reference(x, running_mean, running_var, weight, bias,
                                          prelu_weight, training, momentum, eps, residual, relu)
    ops = OPS[backend]
    acc = accumulate_dtype(x)
    if training:
        # Detached: bn_prelu's backward differentiates through the statistics itself.
        mean, var = ops.stats(x.detach())
        invstd = _update_running_stats(running_mean, running_var, mean, var,
                                       x.numel() // x.shape[1], momentum, eps)
    else:
        mean = in_dtype(running_mean, acc)
        invstd = torch.rsqrt(in_dtype(running_var, acc) + eps)
    params = [in_dtype(t, acc) for t in (weight, bias, prelu_weight)]
    if residual is not None:
        residual = in_dtype(residual, x.dtype)
    return ops.forward(x, mean, invstd, *params, residual, training, relu)


def batch_norm_prelu(x: torch.Tensor, running_mean: torch.Tensor | None,
                     running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None, prelu_weight: torch.Tensor | None = None,
                     training: bool = False, momentum: float = 0.1,
                     eps: float = 1e-5, *, relu: bool = False) -> torch.Tensor:
    """``F.prelu(F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
    eps), prelu_weight)`` in one pass over x (two when training: statistics, then output).

    x is (N, C, H, W); prelu_weight has 1 or C values (None: no PReLU). ``relu=True`` applies
    ``F.relu`` instead (prelu_weight None). When training, the running statistics (if given)
    are updated in place as stock does. Differentiable in x, weight, bias and prelu_weight.
    The output keeps x's memory format.
    """
    return _batch_norm_fused(x, running_mean, running_var, weight, bias, prelu_weight, training,
                             momentum, eps, None, "batch_norm_prelu", relu)


def batch_norm_add(x: torch.Tensor, residual: torch.Tensor, running_mean: torch.Tensor | None,
                   running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                   bias: torch.Tensor | None = None, training: bool = False,
                   momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """``F.batch_norm(x, ...) + residual`` in one pass over x and residual (the second BN of a
    residual block and its skip connection). Arguments as ``batch_norm_prelu``."""
    return _batch_norm_fused(x, running_mean, running_var, weight, bias, None, training,
                             momentum, eps, residual, "batch_norm_add")
