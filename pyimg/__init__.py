"""pyimg: fast image-to-image deep learning for PyTorch.

``pyimg.ops`` holds the functional ops, ``pyimg.nn`` drop-in modules, ``pyimg.models`` the
model zoo (with ``pyimg.losses`` and ``pyimg.metrics``); ``convert(model)`` swaps pyimg's
modules into any model; ``backends()`` tells which kernel backends this machine can run and
why others cannot; ``use_backend(name)`` forces one.
"""

from pyimg import losses, metrics, models, nn, ops
from pyimg._backend import BACKENDS, backends, use_backend
from pyimg._extension import BUILD_INFO as build_info
from pyimg.conversion import convert

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
