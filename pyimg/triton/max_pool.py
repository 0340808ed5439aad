"""Triton kernels of max_pool2d_with_indices, max_unpool2d and their backwards, with the
geometry of csrc/ops/max_pool.h: the plane is (H, W), the pooled plane (PH, PW); pooled
element (ph, pw) owns the window at (ph * sh - pad_h, pw * sw - pad_w). Indices are flat
(int64, h * W + w) or compact (uint8, the tap ki * kw + kj). Each program writes BLOCK
consecutive output elements (contiguous in the output's memory format) and gathers its inputs
through their strides; every output element is written once."""

import torch
import triton
import triton.language as tl

from pyimg.triton.layout import empty_in_format, nchw_or_nhwc_coords

BLOCK = 256


@triton.jit
def _position(idx, ph, pw, H, W, kw, sh, sw, pad_h, pad_w, dh, dw, KH: tl.constexpr,
              COMPACT: tl.constexpr):
    """The plane position idx names for pooled element (ph, pw), or -1 (max_pool.h)."""
    if COMPACT:
        h = ph * sh - pad_h + (idx // kw) * dh
        w = pw * sw - pad_w + (idx % kw) * dw
        ok = (idx < KH * kw) & (h >= 0) & (h < H) & (w >= 0) & (w < W)
        return tl.where(ok, h * W + w, -1)
    else:
        return tl.where((idx >= 0) & (idx < H * W), idx, -1)


@triton.jit
def _covering_window(h, w, ki, kj, mask, PH, PW, sh, sw, pad_h, pad_w, dh, dw):
    """(ph, pw) of the pooled element whose window holds plane position (h, w) at tap (ki, kj),
    and where that element exists."""
    hs = h + pad_h - ki * dh
    ws = w + pad_w - kj * dw
    ph = hs // sh
    pw = ws // sw
    ok = mask & (hs >= 0) & (ws >= 0) & (hs % sh == 0) & (ws % sw == 0)
    ok = ok & (ph < PH) & (pw < PW)
    return ph, pw, ok


@triton.jit
def _pool_kernel(
    out_ptr, idx_ptr,  # values and indices (N, C, PH, PW), contiguous in their format
    x_ptr,  # input (N, C, H, W), any strides
    sxn, sxc, sxh, sxw,  # x strides
    C, H, W, PH, PW, total,  # sizes, number of output elements
    sh, sw, pad_h, pad_w, dh, dw,  # stride, padding, dilation
    KH: tl.constexpr, KW: tl.constexpr,  # kernel size
    COMPACT: tl.constexpr,  # uint8 taps instead of int64 plane positions
    CHANNELS_LAST: tl.constexpr,
    ACC: tl.constexpr,  # compute type: float64 for float64 tensors, else float32
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, ph, pw = nchw_or_nhwc_coords(o, C, PH, PW, CHANNELS_LAST)
    h0 = ph * sh - pad_h
    w0 = pw * sw - pad_w
    # Stock's start: the first in-plane tap of the window.
    ki0 = tl.where(h0 < 0, (-h0 + dh - 1) // dh, 0)
    kj0 = tl.where(w0 < 0, (-w0 + dw - 1) // dw, 0)
    best = tl.full((BLOCK,), float("-inf"), ACC)
    best_tap = ki0 * KW + kj0
    base = x_ptr + n * sxn + c * sxc
    for ki in tl.static_range(KH):
        for kj in tl.static_range(KW):
            h = h0 + ki * dh
            w = w0 + kj * dw
            valid = mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            v = tl.load(base + h * sxh + w * sxw, mask=valid, other=float("-inf")).to(ACC)
            # Stock's rule: the first of equal maxima, the last NaN.
            take = valid & ((v > best) | (v != v))
            best = tl.where(take, v, best)
            best_tap = tl.where(take, ki * KW + kj, best_tap)
    tl.store(out_ptr + o, best.to(out_ptr.dtype.element_ty), mask=mask)
    if COMPACT:
        tl.store(idx_ptr + o, best_tap.to(tl.uint8), mask=mask)
    else:
        pos = (h0 + (best_tap // KW) * dh) * W + w0 + (best_tap % KW) * dw
        tl.store(idx_ptr + o, pos.to(tl.int64), mask=mask)


@triton.jit
def _pool_backward_kernel(
    out_ptr,  # gradient of x (N, C, H, W), contiguous in its format
    g_ptr, idx_ptr,  # gradient of the pooled values and the indices, any strides
    sgn, sgc, sgh, sgw,  # grad strides
    sin, sic, sih, siw,  # indices strides
    C, H, W, PH, PW, total,
    sh, sw, pad_h, pad_w, dh, dw,
    KH: tl.constexpr, KW: tl.constexpr,
    COMPACT: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ACC: tl.constexpr,  # compute type: float64 for float64 tensors, else float32
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, h, w = nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST)
    pos = h * W + w
    acc = tl.zeros((BLOCK,), ACC)
    # The windows covering (h, w) start at taps ki, kj; visited in pooled-position order.
    for ki in tl.static_range(KH - 1, -1, -1):
        for kj in tl.static_range(KW - 1, -1, -1):
            ph, pw, ok = _covering_window(h, w, ki, kj, mask, PH, PW, sh, sw, pad_h, pad_w,
                                          dh, dw)
            idx = tl.load(idx_ptr + n * sin + c * sic + ph * sih + pw * siw, mask=ok, other=0)
            named = _position(idx.to(tl.int64), ph, pw, H, W, KW, sh, sw, pad_h, pad_w, dh, dw,
                              KH, COMPACT)
            hit = ok & (named == pos)
            g = tl.load(g_ptr + n * sgn + c * sgc + ph * sgh + pw * sgw, mask=hit, other=0.0)
            acc += g.to(ACC)
    tl.store(out_ptr + o, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _unpool_winner(x_base, i_base, sxh, sxw, sih, siw, h, w, mask, H, W, PH, PW, sh, sw,
                   pad_h, pad_w, KH: tl.constexpr, KW: tl.constexpr, COMPACT: tl.constexpr,
                   ACC: tl.constexpr, BLOCK: tl.constexpr):
    """unpool_winner of max_pool.h: the pooled position whose index names (h, w) with the
    largest value (NaN largest; ties: lowest position), and that value; -1 and 0 if none."""
    pos = h * W + w
    best = tl.full((BLOCK,), -1, tl.int64)
    best_v = tl.zeros((BLOCK,), ACC)
    for ki in tl.static_range(KH - 1, -1, -1):
        for kj in tl.static_range(KW - 1, -1, -1):
            ph, pw, ok = _covering_window(h, w, ki, kj, mask, PH, PW, sh, sw, pad_h, pad_w,
                                          1, 1)
            idx = tl.load(i_base + ph * sih + pw * siw, mask=ok, other=0).to(tl.int64)
            named = _position(idx, ph, pw, H, W, KW, sh, sw, pad_h, pad_w, 1, 1, KH, COMPACT)
            hit = ok & (named == pos)
            v = tl.load(x_base + ph * sxh + pw * sxw, mask=hit, other=0.0).to(ACC)
            q = ph * PW + pw
            # Candidates arrive in decreasing ki, kj: pooled rows ascending only per axis, so
            # compare positions explicitly for the tie rule.
            best_nan = best_v != best_v
            v_nan = v != v
            better = (best < 0) | (v_nan & ~best_nan) | (v > best_v) | (
                ((v == best_v) | (v_nan & best_nan)) & (q < best))
            take = hit & better
            best = tl.where(take, q, best)
            best_v = tl.where(take, v, best_v)
    return best, best_v


@triton.jit
def _unpool_kernel(
    out_ptr,  # (N, C, H, W), contiguous in its format
    x_ptr, idx_ptr,  # pooled values and indices (N, C, PH, PW), any strides
    sxn, sxc, sxh, sxw, sin, sic, sih, siw,
    C, H, W, PH, PW, total,
    sh, sw, pad_h, pad_w,
    KH: tl.constexpr, KW: tl.constexpr,
    COMPACT: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ACC: tl.constexpr,  # compute type: float64 for float64 tensors, else float32
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, h, w = nchw_or_nhwc_coords(o, C, H, W, CHANNELS_LAST)
    best, v = _unpool_winner(x_ptr + n * sxn + c * sxc, idx_ptr + n * sin + c * sic, sxh, sxw,
                             sih, siw, h, w, mask, H, W, PH, PW, sh, sw, pad_h, pad_w, KH, KW,
                             COMPACT, ACC, BLOCK)
    tl.store(out_ptr + o, tl.where(best >= 0, v, 0.0).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _unpool_backward_kernel(
    out_ptr,  # gradient of x (N, C, PH, PW), contiguous in its format
    g_ptr,  # gradient of the unpooled output (N, C, H, W), any strides
    x_ptr, idx_ptr,  # pooled values and indices, any strides
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sin, sic, sih, siw,
    C, H, W, PH, PW, total,
    sh, sw, pad_h, pad_w,
    KH: tl.constexpr, KW: tl.constexpr,
    COMPACT: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ACC: tl.constexpr,  # compute type: float64 for float64 tensors, else float32
    BLOCK: tl.constexpr,
):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    n, c, ph, pw = nchw_or_nhwc_coords(o, C, PH, PW, CHANNELS_LAST)
    i_base = idx_ptr + n * sin + c * sic
    idx = tl.load(i_base + ph * sih + pw * siw, mask=mask, other=0).to(tl.int64)
    pos = _position(idx, ph, pw, H, W, KW, sh, sw, pad_h, pad_w, 1, 1, KH, COMPACT)
    valid = mask & (pos >= 0)
    h = tl.where(valid, pos // W, 0)
    w = tl.where(valid, pos % W, 0)
    best, _ = _unpool_winner(x_ptr + n * sxn + c * sxc, i_base, sxh, sxw, sih, siw, h, w, valid,
                             H, W, PH, PW, sh, sw, pad_h, pad_w, KH, KW, COMPACT, ACC, BLOCK)
    wins = valid & (best == ph * PW + pw)
    g = tl.load(g_ptr + n * sgn + c * sgc + h * sgh + w * sgw, mask=wins, other=0.0)
    tl.store(out_ptr + o, g.to(out_ptr.dtype.element_ty), mask=mask)


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _grid(total: int):
    return (triton.cdiv(total, BLOCK),)


def pool(x, geometry, compact: bool, channels_last: bool):
    g = geometry
    n, c = x.shape[:2]
    out = empty_in_format((n, c, g.PH, g.PW), x, channels_last)
    indices = empty_in_format((n, c, g.PH, g.PW), x, channels_last,
                              torch.uint8 if compact else torch.int64)
    total = out.numel()
    if total:
        _pool_kernel[_grid(total)](
            out, indices, x, *x.stride(), c, g.H, g.W, g.PH, g.PW, total,
            g.sh, g.sw, g.pad_h, g.pad_w, g.dh, g.dw, KH=g.kh, KW=g.kw, COMPACT=compact,
            CHANNELS_LAST=channels_last, ACC=_acc(x.dtype), BLOCK=BLOCK)
    return out, indices


def pool_backward(grad, indices, geometry, compact: bool, channels_last: bool):
    g = geometry
    n, c = grad.shape[:2]
    out = empty_in_format((n, c, g.H, g.W), grad, channels_last)
    total = out.numel()
    if total:
        _pool_backward_kernel[_grid(total)](
            out, grad, indices, *grad.stride(), *indices.stride(), c, g.H, g.W, g.PH, g.PW,
            total, g.sh, g.sw, g.pad_h, g.pad_w, g.dh, g.dw, KH=g.kh, KW=g.kw,
            COMPACT=compact, CHANNELS_LAST=channels_last, ACC=_acc(grad.dtype), BLOCK=BLOCK)
    return out


def unpool(x, indices, geometry, compact: bool, channels_last: bool):
    g = geometry
    n, c = x.shape[:2]
    out = empty_in_format((n, c, g.H, g.W), x, channels_last)
    total = out.numel()
    if total:
        _unpool_kernel[_grid(total)](
            out, x, indices, *x.stride(), *indices.stride(), c, g.H, g.W, g.PH, g.PW, total,
            g.sh, g.sw, g.pad_h, g.pad_w, KH=g.kh, KW=g.kw, COMPACT=compact,
            CHANNELS_LAST=channels_last, ACC=_acc(x.dtype), BLOCK=BLOCK)
    return out


def unpool_backward(grad, x, indices, geometry, compact: bool, channels_last: bool):
    g = geometry
    out = empty_in_format(tuple(x.shape), x, channels_last)
    total = out.numel()
    if total:
        _unpool_backward_kernel[_grid(total)](
            out, grad, x, indices, *grad.stride(), *x.stride(), *indices.stride(), x.shape[1],
            g.H, g.W, g.PH, g.PW, total, g.sh, g.sw, g.pad_h, g.pad_w, KH=g.kh, KW=g.kw,
            COMPACT=compact, CHANNELS_LAST=channels_last, ACC=_acc(grad.dtype), BLOCK=BLOCK)
    return out
