"""Drop-in replacements for ``torch.nn`` modules, on pyimg's kernels.

Same constructor arguments and state_dict keys as the stock module they replace. Names that
no pyimg kernel backs yet are the stock modules themselves, so models can be written against
``pyimg.nn`` today and pick up the kernels as they land.
"""

from torch.nn import (  # stock until their pyimg kernels land (issues 3, 4, 5)
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    MaxUnpool2d,
    PReLU,
)

from pyimg.nn.pixel_shuffle import PixelShuffle, PixelShuffleAct, PixelUnshuffle

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "MaxUnpool2d",
    "PReLU",
    "PixelShuffle",
    "PixelShuffleAct",
    "PixelUnshuffle",
]
