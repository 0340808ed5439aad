"""Pixel-space losses: Charbonnier and total variation (L1 and MSE are torch's own)."""

import torch
from torch import nn


class CharbonnierLoss(nn.Module):
    """mean(sqrt((pred - target)^2 + eps^2)): the Charbonnier penalty (Charbonnier et al.,
    ICIP 1994), a differentiable L1 that LapSRN (Lai et al., CVPR 2017) trains with, eps=1e-3.
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).square() + self.eps**2).mean()


class TotalVariationLoss(nn.Module):
    """Total variation regulariser (Mahendran & Vedaldi, CVPR 2015; used by Johnson et al.
    2016 for spatial smoothness): mean |x[i+1, j] - x[i, j]|^p plus mean |x[i, j+1] - x[i, j]|^p
    over NCHW images (p = 1 anisotropic TV, p = 2 squared differences)."""

    def __init__(self, p: float = 1.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().pow(self.p).mean()
        horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().pow(self.p).mean()
        return vertical + horizontal
