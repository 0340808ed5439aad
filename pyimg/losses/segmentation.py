"""Segmentation losses: per-pixel cross-entropy with an ignored label, and Dice."""

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationCrossEntropyLoss(nn.CrossEntropyLoss):
    """Per-pixel cross-entropy on (N, C, H, W) scores and (N, H, W) labels, averaged over the
    pixels whose label is not ``ignore_index`` (255: PASCAL VOC's boundary/void label)."""

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = 255,
                 label_smoothing: float = 0.0):
        super().__init__(weight=weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing)


class DiceLoss(nn.Module):
    """1 - mean over classes of the soft Dice coefficient (Milletari et al., 3DV 2016,
    "V-Net"; here with the Sorensen sum in the denominator):
    (2 sum p t + smooth) / (sum p + sum t + smooth), with p the softmax probabilities and t
    the one-hot labels, over all non-ignored pixels of the batch."""

    def __init__(self, smooth: float = 1.0, ignore_index: int | None = 255):
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[1]
        keep = torch.ones_like(target, dtype=torch.bool)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
        probs = logits.softmax(dim=1) * keep.unsqueeze(1)
        one_hot = F.one_hot(target.where(keep, 0), classes).movedim(-1, 1) * keep.unsqueeze(1)
        dims = (0, *range(2, logits.dim()))
        overlap = (probs * one_hot).sum(dims)
        total = probs.sum(dims) + one_hot.sum(dims)
        return 1 - ((2 * overlap + self.smooth) / (total + self.smooth)).mean()
