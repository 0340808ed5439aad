"""What every op file does with its ``torch.ops.pyimg`` ops: register their fake kernels and
autograd, hold one family of them per backend (the Triton ops, named ``*_triton``, and the
compiled extension's C++ ones where it loaded), and call them cheaply.

``torch.library.register_autograd`` puts a Python kernel at the Autograd dispatch key, which
every call passes through even with nothing to differentiate, only to redispatch: about 10 us
per call on the CPU, more than stock's whole pixel_shuffle. ``Op`` dispatches below Autograd
itself when no gradient can be recorded (grad mode off, or no input that requires grad), and
takes the dispatcher's own route otherwise, and always while torch.compile / torch.export
trace, under a functorch transform or forward-mode AD, and for tensor subclasses (fake
tensors among them).
"""

from collections.abc import Callable
from typing import Generic, TypeVar

import torch
import torch.autograd.forward_ad as forward_ad

from pyimg import _extension

Family = TypeVar("Family")
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _records_no_gradient(args) -> bool:
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active() or \
            forward_ad._current_level >= 0:
        return False
    grad = torch.is_grad_enabled()
    for a in args:
        if isinstance(a, torch.Tensor) and (type(a) not in _PLAIN or (grad and a.requires_grad)):
            return False
    return True


class Op:
    """A registered op (an OpOverload), called below Autograd when that changes nothing."""

    __slots__ = ("overload",)

    def __init__(self, name: str):
        self.overload = getattr(torch.ops.pyimg, name).default

    def __call__(self, *args):
        if _records_no_gradient(args):
            with torch._C._AutoDispatchBelowAutograd():
                return self.overload(*args)
        return self.overload(*args)


def register(name: str, fake: Callable, backward: Callable | None = None,
             setup_context: Callable | None = None) -> None:
    """Register op ``pyimg::name``'s fake kernel and, with ``backward``, its autograd."""
    torch.library.register_fake(f"pyimg::{name}")(fake)
    if backward is not None:
        torch.library.register_autograd(f"pyimg::{name}", backward, setup_context=setup_context)


class ByBackend(Generic[Family]):
    """An op family registered once per backend family: ``family(suffix)`` registers the ops
    named with that suffix and returns them; ``self[backend]`` is the family that runs it."""

    def __init__(self, family: Callable[[str], Family]):
        self.triton = family("_triton")
        self.extension = family("") if _extension.loaded() else None

    def __getitem__(self, backend: str) -> Family:
        return self.triton if backend == "triton" else self.extension
