"""pyimg's ops written in ATen ops, for ``ExportedProgram.run_decompositions``: a program
decomposed with ``DECOMPOSITIONS`` holds no pyimg op, so it loads and runs where pyimg (or its
compiled extension) is not installed. Each takes its op's arguments; the stock-op references
of pyimg/ops compute it, in the op's epilogue order and with pyimg's rules (compact indices,
the largest value winning a position several unpool indices name)."""

import torch
import torch.nn.functional as F

from pyimg._format import accumulate_dtype, output_memory_format
from pyimg.export.ops import by_op
from pyimg.ops.conv import conv2d_reference
from pyimg.ops.max_pool import (
    PoolGeometry,
    _winners,
    flat_from_compact,
    max_pool2d_reference,
    pool_geometry,
)
from pyimg.ops.pixel_shuffle import pixel_shuffle_reference, pixel_unshuffle_reference


def pixel_shuffle(x, upscale_factor, bias=None, activation="none", weight=None,
                  negative_slope=0.01):
    return pixel_shuffle_reference(x, upscale_factor, bias, activation, weight, negative_slope)


def pixel_unshuffle(x, downscale_factor):
    return pixel_unshuffle_reference(x, downscale_factor)


def bn_prelu(x, mean, invstd, weight=None, bias=None, prelu_weight=None, residual=None,
             training=False, relu=False):
    view = (1, -1, 1, 1)
    z = (x.to(mean.dtype) - mean.view(view)) * invstd.view(view)
    if weight is not None:
        z = z * weight.view(view)
    if bias is not None:
        z = z + bias.view(view)
    if prelu_weight is not None:
        z = torch.where(z > 0, z, z * prelu_weight.to(z.dtype).view(view))
    if relu:
        z = torch.relu(z)
    if residual is not None:
        z = z + residual
    return z.to(x.dtype).contiguous(memory_format=output_memory_format(x))


def batch_norm_stats(x):
    var, mean = torch.var_mean(x.to(accumulate_dtype(x)), dim=(0, 2, 3), correction=0)
    return mean, var


def _conv(x, weight, bias, stride, padding, dilation, groups, scale, shift, activation,
          prelu_weight, negative_slope, residual, add_before_activation, upscale_factor):
    top, bottom, left, right = padding
    pads = (top, left)
    if top != bottom or left != right:  # ATen pads both sides alike
        x, pads = F.pad(x, (left, right, top, bottom)), (0, 0)
    return conv2d_reference(x, weight, bias, stride, pads, dilation, groups, scale=scale,
                            shift=shift, activation=activation, prelu_weight=prelu_weight,
                            negative_slope=negative_slope, residual=residual,
                            add_before_activation=add_before_activation,
                            upscale_factor=upscale_factor)


def conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation, prelu_weight,
           negative_slope, residual, add_before_activation, upscale_factor):
    return _conv(x, weight, bias, stride, padding, dilation, 1, scale, shift, activation,
                 prelu_weight, negative_slope, residual, add_before_activation, upscale_factor)


def depthwise_conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                     prelu_weight, negative_slope, residual, add_before_activation):
    return _conv(x, weight, bias, stride, padding, dilation, x.shape[1], scale, shift,
                 activation, prelu_weight, negative_slope, residual, add_before_activation, 1)


def max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode, compact):
    g = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, compact)
    return max_pool2d_reference(x, g, ceil_mode, compact)


def max_unpool2d(x, indices, kernel_size, stride, padding, output_size, compact):
    (kh, kw), (sh, sw), (ph, pw), (height, width) = kernel_size, stride, padding, output_size
    g = PoolGeometry(kh, kw, sh, sw, ph, pw, 1, 1, height, width, *x.shape[2:])
    # The index check of max_unpool2d_reference needs a value at trace time: an index out of
    # the plane makes the scatter below raise instead.
    flat = flat_from_compact(indices, g) if compact else indices
    planes = x.shape[0] * x.shape[1]
    idx, values = flat.reshape(planes, -1), x.reshape(planes, -1)
    target = torch.where(_winners(values, idx, height * width), idx, height * width)
    out = torch.zeros(planes, height * width + 1, dtype=x.dtype, device=x.device)
    out = out.scatter(1, target, values)[:, :-1]
    return out.reshape(*x.shape[:2], height, width).contiguous(
        memory_format=output_memory_format(x))


DECOMPOSITIONS = by_op({
    "pixel_shuffle": pixel_shuffle, "pixel_unshuffle": pixel_unshuffle, "bn_prelu": bn_prelu,
    "batch_norm_stats": batch_norm_stats, "depthwise_conv2d": depthwise_conv2d,
    "max_pool2d_with_indices": max_pool2d_with_indices, "max_unpool2d": max_unpool2d,
    "conv2d": conv2d,
})
