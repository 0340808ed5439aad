"""Autoencoders and GANs: a convolutional denoising autoencoder and DCGAN."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import crop, pad_to_multiple


@register
class DenoisingAutoencoder(nn.Module):
    """Convolutional denoising autoencoder: the denoising criterion of Vincent et al. (ICML
    2008, "Extracting and Composing Robust Features with Denoising Autoencoders") on a
    convolutional encoder-decoder (Masci et al., ICANN 2011, "Stacked Convolutional
    Auto-Encoders for Hierarchical Feature Extraction").

    Encoder: 3x3 stride-2 conv + ReLU per entry of ``widths`` (32, 64, 128); bottleneck: a
    1x1 conv to ``latent_channels`` (32) + ReLU; decoder: stride-2 3x3 transposed convs back
    through the widths to ``in_channels``, sigmoid output for [0, 1] images. Train it to map
    corrupted images to clean ones (the corruption belongs to the data pipeline). Input size:
    any; the input is mirror-padded to a multiple of 2^len(widths) and the output cropped
    back.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128),
                 latent_channels: int = 32):
        super().__init__()
        self.multiple = 2 ** len(widths)
        encoder: list[nn.Module] = []
        width = in_channels
        for out in widths:
            encoder += [pnn.Conv2d(width, out, 3, 2, 1), nn.ReLU(inplace=True)]
            width = out
        self.encoder = nn.Sequential(*encoder)
        self.bottleneck = nn.Sequential(pnn.Conv2d(width, latent_channels, 1),
                                        nn.ReLU(inplace=True))
        decoder: list[nn.Module] = []
        width = latent_channels
        for out in (*reversed(widths[:-1]), in_channels):
            decoder += [pnn.ConvTranspose2d(width, out, 3, 2, 1, output_padding=1),
                        nn.ReLU(inplace=True)]
            width = out
        decoder[-1] = nn.Sigmoid()
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, self.multiple)
        return crop(self.decoder(self.bottleneck(self.encoder(x))), height, width)


@register
class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford, Metz & Chintala, ICLR 2016, "Unsupervised Representation
    Learning with Deep Convolutional Generative Adversarial Networks", Fig. 1).

    z (100-d, uniform or normal) projected by a dense layer and reshaped to 4x4x1024, then
    four 5x5 stride-2 fractionally-strided convolutions to 8x8x512, 16x16x256, 32x32x128 and
    64x64x3; batch norm and ReLU everywhere but the tanh output. ``base_channels`` is the
    last hidden width (128; the top one is 8 times it). Input: a batch of latent vectors,
    shape (N, latent_dim); output (N, out_channels, 64, 64).
    """

    def __init__(self, latent_dim: int = 100, out_channels: int = 3, base_channels: int = 128):
        super().__init__()
        top = 8 * base_channels
        self.project = nn.Sequential(nn.Linear(latent_dim, top * 16, bias=False),
                                     nn.Unflatten(1, (top, 4, 4)), pnn.BatchNorm2d(top),
                                     nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for width in (top, top // 2, top // 4):
            layers += [pnn.ConvTranspose2d(width, width // 2, 5, 2, 2, output_padding=1,
                                           bias=False),
                       pnn.BatchNorm2d(width // 2), nn.ReLU(inplace=True)]
        layers += [pnn.ConvTranspose2d(base_channels, out_channels, 5, 2, 2, output_padding=1),
                   nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


@register
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator (Radford et al., ICLR 2016): the generator mirrored, four 5x5
    stride-2 convolutions 64x64x3 -> 32x32x128 -> 16x16x256 -> 8x8x512 -> 4x4x1024 with
    LeakyReLU(0.2) and batch norm (none on the first layer), the last map flattened into a
    single logit (the paper's sigmoid lives in the loss). Input size: any; the input is
    mirror-padded to a multiple of 16 and the last map average-pooled to 4x4 (the identity
    at the paper's 64x64).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 128):
        super().__init__()
        layers: list[nn.Module] = [pnn.Conv2d(in_channels, base_channels, 5, 2, 2),
                                   nn.LeakyReLU(0.2, inplace=True)]
        width = base_channels
        for _ in range(3):
            layers += [pnn.Conv2d(width, 2 * width, 5, 2, 2, bias=False),
                       pnn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                        nn.Linear(width * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pad_to_multiple(x, 16)))
