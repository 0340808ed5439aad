"""Pixel and segmentation losses on hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from pyimg import losses


def test_l1_and_mse_are_torchs():
    assert losses.L1Loss is torch.nn.L1Loss and losses.MSELoss is torch.nn.MSELoss


def test_charbonnier():
    target = torch.zeros(2, 1, 3, 3)
    # sqrt(0.3^2 + 0.4^2) = 0.5 everywhere.
    assert losses.CharbonnierLoss(eps=0.4)(target + 0.3, target).item() == pytest.approx(0.5)
    assert losses.CharbonnierLoss()(target, target).item() == pytest.approx(1e-3)


@pytest.mark.parametrize("p, expected", [(1, 4.5 + 2.5), (2, (9 + 36) / 2 + (1 + 16) / 2)])
def test_total_variation(p, expected):
    x = torch.tensor([[0.0, 1.0], [3.0, 7.0]]).view(1, 1, 2, 2)
    # Vertical differences 3 and 6, horizontal ones 1 and 4.
    assert losses.TotalVariationLoss(p)(x).item() == pytest.approx(expected)
    assert losses.TotalVariationLoss(p)(torch.full((1, 3, 4, 4), 2.0)).item() == 0


def test_segmentation_cross_entropy_skips_ignored_pixels():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 2], [255, 1]]])
    log_probs = logits.log_softmax(dim=1)[0]
    expected = -(log_probs[0, 0, 0] + log_probs[2, 0, 1] + log_probs[1, 1, 1]) / 3
    got = losses.SegmentationCrossEntropyLoss()(logits, target)
    assert got.item() == pytest.approx(expected.item())


def test_dice_on_uniform_scores():
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[0, 0, 1, 255]]])
    # p = 1/2 on 3 counted pixels. Class 0: (2*1 + 1) / (1.5 + 2 + 1); class 1:
    # (2*0.5 + 1) / (1.5 + 1 + 1).
    expected = 1 - (3 / 4.5 + 2 / 3.5) / 2
    assert losses.DiceLoss()(logits, target).item() == pytest.approx(expected)


def test_dice_of_a_confident_right_prediction_is_zero():
    target = torch.randint(0, 3, (2, 5, 5))
    logits = F.one_hot(target, 3).movedim(-1, 1).float() * 100
    assert losses.DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(0, abs=1e-6)
    assert math.isfinite(losses.DiceLoss(ignore_index=None)(logits, target).item())
