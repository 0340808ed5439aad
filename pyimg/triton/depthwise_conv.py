"""Triton depthwise convolution (groups = C_in) with the conv epilogue fused into the store.

Direct, like csrc/ops/cuda/depthwise_conv_kernel.cu: each program owns BLOCK consecutive
output elements in memory order (along W for NCHW, along channels for channels_last), each
element sums its KH * KW taps in a fixed order, then
    u = (acc + bias) * scale + shift,   y = act(u [+ residual]) [+ residual].
x and the residual come contiguous in the output's layout; the weight taps-major, (KH * KW,
C_out), in the accumulator's dtype.
"""

import torch
import triton
import triton.language as tl

from pyimg._activation import ACTIVATIONS
from pyimg.triton.activation import PRELU, activate

_BLOCK = 256


@triton.jit
def _depthwise_kernel(
    out_ptr, x_ptr, taps_ptr,
    bias_ptr, scale_ptr, shift_ptr, alpha_ptr, res_ptr,  # or unused
    numel, C, H, W, C_out, OH, OW, KH, KW, multiplier,
    stride_h, stride_w, pad_top, pad_left, dil_h, dil_w,
    CHANNELS_LAST: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr,
    ACT: tl.constexpr, ALPHA_PER_CHANNEL: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ADD_BEFORE_ACT: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    # int64: N*C*H*W offsets of large batches overflow int32.
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < numel
    if CHANNELS_LAST:
        co = i % C_out
        ow = (i // C_out) % OW
        oh = (i // (C_out * OW)) % OH
        n = i // (C_out * OW * OH)
        ci = co // multiplier
        base = n * H * W * C + ci
        row_stride = W * C
        col_stride = C
    else:
        ow = i % OW
        oh = (i // OW) % OH
        co = (i // (OW * OH)) % C_out
        n = i // (OW * OH * C_out)
        ci = co // multiplier
        base = (n * C + ci) * H * W
        row_stride = W
        col_stride = 1
    acc = tl.zeros((BLOCK,), dtype=ACC)
    for kh in range(0, KH):
        ih = oh * stride_h - pad_top + kh * dil_h
        row_ok = ok & (ih >= 0) & (ih < H)
        for kw in range(0, KW):
            iw = ow * stride_w - pad_left + kw * dil_w
            tap_ok = row_ok & (iw >= 0) & (iw < W)
            w = tl.load(taps_ptr + (kh * KW + kw) * C_out + co, mask=ok, other=0.0)
            v = tl.load(x_ptr + base + ih * row_stride + iw * col_stride, mask=tap_ok,
                        other=0.0)
            acc += w * v.to(ACC)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=ok, other=0.0)
    if HAS_SCALE:
        acc *= tl.load(scale_ptr + co, mask=ok, other=0.0)
    if HAS_SHIFT:
        acc += tl.load(shift_ptr + co, mask=ok, other=0.0)
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + i, mask=ok, other=0.0).to(ACC)
        if ADD_BEFORE_ACT:
            acc += res
    if ACT != 0:
        if ACT == PRELU and ALPHA_PER_CHANNEL:
            alpha = tl.load(alpha_ptr + co, mask=ok, other=0.0)
        elif ACT == PRELU:
            alpha = tl.load(alpha_ptr)
        else:
            alpha = 0.0
        acc = activate(acc, alpha, ACT)
    if HAS_RESIDUAL and not ADD_BEFORE_ACT:
        acc += res
    tl.store(out_ptr + i, acc.to(out_ptr.dtype.element_ty), mask=ok)


def depthwise_conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                     prelu_weight, negative_slope, residual, add_before_activation,
                     out_shape, channels_last: bool):
    """Launch the kernel. padding is (top, bottom, left, right); the checks are the caller's."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(out_shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if out.numel() == 0:
        return out
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    c_out, _, kh, kw = weight.shape

    def table(t):
        return None if t is None else t.reshape(-1).to(acc).contiguous()

    if activation == "leaky_relu":
        # As a one-weight PReLU: a Python float would reach the kernel rounded to float32.
        activation = "prelu"
        prelu_weight = torch.full((1,), negative_slope, dtype=acc, device=x.device)
    taps = weight.reshape(c_out, kh * kw).t().to(acc).contiguous()
    tables = [table(t) for t in (bias, scale, shift, prelu_weight)]
    x = x.contiguous(memory_format=fmt)
    if residual is not None:
        residual = residual.contiguous(memory_format=fmt)
    _depthwise_kernel[(triton.cdiv(out.numel(), _BLOCK),)](
        out, x, taps, *(t if t is not None else taps for t in (*tables, residual)),
        out.numel(), x.shape[1], x.shape[2], x.shape[3], c_out, out.shape[2], out.shape[3],
        kh, kw, c_out // x.shape[1],
        stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1],
        CHANNELS_LAST=channels_last, HAS_BIAS=bias is not None, HAS_SCALE=scale is not None,
        HAS_SHIFT=shift is not None, ACT=ACTIVATIONS.index(activation),
        ALPHA_PER_CHANNEL=prelu_weight is not None and prelu_weight.numel() > 1,
        HAS_RESIDUAL=residual is not None, ADD_BEFORE_ACT=add_before_activation,
        ACC=tl.float64 if acc == torch.float64 else tl.float32, BLOCK=_BLOCK,
    )
    return out
