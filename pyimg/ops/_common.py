"""What the ops' Python entry points share: the 4-D check and the backend-choice callback
that turns away a dtype the kernels do not take."""

import torch

from pyimg._format import KERNEL_DTYPES


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
