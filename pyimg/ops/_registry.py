"""What every op file does with its ``torch.ops.pyimg`` ops: register their fake kernels and
autograd, hold one family of them per backend (the Triton ops, named ``*_triton``, and the
compiled extension's C++ ones where it loaded), and call them cheaply.

The compiled extension's ops have their autograd in C++ (csrc/ops/autograd/): their Autograd
kernel checks in C++ whether the call records a gradient and otherwise goes straight below
Autograd, so the public functions call their ``OpOverload`` as it is. The Triton ops (and any
C++ op without a C++ autograd kernel) get theirs from ``torch.library.register_autograd``: a
Python kernel at the Autograd key that every call passes, even with nothing to differentiate,
only to redispatch, which costs more than stock's whole pixel_shuffle; those are called
through ``Op``.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

import torch
import torch.autograd.forward_ad as forward_ad
from torch._library import custom_ops

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
    """A registered op (an OpOverload) whose autograd is a Python kernel, called below Autograd
    when that changes nothing: grad mode off, or no input that requires grad. It takes the
    dispatcher's own route otherwise, and always while torch.compile / torch.export trace,
    under a functorch transform or forward-mode AD, and for tensor subclasses (fake tensors
    among them). For an op with a C++ autograd kernel this Python check costs more than the
    kernel's own (0.5-3.7 us per call on tiny CPU tensors, one thread): ``callable_op`` returns
    the OpOverload there."""

    __slots__ = ("overload",)

    def __init__(self, name: str):
        self.overload = getattr(torch.ops.pyimg, name).default

    def __call__(self, *args):
        if _records_no_gradient(args):
            with torch._C._AutoDispatchBelowAutograd():
                return self.overload(*args)
        return self.overload(*args)


def callable_op(name: str):
    """What the public functions call for op ``pyimg::name``: its OpOverload when its autograd
    is C++, else an ``Op``."""
    if has_cpp_autograd(name):
        return getattr(torch.ops.pyimg, name).default
    return Op(name)


def has_cpp_autograd(name: str) -> bool:
    """Whether op ``pyimg::name`` has an Autograd kernel in C++ (csrc/ops/autograd/): a kernel
    at that key that no Python ``torch.library.custom_op`` put there (asked before ``register``
    gives a C++ op a Python one)."""
    qualname = f"pyimg::{name}"
    return (torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "Autograd")
            and custom_ops._maybe_get_opdef(qualname) is None)


def register(name: str, fake: Callable, backward: Callable | None = None,
             setup_context: Callable | None = None) -> None:
    """Register op ``pyimg::name``'s fake kernel and, with ``backward``, its autograd, unless
    the compiled extension gives it a C++ one (which computes the same gradients)."""
    torch.library.register_fake(f"pyimg::{name}")(fake)
    if backward is not None and not has_cpp_autograd(name):
        torch.library.register_autograd(f"pyimg::{name}", backward, setup_context=setup_context)


class ByBackend(Generic[Family]):
    """An op family registered once per backend family: ``family(suffix)`` registers the ops
    named with that suffix and returns them; ``self[backend]`` is the family that runs it."""

    def __init__(self, family: Callable[[str], Family]):
        self.triton = family("_triton")
        self.extension = family("") if _extension.loaded() else None

    def __getitem__(self, backend: str) -> Family:
        return self.triton if backend == "triton" else self.extension
