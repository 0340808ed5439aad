"""Drop-in pixel-shuffle modules on pyimg's kernels."""

import torch
from torch import nn

from pyimg._activation import MODULE_ACTIVATIONS
from pyimg.ops import pixel_shuffle, pixel_unshuffle


class PixelShuffle(nn.PixelShuffle):
    """``torch.nn.PixelShuffle`` on pyimg's kernels (same arguments, no state); keeps
    channels_last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(nn.PixelUnshuffle):
    """``torch.nn.PixelUnshuffle`` on pyimg's kernels (same arguments, no state)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_unshuffle(x, self.downscale_factor)


class PixelShuffleAct(nn.Module):
    """PixelShuffle followed by an activation, in one pass.

    Replaces ``nn.Sequential(nn.PixelShuffle(r), act)`` with act one of ReLU, LeakyReLU,
    PReLU, Tanh, Sigmoid. With ``activation="prelu"`` it owns a ``weight`` of
    ``num_parameters`` values (1 or the output channels) initialised to ``init``, exactly as
    ``nn.PReLU``, so ``state_dict()["weight"]`` moves between the two.
    """

    def __init__(self, upscale_factor: int, activation: str = "prelu", num_parameters: int = 1,
                 init: float = 0.25, negative_slope: float = 0.01, device=None, dtype=None):
        super().__init__()
        self.upscale_factor = upscale_factor
        self.activation = activation
        self.negative_slope = negative_slope
        if activation == "prelu":
            self.weight = nn.Parameter(torch.full((num_parameters,), init, device=device,
                                                  dtype=dtype))
        else:
            self.register_parameter("weight", None)

    @classmethod
    def from_modules(cls, shuffle: nn.PixelShuffle, act: nn.Module) -> "PixelShuffleAct":
        """Build from a stock PixelShuffle and the activation module after it (weights copied)."""
        if type(act) not in MODULE_ACTIVATIONS:
            raise TypeError(f"cannot fuse {type(act).__name__}; expected one of "
                            f"{[t.__name__ for t in MODULE_ACTIVATIONS]}")
        name = MODULE_ACTIVATIONS[type(act)]
        fused = cls(shuffle.upscale_factor, name,
                    negative_slope=getattr(act, "negative_slope", 0.01))
        if name == "prelu":
            fused.weight = nn.Parameter(act.weight.detach().clone())
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle(x, self.upscale_factor, activation=self.activation,
                             weight=self.weight, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}, activation={self.activation!r}"
