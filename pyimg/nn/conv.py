"""Drop-in convolution modules on pyimg.ops.conv2d: ``Conv2d`` and the fused conv -> BatchNorm
-> activation ``Conv2dBNAct``."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pyimg._activation import CONV_ACTIVATIONS, MODULE_ACTIVATIONS
from pyimg._format import accumulate_dtype, output_memory_format
from pyimg.nn._eval_cache import BatchNormFold, CachesForEval
from pyimg.nn.batch_norm import _functional_arguments
from pyimg.ops import batch_norm_prelu, conv2d

# The activation modules Conv2dBNAct fuses, by the name pyimg.ops.conv2d uses.
_ACTIVATIONS = {type(None): "none"} | {
    module: name for module, name in MODULE_ACTIVATIONS.items() if name in CONV_ACTIVATIONS}


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` (same arguments, same state) running ``pyimg.ops.conv2d``; a
    padding_mode other than 'zeros' pads with stock ``F.pad`` first. The output keeps x's
    memory format."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "zeros":
            return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups)
        # Stock's circular F.pad returns NCHW for a channels_last x: back to x's format.
        padded = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        padded = padded.contiguous(memory_format=output_memory_format(x))
        return conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation,
                      self.groups)


class Conv2dBNAct(CachesForEval):
    """``nn.Sequential(conv, nn.BatchNorm2d(out_channels), act)`` with act None, ReLU,
    LeakyReLU or PReLU; state_dict keys ``conv.*``, ``bn.*``, ``act.*`` as that Sequential's
    (with indices named).

    Training (or a BatchNorm without running statistics): the convolution, then one fused
    BatchNorm + activation pass over the batch's statistics, updating the running statistics
    exactly as ``nn.BatchNorm2d``. Eval: BatchNorm folded into the convolution's epilogue as a
    per-channel scale and shift (the convolution's bias included), one op in all. The fold is
    computed once and kept until BatchNorm's state changes; while autograd records through
    BatchNorm's weight or bias, or the convolution's bias, only what does not need a gradient
    is kept (see pyimg/nn/_eval_cache.py).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: nn.Module | None = None):
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or type(bn) is not nn.BatchNorm2d:
            raise TypeError(f"expected Conv2d and BatchNorm2d, got {type(conv).__name__} and "
                            f"{type(bn).__name__}")
        if type(act) not in _ACTIVATIONS:
            raise TypeError(f"cannot fuse {type(act).__name__}; expected None, ReLU, LeakyReLU "
                            "or PReLU")
        if bn.num_features != conv.out_channels:
            raise ValueError(f"BatchNorm2d has {bn.num_features} features but the convolution "
                             f"{conv.out_channels} output channels")
        self.conv, self.bn, self.act = conv, bn, act
        self.activation = _ACTIVATIONS[type(act)]
        self._fold = BatchNormFold()

    @classmethod
    def from_modules(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d,
                     act: nn.Module | None = None) -> "Conv2dBNAct":
        """Build from the stock modules it replaces (copies: weights, buffers, training mode)."""
        fused = cls(*(copy.deepcopy(m) for m in (conv, bn, act)))
        fused.training = conv.training
        return fused

    def _negative_slope(self) -> float:
        return self.act.negative_slope if self.activation == "leaky_relu" else 0.01

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if self.training or conv.padding_mode != "zeros":
            return self._forward_unfolded(x)
        fold = self._fold.get(self.bn, conv.bias, accumulate_dtype(x))
        if fold is None:
            return self._forward_unfolded(x)
        scale, shift = fold  # the convolution's bias included
        prelu_weight = self.act.weight if self.activation == "prelu" else None
        return conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                      conv.groups, scale=scale, shift=shift, activation=self.activation,
                      prelu_weight=prelu_weight, negative_slope=self._negative_slope())

    def _forward_unfolded(self, x: torch.Tensor) -> torch.Tensor:
        y = Conv2d.forward(self.conv, x)
        mean, var, training, momentum = _functional_arguments(self.bn, y)
        # leaky_relu is a PReLU of constant slope for the fused pass.
        if self.activation == "prelu":
            slope = self.act.weight
        elif self.activation == "leaky_relu":
            slope = torch.full((1,), self._negative_slope(), dtype=accumulate_dtype(y),
                               device=y.device)
        else:
            slope = None
        return batch_norm_prelu(y, mean, var, self.bn.weight, self.bn.bias, slope, training,
                                momentum, self.bn.eps, relu=self.activation == "relu")
