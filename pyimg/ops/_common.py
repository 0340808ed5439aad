"""What the ops' Python checks share (each with the message of the C++ check it mirrors) and
the backend-choice callback that turns away a dtype the kernels do not take."""

import torch

from pyimg._format import KERNEL_DTYPES


def check_4d(x: torch.Tensor, op: str) -> None:
    if x.dim() != 4:
        raise RuntimeError(f"{op} expects a 4-D (N, C, H, W) input, but got input with "
                           f"{x.dim()} dimension(s)")


def check_same_device(t: torch.Tensor, x: torch.Tensor, name: str) -> None:
    if t.device != x.device:
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two devices, "
            f"{x.device} (input) and {t.device} ({name})"
        )


def unsupported_dtype(x: torch.Tensor):
    """The backend-choice callback (pyimg._backend.choose) that turns away x's dtype where the
    kernels do not take it."""

    def reason(backend: str) -> str | None:
        if backend != "torch" and x.dtype not in KERNEL_DTYPES:
            return f"dtype {x.dtype} (kernels take float16, bfloat16, float32, float64)"
        return None

    return reason
