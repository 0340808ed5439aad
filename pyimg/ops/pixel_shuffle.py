"""pixel_shuffle (sub-pixel upsampling, Shi et al. 2016, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network") with an optional
fused per-channel bias and activation, and pixel_unshuffle.

Backends: ``cpu`` and ``cuda`` run ``torch.ops.pyimg.pixel_shuffle`` (csrc/ops/), ``triton``
runs ``torch.ops.pyimg.pixel_shuffle_triton`` (pyimg/triton/pixel_shuffle.py), ``torch`` is
the stock-op reference below. This file registers both ops' fake kernels and autograd.

Layout: the output keeps the input's memory format (channels_last in, channels_last out), as
the fake kernels promise; stock CUDA pixel_shuffle returns NCHW instead.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyimg import _backend
from pyimg._activation import apply_activation, check_activation
from pyimg._extension import eager
from pyimg._format import empty_like_format, in_dtype, output_memory_format
from pyimg.ops._common import check_4d, check_same_device, unsupported_dtype
from pyimg.ops._registry import ByBackend, callable_op, register


def _check_rank(x: torch.Tensor, op: str) -> None:
    # The public functions' own: they take (*, C, H, W) and hand the ops 4-D tensors.
    if x.dim() < 3:
        raise RuntimeError(
            f"{op} expects input to have at least 3 dimensions, but got input with "
            f"{x.dim()} dimension(s)"
        )


def check_shuffle(x: torch.Tensor, r: int, bias: torch.Tensor | None, activation: str,
                  weight: torch.Tensor | None) -> None:
    """The checks of the pixel_shuffle ops' 4-D arguments, as the C++ op makes them: the
    Triton op, the fake kernel and the torch reference path run this."""
    check_4d(x, "pixel_shuffle")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    channels = x.shape[1]
    if channels % (r * r) != 0:
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
            f"square of upscale_factor, but input.size(-3)={channels} is not divisible by "
            f"{r * r}"
        )
    check_activation(activation, weight, channels // (r * r))
    if bias is not None:
        check_same_device(bias, x, "bias")
        if bias.dim() != 1 or bias.numel() != channels:
            raise RuntimeError(
                f"bias must be 1-D with {channels} elements, but got shape {tuple(bias.shape)}"
            )
    if weight is not None:
        check_same_device(weight, x, "weight")


def check_unshuffle(x: torch.Tensor, r: int) -> None:
    """The checks of pixel_unshuffle's 4-D arguments, as the C++ op makes them."""
    check_4d(x, "pixel_unshuffle")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    for dim, name in ((-2, "height"), (-1, "width")):
        if x.shape[dim] % r != 0:
            raise RuntimeError(
                f"pixel_unshuffle expects {name} to be divisible by downscale_factor, but "
                f"input.size({dim})={x.shape[dim]} is not divisible by {r}"
            )


# -- the torch reference backend -------------------------------------------------------------


def pixel_shuffle_reference(x, upscale_factor, bias=None, activation="none", weight=None,
                            negative_slope=0.01):
    """Stock ops, in x's dtype: bias, stock pixel_shuffle, activation; x's memory format.
    The activation's channels are dim -3 whatever x's rank (PReLU's would be dim 1)."""
    x4 = _as_4d(x)
    y = x4 if bias is None else x4 + bias.view(-1, 1, 1)
    y = apply_activation(_shuffle(y, upscale_factor), activation, weight, negative_slope)
    return _from_4d(y.contiguous(memory_format=output_memory_format(x4)), x)


def _shuffle(x4, r):
    if x4.numel() == 0:
        # Stock's backward fails on an empty input (its pixel_unshuffle keeps the input's
        # shape, torch 2.14): the same rearrangement by views instead.
        n, c, h, w = x4.shape
        y = x4.reshape(n, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (r * r), h * r, w * r)
    return F.pixel_shuffle(x4, r)


def pixel_unshuffle_reference(x, downscale_factor):
    r = downscale_factor
    if x.numel() == 0:
        # Stock returns the input's shape for an empty input (torch 2.14): the same
        # rearrangement by views instead, differentiable as stock's.
        n, c, h, w = _as_4d(x).shape
        y = _as_4d(x).reshape(n, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4)
        y = y.reshape(n, c * r * r, h // r, w // r)
        return _from_4d(y.contiguous(memory_format=output_memory_format(_as_4d(x))), x)
    return F.pixel_unshuffle(x, r).contiguous(memory_format=output_memory_format(x))


# -- the Triton op ---------------------------------------------------------------------------


@torch.library.custom_op("pyimg::pixel_shuffle_triton", mutates_args=())
def _pixel_shuffle_triton(x: torch.Tensor, upscale_factor: int, bias: torch.Tensor | None = None,
                          activation: str = "none", weight: torch.Tensor | None = None,
                          negative_slope: float = 0.01) -> torch.Tensor:
    from pyimg.triton import pixel_shuffle as kernels

    check_shuffle(x, upscale_factor, bias, activation, weight)
    fmt = output_memory_format(x) == torch.channels_last
    return kernels.shuffle(x, upscale_factor, bias, activation, weight, negative_slope, fmt)


@torch.library.custom_op("pyimg::pixel_unshuffle_triton", mutates_args=())
def _pixel_unshuffle_triton(x: torch.Tensor, downscale_factor: int) -> torch.Tensor:
    from pyimg.triton import pixel_shuffle as kernels

    check_unshuffle(x, downscale_factor)
    fmt = output_memory_format(x) == torch.channels_last
    return kernels.unshuffle(x, None, downscale_factor, None, "none", None, 0.0, fmt)


@torch.library.custom_op("pyimg::pixel_shuffle_backward_triton", mutates_args=())
def _pixel_shuffle_backward_triton(grad_out: torch.Tensor, x: torch.Tensor, upscale_factor: int,
                                   bias: torch.Tensor | None, activation: str,
                                   weight: torch.Tensor | None,
                                   negative_slope: float) -> torch.Tensor:
    from pyimg.triton import pixel_shuffle as kernels

    fmt = output_memory_format(x) == torch.channels_last
    return kernels.unshuffle(grad_out, x, upscale_factor, bias, activation, weight,
                             negative_slope, fmt)


# -- fake kernels and autograd, shared by the C++ and the Triton ops -------------------------


@dataclass(frozen=True)
class _Ops:
    """One backend family's three ops."""

    shuffle: object
    unshuffle: object
    backward: object


def _fake_shuffle(x, upscale_factor, bias=None, activation="none", weight=None,
                  negative_slope=0.01):
    check_shuffle(x, upscale_factor, bias, activation, weight)
    n, c, h, w = x.shape
    r = upscale_factor
    return empty_like_format((n, c // (r * r), h * r, w * r), x)


def _fake_unshuffle(x, downscale_factor):
    check_unshuffle(x, downscale_factor)
    n, c, h, w = x.shape
    r = downscale_factor
    return empty_like_format((n, c * r * r, h // r, w // r), x)


def _fake_backward(grad_out, x, upscale_factor, bias, activation, weight, negative_slope):
    return empty_like_format(x.shape, x)


def _setup_shuffle(ctx, inputs, output):
    x, r, bias, activation, weight, negative_slope = inputs
    ctx.r, ctx.activation, ctx.negative_slope = r, activation, negative_slope
    ctx.fused = bias is not None or activation != "none"
    # From the inputs rather than ctx.needs_input_grad, whose length follows the call's
    # argument count for custom_op-defined ops (defaults left out).
    ctx.bias_needs_grad = bias is not None and bias.requires_grad
    ctx.weight_needs_grad = weight is not None and weight.requires_grad
    ctx.save_for_backward(x if ctx.fused else None, bias, weight)


def _prelu_weight_grad(ops: _Ops, grad, x, r, bias, weight):
    # d out / d alpha = z where z <= 0, summed per large channel (or over all of them).
    z = x if bias is None else x + bias.view(1, -1, 1, 1)
    per_small_channel = (ops.unshuffle(grad, r) * z.clamp(max=0)).sum((0, 2, 3))
    per_channel = per_small_channel.view(-1, r * r).sum(1)
    return (per_channel.sum() if weight.numel() == 1 else per_channel).reshape(weight.shape)


def _make_shuffle_backward(ops: _Ops):
    def backward(ctx, grad):
        x, bias, weight = ctx.saved_tensors
        if not ctx.fused:
            return ops.unshuffle(grad, ctx.r), None, None, None, None, None
        grad_z = ops.backward(grad, x, ctx.r, bias, ctx.activation, weight, ctx.negative_slope)
        grad_bias = grad_z.sum((0, 2, 3)) if ctx.bias_needs_grad else None
        grad_weight = None
        if ctx.weight_needs_grad:
            grad_weight = _prelu_weight_grad(ops, grad, x, ctx.r, bias, weight)
        return grad_z, None, grad_bias, None, grad_weight, None

    return backward


def _setup_unshuffle(ctx, inputs, output):
    ctx.r = inputs[1]


def _family(suffix: str) -> _Ops:
    ops = _Ops(callable_op(f"pixel_shuffle{suffix}"), callable_op(f"pixel_unshuffle{suffix}"),
               callable_op(f"pixel_shuffle_backward{suffix}"))
    register(f"pixel_shuffle{suffix}", _fake_shuffle, _make_shuffle_backward(ops),
             _setup_shuffle)
    register(f"pixel_unshuffle{suffix}", _fake_unshuffle,
             lambda ctx, grad: (ops.shuffle(grad, ctx.r), None), _setup_unshuffle)
    register(f"pixel_shuffle_backward{suffix}", _fake_backward)
    return ops


OPS = ByBackend(_family)


# -- the public functions --------------------------------------------------------------------


# A 4-D tensor passes as it is: a reshape may restride its size-1 dimensions, which can change
# its memory format (a channels_last tensor of one channel is also contiguous).
def _as_4d(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return x
    # The batch size spelled out: -1 is ambiguous when another dimension is 0.
    return x.unsqueeze(0) if x.dim() == 3 else x.reshape(math.prod(x.shape[:-3]), *x.shape[-3:])


def _from_4d(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dim() == 4:
        return y
    return y.squeeze(0) if like.dim() == 3 else y.reshape(*like.shape[:-3], *y.shape[-3:])


def pixel_shuffle(x: torch.Tensor, upscale_factor: int, bias: torch.Tensor | None = None,
                  activation: str = "none", weight: torch.Tensor | None = None,
                  negative_slope: float = 0.01) -> torch.Tensor:
    """Rearrange (*, C*r*r, H, W) into (*, C, H*r, W*r), as ``torch.nn.functional.pixel_shuffle``,
    then apply ``activation`` (none, relu, leaky_relu, prelu, tanh, sigmoid) in the same pass.

    ``bias`` is added before the activation: either one value per input channel (C*r*r, the
    bias of the convolution that feeds the shuffle) or one per output channel (C).
    ``weight`` is the PReLU weight (1 or C values); ``negative_slope`` that of leaky_relu.
    Differentiable in x, bias and weight. The output keeps x's memory format.
    """
    if eager is not None and not torch.compiler.is_compiling():
        y = eager.pixel_shuffle(x, upscale_factor, bias, activation, weight, negative_slope)
        if y is not None:
            return y
    _check_rank(x, "pixel_shuffle")
    r = upscale_factor
    if bias is not None:
        if bias.dim() == 1 and r > 1 and bias.numel() * r * r == x.shape[-3]:
            bias = bias.repeat_interleave(r * r)
        bias = in_dtype(bias, x.dtype)
    weight = in_dtype(weight, x.dtype)
    x4 = _as_4d(x)
    backend = _backend.choose("pixel_shuffle", x.device, unsupported_dtype(x))
    if backend == "torch":
        check_shuffle(x4, r, bias, activation, weight)
        y = pixel_shuffle_reference(x4, r, bias, activation, weight, negative_slope)
    else:
        y = OPS[backend].shuffle(x4, r, bias, activation, weight, negative_slope)
    return _from_4d(y, x)


def pixel_unshuffle(x: torch.Tensor, downscale_factor: int) -> torch.Tensor:
    """Rearrange (*, C, H*r, W*r) into (*, C*r*r, H, W), as
    ``torch.nn.functional.pixel_unshuffle``; the inverse of ``pixel_shuffle``."""
    if eager is not None and not torch.compiler.is_compiling():
        y = eager.pixel_unshuffle(x, downscale_factor)
        if y is not None:
            return y
    _check_rank(x, "pixel_unshuffle")
    x4 = _as_4d(x)
    backend = _backend.choose("pixel_unshuffle", x.device, unsupported_dtype(x))
    if backend == "torch":
        check_unshuffle(x4, downscale_factor)
        y = pixel_unshuffle_reference(x4, downscale_factor)
    else:
        y = OPS[backend].unshuffle(x4, downscale_factor)
    return _from_4d(y, x)
