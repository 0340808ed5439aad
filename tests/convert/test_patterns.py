"""Each pattern pyimg.convert fuses, in each form a forward can write it, and the near misses
it reports instead of fusing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyimg.nn as pnn
from pyimg.conversion import convert, convert_with_report


class Lambda(nn.Module):
    """A conv (with an optional batch norm and PReLU weight) and a forward given as a
    function of (self, x)."""

    def __init__(self, forward, channels=4, batch_norm=False, prelu=1, padding_mode="zeros"):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding_mode)
        self.up = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels) if batch_norm else None
        self.alpha = nn.Parameter(torch.full((prelu,), 0.2))
        self.act = nn.PReLU(prelu)
        self.shuffle = nn.PixelShuffle(2)
        self.f = forward

    def forward(self, x):
        return self.f(self, x)


def check(forward, results, **kwargs):
    """Convert Lambda(forward): the fusions' results are ``results``; outputs and gradients
    equal in eval and training. Returns the report."""
    torch.manual_seed(0)
    model = Lambda(forward, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    converted, report = convert_with_report(model)
    assert [f.result for f in report.fused] == results, str(report)
    x = torch.randn(2, 4, 7, 6)
    for training in (False, True):
        model.train(training)
        converted.train(training)
        xs = [x.clone().requires_grad_() for _ in range(2)]
        ys = [model(xs[0]), converted(xs[1])]
        torch.testing.assert_close(ys[1], ys[0], atol=1e-5, rtol=1e-5)
        grads = [torch.autograd.grad(y.square().sum(), [xi, *net.parameters()],
                                     materialize_grads=True)
                 for y, xi, net in zip(ys, xs, (model, converted), strict=True)]
        for ours, theirs in zip(grads[1], grads[0], strict=True):
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    return report


@pytest.mark.parametrize("forward", [
    lambda m, x: F.relu(m.conv(x)),
    lambda m, x: torch.relu(m.conv(x)),
    lambda m, x: m.conv(x).relu(),
    lambda m, x: F.relu(m.conv(x), inplace=True),
    lambda m, x: nn.functional.relu_(m.conv(x)),
], ids=["F.relu", "torch.relu", "method", "inplace", "relu_"])
def test_relu_forms(forward):
    check(forward, ["pyimg.ops.conv2d[relu]"])


@pytest.mark.parametrize("forward", [
    lambda m, x: F.leaky_relu(m.conv(x), 0.2),
    lambda m, x: F.leaky_relu(m.conv(x), negative_slope=0.2, inplace=True),
    lambda m, x: F.leaky_relu(m.conv(x)),
], ids=["positional", "keyword", "default"])
def test_leaky_relu_forms(forward):
    report = check(forward, ["pyimg.ops.conv2d[leaky_relu]"])
    assert report.left_alone == []


@pytest.mark.parametrize("forward,prelu", [
    (lambda m, x: m.act(m.conv(x)), 1),
    (lambda m, x: m.act(m.conv(x)), 4),
    (lambda m, x: F.prelu(m.conv(x), m.alpha), 4),
    (lambda m, x: torch.prelu(m.conv(x), m.alpha), 1),
], ids=["module", "module per channel", "F.prelu", "torch.prelu"])
def test_prelu_forms(forward, prelu):
    check(forward, ["pyimg.ops.conv2d[prelu]"], prelu=prelu)


@pytest.mark.parametrize("forward,result", [
    (lambda m, x: x + m.conv(x), "+ residual"),
    (lambda m, x: torch.add(m.conv(x), x), "+ residual"),
    (lambda m, x: m.conv(x).add(x), "+ residual"),
    (lambda m, x: m.conv(x) * 0.5 + x, "scale 0.5, + residual"),
    (lambda m, x: x + 0.5 * m.conv(x), "scale 0.5, + residual"),
    (lambda m, x: torch.mul(m.conv(x), 0.5).add_(x), "scale 0.5, + residual"),
    (lambda m, x: F.relu(m.conv(x)) + x, "relu, + residual"),
    (lambda m, x: F.relu(m.conv(x) + x), "+ residual, relu"),
], ids=["x+f", "torch.add", "method", "scaled", "scaled reversed", "torch.mul add_",
        "after relu", "before relu"])
def test_residual_forms(forward, result):
    check(forward, [f"pyimg.ops.conv2d[{result}]"])


def test_batch_norm_folds_in_eval_and_uses_batch_statistics_in_training():
    report = check(lambda m, x: F.relu(m.bn(m.conv(x)) + x),
                   ["pyimg.ops.conv2d[batch_norm, + residual, relu]"], batch_norm=True)
    assert report.swapped == []


@pytest.mark.parametrize("forward,results", [
    (lambda m, x: F.leaky_relu(m.shuffle(m.up(x)), 0.1),
     ["pyimg.ops.conv2d[pixel_shuffle 2, leaky_relu]"]),
    (lambda m, x: m.act(F.pixel_shuffle(m.up(x), 2)),
     ["pyimg.ops.conv2d[pixel_shuffle 2, prelu]"]),
    (lambda m, x: torch.tanh(m.shuffle(m.up(x))), ["pyimg.ops.pixel_shuffle[tanh]"]),
    (lambda m, x: torch.sigmoid(F.pixel_shuffle(x, 2)), ["pyimg.ops.pixel_shuffle[sigmoid]"]),
], ids=["conv+shuffle+leaky", "conv+F.shuffle+prelu", "shuffle+tanh", "F.shuffle+sigmoid"])
def test_pixel_shuffle_forms(forward, results):
    check(forward, results, prelu=1)


@pytest.mark.parametrize("forward,results", [
    (lambda m, x: m.act(m.bn(x)), ["pyimg.ops.batch_norm_prelu[prelu]"]),
    (lambda m, x: F.relu(m.bn(x)), ["pyimg.ops.batch_norm_prelu[relu]"]),
    (lambda m, x: m.bn(x) + x.flip(-1), ["pyimg.ops.batch_norm_add"]),
], ids=["bn+prelu", "bn+relu", "bn+add"])
def test_batch_norm_without_convolution(forward, results):
    check(forward, results, batch_norm=True, prelu=4)


def test_a_broadcast_residual_runs_the_stock_sum():
    # From the input, so fused; the (N, C, 1, 1) operand makes the fused op add it unfused.
    check(lambda m, x: m.conv(x) + x.mean((2, 3), keepdim=True), ["pyimg.ops.conv2d[+ residual]"])


@pytest.mark.parametrize("forward,where,reason", [
    (lambda m, x: F.gelu(m.conv(x)), "gelu", "has no gelu"),
    (lambda m, x: torch.tanh(m.conv(x)), "tanh", "has no tanh"),
    (lambda m, x: F.relu(m.conv(x)), "conv", "padding_mode 'reflect'"),
    (lambda m, x: (lambda y: F.relu(y) + y)(m.conv(x)), "conv", "also feeds 1 other"),
    (lambda m, x: m.conv(x) + m.alpha.view(1, -1, 1, 1), "add", "parameters or buffers alone"),
], ids=["gelu", "tanh", "padding_mode", "two users", "broadcast parameter"])
def test_near_misses_are_reported(forward, where, reason):
    kwargs = {"padding_mode": "reflect"} if "padding_mode" in reason else {"prelu": 4}
    report = check(forward, [], **kwargs)
    assert any(where in place and reason in why for place, why in report.near_misses), \
        str(report)


def test_input_written_in_place_is_not_read_late():
    def forward(m, x):
        y = m.conv(x)
        x.mul_(2)  # after the convolution read x: a fused op at the sum would read it doubled
        return F.relu(y) + x

    model = Lambda(forward).eval()
    converted, report = convert_with_report(model)
    assert report.fused == []
    assert any("written in place" in why for _, why in report.near_misses), str(report)
    x = torch.randn(2, 4, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(converted(x.clone()), model(x.clone()))


# -- max-pool indices -> max-unpool ---------------------------------------------------------


class Pooling(nn.Module):
    def __init__(self, functional: bool, leak: bool = False):
        super().__init__()
        self.functional, self.leak = functional, leak
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x):
        if self.functional:
            y, indices = F.max_pool2d(x, 2, return_indices=True)
            out = F.max_unpool2d(y * 2, indices, 2, output_size=x.shape[-2:])
        else:
            y, indices = self.pool(x)
            out = self.unpool(y * 2, indices, output_size=x.shape[-2:])
        return (out, indices) if self.leak else out


@pytest.mark.parametrize("functional", [False, True], ids=["modules", "functions"])
def test_pool_indices_to_unpool_become_compact(functional):
    model = Pooling(functional)
    converted, report = convert_with_report(model)
    assert report.rules()["max-pool indices to max-unpool"] == 1, str(report)
    pools = [m for m in converted._pyimg_fused.values() if isinstance(m, pnn.MaxPool2d)]
    assert len(pools) == 1 and pools[0].compact_indices
    x = torch.randn(2, 3, 9, 8)
    torch.testing.assert_close(converted(x), model(x))


def test_escaping_indices_stay_flat():
    model = Pooling(False, leak=True)
    converted, report = convert_with_report(model)
    assert "max-pool indices to max-unpool" not in report.rules()
    assert {s.after for s in report.swapped} == {"pyimg.MaxPool2d", "pyimg.MaxUnpool2d"}
    x = torch.randn(2, 3, 9, 8)
    (out, indices), (expected, expected_indices) = converted(x), model(x)
    assert torch.equal(out, expected) and torch.equal(indices, expected_indices)


# -- what cannot be traced -------------------------------------------------------------------


class Branchy(nn.Module):
    """A data-dependent branch fx cannot trace, around a traceable block."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.block(x)
        return self.head(y) if y.mean() > 0 else y


class ModeDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.block(x) * (0.5 if self.training else 1.0)


class MakesTensors(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.block(x) + torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)


@pytest.mark.parametrize("model,reason", [
    (Branchy(), "fx cannot trace"), (ModeDependent(), "training and eval"),
    (MakesTensors(), "makes tensors of its own"),
], ids=["branch", "mode", "constant"])
def test_untraceable_parts_convert_child_by_child(model, reason):
    converted, report = convert_with_report(model)
    assert report.untraced[0][0] == "" and reason in report.untraced[0][1]
    assert [f.result for f in report.fused] == ["pyimg.ops.conv2d[relu]"]
    x = torch.randn(2, 3, 6, 5)
    for training in (True, False):
        model.train(training)
        converted.train(training)
        torch.testing.assert_close(converted(x), model(x))


# -- the converted model --------------------------------------------------------------------


def test_original_is_untouched_unless_inplace():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
    weight = model[0].weight
    converted = convert(model)
    assert type(model) is nn.Sequential and type(model[0]) is nn.Conv2d
    assert isinstance(converted, nn.Sequential) and type(converted) is not nn.Sequential
    assert type(converted[0]) is pnn.Conv2d and converted[0].weight is not weight
    assert convert(model, inplace=True) is model
    assert type(model[0]) is pnn.Conv2d and model[0].weight is weight  # optimizers keep it


def test_class_methods_and_indexing_survive():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.Conv2d(3, 2, 1))
    converted = convert(model)
    assert isinstance(converted, nn.Sequential) and len(converted) == 3
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(converted[2](converted[1](converted[0](x))), model(x))


def test_converting_twice_fuses_the_same():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
    once, first = convert_with_report(model)
    twice, second = convert_with_report(once)
    assert [f.result for f in second.fused] == [f.result for f in first.fused]
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(twice(x), model(x))


def test_leaf_root_and_pyimg_modules():
    assert type(convert(nn.PixelShuffle(3))) is pnn.PixelShuffle
    already = nn.Sequential(pnn.PixelShuffle(2), pnn.ResidualBlock(1))
    _, report = convert_with_report(already)
    assert report.fused == [] and report.swapped == []
    assert [(a.path, a.reason) for a in report.left_alone] == [
        ("0", "already pyimg's"), ("1", "already pyimg's")]


def test_report_is_logged(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pyimg.conversion"):
        convert(nn.Sequential(nn.PixelShuffle(2), nn.PReLU()))
    assert "0 (pyimg.PixelShuffle) + 1 (PReLU) -> pyimg.ops.pixel_shuffle[prelu]" in caplog.text


def test_traces_once_per_mode_that_may_differ_and_rules_never_trace(monkeypatch):
    # Two traces of a module (training, eval) are how a forward that branches on
    # self.training is caught; a stack of nn.Sequential cannot branch, so one trace does.
    # A rule tracing again (to match, then to build) would only cost.
    from pyimg.conversion import engine

    traced = []
    trace = engine._Tracer.trace

    def counted(tracer, root, *args, **kwargs):
        traced.append((root, root.training))
        return trace(tracer, root, *args, **kwargs)

    monkeypatch.setattr(engine._Tracer, "trace", counted)
    model = nn.Sequential(Lambda(lambda m, x: m.shuffle(F.relu(m.up(m.conv(x))))), nn.ReLU())
    converted = convert(model)
    assert traced == [(converted, True), (converted, False)]
    traced.clear()
    model = ModeDependent()
    convert(model, inplace=True)
    assert traced == [(model, True), (model, False), (model.block, False)]
    traced.clear()
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), nn.Conv2d(3, 3, 1))
    converted = convert(model)
    assert traced == [(converted, False)]
    traced.clear()
    # A hook on a module traced through runs in the trace, and may read the mode.
    model[0].register_forward_hook(lambda m, args, out: out * 2 if m.training else out)
    converted, report = convert_with_report(model)
    assert traced[:2] == [(converted, True), (converted, False)]
    assert "training and eval" in report.untraced[0][1]
    x = torch.randn(1, 3, 4, 5)
    for training in (True, False):
        torch.testing.assert_close(converted.train(training)(x), model.train(training)(x))
