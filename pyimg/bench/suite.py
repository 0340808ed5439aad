"""What a per-op benchmark declares: its cases and, for one case, its variants (providers x
modes). ``benchmarks/bench_<op>.py`` holds an ``OpSuite`` named ``SUITE``; ``pyimg bench ops``
finds every one there, and the script runs its own through ``pyimg.bench.script_main``.

The helpers below are what most suites share: the pyimg backends worth timing on a device,
a stock function under torch.compile, an op under a forced backend, the timed call of each
autograd mode, and the clone that serves as the roofline.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import pyimg
from pyimg import _backend
from pyimg.bench.results import ROOFLINE, Variant

# Backends timed per device. Triton on the CPU is its interpreter, a test tool, never timed.
PYIMG_BACKENDS = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}


@dataclass(frozen=True)
class Context:
    """What a suite's variants() needs to know beyond the case."""

    device: torch.device
    backends: tuple[str, ...]  # pyimg backends to time
    compile: bool = True  # add torch.compile variants
    compile_mode: str | None = None

    def compiled(self, fn: Callable) -> Callable:
        return torch.compile(fn, mode=self.compile_mode, dynamic=False)


@dataclass(frozen=True)
class CaseSpec:
    """A case written on the command line, e.g. '1x48x270x480 r4 fp16 CL': the shape, the
    dtype and layout when given, name+number tokens ('r4' -> ints['r'] = 4) and other words."""

    shape: tuple[int, ...]
    dtype: torch.dtype | None = None
    channels_last: bool | None = None
    ints: dict[str, int] = field(default_factory=dict)
    words: tuple[str, ...] = ()

    def get(self, key: str, default: int) -> int:
        return self.ints.get(key, default)


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
          "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp64": torch.float64, "float64": torch.float64}
SHORT_DTYPE = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
               torch.float64: "fp64"}


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {text!r}; expected one of {sorted(DTYPES)}") from None


def parse_case(text: str) -> CaseSpec:
    shape, dtype, channels_last, ints, words = None, None, None, {}, []
    for token in text.split():
        lower = token.lower()
        if re.fullmatch(r"\d+(x\d+)*", lower):
            shape = tuple(int(v) for v in lower.split("x"))
        elif lower in DTYPES:
            dtype = DTYPES[lower]
        elif lower in ("cl", "channels_last", "nhwc"):
            channels_last = True
        elif lower in ("nchw", "contiguous"):
            channels_last = False
        elif match := re.fullmatch(r"([a-z_]+)=?(\d+)", lower):
            ints[match.group(1)] = int(match.group(2))
        else:
            words.append(lower)
    if shape is None:
        raise ValueError(f"case {text!r} names no shape (write it as NxCxHxW, e.g. 1x64x32x32)")
    return CaseSpec(shape, dtype, channels_last, ints, tuple(words))


@dataclass(frozen=True)
class OpSuite:
    """One op's benchmark. cases: device type ('cpu', 'cuda') -> preset name ('default',
    'quick', others such as 'sweep') -> cases, each with a .name; variants(case, context):
    the case's variants; case_from_spec: a case from a CaseSpec (shapes on the command line),
    raising ValueError for what the op cannot take."""

    name: str
    description: str
    cases: dict[str, dict[str, Sequence[Any]]]
    variants: Callable[[Any, Context], list[Variant]]
    case_from_spec: Callable[[CaseSpec], Any] | None = None
    notes: tuple[str, ...] = ()
    backends: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(PYIMG_BACKENDS))

    def preset(self, device: torch.device, name: str) -> list[Any]:
        presets = self.cases.get(device.type, {})
        if name not in presets:
            raise ValueError(f"{self.name}: no {name!r} cases for {device.type} "
                             f"(has: {sorted(presets) or 'none'})")
        return list(presets[name])


def runnable_backends(candidates: Sequence[str], device: torch.device
                      ) -> tuple[list[str], list[str]]:
    """The pyimg backends of candidates this device runs, and why the others are left out."""
    runnable, skipped = [], []
    for backend in candidates:
        reason = _backend.unavailable(backend, device)
        if reason is None:
            runnable.append(backend)
        else:
            skipped.append(f"pyimg {backend}: {reason}")
    return runnable, skipped


def on_backend(backend: str | None, fn: Callable) -> Callable:
    """fn with pyimg's backend forced to backend (None: automatic) while it runs."""
    def run(*args, **kwargs):
        with pyimg.use_backend(backend):
            return fn(*args, **kwargs)

    return run


def timed_call(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, mode: str) -> Callable:
    """The call to time for mode, on input x. forward: with x requiring grad (the graph is
    built); no-grad: under torch.no_grad; backward: the gradient call alone, over one forward
    kept with retain_graph; forward+backward: both. Gradients are of the output with respect
    to x only."""
    if mode == "no-grad":
        x = x.detach()

        def no_grad():
            with torch.no_grad():
                return fn(x)

        return no_grad
    if mode not in ("forward", "backward", "forward+backward"):
        raise ValueError(f"unknown mode {mode!r}")
    x = x.detach().requires_grad_(True)
    if mode == "forward":
        return lambda: fn(x)
    graph = {}  # built on the first call, so that a provider failing fails its own row

    def output_gradient(y):
        if "grad" not in graph:
            graph["grad"] = torch.randn_like(y)
        return graph["grad"]

    def backward():
        if "y" not in graph:
            graph["y"] = fn(x)
        return torch.autograd.grad(graph["y"], x, output_gradient(graph["y"]),
                                   retain_graph=True)

    def forward_backward():
        y = fn(x)
        return torch.autograd.grad(y, x, output_gradient(y))

    return backward if mode == "backward" else forward_backward

def clone_variant(x: torch.Tensor) -> Variant:
    """x.clone(): one read and one write of x's size, the roofline of a one-pass op."""
    return Variant("clone", x.clone, "copy", ROOFLINE, bytes=2 * x.numel() * x.element_size())
