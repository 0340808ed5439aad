"""2-D convolution with a fused per-output-channel epilogue: the convolutions of SRResNet's
residual and upsampling blocks (Ledig et al. 2017), dilated / atrous convolution (Yu & Koltun
2016).

    u = (conv(x, weight) + bias) * scale + shift                       per conv channel
    y = act(shuffle(u) + residual)   if add_before_activation (ResNet: relu(bn(conv) + x))
    y = act(shuffle(u)) + residual   otherwise (SRResNet: conv -> BN, then + x; the default)

shuffle is pixel_shuffle by upscale_factor (identity for 1); the PReLU weight (1 or
C_out / r^2 values) and the residual live in the shuffled output. act is none, relu,
leaky_relu or prelu. The output keeps x's memory format.

Backends:
* ``triton``: ``torch.ops.pyimg.conv2d_triton``, one implicit-GEMM kernel with the whole
  epilogue and gradient kernels of its own (pyimg/ops/conv_triton.py), groups = 1.
* depthwise (groups = C_in), no shuffle: ``depthwise_conv2d`` (pyimg/ops/depthwise_conv.py),
  a direct convolution with the epilogue in registers, on cuda (CUDA C++) and triton; on cpu
  for NCHW dilated convolutions only, where it measured 2.4-3.1x stock's conv + BN + ReLU
  (oneDNN's own depthwise kernels win undilated and channels_last).
* ``cpu`` / ``cuda``: stock ATen convolution (oneDNN / cuDNN; the bias its own unless a scale
  follows), then the epilogue in one fused pass of ``torch.ops.pyimg.bn_prelu`` (mean 0,
  invstd 1, weight = scale, bias = the folded shift; its relu, leaky_relu as a PReLU of the
  slope) or, with neither scale nor residual, of the fused ``pixel_shuffle`` (which
  also does r > 1). bn_prelu adds its residual after the PReLU, so add_before_activation takes
  a second pass (bn_prelu with the residual, then pixel_shuffle's activation), as does r > 1
  with a scale or residual (the permutation). Other grouped convolutions on the ``triton``
  backend take this path with the Triton epilogue ops.
* ``torch``: the stock-op reference, ``conv2d_reference``.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyimg import _backend
from pyimg._activation import apply_activation
from pyimg._extension import eager
from pyimg._format import (
    accumulate_dtype,
    in_dtype,
    output_memory_format,
    with_canonical_strides,
)
from pyimg.ops import batch_norm, depthwise_conv, pixel_shuffle
from pyimg.ops._common import unsupported_dtype
from pyimg.ops.conv_checks import ConvGeometry, check_conv, resolve_geometry
from pyimg.ops.conv_triton import conv2d_triton
from pyimg.ops.pixel_shuffle import pixel_shuffle_reference

# -- the torch reference backend -------------------------------------------------------------


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                     scale=None, shift=None, activation="none", prelu_weight=None,
                     negative_slope=0.01, residual=None, add_before_activation=False,
                     upscale_factor=1):
    """Stock ops in x's dtype, in the epilogue's order; the output in x's memory format."""
    fmt = output_memory_format(x)
    # Stock's weight gradient is wrong for some layouts with odd size-1 strides.
    x, weight = with_canonical_strides(x), with_canonical_strides(weight)
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    view = (-1, 1, 1)
    if scale is not None:
        y = y * scale.to(y.dtype).view(view)
    if shift is not None:
        y = y + shift.to(y.dtype).view(view)
    if upscale_factor > 1:
        y = pixel_shuffle_reference(y, upscale_factor)
    if residual is not None and add_before_activation:
        y = y + residual
    y = apply_activation(y, activation, prelu_weight, negative_slope)
    if residual is not None and not add_before_activation:
        y = y + residual
    return y.contiguous(memory_format=fmt)


# -- stock convolution + one fused epilogue pass (cpu, cuda; grouped convs on triton) --------


@dataclass(frozen=True)
class _EpilogueOps:
    """One backend family's elementwise ops."""

    bn_prelu: object
    pixel_shuffle: object
    pixel_unshuffle: object


def _epilogue_ops(backend: str) -> _EpilogueOps:
    return _EpilogueOps(batch_norm.OPS[backend].forward, pixel_shuffle.OPS[backend].shuffle,
                        pixel_shuffle.OPS[backend].unshuffle)


def _stock_convolution(x, weight, bias, geometry: ConvGeometry):
    fmt = output_memory_format(x)
    # Stock's CPU weight gradient (grouped, float64) is wrong for a channels_last x whose
    # size-1 H carries another stride: the same memory, channels_last's own strides.
    x, weight = with_canonical_strides(x), with_canonical_strides(weight)
    top, bottom, left, right = geometry.padding
    if not geometry.symmetric:  # ATen pads both sides alike
        x, (top, left) = F.pad(x, (left, right, top, bottom)), (0, 0)
    y = torch.convolution(x, weight, bias, list(geometry.stride), [top, left],
                          list(geometry.dilation), False, [0, 0], geometry.groups)
    return y.contiguous(memory_format=fmt)


def _conv_then_epilogue(ops: _EpilogueOps, x, weight, bias, geometry, scale, shift, activation,
                        prelu_weight, negative_slope, residual, add_before_activation, r):
    # Without a scale the bias is the convolution's own (free in cuDNN / oneDNN); with one it
    # folds into the shift: (y + bias) * scale + shift == y * scale + (bias * scale + shift).
    y = _stock_convolution(x, weight, bias if scale is None else None, geometry)
    acc = accumulate_dtype(x)
    if scale is not None:
        scale = in_dtype(scale, acc)
        if bias is not None:
            shift = in_dtype(bias, acc) * scale + (0.0 if shift is None else in_dtype(shift, acc))
    if shift is not None:
        shift = in_dtype(shift, acc)
    if scale is None and residual is None:
        # bias + activation (+ shuffle) is the fused pixel_shuffle's own epilogue.
        if shift is None and activation == "none" and r == 1:
            return y
        alpha = in_dtype(prelu_weight, x.dtype)
        return ops.pixel_shuffle(y, r, in_dtype(shift, x.dtype),
                                 activation, alpha, negative_slope)
    if residual is not None and r > 1:
        residual = ops.pixel_unshuffle(residual, r)
    if residual is not None:
        residual = in_dtype(residual, x.dtype)
    zeros = torch.zeros(weight.shape[0], dtype=acc, device=x.device)
    ones = torch.ones_like(zeros)
    if add_before_activation:
        z = ops.bn_prelu(y, zeros, ones, scale, shift, None, residual, False)
        if activation == "none" and r == 1:
            return z
        alpha = in_dtype(prelu_weight, x.dtype)
        return ops.pixel_shuffle(z, r, None, activation, alpha, negative_slope)
    alpha = _as_prelu(activation, prelu_weight, negative_slope, r, acc, x.device)
    z = ops.bn_prelu(y, zeros, ones, scale, shift, alpha, residual, False, activation == "relu")
    return z if r == 1 else ops.pixel_shuffle(z, r, None, "none", None, 0.0)


def _as_prelu(activation, prelu_weight, negative_slope, r, acc, device):
    """bn_prelu's PReLU weight for the activation, per conv channel (None for none and relu,
    which bn_prelu has of its own): leaky_relu is a PReLU of its slope; a per-channel weight
    repeats over each r x r group."""
    if activation in ("none", "relu"):
        return None
    if activation == "leaky_relu":
        return torch.full((1,), negative_slope, dtype=acc, device=device)
    alpha = in_dtype(prelu_weight, acc).reshape(-1)
    return alpha.repeat_interleave(r * r) if alpha.numel() > 1 and r > 1 else alpha


# -- the public functions --------------------------------------------------------------------


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride=1, padding=0, dilation=1, groups: int = 1, *,
           scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
           activation: str = "none", prelu_weight: torch.Tensor | None = None,
           negative_slope: float = 0.01, residual: torch.Tensor | None = None,
           add_before_activation: bool = False, upscale_factor: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)`` followed by the fused
    epilogue of this module's docstring: ``scale`` / ``shift`` (C_out values each, a folded
    BatchNorm), ``activation`` (none, relu, leaky_relu with ``negative_slope``, prelu with
    ``prelu_weight``), ``residual`` (shaped like the output) added after the activation or,
    with ``add_before_activation``, before it, and a pixel-shuffled store by
    ``upscale_factor``. padding: int, pair, 'same' or 'valid', as F.conv2d. Differentiable in
    every tensor. x is (N, C, H, W) or unbatched (C, H, W); the output keeps x's memory format.
    """
    if eager is not None and not torch.compiler.is_compiling():
        y = eager.conv2d(x, weight, bias, stride, padding, dilation, groups, scale, shift,
                         activation, prelu_weight, negative_slope, residual,
                         add_before_activation, upscale_factor)
        if y is not None:
            return y
    if torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
        # As stock convolution under autocast: the convolution in the autocast dtype.
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
        residual = None if residual is None else residual.unsqueeze(0)
    geometry = resolve_geometry(x, weight, stride, padding, dilation, groups)
    backend = _backend.choose("conv2d", x.device, unsupported_dtype(x))
    epilogue = dict(scale=scale, shift=shift, activation=activation, prelu_weight=prelu_weight,
                    negative_slope=negative_slope, residual=residual,
                    add_before_activation=add_before_activation, upscale_factor=upscale_factor)
    if backend == "torch":
        check_conv(x, weight, bias, geometry, scale, shift, activation, prelu_weight, residual,
                   upscale_factor)
        padding = padding if isinstance(padding, str) else geometry.padding[::2]
        y = conv2d_reference(x, weight, bias, geometry.stride, padding, geometry.dilation,
                             groups, **epilogue)
    elif backend == "triton" and groups == 1 and x.shape[1] > 1:
        y = conv2d_triton(x, weight, bias, *_op_geometry(geometry), scale, shift, activation,
                          prelu_weight, negative_slope, _in_dtype(residual, x),
                          add_before_activation, upscale_factor)
    elif _direct_depthwise(backend, x, geometry, upscale_factor):
        y = depthwise_conv.OPS[backend](x, weight, bias, *_op_geometry(geometry), scale, shift,
                                        activation, prelu_weight, negative_slope,
                                        _in_dtype(residual, x), add_before_activation)
    else:
        # Stock convolution and pyimg's epilogue ops, none of which sees every argument.
        check_conv(x, weight, bias, geometry, scale, shift, activation, prelu_weight, residual,
                   upscale_factor)
        y = _conv_then_epilogue(_epilogue_ops(backend), x, weight, bias, geometry,
                                *epilogue.values())
    return y.squeeze(0) if unbatched else y


def _op_geometry(geometry: ConvGeometry) -> tuple[list[int], list[int], list[int]]:
    return list(geometry.stride), list(geometry.padding), list(geometry.dilation)


def _in_dtype(residual, x):
    return in_dtype(residual, x.dtype)


def _direct_depthwise(backend: str, x, geometry: ConvGeometry, r: int) -> bool:
    """Whether depthwise_conv2d serves this call (see the module docstring)."""
    if geometry.groups != x.shape[1] or r != 1:
        return False
    if backend == "cpu":
        return output_memory_format(x) == torch.contiguous_format and max(geometry.dilation) > 1
    return backend in ("cuda", "triton")


def dilated_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   dilation=1, padding=0, stride=1, groups: int = 1,
                   **epilogue) -> torch.Tensor:
    """Dilated (atrous) convolution: ``conv2d`` with dilation and padding before stride;
    ``epilogue`` takes conv2d's keyword arguments (scale, shift, activation, prelu_weight,
    negative_slope, residual, add_before_activation, upscale_factor)."""
    return conv2d(x, weight, bias, stride, padding, dilation, groups, **epilogue)


