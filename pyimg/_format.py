"""What every layer agrees on about a tensor: the memory format of an op's output for it, the
float dtypes the kernels take, and the dtype they accumulate in.

The format and the canonical strides are functions of the sizes and strides alone, asked for
several times per op call; reading them off the strides in Python costs a few microseconds, so
for plain tensors outside torch.compile they are kept per (sizes, strides).
"""

import torch
from torch._prims_common import suggest_memory_format

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_MEMO_SIZE = 4096


def _memoized(compute):
    """compute(x), kept per x's sizes and strides for plain strided tensors; others (tracing,
    fake tensors, other layouts) always computed."""
    memo = {}

    def lookup(x: torch.Tensor):
        if type(x) not in _PLAIN or x.layout != torch.strided or torch.compiler.is_compiling():
            return compute(x)
        key = (x.shape, x.stride())
        value = memo.get(key, memo)
        if value is memo:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            value = memo[key] = compute(x)
        return value

    return lookup


def accumulate_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the kernels accumulate x's sums in: float64 for float64, else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@_memoized
def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format of an op's output for input x, PyTorch's definition: channels_last
    when x is channels_last-contiguous but not NCHW-contiguous (``x.is_contiguous(memory_format=
    torch.channels_last)``, which ignores the strides of size-1 dimensions), otherwise what
    ``Tensor.suggest_memory_format()`` reads from x's strides (views, and tensors contiguous in
    both formats). csrc/ops/common.cpp has the same rule for the C++ kernels; an output
    allocated in the format this returns gets it back."""
    if x.dim() != 4:
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return suggest_memory_format(x)


def with_canonical_strides(x: torch.Tensor) -> torch.Tensor:
    """x, or, where x is contiguous in its output memory format but a size-1 dimension has
    another stride than that format's, a view of the same memory with the format's own
    strides. Stock's CPU batch_norm backward misreads such a channels_last x (a W of 1 with
    stride 7): its gradient was off by O(1)."""
    canonical = _canonical_strides(x)
    return x if canonical is None else x.as_strided(x.shape, canonical)


@_memoized
def _canonical_strides(x: torch.Tensor) -> tuple[int, ...] | None:
    """The strides with_canonical_strides gives x, or None where it leaves x as it is."""
    if x.dim() != 4:
        return None
    fmt = output_memory_format(x)
    if not x.is_contiguous(memory_format=fmt):
        return None
    canonical = torch.empty_like(x, device="meta", memory_format=fmt).stride()
    return None if x.stride() == canonical else canonical


def in_dtype(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``t.to(dtype)`` (None stays None), without the call where t already has that dtype:
    ops convert several small parameters per call."""
    return t if t is None or t.dtype == dtype else t.to(dtype)


def empty_like_format(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialized tensor on like's device, of like's dtype unless dtype is given, in
    like's output memory format."""
    return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device,
                       memory_format=output_memory_format(like))
