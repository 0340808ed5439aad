"""Drop-in replacements for ``torch.nn`` modules, on pyimg's kernels.

Same constructor arguments and state_dict keys as the stock module they replace. Names that
no pyimg kernel backs yet are the stock modules themselves, so models can be written against
``pyimg.nn`` today and pick up the kernels as they land.
"""

from torch.nn import (  # stock until their pyimg kernels land (issues 3, 4, 5)
    BatchNorm2d,
    ConvTranspose2d,
    PReLU,
)

from pyimg.nn.batch_norm import BatchNormAdd, BatchNormPReLU
from pyimg.nn.conv import Conv2d, Conv2dBNAct
from pyimg.nn.fold import fold_batch_norm
from pyimg.nn.pixel_shuffle import PixelShuffle, PixelShuffleAct, PixelUnshuffle
from pyimg.nn.pooling import (
    DecoderUnpool,
    EncoderPool,
    MaxPool2d,
    MaxUnpool2d,
    PoolIndices,
    encoder_decoder_pair,
)
from pyimg.nn.residual import ResidualBlock
from pyimg.nn.upsample import UpsampleBlock

__all__ = [
    "BatchNorm2d",
    "BatchNormAdd",
    "BatchNormPReLU",
    "Conv2d",
    "Conv2dBNAct",
    "ConvTranspose2d",
    "DecoderUnpool",
    "EncoderPool",
    "MaxPool2d",
    "MaxUnpool2d",
    "PReLU",
    "PixelShuffle",
    "PixelShuffleAct",
    "PixelUnshuffle",
    "PoolIndices",
    "ResidualBlock",
    "UpsampleBlock",
    "encoder_decoder_pair",
    "fold_batch_norm",
]
