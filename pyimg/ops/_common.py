"""What the ops share: their output memory format, allocation in it, the 4-D check of their
torch.ops entry points, and the dtypes their kernels take."""

import torch

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x's channels are its innermost dimension (csrc/ops/pixel_shuffle.cpp)."""
    if x.dim() == 4 and x.stride(1) < x.stride(3):
        return torch.channels_last
    return torch.contiguous_format


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
