"""pyimg.nn.Conv2d and Conv2dBNAct against the stock modules they replace."""

from collections import OrderedDict

import pytest
import torch
from support import backend_params
from torch import nn

import pyimg

# Sums in another order differ by a few ulp, and optimizer steps carry that forward.
TOL = {"atol": 1e-4, "rtol": 1e-4}
CONV_ARGUMENTS = [
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=(1, 0),
         dilation=(1, 2), groups=2, bias=False),
    dict(in_channels=3, out_channels=5, kernel_size=4, padding="same", dilation=2),
    dict(in_channels=3, out_channels=5, kernel_size=3, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("kwargs", CONV_ARGUMENTS, ids=range(len(CONV_ARGUMENTS)))
def test_conv2d_is_a_drop_in(kwargs):
    stock = nn.Conv2d(**kwargs)
    ours = pyimg.nn.Conv2d(**kwargs)
    ours.load_state_dict(stock.state_dict())
    fresh = nn.Conv2d(**kwargs)
    fresh.load_state_dict(ours.state_dict())
    assert ours.state_dict().keys() == stock.state_dict().keys()
    assert all(torch.equal(v, stock.state_dict()[k]) for k, v in fresh.state_dict().items())
    assert repr(ours).replace("Conv2d", "") == repr(stock).replace("Conv2d", "")
    x = torch.randn(2, kwargs["in_channels"], 7, 6).contiguous(memory_format=torch.channels_last)
    y, expected = ours(x.clone().requires_grad_()), stock(x.clone().requires_grad_())
    torch.testing.assert_close(y, expected, **TOL)
    y.sum().backward()
    expected.sum().backward()
    for p, q in zip(ours.parameters(), stock.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, **TOL)


ACTIVATIONS = {"none": lambda c: None, "relu": lambda c: nn.ReLU(),
               "leaky_relu": lambda c: nn.LeakyReLU(0.2), "prelu": lambda c: nn.PReLU(c, 0.1)}


def stock_sequence(activation, momentum=0.1):
    conv = nn.Conv2d(3, 6, 3, padding="same", dilation=2)
    bn = nn.BatchNorm2d(6, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    act = ACTIVATIONS[activation](6)
    modules = OrderedDict(conv=conv, bn=bn, **({"act": act} if act is not None else {}))
    return nn.Sequential(modules), act


@pytest.mark.parametrize("momentum", (0.1, None), ids=("momentum", "cumulative"))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv_bn_act_trains_and_evaluates_like_stock(activation, momentum):
    stock, act = stock_sequence(activation, momentum)
    fused = pyimg.nn.Conv2dBNAct.from_modules(stock.conv, stock.bn, act)
    assert fused.state_dict().keys() == stock.state_dict().keys()
    stock_opt = torch.optim.SGD(stock.parameters(), lr=0.05)
    fused_opt = torch.optim.SGD(fused.parameters(), lr=0.05)
    for step in range(3):
        x = (torch.randn(3, 3, 6, 5) + step).contiguous(memory_format=torch.channels_last)
        for model, opt in ((stock, stock_opt), (fused, fused_opt)):
            opt.zero_grad()
            model.y = model(x)
            model.y.backward(torch.linspace(-1, 1, model.y.numel()).view_as(model.y))
        torch.testing.assert_close(fused.y, stock.y, **TOL)
        for p, q in zip(fused.parameters(), stock.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, **TOL)
        stock_opt.step()
        fused_opt.step()
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], value, **TOL, msg=name)
    assert fused.bn.num_batches_tracked.item() == 3
    stock.eval()
    fused.eval()
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(fused(x), stock(x), **TOL)


@pytest.mark.parametrize("param", backend_params())
def test_eval_folds_batch_norm_into_one_conv(param, monkeypatch):
    name, device = param
    stock, act = stock_sequence("prelu")
    stock.train()
    stock(torch.randn(4, 3, 6, 6))  # non-trivial running statistics
    stock.eval()
    fused = pyimg.nn.Conv2dBNAct.from_modules(stock.conv, stock.bn, act).to(device)
    stock.to(device)
    calls = []
    original = pyimg.nn.conv.conv2d
    monkeypatch.setattr(pyimg.nn.conv, "conv2d", lambda *a, **k: calls.append(k) or original(
        *a, **k))
    monkeypatch.setattr(pyimg.nn.conv, "batch_norm_prelu", None)  # eval must not need it
    x = torch.randn(1, 3, 5, 4, device=device)
    with pyimg.use_backend(name):
        y = fused(x)
    torch.testing.assert_close(y, stock(x), **TOL)
    assert len(calls) == 1 and calls[0]["scale"] is not None


def test_from_modules_checks_and_copies():
    stock, act = stock_sequence("relu")
    fused = pyimg.nn.Conv2dBNAct.from_modules(stock.conv, stock.bn, act)
    with torch.no_grad():
        fused.conv.weight.zero_()
    assert stock.conv.weight.abs().sum() > 0
    with pytest.raises(TypeError, match="cannot fuse"):
        pyimg.nn.Conv2dBNAct(stock.conv, stock.bn, nn.Tanh())
    with pytest.raises(TypeError, match="Conv2d and BatchNorm2d"):
        pyimg.nn.Conv2dBNAct(stock.conv, nn.BatchNorm1d(6))
    with pytest.raises(ValueError, match="features"):
        pyimg.nn.Conv2dBNAct(stock.conv, nn.BatchNorm2d(5))


@pytest.mark.parametrize("mode", ("circular", "reflect", "replicate"))
def test_padding_modes_keep_channels_last(mode):
    # Stock returns NCHW for a channels_last input with circular padding; ours keeps the
    # input's format whatever the padding mode, as its docstring promises.
    stock = nn.Conv2d(4, 6, 3, padding=(1, 2), padding_mode=mode)
    ours = pyimg.nn.Conv2d(4, 6, 3, padding=(1, 2), padding_mode=mode)
    ours.load_state_dict(stock.state_dict())
    x = torch.randn(2, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    y = ours(x)
    torch.testing.assert_close(y, stock(x), **TOL)
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("param", backend_params())
def test_relu_gradient_at_nan_matches_stock(param):
    # Training runs a fused BatchNorm + ReLU pass: at a NaN pre-activation stock's ReLU passes
    # the gradient, where a PReLU of slope 0 would stop it.
    name, device = param
    stock, act = stock_sequence("relu")
    stock.to(device)
    fused = pyimg.nn.Conv2dBNAct.from_modules(stock.conv, stock.bn, act)
    x = torch.randn(2, 3, 5, 5, device=device)
    x[0, :, 2, 2] = float("nan")
    results = []
    for model in (fused, stock):
        model.zero_grad()
        with pyimg.use_backend(name):
            y = model(x)
            y.backward(torch.ones_like(y))
        results.append([y] + [p.grad for p in model.parameters()])
    for ours, expected in zip(*results, strict=True):
        torch.testing.assert_close(ours, expected, **TOL, equal_nan=True)
