"""pyimg.nn.UpsampleBlock against conv -> PixelShuffle -> PReLU from stock modules."""

import copy
from collections import OrderedDict

import pytest
import torch
from support import LOW_PRECISION, TOLERANCE, assert_lowp_close, backend_params, step_each
from torch import nn

import pyimg


def stock_block(channels=3, scale=2, prelu_parameters=1):
    """The stock sequence, named so that its state_dict keys are pyimg.nn.UpsampleBlock's."""
    torch.manual_seed(0)
    block = nn.Sequential(OrderedDict(
        conv=nn.Conv2d(channels, channels * scale * scale, 3, padding=1),
        shuffle=nn.PixelShuffle(scale), prelu=nn.PReLU(prelu_parameters)))
    with torch.no_grad():
        block.prelu.weight.uniform_(-0.5, 0.5)
    return block


def fused_copy(stock):
    return pyimg.nn.UpsampleBlock.from_modules(stock.conv, stock.shuffle, stock.prelu)


@pytest.mark.parametrize("scale,prelu_parameters", ((2, 1), (3, 3)))
@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last),
                         ids=("nchw", "channels_last"))
def test_training_steps_match_stock(scale, prelu_parameters, memory_format):
    stock = stock_block(3, scale, prelu_parameters)
    fused = fused_copy(stock)
    stock_opt = torch.optim.SGD(stock.parameters(), lr=0.1)
    fused_opt = torch.optim.SGD(fused.parameters(), lr=0.1)
    tol = {"atol": 1e-5, "rtol": 1e-5}
    for _ in range(2):
        x = torch.randn(2, 3, 4, 5).contiguous(memory_format=memory_format)
        grad = torch.randn(2, 3, 4 * scale, 5 * scale)
        outputs, grads = step_each(((stock, stock_opt), (fused, fused_opt)), x, grad)
        torch.testing.assert_close(outputs[1], outputs[0], **tol)
        assert outputs[1].is_contiguous(memory_format=memory_format)
        for ours, expected in zip(*grads, strict=True):
            torch.testing.assert_close(ours, expected, **tol)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last),
                         ids=("nchw", "channels_last"))
def test_eval_is_one_convolution_matching_stock(backend, memory_format):
    name, device = backend
    stock = stock_block(prelu_parameters=3).eval().to(device)
    fused = fused_copy(stock)
    assert not fused.training
    x = torch.randn(2, 3, 5, 4, device=device).contiguous(memory_format=memory_format)
    x.requires_grad_()
    with pyimg.use_backend(name):
        y, expected = fused(x), stock(x)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    assert y.is_contiguous(memory_format=memory_format)
    grad = torch.randn_like(y)
    with pyimg.use_backend(name):
        ours = torch.autograd.grad(y, [x, *fused.parameters()], grad)
    theirs = torch.autograd.grad(expected, [x, *stock.parameters()], grad)
    for g, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_low_precision_within_twice_stock_error(dtype, training):
    stock = stock_block().train(training)
    x = torch.randn(2, 3, 6, 5)
    reference = copy.deepcopy(stock).double()(x.double()).float()
    lowp = copy.deepcopy(stock).to(dtype)
    with torch.no_grad():
        assert_lowp_close(fused_copy(lowp)(x.to(dtype)), lowp(x.to(dtype)), reference)
    torch.testing.assert_close(fused_copy(stock).double()(x.double()),
                               stock.double()(x.double()), **TOLERANCE[torch.float64])


def test_state_dict_loads_both_ways():
    stock = stock_block(prelu_parameters=3)
    fused = pyimg.nn.UpsampleBlock(3, prelu_parameters=3)
    fused.load_state_dict(stock.state_dict())
    fresh = stock_block(prelu_parameters=3)
    with torch.no_grad():
        fresh.prelu.weight.zero_()
    fresh.load_state_dict(fused.state_dict())
    for name, value in stock.state_dict().items():
        assert torch.equal(fused.state_dict()[name], value), name
        assert torch.equal(fresh.state_dict()[name], value), name


def test_from_modules_rejects_what_it_cannot_fuse():
    stock = stock_block()
    with pytest.raises(TypeError, match="PReLU"):
        pyimg.nn.UpsampleBlock.from_modules(stock.conv, stock.shuffle, nn.ReLU())
    with pytest.raises(ValueError, match="pixel shuffle x3"):
        pyimg.nn.UpsampleBlock.from_modules(stock.conv, nn.PixelShuffle(3), stock.prelu)
    with pytest.raises(ValueError, match="PReLU of 2"):
        pyimg.nn.UpsampleBlock.from_modules(stock.conv, stock.shuffle, nn.PReLU(2))
    with pytest.raises(ValueError, match="zero padding"):
        pyimg.nn.UpsampleBlock.from_modules(nn.Conv2d(3, 12, 3, padding=1, padding_mode="reflect"),
                                   stock.shuffle, stock.prelu)


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_compiles_fullgraph(training):
    stock = stock_block().train(training)
    fused = fused_copy(stock)
    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    y = compiled(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    expected = stock(x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("training", (True, False))
def test_keeps_a_channels_last_input_whose_strides_do_not_say_so(training):
    # channels_last by PyTorch's definition (is_contiguous ignores the size-1 H), though
    # suggest_memory_format reads its strides as NCHW: stock's convolution returned NCHW.
    x = torch.randn(8).as_strided((1, 2, 1, 4), (8, 1, 2, 2))
    block = pyimg.nn.UpsampleBlock(2, scale=2, kernel_size=1).train(training)
    y = block(x)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last)
