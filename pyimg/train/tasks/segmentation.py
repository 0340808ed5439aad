"""Semantic segmentation (FCN, U-Net, SegNet): per-pixel cross-entropy (plus an optional
Dice term) with ignored pixels, scored by mean IoU and pixel accuracy."""

import torch

from pyimg.data.segmentation import (
    IGNORE_INDEX,
    SegmentationFolder,
    SyntheticShapes,
    voc_pairs,
)
from pyimg.data.source import ImageSource
from pyimg.losses import DiceLoss, SegmentationCrossEntropyLoss
from pyimg.metrics import confusion_matrix
from pyimg.train.tasks.base import Task, resolve_images


class SegmentationTask(Task):
    metric = "miou"
    metric_mode = "max"

    def __init__(self, config: dict):
        super().__init__(config)
        self.num_classes = int(config["num_classes"])
        self.add_model("model", config["model"], in_channels=3, num_classes=self.num_classes)
        self.cross_entropy = SegmentationCrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.dice_weight = float(config.get("dice_weight", 0.0))
        self.dice = DiceLoss(ignore_index=IGNORE_INDEX)

    def _dataset(self, spec, split: str, size):
        data = self.config["data"]
        if spec == "synthetic":
            source = ImageSource(resolve_images("samples", split), "rgb", cache=True)
            if SyntheticShapes.num_classes != self.num_classes:
                raise ValueError(f"synthetic shapes have {SyntheticShapes.num_classes} "
                                 f"classes; set num_classes={SyntheticShapes.num_classes}")
            length = data.get("length", 1000) if split == "train" else data.get("val_length", 16)
            return SyntheticShapes(source, data["size"], length)
        voc_split = "train" if split == "train" else "val"
        return SegmentationFolder(voc_pairs(spec, voc_split), size, data.get("hflip", True))

    def train_dataset(self):
        data = self.config["data"]
        return self._dataset(data["train"], "train", data["size"])

    def training_step(self, batch, fit):
        model = self.models["model"]
        image, mask = fit.to_device(batch["image"]), batch["mask"].to(fit.device)
        with fit.autocast():
            scores = model(image)
        scores = scores.float()
        loss = self.cross_entropy(scores, mask)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(scores, mask)
        fit.step("model", loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def validate(self, model, device):
        spec = self.config["data"].get("val")
        if spec is None:
            return {}
        dataset = self._dataset(spec, "eval", None)
        counts = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        for index in range(len(dataset)):
            item = dataset[index]
            scores = model(item["image"][None].to(device)).float().cpu()
            counts += confusion_matrix(scores, item["mask"][None], self.num_classes,
                                       IGNORE_INDEX)
        counts = counts.double()
        tp = counts.diagonal()
        union = counts.sum(0) + counts.sum(1) - tp
        present = union > 0
        return {"miou": (tp[present] / union[present]).mean().item(),
                "pixel_accuracy": (tp.sum() / counts.sum()).item()}

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "segmentation",
                "num_classes": str(self.num_classes)}
