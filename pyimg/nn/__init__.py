"""Drop-in replacements for ``torch.nn`` modules, on pyimg's kernels.

Same constructor arguments and state_dict keys as the stock module they replace. Names that
no pyimg kernel backs yet are the stock modules themselves, so models can be written against
``pyimg.nn`` today and pick up the kernels as they land.
"""

from torch.nn import (  # stock until their pyimg kernels land (issues 3, 4, 5)
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    PReLU,
)

from pyimg.nn.batch_norm import BatchNormAdd, BatchNormPReLU
from pyimg.nn.fold import fold_batch_norm
from pyimg.nn.pixel_shuffle import PixelShuffle, PixelShuffleAct, PixelUnshuffle
from pyimg.nn.pooling import MaxPool2d, MaxUnpool2d

__all__ = [
    "BatchNorm2d",
    "BatchNormAdd",
    "BatchNormPReLU",
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "MaxUnpool2d",
    "PReLU",
    "PixelShuffle",
    "PixelShuffleAct",
    "PixelUnshuffle",
    "fold_batch_norm",
]
