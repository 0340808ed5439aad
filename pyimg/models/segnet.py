"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation")."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import crop, pad_to_multiple

# Convs per encoder stage and their channels: VGG16's 13 convolutional layers.
_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(pnn.Conv2d(in_channels, out_channels, 3, padding=1),
                         pnn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@register
class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al., TPAMI 2017): a VGG16 encoder (13 conv-BN-ReLU layers, five 2x2
    max-pools that keep their argmax indices) and a mirrored decoder in which each max-unpool places
    its input at the encoder's stored indices before conv-BN-ReLU layers densify it; a final 3x3
    conv gives the per-class scores for the soft-max classifier.

    Defaults reproduce the paper's SegNet (VGG16 widths, ``width=1.0``) with 11 CamVid
    classes; ``width`` scales every channel count. Input size: any; the input is
    mirror-padded to a multiple of 32 (five 2x pools) and the scores cropped back.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 11, width: float = 1.0):
        super().__init__()
        widths = [max(1, round(c * width)) for _, c in _STAGES]
        self.encoder = nn.ModuleList()
        for (convs, _), channels in zip(_STAGES, widths, strict=True):
            layers = [_conv_bn_relu(in_channels if i == 0 else channels, channels)
                      for i in range(convs)]
            self.encoder.append(nn.Sequential(*layers))
            in_channels = channels
        self.decoder = nn.ModuleList()
        # The decoder mirrors the encoder: each stage's last conv drops to the width of the
        # stage before (Caffe's conv*_1_D layers); in the first stage it is the classifier.
        for stage in reversed(range(len(_STAGES))):
            convs, channels = _STAGES[stage][0], widths[stage]
            layers = [_conv_bn_relu(channels, channels) for _ in range(convs - 1)]
            if stage > 0:
                layers.append(_conv_bn_relu(channels, widths[stage - 1]))
            else:
                layers.append(pnn.Conv2d(channels, num_classes, 3, padding=1))
            self.decoder.append(nn.Sequential(*layers))
        # Compact (uint8) indices: 8x less memory for the five stored masks than int64.
        self.pool = pnn.MaxPool2d(2, 2, return_indices=True, compact_indices=True)
        self.unpool = pnn.MaxUnpool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** len(self.encoder))
        indices = []
        for stage in self.encoder:
            x, index = self.pool(stage(x))
            indices.append(index)
        for stage, index in zip(self.decoder, reversed(indices), strict=True):
            x = stage(self.unpool(x, index))
        return crop(x, height, width)
