"""Image-to-image regression: super-resolution (ESPCN, VDSR, SRResNet), denoising (RED-Net,
the denoising autoencoder) and colourisation, trained on a pixel loss and scored by PSNR and
SSIM (on Y with a ``scale`` border for SR, as the SR papers)."""

import json

import torch

from pyimg.data.restoration import (
    ColorizationPairs,
    EvalImages,
    NoisyPairs,
    lab_to_rgb,
    rgb_to_lab,
)
from pyimg.data.sampler import sample_rng
from pyimg.data.source import ImageSource
from pyimg.data.sr import PairedSR, SRPairs, paired_paths
from pyimg.losses import CharbonnierLoss
from pyimg.metrics import psnr, ssim
from pyimg.train.evaluate import sr_scores, to_8bit
from pyimg.train.tasks.base import Task, color_images, resolve_images

PAIRS = ("sr", "denoise", "colorize")
LOSSES = {"mse": torch.nn.MSELoss, "l1": torch.nn.L1Loss, "charbonnier": CharbonnierLoss}


class PixelTask(Task):
    metric = "psnr"
    metric_mode = "max"

    def __init__(self, config: dict):
        super().__init__(config)
        self.pairs = config.get("pairs", "sr")
        if self.pairs not in PAIRS:
            raise ValueError(f"pairs must be one of {PAIRS}, got {self.pairs!r}")
        self.channels = config.get("channels", "rgb")
        self.scale = int(config.get("scale", 1))
        if config.get("loss", "mse") not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {config['loss']!r}")
        self.loss = LOSSES[config.get("loss", "mse")]()
        width = 1 if self.channels in ("y", "gray") else 3
        implied = {"in_channels": width}
        if self.pairs == "sr":
            implied["upscale_factor"] = self.scale
        if self.pairs == "colorize":
            implied = {"in_channels": 1, "out_channels": 2}
        self.add_model("model", config["model"], **implied)

    def _data(self, key, default=None):
        return self.config["data"].get(key, default)

    def train_dataset(self):
        data = self.config["data"]
        spec = data.get("train", "samples")
        flips = {"hflip": data.get("hflip", True), "rot": data.get("rot", True)}
        if self.pairs == "sr":
            gt_size = int(data["lr_size"]) * self.scale
            if isinstance(spec, dict):
                pairs = paired_paths(spec["lr"], spec["hr"], self.scale)
                return PairedSR(pairs, self.scale, gt_size, self.channels, **flips)
            source = ImageSource(resolve_images(spec, "train"), self.channels,
                                 cache=spec == "samples", skip_bad=data.get("skip_bad", False),
                                 min_size=gt_size)
            return SRPairs(source, self.scale, gt_size, quantize=data.get("quantize", True),
                           degradations=data.get("degradations"), rescale=data.get("rescale"),
                           **flips)
        paths = resolve_images(spec, "train")
        if self.pairs == "colorize":
            paths = color_images(paths)
        source = ImageSource(paths, "rgb" if self.pairs == "colorize" else self.channels,
                             cache=spec == "samples", skip_bad=data.get("skip_bad", False),
                             min_size=int(data["size"]))
        if self.pairs == "denoise":
            return NoisyPairs(source, int(data["size"]), data["noise_sigma"], **flips)
        return ColorizationPairs(source, int(data["size"]), **flips)

    def training_step(self, batch, fit):
        model = self.models["model"]
        x, target = fit.to_device(batch["input"]), fit.to_device(batch["target"])
        with fit.autocast():
            out = model(x)
        loss = self.loss(out.float(), target)
        fit.step("model", loss)
        return {"loss": loss.item()}

    def _val_paths(self):
        spec = self._data("val", "samples")
        if spec is None:
            return None
        paths = resolve_images(spec, "eval")
        return color_images(paths) if self.pairs == "colorize" else paths

    @torch.no_grad()
    def validate(self, model, device):
        paths = self._val_paths()
        if paths is None:
            return {}
        crop = self._data("val_crop")
        if self.pairs == "sr":
            scores = sr_scores(model, paths, self.scale, self.channels, device, crop)
            return {k: v for k, v in scores.items() if k != "images"}
        channels = "rgb" if self.pairs == "colorize" else self.channels
        totals = {"psnr": 0.0, "ssim": 0.0}
        for item in EvalImages(paths, channels, crop):
            image = item["image"][None]
            if self.pairs == "denoise":
                sigma = self.config["data"]["val_sigma"]
                noise = torch.from_numpy(sample_rng(item["index"]).standard_normal(
                    image.shape, dtype="float32")) * (sigma / 255)
                pred = model((image + noise).clamp(0, 1).to(device)).float().cpu()
            else:
                lab = rgb_to_lab(item["image"])
                ab = model(lab[None, :1].to(device)).float().cpu()[0]
                pred = lab_to_rgb(torch.cat([lab[:1], ab]))[None]
            pred = to_8bit(pred)
            totals["psnr"] += psnr(pred, image).item()
            totals["ssim"] += ssim(pred, image).item()
        return {k: v / len(paths) for k, v in totals.items()}

    def weights_metadata(self):
        meta = super().weights_metadata()
        meta["channels"] = self.channels if self.pairs != "colorize" else "lab"
        meta["task"] = self.pairs
        if self.pairs == "sr":
            meta["scale"] = str(self.scale)
        if self.pairs == "denoise":
            meta["noise_sigma"] = json.dumps(self.config["data"]["noise_sigma"])
        return meta
