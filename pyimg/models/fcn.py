"""Fully convolutional networks for semantic segmentation (Long, Shelhamer & Darrell, CVPR
2015, "Fully Convolutional Networks for Semantic Segmentation"): FCN-32s, FCN-16s, FCN-8s."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import crop
from pyimg.models._vgg import VGG16, pool_indices, vgg_features


def _bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Per-channel bilinear interpolation filter for a ConvTranspose2d (the paper's upsampling
    initialisation), shape (channels, channels, size, size)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - center).abs() / factor
    kernel = torch.zeros(channels, channels, size, size, dtype=torch.float64)
    kernel[range(channels), range(channels)] = torch.outer(ramp, ramp)
    return kernel.float()


def _upsampler(channels: int, factor: int, learned: bool) -> nn.ConvTranspose2d:
    """Bilinear-initialised 2*factor-wide stride-factor deconvolution. The paper learns the
    2x in-network upsamplers and fixes the final one to bilinear interpolation."""
    up = pnn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
    with torch.no_grad():
        up.weight.copy_(_bilinear_kernel(channels, 2 * factor))
    up.weight.requires_grad_(learned)
    return up


def _score(in_channels: int, num_classes: int) -> nn.Conv2d:
    """1x1 class-score layer, zero-initialised as in the paper (random init did not help)."""
    score = pnn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(score.weight)
    nn.init.zeros_(score.bias)
    return score


class _FCN(nn.Module):
    """VGG16 with conv1_1 padded by 100 and Caffe's ceil-mode pools, fc6/fc7 as 7x7/1x1
    convolutions with dropout, and a 1x1 score layer; subclasses choose the skips."""

    def __init__(self, num_classes: int, in_channels: int, width: float, fc_channels: int):
        super().__init__()
        self.features = vgg_features(VGG16, in_channels, width, first_padding=100,
                                     ceil_mode=True)
        self._pools = pool_indices(self.features)
        top = self.features[self._pools[-1] - 2].out_channels
        self.classifier = nn.Sequential(
            pnn.Conv2d(top, fc_channels, 7), nn.ReLU(inplace=True), nn.Dropout2d(0.5),
            pnn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.5),
        )
        self.score_fr = _score(fc_channels, num_classes)

    def load_vgg16(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Initialise from ImageNet VGG16 weights (torchvision's ``vgg16().state_dict()``)
        as the paper does: the convolutions copy over, and the dense fc6/fc7 become the 7x7
        and 1x1 convolutions that replace them, by reshaping (the paper's
        "convolutionalization", Sec. 3.1); fc8 is dropped for the zero-initialised scores."""
        self.features.load_state_dict({k.removeprefix("features."): v
                                       for k, v in state_dict.items()
                                       if k.startswith("features.")})
        with torch.no_grad():
            for dense, conv in (("classifier.0", self.classifier[0]),
                                ("classifier.3", self.classifier[3])):
                conv.weight.copy_(state_dict[f"{dense}.weight"].view_as(conv.weight))
                conv.bias.copy_(state_dict[f"{dense}.bias"])

    def _channels(self, pool: int) -> int:
        return self.features[self._pools[pool] - 2].out_channels

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pool3, pool4, score_fr) feature maps."""
        pooled = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._pools:
                pooled.append(x)
        return pooled[2], pooled[3], self.score_fr(self.classifier(x))


def _crop(x: torch.Tensor, offset: int, like: torch.Tensor) -> torch.Tensor:
    """Caffe's Crop layer: the window of ``like``'s size starting ``offset`` pixels in."""
    return crop(x, like.shape[-2], like.shape[-1], offset, offset)


_DOC_TAIL = """
    Default configuration: the paper's PASCAL VOC setting, 21 classes, VGG16 widths
    (``width=1.0``) and 4096-channel fc6/fc7; ``width``/``fc_channels`` shrink it. The
    backbone loads torchvision's ImageNet VGG16 weights with ``load_vgg16``.
    Input size: any; conv1_1's 100-pixel padding and the paper's crop offsets give an output
    of exactly the input's height and width.
"""


@register
class FCN32s(_FCN):
    __doc__ = """FCN-32s: class scores upsampled 32x in one fixed bilinear deconvolution
    (Long et al., CVPR 2015, Sec. 4.1), crop offset 19.
    """ + _DOC_TAIL

    def __init__(self, num_classes: int = 21, in_channels: int = 3, width: float = 1.0,
                 fc_channels: int = 4096):
        super().__init__(num_classes, in_channels, width, fc_channels)
        self.upscore = _upsampler(num_classes, 32, learned=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, score = self._encode(x)
        return _crop(self.upscore(score), 19, x)


@register
class FCN16s(_FCN):
    __doc__ = """FCN-16s: 2x-upsampled scores fused with pool4 scores, then a fixed 16x
    bilinear deconvolution (Long et al. 2015, Sec. 4.2), crop offsets 5 and 27.
    """ + _DOC_TAIL

    def __init__(self, num_classes: int = 21, in_channels: int = 3, width: float = 1.0,
                 fc_channels: int = 4096):
        super().__init__(num_classes, in_channels, width, fc_channels)
        self.score_pool4 = _score(self._channels(3), num_classes)
        self.upscore2 = _upsampler(num_classes, 2, learned=True)
        self.upscore16 = _upsampler(num_classes, 16, learned=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, pool4, score = self._encode(x)
        up = self.upscore2(score)
        fused = up + _crop(self.score_pool4(pool4), 5, up)
        return _crop(self.upscore16(fused), 27, x)


@register
class FCN8s(_FCN):
    __doc__ = """FCN-8s: FCN-16s's fusion plus a second fusion with pool3 scores, then a
    fixed 8x bilinear deconvolution (Long et al. 2015, Sec. 4.2, the staged variant without
    the at-once skip scaling), crop offsets 5, 9 and 31.
    """ + _DOC_TAIL

    def __init__(self, num_classes: int = 21, in_channels: int = 3, width: float = 1.0,
                 fc_channels: int = 4096):
        super().__init__(num_classes, in_channels, width, fc_channels)
        self.score_pool4 = _score(self._channels(3), num_classes)
        self.score_pool3 = _score(self._channels(2), num_classes)
        self.upscore2 = _upsampler(num_classes, 2, learned=True)
        self.upscore_pool4 = _upsampler(num_classes, 2, learned=True)
        self.upscore8 = _upsampler(num_classes, 8, learned=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, score = self._encode(x)
        up = self.upscore2(score)
        up = self.upscore_pool4(up + _crop(self.score_pool4(pool4), 5, up))
        fused = up + _crop(self.score_pool3(pool3), 9, up)
        return _crop(self.upscore8(fused), 31, x)
