"""Semantic-segmentation metrics from a confusion matrix, as FCN (Long et al. 2015, Sec. 5)
reports them: pixel accuracy and mean intersection-over-union."""

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = 255) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts, row = true class, column = predicted class.

    ``pred`` holds class indices shaped like ``target`` (N, H, W), or scores (N, C, H, W)
    whose argmax over C is taken. Pixels whose target is ``ignore_index`` (PASCAL VOC's 255
    boundary label) are left out.
    """
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                         "differ in shape")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    for name, labels in (("target", target), ("prediction", pred)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in [0, {num_classes}) or be ignore_index")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.view(num_classes, num_classes)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                   ignore_index: int | None = 255) -> torch.Tensor:
    """Fraction of the non-ignored pixels whose predicted class is right."""
    cm = confusion_matrix(pred, target, num_classes, ignore_index).double()
    return cm.diagonal().sum() / cm.sum()


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
             ignore_index: int | None = 255) -> torch.Tensor:
    """Mean over classes of TP / (TP + FP + FN); classes absent from both prediction and
    target (empty union) do not count."""
    cm = confusion_matrix(pred, target, num_classes, ignore_index).double()
    tp = cm.diagonal()
    union = cm.sum(dim=0) + cm.sum(dim=1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean()
