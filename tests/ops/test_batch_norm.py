"""batch_norm_prelu / batch_norm_add and their three ops, every backend against stock
F.batch_norm + F.prelu (+ residual)."""

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
from pyimg.ops import batch_norm as bn_module
from pyimg.ops.batch_norm import batch_norm_prelu_reference

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
PRELU = ("none", "one", "per-channel")
# Stock normalizes as (x - mean) * (invstd * weight) + bias in another order: a few ulp of the
# O(1) outputs in float32.
FORWARD_TOLERANCE = {**TOLERANCE, torch.float32: {"atol": 1e-5, "rtol": 1e-5}}
# Odd sizes, batch 1, 1x1 spatial, one channel, an empty batch (eval only).
SHAPES = [(2, 5, 7, 9), (1, 3, 1, 9), (3, 4, 1, 1), (1, 6, 5, 3), (4, 1, 3, 2)]


@pytest.fixture(params=backend_params())
def backend(request):
    name, device = request.param
    with pyimg.use_backend(name):
        yield device


def _ops():
    return bn_module.OPS["triton" if pyimg._backend.forced() == "triton" else "cpu"]


def make_inputs(shape, device, dtype, prelu="per-channel", affine=True, residual=False):
    """x (offset from 0 so that the mean matters), running stats, parameters, residual."""
    c = shape[1]
    x = torch.randn(shape, device=device, dtype=dtype) * 2 + 3
    kwargs = {"device": device, "dtype": dtype}
    running = (torch.randn(c, **kwargs), torch.rand(c, **kwargs) + 0.5)
    weight = torch.randn(c, **kwargs) if affine else None
    bias = torch.randn(c, **kwargs) if affine else None
    n = {"none": 0, "one": 1, "per-channel": c}[prelu]
    alpha = torch.rand(n, **kwargs) - 0.25 if n else None
    res = torch.randn(shape, **kwargs) if residual else None
    return x, running, weight, bias, alpha, res


def run_both(x, running, weight, bias, alpha, res, training, momentum=0.3):
    """(ours, stock) outputs and running statistics from copies of the same state."""
    ours_running = [t.clone() for t in running]
    stock_running = [t.clone() for t in running]
    with poisoned_outputs():
        if res is None:
            y = pyimg.ops.batch_norm_prelu(x, *ours_running, weight, bias, alpha, training,
                                           momentum, 1e-3)
        else:
            y = pyimg.ops.batch_norm_add(x, res, *ours_running, weight, bias, training,
                                         momentum, 1e-3)
    y_ref = batch_norm_prelu_reference(x, *stock_running, weight, bias, alpha, training,
                                       momentum, 1e-3, res)
    return (y, *ours_running), (y_ref, *stock_running)


# -- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_stats_match_float64_reference(backend, dtype):
    for shape in SHAPES:
        x = (torch.randn(shape, device=backend) * 2 + 3).to(dtype)
        var, mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        for name, xl in layouts(x):
            with poisoned_outputs():
                m, v = _ops().stats(xl)
            assert m.dtype == v.dtype == acc
            tol = TOLERANCE[acc]
            torch.testing.assert_close(m.double(), mean, **tol, msg=name)
            torch.testing.assert_close(v.double(), var, **tol, msg=name)


def test_stats_are_stable_under_a_large_offset(backend):
    # sum(x^2) / n - mean^2 in float32 loses every digit here; the kernels must not.
    x = torch.randn(4, 3, 50, 70, device=backend) + 1e4
    var, mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    for _, xl in layouts(x):
        m, v = _ops().stats(xl)
        torch.testing.assert_close(m.double(), mean, atol=0, rtol=1e-6)
        torch.testing.assert_close(v.double(), var, atol=0, rtol=1e-4)


def test_reductions_are_deterministic(backend):
    x = torch.randn(3, 8, 33, 65, device=backend)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    for xl in (x, x_cl):
        first = _ops().stats(xl)
        assert all(torch.equal(a, b) for a, b in zip(first, _ops().stats(xl), strict=True))
        args = (g, xl, first[0], first[1].rsqrt(), None, None, torch.rand(8, device=backend),
                True)
        first = _ops().backward(*args)
        assert all(torch.equal(a, b) for a, b in zip(first, _ops().backward(*args), strict=True))


# -- forward ---------------------------------------------------------------------------------


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("prelu", PRELU)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_forward_matches_stock(backend, training, prelu, dtype):
    shapes = SHAPES if training else [*SHAPES, (0, 3, 4, 4)]
    # affine alternates over the shapes; the residual (batch_norm_add) goes with no PReLU.
    for i, (shape, residual) in enumerate(itertools.product(shapes, (False, True))):
        affine = i % 3 != 2
        if residual and prelu != "none":
            continue
        x, running, weight, bias, alpha, res = make_inputs(shape, backend, dtype, prelu, affine,
                                                           residual)
        for name, xl in layouts(x):
            ours, stock = run_both(xl, running, weight, bias, alpha, res, training)
            for a, b in zip(ours, stock, strict=True):
                torch.testing.assert_close(a, b, **FORWARD_TOLERANCE[dtype], msg=(shape, name))
            assert ours[0].is_contiguous(memory_format=output_memory_format(xl))


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_error_at_most_twice_stock(backend, training, dtype):
    x, running, weight, bias, alpha, _ = make_inputs((4, 16, 9, 11), backend, dtype)
    # Everything in low precision, as after module.half(); the reference in float32.
    params = [running[0], running[1], weight, bias, alpha]
    reference = batch_norm_prelu_reference(x.float(), *[t.float() for t in params], training)
    stock = batch_norm_prelu_reference(x, *[t.clone() for t in params[:2]], *params[2:],
                                       training)
    for _, xl in layouts(x):
        y = pyimg.ops.batch_norm_prelu(xl, *[t.clone() for t in params[:2]], *params[2:],
                                       training)
        assert y.dtype == dtype
        assert_lowp_close(y, stock, reference)


# -- backward --------------------------------------------------------------------------------


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("prelu", PRELU)
@pytest.mark.parametrize("residual", (False, True), ids=("prelu", "add"))
def test_gradients_match_stock(backend, training, prelu, residual):
    if residual and prelu != "none":
        pytest.skip("batch_norm_add has no PReLU")
    for shape in SHAPES:
        x, running, weight, bias, alpha, res = make_inputs(shape, backend, torch.float32, prelu,
                                                           residual=residual)
        for name, xl in layouts(x):
            inputs = [t.clone().requires_grad_() for t in (xl, weight, bias, alpha, res)
                      if t is not None]
            other = [t.clone().requires_grad_() for t in inputs]
            layout = (alpha is not None, res is not None, running, training)
            y = _call(_ours, inputs, *layout)
            grad = torch.randn_like(y)
            with poisoned_outputs():
                ours = torch.autograd.grad(y, inputs, grad)
            expected = torch.autograd.grad(_call(batch_norm_prelu_reference, other, *layout),
                                           other, grad)
            for g, e in zip(ours, expected, strict=True):
                torch.testing.assert_close(g, e, atol=2e-5, rtol=1e-4, msg=(shape, name))


def _call(fn, args, has_alpha, has_res, running, training):
    """fn on (x, weight, bias[, alpha][, residual]) = args, with copies of the running stats."""
    xs, w, b, *rest = args
    a = rest.pop(0) if has_alpha else None
    r = rest.pop(0) if has_res else None
    return fn(xs, *[t.clone() for t in running], w, b, a, training, 0.1, 1e-3, r)


def _ours(x, running_mean, running_var, weight, bias, alpha, training, momentum, eps, res):
    if res is None:
        return pyimg.ops.batch_norm_prelu(x, running_mean, running_var, weight, bias, alpha,
                                          training, momentum, eps)
    return pyimg.ops.batch_norm_add(x, res, running_mean, running_var, weight, bias, training,
                                    momentum, eps)


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("residual", (False, True), ids=("prelu", "add"))
def test_gradcheck(backend, training, residual):
    x, running, weight, bias, alpha, res = make_inputs((2, 3, 3, 4), backend, torch.float64,
                                                       "none" if residual else "per-channel",
                                                       residual=residual)
    # Triton's CPU interpreter launches slowly: there, gradcheck's fast mode.
    fast = pyimg._backend.forced() == "triton" and x.device.type == "cpu"
    for _, xl in layouts(x):
        inputs = [t.clone().requires_grad_() for t in (xl, weight, bias, alpha, res)
                  if t is not None]

        def fn(xs, w, b, extra):
            a, r = (None, extra) if residual else (extra, None)
            return _ours(xs, *[t.clone() for t in running], w, b, a, training, 0.1, 1e-5, r)

        assert torch.autograd.gradcheck(fn, inputs, fast_mode=fast)


# -- torch.library contract and torch.compile ------------------------------------------------


@pytest.mark.parametrize("param", backend_params())
def test_opcheck(param):
    name, device = param
    x, (mean, var), weight, bias, alpha, res = make_inputs((2, 4, 3, 5), device, torch.float32,
                                                           residual=True)
    invstd = var.rsqrt()
    for _, xl in layouts(x):
        torch.library.opcheck(backend_op(name, "batch_norm_stats"), (xl.clone().requires_grad_(),))
        for training, a, r in ((True, alpha, None), (False, alpha, None), (True, None, res)):
            args = (xl.clone().requires_grad_(), mean, invstd, weight.clone().requires_grad_(),
                    bias.clone().requires_grad_(), None if a is None else a.requires_grad_(),
                    None if r is None else r.clone().requires_grad_(), training)
            torch.library.opcheck(backend_op(name, "bn_prelu"), args)
        torch.library.opcheck(backend_op(name, "bn_prelu_backward"),
                              (torch.randn_like(xl), xl, mean, invstd, weight, bias,
                               alpha.detach(), True))


def test_compile_fullgraph(backend):
    module = pyimg.nn.BatchNormPReLU(6, num_parameters=6).to(backend)
    eager = pyimg.nn.BatchNormPReLU(6, num_parameters=6).to(backend)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    for step in range(3):
        x = torch.randn(2, 6, 5, 4, device=backend).contiguous(memory_format=torch.channels_last)
        module.train(step < 2)
        eager.train(step < 2)
        y = compiled(x.clone().requires_grad_())
        y_ref = eager(x.clone().requires_grad_())
        torch.testing.assert_close(y, y_ref)
        assert y.is_contiguous(memory_format=torch.channels_last)
        y.sum().backward()
    for a, b in zip(module.state_dict().values(), eager.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert module.bn.weight.grad is not None and module.prelu.weight.grad is not None


# -- bad input -------------------------------------------------------------------------------


def _stock_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.type, str(info.value)


def test_one_value_per_channel_raises_like_stock(backend):
    x = torch.randn(1, 3, 1, 1, device=backend)
    running = (torch.zeros(3, device=backend), torch.ones(3, device=backend))
    kind, message = _stock_error(lambda: F.batch_norm(x, *running, training=True))
    with pytest.raises(kind, match="Expected more than 1 value per channel when training") as e:
        pyimg.ops.batch_norm_prelu(x, *running, training=True)
    assert str(e.value) == message
    # Eval mode normalizes a single value, as stock does.
    torch.testing.assert_close(pyimg.ops.batch_norm_prelu(x, *running),
                               F.batch_norm(x, *running))


def test_bad_input_raises(backend):
    running = (torch.zeros(3, device=backend), torch.ones(3, device=backend))
    with pytest.raises(ValueError, match="expected 4D input"):
        pyimg.ops.batch_norm_prelu(torch.randn(2, 3, 4, device=backend), *running)
    x = torch.randn(2, 3, 4, 4, device=backend)
    with pytest.raises(RuntimeError, match="weight should contain 3 elements"):
        pyimg.ops.batch_norm_prelu(x, *running, torch.ones(4, device=backend))
    with pytest.raises(RuntimeError, match="prelu weight should contain"):
        pyimg.ops.batch_norm_prelu(x, *running, prelu_weight=torch.ones(2, device=backend))
    with pytest.raises(RuntimeError, match="same device"):
        pyimg.ops.batch_norm_prelu(x, *running, torch.ones(3, device="meta"))
    with pytest.raises(RuntimeError, match="residual has shape"):
        pyimg.ops.batch_norm_add(x, x[:1], *running)
    with pytest.raises(RuntimeError, match="running_mean and running_var"):
        pyimg.ops.batch_norm_prelu(x, None, None)


def test_compiled_op_checks_its_arguments():
    # Called directly, past the Python checks, the C++ kernels still refuse bad input.
    if not pyimg._extension.loaded():
        pytest.skip("compiled extension not loaded")
    x = torch.randn(2, 3, 4, 4)
    mean, invstd = torch.zeros(3), torch.ones(3)
    with pytest.raises(RuntimeError, match="4-D"):
        torch.ops.pyimg.batch_norm_stats(x[0])
    with pytest.raises(RuntimeError, match="mean must be Float"):
        torch.ops.pyimg.bn_prelu(x, mean.double(), invstd, None, None, None, None, False)
    with pytest.raises(RuntimeError, match="PReLU weight must be 1-D"):
        torch.ops.pyimg.bn_prelu(x, mean, invstd, None, None, torch.ones(2), None, False)
    with pytest.raises(RuntimeError, match="residual has shape"):
        torch.ops.pyimg.bn_prelu(x, mean, invstd, None, None, None, x[:1], False)
    with pytest.raises(RuntimeError, match="grad has shape"):
        torch.ops.pyimg.bn_prelu_backward(x[:1], x, mean, invstd, None, None, None, True)


# -- edges the differential fuzzer found -----------------------------------------------------


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_empty_batch_runs_forward_and_backward_as_stock(backend, training):
    x = torch.randn(0, 3, 4, 4, device=backend, dtype=torch.float64)
    running = (torch.randn(3, device=backend, dtype=torch.float64),
               torch.rand(3, device=backend, dtype=torch.float64) + 0.5)
    params = [torch.randn(3, device=backend, dtype=torch.float64) for _ in range(3)]
    outputs, grads = [], []
    for fn in (pyimg.ops.batch_norm_prelu, batch_norm_prelu_reference):
        xi = x.clone().requires_grad_()
        ps = [p.clone().requires_grad_() for p in params]
        stats = [t.clone() for t in running]
        y = fn(xi, *stats, *ps, training=training)
        y.sum().backward()
        outputs.append([y, *stats])
        grads.append([xi.grad, *(p.grad for p in ps)])
    for ours, stock in zip(outputs[0] + grads[0], outputs[1] + grads[1], strict=True):
        torch.testing.assert_close(ours, stock)


def test_strided_weight_with_one_value_per_plane_backward(backend):
    # Stock's CPU batch_norm backward reads a strided weight wrongly when H * W == 1 (grad_x
    # off by O(1)); ours matches stock's answer for the same weight copied contiguous.
    x = torch.randn(4, 3, 1, 1, device=backend, dtype=torch.float64)
    storage = torch.randn(6, device=backend, dtype=torch.float64)
    bias = torch.randn(3, device=backend, dtype=torch.float64)
    g = torch.randn_like(x)
    results = []
    for fn, weight in ((pyimg.ops.batch_norm_prelu, storage.clone()),
                       (F.batch_norm, storage[::2].clone())):
        xi, wi = x.clone().requires_grad_(), weight.requires_grad_()
        y = fn(xi, None, None, wi[::2] if wi.numel() == 6 else wi, bias, training=True)
        y.backward(g)
        results.append((y, xi.grad, wi.grad[::2] if wi.numel() == 6 else wi.grad))
    for ours, stock in zip(*results, strict=True):
        torch.testing.assert_close(ours, stock)


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
@pytest.mark.parametrize("prelu", PRELU)
def test_gradients_at_nan_match_stock(backend, training, prelu):
    # NaN of both signs (x86 arithmetic makes negative ones): PReLU's gradient there is its
    # slope, the PReLU weight's NaN, as stock's.
    x, running, weight, bias, alpha, _ = make_inputs((2, 3, 4, 5), backend, torch.float64,
                                                     prelu)
    x[0, 0, 1, 1] = float("nan")
    x[1, 2, 3, 0] = -float("nan")
    tensors = [t.requires_grad_() for t in (x, weight, bias, alpha) if t is not None]
    grad = torch.randn_like(x)
    results = []
    for fn in (pyimg.ops.batch_norm_prelu, batch_norm_prelu_reference):
        y = fn(x, *(t.clone() for t in running), weight, bias, alpha, training)
        results.append((y, *torch.autograd.grad(y, tensors, grad)))
    for ours, stock in zip(*results, strict=True):
        torch.testing.assert_close(ours, stock, equal_nan=True)


@pytest.mark.parametrize(
    "param", [*backend_params(), pytest.param(("torch", "cpu"), id="torch-cpu")])
@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_channels_last_with_an_odd_unit_stride_backward(param, training):
    # Stock's CPU batch_norm backward misreads a channels_last x whose size-1 W has another
    # stride than channels_last's own, given an NCHW gradient (off by O(1)); every backend,
    # the torch reference included, matches stock's answer for the contiguous x.
    name, device = param
    x = torch.randn(2, 3, 4, 1, device=device, dtype=torch.float64)
    odd = x.contiguous(memory_format=torch.channels_last).as_strided(x.shape, (12, 1, 3, 7))
    g = torch.randn_like(x)
    results = []
    for xi, backend in ((odd, name), (x, "torch")):
        xi = xi.detach().requires_grad_()
        with pyimg.use_backend(backend):
            y = pyimg.ops.batch_norm_prelu(xi, torch.zeros(3, dtype=x.dtype, device=device),
                                           torch.ones(3, dtype=x.dtype, device=device),
                                           training=training)
            results.append((y, *torch.autograd.grad(y, xi, g)))
    for ours, expected in zip(*results, strict=True):
        torch.testing.assert_close(ours, expected)
