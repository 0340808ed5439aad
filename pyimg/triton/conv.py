"""Triton implicit-GEMM 2-D convolution with a fused per-channel epilogue.

The convolution is a GEMM that is never materialised (no im2col buffer): M = N*OH*OW output
pixels, N = C_out, K = KH*KW*C_in. Each program owns a BLOCK_M x BLOCK_N output tile and walks
K in one loop (one loop, so Triton software-pipelines the loads), gathering its input tile
straight from x through x's strides: channels_last x makes a K slice contiguous (the fast
path), NCHW and strided views work unchanged. Zero padding is a load mask, so asymmetric
('same' with an even kernel) padding costs nothing. Accumulation is float32 (float64 for
float64 inputs); float16/bfloat16 run tl.dot on tensor cores.

Epilogue, per output channel co, in the accumulator's precision:
    u = (acc + bias) * scale + shift
    y = act(u [+ residual]) [+ residual]      (residual before or after the activation)
stored pixel-shuffled by R (Shi et al. 2016): co -> channel co // R^2 at
(oh*R + (co % R^2) // R, ow*R + co % R); the activation's PReLU weight and the residual live
in that shuffled output. R = 1 is a plain store.
"""

import os

import torch
import triton
import triton.language as tl

from pyimg._activation import ACTIVATIONS
from pyimg.triton.activation import PRELU, activate

# Under the interpreter (CPU tests) one small tile: no tuning runs, and tl.dot's minimum
# block is 16. On the GPU a handful of tiles, the large ones for tensor-core-bound layers,
# BLOCK_N = 16/32 for few output channels (the 64 -> 3 tail of super-resolution nets).
_INTERPRET_CONFIGS = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 4})]
_GPU_CONFIGS = [
    triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8},
                  num_warps=w, num_stages=s)
    for m, n, k, w, s in (
        (128, 128, 64, 8, 3),
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 64, 64, 4, 4),
        (64, 128, 64, 4, 4),
        (64, 64, 32, 4, 4),
        (128, 32, 64, 4, 4),
        (256, 16, 64, 4, 3),
        (128, 16, 32, 4, 4),
    )
]
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_CONFIGS = _INTERPRET_CONFIGS if _INTERPRET else _GPU_CONFIGS


@triton.jit
def _load_input_tile(x_ptr, x_base, ih0, iw0, m_ok, k0, C_in, H, W, KW, taps, cblocks,
                     sxc, sxh, sxw, dil_h, dil_w, w_ptr, co, swo, swi, swh, sww, C_out,
                     SMALL_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """The (BLOCK_M, BLOCK_K) input tile and (BLOCK_K, BLOCK_N) weight tile of K step k0.

    SMALL_C: K is one flat range over (kh, kw, ci), decomposed per element, so few input
    channels (1, 3) do not waste a BLOCK_K of channels per kernel tap. Otherwise step k0 is
    one tap (kh, kw) and one block of channels: the tap is a scalar and the channel block is
    contiguous in channels_last x."""
    if SMALL_C:
        k = k0 * BLOCK_K + tl.arange(0, BLOCK_K)
        ci = k % C_in
        tap = k // C_in
        kh = tap // KW
        kw = tap % KW
        k_ok = tap < taps
        ih = ih0[:, None] + (kh * dil_h)[None, :]
        iw = iw0[:, None] + (kw * dil_w)[None, :]
        a_ok = m_ok[:, None] & k_ok[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a_ptr = x_ptr + x_base[:, None] + ci[None, :] * sxc + ih * sxh + iw * sxw
        b_ptr = w_ptr + co[None, :] * swo + (ci * swi + kh * swh + kw * sww)[:, None]
        b_ok = k_ok[:, None] & (co < C_out)[None, :]
    else:
        tap = k0 // cblocks
        kh = tap // KW
        kw = tap % KW
        ci = (k0 % cblocks) * BLOCK_K + tl.arange(0, BLOCK_K)
        c_ok = ci < C_in
        ih = ih0 + kh * dil_h
        iw = iw0 + kw * dil_w
        pix_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a_ok = pix_ok[:, None] & c_ok[None, :]
        a_ptr = x_ptr + (x_base + ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc
        b_ptr = w_ptr + co[None, :] * swo + ci[:, None] * swi + kh * swh + kw * sww
        b_ok = c_ok[:, None] & (co < C_out)[None, :]
    a = tl.load(a_ptr, mask=a_ok, other=0.0)
    b = tl.load(b_ptr, mask=b_ok, other=0.0)
    return a, b


# Tuned per problem: the pixel count and x's layout change the best tile as much as the
# channel counts do (the dtypes are part of every autotune key).
@triton.autotune(configs=_CONFIGS, key=["N", "OH", "OW", "C_in", "C_out", "KH", "KW", "SMALL_C",
                                        "PRECISION", "X_CHANNELS_LAST"])
@triton.jit
def _conv2d_kernel(
    out_ptr,  # (N, C_out / R^2, OH*R, OW*R), any strides
    x_ptr,  # (N, C_in, H, W), any strides
    w_ptr,  # (C_out, C_in, KH, KW), any strides
    bias_ptr, scale_ptr, shift_ptr,  # (C_out,) each, contiguous, or unused
    alpha_ptr,  # PReLU weight (leaky_relu's slope too): (C_out / R^2,) or (1,), contiguous
    res_ptr,  # residual shaped like out, any strides, or unused
    N, C_in, H, W, C_out, OH, OW, KH, KW,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    son, soc, soh, sow,
    srn, src, srh, srw,
    stride_h, stride_w, pad_top, pad_left, dil_h, dil_w,
    R: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr,
    ACT: tl.constexpr, ALPHA_PER_CHANNEL: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ADD_BEFORE_ACT: tl.constexpr,
    SMALL_C: tl.constexpr,
    X_CHANNELS_LAST: tl.constexpr,  # x.stride(1) == 1: a tuning key only
    PRECISION: tl.constexpr,  # tl.dot input_precision: "ieee" (exact float32) or "tf32"
    DOT_IN_FP32: tl.constexpr,  # bfloat16 under the interpreter, whose bf16 tl.dot is wrong
    ACC: tl.constexpr,  # accumulator dtype: tl.float32 or tl.float64
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    # Grouped program order: GROUP_M row tiles share each weight tile while it is in L2.
    M = N * OH * OW
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(C_out, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    # int64 pixel coordinates: N*C*H*W offsets of large batches overflow int32.
    m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    ow = m % OW
    oh = (m // OW) % OH
    n = m // (OW * OH)
    co = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ih0 = oh * stride_h - pad_top
    iw0 = ow * stride_w - pad_left
    x_base = n * sxn

    taps = KH * KW
    cblocks = tl.cdiv(C_in, BLOCK_K)
    if SMALL_C:
        steps = tl.cdiv(C_in * taps, BLOCK_K)
    else:
        steps = taps * cblocks
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for k0 in range(0, steps):
        a, b = _load_input_tile(x_ptr, x_base, ih0, iw0, m_ok, k0, C_in, H, W, KW, taps,
                                cblocks, sxc, sxh, sxw, dil_h, dil_w, w_ptr, co, swo, swi, swh,
                                sww, C_out, SMALL_C, BLOCK_K)
        if DOT_IN_FP32:  # exact: products of bfloat16 values are float32 numbers
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)

    co_ok = co < C_out
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=co_ok, other=0.0).to(ACC)[None, :]
    if HAS_SCALE:
        acc *= tl.load(scale_ptr + co, mask=co_ok, other=0.0).to(ACC)[None, :]
    if HAS_SHIFT:
        acc += tl.load(shift_ptr + co, mask=co_ok, other=0.0).to(ACC)[None, :]

    # The pixel-shuffled destination (R = 1: the plain one).
    c_out = co // (R * R)
    oh_out = oh[:, None] * R + ((co % (R * R)) // R)[None, :]
    ow_out = ow[:, None] * R + (co % R)[None, :]
    ok = m_ok[:, None] & co_ok[None, :]
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + n[:, None] * srn + c_out[None, :] * src + oh_out * srh
                      + ow_out * srw, mask=ok, other=0.0).to(ACC)
        if ADD_BEFORE_ACT:
            acc += res
    if ACT != 0:
        if ACT == PRELU and ALPHA_PER_CHANNEL:
            alpha = tl.load(alpha_ptr + c_out, mask=co_ok, other=0.0).to(ACC)[None, :]
        elif ACT == PRELU:
            alpha = tl.load(alpha_ptr).to(ACC)
        else:
            alpha = 0.0
        acc = activate(acc, alpha, ACT)
    if HAS_RESIDUAL and not ADD_BEFORE_ACT:
        acc += res
    out = out_ptr + n[:, None] * son + c_out[None, :] * soc + oh_out * soh + ow_out * sow
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=ok)


def use_tf32(x: torch.Tensor) -> bool:
    """TF32 for float32 exactly when stock convolution would use it: a CUDA tensor and
    torch.backends.cudnn.allow_tf32 (PyTorch's default: True). Read at run time, inside the op,
    so compiled graphs follow the flag as eager does."""
    return x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32


def _dot_precision(x: torch.Tensor) -> str:
    # float16 / bfloat16 ignore it: they get tl.dot's default (tf32), the common path.
    if x.dtype in (torch.float16, torch.bfloat16) or use_tf32(x):
        return "tf32"
    return "ieee"


def _out_size(size: int, pad: int, dilation: int, kernel: int, stride: int) -> int:
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation, prelu_weight,
           negative_slope, residual, add_before_activation, r, channels_last: bool):
    """Launch the kernel. padding is (top, bottom, left, right); the checks are the caller's."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    oh = _out_size(h, padding[0] + padding[1], dilation[0], kh, stride[0])
    ow = _out_size(w, padding[2] + padding[3], dilation[1], kw, stride[1])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, c_out // (r * r), oh * r, ow * r), dtype=x.dtype, device=x.device,
                      memory_format=fmt)
    if out.numel() == 0:
        return out
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if activation == "leaky_relu":
        # As a one-weight PReLU: a Python float would reach the kernel rounded to float32.
        activation = "prelu"
        prelu_weight = torch.full((1,), negative_slope, dtype=acc, device=x.device)
    # The kernel reads the per-channel tensors as arrays (bias_ptr + co), views included.
    bias, scale, shift, prelu_weight = (None if t is None else t.contiguous()
                                        for t in (bias, scale, shift, prelu_weight))
    res_strides = residual.stride() if residual is not None else (0, 0, 0, 0)
    small_c = c_in < 32
    m = n * oh * ow

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(c_out, meta["BLOCK_N"]),)

    _conv2d_kernel[grid](
        out, x, weight, *(t if t is not None else x for t in (bias, scale, shift, prelu_weight,
                                                             residual)),
        n, c_in, h, w, c_out, oh, ow, kh, kw,
        *x.stride(), *weight.stride(), *out.stride(), *res_strides,
        stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1],
        R=r, HAS_BIAS=bias is not None, HAS_SCALE=scale is not None,
        HAS_SHIFT=shift is not None, ACT=ACTIVATIONS.index(activation),
        ALPHA_PER_CHANNEL=prelu_weight is not None and prelu_weight.numel() > 1,
        HAS_RESIDUAL=residual is not None, ADD_BEFORE_ACT=add_before_activation,
        SMALL_C=small_c, X_CHANNELS_LAST=x.stride(1) == 1, PRECISION=_dot_precision(x),
        DOT_IN_FP32=_INTERPRET and x.dtype == torch.bfloat16,
        ACC=tl.float64 if acc == torch.float64 else tl.float32,
    )
    return out
