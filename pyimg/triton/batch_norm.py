"""Triton kernels of batch_norm_stats, bn_prelu and bn_prelu_backward (contract in
csrc/ops/batch_norm.h). Inputs are read through their strides, so no layout needs a copy.

Reductions run on a (C, S) grid: program (c, s) reduces a span of consecutive values of channel
c (in N, H, W order) block by block, and writes one partial result; the S partials are combined
here with torch ops in a fixed order, so results are deterministic (no atomics). The
elementwise passes write a block of consecutive output elements per program.
"""

import torch
import triton
import triton.language as tl

from pyimg.triton.activation import PRELU, RELU, activate, activation_grad
from pyimg.triton.layout import empty_in_format, nchw_or_nhwc_coords

MAX_BLOCK = 1024
MAX_ITERS = 8  # blocks of one channel a reduction program covers


@triton.jit
def _acc(v, F64: tl.constexpr):
    if F64:
        return v.to(tl.float64)
    return v.to(tl.float32)


@triton.jit
def _load_channel(ptr, j, mask, c, sn, sc, sh, sw, HW, W, F64: tl.constexpr):
    """Values j (in N, H, W order) of channel c in the compute type, 0 where masked off."""
    n = j // HW
    p = j % HW
    v = tl.load(ptr + n * sn + c * sc + (p // W) * sh + (p % W) * sw, mask=mask, other=0.0)
    return _acc(v, F64)


@triton.jit
def _stats_kernel(x_ptr, mean_ptr, m2_ptr, sn, sc, sh, sw, HW, W, M, S,
                  F64: tl.constexpr, SPAN: tl.constexpr, BLOCK: tl.constexpr):
    # Per block: mean and squared deviations in two steps (stable); across blocks, Chan et al.'s
    # pairwise update.
    c = tl.program_id(0)
    s = tl.program_id(1)
    count = _acc(tl.zeros((), tl.float32), F64)
    mean = count
    m2 = count
    for k in range(0, SPAN, BLOCK):
        j = s.to(tl.int64) * SPAN + k + tl.arange(0, BLOCK)
        mask = j < M
        v = _load_channel(x_ptr, j, mask, c, sn, sc, sh, sw, HW, W, F64)
        nb = tl.sum(_acc(mask, F64))
        safe_nb = tl.maximum(nb, 1.0)
        mb = tl.sum(v) / safe_nb
        d = tl.where(mask, v - mb, 0.0)
        total = count + nb
        delta = mb - mean
        mean = mean + delta * nb / tl.maximum(total, 1.0)
        m2 = m2 + tl.sum(d * d) + delta * delta * count * nb / tl.maximum(total, 1.0)
        count = total
    tl.store(mean_ptr + c * S + s, mean)
    tl.store(m2_ptr + c * S + s, m2)


@triton.jit
def _load_channel_params(c, mask, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
                         HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr,
                         HAS_PRELU: tl.constexpr, ALPHA_PER_CHANNEL: tl.constexpr):
    """mean, scale = invstd * weight, shift = bias and the PReLU alpha of channels c (1, the
    identity, without a PReLU; a ReLU ignores it)."""
    mean = tl.load(mean_ptr + c, mask=mask, other=0.0)
    scale = tl.load(invstd_ptr + c, mask=mask, other=0.0)
    if HAS_WEIGHT:
        scale = scale * tl.load(weight_ptr + c, mask=mask, other=0.0)
    if HAS_BIAS:
        shift = tl.load(bias_ptr + c, mask=mask, other=0.0)
    else:
        shift = tl.zeros_like(mean)
    if HAS_PRELU:
        if ALPHA_PER_CHANNEL:
            alpha = tl.load(alpha_ptr + c, mask=mask, other=0.0)
        else:
            alpha = tl.load(alpha_ptr)
    else:
        alpha = tl.full(mean.shape, 1.0, mean.dtype)
    return mean, scale, shift, alpha


@triton.jit
def _forward_kernel(out_ptr, x_ptr, res_ptr, sxn, sxc, sxh, sxw, srn, src, srh, srw, C, H, W,
                    total, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
                    HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_PRELU: tl.constexpr,
                    ALPHA_PER_CHANNEL: tl.constexpr, ACT: tl.constexpr,
                    HAS_RESIDUAL: tl.constexpr, CHANNELS_LAST: tl.constexpr, F64: tl.constexpr,
                    BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, h, w = nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST)
    mean, scale, shift, alpha = _load_channel_params(
        c, mask, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
        HAS_WEIGHT, HAS_BIAS, HAS_PRELU, ALPHA_PER_CHANNEL)
    x = _acc(tl.load(x_ptr + n * sxn + c * sxc + h * sxh + w * sxw, mask=mask), F64)
    y = activate((x - mean) * scale + shift, alpha, ACT)
    if HAS_RESIDUAL:
        y += _acc(tl.load(res_ptr + n * srn + c * src + h * srh + w * srw, mask=mask), F64)
    tl.store(out_ptr + o, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _grad_sums_kernel(g_ptr, x_ptr, sums_ptr, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, HW, W, M,
                      C, S, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
                      HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr,
                      HAS_PRELU: tl.constexpr, ALPHA_PER_CHANNEL: tl.constexpr,
                      ACT: tl.constexpr, F64: tl.constexpr, SPAN: tl.constexpr,
                      BLOCK: tl.constexpr):
    # Partial sums of dz, dz * (x - mean) and g * min(z, 0), at sums[k, c, s].
    c = tl.program_id(0)
    s = tl.program_id(1)
    mean, scale, shift, alpha = _load_channel_params(
        c, True, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
        HAS_WEIGHT, HAS_BIAS, HAS_PRELU, ALPHA_PER_CHANNEL)
    sum_dz = _acc(tl.zeros((), tl.float32), F64)
    sum_dz_xc = sum_dz
    sum_negz = sum_dz
    for k in range(0, SPAN, BLOCK):
        j = s.to(tl.int64) * SPAN + k + tl.arange(0, BLOCK)
        mask = j < M
        g = _load_channel(g_ptr, j, mask, c, sgn, sgc, sgh, sgw, HW, W, F64)
        xc = _load_channel(x_ptr, j, mask, c, sxn, sxc, sxh, sxw, HW, W, F64) - mean
        z = xc * scale + shift
        dz = tl.where(mask, g * activation_grad(z, alpha, ACT), 0.0)
        sum_dz += tl.sum(dz)
        sum_dz_xc += tl.sum(dz * xc)
        # NaN z kept, as ATen's PReLU weight gradient.
        sum_negz += tl.sum(tl.where(mask & ~(z > 0), g * z, 0.0))
    tl.store(sums_ptr + c * S + s, sum_dz)
    tl.store(sums_ptr + (C + c) * S + s, sum_dz_xc)
    tl.store(sums_ptr + (2 * C + c) * S + s, sum_negz)


@triton.jit
def _grad_x_kernel(out_ptr, g_ptr, x_ptr, b_ptr, d_ptr, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                   C, H, W, total, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
                   HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_PRELU: tl.constexpr,
                   ALPHA_PER_CHANNEL: tl.constexpr, ACT: tl.constexpr, TRAINING: tl.constexpr,
                   CHANNELS_LAST: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    # grad_x = scale * dz + B[c] * (x - mean) + D[c] when training; in eval, where the
    # statistics are constants, scale * dz (also at a NaN x, where B * (x - mean) is NaN).
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, h, w = nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST)
    mean, scale, shift, alpha = _load_channel_params(
        c, mask, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, alpha_ptr,
        HAS_WEIGHT, HAS_BIAS, HAS_PRELU, ALPHA_PER_CHANNEL)
    g = _acc(tl.load(g_ptr + n * sgn + c * sgc + h * sgh + w * sgw, mask=mask), F64)
    xc = _acc(tl.load(x_ptr + n * sxn + c * sxc + h * sxh + w * sxw, mask=mask), F64) - mean
    dz = g * activation_grad(xc * scale + shift, alpha, ACT)
    gx = scale * dz
    if TRAINING:
        b = tl.load(b_ptr + c, mask=mask, other=0.0)
        d = tl.load(d_ptr + c, mask=mask, other=0.0)
        gx += b * xc + d
    tl.store(out_ptr + o, gx.to(out_ptr.dtype.element_ty), mask=mask)


def _param_args(x, mean, invstd, weight, bias, prelu_weight, relu: bool) -> dict:
    # Triton needs a tensor argument even where the kernel never reads it.
    return {
        "mean_ptr": mean.contiguous(),
        "invstd_ptr": invstd.contiguous(),
        "weight_ptr": mean if weight is None else weight.contiguous(),
        "bias_ptr": mean if bias is None else bias.contiguous(),
        "alpha_ptr": mean if prelu_weight is None else prelu_weight.contiguous(),
        "HAS_WEIGHT": weight is not None,
        "HAS_BIAS": bias is not None,
        "HAS_PRELU": prelu_weight is not None,
        "ALPHA_PER_CHANNEL": prelu_weight is not None and prelu_weight.numel() > 1,
        "ACT": RELU if relu else PRELU,
        "F64": x.dtype == torch.float64,
    }


def _block(count: int) -> int:
    # Small tensors get small blocks: masked-off lanes cost as much as live ones.
    return min(MAX_BLOCK, max(16, triton.next_power_of_2(count)))


def _splits(x: torch.Tensor) -> tuple[int, int, int, int, int]:
    """(values per channel, channels, programs per channel, span of a program, block)."""
    n, c, h, w = x.shape
    m = n * h * w
    block = _block(m)
    span = block * min(MAX_ITERS, triton.next_power_of_2(triton.cdiv(m, block)))
    return m, c, triton.cdiv(m, span), span, block


def stats(x: torch.Tensor, acc: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if x.numel() == 0:
        nan = torch.full((x.shape[1],), float("nan"), dtype=acc, device=x.device)
        return nan, nan.clone()
    m, c, s, span, block = _splits(x)
    means = torch.empty((c, s), dtype=acc, device=x.device)
    m2s = torch.empty_like(means)
    _stats_kernel[(c, s)](x, means, m2s, *x.stride(), x.shape[2] * x.shape[3], x.shape[3], m, s,
                          F64=acc == torch.float64, SPAN=span, BLOCK=block)
    # Chan et al.'s combination of the S partials, all at once.
    counts = (m - torch.arange(s, device=x.device) * span).clamp(max=span).to(acc)
    mean = (means * counts).sum(1) / m
    m2 = m2s.sum(1) + ((means - mean[:, None]) ** 2 * counts).sum(1)
    return mean, m2 / m


def forward(x, mean, invstd, weight, bias, prelu_weight, residual, relu: bool,
            channels_last: bool):
    out = empty_in_format(x.shape, x, channels_last)
    total = out.numel()
    if total == 0:
        return out
    res = x if residual is None else residual
    block = _block(total)
    _forward_kernel[(triton.cdiv(total, block),)](
        out, x, res, *x.stride(), *res.stride(), x.shape[1], x.shape[2], x.shape[3], total,
        HAS_RESIDUAL=residual is not None, CHANNELS_LAST=channels_last, BLOCK=block,
        **_param_args(x, mean, invstd, weight, bias, prelu_weight, relu),
    )
    return out


def backward(grad, x, mean, invstd, weight, bias, prelu_weight, training: bool, relu: bool,
             channels_last: bool):
    acc = mean.dtype
    grad_x = empty_in_format(x.shape, x, channels_last)
    if x.numel() == 0:
        return grad_x, *(torch.zeros(x.shape[1], dtype=acc, device=x.device) for _ in range(3))
    m, c, s, span, block = _splits(x)
    params = _param_args(x, mean, invstd, weight, bias, prelu_weight, relu)
    partial = torch.empty((3, c, s), dtype=acc, device=x.device)
    _grad_sums_kernel[(c, s)](grad, x, partial, *grad.stride(), *x.stride(),
                              x.shape[2] * x.shape[3], x.shape[3], m, c, s, SPAN=span,
                              BLOCK=block, **params)
    # Separate tensors: a custom op's outputs must not alias one another.
    sum_dz, sum_dz_xc, sum_negz = (t.clone() for t in partial.sum(2))
    sum_dz_xhat = sum_dz_xc * invstd
    # Ioffe & Szegedy's backward through the batch statistics when training; in eval they are
    # constants and grad_x = scale * dz.
    scale = invstd if weight is None else invstd * weight
    b = -scale * invstd * sum_dz_xhat / m if training else torch.zeros_like(mean)
    d = -scale * sum_dz / m if training else torch.zeros_like(mean)
    block = _block(x.numel())
    _grad_x_kernel[(triton.cdiv(x.numel(), block),)](
        grad_x, grad, x, b, d, *grad.stride(), *x.stride(), c, x.shape[2], x.shape[3],
        x.numel(), TRAINING=training, CHANNELS_LAST=channels_last, BLOCK=block, **params,
    )
    return grad_x, sum_dz, sum_dz_xhat, sum_negz
