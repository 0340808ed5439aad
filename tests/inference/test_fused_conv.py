"""FusedConv2d and FusedConvTranspose2d against the stock modules they replace: every
epilogue, BatchNorm folded or not, both layouts, batch 0 and 1, odd sizes, fp32 and bf16."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pyimg.inference import epilogue, few_outputs, winograd
from pyimg.inference.capability import onednn_missing
from pyimg.inference.fuse_modules import fused_conv
from pyimg.inference.fused_conv import FusedConvTranspose2d, prelu_channels_

pytestmark = pytest.mark.skipif(onednn_missing() is not None, reason=str(onednn_missing()))

# fp32: the oneDNN convolution sums in another order than stock's; bf16: two roundings of
# the output and bf16 weights against fp32 ones.
TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.bfloat16: dict(rtol=3e-2,
                                                                             atol=3e-2)}

ACTIVATIONS = {
    "none": None,
    "relu": nn.ReLU(),
    "leaky_relu": nn.LeakyReLU(0.2),
    "tanh": nn.Tanh(),
    "sigmoid": nn.Sigmoid(),
    "silu": nn.SiLU(),
    "gelu": nn.GELU(),
    "relu6": nn.ReLU6(),
    "hardswish": nn.Hardswish(),
    "prelu_1": nn.PReLU(1, 0.3),
    "prelu_c": nn.PReLU(6),
}


def _stock_and_fused(act_name, with_bn, add, dtype, groups=1, stride=1, dilation=1):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=stride, padding=dilation, dilation=dilation,
                     groups=groups)
    bn = nn.BatchNorm2d(6).eval() if with_bn else None
    if bn is not None:
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
    act = ACTIVATIONS[act_name]
    if isinstance(act, nn.PReLU):
        with torch.no_grad():
            act.weight.uniform_(0.05, 0.5)
    post = epilogue.IDENTITY if act is None else epilogue.from_module(act)
    fused = fused_conv(conv, bn, post, dtype, add=add)
    stock = nn.Sequential(conv, *(m for m in (bn, act) if m is not None)).eval()
    return stock, fused


def _check(stock, fused, x, dtype, other=None):
    with torch.no_grad():
        if other is None:
            expected = stock(x)
        else:  # act(bn(conv(x)) + other): the activation, if any, is stock's last module
            act = stock[-1] if isinstance(stock[-1], nn.ReLU) else nn.Identity()
            body = stock[:-1] if isinstance(stock[-1], nn.ReLU) else stock
            expected = act(body(x) + other)
        x_in = x.to(dtype)
        actual = fused(x_in) if other is None else fused(x_in, other.to(dtype))
    assert actual.shape == expected.shape
    assert actual.dtype == dtype
    assert actual.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(actual.float(), expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("act_name", list(ACTIVATIONS))
def test_unary_epilogues(act_name, dtype):
    stock, fused = _stock_and_fused(act_name, with_bn=True, add=False, dtype=dtype)
    _check(stock, fused, torch.randn(1, 4, 7, 11), dtype)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("batch", [0, 1, 2])
@pytest.mark.parametrize("geometry", [dict(), dict(stride=2), dict(dilation=2),
                                      dict(groups=2)], ids=["plain", "stride2", "dilation2",
                                                             "groups2"])
def test_geometry_layout_batch(geometry, batch, layout):
    stock, fused = _stock_and_fused("relu", with_bn=False, add=False, dtype=torch.float32,
                                    **geometry)
    x = torch.randn(batch, 4, 9, 13)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    _check(stock, fused, x, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("act_name", ["none", "relu"])
@pytest.mark.parametrize("batch", [0, 1])
def test_residual_sum(act_name, batch, dtype):
    stock, fused = _stock_and_fused(act_name, with_bn=True, add=True, dtype=dtype)
    x, other = torch.randn(batch, 4, 7, 9), torch.randn(batch, 6, 7, 9)
    _check(stock, fused, x, dtype, other)


def test_residual_sum_broadcasts_like_stock():
    # A summand of another shape is added after the convolution, with stock broadcasting.
    stock, fused = _stock_and_fused("relu", with_bn=False, add=True, dtype=torch.float32)
    _check(stock, fused, torch.randn(2, 4, 7, 9), torch.float32, torch.randn(1, 6, 1, 9))


def test_sum_refuses_activation_onednn_cannot_fuse():
    conv = nn.Conv2d(2, 2, 3)
    with pytest.raises(ValueError, match="fused sum"):
        fused_conv(conv, None, epilogue.Activation("tanh"), add=True)


def test_wrong_channel_count_is_an_error():
    _, fused = _stock_and_fused("none", with_bn=False, add=False, dtype=torch.float32)
    with pytest.raises(RuntimeError):
        fused(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("batch", [0, 1])
def test_conv_transpose(batch, dtype):
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(6, 4, 2, stride=2).eval()
    fused = FusedConvTranspose2d(conv, dtype)
    x = torch.randn(batch, 6, 5, 7)
    with torch.no_grad():
        expected, actual = conv(x), fused(x.to(dtype))
    torch.testing.assert_close(actual.float(), expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (0, 5, 3, 7), (1, 1, 4, 4), (1, 5, 1, 1)])
def test_prelu_channels_matches_stock(shape, layout, dtype):
    x = torch.randn(shape).to(dtype)
    x[..., 0] = float("nan") if x.numel() else 0.0
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.rand(shape[1]) + 0.05).to(dtype).float()  # exact in dtype: same products
    expected = F.prelu(x, weight.to(dtype))
    actual = prelu_channels_(x.clone(memory_format=torch.preserve_format), weight)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)


def test_prelu_channels_rejects_bad_input():
    with pytest.raises(RuntimeError, match="contiguous"):
        prelu_channels_(torch.randn(1, 3, 4, 4).transpose(2, 3), torch.ones(3))
    with pytest.raises(RuntimeError, match="weight must be float32 with 3"):
        prelu_channels_(torch.randn(1, 3, 4, 4), torch.ones(2))


FEW_OUTPUTS = [(32, 4, 3, 1), (64, 3, 9, 4), (16, 1, 1, 0), (48, 2, 5, 0), (32, 3, 3, 2)]


@pytest.mark.skipif(not few_outputs._cpu_fits(), reason="needs AVX-512 and pyimg's extension")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("act_name", ["none", "tanh", "prelu_c", "leaky_relu"])
@pytest.mark.parametrize("shape", FEW_OUTPUTS, ids=lambda s: "{}-{}-k{}-p{}".format(*s))
def test_few_outputs_kernel(shape, act_name, dtype):
    # pyimg's kernel for the last layer: odd sizes, borders wider than the image, batch 0-2.
    c_in, c_out, k, p = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, k, padding=p)
    act = {"none": None, "tanh": nn.Tanh(), "prelu_c": nn.PReLU(c_out, 0.2),
           "leaky_relu": nn.LeakyReLU(0.3)}[act_name]
    post = epilogue.IDENTITY if act is None else epilogue.from_module(act)
    fused = fused_conv(conv, None, post, dtype)
    assert fused.few_outputs_weight is not None
    stock = nn.Sequential(conv, *(m for m in (act,) if m is not None)).eval()
    # the last: the smallest input the kernel fits, every output pixel a border pixel
    sizes = ((0, 7, 13), (1, 7, 13), (1, 7, 13), (2, max(k - 2 * p, 1), k + 1))
    for i, size in enumerate(sizes):
        x = torch.randn(size[0], c_in, *size[1:])
        _check(stock, fused, x.contiguous(memory_format=torch.channels_last) if i % 2 else x,
               dtype)


WINOGRAD = [(16, 16, 1), (64, 32, 1), (32, 48, 0), (16, 32, 2)]


@pytest.mark.skipif(not winograd._cpu_fits(), reason="needs AVX-512 and pyimg's extension")
@pytest.mark.parametrize("epilogue_name", ["none", "tanh", "prelu_c", "leaky_relu", "sum",
                                           "sum+relu"])
@pytest.mark.parametrize("shape", WINOGRAD, ids=lambda s: "{}-{}-p{}".format(*s))
def test_winograd_kernel(shape, epilogue_name):
    # F(2x2, 3x3): odd sizes (partial tiles), patches reaching past every border, batch 0-2.
    c_in, c_out, p = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, 3, padding=p)
    act = {"none": None, "tanh": nn.Tanh(), "prelu_c": nn.PReLU(c_out, 0.2),
           "leaky_relu": nn.LeakyReLU(0.3), "sum": None, "sum+relu": nn.ReLU()}[epilogue_name]
    post = epilogue.IDENTITY if act is None else epilogue.from_module(act)
    add = epilogue_name.startswith("sum")
    fused = fused_conv(conv, None, post, torch.float32, add=add)
    assert fused.kernel == "winograd"
    stock = nn.Sequential(conv, *(m for m in (act,) if m is not None)).eval()
    sizes = ((0, 7, 13), (1, 7, 13), (2, 3 - 2 * p if p < 2 else 1, 4), (1, 16, 9))
    for i, size in enumerate(sizes):
        x = torch.randn(size[0], c_in, *size[1:])
        if i % 2:
            x = x.contiguous(memory_format=torch.channels_last)
        out = [size[0], c_out, size[1] + 2 * p - 2, size[2] + 2 * p - 2]
        _check(stock, fused, x, torch.float32, torch.randn(out) if add else None)


@pytest.mark.skipif(not winograd._cpu_fits(), reason="needs AVX-512 and pyimg's extension")
def test_winograd_op_takes_bf16():
    # The op computes bf16 inputs in fp32 (the CPU path routes bf16 to oneDNN instead).
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 16, 3, padding=1)
    x = torch.randn(2, 32, 9, 11).bfloat16()
    y = torch.ops.pyimg.conv2d_winograd(x, winograd.pack(conv.weight), conv.bias.detach(),
                                        [1, 1], "none", 0.0, None, None)
    with torch.no_grad():
        expected = conv(x.float())
    torch.testing.assert_close(y.float(), expected, **TOLERANCE[torch.bfloat16])
