"""pix2pix (Isola et al., CVPR 2017): a U-Net generator against a conditional PatchGAN,
G* = arg min_G max_D L_cGAN(G, D) + 100 L1(G), the generator's dropout as its noise, batch
size 1 (where batch norm acts as instance norm). Images are [-1, 1] inside (tanh)."""

import torch

from pyimg.data.source import ImageSource
from pyimg.data.translation import AlignedPairs, EdgesToPhoto
from pyimg.losses import Pix2PixLoss
from pyimg.metrics import psnr
from pyimg.train.tasks.base import Task, color_images, resolve_images
from pyimg.train.tasks.gan import to_signed, to_unit


class Pix2PixTask(Task):
    main = "generator"
    metric = "l1"
    metric_mode = "min"

    def __init__(self, config: dict):
        super().__init__(config)
        self.add_model("generator", config["model"], in_channels=3, out_channels=3)
        self.add_model("discriminator", config["discriminator"], in_channels=6)
        self.loss = Pix2PixLoss(float(config.get("l1_weight", 100.0)))

    def _dataset(self, spec, split: str, size):
        data = self.config["data"]
        if spec == "edges":
            paths = color_images(resolve_images("samples", split))
            return EdgesToPhoto(ImageSource(paths, "rgb", cache=True), size)
        return AlignedPairs(spec, size, data.get("direction", "AtoB"), data.get("hflip", True))

    def train_dataset(self):
        data = self.config["data"]
        return self._dataset(data["train"], "train", data["size"])

    def training_step(self, batch, fit):
        generator, discriminator = self.models["generator"], self.models["discriminator"]
        source = to_signed(fit.to_device(batch["input"]))
        target = to_signed(fit.to_device(batch["target"]))
        with fit.autocast():
            fake = generator(source)
            d_loss = self.loss.discriminator(discriminator(source, target).float(),
                                             discriminator(source, fake.detach()).float())
        fit.step("discriminator", d_loss)
        with fit.autocast():
            fake_logits = discriminator(source, fake).float()
        g_loss = self.loss.generator(fake_logits, fake.float(), target)
        fit.step("generator", g_loss)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    @torch.no_grad()
    def validate(self, model, device):
        data = self.config["data"]
        spec = data.get("val")
        if spec is None:
            return {}
        dataset = self._dataset(spec, "eval", None)
        crop = data.get("val_crop")
        l1 = quality = 0.0
        for index in range(len(dataset)):
            item = dataset[index]
            source, target = item["input"][None], item["target"][None]
            if crop is not None:
                source, target = source[..., :crop, :crop], target[..., :crop, :crop]
            fake = to_unit(model(to_signed(source).to(device)).float().cpu()).clamp(0, 1)
            l1 += (fake - target).abs().mean().item()
            quality += psnr(fake, target).item()
        return {"l1": l1 / len(dataset), "psnr": quality / len(dataset)}

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "translation", "range": "[-1, 1]"}
