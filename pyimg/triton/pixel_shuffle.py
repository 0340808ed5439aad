"""Triton kernels of pixel_shuffle (fused bias + activation), pixel_unshuffle and the fused
backward, with the layout rules of csrc/ops/pixel_shuffle.h: the small tensor is
(N, Co*r*r, H, W), the large one (N, Co, H*r, W*r). Each program writes BLOCK consecutive
output elements (contiguous in the output's memory format, so stores coalesce and vectorize)
and gathers its inputs through their strides."""

import torch
import triton
import triton.language as tl

from pyimg._activation import ACTIVATIONS
from pyimg.triton.activation import PRELU, activate, activation_grad
from pyimg.triton.layout import empty_in_format, nchw_or_nhwc_coords

BLOCK = 1024


@triton.jit
def _epilogue_params(bias_ptr, weight_ptr, c, co, mask, HAS_BIAS: tl.constexpr,
                     WEIGHT_PER_CHANNEL: tl.constexpr,
                     ACT: tl.constexpr):
    """bias of small channel c (0 without bias) and alpha of large channel co, in the
    tensors' own dtype (the caller's arithmetic promotes them)."""
    if HAS_BIAS:
        b = tl.load(bias_ptr + c, mask=mask, other=0.0)
    else:
        b = 0.0
    if ACT == PRELU:
        if WEIGHT_PER_CHANNEL:
            alpha = tl.load(weight_ptr + co, mask=mask, other=0.0)
        else:
            alpha = tl.load(weight_ptr)
    else:
        alpha = 0.0
    return b, alpha


@triton.jit
def _shuffle_kernel(
    out_ptr,  # large output, contiguous in its format
    x_ptr,  # small input, any strides
    sxn, sxc, sxh, sxw,  # x strides
    Co, Ho, Wo, total,  # output sizes, number of output elements
    bias_ptr,  # (Co*r*r,) or unused
    weight_ptr,  # PReLU weight (leaky_relu's slope too), (Co,) or (1,), or unused
    R: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    WEIGHT_PER_CHANNEL: tl.constexpr,
    ACT: tl.constexpr,
    F64: tl.constexpr,  # compute in float64 (float64 tensors) instead of float32
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, co, ho, wo = nchw_or_nhwc_coords(o, Co, Ho, Wo, CHANNELS_LAST)
    c = co * (R * R) + (ho % R) * R + wo % R
    src = n * sxn + c * sxc + (ho // R) * sxh + (wo // R) * sxw
    v = tl.load(x_ptr + src, mask=mask)
    if ACT != 0 or HAS_BIAS:
        b, alpha = _epilogue_params(bias_ptr, weight_ptr, c, co, mask,
                                    HAS_BIAS, WEIGHT_PER_CHANNEL, ACT)
        if F64:
            z = v.to(tl.float64) + b
        else:
            z = v.to(tl.float32) + b
        v = activate(z, alpha, ACT)
    tl.store(out_ptr + o, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _unshuffle_kernel(
    out_ptr,  # small output, contiguous in its format
    g_ptr,  # large input (the tensor to unshuffle, or the gradient), any strides
    x_ptr,  # fused: the forward's small input, any strides; else unused
    sgn, sgc, sgh, sgw,  # g strides
    sxn, sxc, sxh, sxw,  # x strides
    C, H, W, total,  # output sizes, number of output elements
    bias_ptr,  # (C,) or unused
    weight_ptr,  # PReLU weight (leaky_relu's slope too), (Co,) or (1,), or unused
    R: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    FUSED: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    WEIGHT_PER_CHANNEL: tl.constexpr,
    ACT: tl.constexpr,
    F64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, h, w = nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST)
    co = c // (R * R)
    i = (c % (R * R)) // R
    j = c % R
    g = tl.load(g_ptr + n * sgn + co * sgc + (h * R + i) * sgh + (w * R + j) * sgw, mask=mask)
    if FUSED:
        b, alpha = _epilogue_params(bias_ptr, weight_ptr, c, co, mask,
                                    HAS_BIAS, WEIGHT_PER_CHANNEL, ACT)
        xv = tl.load(x_ptr + n * sxn + c * sxc + h * sxh + w * sxw, mask=mask)
        if F64:
            z = xv.to(tl.float64) + b
            g = g.to(tl.float64) * activation_grad(z, alpha, ACT)
        else:
            z = xv.to(tl.float32) + b
            g = g.to(tl.float32) * activation_grad(z, alpha, ACT)
    tl.store(out_ptr + o, g.to(out_ptr.dtype.element_ty), mask=mask)


def _epilogue_args(x, bias, activation, weight, negative_slope):
    """Kernel arguments of the epilogue. leaky_relu runs as a PReLU with one weight: Triton
    passes Python floats as float32, which would round the slope of a float64 call."""
    if activation == "leaky_relu":
        activation = "prelu"
        weight = torch.full((1,), negative_slope, dtype=x.dtype, device=x.device)
    return {
        "bias_ptr": _ptr_or(bias, x),
        "weight_ptr": _ptr_or(weight, x),
        "HAS_BIAS": bias is not None,
        "WEIGHT_PER_CHANNEL": weight is not None and weight.numel() > 1,
        "ACT": ACTIVATIONS.index(activation),
    }


def _ptr_or(t: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    # Triton needs a tensor argument even where the kernel never reads it.
    return t.contiguous() if t is not None else fallback


def shuffle(x, r, bias, activation, weight, negative_slope, channels_last: bool):
    n, c, h, w = x.shape
    out = empty_in_format((n, c // (r * r), h * r, w * r), x, channels_last)
    total = out.numel()
    if total == 0:
        return out
    _shuffle_kernel[(triton.cdiv(total, BLOCK),)](
        out, x, *x.stride(), out.shape[1], out.shape[2], out.shape[3], total,
        R=r, CHANNELS_LAST=channels_last, F64=x.dtype == torch.float64, BLOCK=BLOCK,
        **_epilogue_args(x, bias, activation, weight, negative_slope),
    )
    return out


def unshuffle(g, x, r, bias, activation, weight, negative_slope, channels_last: bool):
    """Fused backward when x is given (output shaped like x), else plain pixel_unshuffle."""
    n, co, hr, wr = g.shape
    out = empty_in_format((n, co * r * r, hr // r, wr // r), g, channels_last)
    total = out.numel()
    if total == 0:
        return out
    fused = x is not None
    _unshuffle_kernel[(triton.cdiv(total, BLOCK),)](
        out, g, x if fused else g, *g.stride(), *(x.stride() if fused else (0, 0, 0, 0)),
        out.shape[1], out.shape[2], out.shape[3], total,
        R=r, CHANNELS_LAST=channels_last, FUSED=fused, F64=g.dtype == torch.float64,
        BLOCK=BLOCK, **_epilogue_args(g, bias, activation, weight, negative_slope),
    )
    return out
