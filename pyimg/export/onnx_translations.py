"""ONNX translations of pyimg's ops, made of standard ONNX operators (opset 18), for the dynamo
exporter (``torch.onnx.export(..., dynamo=True, custom_translation_table=TRANSLATIONS)``).

Each function takes the op's arguments as the exporter hands them over (tensors as symbolic
ONNX values, the rest as Python values; a symbolic size as a scalar value) and is traced once
per call site: Python branches on the op's options choose the ONNX operators.

- pixel shuffle: DepthToSpace in CRD mode (torch's channel order), its bias an Add, the
  activation Relu / LeakyRelu / PRelu / Tanh / Sigmoid; pixel unshuffle: SpaceToDepth and a
  reordering of the channels (SpaceToDepth is DCR).
- the batch norm + PReLU (+ residual) pass: BatchNormalization with the per-channel scale
  ``invstd * weight`` and shift ``bias - mean * invstd * weight`` (mean 0, variance 1,
  epsilon 0, so the normalization is exactly that affine map), PRelu, Add; the batch
  statistics: ReduceMean.
- convolutions with their epilogue: Conv (groups, dilations, asymmetric pads), Mul / Add for
  the per-channel scale and shift, DepthToSpace for the pixel-shuffled store, the
  activation, Add for the residual before or after it.
- max-pool with indices: MaxPool with its Indices output, which ONNX numbers over the whole
  tensor; pyimg's flat indices number each (H, W) plane (Mod), its compact ones the tap inside
  the window (arithmetic on the pooled positions, Cast to uint8).
- max-unpool: MaxUnpool for compact indices of disjoint windows (stride >= kernel: no two
  name one position); otherwise (flat indices may repeat) a max-reducing ScatterElements and
  a written-or-zero mask, pyimg's rule that the largest of several values for one position
  wins.
"""

import torch
from onnxscript import opset18 as op

from pyimg.export.ops import by_op

ONNX_OPSET = 18


def _ints(values) -> object:
    return op.Constant(value_ints=list(values))


def _per_channel(t, like):
    """A per-channel vector as (C, 1, 1) in like's dtype, to broadcast over (N, C, H, W)."""
    return op.Reshape(op.CastLike(t, like), _ints([-1, 1, 1]))


def _activate(y, activation: str, weight, negative_slope: float):
    if activation == "relu":
        return op.Relu(y)
    if activation == "leaky_relu":
        return op.LeakyRelu(y, alpha=negative_slope)
    if activation == "prelu":
        return op.PRelu(y, _per_channel(weight, y))
    if activation == "tanh":
        return op.Tanh(y)
    if activation == "sigmoid":
        return op.Sigmoid(y)
    return y


# -- pixel shuffle -------------------------------------------------------------------------


def pixel_shuffle(x, upscale_factor: int, bias=None, activation: str = "none", weight=None,
                  negative_slope: float = 0.01):
    y = x if bias is None else op.Add(x, _per_channel(bias, x))
    if upscale_factor > 1:
        y = op.DepthToSpace(y, blocksize=upscale_factor, mode="CRD")
    return _activate(y, activation, weight, negative_slope)


def pixel_unshuffle(x, downscale_factor: int):
    r = downscale_factor
    if r == 1:
        return op.Identity(x)
    # SpaceToDepth orders the channels (row tap, column tap, channel); torch (channel, row
    # tap, column tap).
    y = op.SpaceToDepth(x, blocksize=r)
    batch, size = op.Shape(y, start=0, end=1), op.Shape(y, start=2, end=4)
    y = op.Reshape(y, op.Concat(batch, _ints([r * r, -1]), size, axis=0))
    y = op.Transpose(y, perm=[0, 2, 1, 3, 4])
    return op.Reshape(y, op.Concat(op.Shape(y, start=0, end=1), _ints([-1]),
                                   op.Shape(y, start=3, end=5), axis=0))


# -- batch norm ------------------------------------------------------------------------------


def bn_prelu(x, mean, invstd, weight=None, bias=None, prelu_weight=None, residual=None,
             training: bool = False, relu: bool = False):
    scale = invstd if weight is None else op.Mul(invstd, op.CastLike(weight, invstd))
    shift = op.Neg(op.Mul(mean, scale))
    if bias is not None:
        shift = op.Add(shift, op.CastLike(bias, shift))
    channels = op.Shape(mean)
    zeros = op.Expand(op.CastLike(op.Constant(value_float=0.0), x), channels)
    ones = op.Expand(op.CastLike(op.Constant(value_float=1.0), x), channels)
    y = op.BatchNormalization(x, op.CastLike(scale, x), op.CastLike(shift, x), zeros, ones,
                              epsilon=0.0)
    if prelu_weight is not None:
        y = op.PRelu(y, _per_channel(prelu_weight, y))
    if relu:
        y = op.Relu(y)
    return y if residual is None else op.Add(y, op.CastLike(residual, y))


def batch_norm_stats(x):
    # The statistics are float32 for float16 / bfloat16 inputs, float64 for float64 ones.
    acc = x if x.dtype == 11 else op.Cast(x, to=1)  # 11: DOUBLE, 1: FLOAT
    mean = op.ReduceMean(acc, _ints([0, 2, 3]), keepdims=1)
    centered = op.Sub(acc, mean)
    var = op.ReduceMean(op.Mul(centered, centered), _ints([0, 2, 3]), keepdims=0)
    return op.Reshape(mean, _ints([-1])), var


# -- convolution with its epilogue ----------------------------------------------------------


def _conv_epilogue(x, weight, bias, stride, padding, dilation, groups: int, scale, shift,
                   activation: str, prelu_weight, negative_slope: float, residual,
                   add_before_activation: bool, upscale_factor: int):
    top, bottom, left, right = padding
    inputs = [x, weight] if bias is None else [x, weight, bias]
    y = op.Conv(*inputs, strides=list(stride), pads=[top, left, bottom, right],
                dilations=list(dilation), group=groups)
    if scale is not None:
        y = op.Mul(y, _per_channel(scale, y))
    if shift is not None:
        y = op.Add(y, _per_channel(shift, y))
    if upscale_factor > 1:
        y = op.DepthToSpace(y, blocksize=upscale_factor, mode="CRD")
    if residual is not None and add_before_activation:
        y = op.Add(y, op.CastLike(residual, y))
    y = _activate(y, activation, prelu_weight, negative_slope)
    if residual is not None and not add_before_activation:
        y = op.Add(y, op.CastLike(residual, y))
    return y


def conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation: str,
           prelu_weight, negative_slope: float, residual, add_before_activation: bool,
           upscale_factor: int):
    return _conv_epilogue(x, weight, bias, stride, padding, dilation, 1, scale, shift,
                          activation, prelu_weight, negative_slope, residual,
                          add_before_activation, upscale_factor)


def depthwise_conv2d(x, weight, bias, stride, padding, dilation, scale, shift,
                     activation: str, prelu_weight, negative_slope: float, residual,
                     add_before_activation: bool):
    # One group per input channel; the exported graph knows the channel count.
    return _conv_epilogue(x, weight, bias, stride, padding, dilation, x.shape[1], scale, shift,
                          activation, prelu_weight, negative_slope, residual,
                          add_before_activation, 1)


# -- max-pool and max-unpool ------------------------------------------------------------------


def _window_origins(pooled, axis: int, stride: int, pad: int):
    """The first input row (axis 2) or column (axis 3) of each pooled position's window."""
    count = op.Squeeze(op.Shape(pooled, start=axis, end=axis + 1))
    positions = op.Range(op.Constant(value_int=0), count, op.Constant(value_int=1))
    origins = op.Sub(op.Mul(positions, op.Constant(value_int=stride)),
                     op.Constant(value_int=pad))
    return op.Reshape(origins, _ints([-1, 1])) if axis == 2 else origins


def max_pool2d_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode: bool,
                            compact: bool):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    y, everywhere = op.MaxPool(x, kernel_shape=[kh, kw], strides=[sh, sw],
                               pads=[ph, pw, ph, pw], dilations=[dh, dw],
                               ceil_mode=int(ceil_mode), storage_order=0)
    width = op.Shape(x, start=3, end=4)
    plane = op.Mod(everywhere, op.Mul(op.Shape(x, start=2, end=3), width))
    if not compact:
        return y, plane
    row = op.Div(op.Sub(op.Div(plane, width), _window_origins(y, 2, sh, ph)),
                 op.Constant(value_int=dh))
    column = op.Div(op.Sub(op.Mod(plane, width), _window_origins(y, 3, sw, pw)),
                    op.Constant(value_int=dw))
    tap = op.Add(op.Mul(row, op.Constant(value_int=kw)), column)
    return y, op.Cast(tap, to=2)  # 2: UINT8


def _plane_positions(x, indices, kernel_size, stride, padding, output_size, compact: bool):
    """pyimg's indices as int64 positions in each output (H, W) plane."""
    if not compact:
        return indices
    kw, (sh, sw), (ph, pw) = kernel_size[1], stride, padding
    taps = op.Cast(indices, to=7)  # 7: INT64
    row = op.Add(_window_origins(x, 2, sh, ph), op.Div(taps, op.Constant(value_int=kw)))
    column = op.Add(_window_origins(x, 3, sw, pw), op.Mod(taps, op.Constant(value_int=kw)))
    return op.Add(op.Mul(row, op.Cast(output_size[1], to=7)), column)


def max_unpool2d(x, indices, kernel_size, stride, padding, output_size, compact: bool):
    height, width = output_size
    plane = _plane_positions(x, indices, kernel_size, stride, padding, output_size, compact)
    batch_channels = op.Shape(x, start=0, end=2)
    shape = op.Concat(batch_channels, op.Reshape(op.Cast(height, to=7), _ints([1])),
                      op.Reshape(op.Cast(width, to=7), _ints([1])), axis=0)
    if compact and all(s >= k for s, k in zip(stride, kernel_size, strict=True)):
        # Taps of disjoint windows name distinct positions. ONNX numbers MaxUnpool's indices
        # over the whole tensor.
        size = op.Mul(op.Cast(height, to=7), op.Cast(width, to=7))
        planes = op.ReduceProd(batch_channels, keepdims=0)
        offsets = op.Mul(op.Range(op.Constant(value_int=0), planes, op.Constant(value_int=1)),
                         size)
        offsets = op.Reshape(offsets, op.Concat(batch_channels, _ints([1, 1]), axis=0))
        return op.MaxUnpool(x, op.Add(plane, offsets), shape, kernel_shape=list(kernel_size),
                            strides=list(stride), pads=[padding[0], padding[1]] * 2)
    flat_shape = op.Concat(batch_channels, _ints([-1]), axis=0)
    plane = op.Reshape(plane, flat_shape)
    values = op.Reshape(x, flat_shape)
    target = op.Concat(batch_channels, op.Reshape(op.Mul(op.Cast(height, to=7),
                                                         op.Cast(width, to=7)), _ints([1])),
                       axis=0)
    lowest = op.CastLike(op.Constant(value_float=float("-inf")), x)
    largest = op.ScatterElements(op.Expand(lowest, target), plane, values, axis=2,
                                 reduction="max")
    written = op.ScatterElements(op.Expand(op.CastLike(op.Constant(value_int=0), plane), target),
                                 plane, op.Expand(op.CastLike(op.Constant(value_int=1), plane),
                                                  op.Shape(plane)), axis=2)
    zero = op.CastLike(op.Constant(value_float=0.0), x)
    out = op.Where(op.Cast(written, to=9), largest, zero)  # 9: BOOL
    return op.Reshape(out, shape)


# -- stock ops the stock translation gets wrong with a symbolic size -----------------------


def _averaging_matrix(size, out: int, like):
    """(out, size) weights of adaptive average pooling along one axis: row i averages inputs
    floor(i size / out) .. ceil((i + 1) size / out) - 1, as ATen's kernel does."""
    size = op.Squeeze(size)
    rows = op.Reshape(op.Range(op.Constant(value_int=0), op.Constant(value_int=out),
                               op.Constant(value_int=1)), _ints([-1, 1]))
    columns = op.Range(op.Constant(value_int=0), size, op.Constant(value_int=1))
    out_ = op.Constant(value_int=out)
    start = op.Div(op.Mul(rows, size), out_)  # non-negative: truncation is the floor
    end = op.Div(op.Add(op.Mul(op.Add(rows, op.Constant(value_int=1)), size),
                        op.Constant(value_int=out - 1)), out_)
    inside = op.And(op.GreaterOrEqual(columns, start), op.Less(columns, end))
    return op.Div(op.CastLike(inside, like), op.CastLike(op.Sub(end, start), like))


def adaptive_avg_pool2d(x, output_size):
    """As two matrix products, for any input size; the stock translation of
    aten._adaptive_avg_pool2d indexes with window counts taken from the example input and
    computes wrong values (or fails) for other sizes (torch 2.14)."""
    oh, ow = output_size
    rows = _averaging_matrix(op.Shape(x, start=2, end=3), oh, x)
    columns = _averaging_matrix(op.Shape(x, start=3, end=4), ow, x)
    return op.MatMul(rows, op.MatMul(x, op.Transpose(columns, perm=[1, 0])))


TRANSLATIONS = by_op({
    "pixel_shuffle": pixel_shuffle, "pixel_unshuffle": pixel_unshuffle, "bn_prelu": bn_prelu,
    "batch_norm_stats": batch_norm_stats, "depthwise_conv2d": depthwise_conv2d,
    "max_pool2d_with_indices": max_pool2d_with_indices, "max_unpool2d": max_unpool2d,
    "conv2d": conv2d,
}) | {torch.ops.aten._adaptive_avg_pool2d.default: adaptive_avg_pool2d}
