"""ONNX export of pyimg models through the stock dynamo exporter, with pyimg's ops translated
to standard ONNX operators (pyimg/export/onnx_translations.py)."""

from pathlib import Path

import torch

from pyimg.atomic import write_atomically
from pyimg.export.onnx_translations import ONNX_OPSET, TRANSLATIONS
from pyimg.export.program import export


def to_onnx(model: torch.nn.Module, args: tuple, path=None, *, min_size: int | None = None,
            max_size: int | None = None) -> "torch.onnx.ONNXProgram":
    """``torch.onnx.export(..., dynamo=True)`` of ``model`` with a dynamic batch, height and
    width and pyimg's translation table; written crash-safely to ``path`` when given. The
    model is exported by ``pyimg.export.export`` first (torch.onnx.export would fall back to
    a draft export that may freeze sizes where torch.export refuses the dynamic range).
    Inputs are named ``input_<i>``."""
    args = tuple(args)
    program = torch.onnx.export(
        export(model, args, min_size=min_size, max_size=max_size), args, dynamo=True,
        opset_version=ONNX_OPSET, custom_translation_table=TRANSLATIONS,
        input_names=[f"input_{i}" for i in range(len(args))], verbose=False)
    if path is not None:
        write_atomically(Path(path), lambda file: file.write(
            program.model_proto.SerializeToString()))
    return program
