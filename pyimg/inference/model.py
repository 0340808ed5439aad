"""The optimized model's outer shell: converts the input to the layout and dtype the fused
convolutions run in, and the outputs back to the caller's."""

import torch
from torch import nn
from torch.utils import _pytree as pytree

_CL = torch.channels_last


def _layout(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a tensor stored that way (and not also plain contiguous)."""
    if x.dim() == 4 and x.is_contiguous(memory_format=_CL) and not x.is_contiguous():
        return _CL
    return torch.contiguous_format


class InferenceModel(nn.Module):
    """A model prepared by ``optimize_for_inference``: ``body`` runs in ``dtype`` and
    channels_last without autograd; outputs come back in the input's dtype and memory format
    (an unbatched (C, H, W) input gives unbatched outputs).

    ``bf16_missing`` says why bf16 was not chosen automatically (None when it was or when
    a dtype was given)."""

    def __init__(self, body: nn.Module, dtype: torch.dtype, bf16_missing: str | None = None):
        super().__init__()
        self.body, self.dtype, self.bf16_missing = body, dtype, bf16_missing

    def forward(self, x: torch.Tensor):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a tensor input, got {type(x).__name__}")
        if x.dim() not in (3, 4):
            raise ValueError(f"expected an (N, C, H, W) or (C, H, W) input, got shape "
                             f"{tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point input, got {x.dtype}; convert images "
                             "with x.float() / 255")
        if x.device.type != "cpu":
            raise ValueError(f"this model was optimized for the CPU, got a {x.device} input")
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        dtype, layout = x.dtype, _layout(x)
        with torch.no_grad():
            # (.to with a memory_format copies even a 1-channel tensor, which is both layouts)
            y = self.body(x.to(self.dtype).contiguous(memory_format=_CL))

        def restore(t):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                return t
            t = t.to(dtype).contiguous(memory_format=layout if t.dim() == 4 else
                                       torch.contiguous_format)
            return t.squeeze(0) if unbatched else t

        return pytree.tree_map(restore, y)

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}"
