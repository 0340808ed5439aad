"""Training's update of the running statistics and its invstd: the eager entry's C++ step and the
Python path give the same bits, and both the values stock F.batch_norm gives."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyimg
from pyimg import _extension
from pyimg.ops import batch_norm as bn_module
from pyimg.ops.batch_norm import batch_norm_prelu_reference

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
MOMENTA = (0.0, 0.1, 0.37, 1.0)
# Stock sums the squared deviations in another order and divides them by count - 1 in the
# accumulation dtype: a few ulp apart.
STATS_TOLERANCE = {torch.float32: {"rtol": 4e-6, "atol": 1e-7},
                   torch.float64: {"rtol": 1e-13, "atol": 1e-15}}


def _accumulate(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _inputs(dtype, channels_last=False, shape=(3, 5, 7, 6)):
    x = torch.randn(shape, dtype=torch.float64).mul(2).add(3).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c, acc = shape[1], _accumulate(dtype)
    return x, torch.randn(c, dtype=acc), torch.rand(c, dtype=acc) + 0.5


def _python_path(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(bn_module, "eager", None)
        return fn()


def _ours(x, running, momentum, residual=False):
    if residual:
        return pyimg.ops.batch_norm_add(x, torch.ones_like(x), *running, training=True,
                                        momentum=momentum, eps=1e-3)
    return pyimg.ops.batch_norm_prelu(x, *running, prelu_weight=torch.full((1,), 0.25),
                                      training=True, momentum=momentum, eps=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", MOMENTA)
@pytest.mark.parametrize("channels_last", (False, True), ids=("nchw", "cl"))
def test_running_stats_match_stock(dtype, momentum, channels_last):
    x, *running = _inputs(dtype, channels_last)
    ours, stock = [t.clone() for t in running], [t.clone() for t in running]
    _ours(x, ours, momentum)
    F.batch_norm(x, *stock, training=True, momentum=momentum, eps=1e-3)
    tolerance = STATS_TOLERANCE[_accumulate(dtype)]
    for got, want, before in zip(ours, stock, running, strict=True):
        torch.testing.assert_close(got, want, **tolerance)
        if momentum == 0:
            assert torch.equal(got, before) and torch.equal(want, before)


@pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", MOMENTA)
@pytest.mark.parametrize("residual", (False, True), ids=("prelu", "add"))
def test_eager_entry_and_python_path_give_the_same_bits(dtype, momentum, residual,
                                                        monkeypatch):
    x, *running = _inputs(dtype, channels_last=residual)
    # A strided running mean: the C++ step writes through its stride.
    running[0] = torch.stack([running[0], torch.zeros_like(running[0])], 1)[:, 0]
    entry, python = [t.clone() for t in running], [t.clone() for t in running]
    y = _ours(x, entry, momentum, residual)
    want = _python_path(monkeypatch, lambda: _ours(x, python, momentum, residual))
    for got, expected in zip((y, *entry), (want, *python), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
def test_no_running_stats(monkeypatch):
    x, _, _ = _inputs(torch.float32)
    y = _ours(x, (None, None), 0.1)
    torch.testing.assert_close(y, _python_path(monkeypatch, lambda: _ours(x, (None, None), 0.1)),
                               rtol=0, atol=0)
    ref = batch_norm_prelu_reference(x, None, None, prelu_weight=torch.full((1,), 0.25),
                                     training=True, momentum=0.1, eps=1e-3)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("given", ("mean", "var"))
def test_one_running_stat_raises_as_stock(given):
    x, rm, rv = _inputs(torch.float32)
    running = (rm, None) if given == "mean" else (None, rv)
    with pytest.raises(ValueError) as stock:
        F.batch_norm(x, *running, training=True)
    with pytest.raises(ValueError) as ours:
        _ours(x, running, 0.1)
    assert str(ours.value) == str(stock.value)


@pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
@pytest.mark.parametrize("dtype", (torch.float64, torch.float16, torch.bfloat16))
def test_running_stats_of_another_dtype_take_the_python_path(dtype):
    # Stock takes half or bfloat16 statistics for an input of their own dtype (and rejects
    # other mixes, which pyimg converts): the entry leaves them to the Python path.
    x = torch.randn(2, 3, 4, 5, dtype=torch.float32 if dtype == torch.float64 else dtype)
    running = [torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)]
    assert _extension.eager.batch_norm_fused(x, *running, None, None, None, True, 0.1, 1e-5,
                                             None, False) is None
    ours = [t.clone() for t in running]
    pyimg.ops.batch_norm_prelu(x, *ours, training=True)
    expected = [t.clone().to(x.dtype) for t in running]
    F.batch_norm(x, *expected, training=True)
    for got, want in zip(ours, expected, strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got.to(x.dtype), want)


def test_cumulative_average_through_the_module():
    # momentum=None: nn.BatchNorm2d averages over num_batches_tracked; the module passes
    # 1 / num_batches_tracked as the momentum.
    torch.manual_seed(0)
    stock = nn.Sequential(nn.BatchNorm2d(4, momentum=None), nn.PReLU())
    ours = pyimg.nn.BatchNormPReLU.from_modules(*(m for m in stock))
    stock.train()
    ours.train()
    for _ in range(3):
        x = torch.randn(2, 4, 5, 3) * 2 + 1
        torch.testing.assert_close(ours(x), stock(x), rtol=1e-5, atol=1e-5)
    assert ours.bn.num_batches_tracked.item() == stock[0].num_batches_tracked.item() == 3
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(ours.bn, name), getattr(stock[0], name),
                                   **STATS_TOLERANCE[torch.float32])


@pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
def test_version_counter_bumps_as_an_inplace_update(monkeypatch):
    x, rm, rv = _inputs(torch.float32)
    versions = rm._version, rv._version
    _ours(x, (rm, rv), 0.1)
    assert rm._version > versions[0] and rv._version > versions[1]
    versions = rm._version, rv._version
    _python_path(monkeypatch, lambda: _ours(x, (rm, rv), 0.1))
    assert rm._version > versions[0] and rv._version > versions[1]


@pytest.mark.skipif(not _extension.loaded(), reason="needs the compiled extension")
def test_inference_tensor_statistics_take_the_python_path():
    x, rm, rv = _inputs(torch.float32)
    with torch.inference_mode():
        running = rm.clone(), rv.clone()
    assert _extension.eager.batch_norm_fused(x, *running, None, None, None, True, 0.1, 1e-5,
                                             None, False) is None


@pytest.mark.parametrize("training, eps", [(True, 0.0), (True, -1e-5), (False, -1e-5)])
def test_bad_eps_raises_as_stock(training, eps):
    x, rm, rv = _inputs(torch.float32)
    with pytest.raises(ValueError) as stock:
        F.batch_norm(x, rm.clone(), rv.clone(), training=training, eps=eps)
    with pytest.raises(ValueError) as ours:
        pyimg.ops.batch_norm_prelu(x, rm.clone(), rv.clone(), training=training, eps=eps)
    assert str(ours.value) == str(stock.value)
