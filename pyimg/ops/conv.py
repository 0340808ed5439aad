"""2-D convolution with a fused per-output-channel epilogue (issues 4 and 5: the convolutions of
SRResNet's residual and upsampling blocks, dilated / atrous convolution, Yu & Koltun 2016).

    u = (conv(x, weight) + bias) * scale + shift                       per conv channel
    y = act(shuffle(u) + residual)   if add_before_activation (ResNet: relu(bn(conv) + x))
    y = act(shuffle(u)) + residual   otherwise (SRResNet: conv -> BN, then + x; the default)

shuffle is pixel_shuffle by upscale_factor (identity for 1); the PReLU weight (1 or
C_out / r^2 values) and the residual live in the shuffled output. act is none, relu,
leaky_relu or prelu. The output keeps x's memory format.

Backends:
* ``triton``: ``torch.ops.pyimg.conv2d_triton``, one implicit-GEMM kernel with the whole
  epilogue (pyimg/triton/conv.py), groups = 1. Backward (registered below): the epilogue's
  gradient in torch ops, then ``conv2d_input_grad_triton`` (stride 1: the forward kernel on
  the flipped weight; strided: stock's transposed convolution with cuDNN's deterministic
  algorithms) and ``conv2d_weight_grad_triton`` (split-K GEMM summed in a fixed order,
  pyimg/triton/conv_backward.py): no atomics anywhere, the same bits on every run. The conv
  output is recomputed (not saved) when the gradient needs it: an activation's derivative or
  scale's gradient; training memory stays that of stock.
* ``cpu`` / ``cuda``: stock ATen convolution (oneDNN / cuDNN; the bias its own unless a scale
  follows), then the epilogue in one fused pass of ``torch.ops.pyimg.bn_prelu`` (mean 0,
  invstd 1, weight = scale, bias = the folded shift; relu is PReLU with weight 0, leaky_relu
  with the slope) or, with neither scale nor residual, of the fused ``pixel_shuffle`` (which
  also does r > 1). bn_prelu adds its residual after the PReLU, so add_before_activation takes
  a second pass (bn_prelu with the residual, then pixel_shuffle's activation), as does r > 1
  with a scale or residual (the permutation). Grouped and depthwise convolutions on the
  ``triton`` backend take this path with the Triton epilogue ops.
* ``torch``: the stock-op reference, ``conv2d_reference``.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyimg import _backend
from pyimg.ops._common import empty_like_format, output_memory_format, unsupported_dtype
from pyimg.ops.batch_norm import accumulate_dtype

CONV_ACTIVATIONS = ("none", "relu", "leaky_relu", "prelu")


@dataclass(frozen=True)
class Geometry:
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
                   explicit_padding: bool = False) -> Geometry:
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
    return Geometry(stride, pads, dilation, groups)


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


def output_shape(x, weight, geometry: Geometry, r: int) -> tuple[int, int, int, int]:
    kh, kw = weight.shape[2:]
    top, bottom, left, right = geometry.padding
    oh = (x.shape[2] + top + bottom - geometry.dilation[0] * (kh - 1) - 1) // geometry.stride[0]
    ow = (x.shape[3] + left + right - geometry.dilation[1] * (kw - 1) - 1) // geometry.stride[1]
    return x.shape[0], weight.shape[0] // (r * r), (oh + 1) * r, (ow + 1) * r


def _check_residual(residual, shape) -> None:
    if residual is not None and tuple(residual.shape) != tuple(shape):
        raise RuntimeError(f"residual has shape {tuple(residual.shape)} but the output has "
                           f"shape {tuple(shape)}")


# -- the torch reference backend -------------------------------------------------------------


def _activate(y, activation, prelu_weight, negative_slope):
    if activation == "relu":
        return F.relu(y)
    if activation == "leaky_relu":
        return F.leaky_relu(y, negative_slope)
    if activation == "prelu":
        return F.prelu(y, prelu_weight)
    return y


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                     scale=None, shift=None, activation="none", prelu_weight=None,
                     negative_slope=0.01, residual=None, add_before_activation=False,
                     upscale_factor=1):
    """Stock ops in x's dtype, in the epilogue's order; the output in x's memory format."""
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    view = (-1, 1, 1)
    if scale is not None:
        y = y * scale.to(y.dtype).view(view)
    if shift is not None:
        y = y + shift.to(y.dtype).view(view)
    if upscale_factor > 1:
        y = F.pixel_shuffle(y, upscale_factor)
    if residual is not None and add_before_activation:
        y = y + residual
    y = _activate(y, activation, prelu_weight, negative_slope)
    if residual is not None and not add_before_activation:
        y = y + residual
    return y.contiguous(memory_format=output_memory_format(x))


# -- the Triton op ---------------------------------------------------------------------------


@torch.library.custom_op("pyimg::conv2d_triton", mutates_args=())
def _conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   stride: list[int], padding: list[int], dilation: list[int],
                   scale: torch.Tensor | None, shift: torch.Tensor | None, activation: str,
                   prelu_weight: torch.Tensor | None, negative_slope: float,
                   residual: torch.Tensor | None, add_before_activation: bool,
                   upscale_factor: int) -> torch.Tensor:
    from pyimg.triton import conv as kernels

    _check_op_arguments(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                        prelu_weight, residual, upscale_factor)
    return kernels.conv2d(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                          prelu_weight, negative_slope, residual, add_before_activation,
                          upscale_factor, output_memory_format(x) == torch.channels_last)


def _check_op_arguments(x, weight, bias, stride, padding, dilation, scale, shift, activation,
                        prelu_weight, residual, upscale_factor) -> Geometry:
    # torch.ops callers get the public function's checks; the op's padding is explicit.
    geometry = check_geometry(x, weight, stride, padding, dilation, 1, explicit_padding=True)
    check_epilogue(x, weight, bias, scale, shift, activation, prelu_weight, residual,
                   upscale_factor)
    _check_residual(residual, output_shape(x, weight, geometry, upscale_factor))
    return geometry


@_conv2d_triton.register_fake
def _(x, weight, bias, stride, padding, dilation, scale, shift, activation, prelu_weight,
      negative_slope, residual, add_before_activation, upscale_factor):
    geometry = _check_op_arguments(x, weight, bias, stride, padding, dilation, scale, shift,
                                   activation, prelu_weight, residual, upscale_factor)
    return empty_like_format(output_shape(x, weight, geometry, upscale_factor), x)


_ARGUMENTS = ("x", "weight", "bias", "stride", "padding", "dilation", "scale", "shift",
              "activation", "prelu_weight", "negative_slope", "residual",
              "add_before_activation", "upscale_factor")


def _setup_context(ctx, inputs, output):
    args = dict(zip(_ARGUMENTS, inputs, strict=True))
    for name in ("stride", "padding", "dilation", "activation", "negative_slope",
                 "add_before_activation", "upscale_factor"):
        setattr(ctx, name, args[name])
    # From the inputs rather than ctx.needs_input_grad, whose length follows the call's
    # argument count for custom_op-defined ops.
    ctx.needs = {name: args[name] is not None and args[name].requires_grad
                 for name in ("x", "weight", "bias", "scale", "shift", "prelu_weight",
                              "residual")}
    residual = args["residual"] if args["add_before_activation"] else None
    ctx.has_residual = args["residual"] is not None
    ctx.save_for_backward(args["x"], args["weight"], args["bias"], args["scale"],
                          args["shift"], args["prelu_weight"], residual)


def _per_channel(t, acc):
    return None if t is None else t.to(acc).view(1, -1, 1, 1)


def _backward(ctx, grad):
    x, weight, bias, scale, shift, prelu_weight, residual = ctx.saved_tensors
    acc, r, needs = accumulate_dtype(x), ctx.upscale_factor, ctx.needs
    # Everything in conv-output space (N, C_out, OH, OW): unshuffle what lives in the output.
    g = F.pixel_unshuffle(grad.to(acc), r)
    s = _per_channel(scale, acc)
    biased = None  # conv(x) + bias, recomputed
    if ctx.activation != "none" or needs["scale"]:
        biased = _conv2d_triton(x, weight, bias, ctx.stride, ctx.padding, ctx.dilation, None,
                                None, "none", None, 0.0, None, False, 1).to(acc)
    grad_prelu = None
    if ctx.activation != "none":
        z = biased if s is None else biased * s
        if shift is not None:
            z = z + _per_channel(shift, acc)
        if residual is not None:
            z = z + F.pixel_unshuffle(residual.to(acc), r)
        g, grad_prelu = _activation_backward(g, z, ctx, prelu_weight, r)
    grad_residual = None
    if ctx.has_residual and needs["residual"]:
        grad_residual = F.pixel_shuffle(g, r) if ctx.add_before_activation else grad
        grad_residual = grad_residual.to(grad.dtype)
    grad_shift = g.sum((0, 2, 3)).to(shift.dtype) if needs["shift"] else None
    grad_scale = (g * biased).sum((0, 2, 3)).to(scale.dtype) if needs["scale"] else None
    if s is not None:
        g = g * s
    grad_bias = g.sum((0, 2, 3)).to(bias.dtype) if needs["bias"] else None
    g = g.to(x.dtype)
    conv = (ctx.stride, ctx.padding, ctx.dilation)
    grad_x = _conv2d_input_grad_triton(g, x, weight, *conv) if needs["x"] else None
    grad_weight = _conv2d_weight_grad_triton(g, x, weight, *conv) if needs["weight"] else None
    return (grad_x, grad_weight, grad_bias, None, None, None, grad_scale, grad_shift, None,
            grad_prelu, None, grad_residual, None, None)


def _activation_backward(g, z, ctx, prelu_weight, r):
    """(dL/dz, dL/d prelu_weight) from dL/dy and the pre-activation z (conv space)."""
    if ctx.activation == "relu":
        return torch.where(z > 0, g, 0.0), None
    if ctx.activation == "leaky_relu":
        return torch.where(z > 0, g, g * ctx.negative_slope), None
    # PReLU's weight indexes shuffled channels: channel c of the conv feeds c // r^2.
    alpha = prelu_weight.to(g.dtype)
    if alpha.numel() > 1:
        alpha = alpha.repeat_interleave(r * r)
    grad_z = torch.where(z > 0, g, g * alpha.view(1, -1, 1, 1))
    grad_prelu = None
    if ctx.needs["prelu_weight"]:
        per_channel = (g * z.clamp(max=0)).sum((0, 2, 3)).view(-1, r * r).sum(1)
        grad_prelu = per_channel.sum().reshape(1) if prelu_weight.numel() == 1 else per_channel
        grad_prelu = grad_prelu.reshape(prelu_weight.shape).to(prelu_weight.dtype)
    return grad_z, grad_prelu


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
        return _stock_input_grad(grad, x, weight, stride, padding, dilation).contiguous(
            memory_format=fmt)


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
    geometry = check_geometry(x, weight, stride, padding, dilation, 1, explicit_padding=True)
    shape = output_shape(x, weight, geometry, 1)
    if tuple(grad.shape) != shape or grad.dtype != x.dtype or grad.device != x.device:
        raise RuntimeError(f"expected the output gradient as a {x.dtype} tensor of shape "
                           f"{shape} on {x.device}, but got {grad.dtype} {tuple(grad.shape)} "
                           f"on {grad.device}")


def _stock_input_grad(grad, x, weight, stride, padding, dilation):
    """Stock aten.convolution_backward for x; asymmetric padding ('same' with an even span)
    pads x explicitly, since ATen's convolution pads both sides alike."""
    top, bottom, left, right = padding
    symmetric = top == bottom and left == right
    padded = x if symmetric else F.pad(x, (left, right, top, bottom))
    pads = [top, left] if symmetric else [0, 0]
    grad_x, _, _ = torch.ops.aten.convolution_backward(
        grad, padded, weight, None, stride, pads, dilation, False, [0, 0], 1,
        [True, False, False])
    return grad_x if symmetric else grad_x[:, :, top:top + x.shape[2], left:left + x.shape[3]]


_conv2d_triton.register_autograd(_backward, setup_context=_setup_context)


# -- stock convolution + one fused epilogue pass (cpu, cuda; grouped convs on triton) --------


@dataclass(frozen=True)
class _EpilogueOps:
    """One backend family's elementwise ops."""

    bn_prelu: object
    pixel_shuffle: object
    pixel_unshuffle: object


def _epilogue_ops(backend: str) -> _EpilogueOps:
    suffix = "_triton" if backend == "triton" else ""
    ns = torch.ops.pyimg
    return _EpilogueOps(getattr(ns, "bn_prelu" + suffix).default,
                        getattr(ns, "pixel_shuffle" + suffix).default,
                        getattr(ns, "pixel_unshuffle" + suffix).default)


def _stock_convolution(x, weight, bias, geometry: Geometry):
    fmt = output_memory_format(x)
    top, bottom, left, right = geometry.padding
    if not geometry.symmetric:  # ATen pads both sides alike
        x, (top, left) = F.pad(x, (left, right, top, bottom)), (0, 0)
    y = torch.ops.aten.convolution(x, weight, bias, list(geometry.stride), [top, left],
                                   list(geometry.dilation), False, [0, 0], geometry.groups)
    return y.contiguous(memory_format=fmt)


def _conv_then_epilogue(ops: _EpilogueOps, x, weight, bias, geometry, scale, shift, activation,
                        prelu_weight, negative_slope, residual, add_before_activation, r):
    # Without a scale the bias is the convolution's own (free in cuDNN / oneDNN); with one it
    # folds into the shift: (y + bias) * scale + shift == y * scale + (bias * scale + shift).
    y = _stock_convolution(x, weight, bias if scale is None else None, geometry)
    acc = accumulate_dtype(x)
    if scale is not None:
        scale = scale.to(acc)
        if bias is not None:
            shift = bias.to(acc) * scale + (0.0 if shift is None else shift.to(acc))
    if shift is not None:
        shift = shift.to(acc)
    if scale is None and residual is None:
        # bias + activation (+ shuffle) is the fused pixel_shuffle's own epilogue.
        if shift is None and activation == "none" and r == 1:
            return y
        alpha = None if prelu_weight is None else prelu_weight.to(x.dtype)
        return ops.pixel_shuffle(y, r, None if shift is None else shift.to(x.dtype),
                                 activation, alpha, negative_slope)
    if residual is not None and r > 1:
        residual = ops.pixel_unshuffle(residual, r)
    if residual is not None:
        residual = residual.to(x.dtype)
    zeros = torch.zeros(weight.shape[0], dtype=acc, device=x.device)
    ones = torch.ones_like(zeros)
    if add_before_activation:
        z = ops.bn_prelu(y, zeros, ones, scale, shift, None, residual, False)
        if activation == "none" and r == 1:
            return z
        alpha = None if prelu_weight is None else prelu_weight.to(x.dtype)
        return ops.pixel_shuffle(z, r, None, activation, alpha, negative_slope)
    z = ops.bn_prelu(y, zeros, ones, scale, shift, _as_prelu(activation, prelu_weight,
                                                             negative_slope, r, acc, x.device),
                     residual, False)
    return z if r == 1 else ops.pixel_shuffle(z, r, None, "none", None, 0.0)


def _as_prelu(activation, prelu_weight, negative_slope, r, acc, device):
    """bn_prelu's PReLU weight for the activation, per conv channel: relu is a PReLU of slope
    0 and leaky_relu one of its slope; a per-channel weight repeats over each r x r group."""
    if activation == "none":
        return None
    if activation != "prelu":
        slope = 0.0 if activation == "relu" else negative_slope
        return torch.full((1,), slope, dtype=acc, device=device)
    alpha = prelu_weight.to(acc).reshape(-1)
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
    if torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
        # As stock convolution under autocast: the convolution in the autocast dtype.
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
        residual = None if residual is None else residual.unsqueeze(0)
    geometry = check_geometry(x, weight, stride, padding, dilation, groups)
    check_epilogue(x, weight, bias, scale, shift, activation, prelu_weight, residual,
                   upscale_factor)
    _check_residual(residual, output_shape(x, weight, geometry, upscale_factor))
    backend = _backend.choose("conv2d", x.device, unsupported_dtype(x))
    epilogue = dict(scale=scale, shift=shift, activation=activation, prelu_weight=prelu_weight,
                    negative_slope=negative_slope, residual=residual,
                    add_before_activation=add_before_activation, upscale_factor=upscale_factor)
    if backend == "torch":
        padding = padding if isinstance(padding, str) else geometry.padding[::2]
        y = conv2d_reference(x, weight, bias, geometry.stride, padding, geometry.dilation,
                             groups, **epilogue)
    elif backend == "triton" and groups == 1:
        if residual is not None:
            residual = residual.to(x.dtype)
        y = _conv2d_triton(x, weight, bias, list(geometry.stride), list(geometry.padding),
                           list(geometry.dilation), scale, shift, activation, prelu_weight,
                           negative_slope, residual, add_before_activation, upscale_factor)
    else:
        y = _conv_then_epilogue(_epilogue_ops(backend), x, weight, bias, geometry,
                                *epilogue.values())
    return y.squeeze(0) if unbatched else y


def dilated_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   dilation=1, padding=0, stride=1, groups: int = 1,
                   **epilogue) -> torch.Tensor:
    """Dilated (atrous) convolution, issue 5's argument order: ``conv2d`` with dilation and
    padding first; ``epilogue`` takes conv2d's keyword arguments (scale, shift, activation,
    prelu_weight, negative_slope, residual, add_before_activation, upscale_factor)."""
    return conv2d(x, weight, bias, stride, padding, dilation, groups, **epilogue)


