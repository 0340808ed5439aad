"""Folding an inference-mode BatchNorm2d into the convolution before it.

In eval, BN is the per-channel affine map y = (x - mean) * gamma / sqrt(var + eps) + beta
(Ioffe & Szegedy 2015), so conv followed by BN is one convolution with its weight scaled per
output channel and its bias shifted: the BN pass disappears at inference.
"""

import copy

import torch
from torch import nn


def batch_norm_scale_shift(bn: nn.BatchNorm2d, dtype: torch.dtype = torch.float32,
                           conv_bias: torch.Tensor | None = None):
    """(scale, shift), one value per channel, with ``bn(z + conv_bias) == z * scale + shift``
    in eval mode (conv_bias: the bias of the convolution before bn, or None): computed in
    float64, rounded once to ``dtype``; differentiable in bn's weight and bias and conv_bias."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics "
                         "(track_running_stats=False)")
    scale, centered = batch_norm_statistics_terms(bn, torch.float64)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    if conv_bias is not None:
        centered = centered + conv_bias.double()
    shift = centered * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale.to(dtype), shift.to(dtype)


def batch_norm_statistics_terms(bn: nn.BatchNorm2d, dtype: torch.dtype = torch.float32):
    """(inv_std, neg_mean) = (1 / sqrt(running_var + eps), -running_mean), one value per
    channel: the part of the fold that BatchNorm's running statistics alone decide, computed in
    float64 and rounded once to ``dtype``."""
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    return inv_std.to(dtype), (-bn.running_mean).to(dtype)


def affine_scale_shift(weight: torch.Tensor | None, bias: torch.Tensor | None,
                       inv_std: torch.Tensor, neg_mean: torch.Tensor,
                       conv_bias: torch.Tensor | None = None):
    """``batch_norm_scale_shift``'s (scale, shift) from ``batch_norm_statistics_terms`` and
    the tensors that get gradients, BatchNorm's weight and bias and the convolution's bias:
    scale = weight * inv_std, shift = bias + scale * (conv_bias + neg_mean), two or three ops
    that autograd differentiates exactly (the float64 fold takes ten or more). Rounded in the
    terms' dtype at each op, so within two ulp of the float64 fold's magnitudes."""
    scale = inv_std if weight is None else weight * inv_std
    centered = neg_mean if conv_bias is None else conv_bias + neg_mean
    if bias is None:
        return scale, scale * centered
    return scale, torch.addcmul(bias, scale, centered)


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` with ``bn`` in eval mode (its running statistics);
    the inputs are left unchanged. The folded convolution always has a bias."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"expected Conv2d and BatchNorm2d, got {type(conv).__name__} and "
                        f"{type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"BatchNorm2d has {bn.num_features} features but the convolution "
                         f"{conv.out_channels} output channels")
    # In float64, then rounded once to the convolution's dtype.
    scale, bias = batch_norm_scale_shift(bn, torch.float64, conv.bias)
    folded = copy.deepcopy(conv)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    folded.weight = nn.Parameter(weight.to(conv.weight.dtype))
    folded.bias = nn.Parameter(bias.to(conv.weight.dtype))
    return folded
