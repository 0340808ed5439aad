"""pyimg: fast image-to-image deep learning for PyTorch.

``pyimg.ops`` holds the functional ops, ``pyimg.nn`` drop-in modules, ``pyimg.models`` the
model zoo (with ``pyimg.losses`` and ``pyimg.metrics``); ``convert(model)`` swaps pyimg's
modules into any model; ``backends()`` tells which kernel backends this machine can run and
why others cannot; ``use_backend(name)`` forces one.

The zoo, losses, metrics and ``convert`` load on first use, so ``import pyimg`` costs only the
op layer.
"""

import importlib

from pyimg import nn, ops
from pyimg._backend import BACKENDS, backends, use_backend
from pyimg._extension import BUILD_INFO as build_info

_ON_FIRST_USE = ("losses", "metrics", "models")

__version__ = "0.1.0"
__all__ = [
    "BACKENDS",
    "backends",
    "build_info",
    "convert",
    "losses",
    "metrics",
    "models",
    "nn",
    "ops",
    "use_backend",
]


def __getattr__(name: str):
    if name in _ON_FIRST_USE:
        return importlib.import_module(f"pyimg.{name}")
    if name == "convert":
        from pyimg.conversion import convert

        return convert
    raise AttributeError(f"module 'pyimg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
