"""Max-pool with indices and max-unpool, the encoder/decoder pair of SegNet (Badrinarayanan et
al. 2017, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation"):
the decoder upsamples by writing each pooled value back where its maximum came from.

Backends: ``cpu`` and ``cuda`` run ``torch.ops.pyimg.max_pool2d_with_indices`` /
``max_unpool2d`` (csrc/ops/), ``triton`` the ``*_triton`` ops (pyimg/triton/max_pool.py),
``torch`` the stock-op reference below. This file registers the ops' fake kernels and autograd.

Index formats. ``flat``: int64 positions h * W + w in each (H, W) plane, exactly what
``F.max_pool2d(..., return_indices=True)`` returns. ``compact``: uint8 tap numbers
ki * kernel_w + kj inside each window, 8x less index traffic; valid for kernels of at most 256
taps, and only for an unpool with the pool's kernel_size, stride and padding and a pool of
dilation 1 (unpool has no dilation). Unpool takes either, telling them apart by dtype.

Semantics. Pooling matches stock exactly: taps in row-major order, the first of equal maxima
wins, a NaN wins over numbers (the last NaN of the window), indices of an all -inf window name
its first in-plane tap. Unpool is a gather (each output element decides whether it receives a
value, so the output is written once and the result is deterministic). Where several indices
name one output position (overlapping windows, or hand-made indices; stock is
nondeterministic there and CPU and GPU disagree, PyTorch's GitHub issues 78249 and 132041),
the largest value wins, NaN counting as the largest, ties going to the lowest pooled position;
-0.0 and +0.0 count as equal. The unpool backward gives the gradient to that winner only (the
derivative of the forward); stock gives it to every duplicate. An index naming no position of
the output plane raises (the ``cuda`` backend, like stock's CUDA kernel, checks on the device
without a host sync: a device-side assert); nothing is ever written out of bounds. Flat indices
outside their own window (in the plane, but not what a max-pool of this geometry produces) are
handled by a slower path with the same rule.

Layout: outputs keep the input's memory format (channels_last in, channels_last out); indices
come in the values' layout.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.fx.experimental.symbolic_shapes import statically_known_true

from pyimg import _backend
from pyimg._extension import eager
from pyimg._format import empty_like_format, output_memory_format
from pyimg.ops._common import check_4d, unsupported_dtype
from pyimg.ops._registry import ByBackend, callable_op, register

_INDEX_DTYPES = {torch.int64: False, torch.uint8: True}  # dtype -> compact


def _pair(v, name: str) -> list[int]:
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    if len(v) == 1:
        return [v[0], v[0]]
    if len(v) != 2:
        raise RuntimeError(f"max_pool2d: {name} must be a single int or a pair of ints")
    return v


@dataclass(frozen=True)
class PoolGeometry:
    """csrc/ops/max_pool.h's PoolGeometry: plane (H, W), pooled plane (PH, PW)."""

    kh: int
    kw: int
    sh: int
    sw: int
    pad_h: int
    pad_w: int
    dh: int
    dw: int
    H: int
    W: int
    PH: int
    PW: int

    def args(self):
        """(kernel_size, stride, padding, dilation) as the ops take them."""
        return ([self.kh, self.kw], [self.sh, self.sw], [self.pad_h, self.pad_w],
                [self.dh, self.dw])


def _pooled_size(size, k, s, p, d, ceil_mode):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode:  # the last window must start inside the input or its left padding
        # A minimum, not a branch on the size: torch.export keeps a symbolic size symbolic.
        out = torch.sym_min(out, (size + p - 1) // s + 1)
    return out


# -- the public functions' own checks: stock's, of what they hand the ops ---------------------


def _check_input(x: torch.Tensor, op: str) -> None:
    if x.dim() not in (3, 4) or 0 in x.shape[-3:]:
        raise RuntimeError(f"{op}: non-empty 3D or 4D (batch mode) tensor expected for input")


def _pool_args(kernel_size, stride, padding, dilation) -> tuple[list[int], ...]:
    """(kernel_size, stride, padding, dilation) as pairs, as the pool op takes them; stride
    defaults to kernel_size."""
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == [] else _pair(stride, "stride")
    return kernel, stride, _pair(padding, "padding"), _pair(dilation, "dilation")


def _index_format(indices: torch.Tensor) -> bool:
    """Whether indices are compact (uint8) rather than flat (int64)."""
    if indices.dtype not in _INDEX_DTYPES:
        raise RuntimeError(f"max_unpool2d: elements in indices should be type int64 (flat) or "
                           f"uint8 (compact) but got: {indices.dtype}")
    return _INDEX_DTYPES[indices.dtype]


def _unpool_output_size(x, kernel, stride, padding, output_size) -> list:
    """Stock F.max_unpool2d's output plane (H, W): its default, or output_size checked."""
    PH, PW = x.shape[-2:]
    default = ((PH - 1) * stride[0] + kernel[0] - 2 * padding[0],
               (PW - 1) * stride[1] + kernel[1] - 2 * padding[1])
    if output_size is None:
        return list(default)
    size = tuple(output_size)
    if len(size) == 4:  # (N, C, H, W), as stock takes it
        size = size[2:]
    if len(size) != 2:
        raise ValueError(f"output_size should be a sequence containing 2 or 4 elements, "
                         f"but it has a length of '{len(size)}'")
    for d, (got, dflt, s) in enumerate(zip(size, default, stride, strict=True)):
        # Symbolic sizes (torch.export) are rejected only when provably out of range.
        if statically_known_true(got <= dflt - s) or statically_known_true(got >= dflt + s):
            raise ValueError(f'invalid output_size "{size}" (dim {d} must be between '
                             f"{dflt - s} and {dflt + s})")
    return list(size)


# -- the ops' checks, as the C++ ops make them: the Triton ops, the fakes and the torch path ---


def check_pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact) -> PoolGeometry:
    """Checks the pool op's pairs against x's plane (its last two dimensions) and returns the
    geometry."""
    op = "max_pool2d_with_indices"
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"{op}: kernel_size must be greater than zero")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"{op}: stride should not be zero")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(f"{op}: dilation should be greater than zero")
    if ph < 0 or pw < 0 or ph > kh // 2 or pw > kw // 2:  # stock's rule: dilation not counted
        raise RuntimeError(f"{op}: pad should be at most half of kernel size")
    if compact and kh * kw > 256:
        raise RuntimeError(f"{op}: compact (uint8) indices need kernel_size[0] * "
                           f"kernel_size[1] <= 256, got {kh * kw}")
    H, W = x.shape[-2:]
    PH = _pooled_size(H, kh, sh, ph, dh, ceil_mode)
    PW = _pooled_size(W, kw, sw, pw, dw, ceil_mode)
    if PH <= 0 or PW <= 0:
        raise RuntimeError(f"{op}: given input size ({H}x{W}), the calculated output size "
                           f"({PH}x{PW}) is too small")
    return PoolGeometry(kh, kw, sh, sw, ph, pw, dh, dw, H, W, PH, PW)


def check_unpool(x, indices, kernel_size, stride, padding, output_size,
                 compact) -> PoolGeometry:
    """Checks the unpool op's arguments (indices shaped like x, pairs, output_size (H, W)) and
    returns the geometry."""
    op = "max_unpool2d"
    if indices.shape != x.shape:
        raise RuntimeError(f"{op}: expected shape of indices to be same as that of the input "
                           f"tensor ({list(x.shape)}) but got indices tensor with shape: "
                           f"{list(indices.shape)}")
    if indices.device != x.device:
        raise RuntimeError(f"{op}: indices must be on the input's device")
    if indices.dtype != (torch.uint8 if compact else torch.int64):
        kind = "uint8 (compact indices)" if compact else "int64 (flat indices)"
        raise RuntimeError(f"{op}: elements in indices should be type {kind} but got: "
                           f"{indices.dtype}")
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if min(kh, kw, sh, sw) <= 0 or min(ph, pw) < 0:
        raise RuntimeError(f"{op}: kernel_size and stride must be positive, padding "
                           "non-negative")
    H, W = output_size
    if statically_known_true(H < 0) or statically_known_true(W < 0):
        raise RuntimeError(f"{op}: output_size must be non-negative")
    if compact and kh * kw > 256:
        raise RuntimeError(f"{op}: compact (uint8) indices need at most 256 taps")
    return PoolGeometry(kh, kw, sh, sw, ph, pw, 1, 1, H, W, *x.shape[-2:])


def pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, compact) -> PoolGeometry:
    """The geometry of max_pool2d_with_indices's arguments, checked as the public function and
    the op check them."""
    _check_input(x, "max_pool2d")
    return check_pool(x, *_pool_args(kernel_size, stride, padding, dilation), ceil_mode, compact)


def unpool_geometry(x, indices, kernel_size, stride, padding, output_size) -> PoolGeometry:
    """The geometry of max_unpool2d's arguments, checked as the public function and the op
    check them."""
    _check_input(x, "max_unpool2d")
    compact = _index_format(indices)
    kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding, 1)
    size = _unpool_output_size(x, kernel, stride, padding, output_size)
    return check_unpool(x, indices, kernel, stride, padding, size, compact)


# -- the torch reference backend -------------------------------------------------------------


def compact_from_flat(flat: torch.Tensor, g: PoolGeometry) -> torch.Tensor:
    """The tap inside each window that flat indices name (uint8). A window with no tap in the
    plane (dilation can leave all of it in the padding) has a flat index outside the plane, as
    stock's; its tap is the kernels', the first past the padding."""
    h0 = torch.arange(g.PH, device=flat.device).view(-1, 1) * g.sh - g.pad_h
    w0 = torch.arange(g.PW, device=flat.device) * g.sw - g.pad_w
    ki = (flat // g.W - h0) // g.dh
    kj = (flat % g.W - w0) // g.dw
    ki0 = ((-h0).clamp(min=0) + g.dh - 1) // g.dh
    kj0 = ((-w0).clamp(min=0) + g.dw - 1) // g.dw
    no_tap = (h0 + ki0 * g.dh >= g.H) | (w0 + kj0 * g.dw >= g.W)
    return torch.where(no_tap, ki0 * g.kw + kj0, ki * g.kw + kj).to(torch.uint8)


def flat_from_compact(taps: torch.Tensor, g: PoolGeometry) -> torch.Tensor:
    """The plane positions compact indices name; -1 where one names none (max_pool.h)."""
    t = taps.long()
    h = (torch.arange(g.PH, device=t.device).view(-1, 1) * g.sh - g.pad_h) + (t // g.kw) * g.dh
    w = (torch.arange(g.PW, device=t.device) * g.sw - g.pad_w) + (t % g.kw) * g.dw
    ok = (t < g.kh * g.kw) & (h >= 0) & (h < g.H) & (w >= 0) & (w < g.W)
    return torch.where(ok, h * g.W + w, -1)


def max_pool2d_reference(x4, g: PoolGeometry, ceil_mode: bool, compact: bool):
    """Stock max_pool2d (4-D x), indices converted to compact on request; x's memory format.
    The values are differentiable as a gather of x at the indices: stock's backward writes
    out of bounds for a window wholly in the padding (dilation), whose index is no position
    of its window (a column past the row's end reads as the next row's); such a window keeps
    stock's value and gets no gradient."""
    kernel, stride, padding, dilation = g.args()
    with torch.no_grad():
        values, idx = F.max_pool2d(x4, kernel, stride, padding, dilation, ceil_mode,
                                   return_indices=True)
    n, c, ph, pw = idx.shape
    plane = g.H * g.W
    in_plane = (_has_taps(ph, g.H, g.kh, g.sh, g.pad_h, g.dh, idx.device)[:, None]
                & _has_taps(pw, g.W, g.kw, g.sw, g.pad_w, g.dw, idx.device)[None, :])
    taken = x4.reshape(n, c, plane).gather(2, idx.clamp(0, plane - 1).reshape(n, c, ph * pw))
    y = torch.where(in_plane, taken.view(idx.shape), values)
    if compact:
        idx = compact_from_flat(idx, g)
    fmt = output_memory_format(x4)
    return y.contiguous(memory_format=fmt), idx.contiguous(memory_format=fmt)


def _has_taps(pooled, size, k, s, p, d, device) -> torch.Tensor:
    """Along one axis, which pooled positions' windows have a tap inside the input."""
    taps = (torch.arange(pooled, device=device)[:, None] * s - p
            + torch.arange(k, device=device)[None, :] * d)
    return ((taps >= 0) & (taps < size)).any(1)


def _capturing(t: torch.Tensor) -> bool:
    """Whether t's stream is being captured into a CUDA graph, where reading a value back to
    the host is an error."""
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def _checked_flat(indices, g: PoolGeometry, compact: bool) -> torch.Tensor:
    flat = flat_from_compact(indices, g) if compact else indices
    bad = (flat < 0) | (flat >= g.H * g.W)
    if _capturing(flat):
        # Checked on the device: a bad index fails the replay with this message.
        torch._assert_async(~bad.any(), f"Found an invalid max index (output volumes are of "
                                        f"size {g.H}x{g.W})")
    elif bad.any():
        raise RuntimeError(f"Found an invalid max index: {indices[bad][0].item()} (output "
                           f"volumes are of size {g.H}x{g.W})")
    return flat


def _winners(values: torch.Tensor, idx: torch.Tensor, plane: int) -> torch.Tensor:
    """Per pooled element (rows of planes), whether it wins its output position: the largest
    value (NaN largest), ties to the lowest pooled position."""
    top = torch.zeros(values.shape[0], plane, dtype=values.dtype, device=values.device)
    top = top.scatter_reduce(1, idx, values, "amax", include_self=False).gather(1, idx)
    is_max = (values == top) | (values.isnan() & top.isnan())
    n = values.shape[1]
    pos = torch.arange(n, device=idx.device).expand_as(idx)
    first = torch.full((idx.shape[0], plane), n, dtype=torch.long, device=idx.device)
    first = first.scatter_reduce(1, idx, torch.where(is_max, pos, n), "amin")
    return first.gather(1, idx) == pos


def max_unpool2d_reference(x4, indices, g: PoolGeometry):
    """Unpool from stock ops with pyimg's duplicate rule; differentiable in x, where only the
    winners get gradients. Deterministic: only winners are scattered (unique targets); the
    others go to a spare column that is dropped."""
    compact = indices.dtype == torch.uint8
    planes = x4.shape[0] * x4.shape[1]
    # Explicit row lengths: -1 is ambiguous for an empty batch.
    idx = _checked_flat(indices, g, compact).reshape(planes, g.PH * g.PW)
    values = x4.reshape(planes, g.PH * g.PW)
    with torch.no_grad():
        target = torch.where(_winners(values.detach(), idx, g.H * g.W), idx, g.H * g.W)
    out = torch.zeros(planes, g.H * g.W + 1, dtype=x4.dtype, device=x4.device)
    out = out.scatter(1, target, values)[:, :-1]
    out = out.reshape(x4.shape[0], x4.shape[1], g.H, g.W)
    return out.contiguous(memory_format=output_memory_format(x4))


def max_unpool2d_reference_backward(grad_out, x4, indices, g: PoolGeometry):
    """The gradient of max_unpool2d_reference in x, without autograd: each winner gets the
    gradient at the position it wins."""
    compact = indices.dtype == torch.uint8
    planes = x4.shape[0] * x4.shape[1]
    idx = _checked_flat(indices, g, compact).reshape(planes, g.PH * g.PW)
    wins = _winners(x4.reshape(planes, g.PH * g.PW), idx, g.H * g.W)
    grad = grad_out.reshape(planes, g.H * g.W).gather(1, idx)
    grad = torch.where(wins, grad, torch.zeros_like(grad)).view(x4.shape)
    return grad.contiguous(memory_format=output_memory_format(x4))


# -- the Triton ops --------------------------------------------------------------------------


def _geometry_of(x, kernel_size, stride, padding, dilation, H, W, PH, PW) -> PoolGeometry:
    return PoolGeometry(*kernel_size, *stride, *padding, *dilation, H, W, PH, PW)


def _channels_last(x: torch.Tensor) -> bool:
    return output_memory_format(x) == torch.channels_last


@torch.library.custom_op("pyimg::max_pool2d_with_indices_triton", mutates_args=())
def _pool_triton(x: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                 dilation: list[int], ceil_mode: bool,
                 compact: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from pyimg.triton import max_pool as kernels

    check_4d(x, "max_pool2d_with_indices")
    g = check_pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact)
    return kernels.pool(x, g, compact, _channels_last(x))


@torch.library.custom_op("pyimg::max_pool2d_with_indices_backward_triton", mutates_args=())
def _pool_backward_triton(grad_out: torch.Tensor, indices: torch.Tensor, input_size: list[int],
                          kernel_size: list[int], stride: list[int], padding: list[int],
                          dilation: list[int], compact: bool) -> torch.Tensor:
    from pyimg.triton import max_pool as kernels

    g = _geometry_of(grad_out, kernel_size, stride, padding, dilation, *input_size,
                     *grad_out.shape[2:])
    return kernels.pool_backward(grad_out, indices, g, compact, _channels_last(grad_out))


def _in_window(indices, g: PoolGeometry, compact: bool) -> bool:
    """Validates (raises on an index outside the plane) and says whether every index lies in
    its own window, where the Triton gather kernels apply. While a CUDA graph is captured that
    cannot be read back, so arbitrary indices are assumed: the general path is sync-free."""
    flat = _checked_flat(indices, g, compact)
    if compact:
        return True
    if _capturing(flat):
        return False
    h0 = torch.arange(g.PH, device=flat.device).view(-1, 1) * g.sh - g.pad_h
    w0 = torch.arange(g.PW, device=flat.device) * g.sw - g.pad_w
    dh, dw = flat // g.W - h0, flat % g.W - w0
    return bool(((dh >= 0) & (dh < g.kh) & (dw >= 0) & (dw < g.kw)).all())


@torch.library.custom_op("pyimg::max_unpool2d_triton", mutates_args=())
def _unpool_triton(x: torch.Tensor, indices: torch.Tensor, kernel_size: list[int],
                   stride: list[int], padding: list[int], output_size: list[int],
                   compact: bool) -> torch.Tensor:
    from pyimg.triton import max_pool as kernels

    check_4d(x, "max_unpool2d")
    g = check_unpool(x, indices, kernel_size, stride, padding, output_size, compact)
    if not _in_window(indices, g, compact):
        return max_unpool2d_reference(x, indices, g)
    return kernels.unpool(x, indices, g, compact, _channels_last(x))


@torch.library.custom_op("pyimg::max_unpool2d_backward_triton", mutates_args=())
def _unpool_backward_triton(grad_out: torch.Tensor, x: torch.Tensor, indices: torch.Tensor,
                            kernel_size: list[int], stride: list[int], padding: list[int],
                            compact: bool) -> torch.Tensor:
    from pyimg.triton import max_pool as kernels

    g = _geometry_of(x, kernel_size, stride, padding, [1, 1], *grad_out.shape[2:],
                     *x.shape[2:])
    if not _in_window(indices, g, compact):
        return max_unpool2d_reference_backward(grad_out, x, indices, g)
    return kernels.unpool_backward(grad_out, x, indices, g, compact, _channels_last(x))


# -- fake kernels and autograd, shared by the C++ and the Triton ops -------------------------


@dataclass(frozen=True)
class _Ops:
    """One backend family's four ops."""

    pool: object
    pool_backward: object
    unpool: object
    unpool_backward: object


def _fake_pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact):
    check_4d(x, "max_pool2d_with_indices")
    g = check_pool(x, kernel_size, stride, padding, dilation, ceil_mode, compact)
    shape = (x.shape[0], x.shape[1], g.PH, g.PW)
    return (empty_like_format(shape, x),
            empty_like_format(shape, x, torch.uint8 if compact else torch.int64))


def _fake_pool_backward(grad_out, indices, input_size, kernel_size, stride, padding, dilation,
                        compact):
    shape = (grad_out.shape[0], grad_out.shape[1], *input_size)
    return empty_like_format(shape, grad_out)


def _fake_unpool(x, indices, kernel_size, stride, padding, output_size, compact):
    check_4d(x, "max_unpool2d")
    check_unpool(x, indices, kernel_size, stride, padding, output_size, compact)
    return empty_like_format((x.shape[0], x.shape[1], *output_size), x)


def _fake_unpool_backward(grad_out, x, indices, kernel_size, stride, padding, compact):
    return empty_like_format(x.shape, x)


def _setup_pool(ctx, inputs, output):
    x, kernel_size, stride, padding, dilation, _, compact = inputs
    ctx.args = (list(x.shape[2:]), kernel_size, stride, padding, dilation, compact)
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _setup_unpool(ctx, inputs, output):
    x, indices, kernel_size, stride, padding, _, compact = inputs
    ctx.args = (kernel_size, stride, padding, compact)
    ctx.save_for_backward(x, indices)


def _family(suffix: str) -> _Ops:
    names = ["max_pool2d_with_indices", "max_pool2d_with_indices_backward", "max_unpool2d",
             "max_unpool2d_backward"]
    ops = _Ops(*(callable_op(name + suffix) for name in names))

    def pool_backward(ctx, grad, _grad_indices):
        (indices,) = ctx.saved_tensors
        return ops.pool_backward(grad, indices, *ctx.args), None, None, None, None, None, None

    def unpool_backward(ctx, grad):
        x, indices = ctx.saved_tensors
        return ops.unpool_backward(grad, x, indices, *ctx.args), None, None, None, None, None, None

    register(names[0] + suffix, _fake_pool, pool_backward, _setup_pool)
    register(names[1] + suffix, _fake_pool_backward)
    register(names[2] + suffix, _fake_unpool, unpool_backward, _setup_unpool)
    register(names[3] + suffix, _fake_unpool_backward)
    return ops


OPS = ByBackend(_family)


# -- the public functions --------------------------------------------------------------------


def max_pool2d_with_indices(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, compact: bool = False):
    """``F.max_pool2d(x, ..., return_indices=True)``: (values, indices) of (C, H, W) or
    (N, C, H, W) x, differentiable in x. ``compact=True`` returns uint8 window taps instead
    of int64 plane positions (see the module docstring for when they are valid)."""
    if eager is not None and not torch.compiler.is_compiling():
        out = eager.max_pool2d_with_indices(x, kernel_size, stride, padding, dilation,
                                            ceil_mode, compact)
        if out is not None:
            return out
    _check_input(x, "max_pool2d")
    args = _pool_args(kernel_size, stride, padding, dilation)
    x4 = x.unsqueeze(0) if x.dim() == 3 else x
    backend = _backend.choose("max_pool2d_with_indices", x.device, unsupported_dtype(x))
    if backend == "torch":
        g = check_pool(x4, *args, ceil_mode, compact)
        y, idx = max_pool2d_reference(x4, g, ceil_mode, compact)
    else:
        y, idx = OPS[backend].pool(x4, *args, ceil_mode, compact)
    return (y.squeeze(0), idx.squeeze(0)) if x.dim() == 3 else (y, idx)


def max_unpool2d(x: torch.Tensor, indices: torch.Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> torch.Tensor:
    """``F.max_unpool2d``: scatter x back to the positions ``indices`` name, 0 elsewhere, as a
    deterministic gather. ``indices`` are flat (int64) or compact (uint8). Where several name
    one position the largest value wins (NaN largest; ties: the lowest pooled position), on
    every backend; an index outside the output plane raises RuntimeError (on the ``cuda``
    backend a device-side assert, as stock's)."""
    if eager is not None and not torch.compiler.is_compiling():
        y = eager.max_unpool2d(x, indices, kernel_size, stride, padding, output_size)
        if y is not None:
            return y
    _check_input(x, "max_unpool2d")
    compact = _index_format(indices)
    kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding, 1)
    size = _unpool_output_size(x, kernel, stride, padding, output_size)
    if compact and kernel[0] * kernel[1] > 256:
        # The C++ op does not check this: taps past 255 cannot be named in uint8.
        raise RuntimeError("max_unpool2d: compact (uint8) indices need at most 256 taps")
    x4, i4 = (x.unsqueeze(0), indices.unsqueeze(0)) if x.dim() == 3 else (x, indices)
    backend = _backend.choose("max_unpool2d", x.device, unsupported_dtype(x))
    if backend == "torch":
        g = check_unpool(x4, i4, kernel, stride, padding, size, compact)
        y = max_unpool2d_reference(x4, i4, g)
    else:
        y = OPS[backend].unpool(x4, i4, kernel, stride, padding, size, compact)
    return y.squeeze(0) if x.dim() == 3 else y
