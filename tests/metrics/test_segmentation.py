"""Pixel accuracy and mean IoU against a direct per-pixel computation and a hand case."""

import numpy as np
import pytest
import torch

from pyimg.metrics import confusion_matrix, mean_iou, pixel_accuracy


def direct(pred, target, num_classes, ignore_index):
    """Accuracy and mean IoU counted pixel by pixel, with no confusion matrix."""
    pred, target = pred.numpy().ravel(), target.numpy().ravel()
    valid = target != ignore_index
    accuracy = np.mean(pred[valid] == target[valid])
    ious = []
    for c in range(num_classes):
        inter = np.sum(valid & (pred == c) & (target == c))
        union = np.sum(valid & ((pred == c) | (target == c)))
        if union:
            ious.append(inter / union)
    return accuracy, np.mean(ious)


def test_hand_computed_case():
    target = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 1, 0]])
    # 5 counted pixels, 3 right. IoU: class 0 = 1/2, class 1 = 2/4, class 2 = 0/1.
    assert pixel_accuracy(pred, target, 3).item() == pytest.approx(3 / 5)
    assert mean_iou(pred, target, 3).item() == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)
    assert confusion_matrix(pred, target, 3).tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]


@pytest.mark.parametrize("seed", range(3))
def test_random_labels_match_direct_computation(seed):
    gen = torch.Generator().manual_seed(seed)
    classes = 6
    target = torch.randint(0, classes, (2, 17, 13), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.1] = 255
    logits = torch.randn(2, classes - 1, 17, 13, generator=gen)  # class 5 never predicted
    pred = logits.argmax(dim=1)
    accuracy, miou = direct(pred, target, classes, 255)
    assert pixel_accuracy(logits, target, classes).item() == pytest.approx(accuracy)
    assert mean_iou(logits, target, classes).item() == pytest.approx(miou)


def test_classes_absent_everywhere_do_not_count():
    target = torch.tensor([[0, 1]])
    assert mean_iou(target, target, num_classes=10).item() == 1.0


def test_out_of_range_labels_are_rejected():
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 3)
