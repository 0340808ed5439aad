"""Tiled inference: overlapping tiles, feathered blending, the result of untiled inference.

The image is cut into cores; each tile is its core widened by ``overlap`` pixels on every side
that is not the image's border. A tile's output is wrong near a cut edge, up to the model's
receptive radius R from it (its convolutions there padded with zeros what is really image), and
exact elsewhere. Each tile's output is weighted by a ramp that is 0 within R of a cut edge and
rises to 1 across the rest of the shared band, and the weighted outputs are normalised by the
summed weights: with ``overlap >= R`` every output pixel is a weighted mean of exact values,
so the result equals untiled inference to rounding, and the feather (the band left after R)
hides whatever differences rounding leaves.
"""

import itertools
import math
from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


def receptive_radius(module: torch.nn.Module, in_channels: int, scale: int,
                     largest: int = 257) -> int | None:
    """How many input pixels away an output pixel's value still depends on input, measured as
    the support of the input gradient of one low-resolution cell's outputs; None when it
    reaches the border of a ``largest``-pixel input (a global operation)."""
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    side = 33
    generator = torch.Generator().manual_seed(0)
    while side <= largest:
        with torch.inference_mode(False), torch.enable_grad():  # callers may be in either
            x = torch.rand(1, in_channels, side, side, generator=generator).to(device)
            x.requires_grad_(True)
            y = module(x.to(param.dtype) if param is not None else x)
            c = side // 2
            y[..., c * scale:(c + 1) * scale, c * scale:(c + 1) * scale].float().sum().backward()
        support = x.grad.abs().sum((0, 1)) > 0
        rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
        radius = int(max(c - rows.min(), rows.max() - c, c - cols.min(), cols.max() - c))
        if radius < c:
            return radius
        side = 2 * side + 1
    return None


def _cores(length: int, core: int) -> list[tuple[int, int]]:
    count = math.ceil(length / core)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def _ramp(start: int, stop: int, length: int, overlap: int, radius: int, scale: int,
          device: torch.device) -> torch.Tensor:
    """Output-pixel weights of a tile spanning input [start, stop) of ``length`` pixels."""
    x = (torch.arange(start * scale, stop * scale, device=device, dtype=torch.float64)
         + 0.5) / scale
    band = max(2 * (overlap - radius), 1e-6)
    weight = torch.ones_like(x)
    if start > 0:
        weight = torch.minimum(weight, ((x - start - radius) / band).clamp(0, 1))
    if stop < length:
        weight = torch.minimum(weight, ((stop - radius - x) / band).clamp(0, 1))
    return weight.float()


def tiled_forward(forward: Forward, x: torch.Tensor, scale: int, tile: int, overlap: int,
                  radius: int | None) -> torch.Tensor:
    """``forward(x)`` computed tile by tile: tiles of at most ``tile`` x ``tile`` input pixels
    overlapping by ``overlap`` on each cut side, blended as the module docstring says
    (``radius`` None or above ``overlap``: blended over the whole overlap, not exact)."""
    if overlap < 0 or tile < 2 * overlap + 1:
        raise ValueError(f"tile ({tile}) must exceed twice the overlap ({overlap})")
    guard = radius if radius is not None and radius <= overlap else 0
    height, width = x.shape[-2:]
    core = tile - 2 * overlap
    out = weights = None
    for top, bottom in _cores(height, core):
        y0, y1 = max(top - overlap, 0), min(bottom + overlap, height)
        row_weight = _ramp(y0, y1, height, overlap, guard, scale, x.device)
        for left, right in _cores(width, core):
            x0, x1 = max(left - overlap, 0), min(right + overlap, width)
            piece = forward(x[..., y0:y1, x0:x1]).float()
            if out is None:
                out = piece.new_zeros(*piece.shape[:2], height * scale, width * scale)
                weights = piece.new_zeros(height * scale, width * scale)
            weight = row_weight[:, None] * _ramp(x0, x1, width, overlap, guard, scale,
                                                 x.device)[None, :]
            rows, cols = slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale)
            out[..., rows, cols] += piece * weight
            weights[rows, cols] += weight
    return out / weights
