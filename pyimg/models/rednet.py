"""RED-Net (Mao, Shen & Yang, NIPS 2016, "Image Restoration Using Very Deep Convolutional
Encoder-Decoder Networks with Symmetric Skip Connections")."""

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import nn as pnn
from pyimg.models._registry import register
from pyimg.models._sizing import crop, pad_to_multiple


@register
class REDNet30(nn.Module):
    """RED-Net-30 (Mao et al., NIPS 2016): 15 unpadded 3x3 convolutions with 64 filters (each
    followed by ReLU) that shrink the map by 2 pixels each, 15 mirrored 3x3 deconvolutions that grow
    it back, and symmetric skip connections every two layers: the output of conv 2k is added to the
    output of its mirrored deconvolution before that one's ReLU; the input is added to the last
    deconvolution's output (the network learns the residual).

    Defaults reproduce the paper's 30-layer network on grey-scale images
    (``in_channels=1``). Input size: any; inputs smaller than 31 pixels (the 30-pixel
    shrinkage of the encoder) are mirror-padded and the output cropped back.
    """

    def __init__(self, in_channels: int = 1, channels: int = 64, num_layers: int = 15,
                 skip_every: int = 2):
        super().__init__()
        self.skip_every = skip_every
        self.convs = nn.ModuleList(
            pnn.Conv2d(in_channels if i == 0 else channels, channels, 3)
            for i in range(num_layers)
        )
        self.deconvs = nn.ModuleList(
            pnn.ConvTranspose2d(channels, in_channels if i == num_layers - 1 else channels, 3)
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        depth = len(self.convs)
        image = pad_to_multiple(x, 1, minimum=2 * depth + 1)
        skips = {}
        x = image
        for i, conv in enumerate(self.convs, start=1):
            x = F.relu(conv(x))
            if i % self.skip_every == 0 and i < depth:
                skips[i] = x
        for j, deconv in enumerate(self.deconvs[:-1], start=1):
            # Deconvolution j restores the size of convolution depth - j's output.
            x = deconv(x) + skips.get(depth - j, 0)
            x = F.relu(x)
        return crop(self.deconvs[-1](x) + image, height, width)
