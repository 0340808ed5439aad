"""Drop-in replacements for ``torch.nn`` modules, on pyimg's kernels.

Same constructor arguments and state_dict keys as the stock module they replace.
``BatchNorm2d``, ``ConvTranspose2d`` and ``PReLU`` are the stock modules themselves (no pyimg
kernel of their own; batch norm and PReLU run fused in ``BatchNormPReLU``, ``BatchNormAdd``,
``Conv2dBNAct``), so a model written against ``pyimg.nn`` needs no stock import.
"""

from torch.nn import (
    BatchNorm2d,
    ConvTranspose2d,
    PReLU,
)

from pyimg.nn.batch_norm import BatchNormAdd, BatchNormPReLU
from pyimg.nn.conv import Conv2d, Conv2dBNAct
from pyimg.nn.fold import fold_batch_norm
from pyimg.nn.pixel_shuffle import PixelShuffle, PixelShuffleAct, PixelUnshuffle
from pyimg.nn.pooling import MaxPool2d, MaxUnpool2d
from pyimg.nn.residual import ResidualBlock
from pyimg.nn.upsample import UpsampleBlock

__all__ = [
    "BatchNorm2d",
    "BatchNormAdd",
    "BatchNormPReLU",
    "Conv2d",
    "Conv2dBNAct",
    "ConvTranspose2d",
    "MaxPool2d",
    "MaxUnpool2d",
    "PReLU",
    "PixelShuffle",
    "PixelShuffleAct",
    "PixelUnshuffle",
    "ResidualBlock",
    "UpsampleBlock",
    "fold_batch_norm",
]
