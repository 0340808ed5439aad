"""pyimg.convert on models written like popular toolboxes write theirs (tests/convert/toolbox.py):
the patterns are fused wherever the forward has them, state_dicts keep their keys both ways,
and outputs, gradients and running statistics equal stock's in eval and in training."""

import copy
import io

import pytest
import torch
from convert.toolbox import TOOLBOX
from support import TOLERANCE

from pyimg.conversion import convert, convert_with_report

NAMES = sorted(TOOLBOX)


def assert_close_scaled(actual, expected, scale, relative=1e-4):
    """Equal within ``relative`` of ``scale`` (the largest magnitude among the values
    compared): gradients and batch statistics are sums whose order differs between fused and
    stock kernels, so a value that cancels to near zero (the gradient of a bias before a
    training-mode batch norm is zero up to rounding) carries the rounding of large terms."""
    torch.testing.assert_close(actual, expected, atol=relative * scale, rtol=relative)


def stock(name: str, seed: int = 0) -> torch.nn.Module:
    """The model with random weights and batch-norm statistics away from (0, 1)."""
    torch.manual_seed(seed)
    model = TOOLBOX[name][0]()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.3, 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def image(n=2, h=17, w=22, dtype=torch.float32):
    return torch.rand(n, 3, h, w, dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
def test_fuses_the_patterns_and_keeps_state_dict_keys(name):
    model = stock(name)
    converted, report = convert_with_report(model)
    fusions = {rule: n for rule, n in report.rules().items() if rule in TOOLBOX[name][1]}
    assert fusions == TOOLBOX[name][1], str(report)
    assert not report.untraced, str(report)
    assert list(converted.state_dict()) == list(model.state_dict())
    fresh = stock(name, seed=1)
    fresh.load_state_dict(converted.state_dict())
    converted.load_state_dict(stock(name, seed=2).state_dict())
    model.load_state_dict(converted.state_dict())
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_eval_outputs_equal_stock(name, dtype):
    model = stock(name).to(dtype)
    converted = convert(model)
    for x in (image(dtype=dtype), image(1, 33, 29, dtype)):
        with torch.no_grad():
            expected, actual = model(x), converted(x)
        if dtype == torch.bfloat16:  # one rounding fused against several: bf16's ulp at 1
            torch.testing.assert_close(actual, expected, atol=3e-2, rtol=3e-2)
        else:
            torch.testing.assert_close(actual, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("name", NAMES)
def test_training_outputs_gradients_and_statistics_equal_stock(name):
    model = stock(name).train()
    converted = convert(model)
    x = image()
    for _ in range(2):  # the second step sees the running statistics the first updated
        outputs, grads = [], []
        for net in (model, converted):
            xi = x.clone().requires_grad_()
            y = net(xi)
            outputs.append(y)
            grads.append(torch.autograd.grad((y * y).sum(), [xi, *net.parameters()]))
        assert_close_scaled(outputs[1], outputs[0], outputs[0].abs().max().item())
        scale = max(g.abs().max().item() for g in grads[0])
        for stock_grad, our_grad in zip(*grads, strict=True):
            assert_close_scaled(our_grad, stock_grad, scale)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value, msg=key)


@pytest.mark.parametrize("name", ["EDSR", "ResNet"])
def test_channels_last_input(name):
    model = stock(name)
    converted = convert(model)
    x = image().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x))


def test_converted_model_pickles_and_copies():
    model = stock("MSRResNet")
    converted = convert(model)
    buffer = io.BytesIO()
    torch.save(converted, buffer)
    buffer.seek(0)
    x = image()
    with torch.no_grad():
        expected = model(x)
        for copy_ in (torch.load(buffer, weights_only=False), copy.deepcopy(converted)):
            torch.testing.assert_close(copy_(x), expected)
            assert copy_.conv_first.weight is not converted.conv_first.weight
            copy_.load_state_dict(model.state_dict())


def test_compiled_converted_model_matches_eager():
    model = stock("EDSR")
    converted = convert(model)
    compiled = torch.compile(converted, backend="aot_eager", fullgraph=True)
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
