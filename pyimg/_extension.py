"""Loads pyimg._C, the compiled kernels, and says why when it cannot.

Importing ``pyimg._C`` registers the C++ CPU and CUDA kernels as ``torch.ops.pyimg.*``.
When it is missing (not built, or built against another torch) pyimg still imports: every op
falls back to its ``torch`` reference backend, and one ``ExtensionWarning`` says why.
"""

import warnings


class ExtensionWarning(UserWarning):
    """pyimg's compiled extension could not be loaded."""


try:
    from pyimg import _C
except (ImportError, OSError) as error:
    _C = None
    LOAD_ERROR: str | None = f"{type(error).__name__}: {error}"
    warnings.warn(
        f"pyimg's compiled kernels are not loaded ({LOAD_ERROR}); ops use the torch reference "
        "backend. Build them with `python setup.py build_ext --inplace` (see README).",
        ExtensionWarning,
        stacklevel=2,
    )
else:
    LOAD_ERROR = None

BUILD_INFO: dict = _C.build_info() if _C is not None else {}

# The ops' eager entry points (csrc/python/eager.h): each returns None for a call it does not
# serve, which then takes the Python path.
eager = _C.eager if _C is not None else None


def loaded() -> bool:
    return _C is not None


def has_cuda_kernels() -> bool:
    return bool(BUILD_INFO.get("with_cuda"))
