"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015, "U-Net: Convolutional Networks for
Biomedical Image Segmentation")."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import center_crop, crop, mirror_pad


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two unpadded 3x3 convolutions, each followed by a ReLU (each shrinks the map by 2)."""
    return nn.Sequential(
        pnn.Conv2d(in_channels, out_channels, 3), nn.ReLU(inplace=True),
        pnn.Conv2d(out_channels, out_channels, 3), nn.ReLU(inplace=True),
    )


@register
class UNet(nn.Module):
    """U-Net (Ronneberger et al., MICCAI 2015) as in the paper's Fig. 1: a contracting path of
    unpadded double 3x3 convs and 2x2 max-pools doubling the channels (64 -> 1024), an expanding
    path of 2x2 up-convolutions halving them, each followed by concatenation with the centre-cropped
    contracting feature map and a double conv, and a final 1x1 conv to ``num_classes`` score maps.

    Defaults reproduce the paper: 1 input channel, 2 classes, 64 base channels, depth 4
    (31,030,658 parameters). Input size: any. The unpadded convolutions make the output
    smaller than the input, so the input is extended by mirroring (the paper's overlap-tile
    strategy) to the nearest size the network maps onto at least the input's size, and the
    output is cropped back to the input's height and width.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64,
                 depth: int = 4):
        super().__init__()
        channels = [base_channels * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_double_conv(in_channels, channels[0])])
        self.down.extend(_double_conv(channels[i], channels[i + 1]) for i in range(depth))
        self.pool = pnn.MaxPool2d(2, 2)
        self.up = nn.ModuleList(
            pnn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.up_conv = nn.ModuleList(
            _double_conv(2 * channels[i], channels[i]) for i in reversed(range(depth))
        )
        self.head = pnn.Conv2d(channels[0], num_classes, 1)

    def output_size(self, size: int) -> int | None:
        """Output side for an input side of ``size``, or None when some max-pool would see an
        odd size (the paper's rule for valid tile sizes)."""
        for _ in range(self.depth):
            size -= 4
            if size <= 0 or size % 2:
                return None
            size //= 2
        size -= 4
        for _ in range(self.depth):
            size = 2 * size - 4
        return size if size > 0 else None

    def _tile_size(self, size):
        """Smallest valid input side whose output covers ``size`` pixels. Valid sides are
        t = 2^d b + 2^(d+3) - 4 for a bottom side b >= 1, with output 2^d b - 2^(d+2) + 4, so
        b is a ceiling division: no loop over sizes, and a symbolic size stays symbolic."""
        step = 2**self.depth
        bottom = (size + 5 * step - 5) // step  # rounded up: ceil((size + 4 step - 4) / step)
        return step * bottom + 8 * step - 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        tile_h, tile_w = self._tile_size(height), self._tile_size(width)
        # The output is the input's centre: every valid tile loses the same margin a side.
        margin = 3 * 2 ** (self.depth + 1) - 4
        x = mirror_pad(x, margin, tile_w - width - margin, margin, tile_h - height - margin)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips[:-1]), strict=True):
            x = up(x)
            x = conv(torch.cat([center_crop(skip, *x.shape[-2:]), x], dim=1))
        return crop(self.head(x), height, width)
