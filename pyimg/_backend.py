"""Which backend runs an op: the best available for the tensor's device, or a forced one.

Backends: ``cuda`` (CUDA C++), ``triton``, ``cpu`` (C++), ``torch`` (stock-op reference).
Auto order: CUDA tensors try cuda, triton, torch; CPU tensors try cpu, torch (Triton runs CPU
tensors only when forced, under ``TRITON_INTERPRET=1``). Force one with ``use_backend(name)``
or the environment variable ``PYIMG_BACKEND``; a forced backend that cannot serve a call
raises instead of falling back. An automatic fallback for an unsupported case (say, an integer
dtype) warns once per op and reason.

The forced backend is a module global rather than a context variable so that torch.compile
can guard on it (changing it recompiles) instead of breaking the graph.
"""

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator

import torch

from pyimg import _extension

BACKENDS = ("cuda", "triton", "cpu", "torch")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpu", "torch")}


def _triton_missing() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed"
    return None


_TRITON_MISSING = _triton_missing()
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _validated(name: str | None) -> str | None:
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown pyimg backend {name!r}; expected one of {BACKENDS}")
    return name


_forced: str | None = _validated(os.environ.get("PYIMG_BACKEND") or None)


_unavailable_by_device_type: dict[tuple[str, str], str | None] = {}


def unavailable(name: str, device: torch.device) -> str | None:
    """Why backend ``name`` cannot run on ``device`` (None when it can). Fixed for the
    process (the extension, the triton package and the environment are read at import), so
    kept per device type: ops ask on every call."""
    key = (name, device.type)
    if key not in _unavailable_by_device_type:
        _unavailable_by_device_type[key] = _why_unavailable(name, device)
    return _unavailable_by_device_type[key]


def _why_unavailable(name: str, device: torch.device) -> str | None:
    if name == "torch":
        return None
    if name == "triton":
        if _TRITON_MISSING:
            return _TRITON_MISSING
        if device.type == "cpu" and not _INTERPRET:
            return "Triton runs CPU tensors only under TRITON_INTERPRET=1"
        if device.type not in ("cpu", "cuda"):
            return f"Triton does not run on {device.type} tensors"
        return None
    if name != device.type:
        return f"the {name} backend runs {name} tensors only, not {device.type} ones"
    if not _extension.loaded():
        return f"the compiled extension is not loaded ({_extension.LOAD_ERROR})"
    if name == "cuda" and not _extension.has_cuda_kernels():
        return "the compiled extension was built without CUDA kernels"
    return None


def backends() -> dict[str, str | None]:
    """Each backend and why it is unavailable on this machine (None: available)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {}
    for name in BACKENDS:
        if name == "cuda" and not torch.cuda.is_available():
            report[name] = "no CUDA device is visible"
        else:
            report[name] = unavailable(name, device if name != "cpu" else torch.device("cpu"))
    return report


def forced() -> str | None:
    return _forced


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Force backend ``name`` (None: automatic) for the ops called inside the block."""
    global _forced
    previous, _forced = _forced, _validated(name)
    try:
        yield
    finally:
        _forced = previous


_warned: set[tuple[str, str, str]] = set()


def choose(op: str, device: torch.device, unsupported: Callable[[str], str | None]) -> str:
    """The backend that runs ``op`` on ``device``; ``unsupported(name)`` names a case the
    backend's kernel lacks (dtype, sizes), or returns None."""
    if _forced is not None:
        reason = unavailable(_forced, device) or unsupported(_forced)
        if reason is not None:
            raise NotImplementedError(f"pyimg.{op}: backend {_forced!r} is forced, but {reason}")
        return _forced
    for name in _AUTO_ORDER.get(device.type, ("torch",)):
        if unavailable(name, device) is not None:
            continue
        reason = unsupported(name)
        if reason is None:
            return name
        if (op, name, reason) not in _warned:
            _warned.add((op, name, reason))
            warnings.warn(
                f"pyimg.{op}: the {name} backend does not support this call ({reason}); "
                "falling back",
                stacklevel=3,
            )
    return "torch"
