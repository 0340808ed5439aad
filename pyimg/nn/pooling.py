"""Drop-in max-pool / max-unpool modules on pyimg's kernels."""

import torch
from torch import nn

from pyimg.ops import max_pool2d_with_indices, max_unpool2d


class MaxPool2d(nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on pyimg's kernels (same arguments, no state). With
    ``compact_indices=True`` the indices are uint8 window taps, which only pyimg's
    ``MaxUnpool2d`` (same kernel_size, stride, padding; dilation 1) reads."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False,
                 compact_indices: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        self.compact_indices = compact_indices

    def forward(self, x: torch.Tensor):
        y, indices = max_pool2d_with_indices(x, self.kernel_size, self.stride, self.padding,
                                             self.dilation, self.ceil_mode, self.compact_indices)
        return (y, indices) if self.return_indices else y


class MaxUnpool2d(nn.MaxUnpool2d):
    """``torch.nn.MaxUnpool2d`` on pyimg's kernels: deterministic, takes flat (int64) or
    compact (uint8) indices; see ``pyimg.ops.max_unpool2d`` for duplicate indices."""

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size=None) -> torch.Tensor:
        return max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)
