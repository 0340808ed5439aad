"""SRGAN (Ledig et al., CVPR 2017): SRResNet as the generator, started from trained
SRResNet weights as the paper does, trained on the VGG54 content loss plus 1e-3 times the
adversarial loss against SRGAN's discriminator; scored like every SR model (PSNR/SSIM on
Y), though its aim is perceptual quality, not PSNR."""

import torch

from pyimg.data.source import ImageSource
from pyimg.data.sr import SRPairs
from pyimg.losses import AdversarialLoss, PerceptualLoss
from pyimg.train.checkpoint import load_weights
from pyimg.train.evaluate import sr_scores
from pyimg.train.tasks.base import Task, resolve_images
from pyimg.train.tasks.gan import vgg19

# The paper rescales VGG feature maps by 1/12.75 so that the content loss is of the size of
# an MSE loss on pixels; on MSE that is a factor of 1/12.75^2.
VGG_RESCALE = 1 / 12.75**2


class SRGANTask(Task):
    main = "generator"
    metric = "psnr"
    metric_mode = "max"

    def __init__(self, config: dict):
        super().__init__(config)
        self.scale = int(config["scale"])
        generator = self.add_model("generator", config["model"], upscale_factor=self.scale,
                                   in_channels=3)
        self.add_model("discriminator", config["discriminator"], in_channels=3)
        if config.get("generator_weights"):
            tensors, _ = load_weights(config["generator_weights"])
            generator.load_state_dict(tensors)
        self.adversarial = AdversarialLoss("vanilla")
        self.adversarial_weight = float(config.get("adversarial_weight", 1e-3))

    def setup(self, device):
        self.content = PerceptualLoss(layers=(self.config.get("content_layer", "5_4"),),
                                      features=vgg19(self.config, device))

    def train_dataset(self):
        data = self.config["data"]
        source = ImageSource(resolve_images(data["train"], "train"), "rgb",
                             cache=data["train"] == "samples")
        return SRPairs(source, self.scale, int(data["lr_size"]) * self.scale)

    def training_step(self, batch, fit):
        generator, discriminator = self.models["generator"], self.models["discriminator"]
        lr, hr = fit.to_device(batch["input"]), fit.to_device(batch["target"])
        with fit.autocast():
            sr = generator(lr)
            d_loss = self.adversarial.discriminator(discriminator(hr).float(),
                                                    discriminator(sr.detach()).float())
        fit.step("discriminator", d_loss)
        with fit.autocast():
            fake_logits = discriminator(sr).float()
        content = VGG_RESCALE * self.content(sr.float(), hr)
        g_loss = content + self.adversarial_weight * self.adversarial.generator(fake_logits)
        fit.step("generator", g_loss)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "content": content.item()}

    @torch.no_grad()
    def validate(self, model, device):
        spec = self.config["data"].get("val")
        if spec is None:
            return {}
        scores = sr_scores(model, resolve_images(spec, "eval"), self.scale, "rgb", device,
                           self.config["data"].get("val_crop"))
        return {k: v for k, v in scores.items() if k != "images"}

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "sr", "scale": str(self.scale),
                "channels": "rgb"}
