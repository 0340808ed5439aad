"""pyimg.nn.BatchNormPReLU / BatchNormAdd against the stock modules they replace, and
fold_batch_norm."""

from collections import OrderedDict

import pytest
import torch
from support import backend_params
from torch import nn

import pyimg


def stock_pair(channels=5, prelu_parameters=5, momentum=0.1, affine=True):
    bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=momentum, affine=affine)
    prelu = nn.PReLU(prelu_parameters)
    with torch.no_grad():
        if affine:
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        prelu.weight.uniform_(-0.5, 0.5)
    return nn.Sequential(OrderedDict(bn=bn, prelu=prelu))


@pytest.mark.parametrize("momentum", (0.1, None), ids=("momentum", "cumulative"))
@pytest.mark.parametrize("prelu_parameters", (1, 5))
@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last))
def test_training_steps_then_eval_match_stock(momentum, prelu_parameters, memory_format):
    stock = stock_pair(5, prelu_parameters, momentum)
    fused = pyimg.nn.BatchNormPReLU.from_modules(stock.bn, stock.prelu)
    stock_opt = torch.optim.SGD(stock.parameters(), lr=1e-3)
    fused_opt = torch.optim.SGD(fused.parameters(), lr=1e-3)
    # Sums in another order differ by a few ulp, and the optimizer steps carry that forward.
    tol = {"atol": 1e-4, "rtol": 1e-4}
    for step in range(4):
        x = (torch.randn(3, 5, 6, 7) * 2 + step).contiguous(memory_format=memory_format)
        for model, opt in ((stock, stock_opt), (fused, fused_opt)):
            opt.zero_grad()
            model.y = model(x.clone().requires_grad_())
            model.y.backward(torch.ones_like(model.y) + torch.linspace(0, 1, 7))
        torch.testing.assert_close(fused.y, stock.y, **tol)
        for p, q in zip(fused.parameters(), stock.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, **tol)
        stock_opt.step()
        fused_opt.step()
    assert fused.state_dict().keys() == stock.state_dict().keys()
    for name, value in fused.state_dict().items():
        torch.testing.assert_close(value, stock.state_dict()[name], **tol, msg=name)
    assert fused.bn.num_batches_tracked.item() == 4
    stock.eval()
    fused.eval()
    x = torch.randn(2, 5, 4, 3).contiguous(memory_format=memory_format)
    torch.testing.assert_close(fused(x), stock(x), **tol)


def test_state_dict_loads_both_ways():
    stock = stock_pair()
    stock.train()
    stock(torch.randn(4, 5, 3, 3))  # non-trivial running statistics
    fused = pyimg.nn.BatchNormPReLU(5, eps=1e-3, num_parameters=5)
    fused.load_state_dict(stock.state_dict())
    fresh = stock_pair()
    fresh.load_state_dict(fused.state_dict())
    for name, value in stock.state_dict().items():
        assert torch.equal(fused.state_dict()[name], value), name
        assert torch.equal(fresh.state_dict()[name], value), name
    fused.eval()
    stock.eval()
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(fused(x), stock(x))


def test_from_modules_copies():
    stock = stock_pair()
    stock.eval()
    fused = pyimg.nn.BatchNormPReLU.from_modules(stock.bn, stock.prelu)
    assert not fused.training
    with torch.no_grad():
        fused.bn.weight.zero_()
    assert stock.bn.weight.abs().min() > 0
    with pytest.raises(TypeError, match="BatchNorm2d and PReLU"):
        pyimg.nn.BatchNormPReLU.from_modules(stock.bn, nn.ReLU())


def test_without_affine_or_running_stats_matches_stock():
    for kwargs in ({"affine": False}, {"track_running_stats": False}):
        bn, prelu = nn.BatchNorm2d(4, **kwargs), nn.PReLU()
        fused = pyimg.nn.BatchNormPReLU(4, **kwargs)
        for training in (True, False):
            bn.train(training)
            fused.train(training)
            x = torch.randn(2, 4, 3, 5)
            torch.testing.assert_close(fused(x), prelu(bn(x)), msg=str(kwargs))
        assert fused.state_dict().keys() == {f"bn.{k}" for k in bn.state_dict()} | {
            "prelu.weight"}


def test_degenerate_batch_raises_like_stock():
    x = torch.randn(1, 5, 1, 1)
    stock = stock_pair()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel") as expected:
        stock(x)
    with pytest.raises(ValueError) as ours:
        pyimg.nn.BatchNormPReLU(5)(x)
    assert str(ours.value) == str(expected.value)
    with pytest.raises(ValueError, match="expected 4D input"):
        pyimg.nn.BatchNormPReLU(5)(torch.randn(5, 3, 3))


def test_batch_norm_add_matches_stock():
    stock = nn.BatchNorm2d(6)
    fused = pyimg.nn.BatchNormAdd(6)
    assert isinstance(fused, nn.BatchNorm2d)
    fused.load_state_dict(stock.state_dict())
    for training in (True, True, False):
        stock.train(training)
        fused.train(training)
        x, res = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4)
        torch.testing.assert_close(fused(x, res), stock(x) + res)
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], value, msg=name)


# -- folding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("conv_bias", (True, False))
@pytest.mark.parametrize("groups", (1, 2))
def test_fold_batch_norm_matches_conv_then_bn(conv_bias, groups):
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=groups, bias=conv_bias)
    bn = nn.BatchNorm2d(6)
    bn.train()
    bn(conv(torch.randn(8, 4, 5, 5)) * 3 + 1)  # running statistics far from (0, 1)
    bn.eval()
    folded = pyimg.nn.fold_batch_norm(conv, bn)
    x = torch.randn(2, 4, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
    assert folded is not conv and (conv.bias is None) == (not conv_bias)


def test_fold_batch_norm_rejects_what_it_cannot_fold():
    with pytest.raises(ValueError, match="running statistics"):
        pyimg.nn.fold_batch_norm(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(ValueError, match="output channels"):
        pyimg.nn.fold_batch_norm(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match="Conv2d and BatchNorm2d"):
        pyimg.nn.fold_batch_norm(nn.Linear(2, 3), nn.BatchNorm2d(3))


@pytest.mark.parametrize("param", backend_params())
def test_empty_batch_in_training_leaves_running_statistics_alone(param):
    # An empty batch has no statistics: stock leaves the running ones as they were (a NaN
    # update would poison every later eval output).
    name, device = param
    stock = stock_pair().to(device)
    stock(torch.randn(4, 5, 3, 3, device=device))
    fused = pyimg.nn.BatchNormPReLU.from_modules(stock.bn, stock.prelu)
    x = torch.randn(0, 5, 4, 4, device=device)
    with pyimg.use_backend(name):
        y = fused(x)
    assert y.shape == stock(x).shape
    for key, value in fused.state_dict().items():
        torch.testing.assert_close(value, stock.state_dict()[key], msg=key)
    stock.eval()
    fused.eval()
    x = torch.randn(2, 5, 4, 4, device=device)
    with pyimg.use_backend(name):
        torch.testing.assert_close(fused(x), stock(x), atol=1e-5, rtol=1e-5)
