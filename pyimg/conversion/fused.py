"""The modules ``convert`` calls in place of a fused pattern.

Each holds the stock modules of its pattern by reference, unregistered, and reads their
parameters, buffers and training mode at every call. Those modules stay where the model has
them, so the state_dict keys, an optimizer over the parameters and ``train()`` / ``eval()``
all keep working on them; the fused modules themselves hold no state.
"""

import torch
from torch import nn

from pyimg._activation import apply_activation
from pyimg._format import accumulate_dtype
from pyimg.conversion.graph import Activation
from pyimg.nn._eval_cache import BatchNormFold, CachesForEval
from pyimg.nn.batch_norm import _functional_arguments
from pyimg.ops import batch_norm_add, batch_norm_prelu, conv2d, pixel_shuffle
from pyimg.ops.conv_checks import check_geometry, output_shape


def _activate(y, activation: Activation | None):
    if activation is None:
        return y
    return apply_activation(y, activation.kind, activation.weight(), activation.negative_slope)


def _prelu_slope(activation: Activation | None, like: torch.Tensor) -> torch.Tensor | None:
    """The PReLU weight computing ``activation`` (relu is slope 0, leaky_relu its slope)."""
    if activation is None:
        return None
    if activation.kind == "prelu":
        return activation.weight()
    slope = 0.0 if activation.kind == "relu" else activation.negative_slope
    return torch.full((1,), slope, dtype=accumulate_dtype(like), device=like.device)


def _label(activation: Activation | None) -> list[str]:
    return [] if activation is None else [activation.kind]


class FusedConv2d(CachesForEval):
    """``conv -> [batch norm] -> [* res_scale] -> [pixel shuffle] -> [activation]`` with an
    optional residual added before or after the activation, as one ``pyimg.ops.conv2d``.

    With a batch norm in training mode (or without running statistics) the statistics are the
    batch's: the convolution, then one fused batch-norm pass (with the activation, or with
    the residual sum when it comes before the activation), updating the running statistics
    as ``nn.BatchNorm2d`` does. A residual the output does not have the shape and dtype of
    (a broadcast sum, a mixed-precision one) is added by the stock ops in the stock order.
    In eval the batch norm folds into a per-channel scale and shift, kept between calls while
    its tensors are unchanged (pyimg/nn/_eval_cache.py).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None,
                 res_scale: float = 1.0, upscale_factor: int = 1,
                 activation: Activation | None = None, residual: str | None = None):
        super().__init__()
        if residual not in (None, "before", "after"):
            raise ValueError(f"residual must be None, 'before' or 'after', got {residual!r}")
        self._held = {"conv": conv, "bn": bn}
        self.res_scale = res_scale
        self.upscale_factor = upscale_factor
        self.activation = activation
        self.residual = residual
        self._fold = BatchNormFold()

    @property
    def conv(self) -> nn.Conv2d:
        return self._held["conv"]

    @property
    def bn(self) -> nn.BatchNorm2d | None:
        return self._held["bn"]

    def describe(self) -> str:
        parts = (["batch_norm"] if self.bn is not None else []) + (
            [f"scale {self.res_scale:g}"] if self.res_scale != 1.0 else []) + (
            [f"pixel_shuffle {self.upscale_factor}"] if self.upscale_factor > 1 else [])
        activation = _label(self.activation)
        if self.residual == "before":
            parts += ["+ residual", *activation]
        else:
            parts += activation + (["+ residual"] if self.residual else [])
        return f"pyimg.ops.conv2d[{', '.join(parts)}]"

    def extra_repr(self) -> str:
        return self.describe()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None and not self._fits(x, residual):
            return self._unfused(x, residual)
        bn = self.bn
        if bn is not None and (bn.training or bn.running_mean is None or bn.running_var is None):
            return self._with_batch_statistics(x, residual)
        conv, act = self.conv, self.activation
        acc = accumulate_dtype(x)
        bias, scale, shift = conv.bias, None, None
        if bn is not None:
            scale, shift = self._fold.get(bn, bias, acc)  # the convolution's bias included
            bias = None
        if self.res_scale != 1.0:
            scale = torch.full((conv.out_channels,), self.res_scale, dtype=acc,
                               device=x.device) if scale is None else scale * self.res_scale
            shift = None if shift is None else shift * self.res_scale
        return conv2d(x, conv.weight, bias, conv.stride, conv.padding, conv.dilation,
                      conv.groups, scale=scale, shift=shift,
                      activation="none" if act is None else act.kind,
                      prelu_weight=None if act is None else act.weight(),
                      negative_slope=0.01 if act is None else act.negative_slope,
                      residual=residual, add_before_activation=self.residual == "before",
                      upscale_factor=self.upscale_factor)

    def _fits(self, x: torch.Tensor, residual: torch.Tensor) -> bool:
        """Whether residual has the output's shape and dtype (the fused sum's contract)."""
        conv = self.conv
        dtype = x.dtype
        if torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
            dtype = torch.get_autocast_dtype(x.device.type)
        x4 = x if x.dim() == 4 else x.unsqueeze(0)
        geometry = check_geometry(x4, conv.weight, conv.stride, conv.padding, conv.dilation,
                                  conv.groups)
        shape = output_shape(x4, conv.weight, geometry, self.upscale_factor)[4 - x.dim():]
        return residual.dtype == dtype and tuple(residual.shape) == tuple(shape)

    def _with_batch_statistics(self, x, residual):
        conv, bn, act, r = self.conv, self.bn, self.activation, self.upscale_factor
        y = conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                   conv.groups)
        mean, var, training, momentum = _functional_arguments(bn, y)
        weight, bias = bn.weight, bn.bias
        if self.res_scale != 1.0:
            weight = self.res_scale * (torch.ones_like(mean) if weight is None else weight)
            bias = None if bias is None else self.res_scale * bias
        if r == 1 and self.residual == "before":
            y = batch_norm_add(y, residual, mean, var, weight, bias, training, momentum, bn.eps)
            return _activate(y, act)
        fuse_activation = r == 1 and act is not None
        y = batch_norm_prelu(y, mean, var, weight, bias,
                             _prelu_slope(act, y) if fuse_activation else None, training,
                             momentum, bn.eps)
        if r > 1:
            y = pixel_shuffle(y, r)
        if self.residual == "before":
            y = y + residual
        if not fuse_activation:
            y = _activate(y, act)
        return y + residual if self.residual == "after" else y

    def _unfused(self, x, residual):
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y)
        if self.res_scale != 1.0:
            y = y * self.res_scale
        if self.upscale_factor > 1:
            y = torch.nn.functional.pixel_shuffle(y, self.upscale_factor)
        if self.residual == "before":
            y = y + residual
        y = _activate(y, self.activation)
        return y + residual if self.residual == "after" else y


class FusedBatchNorm(nn.Module):
    """``batch norm -> activation`` (``pyimg.ops.batch_norm_prelu``) or ``batch norm +
    residual`` (``pyimg.ops.batch_norm_add``), training and eval, running statistics updated
    as ``nn.BatchNorm2d`` does; a residual not of the input's shape and dtype is added by the
    stock ops."""

    def __init__(self, bn: nn.BatchNorm2d, activation: Activation | None = None,
                 residual: bool = False):
        super().__init__()
        self._held = {"bn": bn}
        self.activation = activation
        self.residual = residual

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self._held["bn"]

    def describe(self) -> str:
        if self.residual:
            return "pyimg.ops.batch_norm_add"
        return f"pyimg.ops.batch_norm_prelu[{self.activation.kind}]"

    def extra_repr(self) -> str:
        return self.describe()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        bn = self.bn
        if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
            return bn(x) + residual
        mean, var, training, momentum = _functional_arguments(bn, x)
        if residual is not None:
            return batch_norm_add(x, residual, mean, var, bn.weight, bn.bias, training,
                                  momentum, bn.eps)
        return batch_norm_prelu(x, mean, var, bn.weight, bn.bias,
                                _prelu_slope(self.activation, x), training, momentum, bn.eps)


class PixelShuffleActivation(nn.Module):
    """``pixel shuffle -> activation`` as one ``pyimg.ops.pixel_shuffle`` (relu, leaky_relu,
    prelu, tanh, sigmoid)."""

    def __init__(self, upscale_factor: int, activation: Activation):
        super().__init__()
        self.upscale_factor = upscale_factor
        self.activation = activation

    def describe(self) -> str:
        return f"pyimg.ops.pixel_shuffle[{self.activation.kind}]"

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}, activation={self.activation.kind!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.activation
        return pixel_shuffle(x, self.upscale_factor, activation=act.kind, weight=act.weight(),
                             negative_slope=act.negative_slope)
