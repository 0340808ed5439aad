"""Module-level fusion: every convolution of a model becomes a ``FusedConv2d`` with what
follows it in an ``nn.Sequential`` (eval BatchNorm folded into it, then an activation), and
pyimg's blocks (``ResidualBlock``, ``UpsampleBlock``, ``Conv2dBNAct``) become their fused
forms. Modules it does not know are kept, and searched for convolutions inside."""

import torch
from torch import nn

from pyimg import nn as pnn
from pyimg.inference import epilogue
from pyimg.inference.epilogue import IDENTITY, Activation
from pyimg.inference.fused_conv import FusedConv2d, FusedConvTranspose2d
from pyimg.nn.fold import batch_norm_scale_shift


def fusable_conv(module: nn.Module) -> bool:
    """A Conv2d whose padding oneDNN's symmetric zero padding expresses."""
    if not isinstance(module, nn.Conv2d) or module.padding_mode != "zeros":
        return False
    if type(module).forward not in (nn.Conv2d.forward, pnn.Conv2d.forward):
        return False  # a subclass computing something else
    if module.padding == "same":
        return all(d * (k - 1) % 2 == 0 for d, k in zip(module.dilation, module.kernel_size,
                                                          strict=True))
    return True


def _padding(conv: nn.Conv2d) -> list[int]:
    if conv.padding == "valid":
        return [0, 0]
    if conv.padding == "same":
        return [d * (k - 1) // 2 for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
    return list(conv.padding)


def foldable_bn(module: nn.Module, channels: int) -> bool:
    return (type(module) in (nn.BatchNorm2d, pnn.BatchNorm2d) and not module.training
            and module.running_mean is not None and module.num_features == channels)


@torch.no_grad()
def fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, act: Activation = IDENTITY,
               dtype: torch.dtype = torch.float32, add: bool = False) -> FusedConv2d:
    """``conv`` -> ``bn`` (eval: folded into the weight and bias in float64) -> ``act``."""
    weight = conv.weight.double()
    bias = None if conv.bias is None else conv.bias.double()
    if bn is not None:
        scale, shift = batch_norm_scale_shift(bn, torch.float64)
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = shift if bias is None else bias * scale + shift
    return FusedConv2d(weight, bias, conv.stride, _padding(conv), conv.dilation, conv.groups,
                       act, add, dtype)


class FusedResidualBlock(nn.Module):
    """``x + bn2(conv2(prelu(bn1(conv1(x)))))``: two fused convolutions, the second ending in
    the sum."""

    def __init__(self, block: pnn.ResidualBlock, dtype: torch.dtype):
        super().__init__()
        self.conv1 = fused_conv(block.conv1, block.bn1, epilogue.from_module(block.prelu), dtype)
        self.conv2 = fused_conv(block.conv2, block.bn2, IDENTITY, dtype, add=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x), x)


def _upsample_block(block: pnn.UpsampleBlock, dtype: torch.dtype) -> nn.Sequential:
    # An activation after a pixel shuffle is the same activation before it, with a
    # per-channel weight repeated over each channel's r * r sub-pixel planes.
    act = epilogue.from_module(block.prelu).repeated(block.scale * block.scale)
    return nn.Sequential(fused_conv(block.conv, None, act, dtype),
                         pnn.PixelShuffle(block.scale))


def _conv_bn_act(block: pnn.Conv2dBNAct, dtype: torch.dtype) -> nn.Module | None:
    if block.training or not fusable_conv(block.conv) or \
            not foldable_bn(block.bn, block.conv.out_channels):
        return None
    act = IDENTITY if block.act is None else epilogue.from_module(block.act)
    return fused_conv(block.conv, block.bn, act, dtype)


def _replacement(module: nn.Module, dtype: torch.dtype) -> nn.Module | None:
    """The fused form of a single module, or None to keep (and search) it."""
    if type(module) is pnn.ResidualBlock and not module.training and \
            module.bn1.running_mean is not None and module.bn2.running_mean is not None:
        return FusedResidualBlock(module, dtype)
    if type(module) is pnn.UpsampleBlock and not module.training:
        return _upsample_block(module, dtype)
    if type(module) is pnn.Conv2dBNAct:
        return _conv_bn_act(module, dtype)
    if fusable_conv(module):
        return fused_conv(module, None, IDENTITY, dtype)
    if type(module) in (nn.ConvTranspose2d, pnn.ConvTranspose2d) and \
            module.padding_mode == "zeros":
        return FusedConvTranspose2d(module, dtype)
    if type(module) is nn.PixelShuffle:
        return pnn.PixelShuffle(module.upscale_factor)  # keeps channels_last
    return None


def _fuse_sequence(seq: nn.Sequential, dtype: torch.dtype) -> None:
    """Convolution -> [BatchNorm] -> [activation] runs of a plain Sequential, in place: the
    convolution's slot gets the fused module, the absorbed ones become Identity."""
    children = list(seq._modules.items())
    i = 0
    while i < len(children):
        conv = children[i][1]
        if not fusable_conv(conv):
            i += 1
            continue
        j, bn, act = i + 1, None, IDENTITY
        if j < len(children) and foldable_bn(children[j][1], conv.out_channels):
            bn, j = children[j][1], j + 1
        if j < len(children) and (found := epilogue.from_module(children[j][1])) is not None:
            act, j = found, j + 1
        seq._modules[children[i][0]] = fused_conv(conv, bn, act, dtype)
        for name, _ in children[i + 1:j]:
            seq._modules[name] = nn.Identity()
        i = j


def fuse_modules(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The fused form of ``module``: replaced whole if it is a known block, else its children
    fused in place (recursively) and returned."""
    replacement = _replacement(module, dtype)
    if replacement is not None:
        return replacement
    if type(module) is nn.Sequential:
        _fuse_sequence(module, dtype)
    for name, child in module.named_children():
        if not isinstance(child, (FusedConv2d, FusedConvTranspose2d, FusedResidualBlock)):
            module._modules[name] = fuse_modules(child, dtype)
    return module

