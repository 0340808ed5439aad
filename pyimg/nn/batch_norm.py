"""Batch normalization fused with PReLU or with a residual sum, on pyimg's kernels.

``BatchNormPReLU`` holds a stock ``nn.BatchNorm2d`` as ``bn`` and a stock ``nn.PReLU`` as
``prelu``: only their parameters and buffers are used, so its state_dict keys are those of
``nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c), prelu=nn.PReLU()))`` (``bn.weight``,
``bn.bias``, ``bn.running_mean``, ``bn.running_var``, ``bn.num_batches_tracked``,
``prelu.weight``), and ``module.bn`` / ``module.prelu`` load from and into the stock modules
directly. ``BatchNormAdd`` is an ``nn.BatchNorm2d`` (same state) whose forward takes the residual.
"""

import copy

import torch
from torch import nn

from pyimg.ops.batch_norm import batch_norm_add, batch_norm_prelu


def _functional_arguments(bn: nn.BatchNorm2d, x: torch.Tensor):
    """(running_mean, running_var, training, momentum) as nn.BatchNorm2d.forward derives them,
    counting the batch in num_batches_tracked as it does."""
    bn._check_input_dim(x)
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        # momentum=None: a cumulative moving average.
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    training = bn.training or (bn.running_mean is None and bn.running_var is None)
    use_running = not bn.training or bn.track_running_stats
    return (bn.running_mean if use_running else None, bn.running_var if use_running else None,
            training, momentum)


class BatchNormPReLU(nn.Module):
    """``nn.Sequential(nn.BatchNorm2d(num_features, ...), nn.PReLU(num_parameters, init))`` in
    one pass over the input (two when training). Training updates the running statistics and
    ``num_batches_tracked`` exactly as ``nn.BatchNorm2d``; eval uses the running statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, num_parameters: int = 1,
                 init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats,
                                 device=device, dtype=dtype)
        self.prelu = nn.PReLU(num_parameters, init, device=device, dtype=dtype)

    @classmethod
    def from_modules(cls, bn: nn.BatchNorm2d, prelu: nn.PReLU) -> "BatchNormPReLU":
        """Build from a stock BatchNorm2d and the PReLU after it (copies: weights, buffers,
        hyper-parameters and training mode)."""
        if type(bn) is not nn.BatchNorm2d or type(prelu) is not nn.PReLU:
            raise TypeError(f"expected BatchNorm2d and PReLU, got {type(bn).__name__} and "
                            f"{type(prelu).__name__}")
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused.bn, fused.prelu = copy.deepcopy(bn), copy.deepcopy(prelu)
        fused.training = bn.training
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        running_mean, running_var, training, momentum = _functional_arguments(self.bn, x)
        return batch_norm_prelu(x, running_mean, running_var, self.bn.weight, self.bn.bias,
                                self.prelu.weight, training, momentum, self.bn.eps)


class BatchNormAdd(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose forward adds a residual in the same pass:
    ``forward(x, residual) = bn(x) + residual``. Same arguments and state as BatchNorm2d."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        running_mean, running_var, training, momentum = _functional_arguments(self, x)
        return batch_norm_add(x, residual, running_mean, running_var, self.weight, self.bias,
                              training, momentum, self.eps)
