"""Stock-module networks the CPU inference path is measured and tested on.

``MSRResNetStyle`` and ``SRVGGStyle`` are user models as SR projects write them (stock
modules, activations and sums in ``forward``); ``to_stock`` rebuilds a zoo model from stock
``torch.nn`` modules only, the "stock eager" reference. The benchmark imports them from here.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pyimg import nn as pnn


class _ResidualNoBN(nn.Module):
    """x + conv(relu(conv(x))): the residual block without BatchNorm of EDSR (Lim et al.
    2017) and of the modified SRResNet of ESRGAN (Wang et al. 2018)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNetStyle(nn.Module):
    """SRResNet without BatchNorm (ESRGAN's "modified SRResNet"): a 3x3 head with leaky ReLU,
    ``blocks`` residual blocks, x2 sub-pixel stages (conv to 4C, pixel shuffle, leaky ReLU
    0.1), a 3x3 conv with leaky ReLU, a 3x3 conv to RGB, plus the bilinearly upsampled input."""

    def __init__(self, channels: int = 64, blocks: int = 16, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(_ResidualNoBN(channels) for _ in range(blocks)))
        self.up = nn.ModuleList(nn.Conv2d(channels, 4 * channels, 3, padding=1)
                                for _ in range(scale.bit_length() - 1))
        self.shuffle = nn.PixelShuffle(2)
        self.hr = nn.Conv2d(channels, channels, 3, padding=1)
        self.last = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        y = F.leaky_relu(self.head(x), 0.1)
        y = self.body(y)
        for conv in self.up:
            y = F.leaky_relu(self.shuffle(conv(y)), 0.1)
        y = self.last(F.leaky_relu(self.hr(y), 0.1))
        return y + F.interpolate(x, scale_factor=self.scale, mode="bilinear",
                                 align_corners=False)


class SRVGGStyle(nn.Module):
    """A compact VGG-style SR net (as Real-ESRGAN's compact model): ``convs`` + 1 3x3 convs
    with per-channel PReLU, a 3x3 conv to 3 r^2 channels, pixel shuffle x r, plus the
    nearest-upsampled input."""

    def __init__(self, channels: int = 64, convs: int = 16, scale: int = 4):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.PReLU(channels)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels)]
        layers.append(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1))
        self.body = nn.ModuleList(layers)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        y = x
        for layer in self.body:
            y = layer(y)
        return self.shuffle(y) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class StockResidualBlock(nn.Module):
    """pyimg's ResidualBlock on stock modules: x + bn2(conv2(prelu(bn1(conv1(x)))))."""

    def __init__(self, block: pnn.ResidualBlock):
        super().__init__()
        self.conv1, self.bn1, self.prelu = _conv(block.conv1), block.bn1, block.prelu
        self.conv2, self.bn2 = _conv(block.conv2), block.bn2

    def forward(self, x):
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


def _conv(conv: nn.Conv2d) -> nn.Conv2d:
    stock = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                      conv.padding_mode)
    stock.load_state_dict(conv.state_dict())
    return stock.train(conv.training)


def _stock(module: nn.Module) -> nn.Module | None:
    kind = type(module)
    if kind is pnn.Conv2d:
        return _conv(module)
    if kind is pnn.PixelShuffle:
        return nn.PixelShuffle(module.upscale_factor)
    if kind is pnn.ResidualBlock:
        return StockResidualBlock(module)
    if kind is pnn.UpsampleBlock:
        return nn.Sequential(_conv(module.conv), nn.PixelShuffle(module.scale), module.prelu)
    if kind is pnn.MaxPool2d:
        return nn.MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation,
                            module.return_indices, module.ceil_mode)
    if kind is pnn.MaxUnpool2d:
        return nn.MaxUnpool2d(module.kernel_size, module.stride, module.padding)
    return None


def to_stock(model: nn.Module) -> nn.Module:
    """A copy of a zoo model whose pyimg modules are stock torch.nn ones (same weights)."""
    model = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            stock = _stock(child)
            if stock is None:
                swap(child)
            else:
                parent._modules[name] = stock
                swap(stock)

    swap(model)
    return model


def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters, so folding them is tested."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return model
