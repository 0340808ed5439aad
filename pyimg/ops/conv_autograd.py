"""Autograd of the conv2d family's ops (conv2d_triton, depthwise_conv2d): the epilogue's
gradient in torch ops, shared; each op supplies how to recompute its convolution output and
how to take its convolution's input and weight gradients.

The conv output is recomputed (not saved) when the gradient needs it: an activation's
derivative or scale's gradient; training memory stays that of stock.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pyimg._format import accumulate_dtype, with_canonical_strides

# Recompute(x, weight, bias, ctx) -> conv(x) + bias; ConvGrads(g, x, weight, ctx, needs) ->
# (dL/dx or None, dL/dweight or None) from dL/d(conv output) g in x's dtype.
Recompute = Callable[..., torch.Tensor]
ConvGrads = Callable[..., tuple]


def make_setup_context(arguments: Sequence[str]):
    """setup_context for an op whose inputs are named by arguments (conv2d_triton's order;
    upscale_factor may be absent, meaning 1)."""
    def setup_context(ctx, inputs, output):
        args = dict(zip(arguments, inputs, strict=True))
        args.setdefault("upscale_factor", 1)
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

    return setup_context


def make_backward(arguments: Sequence[str], recompute: Recompute, conv_grads: ConvGrads):
    """The backward of an op whose inputs are named by arguments."""
    def backward(ctx, grad):
        grads = _gradients(ctx, grad, recompute, conv_grads)
        return tuple(grads.get(name) for name in arguments)

    return backward


def _per_channel(t, acc):
    return None if t is None else t.to(acc).view(1, -1, 1, 1)


def _gradients(ctx, grad, recompute: Recompute, conv_grads: ConvGrads) -> dict:
    """Every input's gradient by name: the epilogue's here, the convolution's by conv_grads."""
    x, weight, bias, scale, shift, prelu_weight, residual = ctx.saved_tensors
    acc, r, needs = accumulate_dtype(x), ctx.upscale_factor, ctx.needs
    # Everything in conv-output space (N, C_out, OH, OW): unshuffle what lives in the output.
    g = _unshuffle(grad.to(acc), r)
    s = _per_channel(scale, acc)
    biased = None  # conv(x) + bias, recomputed
    if ctx.activation != "none" or needs["scale"]:
        biased = recompute(x, weight, bias, ctx).to(acc)
    grad_prelu = None
    if ctx.activation != "none":
        z = biased if s is None else biased * s
        if shift is not None:
            z = z + _per_channel(shift, acc)
        if residual is not None:
            z = z + _unshuffle(residual.to(acc), r)
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
    grad_x, grad_weight = conv_grads(g.to(x.dtype), x, weight, ctx, needs)
    return {"x": grad_x, "weight": grad_weight, "bias": grad_bias, "scale": grad_scale,
            "shift": grad_shift, "prelu_weight": grad_prelu, "residual": grad_residual}


def _unshuffle(t, r):
    # Stock pixel_unshuffle returns an empty input's own shape (torch 2.14).
    if t.numel() == 0:
        n, c, h, w = t.shape
        return t.new_zeros(n, c * r * r, h // r, w // r)
    return F.pixel_unshuffle(t, r)


def _activation_backward(g, z, ctx, prelu_weight, r):
    """(dL/dz, dL/d prelu_weight) from dL/dy and the pre-activation z (conv space)."""
    if ctx.activation == "relu":
        # As ATen's threshold_backward: the gradient passes at a NaN z.
        return torch.where(z <= 0, 0.0, g), None
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


def stock_conv_grads(grad, x, weight, stride, padding, dilation, groups, need_x, need_weight):
    """Stock aten.convolution_backward for x and weight; asymmetric padding ('same' with an
    even span) pads x explicitly, since ATen's convolution pads both sides alike."""
    top, bottom, left, right = padding
    symmetric = top == bottom and left == right
    # Stock's weight gradient is wrong for some layouts with odd size-1 strides.
    grad, x, weight = (with_canonical_strides(t) for t in (grad, x, weight))
    padded = x if symmetric else F.pad(x, (left, right, top, bottom))
    pads = [top, left] if symmetric else [0, 0]
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad, padded, weight, None, stride, pads, dilation, False, [0, 0], groups,
        [need_x, need_weight, False])
    if grad_x is not None and not symmetric:
        grad_x = grad_x[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    return grad_x, grad_weight
