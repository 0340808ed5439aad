"""What the ops share: their output memory format, allocation in it, the 4-D check of their
torch.ops entry points, and the dtypes their kernels take."""

import torch
from torch._prims_common import suggest_memory_format

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format of an op's output for input x, PyTorch's definition: channels_last
    when x is channels_last-contiguous but not NCHW-contiguous (``x.is_contiguous(memory_format=
    torch.channels_last)``, which ignores the strides of size-1 dimensions), otherwise what
    ``Tensor.suggest_memory_format()`` reads from x's strides (views, and tensors contiguous in
    both formats). csrc/ops/pixel_shuffle.cpp has the same rule for the C++ kernels; an output
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
    if x.dim() != 4:
        return x
    fmt = output_memory_format(x)
    if not x.is_contiguous(memory_format=fmt):
        return x
    canonical = torch.empty_like(x, device="meta", memory_format=fmt).stride()
    return x if x.stride() == canonical else x.as_strided(x.shape, canonical)


def empty_like_format(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialized tensor on like's device, of like's dtype unless dtype is given, in
    like's output memory format."""
    return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device,
                       memory_format=output_memory_format(like))


def check_4d(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise RuntimeError(f"expects a 4-D (N, C, H, W) input, but got {x.dim()} dimension(s)")


def unsupported_dtype(x: torch.Tensor):
    """The backend-choice callback (pyimg._backend.choose) that turns away x's dtype where the
    kernels do not take it."""

    def reason(backend: str) -> str | None:
        if backend != "torch" and x.dtype not in KERNEL_DTYPES:
            return f"dtype {x.dtype} (kernels take float16, bfloat16, float32, float64)"
        return None

    return reason
