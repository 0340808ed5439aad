"""CycleGAN (Zhu et al., ICCV 2017): generators G: A -> B and F: B -> A, a PatchGAN per
domain, least-squares GAN losses, cycle consistency (lambda 10) and identity (0.5 lambda)
losses, and a pool of 50 generated images for the discriminators. Without paired data
the score is the cycle reconstruction error on held-out images."""

import torch

from pyimg.data.samples import sample_images
from pyimg.data.source import ImageSource
from pyimg.data.translation import UnalignedPairs
from pyimg.losses import AdversarialLoss, CycleConsistencyLoss, IdentityLoss
from pyimg.train.tasks.base import Task, color_images
from pyimg.train.tasks.gan import ImagePool, to_signed, to_unit


def _grey_images(paths):
    color = set(color_images(paths))
    return [p for p in paths if p not in color]


class CycleGANTask(Task):
    main = "g_ab"
    metric = "cycle_l1"
    metric_mode = "min"

    def __init__(self, config: dict):
        super().__init__(config)
        for name in ("g_ab", "g_ba"):
            self.add_model(name, config["model"], in_channels=3, out_channels=3)
        for name in ("d_a", "d_b"):
            # Unconditional: the PatchGAN sees the image alone (an empty condition).
            self.add_model(name, config["discriminator"], in_channels=3)
        cycle = float(config.get("lambda_cycle", 10.0))
        self.cycle = CycleConsistencyLoss(cycle)
        self.identity = IdentityLoss(float(config.get("lambda_identity", 0.5)) * cycle)
        self.gan = AdversarialLoss("lsgan")
        pool = int(config.get("pool_size", 50))
        self.pools = {"a": ImagePool(pool), "b": ImagePool(pool)}

    def optimizer_groups(self):
        return {"generators": ["g_ab", "g_ba"], "discriminators": ["d_a", "d_b"]}

    def _sources(self, split: str):
        """Domain A and B images: the recipe's folders (``<split>A/``, ``<split>B/``), or
        for "samples" the packaged colour photographs (A) and grey ones (B)."""
        data = self.config["data"]
        if data["train"] == "samples":
            images = sample_images()
            paths = list(images.train if split == "train" else images.eval)
            return (ImageSource(color_images(paths), "rgb", cache=True),
                    ImageSource(_grey_images(paths), "rgb", cache=True))
        dataset = UnalignedPairs.from_folder(data["train"], data["size"], split)
        return dataset.a, dataset.b

    def train_dataset(self):
        a, b = self._sources("train")
        return UnalignedPairs(a, b, self.config["data"]["size"])

    @staticmethod
    def _discriminate(d, image):
        return d(image[:, :0], image).float()

    def training_step(self, batch, fit):
        m = self.models
        real_a, real_b = to_signed(fit.to_device(batch["a"])), to_signed(fit.to_device(batch["b"]))
        with fit.autocast():
            fake_b, fake_a = m["g_ab"](real_a), m["g_ba"](real_b)
            cycle = (self.cycle(m["g_ba"](fake_b).float(), real_a)
                     + self.cycle(m["g_ab"](fake_a).float(), real_b))
            identity = (self.identity(m["g_ab"](real_b).float(), real_b)
                        + self.identity(m["g_ba"](real_a).float(), real_a))
            adversarial = (self.gan.generator(self._discriminate(m["d_b"], fake_b))
                           + self.gan.generator(self._discriminate(m["d_a"], fake_a)))
        g_loss = adversarial + cycle + identity
        fit.step("generators", g_loss)
        pooled_b, pooled_a = self.pools["b"].query(fake_b), self.pools["a"].query(fake_a)
        with fit.autocast():
            # Each discriminator's objective is halved, as in the paper (Sec. 7.1).
            d_loss = (self.gan.discriminator(self._discriminate(m["d_b"], real_b),
                                             self._discriminate(m["d_b"], pooled_b))
                      + self.gan.discriminator(self._discriminate(m["d_a"], real_a),
                                               self._discriminate(m["d_a"], pooled_a))) / 2
        fit.step("discriminators", d_loss)
        return {"g_loss": g_loss.item(), "cycle": cycle.item(), "d_loss": d_loss.item()}

    @torch.no_grad()
    def validate(self, model, device):
        data = self.config["data"]
        if data.get("val") is None:
            return {}
        g_ba = self.models["g_ba"]
        a, _ = self._sources("eval" if data["train"] == "samples" else "test")
        crop = data.get("val_crop") or data["size"]
        total = 0.0
        for index in range(len(a)):
            image = a[index][None, :, :crop, :crop]
            restored = to_unit(g_ba(model(to_signed(image).to(device)))).float().cpu()
            total += (restored.clamp(0, 1) - image).abs().mean().item()
        return {"cycle_l1": total / len(a)}

    def state_dict(self):
        return {name: pool.state_dict() for name, pool in self.pools.items()}

    def load_state_dict(self, state):
        for name, pool in self.pools.items():
            pool.load_state_dict(state[name], torch.device("cpu"))

    def weights_metadata(self):
        return {**super().weights_metadata(), "task": "translation", "range": "[-1, 1]"}
