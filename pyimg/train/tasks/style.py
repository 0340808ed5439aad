"""Fast neural style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016): a feed-forward
network trained on a content loss at relu2_2, a Gram-matrix style loss at relu1_2, relu2_2,
relu3_3 and relu4_3 against one style image, and total variation; the paper's VGG16
layers taken from VGG19 here (pyimg's perceptual losses use VGG19)."""

import torch

from pyimg.data.io import read_image
from pyimg.data.restoration import EvalImages
from pyimg.data.samples import data_folder
from pyimg.data.source import ImageSource
from pyimg.losses import PerceptualLoss, StyleLoss, TotalVariationLoss
from pyimg.train.tasks.base import Task, resolve_images
from pyimg.train.tasks.dcgan import Crops
from pyimg.train.tasks.gan import vgg19


class StyleTask(Task):
    metric = "loss"

    def __init__(self, config: dict):
        super().__init__(config)
        self.add_model("model", config["model"], in_channels=3)
        self.weights = {k: float(config[k]) for k in ("content_weight", "style_weight",
                                                      "tv_weight")}
        style = str(config["style_image"])
        if style.startswith("samples:"):
            style = data_folder() / style.removeprefix("samples:")
        self.style_image = read_image(style)[None]
        size = config["data"].get("style_size")
        if size:
            self.style_image = torch.nn.functional.interpolate(
                self.style_image, size=(size, size), mode="bilinear", antialias=True)

    def setup(self, device):
        features = vgg19(self.config, device)
        self.content = PerceptualLoss(("2_2",), features=features)
        self.style = StyleLoss(tuple(self.config["style_layers"]), features=features)
        self.tv = TotalVariationLoss()
        self.style_image = self.style_image.to(device)

    def train_dataset(self):
        data = self.config["data"]
        source = ImageSource(resolve_images(data["train"], "train"), "rgb",
                             cache=data["train"] == "samples", min_size=data["size"])
        return Crops(source, data["size"], int(data.get("length", 1000)))

    def _losses(self, model, content: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(content).float()
        w = self.weights
        parts = {"content": w["content_weight"] * self.content(out, content),
                 "style": w["style_weight"] * self.style(out, self.style_image),
                 "tv": w["tv_weight"] * self.tv(out)}
        parts["loss"] = sum(parts.values())
        return parts

    def training_step(self, batch, fit):
        content = fit.to_device(batch["image"])
        with fit.autocast():
            parts = self._losses(self.models["model"], content)
        fit.step("model", parts["loss"])
        return {k: v.item() for k, v in parts.items()}

    @torch.no_grad()
    def validate(self, model, device):
        data = self.config["data"]
        if data.get("val") is None:
            return {}
        totals: dict[str, float] = {}
        images = EvalImages(resolve_images(data["val"], "eval"), "rgb",
                            data.get("val_crop") or data["size"])
        for item in images:
            for key, value in self._losses(model, item["image"][None].to(device)).items():
                totals[key] = totals.get(key, 0.0) + value.item()
        return {k: v / len(images) for k, v in totals.items()}

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "style",
                "style_image": str(self.config["style_image"])}
