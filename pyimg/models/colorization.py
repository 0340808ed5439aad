"""Automatic colourisation with dilated convolutions (Zhang, Isola & Efros, ECCV 2016,
"Colorful Image Colorization")."""

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import crop, pad_to_multiple

# (channels, convs, stride of the last conv, dilation) of conv1 ... conv7: the paper's Table 4.
_BLOCKS = ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2),
           (512, 3, 1, 2), (512, 3, 1, 1))


@register
class ColorizationNet(nn.Module):
    """Zhang et al.'s (ECCV 2016) colourisation network with a regression head: grey (the L channel)
    in, the two ab chrominance channels out at the input's full resolution.

    conv1-conv7 of the paper's Table 4 (3x3 conv-ReLU layers, batch norm after each block,
    three stride-2 steps, conv5/conv6 dilated by 2 to widen the receptive field without
    losing resolution), conv8 (a 4x4 stride-2 transposed conv and two convs, 256 channels),
    then a 1x1 conv to the ``out_channels`` ab values (the paper's regression baseline;
    its 313-bin classification head with class rebalancing is not reproduced), upsampled
    bilinearly from 1/4 to full resolution as the paper does. ``width`` scales all channel
    counts (1.0 is the paper). Input size: any; the input is mirror-padded to a multiple of
    8 and the output cropped back.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for channels, convs, stride, dilation in _BLOCKS:
            channels = max(1, round(channels * width))
            for i in range(convs):
                layers += [pnn.Conv2d(cin, channels, 3, stride if i == convs - 1 else 1,
                                      padding=dilation, dilation=dilation),
                           nn.ReLU(inplace=True)]
                cin = channels
            layers.append(pnn.BatchNorm2d(channels))
        c8 = max(1, round(256 * width))
        layers += [pnn.ConvTranspose2d(cin, c8, 4, 2, 1), nn.ReLU(inplace=True),
                   pnn.Conv2d(c8, c8, 3, padding=1), nn.ReLU(inplace=True),
                   pnn.Conv2d(c8, c8, 3, padding=1), nn.ReLU(inplace=True),
                   pnn.Conv2d(c8, out_channels, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        ab = self.body(pad_to_multiple(x, 8))
        ab = F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
        return crop(ab, height, width)
