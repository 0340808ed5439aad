"""The Triton implicit-GEMM convolution as a torch custom op, with its gradient ops.

``torch.ops.pyimg.conv2d_triton``: one kernel with the whole epilogue (pyimg/triton/conv.py),
groups = 1. Backward: the epilogue's gradient (pyimg/ops/conv_autograd.py), then
``conv2d_input_grad_triton`` (stride 1: the forward kernel on the flipped weight; strided:
stock's transposed convolution with cuDNN's deterministic algorithms) and
``conv2d_weight_grad_triton`` (split-K GEMM summed in a fixed order,
pyimg/triton/conv_backward.py): no atomics anywhere, the same bits on every run.
"""

import torch

from pyimg._format import empty_like_format, output_memory_format
from pyimg.ops.conv_autograd import make_backward, make_setup_context, stock_conv_grads
from pyimg.ops.conv_checks import check_conv, op_geometry


@torch.library.custom_op("pyimg::conv2d_triton", mutates_args=())
def conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: list[int], padding: list[int], dilation: list[int],
                   scale: torch.Tensor | None, shift: torch.Tensor | None, activation: str,
                   prelu_weight: torch.Tensor | None, negative_slope: float,
                   residual: torch.Tensor | None, add_before_activation: bool,
                   upscale_factor: int) -> torch.Tensor:
    from pyimg.triton import conv as kernels

    _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                          prelu_weight, residual, upscale_factor)
    return kernels.conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                          prelu_weight, negative_slope, residual, add_before_activation,
                          upscale_factor, output_memory_format(x) == torch.channels_last)


def _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                          prelu_weight, residual, upscale_factor) -> tuple[int, int, int, int]:
    return check_conv(x, weight, bias, op_geometry(stride, padding, dilation, 1), scale, shift,
                      activation, prelu_weight, residual, upscale_factor)


@conv2d_triton.register_fake
def _(x, weight, bias, stride, padding, dilation, scale, shift, activation, prelu_weight,
      negative_slope, residual, add_before_activation, upscale_factor):
    shape = _checked_output_shape(x, weight, bias, stride, padding, dilation, scale, shift,
                                  activation, prelu_weight, residual, upscale_factor)
    return empty_like_format(shape, x)


@torch.library.custom_op("pyimg::conv2d_input_grad_triton", mutates_args=())
def _conv2d_input_grad_triton(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                              stride: list[int], padding: list[int],
                              dilation: list[int]) -> torch.Tensor:
    """dL/dx of conv2d_triton's convolution from dL/d(conv output), in x's memory format."""
    from pyimg.triton import conv_backward

    _check_output_grad(grad, x, weight, stride, padding, dilation)
    fmt = output_memory_format(x)
    if list(stride) == [1, 1]:
        return conv_backward.input_grad(grad, weight, padding, dilation,
                                        fmt == torch.channels_last)
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=True,
                     allow_tf32=cudnn.allow_tf32):
        grad_x, _ = stock_conv_grads(grad, x, weight, stride, padding, dilation, 1, True, False)
        return grad_x.contiguous(memory_format=fmt)


@_conv2d_input_grad_triton.register_fake
def _(grad, x, weight, stride, padding, dilation):
    _check_output_grad(grad, x, weight, stride, padding, dilation)
    return empty_like_format(x.shape, x)


@torch.library.custom_op("pyimg::conv2d_weight_grad_triton", mutates_args=())
def _conv2d_weight_grad_triton(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                               stride: list[int], padding: list[int],
                               dilation: list[int]) -> torch.Tensor:
    """dL/dweight of conv2d_triton's convolution from dL/d(conv output), laid out like
    weight."""
    from pyimg.triton import conv_backward

    _check_output_grad(grad, x, weight, stride, padding, dilation)
    return conv_backward.weight_grad(grad, x, weight, stride, padding, dilation)


@_conv2d_weight_grad_triton.register_fake
def _(grad, x, weight, stride, padding, dilation):
    _check_output_grad(grad, x, weight, stride, padding, dilation)
    return empty_like_format(weight.shape, weight)


def _check_output_grad(grad, x, weight, stride, padding, dilation) -> None:
    shape = _checked_output_shape(x, weight, None, stride, padding, dilation, None, None, "none",
                                  None, None, 1)
    if tuple(grad.shape) != shape or grad.dtype != x.dtype or grad.device != x.device:
        raise RuntimeError(f"expected the output gradient as a {x.dtype} tensor of shape "
                           f"{shape} on {x.device}, but got {grad.dtype} {tuple(grad.shape)} "
                           f"on {grad.device}")


_ARGUMENTS = ("x", "weight", "bias", "stride", "padding", "dilation", "scale", "shift",
              "activation", "prelu_weight", "negative_slope", "residual",
              "add_before_activation", "upscale_factor")


def _recompute(x, weight, bias, ctx):
    return conv2d_triton(x, weight, bias, ctx.stride, ctx.padding, ctx.dilation, None, None,
                         "none", None, 0.0, None, False, 1)


def _conv_grads(g, x, weight, ctx, needs):
    conv = (ctx.stride, ctx.padding, ctx.dilation)
    grad_x = _conv2d_input_grad_triton(g, x, weight, *conv) if needs["x"] else None
    grad_weight = _conv2d_weight_grad_triton(g, x, weight, *conv) if needs["weight"] else None
    return grad_x, grad_weight


conv2d_triton.register_autograd(make_backward(_ARGUMENTS, _recompute, _conv_grads),
                                setup_context=make_setup_context(_ARGUMENTS))
