"""Bad input raises on every backend's own path, with the message that backend's check gives.

Each op's argument checks live with its backend: the C++ op checks in C++; the Triton op and
the fake kernel share one Python check; the torch path runs that check (or stock's). The public
function checks only what it computes itself (rank, pairs, output size) before choosing a
backend. So every case runs on each path (the C++ op, the Triton op, the fake kernel on fake
tensors, the public function with each backend forced) and asserts where it was raised: in
C++, or at a Python ``raise`` in a check, and on the Triton paths inside the Triton op.
"""

import linecache
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._pytree import tree_map

import pyimg
from pyimg import _backend, _extension

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Case:
    """One fault. ``op_args`` are the arguments of ``torch.ops.pyimg.<op>`` (None: the fault
    lies in what only the public function takes); ``public`` calls the public function (None:
    the fault cannot reach the op through it). ``by_public``: the public function raises
    before choosing a backend. ``cpu_in_cpp``: the public function's cpu backend runs the C++
    op (conv2d's runs stock convolution and checks in Python)."""

    op: str
    error: type
    match: str
    op_args: Callable[[], tuple] | None = None
    public: Callable[[], object] | None = None
    by_public: bool = False
    cpu_in_cpp: bool = True
    origin_known: bool = True  # False where a meta tensor sends the C++ op to the fake


def _randn(*shape, **kwargs):
    return torch.randn(*shape, **kwargs)


# -- the cases, per op -----------------------------------------------------------------------


def _shuffle_cases():
    ops = pyimg.ops
    x8 = lambda: _randn(1, 8, 3, 3)
    return {
        "channels not divisible": Case(
            "pixel_shuffle", RuntimeError, "divisible by the square of upscale_factor",
            lambda: (_randn(1, 6, 4, 4), 2), lambda: ops.pixel_shuffle(_randn(1, 6, 4, 4), 2)),
        "factor 0": Case(
            "pixel_shuffle", RuntimeError, "expects a positive upscale_factor",
            lambda: (_randn(1, 4, 4, 4), 0), lambda: ops.pixel_shuffle(_randn(1, 4, 4, 4), 0)),
        "bias size": Case(
            "pixel_shuffle", RuntimeError, "bias must be 1-D with 8 element",
            lambda: (x8(), 2, torch.zeros(5)), lambda: ops.pixel_shuffle(x8(), 2, torch.zeros(5))),
        "bias device": Case(
            "pixel_shuffle", RuntimeError, "same device",
            lambda: (x8(), 2, torch.zeros(8, device="meta")),
            lambda: ops.pixel_shuffle(x8(), 2, torch.zeros(8, device="meta")),
            origin_known=False),
        "PReLU weight size": Case(
            "pixel_shuffle", RuntimeError, "PReLU weight must be 1-D with",
            lambda: (x8(), 2, None, "prelu", torch.ones(3)),
            lambda: ops.pixel_shuffle(x8(), 2, None, "prelu", torch.ones(3))),
        "unknown activation": Case(
            "pixel_shuffle", ValueError, "unknown activation",
            lambda: (x8(), 2, None, "gelu"), lambda: ops.pixel_shuffle(x8(), 2, None, "gelu")),
        "op input 3-D": Case(
            "pixel_shuffle", RuntimeError, "pixel_shuffle expects a 4-D",
            lambda: (_randn(8, 3, 3), 2)),
        "public input 2-D": Case(
            "pixel_shuffle", RuntimeError, "at least 3 dimensions",
            public=lambda: ops.pixel_shuffle(_randn(4, 4), 2), by_public=True),
        "weight without prelu": Case(
            "pixel_shuffle", ValueError, "exactly when",
            lambda: (x8(), 2, None, "relu", torch.ones(1)),
            lambda: ops.pixel_shuffle(x8(), 2, None, "relu", torch.ones(1))),
        "height not divisible": Case(
            "pixel_unshuffle", RuntimeError, "height to be divisible by downscale_factor",
            lambda: (_randn(1, 1, 5, 4), 2), lambda: ops.pixel_unshuffle(_randn(1, 1, 5, 4), 2)),
        "width not divisible": Case(
            "pixel_unshuffle", RuntimeError, "width to be divisible by downscale_factor",
            lambda: (_randn(1, 1, 4, 5), 2), lambda: ops.pixel_unshuffle(_randn(1, 1, 4, 5), 2)),
        "unshuffle factor 0": Case(
            "pixel_unshuffle", RuntimeError, "expects a positive downscale_factor",
            lambda: (_randn(1, 1, 4, 4), 0), lambda: ops.pixel_unshuffle(_randn(1, 1, 4, 4), 0)),
        "unshuffle op input 3-D": Case(
            "pixel_unshuffle", RuntimeError, "pixel_unshuffle expects a 4-D",
            lambda: (_randn(1, 4, 4), 2)),
        "unshuffle public input 1-D": Case(
            "pixel_unshuffle", RuntimeError, "at least 3 dimensions",
            public=lambda: ops.pixel_unshuffle(_randn(4), 2), by_public=True),
    }


def _pool_cases():
    def pool_case(match, x, k, s=(1, 1), p=(0, 0), d=(1, 1), compact=False):
        args = lambda: (x(), list(k), list(s), list(p), list(d), False, compact)
        return Case("max_pool2d_with_indices", RuntimeError, match, args,
                    lambda: pyimg.ops.max_pool2d_with_indices(*args()))

    x4 = lambda: _randn(1, 1, 4, 4)
    y, flat = lambda: _randn(1, 1, 2, 2), lambda: torch.zeros(1, 1, 2, 2, dtype=torch.long)
    unpool = pyimg.ops.max_unpool2d
    return {
        "kernel 0": pool_case("kernel_size must be greater than zero", x4, (0, 0)),
        "stride 0": pool_case("stride should not be zero", x4, (2, 2), (0, 0)),
        "dilation 0": pool_case("dilation should be greater than zero", x4, (2, 2), d=(0, 0)),
        "padding over half the kernel": pool_case("pad should be at most half", x4, (3, 3),
                                                  p=(2, 2)),
        "output too small": pool_case("too small", lambda: _randn(1, 1, 2, 2), (3, 3)),
        "compact over 256 taps": pool_case("256", lambda: _randn(1, 1, 20, 20), (17, 17),
                                           compact=True),
        "pool op input 3-D": Case(
            "max_pool2d_with_indices", RuntimeError, "max_pool2d_with_indices expects a 4-D",
            lambda: (_randn(1, 4, 4), [2, 2], [2, 2], [0, 0], [1, 1], False, False)),
        "pool public input 2-D": Case(
            "max_pool2d_with_indices", RuntimeError, "non-empty 3D or 4D",
            public=lambda: pyimg.ops.max_pool2d_with_indices(_randn(4, 4), 2), by_public=True),
        "pool public no channels": Case(
            "max_pool2d_with_indices", RuntimeError, "non-empty 3D or 4D",
            public=lambda: pyimg.ops.max_pool2d_with_indices(_randn(1, 0, 4, 4), 2),
            by_public=True),
        "indices shape": Case(
            "max_unpool2d", RuntimeError, "shape of indices to be same",
            lambda: (y(), torch.zeros(1, 1, 2, 3, dtype=torch.long), [2, 2], [2, 2], [0, 0],
                     [4, 4], False),
            lambda: unpool(y(), torch.zeros(1, 1, 2, 3, dtype=torch.long), 2, 2, 0, (4, 4))),
        "kernel not positive": Case(
            "max_unpool2d", RuntimeError, "kernel_size and stride must be positive",
            lambda: (y(), flat(), [0, 0], [2, 2], [0, 0], [2, 2], False),
            lambda: unpool(y(), flat(), 0, 2)),
        "flat indices not int64": Case(
            "max_unpool2d", RuntimeError, "indices should be type int64",
            lambda: (y(), flat().to(torch.uint8), [2, 2], [2, 2], [0, 0], [4, 4], False)),
        "unpool op input 3-D": Case(
            "max_unpool2d", RuntimeError, "max_unpool2d expects a 4-D",
            lambda: (_randn(1, 2, 2), flat()[0], [2, 2], [2, 2], [0, 0], [4, 4], False)),
        "unpool public index dtype": Case(
            "max_unpool2d", RuntimeError, r"int64 \(flat\) or uint8 \(compact\)",
            public=lambda: unpool(y(), flat().int(), 2, 2), by_public=True),
        "unpool public output_size": Case(
            "max_unpool2d", ValueError, "invalid output_size",
            public=lambda: unpool(y(), flat(), 2, 2, 0, (9, 9)), by_public=True),
    }


def _batch_norm_cases():
    x = lambda: _randn(2, 3, 4, 4)
    c3 = lambda: torch.zeros(3)
    running = lambda: (torch.zeros(3), torch.ones(3))
    ops = pyimg.ops

    def op_case(match, *args, error=RuntimeError, relu=False):
        return Case("bn_prelu", error, match,
                    lambda: (x(), *[a() if callable(a) else a for a in args], False, relu))

    return {
        "mean dtype": op_case("mean must be", lambda: c3().double(), c3, None, None, None, None),
        "weight size": op_case("weight must be 1-D with 3", c3, c3, lambda: torch.ones(4), None,
                               None, None),
        "PReLU weight size": op_case("PReLU weight must be 1-D with 3", c3, c3, None, None,
                                     lambda: torch.ones(2), None),
        "relu and PReLU": op_case("relu=True takes no PReLU weight", c3, c3, None, None,
                                  lambda: torch.ones(1), None, relu=True),
        "residual shape": op_case("residual has shape", c3, c3, None, None, None,
                                  lambda: _randn(1, 3, 4, 4)),
        "bn op input 3-D": Case("bn_prelu", RuntimeError, "bn_prelu expects a 4-D",
                                lambda: (_randn(3, 4, 4), c3(), c3(), None, None, None, None,
                                         False)),
        # The public functions check their own (stock's) arguments with stock's messages.
        "public input 3-D": Case(
            "bn_prelu", ValueError, "expected 4D input",
            public=lambda: ops.batch_norm_prelu(_randn(2, 3, 4), *running()), by_public=True),
        "public weight size": Case(
            "bn_prelu", RuntimeError, "weight should contain 3 elements",
            public=lambda: ops.batch_norm_prelu(x(), *running(), torch.ones(4)), by_public=True),
        "public PReLU weight size": Case(
            "bn_prelu", RuntimeError, "prelu weight should contain",
            public=lambda: ops.batch_norm_prelu(x(), *running(), prelu_weight=torch.ones(2)),
            by_public=True),
        "public running statistics": Case(
            "bn_prelu", RuntimeError, "running_mean and running_var",
            public=lambda: ops.batch_norm_prelu(x(), None, None), by_public=True),
        "public one value per channel": Case(
            "bn_prelu", ValueError, "Expected more than 1 value per channel",
            public=lambda: ops.batch_norm_prelu(_randn(1, 3, 1, 1), *running(), training=True),
            by_public=True),
        "public residual shape": Case(
            "bn_prelu", RuntimeError, "residual has shape",
            public=lambda: ops.batch_norm_add(x(), _randn(1, 3, 4, 4), *running()),
            by_public=True),
    }


def _conv_cases():
    """conv2d (groups 1: conv2d_triton, no C++ op) and depthwise_conv2d (groups = C,
    dilation 2: the cpu backend runs the C++ op for NCHW)."""

    def case(op, match, x, w, error=RuntimeError, stride=1, padding=0, dilation=1,
             tensors=None, activation="none", r=1):
        depthwise = op == "depthwise_conv2d"
        dilation = 2 if depthwise and dilation == 1 else dilation
        extra = tensors or (lambda: {})  # scale, shift, bias, prelu_weight, residual

        def op_args():
            t = extra()
            args = (_randn(*x), t.get("weight", _randn(*w)), t.get("bias"),
                    [stride] * 2, [padding] * 4, [dilation] * 2, t.get("scale"),
                    t.get("shift"), activation, t.get("prelu_weight"), 0.0, t.get("residual"),
                    False)
            return args if depthwise else (*args, r)

        def public():
            t = extra()
            weight = t.pop("weight", _randn(*w))
            groups = x[1] if depthwise else 1
            return pyimg.ops.conv2d(_randn(*x), weight, t.pop("bias", None), stride, padding,
                                    dilation, groups, activation=activation,
                                    upscale_factor=r, **t)

        return Case(op, error, match, op_args, public, cpu_in_cpp=depthwise)

    cases = {}
    for op, w in (("conv2d", (8, 4, 3, 3)), ("depthwise_conv2d", (4, 1, 3, 3))):
        x = (1, 4, 7, 7)
        c_out = w[0]
        cases |= {
            f"{op}: kernel too big": case(op, "Kernel size can't be greater", (1, 4, 2, 2), w),
            f"{op}: negative padding": case(op, "negative padding", x, w, padding=-1),
            f"{op}: stride 0": case(op, "non-positive stride", x, w, stride=0),
            f"{op}: weight dtype": case(op, "weight type", x, w, tensors=lambda w=w: {
                "weight": _randn(*w, dtype=torch.float64)}),
            f"{op}: bias dtype": case(op, "bias type", x, w, tensors=lambda c=c_out: {
                "bias": torch.zeros(c, dtype=torch.float64)}),
            f"{op}: scale size": case(op, "expected scale|depthwise_conv2d: scale must be", x, w,
                                      tensors=lambda: {"scale": torch.ones(3)}),
            f"{op}: residual shape": case(op, "residual has shape", x, w,
                                          tensors=lambda: {"residual": torch.zeros(1, 2, 2, 2)}),
            f"{op}: unknown activation": case(op, "unknown activation", x, w, ValueError,
                                              activation="gelu"),
            f"{op}: weight without prelu": case(op, "exactly when", x, w, ValueError,
                                                activation="relu", tensors=lambda: {
                                                    "prelu_weight": torch.ones(1)}),
        }
    cases |= {
        "conv2d: channels": case("conv2d", "to have 4 channels", (1, 3, 5, 5), (8, 4, 3, 3)),
        "conv2d: dilation 0": case("conv2d", "dilation should be", (1, 4, 5, 5), (8, 4, 3, 3),
                                   dilation=0),
        "conv2d: upscale_factor": case("conv2d", "upscale_factor", (1, 4, 5, 5), (8, 4, 3, 3),
                                       r=3),
        "depthwise_conv2d: channels": case("depthwise_conv2d", "to have 8 channels",
                                           (1, 4, 7, 7), (4, 2, 3, 3)),
        "conv2d: public input 2-D": Case(
            "conv2d", RuntimeError, "Expected 3D",
            public=lambda: pyimg.ops.conv2d(_randn(4, 4), _randn(2, 4, 3, 3)), by_public=True),
        "conv2d: public padding string": Case(
            "conv2d", RuntimeError, "Invalid padding",
            public=lambda: pyimg.ops.conv2d(_randn(1, 4, 5, 5), _randn(2, 4, 3, 3),
                                            padding="full"), by_public=True),
    }
    return cases


CASES = {**_shuffle_cases(), **_pool_cases(), **_batch_norm_cases(), **_conv_cases()}


# -- the paths -------------------------------------------------------------------------------


def _skip_reason(path: str) -> str | None:
    if path in ("C++ op", "public cpu"):
        return None if _extension.loaded() else f"compiled extension: {_extension.LOAD_ERROR}"
    if "triton" in path:
        return _backend.unavailable("triton", CPU)
    return None


def _has_cpp_op(name: str) -> bool:
    return name != "conv2d"  # conv2d's C++ side is stock convolution and the epilogue ops


def _params():
    for name, case in CASES.items():
        paths = []
        if case.op_args is not None:
            paths += ["C++ op"] if _has_cpp_op(case.op) else []
            paths += ["Triton op", "fake"]
        if case.public is not None:
            paths += ["public cpu", "public triton", "public torch"]
        for path in paths:
            reason = _skip_reason(path)
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            yield pytest.param(name, path, id=f"{name} | {path}", marks=marks)


def _run(case: Case, path: str):
    if path == "C++ op":
        return getattr(torch.ops.pyimg, case.op).default(*case.op_args())
    triton_op = getattr(torch.ops.pyimg, case.op + "_triton").default
    if path == "Triton op":
        return triton_op(*case.op_args())
    if path == "fake":
        args = case.op_args()
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:
            fake = tree_map(lambda a: mode.from_tensor(a) if isinstance(a, torch.Tensor) else a,
                            args)
            return triton_op(*fake)
    with pyimg.use_backend(path.removeprefix("public ")):
        return case.public()


def _raised_by_python(info) -> bool:
    """Whether the innermost frame of the traceback is a Python ``raise`` (else C++ raised,
    under a Python call)."""
    tb = info.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    return linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).lstrip() \
        .startswith("raise")


def _frames(info) -> list[str]:
    names, tb = [], info.tb
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


@pytest.mark.parametrize(("name", "path"), list(_params()))
def test_bad_input_raises_on_the_backends_own_path(name, path):
    case = CASES[name]
    with pytest.raises(case.error, match=case.match) as info:
        _run(case, path)
    if not case.origin_known:
        return
    in_cpp = path == "C++ op" or (path == "public cpu" and case.cpu_in_cpp)
    assert _raised_by_python(info) == (case.by_public or not in_cpp), _frames(info)
    triton_frames = [f for f in _frames(info) if "triton" in f]
    if path in ("Triton op", "public triton") and not case.by_public:
        assert triton_frames, _frames(info)  # raised inside the Triton op
    if case.by_public or path in ("public torch", "public cpu", "C++ op", "fake"):
        assert not triton_frames, _frames(info)
