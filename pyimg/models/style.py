"""Feed-forward image transformation networks: CycleGAN's ResNet generator and Johnson et
al.'s fast style-transfer network (which CycleGAN's generator is adapted from)."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.models._norm import norm_layer
from pyimg.models._registry import register
from pyimg.models._sizing import center_crop, crop, mirror_pad, pad_to_multiple


class _ReflectResidualBlock(nn.Module):
    """Two reflection-padded 3x3 conv-norm layers (ReLU between) plus the identity."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), pnn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), pnn.Conv2d(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register
class CycleGANGenerator(nn.Module):
    """CycleGAN's ResNet generator (Zhu, Park, Isola & Efros, ICCV 2017, "Unpaired
    Image-to-Image Translation using Cycle-Consistent Adversarial Networks", appendix 7.2).

    c7s1-64, d128, d256, ``num_blocks`` residual blocks R256 (9 for 256x256 training images,
    6 for 128x128), u128, u64, c7s1-3 and tanh; instance normalisation and reflection padding
    throughout. Defaults: 3 -> 3 channels, 9 blocks (11,378,179 parameters). Input size:
    any; the input is mirror-padded to a multiple of 4 (two stride-2 steps), and to at least
    8, and the output cropped back.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 num_blocks: int = 9, norm: str = "instance"):
        super().__init__()
        c = base_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), pnn.Conv2d(in_channels, c, 7),
                                   norm_layer(norm, c), nn.ReLU(inplace=True)]
        for width in (c, 2 * c):  # d128, d256
            layers += [pnn.Conv2d(width, 2 * width, 3, 2, 1), norm_layer(norm, 2 * width),
                       nn.ReLU(inplace=True)]
        layers += [_ReflectResidualBlock(4 * c, norm) for _ in range(num_blocks)]
        for width in (4 * c, 2 * c):  # u128, u64
            layers += [pnn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1),
                       norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), pnn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # At least 8 pixels: the reflection pads and instance norms of the 1/4-size residual
        # blocks need 2 pixels there.
        return crop(self.body(pad_to_multiple(x, 4, minimum=8)), height, width)


class _ValidResidualBlock(nn.Module):
    """Johnson et al.'s residual block: two unpadded 3x3 conv-BN layers (ReLU between) and
    the identity centre-cropped to match (supplementary material, Fig. 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            pnn.Conv2d(channels, channels, 3), pnn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            pnn.Conv2d(channels, channels, 3), pnn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return center_crop(x, *y.shape[-2:]) + y


@register
class FastStyleNet(nn.Module):
    """Image transformation network for fast style transfer (Johnson, Alahi & Fei-Fei, ECCV
    2016, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution",
    supplementary Table 1).

    Reflection padding of 40 pixels; conv 9x9 -> 32; two stride-2 3x3 convs -> 64, 128;
    five unpadded residual blocks of 128 (each shrinks the map by 4, using up the padding);
    two stride-1/2 3x3 transposed convs -> 64, 32; conv 9x9 -> 3 and a scaled tanh. Every
    other conv has batch norm and ReLU. The tanh is scaled to [0, 1] images (the paper's
    [0, 255] divided by 255). Input size: any; the input is mirror-padded to a multiple of 4
    and the output cropped back.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 32, num_blocks: int = 5):
        super().__init__()
        c = base_channels

        def conv(cin, cout, k, stride=1):
            return [pnn.Conv2d(cin, cout, k, stride, k // 2), pnn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        def up(cin, cout):
            return [pnn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                    pnn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.margin = 4 * 2 * num_blocks  # each block loses 2 pixels a side at 1/4 size
        self.body = nn.Sequential(
            *conv(in_channels, c, 9), *conv(c, 2 * c, 3, 2), *conv(2 * c, 4 * c, 3, 2),
            *(_ValidResidualBlock(4 * c) for _ in range(num_blocks)),
            *up(4 * c, 2 * c), *up(2 * c, c),
            pnn.Conv2d(c, in_channels, 9, padding=4), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.margin
        x = mirror_pad(pad_to_multiple(x, 4), m, m, m, m)
        return crop((self.body(x) + 1) / 2, height, width)
