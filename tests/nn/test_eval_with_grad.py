"""Modules in eval mode with autograd recording (fine-tuning around a frozen BatchNorm, a
feature or perceptual-loss network whose input requires grad): the gradients of Conv2dBNAct
and ResidualBlock equal the stock modules', exactly in float64 (gradcheck), whether
BatchNorm's weight and bias get a gradient or are frozen; and the fold they use for it is
within an ulp of the float64 fold."""

import copy

import pytest
import torch
from torch import nn

import pyimg
from pyimg.nn.fold import affine_scale_shift, batch_norm_scale_shift, batch_norm_statistics_terms

# Sums in another order differ by a few ulp.
TOL = {"atol": 1e-5, "rtol": 1e-5}
ACTIVATIONS = {"none": lambda: None, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2),
               "prelu": lambda: nn.PReLU(5, 0.1)}
BN_STATES = {"bn_trainable": True, "bn_frozen": False}


def _randomized_bn(channels, dtype=torch.float32):
    bn = nn.BatchNorm2d(channels, dtype=dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return bn


def _stock_conv_bn_act(activation, bn_trainable, in_channels=3):
    conv = nn.Conv2d(in_channels, 5, 3, padding=1)
    bn = _randomized_bn(5).requires_grad_(bn_trainable)
    act = ACTIVATIONS[activation]()
    return nn.Sequential(*(m for m in (conv, bn, act) if m is not None)).eval(), (conv, bn, act)


class _StockBlock(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = copy.deepcopy(block)

    def forward(self, x):
        b = self.block
        return x + b.bn2(b.conv2(b.prelu(b.bn1(b.conv1(x)))))


def _residual_pair(bn_trainable, channels=4, dtype=torch.float32):
    block = pyimg.nn.ResidualBlock(channels, prelu_parameters=channels, dtype=dtype)
    block.bn1, block.bn2 = _randomized_bn(channels, dtype), _randomized_bn(channels, dtype)
    block.bn1.requires_grad_(bn_trainable)
    block.bn2.requires_grad_(bn_trainable)
    block.eval()
    return _StockBlock(block).eval(), block


def _gradients(module, x, upstream):
    inputs = [x] + [p for p in module.parameters() if p.requires_grad]
    y = module(x)
    return y, torch.autograd.grad(y, inputs, upstream)


def _assert_same_gradients(stock, fused, x):
    x = x.clone().requires_grad_()
    upstream = torch.randn_like(stock(x))
    expected, expected_grads = _gradients(stock, x, upstream)
    # Twice: the first call fills what is cached, the second reads it.
    for _ in range(2):
        y, grads = _gradients(fused, x, upstream)
        torch.testing.assert_close(y, expected, **TOL)
        assert len(grads) == len(expected_grads)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(grad, expected_grad, **TOL)


@pytest.mark.parametrize("bn_trainable", BN_STATES.values(), ids=BN_STATES.keys())
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", ((2, 3, 5, 7), (1, 3, 1, 4)), ids=("batch2", "batch1"))
def test_conv_bn_act_gradients_match_stock(activation, bn_trainable, shape):
    torch.manual_seed(0)
    stock, parts = _stock_conv_bn_act(activation, bn_trainable)
    fused = pyimg.nn.Conv2dBNAct.from_modules(*parts).eval()
    _assert_same_gradients(stock, fused, torch.randn(shape))
    _assert_same_gradients(stock, fused, torch.randn(shape).to(memory_format=torch.channels_last))


@pytest.mark.parametrize("bn_trainable", BN_STATES.values(), ids=BN_STATES.keys())
@pytest.mark.parametrize("shape", ((2, 4, 5, 7), (1, 4, 3, 1)), ids=("batch2", "batch1"))
def test_residual_block_gradients_match_stock(bn_trainable, shape):
    torch.manual_seed(0)
    stock, fused = _residual_pair(bn_trainable)
    _assert_same_gradients(stock, fused, torch.randn(shape))
    _assert_same_gradients(stock, fused, torch.randn(shape).to(memory_format=torch.channels_last))


def _gradcheck(module, x):
    """gradcheck in x and every parameter that requires grad, substituted for the module's
    own with torch.func.functional_call. Fast mode (random projections of the Jacobian):
    the full one takes a forward per input element, seconds for a float64 convolution on a
    busy CPU, and the tests above compare every gradient element with stock's."""
    names = [name for name, p in module.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for name, p in module.named_parameters()
              if p.requires_grad]

    def call(x, *values):
        return torch.func.functional_call(module, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(call, (x.requires_grad_(), *params), fast_mode=True)


@pytest.mark.parametrize("bn_trainable", BN_STATES.values(), ids=BN_STATES.keys())
def test_conv_bn_act_gradcheck_float64(bn_trainable):
    torch.manual_seed(0)
    _, parts = _stock_conv_bn_act("prelu", bn_trainable, in_channels=2)
    fused = pyimg.nn.Conv2dBNAct.from_modules(*parts).double().eval()
    _gradcheck(fused, torch.randn(1, 2, 3, 4, dtype=torch.float64))


@pytest.mark.parametrize("bn_trainable", BN_STATES.values(), ids=BN_STATES.keys())
def test_residual_block_gradcheck_float64(bn_trainable):
    torch.manual_seed(0)
    _, fused = _residual_pair(bn_trainable, channels=2, dtype=torch.float64)
    _gradcheck(fused, torch.randn(1, 2, 3, 4, dtype=torch.float64))


@pytest.mark.parametrize("bn_dtype", (torch.float16, torch.float32, torch.float64))
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("affine", ("weight_and_bias", "weight", "neither"))
@pytest.mark.parametrize("with_conv_bias", (True, False), ids=("conv_bias", "no_conv_bias"))
def test_differentiable_fold_is_within_two_ulp_of_the_float64_fold(dtype, bn_dtype, affine,
                                                                   with_conv_bias):
    torch.manual_seed(0)
    bn = _randomized_bn(37, bn_dtype)
    conv_bias = torch.randn(37, dtype=bn_dtype) if with_conv_bias else None
    weight = None if affine == "neither" else bn.weight
    bias = bn.bias if affine == "weight_and_bias" else None
    if weight is None:
        bn.weight = bn.bias = None
    elif bias is None:
        bn.bias = None
    inv_std, neg_mean = batch_norm_statistics_terms(bn, dtype)
    scale, shift = affine_scale_shift(weight, bias, inv_std, neg_mean, conv_bias)
    expected_scale, expected_shift = batch_norm_scale_shift(bn, dtype, conv_bias)
    # A float64 weight or bias promotes (the op converts what it is given).
    parameters_dtype = torch.promote_types(dtype, bn_dtype)
    assert scale.dtype == (dtype if weight is None else parameters_dtype)
    assert shift.dtype == (dtype if weight is bias is conv_bias is None else parameters_dtype)
    eps = torch.finfo(dtype).eps
    # Each of the terms and the ops on them rounds once.
    assert ((scale - expected_scale).abs() <= 2 * eps * expected_scale.abs()).all()
    centered = bn.running_mean.abs() + (0 if conv_bias is None else conv_bias.abs())
    magnitude = expected_shift.abs() + scale.abs() * centered
    assert ((shift - expected_shift).abs() <= 2 * eps * magnitude).all()
