"""torch.export for image models: dynamic batch, height and width, crash-safe save, and
decomposition into ATen ops for loading where pyimg is not installed."""

from pathlib import Path

import torch
from torch.export import Dim

from pyimg.atomic import write_atomically
from pyimg.export.decompositions import DECOMPOSITIONS


def dynamic_shapes(args, min_size: int | None = None, max_size: int | None = None) -> tuple:
    """torch.export's ``dynamic_shapes`` for a model's positional tensors: dim 0 of each is the
    batch, dims 2 and 3 of each 4-D one the height and width, shared by all (a model's image
    inputs have one size). ``min_size``: named dimensions from that size (to ``max_size``),
    and torch.export raises if the model cannot take every size in the range; None:
    ``Dim.DYNAMIC``, where what the model cannot take becomes a check at run time."""
    if min_size is None:
        batch = height = width = Dim.DYNAMIC
    else:
        bounds = {"min": min_size} if max_size is None else {"min": min_size, "max": max_size}
        batch = Dim("batch", min=1)
        height, width = Dim("height", **bounds), Dim("width", **bounds)
    shapes = []
    for arg in args:
        if not isinstance(arg, torch.Tensor):
            shapes.append(None)
        elif arg.dim() == 4:
            shapes.append({0: batch, 2: height, 3: width})
        else:
            shapes.append({0: batch} if arg.dim() else None)
    return tuple(shapes)


def export(model: torch.nn.Module, args: tuple, *, min_size: int | None = None,
           max_size: int | None = None) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on example ``args`` with a dynamic batch, height and
    width (``dynamic_shapes``). Give examples of batch >= 2 and sizes >= 2: torch specializes
    sizes 0 and 1."""
    args = tuple(args)
    return torch.export.export(model, args,
                               dynamic_shapes=dynamic_shapes(args, min_size, max_size))


def decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The program with every pyimg op written in ATen ops (pyimg/export/decompositions.py):
    it no longer needs pyimg to load or run."""
    return program.run_decompositions(DECOMPOSITIONS)


def save(program: torch.export.ExportedProgram, path) -> Path:
    """``torch.export.save`` crash-safely (pyimg/export/files.py). Loading it back
    (``torch.export.load``) needs the pyimg ops it holds registered (``pyimg_ops`` says which)
    unless it was ``decompose``d."""
    return write_atomically(path, lambda file: torch.export.save(program, file))
