"""Depthwise convolution (groups = C_in, weight (C_out, 1, KH, KW)) with the conv epilogue,
no pixel shuffle: ``torch.ops.pyimg.depthwise_conv2d`` (C++ kernels for CPU and CUDA,
csrc/ops/*/depthwise_conv_kernel.*) and ``torch.ops.pyimg.depthwise_conv2d_triton``.

A GEMM tile wastes almost all its work here (K = KH * KW per output), so every backend is a
direct convolution: each output element sums its own taps in a fixed order, then the
epilogue runs on the value in registers. Backward (pyimg/ops/conv_autograd.py): the
epilogue's gradient, then stock ``aten.convolution_backward`` with groups for x and weight.
"""

import torch

from pyimg._format import empty_like_format, output_memory_format
from pyimg.ops._common import check_4d
from pyimg.ops._registry import ByBackend, Op, register
from pyimg.ops.conv_autograd import make_backward, make_setup_context, stock_conv_grads
from pyimg.ops.conv_checks import check_conv, op_geometry

_ARGUMENTS = ("x", "weight", "bias", "stride", "padding", "dilation", "scale", "shift",
              "activation", "prelu_weight", "negative_slope", "residual",
              "add_before_activation")


def _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                          prelu_weight, residual) -> tuple[int, int, int, int]:
    # The C++ op's checks (the same faults; stock F.conv2d's messages where those differ).
    check_4d(x, "depthwise_conv2d")
    geometry = op_geometry(stride, padding, dilation, x.shape[1])
    return check_conv(x, weight, bias, geometry, scale, shift, activation, prelu_weight,
                      residual, 1)


@torch.library.custom_op("pyimg::depthwise_conv2d_triton", mutates_args=())
def depthwise_conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            stride: list[int], padding: list[int], dilation: list[int],
                            scale: torch.Tensor | None, shift: torch.Tensor | None,
                            activation: str, prelu_weight: torch.Tensor | None,
                            negative_slope: float, residual: torch.Tensor | None,
                            add_before_activation: bool) -> torch.Tensor:
    from pyimg.triton import depthwise_conv as kernels

    shape = _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift,
                                  activation, prelu_weight, residual)
    return kernels.depthwise_conv2d(x, weight, bias, stride, padding, dilation, scale, shift,
                                    activation, prelu_weight, negative_slope, residual,
                                    add_before_activation, shape,
                                    output_memory_format(x) == torch.channels_last)


def _fake(x, weight, bias, stride, padding, dilation, scale, shift, activation, prelu_weight,
          negative_slope, residual, add_before_activation):
    shape = _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift,
                                  activation, prelu_weight, residual)
    return empty_like_format(shape, x)


def _conv_grads(g, x, weight, ctx, needs):
    return stock_conv_grads(g, x, weight, ctx.stride, ctx.padding, ctx.dilation, x.shape[1],
                            needs["x"], needs["weight"])


def _family(suffix: str) -> Op:
    name = f"depthwise_conv2d{suffix}"
    op = Op(name)

    def recompute(x, weight, bias, ctx):
        return op(x, weight, bias, ctx.stride, ctx.padding, ctx.dilation, None, None, "none",
                  None, 0.0, None, False)

    register(name, _fake, make_backward(_ARGUMENTS, recompute, _conv_grads),
             make_setup_context(_ARGUMENTS))
    return op


OPS = ByBackend(_family)
