"""conv2d / dilated_conv2d with fused epilogues, every backend against stock F.conv2d and the
torch reference. Shapes stay tiny: Triton's CPU interpreter runs each tile in Python."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from support import (
    LOW_PRECISION,
    TOLERANCE,
    assert_lowp_close,
    backend_params,
    layouts,
    poisoned_outputs,
)

import pyimg
from pyimg._format import output_memory_format
from pyimg.ops.conv import conv2d_reference
from pyimg.triton.conv import use_tf32

# A float32 convolution sums up to a few hundred products in an order of its own: compared
# with stock's, its error is that of the sum, not one rounding.
CONV_TOLERANCE = {**TOLERANCE, torch.float32: {"atol": 1e-4, "rtol": 1e-4}}
# Stock's own note on its reference calls with 'same' and an even kernel.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


@pytest.fixture(autouse=True)
def exact_float32():
    # Stock cuDNN and our kernel both follow this flag; compare them in exact float32.
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = previous


@pytest.fixture(params=backend_params())
def backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield device


# (x shape, C_out, kernel, stride, padding, dilation): kernel sizes 1..9, dilation 1..4,
# 'same' (symmetric and asymmetric), int and pair padding, stride 2, 1 / 3 / odd / >= 32
# channels (Triton's per-tap channel loop), batch 0.
CASES = [
    ((2, 3, 5, 6), 5, 3, 1, "same", 1),
    ((1, 1, 7, 5), 4, 5, 1, 2, 1),
    ((1, 5, 9, 9), 3, 3, 1, "same", 4),
    ((1, 4, 6, 6), 6, 1, 2, 0, 1),
    ((1, 1, 9, 9), 3, 9, 1, "same", 1),
    ((1, 4, 6, 5), 4, 4, 1, "same", 1),
    ((1, 33, 4, 4), 16, 3, 1, (2, 1), 2),
    ((2, 3, 7, 6), 2, 3, 2, 1, 1),
    ((1, 7, 5, 4), 7, 3, 1, "valid", (2, 1)),
    ((0, 3, 4, 4), 2, 3, 1, 1, 1),
]


def sample_inputs(device, dtype, requires_grad=False):
    """(x, weight, bias, conv keyword arguments) per case."""
    generator = torch.Generator().manual_seed(0)
    for shape, c_out, k, stride, padding, dilation in CASES:
        def rand(*size):
            t = torch.randn(size, generator=generator, dtype=torch.float64)
            return t.to(device=device, dtype=dtype).requires_grad_(requires_grad)

        x, weight, bias = rand(*shape), rand(c_out, shape[1], k, k), rand(c_out)
        yield x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation)


def epilogue(c_out, device, dtype, activation="none", affine=True, r=1, residual=None,
             before=False, per_channel=True):
    """The epilogue's keyword arguments, random tensors matching a conv of c_out channels."""
    def rand(n, lo=-1.0, hi=1.0):
        return torch.empty(n, device=device, dtype=dtype).uniform_(lo, hi)

    kw = dict(activation=activation, upscale_factor=r, add_before_activation=before,
              negative_slope=0.2)
    if affine:
        kw.update(scale=rand(c_out, 0.5, 2.0), shift=rand(c_out))
    if activation == "prelu":
        kw["prelu_weight"] = rand(c_out // (r * r) if per_channel else 1, -0.25, 0.5)
    if residual is not None:
        kw["residual"] = residual
    return kw


# -- forward ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_conv_matches_stock(backend, dtype):
    for x, weight, bias, conv in sample_inputs(backend, dtype):
        expected = F.conv2d(x, weight, bias, **conv)
        for name, xl in layouts(x):
            with poisoned_outputs():
                y = pyimg.ops.conv2d(xl, weight, bias, **conv)
            torch.testing.assert_close(y, expected, **CONV_TOLERANCE[dtype],
                                       msg=f"{tuple(x.shape)} {conv} {name}")
            assert y.is_contiguous(memory_format=output_memory_format(xl)), name


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_error_at_most_twice_stock(backend, dtype):
    for x, weight, bias, conv in itertools.islice(sample_inputs(backend, dtype), 4):
        reference = F.conv2d(x.float(), weight.float(), bias.float(), **conv)
        stock = F.conv2d(x, weight, bias, **conv)
        for _, xl in layouts(x):
            assert_lowp_close(pyimg.ops.conv2d(xl, weight, bias, **conv), stock, reference)


# Every activation x residual (none / after / before) x pixel shuffle x affine.
EPILOGUE_COMBINATIONS = list(itertools.product(
    ("none", "relu", "leaky_relu", "prelu"), (None, "after", "before"), (1, 2), (True, False)))


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16))
def test_every_epilogue_matches_reference(backend, dtype):
    x = torch.randn(2, 3, 5, 4, device=backend, dtype=dtype)
    weight = torch.randn(8, 3, 3, 3, device=backend, dtype=dtype)
    bias = torch.randn(8, device=backend, dtype=dtype)
    views = [view for _, view in layouts(x)]
    for i, (activation, residual, r, affine) in enumerate(EPILOGUE_COMBINATIONS):
        res = None
        if residual is not None:
            res = torch.randn(2, 8 // (r * r), 5 * r, 4 * r, device=backend, dtype=dtype)
        kw = epilogue(8, backend, dtype, activation, affine, r, res, residual == "before",
                      per_channel=i % 2 == 0)
        xl = views[i % len(views)]  # each layout meets every feature, not every combination
        with poisoned_outputs():
            y = pyimg.ops.conv2d(xl, weight, bias, 1, "same", **kw)
        msg = f"{activation} residual={residual} r={r} affine={affine}"
        if dtype == torch.float32:
            expected = conv2d_reference(x, weight, bias, 1, "same", **kw)
            torch.testing.assert_close(y, expected, **CONV_TOLERANCE[dtype], msg=msg)
        else:
            up = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
            reference = conv2d_reference(x.float(), weight.float(), bias.float(), 1, "same",
                                         **up)
            stock = conv2d_reference(x, weight, bias, 1, "same", **kw)
            assert_lowp_close(y, stock, reference)
        assert y.is_contiguous(memory_format=output_memory_format(xl)), msg


def test_dilated_conv2d_is_conv2d_with_dilation_first(backend):
    x = torch.randn(1, 3, 9, 8, device=backend)
    weight = torch.randn(4, 3, 3, 3, device=backend)
    y = pyimg.ops.dilated_conv2d(x, weight, None, 3, "same", activation="relu")
    torch.testing.assert_close(y, F.relu(F.conv2d(x, weight, None, 1, "same", 3)),
                               **CONV_TOLERANCE[torch.float32])


def test_grouped_and_depthwise(backend):
    # Triton's kernel is groups=1: these run stock convolution + the fused epilogue pass.
    x = torch.randn(1, 4, 6, 5, device=backend).contiguous(memory_format=torch.channels_last)
    for groups, c_out in ((2, 6), (4, 4)):
        weight = torch.randn(c_out, 4 // groups, 3, 3, device=backend)
        kw = epilogue(c_out, backend, x.dtype, "prelu", residual=torch.randn(
            1, c_out, 6, 5, device=backend))
        y = pyimg.ops.conv2d(x, weight, None, 1, 2, 2, groups, **kw)
        expected = conv2d_reference(x, weight, None, 1, 2, 2, groups, **kw)
        torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32])
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_unbatched_input(backend):
    x, weight = torch.randn(3, 5, 5, device=backend), torch.randn(2, 3, 3, 3, device=backend)
    torch.testing.assert_close(pyimg.ops.conv2d(x, weight, padding=1),
                               F.conv2d(x, weight, padding=1), **CONV_TOLERANCE[torch.float32])


def strided(t: torch.Tensor) -> torch.Tensor:
    """t's values as a non-contiguous view: every other element of a larger tensor."""
    storage = torch.full((t.numel() * 2,), 1e3, dtype=t.dtype, device=t.device)
    view = storage[::2].view(t.shape) if t.dim() == 1 else storage.view(*t.shape[:-1], -1)[
        ..., ::2]
    view.copy_(t)
    return view


def test_strided_epilogue_tensors(backend):
    # Every tensor argument read through its strides: bias, scale, shift, the PReLU weight,
    # the weight and the residual as views that skip every other element.
    x = torch.randn(2, 3, 5, 4, device=backend)
    weight = torch.randn(8, 3, 3, 3, device=backend)
    bias = torch.tensor([1.0, 100, 2, 200, 3, 300], device=backend)[::2]
    y = pyimg.ops.conv2d(x[:1, :2, :3, :3], torch.ones(3, 2, 1, 1, device=backend), bias)
    expected = F.conv2d(x[:1, :2, :3, :3], torch.ones(3, 2, 1, 1, device=backend),
                        bias.contiguous())
    torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32])
    for r, groups in ((1, 1), (2, 1), (1, 3)):
        w = weight if groups == 1 else weight[:6, :1]
        c_out = w.shape[0]
        res = torch.randn(2, c_out // (r * r), 5 * r, 4 * r, device=backend)
        kw = epilogue(c_out, backend, x.dtype, "prelu", True, r, res)
        contiguous = {k: v.contiguous() if isinstance(v, torch.Tensor) else v
                      for k, v in kw.items()}
        b = torch.randn(w.shape[0], device=backend)
        expected = conv2d_reference(x, w.contiguous(), b, 1, 1, 1, groups, **contiguous)
        views = {k: strided(v) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        with poisoned_outputs():
            y = pyimg.ops.conv2d(x, strided(w), strided(b), 1, 1, 1, groups, **views)
        torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32],
                                   msg=f"r={r} groups={groups}")


# -- backward --------------------------------------------------------------------------------

GRADIENT_CASES = [  # (activation, residual, r, per-channel PReLU)
    ("none", None, 1, True),
    ("relu", "after", 1, True),
    ("leaky_relu", "before", 1, True),
    ("prelu", "after", 2, True),
    ("prelu", "before", 2, False),
    ("prelu", None, 1, False),
]


def _keep_off_kinks(x, weight, bias, kw, conv):
    """Shift the bias so no pre-activation lies within 0.1 of 0, where relu-like functions
    have no derivative and finite differences lie. Returns the new bias."""
    with torch.no_grad():
        z = conv2d_reference(x, weight, bias, **conv, **{**kw, "activation": "none"})
        if kw.get("residual") is not None and not kw["add_before_activation"]:
            z = z - kw["residual"]
        near = (z.abs() < 0.1).any()
        return bias + 0.37 if near else bias


@pytest.mark.parametrize(("activation", "residual", "r", "per_channel"), GRADIENT_CASES)
def test_gradients_match_reference(backend, activation, residual, r, per_channel):
    dtype = torch.float64
    x = torch.randn(2, 3, 4, 5, device=backend, dtype=dtype)
    weight = torch.randn(8, 3, 3, 3, device=backend, dtype=dtype)
    bias = torch.randn(8, device=backend, dtype=dtype)
    res = None if residual is None else torch.randn(2, 8 // r**2, 4 * r, 5 * r, device=backend,
                                                    dtype=dtype)
    kw = epilogue(8, backend, dtype, activation, True, r, res, residual == "before", per_channel)
    tensors = [t.requires_grad_() for t in (x, weight, bias, kw["scale"], kw["shift"],
                                            kw.get("prelu_weight"), res) if t is not None]
    for name, xl in list(layouts(x))[:2]:
        inputs = [xl.detach().requires_grad_(), *tensors[1:]]
        y = pyimg.ops.conv2d(inputs[0], weight, bias, 1, 1, **kw)
        grad = torch.randn_like(y)
        with poisoned_outputs():
            ours = torch.autograd.grad(y, inputs, grad)
        expected = torch.autograd.grad(conv2d_reference(inputs[0], weight, bias, 1, 1, **kw),
                                       inputs, grad)
        for g, e in zip(ours, expected, strict=True):
            torch.testing.assert_close(g, e, **TOLERANCE[dtype], msg=name)


@pytest.fixture(params=[*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
def any_backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield device


@pytest.mark.parametrize("groups", (1, 4))
def test_empty_batch_backward_with_upscale(any_backend, groups):
    backend = any_backend
    x = torch.randn(0, 4, 2, 3, device=backend, requires_grad=True)
    weight = torch.randn(8, 4 // groups, 1, 1, device=backend, requires_grad=True)
    bias = torch.randn(8, device=backend, requires_grad=True)
    prelu = torch.rand(2, device=backend, requires_grad=True)
    kw = dict(activation="prelu", prelu_weight=prelu, upscale_factor=2)
    y = pyimg.ops.conv2d(x, weight, bias, 2, 3, 1, groups, **kw)
    assert y.shape == (0, 2, 8, 10)
    # Stock's own pixel_shuffle backward fails on an empty batch: nothing to compare with but
    # the answer, zero gradients.
    for g, t in zip(torch.autograd.grad(y.sum(), (x, weight, bias, prelu)),
                    (x, weight, bias, prelu), strict=True):
        torch.testing.assert_close(g, torch.zeros_like(t))


@pytest.mark.parametrize("groups", (1, 3))
@pytest.mark.parametrize("activation", ("relu", "leaky_relu", "prelu"))
@pytest.mark.parametrize("affine", (False, True))
def test_gradients_at_nan_match_stock(backend, groups, activation, affine):
    # A NaN input pixel makes NaN pre-activations: stock's ReLU passes their gradient (as 1),
    # leaky_relu and PReLU scale it by their slope.
    x = torch.randn(1, 3, 5, 5, device=backend, dtype=torch.float64)
    x[0, :, 2, 2] = float("nan")
    x[0, :, 0, 4] = -float("nan")
    weight = torch.randn(6, 3 // groups, 3, 3, device=backend, dtype=torch.float64)
    kw = epilogue(6, backend, torch.float64, activation, affine)
    tensors = [x, weight, *(v for v in kw.values() if isinstance(v, torch.Tensor))]
    for t in tensors:
        t.requires_grad_()
    y = pyimg.ops.conv2d(x, weight, None, 1, 1, 1, groups, **kw)
    y_ref = conv2d_reference(x, weight, None, 1, 1, 1, groups, **kw)
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    grad = torch.randn_like(y)
    ours = torch.autograd.grad(y, tensors, grad)
    for g, e in zip(ours, torch.autograd.grad(y_ref, tensors, grad), strict=True):
        torch.testing.assert_close(g, e, equal_nan=True)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_conv_gradients_match_stock(backend, dtype):
    # Every geometry of CASES (stride 2, asymmetric and over-wide padding, dilation, 1 / 3 /
    # odd / >= 32 channels, batch 0) through the x and weight gradients, in both layouts.
    for x, weight, bias, conv in sample_inputs(backend, dtype):
        y = F.conv2d(x.requires_grad_(), weight.requires_grad_(), bias, **conv)
        grad = torch.randn_like(y)
        expected = torch.autograd.grad(y, (x, weight), grad)
        for name, xl in list(layouts(x.detach()))[:2]:
            xl.requires_grad_()
            with poisoned_outputs():
                ours = torch.autograd.grad(pyimg.ops.conv2d(xl, weight, bias, **conv),
                                           (xl, weight), grad)
            for g, e, what in zip(ours, expected, ("x", "weight"), strict=True):
                torch.testing.assert_close(g, e, **CONV_TOLERANCE[dtype],
                                           msg=f"d{what} {tuple(x.shape)} {conv} {name}")
            assert ours[0].is_contiguous(memory_format=output_memory_format(xl)), name


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_gradients_at_most_twice_stock_error(backend, dtype):
    x = torch.randn(2, 16, 6, 7, device=backend, dtype=dtype)
    weight = torch.randn(8, 16, 3, 3, device=backend, dtype=dtype) / 12
    def grads(x, weight, fn, conv):
        x, weight = x.detach().requires_grad_(), weight.detach().requires_grad_()
        y = fn(x, weight, None, **conv)
        return torch.autograd.grad(y, (x, weight), torch.ones_like(y))

    for conv in (dict(padding="same", dilation=2), dict(stride=2, padding=1)):
        reference = grads(x.float(), weight.float(), F.conv2d, conv)
        stock = grads(x, weight, F.conv2d, conv)
        ours = grads(x, weight, pyimg.ops.conv2d, conv)
        for o, s, r in zip(ours, stock, reference, strict=True):
            assert_lowp_close(o, s, r)


def test_gradients_are_the_same_bits_every_run(backend):
    x = torch.randn(3, 5, 9, 8, device=backend).requires_grad_()
    weight = torch.randn(16, 5, 3, 3, device=backend).requires_grad_()
    kw = epilogue(16, backend, x.dtype, "relu")

    def grads():
        y = pyimg.ops.conv2d(x, weight, None, 1, "same", 2, **kw)
        return torch.autograd.grad(y, (x, weight), torch.ones_like(y))

    first = grads()
    for _ in range(2):
        for a, b in zip(grads(), first, strict=True):
            assert torch.equal(a, b)


def _gradcheck(fn, inputs):
    # Triton's CPU interpreter launches slowly: there, check random projections of the
    # Jacobian (gradcheck's fast mode) instead of every column.
    fast = pyimg._backend.forced() == "triton" and inputs[0].device.type == "cpu"
    return torch.autograd.gradcheck(fn, inputs, fast_mode=fast)


@pytest.mark.parametrize(("activation", "residual", "r", "per_channel"),
                         [GRADIENT_CASES[i] for i in (0, 3, 4)])
def test_gradcheck(backend, activation, residual, r, per_channel):
    dtype = torch.float64
    x = torch.randn(1, 2, 3, 4, device=backend, dtype=dtype).contiguous(
        memory_format=torch.channels_last)
    weight = torch.randn(4, 2, 2, 2, device=backend, dtype=dtype)
    bias = torch.randn(4, device=backend, dtype=dtype)
    res = None if residual is None else torch.randn(1, 4 // r**2, 3 * r, 4 * r, device=backend,
                                                    dtype=dtype)
    kw = epilogue(4, backend, dtype, activation, True, r, res, residual == "before", per_channel)
    conv = dict(stride=1, padding="same", dilation=2)
    bias = _keep_off_kinks(x, weight, bias, kw, conv)
    names = ("scale", "shift", "prelu_weight", "residual")
    extras = {k: kw.pop(k) for k in names if kw.get(k) is not None}

    def fn(x, weight, bias, *values):
        return pyimg.ops.conv2d(x, weight, bias, **conv, **kw,
                                **dict(zip(extras, values, strict=True)))

    assert _gradcheck(fn, [t.requires_grad_() for t in (x, weight, bias, *extras.values())])


# -- torch.library contract and torch.compile ------------------------------------------------


@pytest.mark.parametrize("param", [p for p in backend_params() if p.values[0][0] == "triton"])
def test_opcheck_triton_op(param):
    # The cpu / cuda backends compose stock convolution with pyimg ops opchecked in their
    # own tests; the Triton op is this file's.
    _, device = param
    x = torch.randn(1, 3, 4, 5, device=device)
    weight = torch.randn(8, 3, 3, 3, device=device)
    bias = torch.randn(8, device=device)
    residual = torch.randn(1, 2, 8, 6, device=device)
    for xl in (x, x.contiguous(memory_format=torch.channels_last)):
        args = (xl.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(), [1, 1],
                [1, 1, 0, 2], [1, 2], torch.rand(8, device=device).requires_grad_(), None,
                "prelu", torch.rand(2, device=device).requires_grad_(), 0.01,
                residual.requires_grad_(), False, 2)
        torch.library.opcheck(torch.ops.pyimg.conv2d_triton.default, args)


@pytest.mark.parametrize("param", [p for p in backend_params() if p.values[0][0] == "triton"])
def test_opcheck_triton_gradient_ops(param):
    _, device = param
    weight = torch.randn(4, 3, 3, 2, device=device)
    x = torch.randn(2, 3, 6, 5, device=device)
    for xl in (x, x.contiguous(memory_format=torch.channels_last)):
        for stride, padding in (([1, 1], [1, 1, 0, 1]), ([2, 1], [2, 1, 0, 1])):
            top, bottom, left, right = padding
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, [1, 2])
            args = (torch.randn_like(y), xl, weight, stride, padding, [1, 2])
            torch.library.opcheck(torch.ops.pyimg.conv2d_input_grad_triton.default, args)
            torch.library.opcheck(torch.ops.pyimg.conv2d_weight_grad_triton.default, args)


def test_compile_fullgraph(backend):
    x = torch.randn(1, 4, 5, 6, device=backend).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 4, 3, 3, device=backend)
    kw = epilogue(4, backend, x.dtype, "prelu")

    def fn(x, weight, scale, shift, alpha):
        return pyimg.ops.conv2d(x, weight, None, 1, "same", scale=scale, shift=shift,
                                activation="prelu", prelu_weight=alpha, residual=x) * 2

    inputs = [t.clone().requires_grad_() for t in (x, weight, kw["scale"], kw["shift"],
                                                   kw["prelu_weight"])]
    y = torch.compile(fn, fullgraph=True, backend="aot_eager")(*inputs)
    torch.testing.assert_close(y, fn(*inputs), **CONV_TOLERANCE[torch.float32])
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    assert all(t.grad is not None for t in inputs)


def test_compile_inductor_cpu():
    x, weight = torch.randn(2, 3, 6, 5), torch.randn(4, 3, 3, 3)
    fn = torch.compile(lambda x: pyimg.ops.conv2d(x, weight, padding=1, activation="relu") + 1,
                       fullgraph=True)
    torch.testing.assert_close(fn(x), F.relu(F.conv2d(x, weight, padding=1)) + 1,
                               **CONV_TOLERANCE[torch.float32])


# -- bad input -------------------------------------------------------------------------------

BAD_INPUTS = {  # name: (x shape, weight shape, conv keyword arguments, message)
    "rank": ((4, 4), (2, 4, 3, 3), {}, "Expected 3D"),
    "channels": ((1, 3, 5, 5), (2, 4, 3, 3), {}, "to have 4 channels"),
    "groups": ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, "divisible by 2"),
    "kernel too big": ((1, 4, 2, 2), (2, 4, 3, 3), {}, "Kernel size can't be greater"),
    "negative padding": ((1, 4, 5, 5), (2, 4, 3, 3), {"padding": -1}, "negative padding"),
    "stride 0": ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": 0}, "non-positive stride"),
    "dilation 0": ((1, 4, 5, 5), (2, 4, 3, 3), {"dilation": 0}, "dilation should be"),
    "same strided": ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": 2, "padding": "same"},
                     "not supported for strided"),
    "padding string": ((1, 4, 5, 5), (2, 4, 3, 3), {"padding": "full"}, "Invalid padding"),
    "stride rank": ((1, 4, 5, 5), (2, 4, 3, 3), {"stride": (1, 1, 1)}, "list of 2 values"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_raises_like_stock(backend, case):
    x_shape, w_shape, conv, message = BAD_INPUTS[case]
    x, weight = torch.randn(x_shape, device=backend), torch.randn(w_shape, device=backend)
    with pytest.raises(Exception) as stock:
        F.conv2d(x, weight, **conv)
    with pytest.raises(stock.type, match=message):
        pyimg.ops.conv2d(x, weight, **conv)


def test_bad_dtypes_devices_and_epilogue_raise(backend):
    x, weight = torch.randn(1, 4, 5, 5, device=backend), torch.randn(8, 4, 3, 3, device=backend)
    with pytest.raises(RuntimeError, match="weight type"):
        pyimg.ops.conv2d(x, weight.double())
    with pytest.raises(RuntimeError, match="bias type"):
        pyimg.ops.conv2d(x, weight, torch.zeros(8, device=backend, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="same device"):
        pyimg.ops.conv2d(x, weight.to("meta"))
    with pytest.raises(RuntimeError, match="expected bias to be 1-dimensional with 8"):
        pyimg.ops.conv2d(x, weight, torch.zeros(5, device=backend))
    with pytest.raises(RuntimeError, match="expected scale"):
        pyimg.ops.conv2d(x, weight, scale=torch.ones(4, device=backend))
    with pytest.raises(RuntimeError, match="PReLU weight"):
        pyimg.ops.conv2d(x, weight, activation="prelu", prelu_weight=torch.ones(8, device=backend),
                         upscale_factor=2)
    with pytest.raises(ValueError, match="exactly when"):
        pyimg.ops.conv2d(x, weight, activation="relu", prelu_weight=torch.ones(1, device=backend))
    with pytest.raises(ValueError, match="unknown activation"):
        pyimg.ops.conv2d(x, weight, activation="gelu")
    with pytest.raises(RuntimeError, match="upscale_factor"):
        pyimg.ops.conv2d(x, weight, upscale_factor=3)
    with pytest.raises(RuntimeError, match="residual has shape"):
        pyimg.ops.conv2d(x, weight, residual=torch.zeros(1, 8, 5, 5, device=backend))


# -- backend selection and precision ---------------------------------------------------------


def test_integer_dtype_falls_back_explicitly():
    x = torch.ones(1, 2, 4, 4, dtype=torch.int64)
    weight = torch.ones(3, 2, 3, 3, dtype=torch.int64)
    with pytest.warns(UserWarning, match="falling back"):
        assert torch.equal(pyimg.ops.conv2d(x, weight), F.conv2d(x, weight))
    with pyimg.use_backend("triton"), pytest.raises(NotImplementedError, match="forced"):
        pyimg.ops.conv2d(x, weight)


def test_autocast_runs_in_the_autocast_dtype(backend):
    x, weight = torch.randn(1, 3, 5, 5, device=backend), torch.randn(2, 3, 3, 3, device=backend)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        y = pyimg.ops.conv2d(x, weight, padding=1, activation="relu")
        expected = F.relu(F.conv2d(x, weight, padding=1))
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y, expected, **TOLERANCE[torch.bfloat16])


def test_tf32_follows_stock_convolution_flag():
    x = torch.randn(1)
    assert not use_tf32(x)  # CPU tensors: exact float32 always
    if torch.cuda.is_available():
        for flag in (True, False):
            torch.backends.cudnn.allow_tf32 = flag
            assert use_tf32(x.cuda()) == flag
            assert not use_tf32(x.cuda().half())


def test_odd_unit_stride_channels_last_grouped_gradients(any_backend):
    # Stock's CPU weight gradient of a grouped float64 convolution is wrong for a
    # channels_last x whose size-1 H has another stride than channels_last's own (off by
    # O(1)); every backend, the torch reference included, matches the contiguous answer.
    device = any_backend
    x = torch.randn(1, 4, 1, 2, device=device, dtype=torch.float64)
    weight = torch.randn(2, 2, 1, 1, device=device, dtype=torch.float64)
    odd = torch.empty(8, device=device, dtype=x.dtype).as_strided(x.shape, (8, 1, 4, 4))
    odd.copy_(x)
    cl_weight = torch.empty(4, device=device, dtype=x.dtype).as_strided(weight.shape,
                                                                         (2, 1, 2, 2))
    cl_weight.copy_(weight)
    g = torch.randn(1, 2, 1, 2, device=device, dtype=x.dtype)
    results = []
    for xi, wi, fn in ((odd, cl_weight, pyimg.ops.conv2d), (x, weight, F.conv2d)):
        xi, wi = xi.detach().requires_grad_(), wi.detach().requires_grad_()
        y = fn(xi, wi, None, 1, 0, 1, 2)
        results.append((y, *torch.autograd.grad(y, (xi, wi), g)))
    for ours, expected in zip(*results, strict=True):
        torch.testing.assert_close(ours, expected)
