"""oneDNN's fused convolutions (the ops inductor emits under ``freezing``) with prepacked
weights, callable in eager and under ``torch.compile``.

Eager calls ``torch.ops.mkldnn._convolution_pointwise`` (and its fused-sum and transposed
variants) directly with the weight packed once into oneDNN's blocked layout. Under
``torch.compile`` the same call goes through pyimg's custom ops ``pyimg::onednn_conv2d`` /
``pyimg::onednn_conv_transpose2d``, which take the plain weight and look its packed copy up
(packing a weight they have not seen, such as a copy inductor made, once): dynamo then never
traces oneDNN's opaque tensors, which have no storage to fake.
"""

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

# plain weight -> (its version when packed, the packed copy); entries go with the weight
_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def pack(weight: Tensor, padding: list[int], stride: list[int], dilation: list[int],
         groups: int, transposed: bool = False, output_padding: list[int] | None = None
         ) -> Tensor:
    """The weight in oneDNN's blocked layout (for the weight alone: the layout oneDNN picks
    does not depend on the input's size), kept on ``weight`` for the compiled path."""
    with torch.no_grad():
        dense = weight.detach().contiguous()
        if transposed:
            packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                dense, padding, output_padding, stride, dilation, groups)
        else:
            packed = torch.ops.mkldnn._reorder_convolution_weight(dense, padding, stride,
                                                                  dilation, groups)
    _PACKED[weight] = (_version(weight), packed)
    return packed


def _version(weight: Tensor) -> int:
    # Inference tensors (made under torch.inference_mode) have no version counter; the
    # weights packed are the optimized copy's own, which nothing else holds to change.
    return 0 if weight.is_inference() else weight._version


def _packed_for(weight: Tensor, *geometry, transposed: bool = False) -> Tensor:
    """The packed copy attached to weight, packed again if weight changed or has none (a
    copy of the weight made by torch.compile)."""
    attached = _PACKED.get(weight)
    if attached is not None and attached[0] == _version(weight):
        return attached[1]
    if transposed:
        padding, output_padding, stride, dilation, groups = geometry
        return pack(weight, padding, stride, dilation, groups, True, output_padding)
    return pack(weight, *geometry)


def conv2d(x: Tensor, packed: Tensor, weight: Tensor, bias: Tensor | None,
           other: Tensor | None, padding: list[int], stride: list[int], dilation: list[int],
           groups: int, attr: str, scalars: list[float], algorithm: str) -> Tensor:
    """``attr(conv2d(x) [+ other])``; bias: float32, or x's dtype with ``other``."""
    if torch.compiler.is_compiling():
        return torch.ops.pyimg.onednn_conv2d(x, weight, bias, other, padding, stride, dilation,
                                             groups, attr, scalars, algorithm)
    return _conv2d(x, packed, bias, other, padding, stride, dilation, groups, attr, scalars,
                   algorithm)


def _conv2d(x, packed, bias, other, padding, stride, dilation, groups, attr, scalars,
            algorithm):
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, padding, stride,
                                                       dilation, groups, attr, scalars,
                                                       algorithm)
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, packed, bias, padding, stride, dilation, groups, "add", None,
        None if attr == "none" else attr, [], None)


@torch.library.custom_op("pyimg::onednn_conv2d", mutates_args=())
def _onednn_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, other: Tensor | None,
                   padding: list[int], stride: list[int], dilation: list[int], groups: int,
                   attr: str, scalars: list[float], algorithm: str) -> Tensor:
    packed = _packed_for(weight, padding, stride, dilation, groups)
    return _conv2d(x, packed, bias, other, padding, stride, dilation, groups, attr, scalars,
                   algorithm)


@_onednn_conv2d.register_fake
def _(x, weight, bias, other, padding, stride, dilation, groups, attr, scalars, algorithm):
    size = [x.shape[0], weight.shape[0]]
    for i in range(2):
        extent = dilation[i] * (weight.shape[2 + i] - 1) + 1
        size.append((x.shape[2 + i] + 2 * padding[i] - extent) // stride[i] + 1)
    return x.new_empty(size).contiguous(memory_format=torch.channels_last)


def conv_transpose2d(x: Tensor, packed: Tensor, weight: Tensor, bias: Tensor | None,
                     padding: list[int], output_padding: list[int], stride: list[int],
                     dilation: list[int], groups: int) -> Tensor:
    if torch.compiler.is_compiling():
        return torch.ops.pyimg.onednn_conv_transpose2d(x, weight, bias, padding,
                                                       output_padding, stride, dilation,
                                                       groups)
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x, packed, bias, padding, output_padding, stride, dilation, groups, "none", [], "")


@torch.library.custom_op("pyimg::onednn_conv_transpose2d", mutates_args=())
def _onednn_conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None,
                             padding: list[int], output_padding: list[int], stride: list[int],
                             dilation: list[int], groups: int) -> Tensor:
    packed = _packed_for(weight, padding, output_padding, stride, dilation, groups,
                         transposed=True)
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x, packed, bias, padding, output_padding, stride, dilation, groups, "none", [], "")


@_onednn_conv_transpose2d.register_fake
def _(x, weight, bias, padding, output_padding, stride, dilation, groups):
    size = [x.shape[0], weight.shape[1] * groups]
    for i in range(2):
        size.append((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                    + dilation[i] * (weight.shape[2 + i] - 1) + output_padding[i] + 1)
    return x.new_empty(size).contiguous(memory_format=torch.channels_last)
