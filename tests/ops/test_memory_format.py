"""The memory-format rule every op follows (pyimg/ops/_common.py, csrc/ops/pixel_shuffle.cpp):
PyTorch's definition, also where raw strides mislead, and the same in the fake kernels."""

import pytest
import torch
import torch.nn.functional as F
from support import backend_params
from torch._subclasses.fake_tensor import FakeTensorMode

import pyimg
from pyimg._format import output_memory_format

CL = torch.channels_last


def channels_last_w1(n=2, c=4, h=13):
    """(n, c, h, 1) channels_last-contiguous by PyTorch's definition, with the W stride of an
    NCHW tensor: its raw strides (c*h, 1, c, 1) do not look channels_last."""
    return torch.randn(n * c * h).as_strided((n, c, h, 1), (c * h, 1, c, 1))


def channels_last_h1(n=2, c=4, w=6):
    """(n, c, 1, w) channels_last-contiguous with an odd stride on its size-1 H."""
    return torch.randn(n * c * w).as_strided((n, c, 1, w), (c * w, 1, 1, c))


def test_rule_is_pytorch_definition():
    for x in (channels_last_w1(), channels_last_h1()):
        assert x.is_contiguous(memory_format=CL) and not x.is_contiguous()
        assert output_memory_format(x) == CL
    assert output_memory_format(torch.randn(2, 3, 4, 5)) == torch.contiguous_format
    assert output_memory_format(torch.randn(2, 3, 4, 5).to(memory_format=CL)) == CL
    # Views: suggest_memory_format's reading of the strides.
    assert output_memory_format(torch.randn(2, 6, 4, 5).to(memory_format=CL)[:, ::2]) == CL
    assert output_memory_format(torch.randn(2, 6, 4, 5)[..., ::2]) == torch.contiguous_format
    # Both formats at once (one channel): suggest_memory_format's tie-break.
    one_channel = torch.randn(2, 1, 4, 5)
    assert output_memory_format(one_channel) == torch.contiguous_format
    assert output_memory_format(one_channel.to(memory_format=CL)) == CL


def _calls():
    """(name, input, f(x) through pyimg, f(x) through stock) for every op."""
    w1 = channels_last_w1()
    conv_weight = torch.randn(6, 4, 3, 1)
    depthwise_weight = torch.randn(4, 1, 3, 1)
    running = (torch.randn(4), torch.rand(4) + 0.5)
    prelu = torch.rand(4)
    pooled, indices = F.max_pool2d(torch.randn(2, 4, 13, 1), (2, 1), return_indices=True)
    pooled = pooled.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    indices = indices.contiguous(memory_format=CL)
    return [
        ("batch_norm_prelu train", w1,
         lambda x: pyimg.ops.batch_norm_prelu(x, *(t.clone() for t in running), None, None,
                                              prelu, True),
         lambda x: F.prelu(F.batch_norm(x, *(t.clone() for t in running), training=True),
                           prelu)),
        ("batch_norm_prelu eval", w1,
         lambda x: pyimg.ops.batch_norm_prelu(x, *running, prelu_weight=prelu),
         lambda x: F.prelu(F.batch_norm(x, *running), prelu)),
        ("conv2d", w1, lambda x: pyimg.ops.conv2d(x, conv_weight, padding=(1, 0)),
         lambda x: F.conv2d(x, conv_weight, padding=(1, 0))),
        ("depthwise conv2d", w1,
         lambda x: pyimg.ops.conv2d(x, depthwise_weight, None, 1, (2, 0), (2, 1), 4),
         lambda x: F.conv2d(x, depthwise_weight, None, 1, (2, 0), (2, 1), 4)),
        ("conv2d relu affine", w1,
         lambda x: pyimg.ops.conv2d(x, conv_weight, padding=(1, 0), scale=torch.ones(6),
                                    activation="relu"),
         lambda x: F.relu(F.conv2d(x, conv_weight, padding=(1, 0)))),
        ("max_pool2d", w1, lambda x: pyimg.ops.max_pool2d_with_indices(x, (2, 1))[0],
         lambda x: F.max_pool2d(x, (2, 1))),
        ("max_unpool2d", pooled,
         lambda x: pyimg.ops.max_unpool2d(x, indices, (2, 1), output_size=(13, 1)),
         lambda x: F.max_unpool2d(x, indices, (2, 1), output_size=(13, 1))),
        ("pixel_shuffle", w1, lambda x: pyimg.ops.pixel_shuffle(x, 1, activation="relu"),
         F.relu),
        ("pixel_unshuffle", channels_last_h1(), lambda x: pyimg.ops.pixel_unshuffle(x, 1),
         lambda x: x),
    ]


@pytest.mark.parametrize("param", [p for p in backend_params() if p.values[0][1] == "cpu"]
                         + [pytest.param(("torch", "cpu"), id="torch-cpu")])
@pytest.mark.parametrize("case", range(len(_calls())), ids=[c[0] for c in _calls()])
def test_channels_last_input_gives_channels_last_output(param, case):
    name, x, ours, stock = _calls()[case]
    assert x.is_contiguous(memory_format=CL) and not x.is_contiguous(), name
    with pyimg.use_backend(param[0]):
        y = ours(x)
        if param[0] != "torch":  # the reference reads values: no fake kernel there
            with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                assert ours(mode.from_tensor(x)).stride() == y.stride(), name
    torch.testing.assert_close(y, stock(x), atol=1e-5, rtol=1e-5)
    assert y.is_contiguous(memory_format=CL), (name, y.stride())


@pytest.mark.parametrize("param", [p for p in backend_params() if p.values[0][1] == "cpu"])
def test_one_channel_channels_last_keeps_its_format_real_and_fake(param):
    # One channel makes x contiguous in both formats; its strides say channels_last. A reshape
    # in the op restrided it to NCHW on the real path only, so real and fake disagreed.
    x = torch.randn(2, 1, 4, 6).as_strided((2, 1, 4, 6), (24, 1, 6, 1))
    assert output_memory_format(x) == CL
    for fn in (lambda t: pyimg.ops.pixel_unshuffle(t, 2),
               lambda t: pyimg.ops.pixel_shuffle(t, 1, activation="relu")):
        with pyimg.use_backend(param[0]):
            y = fn(x)
            with FakeTensorMode() as mode:
                fake = fn(mode.from_tensor(x))
        assert y.is_contiguous(memory_format=CL)
        assert fake.stride() == y.stride()
