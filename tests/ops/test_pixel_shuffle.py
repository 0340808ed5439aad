"""pixel_shuffle / pixel_unshuffle, every backend against the torch reference."""

import itertools
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
from pyimg.ops.pixel_shuffle import pixel_shuffle_reference, pixel_unshuffle_reference

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "tanh", "sigmoid")
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def sample_inputs(device, dtype, requires_grad=False):
    """(x, r) pairs: odd sizes, r = 1..4, batch 0 and 1, 3-D and 5-D leading dims."""
    shapes = [
        ((2, 12, 5, 7), 2),
        ((1, 27, 3, 4), 3),
        ((3, 16, 1, 9), 4),
        ((2, 5, 3, 3), 1),
        ((0, 8, 4, 4), 2),
        ((1, 4, 1, 1), 2),
        ((18, 3, 5), 3),
        ((2, 1, 8, 3, 2), 2),
    ]
    for shape, r in shapes:
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=requires_grad)
        yield x, r


def epilogue(x, r, activation, per_channel=True, bias=True):
    """Random bias (one per input channel) and PReLU weight matching x."""
    channels = x.shape[-3]
    b = torch.randn(channels, device=x.device, dtype=x.dtype) if bias else None
    w = None
    if activation == "prelu":
        n = channels // (r * r) if per_channel else 1
        w = torch.rand(n, device=x.device, dtype=x.dtype) - 0.25
    return b, w


@pytest.fixture(params=backend_params())
def backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield device


# -- forward ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_shuffle_is_exact_permutation(backend, dtype):
    for x, r in sample_inputs(backend, dtype):
        expected = F.pixel_shuffle(x, r)
        for name, xl in layouts(x):
            with poisoned_outputs():
                y = pyimg.ops.pixel_shuffle(xl, r)
            assert torch.equal(y, expected), (tuple(x.shape), r, name)
            if x.dim() == 4:
                assert y.is_contiguous(memory_format=output_memory_format(xl)), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_unshuffle_is_exact_permutation(backend, dtype):
    for x, r in sample_inputs(backend, dtype):
        large = F.pixel_shuffle(x, r)
        for name, xl in layouts(large):
            with poisoned_outputs():
                y = pyimg.ops.pixel_unshuffle(xl, r)
            assert torch.equal(y, x), (tuple(x.shape), r, name)


@pytest.mark.parametrize("activation", ("none", *ACTIVATIONS))
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_fused_matches_reference(backend, activation, dtype):
    for (x, r), per_channel in itertools.product(sample_inputs(backend, dtype), (True, False)):
        b, w = epilogue(x, r, activation, per_channel)
        expected = pixel_shuffle_reference(x, r, b, activation, w, 0.2)
        for name, xl in layouts(x):
            with poisoned_outputs():
                y = pyimg.ops.pixel_shuffle(xl, r, b, activation, w, 0.2)
            torch.testing.assert_close(y, expected, **TOLERANCE[dtype], msg=name)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_fused_low_precision_error_at_most_twice_stock(backend, activation, dtype):
    x = torch.randn(2, 32, 9, 11, device=backend, dtype=dtype)
    b, w = epilogue(x, 2, activation)
    reference = pixel_shuffle_reference(
        x.float(), 2, b.float(), activation, None if w is None else w.float(), 0.1
    )
    stock = pixel_shuffle_reference(x, 2, b, activation, w, 0.1)
    for _, xl in layouts(x):
        assert_lowp_close(pyimg.ops.pixel_shuffle(xl, 2, b, activation, w, 0.1), stock, reference)


def test_bias_per_output_channel_is_repeated(backend):
    x = torch.randn(2, 12, 4, 5, device=backend)
    b_out = torch.randn(3, device=backend)
    y = pyimg.ops.pixel_shuffle(x, 2, b_out, "relu")
    torch.testing.assert_close(y, F.relu(F.pixel_shuffle(x, 2) + b_out.view(-1, 1, 1)))


# -- backward --------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ("none", *ACTIVATIONS))
def test_gradients_match_reference(backend, activation):
    for x, r in sample_inputs(backend, torch.float32):
        b, w = epilogue(x, r, activation)
        params = [p for p in (b, w) if p is not None]
        for name, xl in layouts(x):
            inputs = [xl.requires_grad_(), *(p.requires_grad_() for p in params)]
            y = pyimg.ops.pixel_shuffle(xl, r, b, activation, w, 0.2)
            grad = torch.randn_like(y)
            with poisoned_outputs():
                ours = torch.autograd.grad(y, inputs, grad, allow_unused=True)
            if x.numel() == 0:  # stock's own backward rejects batch 0; ours gives zeros
                assert all(g is None or (g.shape == t.shape and not g.any())
                           for g, t in zip(ours, inputs, strict=True))
                continue
            y_ref = pixel_shuffle_reference(xl, r, b, activation, w, 0.2)
            expected = torch.autograd.grad(y_ref, inputs, grad, allow_unused=True)
            for g, e in zip(ours, expected, strict=True):
                if e is None:
                    assert g is None or not g.any()
                else:
                    torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("r", (1, 2, 3, 5))
def test_fused_backward_reads_grad_and_x_in_any_layout(backend, r):
    # The op itself, so that its incoming gradient (the large tensor) comes in every layout.
    x = torch.randn(2, 2 * r * r, 3, 5, device=backend, dtype=torch.float64)
    grad = torch.randn(2, 2, 3 * r, 5 * r, device=backend, dtype=torch.float64)
    b, w = epilogue(x, r, "prelu")
    xr = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(pixel_shuffle_reference(xr, r, b, "prelu", w, 0.1), xr,
                                      grad)
    op = backend_op(pyimg._backend.forced(), "pixel_shuffle_backward")
    for (grad_layout, g), (x_layout, xl) in itertools.product(layouts(grad), layouts(x)):
        with poisoned_outputs():
            got = op(g, xl, r, b, "prelu", w, 0.1)
        torch.testing.assert_close(got, expected, msg=f"grad {grad_layout}, x {x_layout}")


def with_nans(x: torch.Tensor) -> torch.Tensor:
    """x with NaN of both signs (x86 arithmetic makes negative ones) at a few places."""
    x = x.clone()
    flat = x.view(-1)
    flat[::7] = float("nan")
    flat[3::7] = -float("nan")
    return x


@pytest.mark.parametrize("activation", ("none", *ACTIVATIONS))
def test_gradients_at_nan_match_stock(backend, activation):
    # Stock's ReLU passes the gradient at a NaN input (as 1); leaky_relu and PReLU scale it
    # by their slope; the PReLU weight's gradient there is NaN.
    x = with_nans(torch.randn(2, 8, 3, 3, device=backend, dtype=torch.float64))
    b, w = epilogue(x, 2, activation)
    inputs = [t.requires_grad_() for t in (x, b, w) if t is not None]
    grad = torch.randn(2, 2, 6, 6, device=backend, dtype=torch.float64)
    y = pyimg.ops.pixel_shuffle(x, 2, b, activation, w, 0.2)
    y_ref = pixel_shuffle_reference(x, 2, b, activation, w, 0.2)
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    ours = torch.autograd.grad(y, inputs, grad)
    for g, e in zip(ours, torch.autograd.grad(y_ref, inputs, grad), strict=True):
        torch.testing.assert_close(g, e, equal_nan=True)


@pytest.mark.parametrize(
    "param", [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
def test_empty_inputs_of_any_rank(param):
    # Stock's pixel_shuffle backward fails on an empty batch and a reshape to (-1, 0, 0, 0)
    # is ambiguous: every backend, the torch reference included, runs these.
    name, device = param
    with pyimg.use_backend(name):
        x = torch.randn(0, 3, 8, 1, 1, device=device, requires_grad=True)
        y = pyimg.ops.pixel_shuffle(x, 2, activation="relu")
        assert y.shape == (0, 3, 2, 2, 2)
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert grad.shape == x.shape
        for op in (pyimg.ops.pixel_shuffle, pyimg.ops.pixel_unshuffle):
            assert op(torch.randn(0, 0, 0, 0, 0, device=device), 1).shape == (0, 0, 0, 0, 0)


def _gradcheck(fn, inputs):
    # Triton's CPU interpreter launches slowly: there, check random projections of the
    # Jacobian (gradcheck's fast mode) instead of every column.
    fast = pyimg._backend.forced() == "triton" and inputs[0].device.type == "cpu"
    return torch.autograd.gradcheck(fn, inputs, fast_mode=fast)


@pytest.mark.parametrize("activation", ("none", *ACTIVATIONS))
def test_gradcheck(backend, activation):
    x = torch.randn(2, 8, 2, 3, device=backend, dtype=torch.float64)
    b, w = epilogue(x, 2, activation)
    # Keep z away from the kinks of relu / leaky / prelu, where finite differences lie.
    x = torch.where((x + b.view(-1, 1, 1)).abs() < 0.05, x + 0.2, x)
    for _, xl in layouts(x):
        inputs = [t.requires_grad_() for t in (xl, b, w) if t is not None]

        def fn(*args, xl=xl):
            xs, bs = args[0], args[1]
            ws = args[2] if w is not None else None
            return pyimg.ops.pixel_shuffle(xs, 2, bs, activation, ws, 0.3)

        assert _gradcheck(fn, inputs)


def test_gradcheck_unshuffle(backend):
    x = torch.randn(2, 3, 6, 4, device=backend, dtype=torch.float64)
    for _, xl in layouts(x):
        assert _gradcheck(lambda t: pyimg.ops.pixel_unshuffle(t, 2), [xl.requires_grad_()])


# -- torch.library contract and torch.compile ------------------------------------------------


@pytest.mark.parametrize("param", backend_params())
def test_opcheck(param):
    name, device = param
    x = torch.randn(2, 8, 3, 5, device=device)
    for activation in ("none", "prelu", "tanh"):
        b, w = epilogue(x, 2, activation)
        for _, xl in layouts(x):
            torch.library.opcheck(backend_op(name, "pixel_shuffle"),
                                  (xl.requires_grad_(), 2, b.requires_grad_(), activation, w))
    torch.library.opcheck(backend_op(name, "pixel_unshuffle"), (x.requires_grad_(), 1))
    large = torch.randn(1, 3, 4, 6, device=device, requires_grad=True)
    torch.library.opcheck(backend_op(name, "pixel_unshuffle"), (large, 2))
    grad = torch.randn(2, 2, 6, 10, device=device)
    b, w = epilogue(x, 2, "prelu")
    torch.library.opcheck(backend_op(name, "pixel_shuffle_backward"),
                          (grad, x.detach(), 2, b, "prelu", w, 0.01))


def test_compile_fullgraph(backend):
    x = torch.randn(2, 16, 5, 6, device=backend).contiguous(memory_format=torch.channels_last)
    b, w = epilogue(x, 2, "prelu")

    def fn(x, b, w):
        return pyimg.ops.pixel_unshuffle(pyimg.ops.pixel_shuffle(x, 2, b, "prelu", w), 2) * 2

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    inputs = [t.clone().requires_grad_() for t in (x, b, w)]
    y = compiled(*inputs)
    expected = fn(*(t.clone().requires_grad_() for t in (x, b, w)))
    torch.testing.assert_close(y, expected)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    assert all(t.grad is not None for t in inputs)


def test_compile_inductor_cpu():
    fn = torch.compile(lambda x: torch.relu(pyimg.ops.pixel_shuffle(x, 3) + 1), fullgraph=True)
    x = torch.randn(2, 18, 4, 5)
    torch.testing.assert_close(fn(x), torch.relu(F.pixel_shuffle(x, 3) + 1))


# -- bad input -------------------------------------------------------------------------------


def _stock_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.type


@pytest.mark.parametrize(
    ("make", "r", "op"),
    [
        (lambda: torch.randn(4, 4), 2, "shuffle"),  # rank
        (lambda: torch.randn(1, 6, 4, 4), 2, "shuffle"),  # channels % r^2
        (lambda: torch.randn(1, 4, 4, 4), 0, "shuffle"),  # r < 1
        (lambda: torch.randn(1, 4, 4, 4), -2, "unshuffle"),
        (lambda: torch.randn(1, 4, 5, 4), 2, "unshuffle"),  # height % r
        (lambda: torch.randn(1, 4, 4, 3), 2, "unshuffle"),  # width % r
        (lambda: torch.randn(4), 2, "unshuffle"),
    ],
)
def test_bad_input_raises_like_stock(backend, make, r, op):
    x = make().to(backend)
    stock = F.pixel_shuffle if op == "shuffle" else F.pixel_unshuffle
    ours = pyimg.ops.pixel_shuffle if op == "shuffle" else pyimg.ops.pixel_unshuffle
    expected = _stock_error(lambda: stock(x, r))
    with pytest.raises(expected, match="expects"):
        ours(x, r)


def test_bad_epilogue_raises(backend):
    x = torch.randn(1, 8, 3, 3, device=backend)
    with pytest.raises(RuntimeError, match="same device"):
        pyimg.ops.pixel_shuffle(x, 2, torch.zeros(8, device="meta"))
    with pytest.raises(RuntimeError, match="bias must be 1-D"):
        pyimg.ops.pixel_shuffle(x, 2, torch.zeros(5, device=backend))
    with pytest.raises(RuntimeError, match="PReLU weight"):
        pyimg.ops.pixel_shuffle(x, 2, activation="prelu", weight=torch.ones(3, device=backend))
    with pytest.raises(ValueError, match="exactly when"):
        pyimg.ops.pixel_shuffle(x, 2, activation="relu", weight=torch.ones(1, device=backend))
    with pytest.raises(ValueError, match="unknown activation"):
        pyimg.ops.pixel_shuffle(x, 2, activation="gelu")


def test_compiled_op_checks_its_arguments():
    # Called directly, past the Python checks, the C++ kernel still refuses bad input.
    if not pyimg._extension.loaded():
        pytest.skip("compiled extension not loaded")
    x = torch.randn(1, 6, 4, 4)
    with pytest.raises(RuntimeError, match="divisible"):
        torch.ops.pyimg.pixel_shuffle(x, 2)
    with pytest.raises(RuntimeError, match="4-D"):
        torch.ops.pyimg.pixel_shuffle(x[0], 1)
    with pytest.raises(RuntimeError, match="bias"):
        torch.ops.pyimg.pixel_shuffle(x, 1, torch.zeros(5))
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.pyimg.pixel_shuffle_backward(torch.zeros(1, 1, 4, 4), torch.randn(1, 8, 4, 4),
                                               2, None, "relu", None, 0.0)


# -- backend selection -----------------------------------------------------------------------


def test_integer_dtype_falls_back_explicitly():
    x = torch.arange(2 * 8 * 3 * 3).reshape(2, 8, 3, 3)
    with pytest.warns(UserWarning, match="falling back"):
        assert torch.equal(pyimg.ops.pixel_shuffle(x, 2), F.pixel_shuffle(x, 2))
    with pyimg.use_backend("cpu"), pytest.raises(NotImplementedError, match="forced"):
        pyimg.ops.pixel_shuffle(x, 2)


def test_forced_backend_that_cannot_run_raises():
    with pyimg.use_backend("cuda"), pytest.raises(NotImplementedError, match="cuda"):
        pyimg.ops.pixel_shuffle(torch.randn(1, 4, 2, 2), 2)
    with pytest.raises(ValueError, match="unknown pyimg backend"), pyimg.use_backend("metal"):
        pass


def test_backends_report_reasons():
    report = pyimg.backends()
    assert set(report) == set(pyimg.BACKENDS)
    assert report["torch"] is None
    if not torch.cuda.is_available():
        assert "no CUDA device" in report["cuda"]


def test_environment_variable_forces_backend():
    code = (
        "import torch, pyimg; from pyimg import _backend;"
        "print(_backend.choose('op', torch.device('cpu'), lambda b: None))"
    )
    env = {**os.environ, "PYIMG_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "torch"


def test_reference_matches_stock_composition():
    x = torch.randn(2, 8, 3, 4).contiguous(memory_format=torch.channels_last)
    b, w = torch.randn(8), torch.rand(2)
    y = pixel_shuffle_reference(x, 2, b, "prelu", w)
    torch.testing.assert_close(y, F.prelu(F.pixel_shuffle(x + b.view(-1, 1, 1), 2), w))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(pixel_unshuffle_reference(y, 2), F.pixel_unshuffle(y, 2))


# -- a randomized sweep ----------------------------------------------------------------------


@given(
    n=st.integers(0, 3), co=st.integers(1, 5), r=st.integers(1, 5), h=st.integers(1, 6),
    w=st.integers(1, 6), layout=st.sampled_from(("contiguous", "channels_last", "strided")),
    activation=st.sampled_from(("none", "leaky_relu", "prelu")), bias=st.booleans(),
)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sweep_matches_reference(backend, n, co, r, h, w, layout, activation, bias):
    x = torch.randn(n, co * r * r, h, w, device=backend, dtype=torch.float64)
    xl = dict(layouts(x))[layout]
    b, weight = epilogue(x, r, activation, bias=bias)
    y = pyimg.ops.pixel_shuffle(xl, r, b, activation, weight, 0.1)
    torch.testing.assert_close(y, pixel_shuffle_reference(x, r, b, activation, weight, 0.1))
    assert torch.equal(pyimg.ops.pixel_unshuffle(y, r), pixel_unshuffle_reference(y, r))
