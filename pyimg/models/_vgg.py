"""VGG convolutional stacks (Simonyan & Zisserman 2015), laid out as torchvision's
``vgg*.features`` so that its ImageNet state_dicts load by key."""

from torch import nn

from pyimg import nn as pnn

# Channels per 3x3 conv, "M" a 2x2 max-pool: configurations D (VGG16) and E (VGG19).
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M")


def vgg_features(config, in_channels: int = 3, width: float = 1.0, first_padding: int = 1,
                 ceil_mode: bool = False) -> nn.Sequential:
    """Conv3x3-ReLU blocks and max-pools of ``config``; ``width`` scales every channel count
    (1.0 is the paper), ``first_padding``/``ceil_mode`` are FCN's changes (pad 100, Caffe's
    rounding-up pools)."""
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(pnn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            continue
        channels = max(1, round(item * width))
        padding = first_padding if not layers else 1
        layers += [pnn.Conv2d(in_channels, channels, 3, padding=padding), nn.ReLU(inplace=True)]
        in_channels = channels
    return nn.Sequential(*layers)


def pool_indices(features: nn.Sequential) -> list[int]:
    """Positions of the max-pools in a ``vgg_features`` stack (pool1 ... pool5)."""
    return [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
