"""Deploying pyimg models: ``torch.export`` programs with a dynamic batch, height and width, and
ONNX through the stock dynamo exporter with pyimg's ops translated to standard ONNX
operators.

``export(model, args)`` -> ExportedProgram; ``save`` / ``torch.export.load`` round trip;
``decompose`` writes pyimg's ops in ATen ops (the program then loads without pyimg);
``pyimg_ops(program)`` says what loading it needs; ``to_onnx(model, args, path)`` or
``torch.onnx.export(..., dynamo=True, custom_translation_table=TRANSLATIONS)``.
"""

from pyimg.export.decompositions import DECOMPOSITIONS
from pyimg.export.onnx import to_onnx
from pyimg.export.onnx_translations import TRANSLATIONS
from pyimg.export.ops import pyimg_ops
from pyimg.export.program import decompose, dynamic_shapes, export, save

__all__ = [
    "DECOMPOSITIONS",
    "TRANSLATIONS",
    "decompose",
    "dynamic_shapes",
    "export",
    "pyimg_ops",
    "save",
    "to_onnx",
]
