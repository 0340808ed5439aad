"""The eager entry points (csrc/python/): the C++ call that pyimg.ops' public functions make
first. An entry serves ordinary calls on the C++ backends with the results, errors and
gradients of the Python path, and declines (returns None, so the Python path runs) whatever
that path must decide: a forced backend, tensor subclasses and __torch_function__ modes,
dtypes the kernels lack, other ranks, calls stock rejects with its own messages."""

import importlib

import pytest
import torch
from torch.overrides import TorchFunctionMode

import pyimg
from pyimg import _extension

pytestmark = pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
eager = _extension.eager


def _channels(n, c, h, w, channels_last=False, dtype=torch.float32, batch=None):
    x = torch.randn(n if batch is None else batch, c, h, w, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# (public function's module, entry call, equivalent public call) per op, on fresh inputs.
def _cases(x):
    c = x.shape[1]
    rm, rv = torch.randn(c, dtype=torch.float32), torch.rand(c) + 0.5
    w, b, a = torch.randn(c), torch.randn(c), torch.rand(1)
    # Pooled from a floating-point copy, then in x's dtype: unpool's input for any x.
    pooled = x if x.is_floating_point() else x.float()
    y, idx = torch.nn.functional.max_pool2d(pooled, 2, return_indices=True)
    y = y.to(x.dtype)
    return {
        "pixel_shuffle": (lambda: eager.pixel_shuffle(x, 2, None, "relu", None, 0.01),
                          lambda: pyimg.ops.pixel_shuffle(x, 2, activation="relu")),
        "pixel_unshuffle": (lambda: eager.pixel_unshuffle(x, 2),
                            lambda: pyimg.ops.pixel_unshuffle(x, 2)),
        "max_pool": (lambda: eager.max_pool2d_with_indices(x, 2, None, 0, 1, False, False),
                     lambda: pyimg.ops.max_pool2d_with_indices(x, 2)),
        "max_unpool": (lambda: eager.max_unpool2d(y, idx, 2, None, 0, None),
                       lambda: pyimg.ops.max_unpool2d(y, idx, 2)),
        "batch_norm": (lambda: eager.batch_norm_fused(x, rm, rv, w, b, a, False, 0.1, 1e-5,
                                                      None, False),
                       lambda: pyimg.ops.batch_norm_prelu(x, rm, rv, w, b, a)),
    }


OPS = ["pixel_shuffle", "pixel_unshuffle", "max_pool", "max_unpool", "batch_norm"]
MODULES = {"pixel_shuffle": "pyimg.ops.pixel_shuffle", "pixel_unshuffle": "pyimg.ops.pixel_shuffle",
           "max_pool": "pyimg.ops.max_pool", "max_unpool": "pyimg.ops.max_pool",
           "batch_norm": "pyimg.ops.batch_norm"}


def _python_path(op, call, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(importlib.import_module(MODULES[op]), "eager", None)
        return call()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_serves_with_the_python_paths_result(op, dtype, channels_last, batch, monkeypatch):
    x = _channels(batch, 8, 6, 10, channels_last, dtype)
    entry, public = _cases(x)[op]
    served = entry()
    assert served is not None
    expected = _python_path(op, public, monkeypatch)
    for got, want in zip(*(t if isinstance(t, tuple) else (t,) for t in (served, expected)),
                         strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.is_contiguous(memory_format=torch.channels_last) == \
            want.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("op", OPS)
def test_gradients_match_the_python_path(op, monkeypatch):
    x = _channels(2, 8, 6, 6, dtype=torch.float64).requires_grad_()
    entry, public = _cases(x)[op]
    out = entry()
    assert out is not None
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.square().sum(), x, retain_graph=True)
    x.grad = None
    expected = _python_path(op, public, monkeypatch)
    expected = expected[0] if isinstance(expected, tuple) else expected
    (want,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(grad, want, rtol=0, atol=0)


class _Subclass(torch.Tensor):
    pass


class _Mode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("reason", ["forced torch", "forced triton", "subclass", "mode",
                                    "integer dtype", "3-D input"])
def test_declines_what_the_python_path_decides(op, reason):
    x = _channels(1, 8, 6, 6)
    if reason == "subclass":
        x = x.as_subclass(_Subclass)
    elif reason == "integer dtype":
        x = torch.randint(0, 9, (1, 8, 6, 6))
    elif reason == "3-D input":
        x = x[0]
    entry, _ = _cases(x)[op]
    if reason.startswith("forced"):
        with pyimg.use_backend(reason.split()[1]):
            assert entry() is None
    elif reason == "mode":
        with _Mode():
            assert entry() is None
    else:
        assert entry() is None


def test_declines_arguments_of_unexpected_types():
    x = _channels(1, 8, 6, 6)
    assert eager.pixel_shuffle(x, 2.0, None, "none", None, 0.01) is None
    assert eager.pixel_shuffle(x, True, None, "none", None, 0.01) is None
    assert eager.pixel_shuffle(x, 2, None, 3, None, 0.01) is None
    assert eager.max_pool2d_with_indices(x, (2, 2, 2), None, 0, 1, False, False) is None
    assert eager.max_pool2d_with_indices(x, 2, None, 0, 1, 0, False) is None
    assert eager.pixel_unshuffle(x.numpy(), 2) is None


@pytest.mark.parametrize("call, error, match", [
    (lambda x: pyimg.ops.pixel_shuffle(x, 0), RuntimeError, "positive upscale_factor"),
    (lambda x: pyimg.ops.pixel_shuffle(x, 3), RuntimeError, "divisible by the square"),
    (lambda x: pyimg.ops.pixel_shuffle(x, 2, activation="gelu"), ValueError,
     "unknown activation"),
    (lambda x: pyimg.ops.pixel_shuffle(x, 2, activation="relu", weight=torch.ones(1)),
     ValueError, "exactly when"),
    (lambda x: pyimg.ops.pixel_unshuffle(x, 4), RuntimeError, "divisible by downscale_factor"),
    (lambda x: pyimg.ops.max_pool2d_with_indices(x, 2, padding=2), RuntimeError,
     "pad should be at most half"),
    (lambda x: pyimg.ops.max_pool2d_with_indices(x, 0), RuntimeError, "greater than zero"),
    (lambda x: pyimg.ops.max_pool2d_with_indices(x, 8), RuntimeError, "too small"),
    (lambda x: pyimg.ops.max_unpool2d(x, torch.zeros(1, 8, 3, 3, dtype=torch.long), 2),
     RuntimeError, "shape of indices"),
    (lambda x: pyimg.ops.max_unpool2d(x, torch.zeros_like(x, dtype=torch.long), 2,
                                      output_size=(30, 30)), ValueError, "invalid output_size"),
    (lambda x: pyimg.ops.batch_norm_prelu(x, None, None), RuntimeError, "running_mean"),
    (lambda x: pyimg.ops.batch_norm_prelu(x, torch.zeros(3), torch.ones(3)), RuntimeError,
     "should contain 8 elements"),
    (lambda x: pyimg.ops.batch_norm_add(x, x[:, :4], torch.zeros(8), torch.ones(8)),
     RuntimeError, "residual has shape"),
])
def test_bad_input_raises_the_python_paths_error(call, error, match, monkeypatch):
    x = _channels(1, 8, 6, 6)
    with pytest.raises(error, match=match):
        call(x)
    for module in set(MODULES.values()):
        monkeypatch.setattr(importlib.import_module(module), "eager", None)
    with pytest.raises(error, match=match):
        call(x)
