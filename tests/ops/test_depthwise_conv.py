"""depthwise_conv2d (groups = C_in, direct convolution with the conv epilogue): the op of each
backend against the torch reference (stock grouped F.conv2d + the epilogue in stock ops), and
pyimg.ops.conv2d's routing to it. Shapes stay tiny: Triton's CPU interpreter runs each
element in Python."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from support import (
    LOW_PRECISION,
    TOLERANCE,
    assert_lowp_close,
    backend_op,
    backend_params,
    layouts,
    poisoned_outputs,
)

import pyimg
from pyimg._format import output_memory_format
from pyimg.ops.conv import conv2d_reference

CONV_TOLERANCE = {**TOLERANCE, torch.float32: {"atol": 1e-5, "rtol": 1e-5}}


@pytest.fixture(params=backend_params())
def backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield name, device


# (x shape, multiplier, kernel, stride, (top, bottom, left, right), dilation): kernels 1..5,
# dilation up to 4, stride 2, asymmetric and over-wide padding, channel multiplier 2, one
# channel, batch 0 and 1, odd sizes.
CASES = [
    ((2, 3, 7, 6), 1, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    ((1, 4, 9, 8), 1, 3, (1, 1), (4, 4, 4, 4), (4, 4)),
    ((1, 2, 6, 7), 2, 3, (2, 1), (1, 0, 2, 1), (1, 2)),
    ((1, 1, 5, 5), 3, 5, (1, 1), (2, 2, 2, 2), (1, 1)),
    ((2, 5, 4, 3), 1, 1, (1, 2), (0, 0, 0, 0), (1, 1)),
    ((1, 3, 4, 4), 1, 2, (1, 1), (0, 1, 1, 0), (3, 1)),
    ((1, 2, 3, 3), 1, 3, (1, 1), (3, 3, 3, 3), (1, 1)),
    ((0, 3, 4, 4), 1, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
]


def case_tensors(case, device, dtype, generator):
    shape, multiplier, k, stride, padding, dilation = case

    def rand(*size):
        return torch.randn(size, generator=generator, dtype=torch.float64).to(device, dtype)

    x = rand(*shape)
    c_out = shape[1] * multiplier
    return x, rand(c_out, 1, k, k), rand(c_out), list(stride), list(padding), list(dilation)


def epilogue(c_out, device, dtype, activation, affine, residual_shape=None, before=False,
             per_channel=True):
    """The op's epilogue arguments after (x, weight, bias, stride, padding, dilation)."""
    def rand(n, lo=-1.0, hi=1.0):
        return torch.empty(n, device=device, dtype=dtype).uniform_(lo, hi)

    scale, shift = (rand(c_out, 0.5, 2.0), rand(c_out)) if affine else (None, None)
    alpha = rand(c_out if per_channel else 1, -0.25, 0.5) if activation == "prelu" else None
    residual = None if residual_shape is None else torch.randn(residual_shape, device=device,
                                                               dtype=dtype)
    return [scale, shift, activation, alpha, 0.2, residual, before]


def reference(x, weight, bias, stride, padding, dilation, scale, shift, activation, alpha,
              slope, residual, before):
    top, bottom, left, right = padding
    return conv2d_reference(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0,
                            dilation, x.shape[1], scale=scale, shift=shift,
                            activation=activation, prelu_weight=alpha, negative_slope=slope,
                            residual=residual, add_before_activation=before)


def _output_shape(x, weight, stride, padding, dilation):
    top, bottom, left, right = padding
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, dilation,
                    x.shape[1]).shape


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_matches_reference_across_geometries(backend, dtype):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    generator = torch.Generator().manual_seed(0)
    for i, case in enumerate(CASES):
        x, weight, bias, *conv = case_tensors(case, device, dtype, generator)
        tail = epilogue(weight.shape[0], device, dtype, ("none", "relu", "prelu")[i % 3],
                        affine=i % 2 == 0)
        expected = reference(x, weight, bias, *conv, *tail)
        for layout, xl in layouts(x):
            with poisoned_outputs():
                y = op(xl, weight, bias, *conv, *tail)
            torch.testing.assert_close(y, expected, **CONV_TOLERANCE[dtype],
                                       msg=f"{case} {layout}")
            assert y.is_contiguous(memory_format=output_memory_format(xl)), layout


# Every activation x residual (none / after / before) x affine x PReLU weight count.
EPILOGUES = list(itertools.product(("none", "relu", "leaky_relu", "prelu"),
                                   (None, "after", "before"), (True, False)))


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16))
def test_every_epilogue(backend, dtype):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    x = torch.randn(2, 4, 6, 5, device=device, dtype=dtype)
    weight = torch.randn(8, 1, 3, 3, device=device, dtype=dtype)
    bias = torch.randn(8, device=device, dtype=dtype)
    conv = [[1, 1], [2, 2, 2, 2], [2, 2]]
    views = [view for _, view in layouts(x)]
    for i, (activation, residual, affine) in enumerate(EPILOGUES):
        tail = epilogue(8, device, dtype, activation, affine,
                        None if residual is None else (2, 8, 6, 5), residual == "before",
                        per_channel=i % 2 == 0)
        xl = views[i % len(views)]  # each layout meets every feature, not every combination
        with poisoned_outputs():
            y = op(xl, weight, bias, *conv, *tail)
        msg = f"{activation} residual={residual} affine={affine}"
        if dtype == torch.float32:
            torch.testing.assert_close(y, reference(x, weight, bias, *conv, *tail),
                                       **CONV_TOLERANCE[dtype], msg=msg)
        else:
            up = [t.float() if isinstance(t, torch.Tensor) else t for t in tail]
            expected = reference(x.float(), weight.float(), bias.float(), *conv, *up)
            assert_lowp_close(y, reference(x, weight, bias, *conv, *tail), expected)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_error_at_most_twice_stock(backend, dtype):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    generator = torch.Generator().manual_seed(1)
    for case in CASES[:4]:
        x, weight, bias, *conv = case_tensors(case, device, dtype, generator)
        tail = epilogue(weight.shape[0], device, dtype, "none", False)
        exact = reference(x.float(), weight.float(), bias.float(), *conv, *tail)
        stock = reference(x, weight, bias, *conv, *tail)
        for _, xl in layouts(x):
            assert_lowp_close(op(xl, weight, bias, *conv, *tail), stock, exact)


@pytest.mark.parametrize(("activation", "residual"), [("prelu", "after"), ("relu", "before"),
                                                      ("leaky_relu", None)])
def test_gradients_match_reference(backend, activation, residual):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    dtype = torch.float64
    x = torch.randn(2, 3, 5, 6, device=device, dtype=dtype)
    weight = torch.randn(6, 1, 3, 3, device=device, dtype=dtype)
    bias = torch.randn(6, device=device, dtype=dtype)
    conv = [[1, 2], [2, 1, 1, 1], [2, 1]]
    shape = _output_shape(x, weight, *conv)
    tail = epilogue(6, device, dtype, activation, True, None if residual is None else shape,
                    residual == "before")
    tensors = [t for t in (weight, bias, tail[0], tail[1], tail[3], tail[5]) if t is not None]
    for layout, xl in list(layouts(x))[:2]:
        inputs = [xl.detach().requires_grad_(), *(t.requires_grad_() for t in tensors)]
        y = op(inputs[0], weight, bias, *conv, *tail)
        grad = torch.randn_like(y)
        with poisoned_outputs():
            ours = torch.autograd.grad(y, inputs, grad)
        expected = torch.autograd.grad(reference(inputs[0], weight, bias, *conv, *tail), inputs,
                                       grad)
        for g, e in zip(ours, expected, strict=True):
            torch.testing.assert_close(g, e, **TOLERANCE[dtype], msg=layout)


def test_gradcheck(backend):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    dtype = torch.float64
    x = torch.randn(1, 2, 4, 3, device=device, dtype=dtype).contiguous(
        memory_format=torch.channels_last)
    weight = torch.randn(4, 1, 2, 2, device=device, dtype=dtype)
    scale = torch.rand(4, device=device, dtype=dtype) + 0.5
    alpha = torch.rand(4, device=device, dtype=dtype)
    residual = torch.randn(1, 4, 4, 3, device=device, dtype=dtype)

    def fn(x, weight, scale, alpha, residual):
        return op(x, weight, None, [1, 1], [1, 0, 0, 1], [1, 1], scale, None, "prelu", alpha,
                  0.0, residual, False)

    fast = name == "triton" and device == "cpu"  # the interpreter launches slowly
    assert torch.autograd.gradcheck(
        fn, [t.requires_grad_() for t in (x, weight, scale, alpha, residual)], fast_mode=fast)


def test_opcheck(backend):
    name, device = backend
    x = torch.randn(2, 3, 5, 4, device=device)
    weight = torch.randn(6, 1, 3, 3, device=device)
    residual = torch.randn(2, 6, 5, 2, device=device)
    for xl in (x, x.contiguous(memory_format=torch.channels_last)):
        args = (xl.requires_grad_(), weight.requires_grad_(), torch.randn(6, device=device),
                [1, 1], [1, 1, 2, 0], [1, 2], torch.rand(6, device=device), None, "prelu",
                torch.rand(6, device=device).requires_grad_(), 0.0, residual.requires_grad_(),
                True)
        torch.library.opcheck(backend_op(name, "depthwise_conv2d"), args)


def test_compile_fullgraph(backend):
    _, device = backend
    x = torch.randn(1, 4, 5, 6, device=device)
    weight = torch.randn(4, 1, 3, 3, device=device)

    def fn(x, weight):
        return pyimg.ops.conv2d(x, weight, None, 1, "same", 2, 4, activation="relu",
                                residual=x) * 2

    inputs = [t.clone().requires_grad_() for t in (x, weight)]
    y = torch.compile(fn, fullgraph=True, backend="aot_eager")(*inputs)
    torch.testing.assert_close(y, fn(*inputs), **CONV_TOLERANCE[torch.float32])
    y.sum().backward()
    assert all(t.grad is not None for t in inputs)


def test_conv2d_routes_depthwise_calls(backend):
    # conv2d gives groups = C_in calls to depthwise_conv2d where the module docstring says
    # it wins; whichever path runs, the result is stock's.
    _, device = backend
    x = torch.randn(2, 6, 9, 7, device=device)
    weight = torch.randn(12, 1, 3, 3, device=device)
    bias = torch.randn(12, device=device)
    for dilation in (1, 3):
        y = pyimg.ops.conv2d(x, weight, bias, 1, "same", dilation, 6, activation="relu")
        expected = F.relu(F.conv2d(x, weight, bias, 1, "same", dilation, 6))
        torch.testing.assert_close(y, expected, **CONV_TOLERANCE[torch.float32])


BAD_INPUTS = {  # name: (x shape, weight shape, message)
    "weight not depthwise": ((1, 4, 5, 5), (4, 2, 3, 3), "channels"),
    "C_out not a multiple": ((1, 4, 5, 5), (6, 1, 3, 3), "divisible by 4"),
    "kernel too big": ((1, 2, 2, 2), (2, 1, 3, 3), "Kernel size can't be greater"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_raises(backend, case):
    name, device = backend
    x_shape, w_shape, message = BAD_INPUTS[case]
    x, weight = torch.randn(x_shape, device=device), torch.randn(w_shape, device=device)
    with pytest.raises(RuntimeError, match=message):
        backend_op(name, "depthwise_conv2d")(x, weight, None, [1, 1], [0, 0, 0, 0], [1, 1],
                                             None, None, "none", None, 0.0, None, False)


def test_bad_epilogue_raises(backend):
    name, device = backend
    op = backend_op(name, "depthwise_conv2d")
    x, weight = torch.randn(1, 2, 5, 5, device=device), torch.randn(2, 1, 3, 3, device=device)
    conv = ([1, 1], [1, 1, 1, 1], [1, 1])
    with pytest.raises(RuntimeError, match="weight type"):
        op(x, weight.double(), None, *conv, None, None, "none", None, 0.0, None, False)
    with pytest.raises(RuntimeError, match="residual has shape"):
        op(x, weight, None, *conv, None, None, "none", None, 0.0,
           torch.zeros(1, 2, 4, 4, device=device), False)
    with pytest.raises(RuntimeError, match="scale"):
        op(x, weight, None, *conv, torch.ones(3, device=device), None, "none", None, 0.0, None,
           False)
    with pytest.raises(ValueError, match="exactly when"):
        op(x, weight, None, *conv, None, None, "relu", torch.ones(1, device=device), 0.0, None,
           False)
