"""Single-image super-resolution networks: ESPCN, VDSR, SRResNet and SRGAN's
discriminator."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register


@register
class ESPCN(nn.Module):
    """ESPCN (Shi et al., CVPR 2016, "Real-Time Single Image and Video Super-Resolution Using
    an Efficient Sub-Pixel Convolutional Neural Network").

    The paper's configuration: conv 5x5 -> 64, tanh, conv 3x3 -> 32, tanh, conv 3x3 ->
    r^2 * C, then a pixel shuffle to the r-times larger image; r = ``upscale_factor`` (the
    paper reports 2, 3 and 4), C = ``in_channels`` (1, the luminance, in the paper). Input
    size: any (all convolutions are 'same'-padded); output is r times the input's size.
    """

    def __init__(self, upscale_factor: int = 3, in_channels: int = 1, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            pnn.Conv2d(in_channels, channels, 5, padding=2), nn.Tanh(),
            pnn.Conv2d(channels, channels // 2, 3, padding=1), nn.Tanh(),
            pnn.Conv2d(channels // 2, in_channels * upscale_factor**2, 3, padding=1),
            pnn.PixelShuffle(upscale_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register
class VDSR(nn.Module):
    """VDSR (Kim, Lee & Lee, CVPR 2016, "Accurate Image Super-Resolution Using Very Deep
    Convolutional Networks").

    The paper's configuration: 20 conv layers of 3x3 with 64 filters (ReLU after all but the
    last), zero padding to keep the size, and a global residual: the network predicts the
    difference to its bicubic-upsampled input. The input is the bicubic-upsampled low
    resolution luminance (``in_channels=1``); with ``upscale_factor`` set the model
    upsamples a low-resolution input itself. Input size: any.
    """

    def __init__(self, in_channels: int = 1, channels: int = 64, num_layers: int = 20,
                 upscale_factor: int | None = None):
        super().__init__()
        self.upscale_factor = upscale_factor
        layers: list[nn.Module] = [pnn.Conv2d(in_channels, channels, 3, padding=1),
                                   nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [pnn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(pnn.Conv2d(channels, in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upscale_factor is not None:
            x = F.interpolate(x, scale_factor=self.upscale_factor, mode="bicubic",
                              align_corners=False)
        return x + self.body(x)


@register
class SRResNet(nn.Module):
    """SRResNet, SRGAN's generator (Ledig et al., CVPR 2017, "Photo-Realistic Single Image
    Super-Resolution Using a Generative Adversarial Network", Fig. 4).

    The paper's configuration: conv 9x9 -> 64 + PReLU; B = 16 residual blocks
    (conv-BN-PReLU-conv-BN, elementwise sum); conv 3x3 + BN and a long skip from before the
    blocks; two upsampling stages (conv 3x3 -> 256, pixel shuffle x2, PReLU) for 4x; conv
    9x9 -> 3. ``upscale_factor`` must be a power of two (one stage per factor 2). Input
    size: any; output is ``upscale_factor`` times larger.
    """

    def __init__(self, upscale_factor: int = 4, in_channels: int = 3, channels: int = 64,
                 num_blocks: int = 16):
        super().__init__()
        stages = int(math.log2(upscale_factor))
        if 2**stages != upscale_factor:
            raise ValueError(f"upscale_factor must be a power of 2, got {upscale_factor}")
        self.head = nn.Sequential(pnn.Conv2d(in_channels, channels, 9, padding=4), pnn.PReLU())
        self.blocks = nn.Sequential(*(pnn.ResidualBlock(channels) for _ in range(num_blocks)))
        self.fuse = nn.Sequential(pnn.Conv2d(channels, channels, 3, padding=1),
                                  pnn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(*(pnn.UpsampleBlock(channels, 2) for _ in range(stages)))
        self.tail = pnn.Conv2d(channels, in_channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.fuse(self.blocks(x))
        return self.tail(self.upsample(x))


@register
class SRGANDiscriminator(nn.Module):
    """SRGAN's discriminator (Ledig et al., CVPR 2017, Fig. 4).

    The paper's configuration: conv 3x3 -> 64 + LeakyReLU(0.2), then seven conv-BN-LeakyReLU
    blocks with 64, 128, 128, 256, 256, 512, 512 filters, stride 2 in every other one
    (starting with the second 64), a dense layer of 1024, LeakyReLU, and a dense layer to one
    logit (the paper's sigmoid lives in the loss). Input size: any; the paper's 96x96 crops
    give a 6x6 map, and other sizes are average-pooled to 6x6 before the dense layers.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, hidden: int = 1024):
        super().__init__()
        layers: list[nn.Module] = [pnn.Conv2d(in_channels, channels, 3, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        widths = (channels, 2 * channels, 2 * channels, 4 * channels, 4 * channels,
                  8 * channels, 8 * channels)
        in_width = channels
        for i, width in enumerate(widths):
            layers += [pnn.Conv2d(in_width, width, 3, stride=2 - i % 2, padding=1, bias=False),
                       pnn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True)]
            in_width = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_width * 36, hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
