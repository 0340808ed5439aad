"""What the differential fuzz suite shares: its two profiles, the backends, inputs in every
layout (views of parameters too), the dtype tolerance rule, fake-kernel checks, and the one-line
reproduction every failure prints.

Each property compares one random case on one backend with stock PyTorch (or the op's
torch reference where stock has no such op). ``fuzz(...)`` turns a property into two tests:
the quick profile (fixed seed, a few examples, in the default run) and the long one
(``-m slow``, ``PYIMG_FUZZ_EXAMPLES`` examples per backend, 2000 unless set).
"""

import dataclasses
import os
import shlex
import sys
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import LOW_PRECISION, TOLERANCE, assert_lowp_close, backend_params
from torch._subclasses.fake_tensor import FakeTensorMode

import pyimg
from pyimg._format import output_memory_format

LONG_EXAMPLES = int(os.environ.get("PYIMG_FUZZ_EXAMPLES", "2000"))
_SETTINGS = dict(deadline=None, database=None, print_blob=True,
                 suppress_health_check=list(HealthCheck))

# Every backend pyimg has, the torch reference included; those that cannot run here skip.
BACKENDS = [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")]

# The properties by name, for tests/fuzz/repro.py.
PROPERTIES: dict[str, Callable] = {}


def interpreted(backend: str, device: str) -> bool:
    """Whether Triton's CPU interpreter runs the kernels (each program in Python: slow)."""
    return backend == "triton" and device == "cpu"


def fuzz(name: str, case_strategy: Callable, quick: int, long: int | None = None):
    """Decorator: property(backend, device, case) -> (quick test, long test). case_strategy
    (small: bool) draws a case, small ones in the quick profile and under Triton's
    interpreter; quick and long (default PYIMG_FUZZ_EXAMPLES) are the example counts per
    backend."""

    def decorate(prop):
        PROPERTIES[name] = prop

        def make_run(profile_small: bool):
            def run(param, data):
                backend, device = param
                small = profile_small or interpreted(backend, device)
                case = data.draw(case_strategy(small), label="case")
                try:
                    prop(backend, device, case)
                except BaseException as error:
                    error.add_note(repro_line(name, backend, device, case))
                    raise

            return run

        quick_test = pytest.mark.parametrize("param", BACKENDS)(
            settings(max_examples=quick, derandomize=True, **_SETTINGS)(
                given(data=st.data())(make_run(True))))
        long_test = pytest.mark.slow(pytest.mark.parametrize("param", BACKENDS)(
            settings(max_examples=long or LONG_EXAMPLES, **_SETTINGS)(
                given(data=st.data())(make_run(False)))))
        return quick_test, long_test

    return decorate


def repro_line(name: str, backend: str, device: str, case) -> str:
    command = [sys.executable, "tests/fuzz/repro.py", name, backend, device, repr(case)]
    return "reproduce: " + " ".join(shlex.quote(part) for part in command)


# -- inputs ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a tensor lies in memory: its dimensions in storage order (outermost first), a step
    per dimension (2: a view skipping every other element), an offset into the storage, and
    whether the strides of its size-1 dimensions are scrambled (PyTorch ignores them)."""

    order: tuple[int, ...]
    steps: tuple[int, ...]
    offset: int = 0
    scramble_unit_strides: bool = False

    def name(self) -> str:
        if self.steps != (1,) * len(self.steps) or self.offset:
            return "view"
        if self.order == (0, 2, 3, 1):
            return "channels_last"
        return "contiguous" if self.order == tuple(range(len(self.order))) else "permuted"


def layouts(rank: int, views: bool = True):
    """Layouts of a rank-d tensor: NCHW, channels_last (4-D), any order, views."""
    identity = tuple(range(rank))
    orders = [identity] + ([(0, 2, 3, 1)] if rank == 4 else [])
    order = st.one_of(st.sampled_from(orders), st.permutations(identity).map(tuple))
    steps = st.just((1,) * rank)
    if views:
        steps = st.one_of(steps, st.tuples(*[st.sampled_from((1, 2))] * rank))
    return st.builds(Layout, order, steps, st.integers(0, 3 if views else 0), st.booleans())


def arrange(t: torch.Tensor, layout: Layout) -> torch.Tensor:
    """t's values in the given layout (a copy; t itself is left alone)."""
    if t.dim() != len(layout.order):
        return t.clone()
    big = [s * k for s, k in zip(t.shape, layout.steps, strict=True)]
    storage_shape = [big[d] for d in layout.order]
    numel = 1
    for s in storage_shape:
        numel *= s
    fill = float("nan") if t.is_floating_point() else -7  # what a wrong read would see
    flat = torch.full((numel + layout.offset,), fill, dtype=t.dtype, device=t.device)
    storage = flat[layout.offset:].view(storage_shape)
    inverse = [layout.order.index(d) for d in range(t.dim())]
    view = storage.permute(inverse)[tuple(slice(None, None, k) for k in layout.steps)]
    view.copy_(t)
    if layout.scramble_unit_strides and 1 in t.shape:
        strides = [7 if s == 1 else st_ for s, st_ in zip(t.shape, view.stride(), strict=True)]
        view = view.as_strided(t.shape, strides)
    return view


def random_tensor(shape, dtype, device, seed: int, low: float = -2.0, high: float = 2.0):
    """Uniform values, made in float64 from seed, then rounded to dtype."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=g, dtype=torch.float64) * (high - low) + low
    return t.to(device=device, dtype=dtype)


def with_nonfinite(t: torch.Tensor, seed: int, fraction: float = 0.1) -> torch.Tensor:
    """t with NaN (both signs), +inf and -inf at random places."""
    if t.numel() == 0:
        return t
    g = torch.Generator().manual_seed(seed)
    pick = torch.rand(t.shape, generator=g) < fraction
    kind = torch.randint(0, 4, t.shape, generator=g)
    specials = torch.tensor([float("nan"), -float("nan"), float("inf"), -float("inf")],
                            dtype=t.dtype)[kind]
    return torch.where(pick.to(t.device), specials.to(t.device), t)


# -- checks ----------------------------------------------------------------------------------


def assert_close(actual, expected, dtype, tolerance=None, msg=""):
    """float64 / float32 within the op's tolerance (TOLERANCE unless given); NaN where the
    reference has NaN."""
    tol = (tolerance or TOLERANCE)[dtype]
    torch.testing.assert_close(actual, expected, **tol, equal_nan=True, msg=msg)


def assert_dtype_rule(actual, stock_lowp, reference_fp32, tolerance=None, msg=""):
    """The repository's dtype rule: float16 / bfloat16 within twice stock's own error at that
    precision of a float32 reference; float32 and float64 as assert_close."""
    if actual.dtype in LOW_PRECISION and actual.numel():
        try:
            assert_lowp_close(actual, stock_lowp, reference_fp32)
        except AssertionError as error:
            raise AssertionError(f"{msg}: {error}") from None
    elif actual.dtype not in LOW_PRECISION:
        assert_close(actual, reference_fp32.to(actual.dtype), actual.dtype, tolerance, msg)


def check_format(y: torch.Tensor, x: torch.Tensor, msg=""):
    """y is contiguous in the memory format the rule gives x."""
    fmt = output_memory_format(x)
    assert y.is_contiguous(memory_format=fmt), f"{msg}: {fmt} expected, strides {y.stride()}"


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes and equal strides where they matter (dimensions longer than 1)."""
    return a.shape == b.shape and all(
        sa == sb for sa, sb, n in zip(a.stride(), b.stride(), a.shape, strict=True) if n > 1)


def check_fake(fn: Callable, tensors: list, real_outputs):
    """fn on fake copies of tensors gives outputs of the real ones' shapes and strides."""
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fakes = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in tensors]
        fake_outputs = fn(*fakes)
    if isinstance(real_outputs, torch.Tensor):
        real_outputs, fake_outputs = [real_outputs], [fake_outputs]
    for real, fake in zip(real_outputs, fake_outputs, strict=True):
        # As Inductor's assert_size_stride: the strides of size-1 dimensions do not count.
        assert same_layout(fake, real), \
            f"fake {fake.shape} {fake.stride()} vs real {real.shape} {real.stride()}"


def outcome(fn: Callable):
    """(result, None) or (None, the exception fn raised)."""
    try:
        return fn(), None
    except Exception as error:
        return None, error


def raises_like_stock(stock: Callable, ours: Callable, same_type: bool = True) -> bool:
    """Where stock raises, ours raises (the same type unless same_type is False: when several
    arguments are wrong, either error is right); returns whether stock raised."""
    _, stock_error = outcome(stock)
    if stock_error is None:
        return False
    _, our_error = outcome(ours)
    assert our_error is not None, f"stock raised {stock_error!r}, ours returned"
    if same_type:
        assert isinstance(our_error, type(stock_error)), \
            f"stock raised {stock_error!r}, ours {our_error!r}"
    return True


def use(backend: str):
    return pyimg.use_backend(backend)
