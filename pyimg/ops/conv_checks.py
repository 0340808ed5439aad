"""The conv2d family's geometry and argument checks, with stock F.conv2d's messages."""

from dataclasses import dataclass

from pyimg._activation import CONV_ACTIVATIONS
from pyimg.ops._common import check_same_device


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's hyper-parameters, checked, as pairs; padding as (top, bottom, left,
    right) since 'same' with an even span pads one more at the bottom / right (as stock)."""

    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def symmetric(self) -> bool:
        return self.padding[0] == self.padding[1] and self.padding[2] == self.padding[3]


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of 2 values "
                           f"to match the convolution dimensions, but got {name}={list(value)}")
    return value


# -- what the public function computes to call an op: the geometry as the ops take it ---------


def _check_ranks(x, weight) -> None:
    if x.dim() != 4:
        raise RuntimeError("Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
                           f"input of size: {list(x.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(f"weight should have 4 dimensions (C_out, C_in / groups, KH, KW), "
                           f"but got weight of size {list(weight.shape)}")


def resolve_geometry(x, weight, stride, padding, dilation, groups) -> ConvGeometry:
    """conv2d's hyper-parameters as pairs and explicit padding ('same' / 'valid' resolved for
    a 4-D x), not yet checked against x and weight (check_conv does that)."""
    _check_ranks(x, weight)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            spans = (dilation[0] * (weight.shape[2] - 1), dilation[1] * (weight.shape[3] - 1))
            pads = (spans[0] // 2, spans[0] - spans[0] // 2, spans[1] // 2,
                    spans[1] - spans[1] // 2)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        ph, pw = _pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    return ConvGeometry(stride, pads, dilation, groups)


def op_geometry(stride, padding, dilation, groups: int) -> ConvGeometry:
    """The geometry of a conv op's arguments (padding explicit: top, bottom, left, right)."""
    if len(padding) != 4:
        raise RuntimeError(f"padding must be (top, bottom, left, right), got {padding}")
    return ConvGeometry(_pair(stride, "stride"), tuple(padding), _pair(dilation, "dilation"),
                        groups)


# -- the checks of the conv ops' arguments, with stock F.conv2d's messages: the Triton ops,
# -- the fakes, the torch path and the stock-convolution path run them -----------------------


def _check_against(x, weight, geometry: ConvGeometry) -> None:
    _check_ranks(x, weight)
    check_same_device(weight, x, "weight")
    if weight.dtype != x.dtype:
        raise RuntimeError(f"Input type ({x.dtype}) and weight type ({weight.dtype}) should be "
                           "the same")
    stride, dilation, groups = geometry.stride, geometry.dilation, geometry.groups
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    c_out, c_per_group, kh, kw = weight.shape
    if c_out % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size [{list(weight.shape)}] "
                           "instead")
    if x.shape[1] != c_per_group * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(x.shape)} to have {c_per_group * groups} "
                           f"channels, but got {x.shape[1]} channels instead")
    pads = geometry.padding
    if min(pads) < 0:
        raise RuntimeError("negative padding is not supported")
    spans = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    padded = (x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3])
    if padded[0] < spans[0] + 1 or padded[1] < spans[1] + 1:
        raise RuntimeError(f"Calculated padded input size per channel: ({padded[0]} x "
                           f"{padded[1]}). Kernel size: ({spans[0] + 1} x {spans[1] + 1}). "
                           "Kernel size can't be greater than actual input size")


def check_geometry(x, weight, stride, padding, dilation, groups) -> ConvGeometry:
    """Stock F.conv2d's checks of a 4-D x and its hyper-parameters; the normalized geometry."""
    geometry = resolve_geometry(x, weight, stride, padding, dilation, groups)
    _check_against(x, weight, geometry)
    return geometry


def _check_epilogue(x, weight, bias, scale, shift, activation, prelu_weight, residual,
                    upscale_factor) -> None:
    """The epilogue's tensors against the conv's C_out output channels."""
    c_out = weight.shape[0]
    r = upscale_factor
    if r < 1 or c_out % (r * r) != 0:
        raise RuntimeError(f"upscale_factor {r} must be positive with its square dividing the "
                           f"{c_out} output channels")
    if bias is not None:
        check_same_device(bias, x, "bias")
        if bias.dtype != x.dtype:
            raise RuntimeError(f"Input type ({x.dtype}) and bias type ({bias.dtype}) should be "
                               "the same")
    for t, name in ((bias, "bias"), (scale, "scale"), (shift, "shift")):
        if t is not None:
            check_same_device(t, x, name)
            if t.dim() != 1 or t.numel() != c_out:
                raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected {name} "
                                   f"to be 1-dimensional with {c_out} elements, but got {name} "
                                   f"of size {list(t.shape)} instead")
    if activation not in CONV_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of "
                         f"{CONV_ACTIVATIONS}")
    if (prelu_weight is not None) != (activation == "prelu"):
        raise ValueError("prelu_weight is given exactly when activation='prelu'")
    if prelu_weight is not None:
        check_same_device(prelu_weight, x, "prelu_weight")
        channels = c_out // (r * r)
        if prelu_weight.dim() > 1 or prelu_weight.numel() not in (1, channels):
            raise RuntimeError(f"PReLU weight must be 1-D with 1 or {channels} element(s), "
                               f"but got shape {tuple(prelu_weight.shape)}")
    if residual is not None:
        check_same_device(residual, x, "residual")


def check_conv(x, weight, bias, geometry: ConvGeometry, scale, shift, activation, prelu_weight,
               residual, upscale_factor) -> tuple[int, int, int, int]:
    """Every check of a conv op's arguments (a 4-D x, the geometry as op_geometry or
    resolve_geometry gives it, the epilogue); returns the output's shape."""
    _check_against(x, weight, geometry)
    _check_epilogue(x, weight, bias, scale, shift, activation, prelu_weight, residual,
                    upscale_factor)
    shape = output_shape(x, weight, geometry, upscale_factor)
    if residual is not None and tuple(residual.shape) != tuple(shape):
        raise RuntimeError(f"residual has shape {tuple(residual.shape)} but the output has "
                           f"shape {tuple(shape)}")
    return shape


def output_shape(x, weight, geometry: ConvGeometry, r: int) -> tuple[int, int, int, int]:
    kh, kw = weight.shape[2:]
    top, bottom, left, right = geometry.padding
    oh = (x.shape[2] + top + bottom - geometry.dilation[0] * (kh - 1) - 1) // geometry.stride[0]
    ow = (x.shape[3] + left + right - geometry.dilation[1] * (kw - 1) - 1) // geometry.stride[1]
    return x.shape[0], weight.shape[0] // (r * r), (oh + 1) * r, (ow + 1) * r
