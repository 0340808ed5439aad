"""SRResNet's residual block (Ledig et al. 2017, "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network"; after He et al. 2016):
conv -> BN -> PReLU -> conv -> BN, plus the block's input, on pyimg's fused kernels."""

import copy

import torch
from torch import nn

from pyimg._format import accumulate_dtype
from pyimg.nn._eval_cache import BatchNormFold, CachesForEval
from pyimg.nn.batch_norm import _functional_arguments
from pyimg.ops import batch_norm_add, batch_norm_prelu, conv2d


def check_residual_modules(conv1, bn1, prelu, conv2, bn2) -> None:
    """Raise unless these stock modules form a block whose output has its input's shape."""
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.PReLU, nn.Conv2d, nn.BatchNorm2d)
    modules = (conv1, bn1, prelu, conv2, bn2)
    # Exact types: a subclass may compute something else. Conv2d subclasses (pyimg's drop-in)
    # only hold the weights here.
    if not all(isinstance(m, k) if k is nn.Conv2d else type(m) is k
               for m, k in zip(modules, kinds, strict=True)):
        raise TypeError("expected Conv2d, BatchNorm2d, PReLU, Conv2d, BatchNorm2d, got "
                        + ", ".join(type(m).__name__ for m in modules))
    channels = conv1.in_channels
    for conv in (conv1, conv2):
        same_size = not isinstance(conv.padding, str) and all(
            2 * p == d * (k - 1)
            for p, d, k in zip(conv.padding, conv.dilation, conv.kernel_size, strict=True))
        if not same_size or conv.padding_mode != "zeros" or conv.stride != (1, 1) \
                or conv.in_channels != channels or conv.out_channels != channels:
            raise ValueError(f"{conv} does not keep its input's shape with numeric zero "
                             "padding, as the residual sum needs")
    if bn1.num_features != channels or bn2.num_features != channels or \
            prelu.num_parameters not in (1, channels):
        raise ValueError(f"BatchNorm2d / PReLU sizes do not match {channels} channels")


class ResidualBlock(CachesForEval):
    """``x + bn2(conv2(prelu(bn1(conv1(x)))))`` with 'same'-padded k x k convolutions of
    ``channels`` channels; state_dict keys ``conv1.*``, ``bn1.*``, ``prelu.weight``,
    ``conv2.*``, ``bn2.*``.

    Training: the convolutions without an epilogue (on the cpu and cuda backends stock's,
    cuDNN's backward included, kept in x's memory format), each followed by one fused pass,
    BatchNorm+PReLU then BatchNorm+residual sum; the running statistics are updated exactly
    as ``nn.BatchNorm2d`` updates them. Eval: BatchNorm folded into the convolutions'
    epilogues (per-channel scale and shift, the convolutions' biases included), so inference
    is two pyimg convolutions, the first ending in PReLU and the second in the residual sum.

    The folds are computed once and kept until BatchNorm's state changes, saving those few
    small per-channel kernels per call; while autograd records through a BatchNorm's weight or
    bias or a convolution's bias, only what does not need a gradient is kept, and scale and
    shift cost one to three differentiable ops per call (see pyimg/nn/_eval_cache.py).
    """

    def __init__(self, channels: int, kernel_size: int = 3, bias: bool = True,
                 eps: float = 1e-5, momentum: float | None = 0.1, prelu_parameters: int = 1,
                 init: float = 0.25, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                               bias=bias, **kw)
        self.bn1 = nn.BatchNorm2d(channels, eps, momentum, **kw)
        self.prelu = nn.PReLU(prelu_parameters, init, **kw)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                               bias=bias, **kw)
        self.bn2 = nn.BatchNorm2d(channels, eps, momentum, **kw)
        self._fold1, self._fold2 = BatchNormFold(), BatchNormFold()

    @classmethod
    def from_modules(cls, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, prelu: nn.PReLU,
                     conv2: nn.Conv2d, bn2: nn.BatchNorm2d) -> "ResidualBlock":
        """Build from the stock modules of ``x + bn2(conv2(prelu(bn1(conv1(x)))))`` (copies:
        weights, buffers, hyper-parameters and training mode)."""
        check_residual_modules(conv1, bn1, prelu, conv2, bn2)
        block = cls(1)
        block.conv1, block.bn1, block.prelu, block.conv2, block.bn2 = (
            copy.deepcopy(m) for m in (conv1, bn1, prelu, conv2, bn2))
        block.training = conv1.training
        return block

    @torch.no_grad()
    def fuse(self) -> "ResidualBlock":
        """Compute the BatchNorm folds for inference now rather than at the first eval call
        (for inputs of the weights' dtype); returns self."""
        self._folds_for(accumulate_dtype(self.conv1.weight))
        return self

    def unfuse(self) -> None:
        """Drop the cached folds."""
        self._clear_eval_caches()

    def _folds_for(self, acc: torch.dtype):
        """((scale1, shift1), (scale2, shift2)) for inputs that accumulate in acc; None when
        a BatchNorm keeps no running statistics."""
        fold1 = self._fold1.get(self.bn1, self.conv1.bias, acc)
        fold2 = None if fold1 is None else self._fold2.get(self.bn2, self.conv2.bias, acc)
        return None if fold2 is None else (fold1, fold2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folds = None if self.training else self._folds_for(accumulate_dtype(x))
        if folds is None:
            return self._forward_unfolded(x)
        # The convolutions' biases are in the shifts.
        (scale1, shift1), (scale2, shift2) = folds
        conv1, conv2 = self.conv1, self.conv2
        y = conv2d(x, conv1.weight, None, conv1.stride, conv1.padding, conv1.dilation,
                   conv1.groups, scale=scale1, shift=shift1, activation="prelu",
                   prelu_weight=self.prelu.weight)
        return conv2d(y, conv2.weight, None, conv2.stride, conv2.padding, conv2.dilation,
                      conv2.groups, scale=scale2, shift=shift2, residual=x)

    def _forward_unfolded(self, x: torch.Tensor) -> torch.Tensor:
        # Training, or BatchNorm without running statistics: normalizes by the batch's.
        y = conv2d(x, self.conv1.weight, self.conv1.bias, self.conv1.stride, self.conv1.padding,
                   self.conv1.dilation, self.conv1.groups)
        mean, var, training, momentum = _functional_arguments(self.bn1, y)
        y = batch_norm_prelu(y, mean, var, self.bn1.weight, self.bn1.bias, self.prelu.weight,
                             training, momentum, self.bn1.eps)
        y = conv2d(y, self.conv2.weight, self.conv2.bias, self.conv2.stride, self.conv2.padding,
                   self.conv2.dilation, self.conv2.groups)
        mean, var, training, momentum = _functional_arguments(self.bn2, y)
        return batch_norm_add(y, x, mean, var, self.bn2.weight, self.bn2.bias, training,
                              momentum, self.bn2.eps)
