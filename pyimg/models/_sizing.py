"""Input-size helpers: mirror padding of any width and padding to a multiple of 2^k, so that
models whose architecture needs particular sizes still take any input and return its size.

Written without Python branches on the input's size, so that ``torch.export`` keeps height
and width symbolic instead of specializing them.
"""

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

from pyimg._format import output_memory_format


def _reflected(start: int, stop: int, size, device) -> torch.Tensor:
    """Positions start .. stop - 1 of a length-``size`` axis, reflected back into it as
    numpy's ``mode="reflect"`` does for pads of any width: the axis extended periodically with
    period 2 (size - 1) and mirrored (a 1-pixel axis repeats its pixel)."""
    position = torch.arange(start, stop, device=device)
    # A tensor, not a Python number, so that ONNX export takes a symbolic size.
    period = position.new_full((), torch.sym_max(2 * (size - 1), 1))
    position = torch.remainder(position, period)
    return torch.minimum(position, period - position)


def mirror_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflection padding of any width, equal to numpy's ``mode="reflect"``: reflects
    repeatedly when a pad exceeds the image (as U-Net's overlap-tile extrapolation needs on
    small inputs); replicates a 1-pixel side."""
    height, width = x.shape[-2:]
    rows = _reflected(-top, height + bottom, height, x.device)
    columns = _reflected(-left, width + right, width, x.device)
    return x[..., rows[:, None], columns].contiguous(memory_format=output_memory_format(x))


def _at_least(size, minimum: int):
    """max(size, minimum); a Python choice where torch.export already knows which (so no
    Max(...) expression it cannot simplify enters the exported shapes)."""
    return size if statically_known_true(size >= minimum) else torch.sym_max(size, minimum)


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 1) -> torch.Tensor:
    """Mirror-pad the bottom and right of x up to a multiple of ``multiple`` (and at least
    ``minimum``) so that an architecture with k stride-2 steps maps it back exactly."""
    height, width = x.shape[-2:]
    # Ceiling divisions of non-negative numbers: ONNX's integer Div truncates.
    target_h = (_at_least(height, minimum) + multiple - 1) // multiple * multiple
    target_w = (_at_least(width, minimum) + multiple - 1) // multiple * multiple
    return mirror_pad(x, 0, target_w - width, 0, target_h - height)


def crop(x: torch.Tensor, height: int, width: int, top: int = 0, left: int = 0) -> torch.Tensor:
    """The height x width window of x at (top, left), which x holds (the crop back after
    ``pad_to_multiple``), as a gather rather than a slice: torch.export then need not prove
    that a symbolic window fits in x, nor whether it is all of x."""
    rows = torch.arange(top, top + height, device=x.device)
    columns = torch.arange(left, left + width, device=x.device)
    return x[..., rows[:, None], columns].contiguous(memory_format=output_memory_format(x))


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central height x width window of x (U-Net's crop of the skip features)."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]

