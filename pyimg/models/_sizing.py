"""Input-size helpers: mirror padding of any width and padding to a multiple of 2^k, so that
models whose architecture needs particular sizes still take any input and return its size."""

import torch
import torch.nn.functional as F


def mirror_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflection padding of any width: reflects repeatedly when a pad exceeds the image (as
    U-Net's overlap-tile extrapolation needs on small inputs); replicates a 1-pixel side."""
    pads = [left, right, top, bottom]
    while any(pads):
        height, width = x.shape[-2:]
        step = [min(p, width - 1) for p in pads[:2]] + [min(p, height - 1) for p in pads[2:]]
        if not any(step):  # a single row or column cannot be reflected
            return F.pad(x, pads, mode="replicate")
        x = F.pad(x, step, mode="reflect")
        pads = [p - s for p, s in zip(pads, step, strict=True)]
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 1) -> torch.Tensor:
    """Mirror-pad the bottom and right of x up to a multiple of ``multiple`` (and at least
    ``minimum``) so that an architecture with k stride-2 steps maps it back exactly."""
    height, width = x.shape[-2:]
    target_h = -(-max(height, minimum) // multiple) * multiple
    target_w = -(-max(width, minimum) // multiple) * multiple
    return mirror_pad(x, 0, target_w - width, 0, target_h - height)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central height x width window of x (U-Net's crop of the skip features)."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]
