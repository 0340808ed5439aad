"""torch.compile(fullgraph=True) of random cases of every op: Inductor checks each custom op's
real output against the shape and strides its fake kernel promised (assert_size_stride), so
fakes and kernels must agree; the compiled result must also equal eager's, strides included.
Cases of odd seed compile with dynamic=True: the fake kernels then see symbolic sizes."""

import copy

import pytest
import torch
from fuzz import test_batch_norm, test_conv, test_max_pool, test_modules, test_pixel_shuffle
from fuzz.harness import assert_close, fuzz, outcome, same_layout, use
from hypothesis import assume
from support import TOLERANCE

import pyimg

# Each case compiles afresh: a few per op and backend.
COMPILE_EXAMPLES = 20
COMPILE_TOLERANCE = {**TOLERANCE, torch.float32: {"atol": 1e-4, "rtol": 1e-4},
                     torch.float64: {"atol": 1e-10, "rtol": 1e-9},
                     torch.float16: {"atol": 2e-2, "rtol": 2e-2},
                     torch.bfloat16: {"atol": 1e-1, "rtol": 1e-1}}


def compile_fuzz(name, case_strategy):
    return fuzz(name, case_strategy, quick=2, long=COMPILE_EXAMPLES)


def _check_compiled(backend, fn, tensors, dynamic: bool):
    """fn(*tensors) compiled equals eager, values, shapes and strides; the gradients too for
    float64 inputs."""
    if backend == "torch":
        pytest.skip("the torch backend is stock ops: nothing of ours to compile")
    grad = tensors[0].dtype == torch.float64
    leaves = [t.detach().requires_grad_(grad and t.is_floating_point())
              if isinstance(t, torch.Tensor) else t for t in tensors]
    with use(backend):
        eager, error = outcome(lambda: fn(*leaves))
        assume(error is None)
        torch._dynamo.reset()
        # Inductor's layout optimization may give stock convolutions in the graph (and their
        # gradients) channels_last strides eager would not; the layouts checked are pyimg's.
        with torch._inductor.config.patch(layout_optimization=False):
            compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic)(*leaves)
    eager = eager if isinstance(eager, tuple) else (eager,)
    compiled = compiled if isinstance(compiled, tuple) else (compiled,)
    for e, c in zip(eager, compiled, strict=True):
        assert same_layout(c, e), f"compiled {c.shape} {c.stride()}, eager {e.shape} {e.stride()}"
        if e.is_floating_point():
            assert_close(c, e, e.dtype, COMPILE_TOLERANCE, "compiled vs eager")
        else:
            assert torch.equal(c, e)
    if grad and eager[0].numel():
        used = [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]
        g = torch.randn_like(eager[0])
        with use(backend):
            eager_grads = torch.autograd.grad(eager[0], used, g, allow_unused=True)
            with torch._inductor.config.patch(layout_optimization=False):  # compiles backward
                compiled_grads = torch.autograd.grad(compiled[0], used, g, allow_unused=True)
        for e, c in zip(eager_grads, compiled_grads, strict=True):
            if e is not None:
                assert same_layout(c, e), f"gradient: compiled {c.stride()}, eager {e.stride()}"
                assert_close(c, e, torch.float64, COMPILE_TOLERANCE, "compiled gradient")


@compile_fuzz("compile_pixel_shuffle", test_pixel_shuffle.shuffle_cases)
def compile_shuffle(backend, device, case):
    x, bias, weight = test_pixel_shuffle._shuffle_inputs(case, device)
    r, act, slope = case.r, case.activation, case.negative_slope
    _check_compiled(backend, lambda x, b, w: pyimg.ops.pixel_shuffle(x, r, b, act, w, slope),
                    [x, bias, weight], case.seed % 2 == 1)


test_compile_shuffle, test_compile_shuffle_long = compile_shuffle


@compile_fuzz("compile_max_pool2d", test_max_pool.pool_cases)
def compile_pool(backend, device, case):
    x = test_max_pool._input(case, device)
    args = (case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode)

    def pool_unpool(x):
        y, indices = pyimg.ops.max_pool2d_with_indices(x, *args, compact=case.compact)
        if case.dilation != (1, 1):
            return y, indices
        return pyimg.ops.max_unpool2d(y, indices, *args[:3], output_size=x.shape[-2:]), indices

    _check_compiled(backend, pool_unpool, [x], case.seed % 2 == 1)


test_compile_pool, test_compile_pool_long = compile_pool


@compile_fuzz("compile_batch_norm", test_batch_norm.batch_norm_cases)
def compile_batch_norm(backend, device, case):
    assume(test_batch_norm._broken(case) is None)
    x, running, weight, bias, prelu, residual = test_batch_norm._inputs(case, device)

    def bn(x, weight, bias, prelu, residual, *running):
        return test_batch_norm._ours(case, x, running, weight, bias, prelu, residual)

    _check_compiled(backend, bn, [x, weight, bias, prelu, residual,
                                  *(None if t is None else t.clone() for t in running)],
                    case.seed % 2 == 1)


test_compile_batch_norm, test_compile_batch_norm_long = compile_batch_norm


@compile_fuzz("compile_conv2d", test_conv.conv_cases)
def compile_conv(backend, device, case):
    assume(test_conv._broken(case) is None)
    x, weight, bias, kw = test_conv._inputs(case, device)
    names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]

    def conv(x, weight, bias, *tensors):
        return test_conv._call(case, x, weight, bias,
                               {**kw, **dict(zip(names, tensors, strict=True))})

    _check_compiled(backend, conv, [x, weight, bias, *(kw[k] for k in names)],
                    case.seed % 2 == 1)


test_compile_conv, test_compile_conv_long = compile_conv


@compile_fuzz("compile_modules", test_modules.module_cases)
def compile_modules(backend, device, case):
    _, module = test_modules._stock_and_ours(case)
    module = copy.deepcopy(module).to(device)
    x = torch.randn(case.n, case.channels, case.h, case.w, device=device, dtype=case.dtype)
    module.eval()  # training's running-statistics update is compiled by compile_batch_norm
    _check_compiled(backend, module, [x], case.seed % 2 == 1)


test_compile_modules, test_compile_modules_long = compile_modules
