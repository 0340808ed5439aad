"""Each pyimg op's ONNX translation (onnxruntime) and ATen decomposition against the op itself,
over its options: biases, every activation, scale / shift, residual before and after, the
pixel-shuffled store, asymmetric and dilated convolutions, depthwise, ceil-mode and dilated
pooling, flat and compact indices, disjoint and overlapping unpooling; the Triton family
through the forced triton backend."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

import pyimg
import pyimg.export
from pyimg import ops


def to_onnx(model, args, min_size=4):
    with io.StringIO() as log:
        sys.stdout, stdout = log, sys.stdout  # the exporter prints its progress
        try:
            program = pyimg.export.to_onnx(model, args, min_size=min_size)
        finally:
            sys.stdout = stdout
    return onnxruntime.InferenceSession(program.model_proto.SerializeToString())


def check_onnx(model, channels: int, shapes, min_size=4, atol=1e-5):
    """Export model (eval) for 4-D inputs of ``channels`` channels and compare onnxruntime with
    eager at each (batch, height, width) of ``shapes`` (the first is the example)."""
    torch.manual_seed(0)
    model = model.eval()
    n, h, w = shapes[0]
    session = to_onnx(model, (torch.randn(n, channels, h, w),), min_size)
    for n, h, w in shapes[1:]:
        x = torch.randn(n, channels, h, w)
        with torch.no_grad():
            expected = model(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = session.run(None, {"input_0": x.numpy()})
        for a, e in zip(actual, expected, strict=True):
            assert a.dtype == e.numpy().dtype and a.shape == tuple(e.shape)
            np.testing.assert_allclose(a, e.numpy(), atol=atol, rtol=1e-4)


class PixelShuffles(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(16))
        self.weight = nn.Parameter(torch.rand(4))

    def forward(self, x):
        return (ops.pixel_shuffle(x, 2, bias=self.bias, activation="prelu", weight=self.weight),
                ops.pixel_shuffle(x, 2, activation="leaky_relu", negative_slope=0.2),
                ops.pixel_shuffle(x, 2, bias=self.bias[:4], activation="relu"),
                ops.pixel_shuffle(x, 4, activation="tanh"),
                ops.pixel_shuffle(x, 1, activation="sigmoid"))


def test_pixel_shuffle():
    check_onnx(PixelShuffles(), 16, [(2, 6, 8), (1, 5, 9), (3, 12, 6)])


class Unshuffle(nn.Module):
    def forward(self, x):
        return ops.pixel_unshuffle(x, 2), ops.pixel_unshuffle(x, 1)


def test_pixel_unshuffle():
    half_h, half_w = torch.export.Dim("half_h", min=2), torch.export.Dim("half_w", min=2)
    x = torch.randn(2, 3, 8, 10)
    program = torch.export.export(Unshuffle(), (x,),
                                  dynamic_shapes=({2: 2 * half_h, 3: 2 * half_w},))
    with io.StringIO() as log:
        sys.stdout, stdout = log, sys.stdout
        try:
            onnx_program = torch.onnx.export(program, (x,), dynamo=True,
                                             custom_translation_table=pyimg.export.TRANSLATIONS)
        finally:
            sys.stdout = stdout
    session = onnxruntime.InferenceSession(onnx_program.model_proto.SerializeToString())
    x = torch.randn(2, 3, 6, 12)
    for actual, expected in zip(session.run(None, {"x": x.numpy()}), Unshuffle()(x),
                                strict=True):
        np.testing.assert_array_equal(actual, expected.numpy())


class BatchNorms(nn.Module):
    def __init__(self, c=5):
        super().__init__()
        self.mean, self.var = torch.randn(c) * 0.1, torch.rand(c) + 0.5
        self.weight, self.bias = torch.rand(c) + 0.5, torch.randn(c) * 0.1
        self.prelu = torch.rand(c)

    def forward(self, x):
        residual = x.flip(-1)
        return (ops.batch_norm_prelu(x, self.mean, self.var, self.weight, self.bias,
                                     self.prelu),
                ops.batch_norm_prelu(x, self.mean, self.var, None, None, self.prelu[:1]),
                ops.batch_norm_add(x, residual, self.mean, self.var, self.weight, self.bias),
                # Batch statistics (no running ones to update): batch_norm_stats in the graph.
                ops.batch_norm_prelu(x, None, None, self.weight, self.bias, self.prelu,
                                     training=True))


def test_batch_norm_prelu_and_add():
    check_onnx(BatchNorms(), 5, [(2, 6, 7), (1, 5, 9), (4, 11, 4)], atol=2e-5)


class Convolutions(nn.Module):
    """conv2d's epilogue options on the cpu backend (stock convolution + bn_prelu /
    pixel_shuffle, and the direct depthwise kernel for dilated NCHW depthwise)."""

    def __init__(self, c=4):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4 * c, c, 3, 3) * 0.2)
        self.even = nn.Parameter(torch.randn(c, c, 2, 2) * 0.3)
        self.depthwise = nn.Parameter(torch.randn(c, 1, 3, 3) * 0.3)
        self.b = nn.Parameter(torch.randn(4 * c) * 0.1)
        self.scale, self.shift = torch.rand(4 * c) + 0.5, torch.randn(4 * c) * 0.1
        self.prelu = nn.Parameter(torch.rand(c))

    def forward(self, x):
        w, b, s, t = self.w, self.b, self.scale, self.shift
        c = x.shape[1]
        return (
            ops.conv2d(x, w, b, padding=1, upscale_factor=2, activation="prelu",
                       prelu_weight=self.prelu),
            ops.conv2d(x, w, b, padding=1, scale=s, shift=t, activation="leaky_relu",
                       negative_slope=0.1),
            ops.conv2d(x, w[:c], b[:c], padding=1, scale=s[:c], shift=t[:c], residual=x,
                       activation="relu", add_before_activation=True),
            ops.conv2d(x, w[:c], None, padding=1, residual=x, activation="prelu",
                       prelu_weight=self.prelu[:1]),
            ops.conv2d(x, self.even, None, padding="same"),  # asymmetric padding
            ops.conv2d(x, w[:c], b[:c], stride=2, padding=2, dilation=2),
            ops.conv2d(x, self.depthwise, None, padding=2, dilation=2, groups=c,
                       scale=s[:c], shift=t[:c], activation="relu", residual=x))


def test_conv2d_epilogues():
    check_onnx(Convolutions(), 4, [(2, 7, 8), (1, 5, 9), (3, 10, 6)])


def test_conv2d_epilogues_on_the_triton_family():
    # The exported graph holds conv2d_triton, depthwise_conv2d_triton, bn_prelu_triton...
    with pyimg.use_backend("triton"):
        check_onnx(Convolutions(), 4, [(2, 7, 8), (1, 5, 9)])


class Pools(nn.Module):
    def forward(self, x):
        flat, flat_idx = ops.max_pool2d_with_indices(x, 3, 2, 1, ceil_mode=True)
        dilated, dilated_idx = ops.max_pool2d_with_indices(x, 2, 1, 0, dilation=2)
        pairs, compact = ops.max_pool2d_with_indices(x, 2, compact=True)
        overlap, overlap_idx = ops.max_pool2d_with_indices(x, 3, 2, 1, compact=True)
        size = x.shape[-2:]
        return (flat, flat_idx, dilated, dilated_idx, pairs, compact, overlap_idx,
                ops.max_unpool2d(pairs * 2, compact, 2, output_size=size),
                ops.max_unpool2d(flat, flat_idx, 3, 2, 1, output_size=size),
                ops.max_unpool2d(overlap, overlap_idx, 3, 2, 1, output_size=size))


def test_max_pool_and_unpool():
    check_onnx(Pools(), 3, [(2, 8, 9), (1, 7, 11), (2, 12, 6)])


def test_adaptive_average_pooling_at_any_size():
    # Not a pyimg op: the stock translation computes wrong values for sizes other than the
    # example's (torch 2.14); pyimg's table replaces it.
    check_onnx(nn.AdaptiveAvgPool2d((4, 3)), 2, [(2, 5, 6), (1, 3, 2), (2, 8, 8), (1, 9, 7)],
               min_size=2)


@pytest.mark.parametrize("model,channels", [(PixelShuffles(), 16), (BatchNorms(), 5),
                                            (Convolutions(), 4), (Pools(), 3)],
                         ids=["shuffle", "batch_norm", "conv", "pool"])
def test_decompositions_equal_the_ops(model, channels):
    torch.manual_seed(1)
    x = torch.randn(2, channels, 8, 10)
    program = pyimg.export.export(model.eval(), (x,), min_size=4)
    plain = pyimg.export.decompose(program)
    assert pyimg.export.pyimg_ops(plain) == {}
    x = torch.randn(3, channels, 9, 6)
    with torch.no_grad():
        for a, e in zip(plain.module()(x), model(x), strict=True):
            torch.testing.assert_close(a, e, atol=2e-5, rtol=1e-4)


def test_decomposed_program_runs_without_pyimg(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU(),
                          nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2), nn.ReLU())
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 1.5)
    converted = pyimg.convert(model.eval())
    x = torch.randn(2, 3, 6, 7)
    program = pyimg.export.export(converted, (x,), min_size=2)
    assert set(pyimg.export.pyimg_ops(program)) == {"bn_prelu", "pixel_shuffle"}
    pyimg.export.save(pyimg.export.decompose(program), tmp_path / "plain.pt2")
    x = torch.randn(1, 3, 9, 4)
    with torch.no_grad():
        torch.save({"x": x, "expected": model(x)}, tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        program = torch.export.load({str(tmp_path / "plain.pt2")!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        torch.testing.assert_close(program.module()(io["x"]), io["expected"])
        assert not any(name.startswith("pyimg") for name in sys.modules)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
