"""pyimg.nn.ResidualBlock against the stock modules it replaces, in training and eval."""

import copy

import pytest
import torch
from support import LOW_PRECISION, TOLERANCE, assert_lowp_close, backend_params, step_each
from torch import nn

import pyimg


class StockBlock(nn.Module):
    """SRResNet's block from stock modules, under pyimg.nn.ResidualBlock's attribute names."""

    def __init__(self, channels=4, prelu_parameters=1, momentum=0.1, **bn):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels, momentum=momentum, **bn)
        self.prelu = nn.PReLU(prelu_parameters)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels, momentum=momentum, **bn)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.5, 0.5)
            for bn_ in (self.bn1, self.bn2):
                if bn_.weight is not None:
                    bn_.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


def fused_copy(stock):
    return pyimg.nn.ResidualBlock.from_modules(stock.conv1, stock.bn1, stock.prelu, stock.conv2,
                                               stock.bn2)


def trained_pair(steps=2, **kwargs):
    """A stock block and its fused copy after the same training steps (running statistics
    away from their initial values)."""
    torch.manual_seed(0)
    stock = StockBlock(**kwargs)
    fused = fused_copy(stock)
    for model in (stock, fused):
        torch.manual_seed(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            model(torch.randn(3, 4, 5, 6) * 2 + 1).square().mean().backward()
            opt.step()
    return stock, fused


# Sums in another order differ by a few ulp, and the optimizer steps carry that forward.
STEP_TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


@pytest.mark.parametrize("momentum", (0.1, None), ids=("momentum", "cumulative"))
@pytest.mark.parametrize("prelu_parameters", (1, 4))
@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last),
                         ids=("nchw", "channels_last"))
def test_training_steps_match_stock(momentum, prelu_parameters, memory_format):
    torch.manual_seed(0)
    stock = StockBlock(prelu_parameters=prelu_parameters, momentum=momentum)
    fused = fused_copy(stock)
    assert fused.training
    stock_opt = torch.optim.SGD(stock.parameters(), lr=0.05, momentum=0.9)
    fused_opt = torch.optim.SGD(fused.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        x = (torch.randn(2, 4, 5, 6) * 2 + step).contiguous(memory_format=memory_format)
        grad = torch.randn(2, 4, 5, 6)
        outputs, grads = step_each(((stock, stock_opt), (fused, fused_opt)), x, grad)
        torch.testing.assert_close(outputs[1], outputs[0], **STEP_TOLERANCE)
        assert outputs[1].is_contiguous(memory_format=memory_format)
        for ours, expected in zip(*grads, strict=True):
            torch.testing.assert_close(ours, expected, **STEP_TOLERANCE)
    assert fused.state_dict().keys() == stock.state_dict().keys()
    for name, value in stock.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], value, **STEP_TOLERANCE, msg=name)
    assert fused.bn1.num_batches_tracked.item() == 3


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("memory_format", (torch.contiguous_format, torch.channels_last),
                         ids=("nchw", "channels_last"))
def test_eval_folds_batch_norm_and_matches_stock(backend, memory_format):
    name, device = backend
    stock, fused = trained_pair(prelu_parameters=4)
    stock.eval().to(device)
    fused.eval().to(device)
    x = torch.randn(2, 4, 7, 5, device=device).contiguous(memory_format=memory_format)
    x.requires_grad_()
    with pyimg.use_backend(name):
        y, expected = fused(x), stock(x)
    torch.testing.assert_close(y, expected, **STEP_TOLERANCE)
    assert y.is_contiguous(memory_format=memory_format)
    # With gradients on, the fold is recomputed, so BatchNorm's parameters get theirs.
    grad = torch.randn_like(y)
    with pyimg.use_backend(name):
        ours = torch.autograd.grad(y, [x, *fused.parameters()], grad)
    theirs = torch.autograd.grad(expected, [x, *stock.parameters()], grad)
    for g, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g, e, **STEP_TOLERANCE)
    with torch.no_grad(), pyimg.use_backend(name):
        torch.testing.assert_close(fused.fuse()(x), expected, **STEP_TOLERANCE)


def test_fused_folds_are_never_stale():
    stock, fused = trained_pair()
    stock.eval()
    fused.eval().fuse()
    x = torch.randn(2, 4, 5, 5)
    other, _ = trained_pair(steps=3)
    fused.load_state_dict(other.state_dict())  # drops the cached folds
    with torch.no_grad():
        torch.testing.assert_close(fused(x), other.eval()(x), **STEP_TOLERANCE)
        fused.fuse().train()  # a training step changes the running statistics
        fused(x * 3 + 2)
        fused.eval()
        stock.load_state_dict(fused.state_dict())
        torch.testing.assert_close(fused(x), stock(x), **STEP_TOLERANCE)
        x = x.double()  # to() drops the cache too: float32 folds would miss this tolerance
        torch.testing.assert_close(fused.fuse().double()(x), stock.double()(x),
                                   **TOLERANCE[torch.float64])


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_low_precision_within_twice_stock_error(dtype, training):
    stock, _ = trained_pair()
    stock.train(training)
    x = torch.randn(2, 4, 6, 6)
    reference = copy.deepcopy(stock).double()(x.double()).float()
    lowp = copy.deepcopy(stock).to(dtype)
    fused = fused_copy(lowp)
    with torch.no_grad():
        assert_lowp_close(fused(x.to(dtype)), lowp(x.to(dtype)), reference)


def test_float64_matches_stock_tightly():
    stock, fused = trained_pair()
    fused.load_state_dict(stock.state_dict())  # not just equal up to float32 training steps
    stock.double().eval()
    fused.double().eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(fused(x), stock(x), **TOLERANCE[torch.float64])


def test_batch_of_one():
    stock, fused = trained_pair()
    # One value per channel: BatchNorm's degenerate case raises as stock does.
    x = torch.randn(1, 4, 1, 1)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel") as expected:
        stock(x)
    with pytest.raises(ValueError) as ours:
        fused(x)
    assert str(ours.value) == str(expected.value)
    # One image of several pixels is a valid batch.
    x = torch.randn(1, 4, 3, 2)
    torch.testing.assert_close(fused(x), stock(x), **STEP_TOLERANCE)


def test_batch_norm_without_running_stats_matches_stock():
    for kwargs in ({"affine": False}, {"track_running_stats": False}):
        torch.manual_seed(0)
        stock = StockBlock(**kwargs)
        fused = fused_copy(stock)
        for training in (True, False):
            stock.train(training)
            fused.train(training)
            x = torch.randn(2, 4, 3, 5)
            torch.testing.assert_close(fused(x), stock(x), **STEP_TOLERANCE, msg=str(kwargs))


def test_state_dict_loads_both_ways_and_from_modules_copies():
    stock, _ = trained_pair()
    fused = pyimg.nn.ResidualBlock(4)
    fused.load_state_dict(stock.state_dict())
    fresh = StockBlock()
    fresh.load_state_dict(fused.state_dict())
    for name, value in stock.state_dict().items():
        assert torch.equal(fused.state_dict()[name], value), name
        assert torch.equal(fresh.state_dict()[name], value), name
    copied = fused_copy(stock)
    with torch.no_grad():
        copied.conv1.weight.zero_()
    assert stock.conv1.weight.abs().sum() > 0


def test_from_modules_rejects_what_it_cannot_fuse():
    stock = StockBlock()
    parts = [stock.conv1, stock.bn1, stock.prelu, stock.conv2, stock.bn2]
    with pytest.raises(TypeError, match="PReLU"):
        pyimg.nn.ResidualBlock.from_modules(*parts[:2], nn.ReLU(), *parts[3:])
    for conv in (nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3, padding=1, stride=2),
                 nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Conv2d(4, 5, 1)):
        with pytest.raises(ValueError, match="shape"):
            pyimg.nn.ResidualBlock.from_modules(conv, *parts[1:])
    with pytest.raises(ValueError, match="sizes"):
        pyimg.nn.ResidualBlock.from_modules(*parts[:2], nn.PReLU(3), *parts[3:])


@pytest.mark.parametrize("training", (True, False), ids=("train", "eval"))
def test_compiles_fullgraph(training):
    stock, fused = trained_pair()
    stock.train(training)
    fused.train(training)
    compiled = torch.compile(fused, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 4, 5, 6, requires_grad=True)
    y = compiled(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    expected = stock(x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(y, expected, **STEP_TOLERANCE)
    torch.testing.assert_close(grad, expected_grad, **STEP_TOLERANCE)
    if training:
        torch.testing.assert_close(fused.bn2.running_var, stock.bn2.running_var)


@pytest.mark.parametrize("training", (True, False))
def test_keeps_a_channels_last_input_whose_strides_do_not_say_so(training):
    # channels_last by PyTorch's definition (is_contiguous ignores the size-1 H), though
    # suggest_memory_format reads its strides as NCHW: stock's convolution returned NCHW.
    x = torch.randn(8).as_strided((1, 2, 1, 4), (8, 1, 2, 2))
    block = pyimg.nn.ResidualBlock(2, kernel_size=1).train(training)
    y = block(x)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last)
