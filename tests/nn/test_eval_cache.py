"""What modules cache for eval is never stale: after every way BatchNorm's state can change
(an in-place edit, an optimizer step, load_state_dict, a training step, to(), a new eps, a
replaced submodule), the cached module computes what a fresh stock one does, with gradients
off, on through BatchNorm's weight and bias, and on around a frozen BatchNorm."""

import copy
import gc
import weakref

import pytest
import torch
from torch import nn

import pyimg
from pyimg.nn import _eval_cache
from pyimg.nn._eval_cache import EvalCache

TOL = {"atol": 1e-4, "rtol": 1e-4}


def _conv_bn_act():
    conv, bn, act = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.PReLU()
    return pyimg.nn.Conv2dBNAct.from_modules(conv, bn, act)


def _residual():
    return pyimg.nn.ResidualBlock(4)


def _stock_conv_bn_act():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.PReLU())


def _converted():
    """A stock model through pyimg.convert: its convolution, BatchNorm and PReLU run as one
    fused module that holds them by reference (pyimg/conversion/fused.py)."""
    return pyimg.convert(_stock_conv_bn_act())


def _stock_of(module):
    """The same computation on stock modules and the module's current state."""
    if isinstance(module, nn.Sequential):  # converted: it keeps the stock modules
        return nn.Sequential(*(copy.deepcopy(m) for m in module.children())).eval()
    if isinstance(module, pyimg.nn.Conv2dBNAct):
        return nn.Sequential(copy.deepcopy(module.conv), copy.deepcopy(module.bn),
                             copy.deepcopy(module.act)).eval()
    stock = copy.deepcopy(module)
    conv1, bn1, prelu, conv2, bn2 = stock.conv1, stock.bn1, stock.prelu, stock.conv2, stock.bn2
    return lambda x: x + bn2(conv2(prelu(bn1(conv1(x)))))


def _batch_norms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def _randomize(module):
    with torch.no_grad():
        for bn in _batch_norms(module):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)


def _check(module, x, grad):
    with torch.no_grad():
        expected = _stock_of(module)(x)
    # Twice: the first call fills the cache, the second reads it.
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(module(x), expected, **TOL)
        torch.testing.assert_close(module(x), expected, **TOL)


MODULES = {"Conv2dBNAct": _conv_bn_act, "ResidualBlock": _residual, "converted": _converted}
# (grad mode, whether BatchNorm's weight and bias require grad)
GRAD_MODES = {"no_grad": (False, True), "grad": (True, True), "frozen_bn": (True, False)}


@pytest.mark.parametrize("make", MODULES.values(), ids=MODULES.keys())
@pytest.mark.parametrize("grad_mode", GRAD_MODES.values(), ids=GRAD_MODES.keys())
def test_cached_fold_follows_every_change_of_batch_norm(make, grad_mode):
    grad, bn_requires_grad = grad_mode
    torch.manual_seed(0)
    module = make()
    _randomize(module)
    for bn in _batch_norms(module):
        bn.requires_grad_(bn_requires_grad)
    module.eval()
    channels = 4 if isinstance(module, pyimg.nn.ResidualBlock) else 3
    x = torch.randn(2, channels, 5, 6)

    _check(module, x, grad)
    bn = _batch_norms(module)[0]

    with torch.no_grad():  # an edit by hand, in place
        bn.running_var.mul_(3)
        bn.weight.add_(0.5)
    _check(module, x, grad)

    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)  # an optimizer step
    module(x).square().mean().backward()
    optimizer.step()
    _check(module, x, grad)

    other = make()  # load_state_dict
    _randomize(other)
    module.load_state_dict(other.state_dict())
    _check(module, x, grad)

    module.train()  # a training step moves the running statistics
    module(x * 3 + 1)
    module.eval()
    _check(module, x, grad)

    bn.eps = 0.5  # a hyper-parameter
    _check(module, x, grad)

    module.double()  # a move: new tensors, another dtype
    _check(module, x.double(), grad)
    module.float()

    if make is _converted:
        return  # convert's fused modules hold the modules they fused: convert again instead
    replacement = copy.deepcopy(bn)  # a replaced submodule
    with torch.no_grad():
        replacement.running_mean.add_(1)
    for name, child in module.named_children():
        if child is bn:
            setattr(module, name, replacement)
    _check(module, x, grad)


@pytest.mark.parametrize("make", MODULES.values(), ids=MODULES.keys())
def test_with_gradients_on_the_fold_is_recomputed_and_differentiable(make):
    module = make()
    _randomize(module)
    module.eval()
    channels = 4 if isinstance(module, pyimg.nn.ResidualBlock) else 3
    x = torch.randn(1, channels, 4, 4)
    with torch.no_grad():
        module(x)  # fills the cache
    module(x).sum().backward()
    assert all(bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
               for bn in _batch_norms(module))


def test_eval_cache_keys_on_sources_and_context():
    a = torch.ones(3)
    cache, calls = EvalCache(), []

    def compute():
        calls.append(1)
        return a * 2

    with torch.no_grad():
        cache.get([a], compute, "f32")
        cache.get([a], compute, "f32")
        assert len(calls) == 1
        cache.get([a], compute, "f64")  # another context
        a.add_(1)  # an in-place write
        cache.get([a], compute, "f64")
        assert len(calls) == 3
        cache.clear()
        cache.get([a], compute, "f64")
        assert len(calls) == 4
    cache.get([a], compute, "f64")  # gradients on, but a needs none: cached
    assert len(calls) == 4
    a.requires_grad_()
    cache.get([a], compute, "f64")  # autograd records through a: computed every call
    cache.get([a], compute, "f64")
    assert len(calls) == 6
    with torch.no_grad():  # the value cached before, of the same a
        assert cache.get([a], compute, "f64").grad_fn is None
    assert len(calls) == 6


def test_eval_cache_keeps_its_sources_alive():
    # A source freed while its value is cached could hand its identity and memory to a new
    # tensor of other values, which the key could not tell apart.
    cache, a = EvalCache(), torch.ones(3)
    source = weakref.ref(a)
    with torch.no_grad():
        cache.get([a], lambda: 2, None)
    del a
    gc.collect()
    assert source() is not None
    cache.clear()
    gc.collect()
    assert source() is None


@pytest.mark.parametrize("make", MODULES.values(), ids=MODULES.keys())
def test_with_gradients_on_only_what_needs_none_is_cached(make, monkeypatch):
    computed = {"fold": 0, "statistics": 0}

    def counting(name, compute):
        def wrapper(*args):
            computed[name] += 1
            return compute(*args)
        return wrapper

    monkeypatch.setattr(_eval_cache, "batch_norm_scale_shift",
                        counting("fold", _eval_cache.batch_norm_scale_shift))
    monkeypatch.setattr(_eval_cache, "batch_norm_statistics_terms",
                        counting("statistics", _eval_cache.batch_norm_statistics_terms))
    torch.manual_seed(0)
    module = make()
    _randomize(module)
    module.eval()
    bns = _batch_norms(module)
    folds = len(bns)
    channels = 4 if isinstance(module, pyimg.nn.ResidualBlock) else 3
    x = torch.randn(1, channels, 5, 6, requires_grad=True)
    _check(module, x, grad=True)  # BatchNorm trainable: its statistics' terms, cached
    assert computed == {"fold": 0, "statistics": folds}
    bn = bns[-1]
    with torch.no_grad():  # new running statistics: their terms are computed again
        bn.running_mean.add_(0.5)
    _check(module, x, grad=True)
    assert computed == {"fold": 0, "statistics": folds + 1}
    for frozen in bns:  # a frozen BatchNorm, trainable convolutions: its fold, cached
        frozen.requires_grad_(False)
    _check(module, x, grad=True)
    assert computed == {"fold": folds, "statistics": folds + 1}
    module.requires_grad_(False)  # all frozen (a loss network): the whole fold, cached
    _check(module, x, grad=True)
    assert computed == {"fold": 2 * folds, "statistics": folds + 1}
    bn.weight.requires_grad_()  # trainable again: the terms still cached, its gradient
    module(x).sum().backward()
    assert computed == {"fold": 2 * folds, "statistics": folds + 1}
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0


class _Doubled(nn.Module):
    def forward(self, weight):
        return weight * 2


@pytest.mark.parametrize("make", MODULES.values(), ids=MODULES.keys())
@pytest.mark.parametrize("grad_mode", GRAD_MODES.values(), ids=GRAD_MODES.keys())
def test_a_parametrized_batch_norm_weight_is_read_through_its_parametrization(make, grad_mode):
    grad, bn_requires_grad = grad_mode
    torch.manual_seed(0)
    module = make()
    _randomize(module)
    module.eval()
    bn = _batch_norms(module)[0]
    torch.nn.utils.parametrize.register_parametrization(bn, "weight", _Doubled())
    bn.requires_grad_(bn_requires_grad)
    channels = 4 if isinstance(module, pyimg.nn.ResidualBlock) else 3
    x = torch.randn(2, channels, 5, 6)
    _check(module, x, grad)
    with torch.no_grad():
        bn.parametrizations.weight.original.add_(0.5)
    _check(module, x, grad)
