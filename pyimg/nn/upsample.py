"""The sub-pixel upsampling block of SRResNet / SRGAN (Ledig et al. 2017; the sub-pixel
convolution of Shi et al. 2016): conv -> pixel shuffle -> PReLU, with its state laid out as
``conv.*`` and ``prelu.weight``."""

import copy

import torch
from torch import nn

from pyimg.ops import conv2d, pixel_shuffle


def check_upsample_modules(conv, shuffle, prelu) -> None:
    """Raise unless these stock modules form an upsampling block UpsampleBlock can run."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(shuffle, nn.PixelShuffle) or \
            type(prelu) is not nn.PReLU:
        raise TypeError(f"expected Conv2d, PixelShuffle and PReLU, got {type(conv).__name__}, "
                        f"{type(shuffle).__name__} and {type(prelu).__name__}")
    r = shuffle.upscale_factor
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("the convolution must have numeric zero padding")
    if conv.out_channels % (r * r) or prelu.num_parameters not in (1, conv.out_channels // r // r):
        raise ValueError(f"{conv.out_channels} convolution outputs cannot feed a pixel shuffle "
                         f"x{r} and a PReLU of {prelu.num_parameters} parameters")


class UpsampleBlock(nn.Module):
    """``nn.Sequential(nn.Conv2d(C, C * r * r, k, padding=k // 2), nn.PixelShuffle(r),
    nn.PReLU(prelu_parameters))`` with ``C = in_channels``, ``r = scale``.

    Training runs the convolution without its bias or an epilogue (stock's on the cpu and cuda
    backends, in x's memory format) and then one fused pass adding the bias, shuffling and
    applying PReLU. Eval is one pyimg convolution whose epilogue adds the
    bias, applies PReLU and stores the pixel-shuffled result. Either keeps channels_last.
    """

    def __init__(self, in_channels: int, scale: int = 2, kernel_size: int = 3, bias: bool = True,
                 prelu_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, in_channels * scale * scale, kernel_size,
                              padding=kernel_size // 2, bias=bias, device=device, dtype=dtype)
        self.prelu = nn.PReLU(prelu_parameters, init, device=device, dtype=dtype)

    @classmethod
    def from_modules(cls, conv: nn.Conv2d, shuffle: nn.PixelShuffle,
                     prelu: nn.PReLU) -> "UpsampleBlock":
        """Build from the stock modules it replaces (copies: weights and hyper-parameters)."""
        check_upsample_modules(conv, shuffle, prelu)
        block = cls.__new__(cls)
        nn.Module.__init__(block)
        block.scale = shuffle.upscale_factor
        block.conv, block.prelu = copy.deepcopy(conv), copy.deepcopy(prelu)
        block.training = conv.training
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if self.training:
            y = conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                         conv.groups)
            return pixel_shuffle(y, self.scale, bias=conv.bias, activation="prelu",
                                 weight=self.prelu.weight)
        return conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                      conv.groups, activation="prelu", prelu_weight=self.prelu.weight,
                      upscale_factor=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
