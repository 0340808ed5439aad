"""Drop-in max-pool / max-unpool modules on pyimg's kernels, and SegNet's encoder-decoder pair
(Badrinarayanan et al. 2017): the encoder keeps where each maximum came from, the decoder
puts the values back there."""

from typing import NamedTuple

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


class PoolIndices(NamedTuple):
    """What the encoder hands the decoder: compact indices and the pooled input's size."""

    indices: torch.Tensor
    size: tuple[int, int]


class EncoderPool(nn.Module):
    """SegNet's encoder pool: max-pool returning (values, PoolIndices) with compact uint8
    indices, 8x less index memory and traffic than stock's int64 ones."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.pool = MaxPool2d(kernel_size, stride, padding, return_indices=True,
                              compact_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, PoolIndices]:
        y, indices = self.pool(x)
        return y, PoolIndices(indices, tuple(x.shape[-2:]))


class DecoderUnpool(nn.Module):
    """SegNet's decoder unpool: undoes an EncoderPool of the same geometry, odd input sizes
    included (it restores the pooled input's size)."""

    def __init__(self, kernel_size=2, stride=None, padding=0):
        super().__init__()
        self.unpool = MaxUnpool2d(kernel_size, stride, padding)

    def forward(self, x: torch.Tensor, pooled: PoolIndices) -> torch.Tensor:
        return self.unpool(x, pooled.indices, pooled.size)


def encoder_decoder_pair(kernel_size=2, stride=None, padding=0):
    """An EncoderPool and the DecoderUnpool of the same geometry."""
    return (EncoderPool(kernel_size, stride, padding),
            DecoderUnpool(kernel_size, stride, padding))
