"""Gradients of the Triton convolution (pyimg/triton/conv.py) for x and weight, deterministic.

Input gradient, stride 1: the transposed convolution of the output gradient is a convolution
with the weight flipped in space and its channel axes swapped, padded by span - padding on
each side (span = dilation * (kernel - 1); a negative pad crops); the forward kernel runs it.

Weight gradient: a GEMM never materialised, M = C_out, N = KH*KW*C_in (tap-major, channel
fastest: contiguous in channels_last x), K = N*OH*OW output pixels,

    grad_weight[co, ci, kh, kw] = sum over (n, oh, ow) of
        grad[n, co, oh, ow] * x[n, ci, oh*sh + kh*dh - top, ow*sw + kw*dw - left]

K is cut into SPLITS fixed chunks so a layer with few weight tiles (256 x 2304 is 36 tiles of
128 x 128) still fills the GPU; each chunk writes its partial sums to its own slice of a
workspace in the accumulator's dtype and the slices are summed in index order afterwards. No
atomics: the same bits on every run for a given tile configuration.
"""

import torch
import triton
import triton.language as tl

from pyimg._format import output_memory_format
from pyimg.triton import conv as forward
from pyimg.triton.conv import _INTERPRET, _dot_precision


@triton.jit
def _weight_grad_kernel(
    ws_ptr,  # (SPLITS, C_out, KH*KW*C_in), contiguous
    g_ptr,  # (N, C_out, OH, OW), any strides
    x_ptr,  # (N, C_in, H, W), any strides
    N, C_in, H, W, C_out, OH, OW, KW, taps, chunk,
    sgn, sgc, sgh, sgw,
    sxn, sxc, sxh, sxw,
    stride_h, stride_w, pad_top, pad_left, dil_h, dil_w,
    PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    split = tl.program_id(2)
    co = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    kk = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ci = kk % C_in
    tap = kk // C_in
    kh = tap // KW
    kw = tap % KW
    co_ok = co < C_out
    kk_ok = tap < taps
    pixels = N * OH * OW
    first = split.to(tl.int64) * chunk
    last = tl.minimum(first + chunk, pixels)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for p0 in range(first, last, BLOCK_K):
        # int64 pixel coordinates: N*C*H*W offsets of large batches overflow int32.
        p = p0 + tl.arange(0, BLOCK_K).to(tl.int64)
        p_ok = p < last
        ow = p % OW
        oh = (p // OW) % OH
        n = p // (OW * OH)
        a = tl.load(g_ptr + co[:, None] * sgc + (n * sgn + oh * sgh + ow * sgw)[None, :],
                    mask=co_ok[:, None] & p_ok[None, :], other=0.0)
        ih = (oh * stride_h - pad_top)[:, None] + (kh * dil_h)[None, :]
        iw = (ow * stride_w - pad_left)[:, None] + (kw * dil_w)[None, :]
        b_ok = (p_ok[:, None] & kk_ok[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W))
        b = tl.load(x_ptr + (n * sxn)[:, None] + (ci * sxc)[None, :] + ih * sxh + iw * sxw,
                    mask=b_ok, other=0.0)
        if DOT_IN_FP32:  # exact: products of bfloat16 values are float32 numbers
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
    row = C_out * taps * C_in
    ws = ws_ptr + split * row + co[:, None] * (taps * C_in) + kk[None, :]
    tl.store(ws, acc, mask=co_ok[:, None] & kk_ok[None, :])


def _tiles(c_out: int):
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps): one small tile under the interpreter (tl.dot's
    minimum is 16); on the GPU, BLOCK_M follows C_out down to 16 for few-channel layers."""
    if _INTERPRET:
        return 16, 16, 16, 4
    block_m = 128 if c_out >= 128 else max(16, triton.next_power_of_2(c_out))
    return block_m, 128, 32, 8 if block_m == 128 else 4


def _splits(tiles: int, pixels: int, block_k: int, device: torch.device) -> int:
    """Chunks of K: enough programs for two waves of the GPU's SMs, each chunk at least 16
    K steps long. Under the interpreter, two chunks when there is room, so the sum runs."""
    steps = triton.cdiv(pixels, block_k)
    if _INTERPRET or device.type != "cuda":
        return max(1, min(2, steps))
    programs = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(programs, tiles), steps // 16))


def weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride, padding,
                dilation) -> torch.Tensor:
    """dL/dweight of the convolution (groups 1) with output gradient grad (x's dtype),
    shaped and laid out like weight. padding is (top, bottom, left, right)."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    _, _, oh, ow = grad.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    block_m, block_n, block_k, warps = _tiles(c_out)
    taps, pixels = kh * kw, n * oh * ow
    if pixels == 0:
        return torch.zeros_like(weight)
    tiles_m, tiles_n = triton.cdiv(c_out, block_m), triton.cdiv(taps * c_in, block_n)
    splits = _splits(tiles_m * tiles_n, pixels, block_k, x.device)
    chunk = triton.cdiv(triton.cdiv(pixels, splits), block_k) * block_k
    ws = torch.empty((splits, c_out, taps * c_in), dtype=acc, device=x.device)
    _weight_grad_kernel[(tiles_m, tiles_n, splits)](
        ws, grad, x, n, c_in, h, w, c_out, oh, ow, kw, taps, chunk,
        *grad.stride(), *x.stride(),
        stride[0], stride[1], padding[0], padding[2], dilation[0], dilation[1],
        PRECISION=_dot_precision(x), DOT_IN_FP32=_INTERPRET and x.dtype == torch.bfloat16,
        ACC=tl.float64 if acc == torch.float64 else tl.float32,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps,
        num_stages=1 if _INTERPRET else 3,
    )
    total = ws.sum(0) if splits > 1 else ws[0]
    # (C_out, KH, KW, C_in) is the channels_last layout of (C_out, C_in, KH, KW).
    grad_weight = total.view(c_out, kh, kw, c_in).permute(0, 3, 1, 2).to(weight.dtype)
    return grad_weight.contiguous(memory_format=output_memory_format(weight))


def input_grad(grad: torch.Tensor, weight: torch.Tensor, padding, dilation,
               channels_last: bool) -> torch.Tensor:
    """dL/dx of the stride-1 convolution (groups 1) with output gradient grad (x's dtype),
    by the forward kernel. padding is (top, bottom, left, right)."""
    kh, kw = weight.shape[2:]
    span_h, span_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    top, bottom, left, right = padding
    flipped = weight.flip(2, 3).transpose(0, 1)
    pads = (span_h - top, span_h - bottom, span_w - left, span_w - right)
    return forward.conv2d(grad, flipped, None, (1, 1), pads, dilation, None, None, "none", None,
                          0.0, None, False, 1, channels_last)
