"""DCGAN (Radford et al., ICLR 2016): a generator from 100-d normal noise to 64 x 64 images
against a convolutional discriminator, the non-saturating GAN loss, Adam (2e-4, beta1
0.5). Trained here on 64 x 64 crops of the packaged photographs (or a folder); validation
reports the discriminator's mean output on fixed noise and on held-out crops."""

import torch

from pyimg.data.augment import random_crop_box, random_flips
from pyimg.data.sampler import key_index, sample_rng
from pyimg.data.source import ImageSource
from pyimg.losses import AdversarialLoss
from pyimg.train.tasks.base import Task, resolve_images
from pyimg.train.tasks.gan import to_signed


class Crops(torch.utils.data.Dataset):
    """Random ``size`` crops (horizontal flips) of images, ``length`` per epoch."""

    def __init__(self, source: ImageSource, size: int, length: int):
        self.source, self.size, self.length = source, size, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        rng = sample_rng(key)
        index = key_index(key) % len(self.source)
        image = self.source[index]
        top, left = random_crop_box(image.shape[-2], image.shape[-1], self.size, rng)
        (crop,) = random_flips([image[:, top:top + self.size, left:left + self.size]], rng,
                               rot=False)
        return {"image": crop}


class DCGANTask(Task):
    main = "generator"
    metric = "loss"

    def __init__(self, config: dict):
        super().__init__(config)
        self.latent = int(config.get("latent_dim", 100))
        self.add_model("generator", config["model"], latent_dim=self.latent, out_channels=3)
        self.add_model("discriminator", config["discriminator"], in_channels=3)
        self.gan = AdversarialLoss("vanilla")

    def _crops(self, split: str, length: int):
        data = self.config["data"]
        source = ImageSource(resolve_images(data["train"] if split == "train" else data["val"],
                                            split), "rgb", cache=data["train"] == "samples",
                             min_size=data["size"])
        return Crops(source, data["size"], length)

    def train_dataset(self):
        return self._crops("train", int(self.config["data"].get("length", 1000)))

    def training_step(self, batch, fit):
        generator, discriminator = self.models["generator"], self.models["discriminator"]
        real = to_signed(fit.to_device(batch["image"]))
        z = torch.randn(real.shape[0], self.latent, device=fit.device)
        with fit.autocast():
            fake = generator(z)
            d_loss = self.gan.discriminator(discriminator(real).float(),
                                            discriminator(fake.detach()).float())
        fit.step("discriminator", d_loss)
        with fit.autocast():
            g_loss = self.gan.generator(discriminator(fake).float())
        fit.step("generator", g_loss)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    @torch.no_grad()
    def validate(self, model, device):
        if self.config["data"].get("val") is None:
            return {}
        discriminator = self.models["discriminator"]
        was_training = discriminator.training
        discriminator.eval()
        z = torch.randn(16, self.latent, generator=torch.Generator().manual_seed(0))
        fake = torch.sigmoid(discriminator(model(z.to(device)))).mean().item()
        crops = self._crops("eval", 16)
        real_images = torch.stack([to_signed(crops[i]["image"]) for i in range(16)])
        real = torch.sigmoid(discriminator(real_images.to(device))).mean().item()
        discriminator.train(was_training)
        # The generator's loss on fixed noise tracks its progress against the current D.
        return {"d_real": real, "d_fake": fake, "loss": -torch.log(torch.tensor(fake)).item()}

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "generation", "range": "[-1, 1]"}
