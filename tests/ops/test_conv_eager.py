"""The eager entry of pyimg.ops.conv2d (csrc/python/conv2d.cpp): the calls it serves give the
Python path's results and gradients exactly, and every call it does not recognize as ordinary
goes to the Python path (the entry returns None), which raises its own messages."""

import itertools
import types

import pytest
import torch
import torch.nn.functional as F
from support import TOLERANCE, layouts

import pyimg
import pyimg.ops.conv as conv_module
from pyimg import _extension
from pyimg._format import output_memory_format

CONV_TOLERANCE = {**TOLERANCE, torch.float32: {"atol": 1e-4, "rtol": 1e-4}}


def _devices():
    params = [pytest.param("cpu", id="cpu")]
    cuda = [pytest.mark.cuda]
    if not torch.cuda.is_available():
        cuda.append(pytest.mark.skip(reason="no CUDA device"))
    elif not _extension.has_cuda_kernels():
        cuda.append(pytest.mark.skip(reason="the extension has no CUDA kernels"))
    return [*params, pytest.param("cuda", id="cuda", marks=cuda)]


pytestmark = pytest.mark.skipif(not _extension.loaded(), reason="no compiled extension")


@pytest.fixture(autouse=True)
def one_thread():
    # Hundreds of convolutions of tiny tensors: on a loaded machine, waits at each parallel
    # region's barrier made this file 30x slower with two threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=_devices())
def device(request):
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield request.param
    torch.backends.cudnn.allow_tf32 = previous


@pytest.fixture
def served(monkeypatch):
    """What each pyimg.ops.conv2d call's entry did: True (returned a tensor) or False."""
    record = []

    def conv2d(*args):
        y = _extension.eager.conv2d(*args)
        record.append(y is not None)
        return y

    monkeypatch.setattr(conv_module, "eager", types.SimpleNamespace(conv2d=conv2d))
    return record


def python_path(*args, **kwargs):
    """pyimg.ops.conv2d with the entry disabled."""
    entry, conv_module.eager = conv_module.eager, None
    try:
        return pyimg.ops.conv2d(*args, **kwargs)
    finally:
        conv_module.eager = entry


def assert_same(ours, expected, msg=""):
    """Equal values (the same ops in the same order), dtype and memory format."""
    torch.testing.assert_close(ours, expected, rtol=0, atol=0, msg=msg)
    assert ours.stride() == expected.stride() or ours.numel() == 0, msg


def rand(*size, device="cpu", dtype=torch.float32, lo=-1.0, hi=1.0):
    return torch.empty(size, dtype=torch.float64).uniform_(lo, hi).to(device=device, dtype=dtype)


# (x shape, C_out, kernel, stride, padding, dilation): odd sizes, 1x1 and 5x5 kernels, stride,
# dilation, int / pair / one-element padding, one input channel, batch 0, 1 and 2.
GEOMETRIES = [
    ((2, 3, 7, 5), 8, 3, 1, 1, 1),
    ((1, 5, 9, 6), 4, 5, (2, 1), (2, 0), 1),
    ((1, 4, 9, 9), 8, 3, 1, [2], (2, 1)),
    ((1, 1, 6, 7), 4, 3, 1, 1, 1),
    ((1, 3, 5, 5), 8, 1, 2, 0, 1),
    ((0, 3, 5, 4), 8, 3, 1, 1, 1),
]

# activation, residual (None / after / before), upscale factor, scale and shift, bias.
EPILOGUES = list(itertools.product(("none", "relu", "leaky_relu", "prelu"),
                                   (None, "after", "before"), (1, 2), (False, True),
                                   (False, True)))


def epilogue(x, c_out, out_hw, activation, residual, r, affine, per_channel=True):
    """conv2d's epilogue keyword arguments, random tensors for a conv of c_out channels."""
    kw = dict(activation=activation, upscale_factor=r, negative_slope=0.2,
              add_before_activation=residual == "before")
    d = dict(device=x.device, dtype=x.dtype)
    if affine:
        # scale and shift in float32: the Python path converts them to the accumulate dtype.
        kw.update(scale=rand(c_out, device=x.device, lo=0.5, hi=2.0),
                  shift=rand(c_out, device=x.device))
    if activation == "prelu":
        kw["prelu_weight"] = rand(c_out // r**2 if per_channel else 1, **d, lo=-0.25, hi=0.5)
    if residual is not None:
        kw["residual"] = rand(x.shape[0], c_out // r**2, out_hw[0] * r, out_hw[1] * r, **d)
    return kw


def _out_hw(shape, k, stride, padding, dilation):
    def pair(v):
        return (v, v) if isinstance(v, int) else (v[0], v[-1])

    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    return ((shape[2] + 2 * ph - dh * (k - 1) - 1) // sh + 1,
            (shape[3] + 2 * pw - dw * (k - 1) - 1) // sw + 1)


def calls(device, dtype):
    """(x, weight, bias, positional conv arguments, epilogue, label, whether the entry serves
    it): each geometry meets each epilogue, the layouts taking turns. One input channel on CUDA
    is the depthwise kernel's (pyimg/ops/conv.py), not the entry's."""
    torch.manual_seed(0)
    for g, (shape, c_out, k, stride, padding, dilation) in enumerate(GEOMETRIES):
        x = rand(*shape, device=device, dtype=dtype)
        views = [view for _, view in layouts(x)]
        weight = rand(c_out, shape[1], k, k, device=device, dtype=dtype)
        out_hw = _out_hw(shape, k, stride, padding, dilation)
        for i, (activation, residual, r, affine, with_bias) in enumerate(EPILOGUES):
            kw = epilogue(x, c_out, out_hw, activation, residual, r, affine, i % 4 < 2)
            bias = rand(c_out, device=device, dtype=dtype) if with_bias else None
            label = f"{shape} geometry {g} {activation} {residual} r={r} affine={affine}"
            serves = not (device == "cuda" and shape[1] == 1 and r == 1)
            yield views[(g + i) % 3], weight, bias, (stride, padding, dilation), kw, label, serves


# -- served calls ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", (torch.float64, torch.float32, torch.bfloat16))
def test_serves_ordinary_calls_as_the_python_path(device, dtype, served):
    expected_served = []
    for x, weight, bias, conv, kw, label, serves in calls(device, dtype):
        y = pyimg.ops.conv2d(x, weight, bias, *conv, **kw)
        expected_served.append(serves)
        assert served[-1] == serves, label
        assert_same(y, python_path(x, weight, bias, *conv, **kw), label)
        if dtype != torch.bfloat16:
            with pyimg.use_backend("torch"):
                expected = pyimg.ops.conv2d(x, weight, bias, *conv, **kw)
            torch.testing.assert_close(y, expected, **CONV_TOLERANCE[dtype], msg=label)
            assert y.is_contiguous(memory_format=output_memory_format(x)), label
    assert served.count(True) == sum(expected_served) >= len(expected_served) - len(EPILOGUES)


def test_honours_the_forced_backend(served):
    x, weight = rand(1, 3, 5, 5), rand(4, 3, 3, 3)
    with pyimg.use_backend("cpu"):
        y = pyimg.ops.conv2d(x, weight, None, 1, 1, activation="relu")
    with pyimg.use_backend("torch"):
        expected = pyimg.ops.conv2d(x, weight, None, 1, 1, activation="relu")
    assert served == [True, False]
    torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32])


def test_dilated_conv2d_is_served(served):
    x, weight = rand(1, 3, 9, 8), rand(4, 3, 3, 3)
    y = pyimg.ops.dilated_conv2d(x, weight, None, 3, 3, activation="leaky_relu")
    assert served == [True]
    torch.testing.assert_close(y, F.leaky_relu(F.conv2d(x, weight, None, 1, 3, 3), 0.01),
                               **CONV_TOLERANCE[torch.float32])


def test_inference_mode_and_no_grad(served):
    x, weight, bias = rand(1, 3, 5, 5), rand(8, 3, 3, 3).requires_grad_(), rand(8)
    kw = dict(scale=rand(8), shift=rand(8), activation="prelu", prelu_weight=rand(1),
              upscale_factor=2)
    expected = python_path(x, weight.detach(), bias, 1, 1, **kw)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            y = pyimg.ops.conv2d(x, weight, bias, 1, 1, **kw)
        assert y.grad_fn is None and not y.requires_grad
        assert_same(y, expected, mode.__name__)
    assert served == [True, True]


# -- gradients -------------------------------------------------------------------------------


def _grads(fn, tensors, x, weight, bias, conv, kw):
    y = fn(x, weight, bias, *conv, **kw)
    grad = torch.randn_like(y)
    wanted = [t for t in tensors if t.requires_grad]
    return y, torch.autograd.grad(y, wanted, grad) if y.grad_fn is not None else ()


@pytest.mark.parametrize("which", ("all", "x", "parameters"))
def test_gradients_equal_the_python_path(device, served, which):
    # Every epilogue, gradients of every tensor (or of x alone, or of the parameters alone, as
    # a module called with gradients on in eval), against the Python path's.
    for x, weight, bias, conv, kw, label, serves in calls(device, torch.float64):
        tensors = [x, weight, bias, kw.get("scale"), kw.get("shift"), kw.get("prelu_weight"),
                   kw.get("residual")]
        tensors = [t.detach().requires_grad_(which == "all" or (which == "x") == (i == 0))
                   if t is not None else None for i, t in enumerate(tensors)]
        x, weight, bias = tensors[:3]
        kw.update({k: t for k, t in zip(("scale", "shift", "prelu_weight", "residual"),
                                        tensors[3:], strict=True) if t is not None})
        present = [t for t in tensors if t is not None]
        torch.manual_seed(1)
        y, ours = _grads(pyimg.ops.conv2d, present, x, weight, bias, conv, kw)
        assert served[-1] == serves and y.requires_grad, label
        torch.manual_seed(1)
        expected_y, expected = _grads(python_path, present, x, weight, bias, conv, kw)
        assert_same(y, expected_y, label)
        assert len(ours) == len(expected) > 0, label
        for g, e in zip(ours, expected, strict=True):
            torch.testing.assert_close(g, e, **TOLERANCE[torch.float64], msg=label)


def test_gradcheck_through_the_entry(served):
    x = rand(1, 3, 4, 5, dtype=torch.float64).requires_grad_()
    weight = rand(8, 3, 3, 3, dtype=torch.float64).requires_grad_()
    bias = rand(8, dtype=torch.float64).requires_grad_()
    scale = rand(8, dtype=torch.float64, lo=0.5, hi=2.0).requires_grad_()
    alpha = rand(2, dtype=torch.float64, lo=0.1, hi=0.3).requires_grad_()
    residual = rand(1, 2, 8, 10, dtype=torch.float64).requires_grad_()

    def fn(x, weight, bias, scale, alpha, residual):
        return pyimg.ops.conv2d(x, weight, bias, 1, 1, scale=scale, activation="prelu",
                                prelu_weight=alpha, residual=residual, upscale_factor=2)

    assert torch.autograd.gradcheck(fn, (x, weight, bias, scale, alpha, residual))
    assert served and all(served)


def test_odd_unit_strides_are_made_canonical(served):
    # A channels_last x whose size-1 H carries another stride than channels_last's own, and a
    # channels_last weight: the entry gives the convolution the formats' own strides (as the
    # Python path), with the contiguous inputs' values and gradients.
    x = rand(1, 4, 1, 3, dtype=torch.float64)
    weight = rand(2, 4, 1, 1, dtype=torch.float64)
    odd = torch.empty(12, dtype=x.dtype).as_strided(x.shape, (12, 1, 5, 4)).copy_(x)
    cl_weight = weight.contiguous(memory_format=torch.channels_last)
    g = rand(1, 2, 1, 3, dtype=torch.float64)
    results = []
    for xi, wi, fn in ((odd, cl_weight, pyimg.ops.conv2d), (x, weight, F.conv2d)):
        xi, wi = xi.detach().requires_grad_(), wi.detach().requires_grad_()
        y = fn(xi, wi, None, 1, 0, 1, 1)
        results.append((y, *torch.autograd.grad(y, (xi, wi), g)))
    assert served == [True]
    for ours, expected in zip(*results, strict=True):
        torch.testing.assert_close(ours, expected)


# -- declined calls --------------------------------------------------------------------------


def _args(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, scale=None,
          shift=None, activation="none", prelu_weight=None, negative_slope=0.01, residual=None,
          add_before_activation=False, upscale_factor=1):
    return (x, weight, bias, stride, padding, dilation, groups, scale, shift, activation,
            prelu_weight, negative_slope, residual, add_before_activation, upscale_factor)


X, W = torch.randn(1, 4, 5, 5), torch.randn(8, 4, 3, 3)
# name: (conv2d's arguments, the message the Python path raises, or None where it is valid)
DECLINED = {
    "unbatched": (_args(X[0], W), None),
    "padding same, one more at the end": (_args(X, torch.randn(8, 4, 2, 2), padding="same"),
                                          None),
    "padding same, strided": (_args(X, W, stride=2, padding="same"), "not supported for strided"),
    "padding string": (_args(X, W, padding="full"), "Invalid padding string"),
    "groups, weight channels": (_args(X, W, groups=2), "to have 8 channels"),
    "groups, output channels": (_args(X, torch.randn(6, 1, 3, 3), groups=4),
                                "divisible by 4"),
    "torch.Size padding": (_args(X, W, padding=torch.Size([1, 1])), None),
    "bool upscale factor": (_args(X, W, upscale_factor=True), None),
    "int add_before_activation": (_args(X, W, add_before_activation=1), None),
    "integer dtype": (_args(X.long(), W.long()), None),
    "rank": (_args(torch.randn(4, 4), W), "Expected 3D"),
    "weight rank": (_args(X, torch.randn(8, 4, 3)), "weight should have 4 dimensions"),
    "channels": (_args(torch.randn(1, 3, 5, 5), W), "to have 4 channels"),
    "kernel too big": (_args(torch.randn(1, 4, 2, 2), W), "Kernel size can't be greater"),
    "negative padding": (_args(X, W, padding=-1), "negative padding"),
    "stride 0": (_args(X, W, stride=0), "non-positive stride"),
    "dilation 0": (_args(X, W, dilation=(1, 0)), "dilation should be"),
    "stride rank": (_args(X, W, stride=(1, 1, 1)), "list of 2 values"),
    "groups 0": (_args(X, W, groups=0), "non-positive groups"),
    "weight dtype": (_args(X, W.double()), "weight type"),
    "bias dtype": (_args(X, W, torch.zeros(8, dtype=torch.float64)), "bias type"),
    "weight device": (_args(X, W.to("meta")), "same device"),
    "bias size": (_args(X, W, torch.zeros(5)), "expected bias to be 1-dimensional with 8"),
    "scale size": (_args(X, W, scale=torch.ones(4)), "expected scale"),
    "shift rank": (_args(X, W, shift=torch.ones(8, 1)), "expected shift"),
    "prelu weight size": (_args(X, W, activation="prelu", prelu_weight=torch.ones(8),
                                upscale_factor=2), "PReLU weight"),
    "prelu weight without prelu": (_args(X, W, activation="relu",
                                         prelu_weight=torch.ones(1)), "exactly when"),
    "prelu without weight": (_args(X, W, activation="prelu"), "exactly when"),
    "unknown activation": (_args(X, W, activation="gelu"), "unknown activation"),
    "upscale factor": (_args(X, W, upscale_factor=3), "upscale_factor"),
    "upscale factor 0": (_args(X, W, upscale_factor=0), "upscale_factor"),
    "residual shape": (_args(X, W, residual=torch.zeros(1, 8, 5, 5)), "residual has shape"),
    "residual device": (_args(X, W, residual=torch.zeros(1, 8, 3, 3, device="meta")),
                        "same device"),
}


@pytest.mark.filterwarnings("ignore:pyimg.conv2d.*falling back")
@pytest.mark.parametrize("case", DECLINED, ids=list(DECLINED))
def test_declines_what_it_does_not_recognize(case):
    args, message = DECLINED[case]
    assert _extension.eager.conv2d(*args) is None
    names = ("scale", "shift", "activation", "prelu_weight", "negative_slope", "residual",
             "add_before_activation", "upscale_factor")
    keywords = dict(zip(names, args[7:], strict=True))
    if message is None:
        y = pyimg.ops.conv2d(*args[:7], **keywords)
        with pyimg.use_backend("torch"):
            expected = pyimg.ops.conv2d(*args[:7], **keywords)
        torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32])
    else:
        with pytest.raises((RuntimeError, ValueError), match=message):
            pyimg.ops.conv2d(*args[:7], **keywords)


# name: (x, weight, conv2d's stride, padding, dilation, groups, epilogue): string paddings,
# grouped and depthwise convolutions, which the entry serves as the Python path does, the
# depthwise kernel's calls (NCHW dilated on the cpu backend) through pyimg::depthwise_conv2d.
SERVED = {
    "padding same": ((2, 4, 7, 6), (8, 4, 3, 3), 1, "same", 1, 1, {}),
    "padding same, dilated": ((1, 4, 9, 9), (8, 4, 3, 5), 1, "same", (2, 1), 1,
                              dict(activation="relu")),
    "padding valid, strided": ((1, 4, 7, 6), (8, 4, 3, 3), 2, "valid", 1, 1,
                               dict(upscale_factor=2)),
    "groups 2": ((1, 4, 7, 6), (6, 2, 3, 3), 1, 1, 1, 2, dict(activation="prelu")),
    "depthwise": ((2, 4, 7, 6), (8, 1, 3, 3), 1, 1, 1, 4, dict(activation="leaky_relu")),
    "depthwise dilated NCHW": ((2, 4, 9, 8), (4, 1, 3, 3), 1, 2, 2, 4,
                               dict(activation="prelu", residual=True)),
    "depthwise dilated, one channel": ((1, 1, 7, 7), (2, 1, 3, 3), 1, 0, 2, 1, {}),
    "depthwise, padding same": ((1, 4, 7, 6), (4, 1, 3, 3), 1, "same", 3, 4,
                                dict(scale=True, residual=True, add_before_activation=True)),
}


def _served_call(case, dtype=torch.float64, layout=0):
    x_shape, w_shape, stride, padding, dilation, groups, kw = SERVED[case]
    x = [view for _, view in layouts(rand(*x_shape, dtype=dtype))][layout]
    weight = rand(*w_shape, dtype=dtype)
    kw = dict(kw)
    c_out = w_shape[0]
    if kw.get("activation") == "prelu":
        kw["prelu_weight"] = rand(c_out, dtype=dtype, lo=0.1, hi=0.3)
    if kw.pop("scale", False):
        kw.update(scale=rand(c_out, dtype=dtype, lo=0.5, hi=2.0), shift=rand(c_out, dtype=dtype))
    if kw.pop("residual", False):
        out = F.conv2d(x, weight, None, stride, padding, dilation, groups)
        kw["residual"] = rand(*out.shape, dtype=dtype)
    return x, weight, rand(c_out, dtype=dtype), (stride, padding, dilation, groups), kw


@pytest.mark.parametrize("layout", (0, 1, 2))
@pytest.mark.parametrize("case", SERVED, ids=list(SERVED))
def test_serves_string_padding_groups_and_depthwise_as_the_python_path(case, layout, served):
    x, weight, bias, conv, kw = _served_call(case, layout=layout)
    tensors = [t.requires_grad_() for t in (x, weight, bias, *kw.values())
               if isinstance(t, torch.Tensor)]
    y = pyimg.ops.conv2d(x, weight, bias, *conv, **kw)
    assert served == [True]
    expected = python_path(x, weight, bias, *conv, **kw)
    assert_same(y, expected, case)
    g = torch.randn_like(y)
    for ours, theirs in zip(torch.autograd.grad(y, tensors, g),
                            torch.autograd.grad(expected, tensors, g), strict=True):
        torch.testing.assert_close(ours, theirs, **TOLERANCE[torch.float64], msg=case)
    with torch.no_grad():
        assert_same(pyimg.ops.conv2d(x, weight, bias, *conv, **kw), expected, case)
        stock = F.conv2d(x, weight, bias, *conv)
    if not kw:
        torch.testing.assert_close(y, stock, **TOLERANCE[torch.float64])


def _ran_depthwise_op(*args) -> bool:
    with torch.autograd.profiler.profile() as prof:
        assert _extension.eager.conv2d(*args) is not None
    return any(e.name == "pyimg::depthwise_conv2d" for e in prof.function_events)


def test_depthwise_calls_reach_the_depthwise_op():
    # NCHW dilated depthwise on the cpu backend is the direct kernel's (as _direct_depthwise
    # in pyimg/ops/conv.py), the others stock convolution's.
    x, weight = torch.randn(1, 4, 9, 8), torch.randn(4, 1, 3, 3)
    assert _ran_depthwise_op(*_args(x, weight, dilation=2, groups=4))
    assert not _ran_depthwise_op(*_args(x, weight, groups=4))
    cl = x.contiguous(memory_format=torch.channels_last)
    assert not _ran_depthwise_op(*_args(cl, weight, dilation=2, groups=4))


def test_declines_forced_backends_autocast_modes_and_subclasses():
    args = _args(X, W, padding=1)
    assert _extension.eager.conv2d(*args) is not None
    for backend in ("torch", "triton"):
        with pyimg.use_backend(backend):
            assert _extension.eager.conv2d(*args) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _extension.eager.conv2d(*args) is None

    class Mode(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Mode():
        assert _extension.eager.conv2d(*args) is None

    class Sub(torch.Tensor):
        pass

    assert _extension.eager.conv2d(*_args(X.as_subclass(Sub), W, padding=1)) is None
    assert _extension.eager.conv2d(*_args(X, W, torch.zeros(8).as_subclass(Sub))) is None
    sparse = _extension.eager.conv2d(*_args(X, W, scale=torch.ones(8).to_sparse()))
    assert sparse is None


# -- the modules reach the entry -------------------------------------------------------------


def test_modules_in_eval_are_served(served):
    c = 8
    conv = pyimg.nn.Conv2d(c, c, 3, padding=1)
    fused = pyimg.nn.Conv2dBNAct.from_modules(torch.nn.Conv2d(c, c, 3, padding=1),
                                              torch.nn.BatchNorm2d(c), torch.nn.PReLU())
    block, upsample = pyimg.nn.ResidualBlock(c), pyimg.nn.UpsampleBlock(c, 2)
    x = torch.randn(1, c, 5, 4)
    with torch.no_grad():
        for module in (conv, fused, block, upsample):
            module.eval()(x)
    assert served == [True] * 5
