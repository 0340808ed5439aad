"""Differential fuzzing of the fused modules against the stock modules they replace: a training
step (outputs, every gradient, running statistics) then eval, for Conv2dBNAct, ResidualBlock
and UpsampleBlock."""

import copy
import dataclasses
from collections import OrderedDict

import torch
from fuzz.harness import (
    Layout,
    arrange,
    assert_close,
    check_format,
    fuzz,
    layouts,
    random_tensor,
    use,
)
from hypothesis import strategies as st
from support import TOLERANCE, poisoned_outputs
from torch import nn

import pyimg

MODULE_TOLERANCE = {**TOLERANCE, torch.float64: {"atol": 1e-10, "rtol": 1e-9},
                    torch.float32: {"atol": 1e-4, "rtol": 1e-4}}


@dataclasses.dataclass(frozen=True)
class ModuleCase:
    module: str  # conv_bn_act, residual, upsample
    n: int
    channels: int
    out_channels: int
    h: int
    w: int
    kernel: int
    stride: int
    dilation: int
    groups: int
    bias: bool
    activation: str  # none, relu, leaky_relu, prelu (Conv2dBNAct)
    prelu_parameters: str  # one or per-channel
    momentum: float | None
    scale: int  # UpsampleBlock
    layout: Layout
    dtype: torch.dtype
    seed: int


@st.composite
def module_cases(draw, small: bool):
    channels = draw(st.integers(1, 3 if small else 12))
    groups = draw(st.sampled_from([1, channels]))
    size = st.integers(1, 5 if small else 16)
    return ModuleCase(
        module=draw(st.sampled_from(("conv_bn_act", "residual", "upsample"))),
        n=draw(st.integers(1, 3)), channels=channels,
        out_channels=groups * draw(st.integers(1, 2 if small else 4)), h=draw(size),
        w=draw(size), kernel=draw(st.sampled_from((1, 3, 5))), stride=draw(st.integers(1, 2)),
        dilation=draw(st.integers(1, 2)), groups=groups, bias=draw(st.booleans()),
        activation=draw(st.sampled_from(("none", "relu", "leaky_relu", "prelu"))),
        prelu_parameters=draw(st.sampled_from(("one", "per-channel"))),
        momentum=draw(st.sampled_from((0.1, None))), scale=draw(st.integers(1, 3)),
        layout=draw(layouts(4)), dtype=draw(st.sampled_from((torch.float64, torch.float32))),
        seed=draw(st.integers(0, 2**31 - 1)))


def _randomize(module: nn.Module, seed: int):
    """Parameters and BatchNorm state away from their defaults, so each one matters; BatchNorm
    weights away from 0."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t, low, high):
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64) * (high - low) + low)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.5, 0.5)
                uniform(m.running_mean, -1, 1)
                uniform(m.running_var, 0.5, 1.5)
            elif isinstance(m, (nn.Conv2d, nn.PReLU)):
                for p in m.parameters():
                    uniform(p, -0.5, 0.5)


def _stock_and_ours(case: ModuleCase):
    c, kw = case.channels, {"dtype": case.dtype}
    prelu_n = 1 if case.prelu_parameters == "one" else None
    if case.module == "conv_bn_act":
        conv = nn.Conv2d(c, case.out_channels, case.kernel, case.stride, case.kernel // 2,
                         case.dilation, case.groups, case.bias, **kw)
        bn = nn.BatchNorm2d(case.out_channels, momentum=case.momentum, **kw)
        act = {"none": None, "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2),
               "prelu": nn.PReLU(prelu_n or case.out_channels, **kw)}[case.activation]
        stock = nn.Sequential(OrderedDict(conv=conv, bn=bn, **({"act": act} if act else {})))
        _randomize(stock, case.seed)
        return stock, pyimg.nn.Conv2dBNAct.from_modules(conv, bn, act)
    if case.module == "residual":
        k = case.kernel
        conv1 = nn.Conv2d(c, c, k, padding=k // 2, bias=case.bias, **kw)
        bn1 = nn.BatchNorm2d(c, momentum=case.momentum, **kw)
        prelu = nn.PReLU(prelu_n or c, **kw)
        conv2 = nn.Conv2d(c, c, k, padding=k // 2, bias=case.bias, **kw)
        bn2 = nn.BatchNorm2d(c, momentum=case.momentum, **kw)
        body = nn.Sequential(conv1, bn1, prelu, conv2, bn2)
        _randomize(body, case.seed)
        return _Residual(body), pyimg.nn.ResidualBlock.from_modules(conv1, bn1, prelu, conv2,
                                                                    bn2)
    r = case.scale
    conv = nn.Conv2d(c, c * r * r, case.kernel, padding=case.kernel // 2, bias=case.bias, **kw)
    shuffle, prelu = nn.PixelShuffle(r), nn.PReLU(prelu_n or c, **kw)
    stock = nn.Sequential(conv, shuffle, prelu)
    _randomize(stock, case.seed)
    return stock, pyimg.nn.UpsampleBlock.from_modules(conv, shuffle, prelu)


class _Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def _step(model, x, g):
    xi = x.detach().requires_grad_()
    with poisoned_outputs():
        y = model(xi)
        y.backward(g)
    return y, [xi.grad] + [p.grad for p in model.parameters()]


@fuzz("modules", module_cases, quick=12)
def module_property(backend, device, case: ModuleCase):
    stock, ours = _stock_and_ours(case)
    stock, ours = stock.to(device), copy.deepcopy(ours).to(device)
    shape = (case.n, case.channels, case.h, case.w)
    x = arrange(random_tensor(shape, case.dtype, device, case.seed + 1, -1, 2), case.layout)
    for training in (True, False):
        stock.train(training)
        ours.train(training)
        try:  # on a copy: a training forward updates the running statistics
            y_stock = copy.deepcopy(stock)(x)
        except (RuntimeError, ValueError) as error:  # e.g. one value per channel in training
            with use(backend):
                try:
                    ours(x)
                except type(error):
                    return
            raise AssertionError(f"stock raised {error!r}, ours returned") from None
        g = random_tensor(y_stock.shape, case.dtype, device, case.seed + 2)
        stock.zero_grad()
        ours.zero_grad()
        expected, expected_grads = _step(stock, x, g)
        with use(backend):
            y, grads = _step(ours, x, g)
        msg = "train" if training else "eval"
        assert_close(y, expected, case.dtype, MODULE_TOLERANCE, f"{msg} output")
        check_format(y, x, msg)
        # Gradients in float64 only: in float32 some are sums that cancel to about 0 (a
        # convolution's bias before a training BatchNorm), where any order's rounding differs.
        if case.dtype == torch.float64:
            for ours_g, stock_g in zip(grads, expected_grads, strict=True):
                assert_close(ours_g, stock_g, case.dtype, MODULE_TOLERANCE, f"{msg} gradient")
        for (name, a), b in zip(ours.state_dict().items(), stock.state_dict().values(),
                                strict=True):
            if a.is_floating_point():
                assert_close(a, b, a.dtype, MODULE_TOLERANCE, name)
            else:
                assert torch.equal(a, b), name


test_modules, test_modules_long = module_property
