"""pix2pix (Isola, Zhu, Zhou & Efros, CVPR 2017, "Image-to-Image Translation with
Conditional Adversarial Networks"): the U-Net generator and the PatchGAN discriminator."""

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import nn as pnn
from pyimg.models._norm import norm_layer
from pyimg.models._registry import register
from pyimg.models._sizing import crop, pad_to_multiple


class _Noise(nn.Module):
    """Dropout(0.5), pix2pix's only noise source: the paper applies it "at both training and
    test time", so by default it stays on in eval mode."""

    def __init__(self, p: float, at_inference: bool):
        super().__init__()
        self.p = p
        self.at_inference = at_inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=self.training or self.at_inference)


@register
class Pix2PixGenerator(nn.Module):
    """pix2pix's U-Net generator (Isola et al., CVPR 2017, appendix 6.1.1), "U-Net 256" by
    default.

    Encoder C64-C128-C256-C512-C512-C512-C512-C512 (4x4 stride-2 convs, LeakyReLU(0.2), no
    norm on the first layer, nor, as in the authors' code, on the innermost one, whose 1x1
    map a norm would zero at batch size 1), decoder CD512-CD512-CD512-C512-C256-C128-C64
    (4x4 stride-2 transposed convs, ReLU, dropout 0.5 in the first three) with skips
    concatenating encoder layer i to decoder layer n-i, and a last transposed conv to
    ``out_channels`` with tanh. ``norm`` is ``"batch"`` (the paper) or ``"instance"``; convs
    before a batch norm have no bias. The dropout is the generator's noise and stays on in
    eval mode, as in the paper; ``test_time_dropout=False`` makes inference deterministic.
    Defaults: 3 -> 3 channels, ``base_channels=64``, ``num_downs=8`` (54,413,955
    parameters). Input size: any; the input is mirror-padded to a multiple of 2^num_downs
    (256) and the output cropped back.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 num_downs: int = 8, norm: str = "batch", test_time_dropout: bool = True):
        super().__init__()
        bias = norm == "instance"
        widths = [base_channels * min(2**i, 8) for i in range(num_downs)]
        self.down = nn.ModuleList([pnn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=bias)])
        for i in range(1, num_downs):
            layers = [nn.LeakyReLU(0.2), pnn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias)]
            if i < num_downs - 1:
                layers.append(norm_layer(norm, widths[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for k, i in enumerate(range(num_downs - 1, 0, -1)):
            in_width = widths[i] if i == num_downs - 1 else 2 * widths[i]
            layers = [nn.ReLU(), pnn.ConvTranspose2d(in_width, widths[i - 1], 4, 2, 1, bias=bias),
                      norm_layer(norm, widths[i - 1])]
            if k < 3:
                layers.append(_Noise(0.5, test_time_dropout))
            self.up.append(nn.Sequential(*layers))
        self.out = nn.Sequential(nn.ReLU(), pnn.ConvTranspose2d(2 * widths[0], out_channels, 4,
                                                                2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** len(self.down))
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the innermost map feeds the decoder directly
        for layer in self.up:
            x = torch.cat([skips.pop(), layer(x)], dim=1)
        return crop(self.out(x), height, width)


@register
class PatchGANDiscriminator(nn.Module):
    """pix2pix's conditional PatchGAN discriminator (Isola et al., CVPR 2017, appendix 6.1.2), 70x70
    by default.

    C64-C128-C256-C512 (4x4 convs with LeakyReLU(0.2), stride 2 but for the last, no norm on
    the first) and a 4x4 conv to a map of one logit per overlapping patch. ``n_layers=3``
    gives 70x70 patches (1 -> 16x16, 2 -> 34x34, 5 -> 286x286). Conditional: ``forward(
    condition, image)`` sees the input concatenated with the (real or generated) output, so
    ``in_channels`` is their total (6 for RGB -> RGB; 2,768,705 parameters with batch norm).
    Input size: any; inputs under 3 * 2^n_layers pixels are mirror-padded to it.
    """

    def __init__(self, in_channels: int = 6, base_channels: int = 64, n_layers: int = 3,
                 norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        self.min_size = 3 * 2**n_layers
        layers: list[nn.Module] = [pnn.Conv2d(in_channels, base_channels, 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        width = base_channels
        for n in range(1, n_layers + 1):
            out = base_channels * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [pnn.Conv2d(width, out, 4, stride, 1, bias=bias), norm_layer(norm, out),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        layers.append(pnn.Conv2d(width, 1, 4, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(torch.cat([condition, image], dim=1), 1, minimum=self.min_size)
        return self.body(x)
