"""The conv2d family's argument checks, with stock F.conv2d's messages, and its geometry."""

from dataclasses import dataclass

import torch

from pyimg._activation import CONV_ACTIVATIONS


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


# -- checks, with stock's messages -----------------------------------------------------------


def _same_device(t: torch.Tensor, x: torch.Tensor, name: str) -> None:
    if t.device != x.device:
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two devices, "
            f"{x.device} (input) and {t.device} ({name})"
        )


def check_geometry(x, weight, stride, padding, dilation, groups,
                   explicit_padding: bool = False) -> ConvGeometry:
    """Stock F.conv2d's checks of a 4-D x; returns the normalized geometry. With
    explicit_padding, padding is already (top, bottom, left, right)."""
    if x.dim() != 4:
        raise RuntimeError("Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
                           f"input of size: {list(x.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(f"weight should have 4 dimensions (C_out, C_in / groups, KH, KW), "
                           f"but got weight of size {list(weight.shape)}")
    _same_device(weight, x, "weight")
    if weight.dtype != x.dtype:
        raise RuntimeError(f"Input type ({x.dtype}) and weight type ({weight.dtype}) should be "
                           "the same")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
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
    spans = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    if explicit_padding:
        if len(padding) != 4:
            raise RuntimeError(f"padding must be (top, bottom, left, right), got {padding}")
        if min(padding) < 0:
            raise RuntimeError("negative padding is not supported")
        pads = tuple(padding)
    elif isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = (spans[0] // 2, spans[0] - spans[0] // 2, spans[1] // 2,
                    spans[1] - spans[1] // 2)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        ph, pw = _pair(padding, "padding")
        if min(ph, pw) < 0:
            raise RuntimeError("negative padding is not supported")
        pads = (ph, ph, pw, pw)
    padded = (x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3])
    if padded[0] < spans[0] + 1 or padded[1] < spans[1] + 1:
        raise RuntimeError(f"Calculated padded input size per channel: ({padded[0]} x "
                           f"{padded[1]}). Kernel size: ({spans[0] + 1} x {spans[1] + 1}). "
                           "Kernel size can't be greater than actual input size")
    return ConvGeometry(stride, pads, dilation, groups)


def check_epilogue(x, weight, bias, scale, shift, activation, prelu_weight, residual,
                   upscale_factor) -> None:
    """The epilogue's tensors against the conv's C_out output channels and output shape."""
    c_out = weight.shape[0]
    r = upscale_factor
    if r < 1 or c_out % (r * r) != 0:
        raise RuntimeError(f"upscale_factor {r} must be positive with its square dividing the "
                           f"{c_out} output channels")
    if bias is not None:
        _same_device(bias, x, "bias")
        if bias.dtype != x.dtype:
            raise RuntimeError(f"Input type ({x.dtype}) and bias type ({bias.dtype}) should be "
                               "the same")
    for t, name in ((bias, "bias"), (scale, "scale"), (shift, "shift")):
        if t is not None:
            _same_device(t, x, name)
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
        _same_device(prelu_weight, x, "prelu_weight")
        channels = c_out // (r * r)
        if prelu_weight.dim() > 1 or prelu_weight.numel() not in (1, channels):
            raise RuntimeError(f"PReLU weight must be 1-D with 1 or {channels} element(s), "
                               f"but got shape {tuple(prelu_weight.shape)}")
    if residual is not None:
        _same_device(residual, x, "residual")


def output_shape(x, weight, geometry: ConvGeometry, r: int) -> tuple[int, int, int, int]:
    kh, kw = weight.shape[2:]
    top, bottom, left, right = geometry.padding
    oh = (x.shape[2] + top + bottom - geometry.dilation[0] * (kh - 1) - 1) // geometry.stride[0]
    ow = (x.shape[3] + left + right - geometry.dilation[1] * (kw - 1) - 1) // geometry.stride[1]
    return x.shape[0], weight.shape[0] // (r * r), (oh + 1) * r, (ow + 1) * r


def check_residual(residual, shape) -> None:
    if residual is not None and tuple(residual.shape) != tuple(shape):
        raise RuntimeError(f"residual has shape {tuple(residual.shape)} but the output has "
                           f"shape {tuple(shape)}")
