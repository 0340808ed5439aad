"""Tiny versions of the recipes: the same code paths at a size that trains in a second."""

import pytest
import torch

from pyimg.losses import VGG19Features

# Every test run: a few steps, one thread (the same arithmetic in every process).
COMMON = ["log_every=1", "threads=1", "data.batch_size=2"]

# Per recipe: small widths, small crops, small validation images.
SMOKE = {
    "espcn": ["data.lr_size=8", "data.val_crop=48"],
    "vdsr": ["model.kwargs.num_layers=3", "model.kwargs.channels=8", "data.lr_size=8",
             "data.val_crop=48"],
    "srresnet": ["model.kwargs.num_blocks=1", "model.kwargs.channels=8", "data.lr_size=8",
                 "data.val_crop=64"],
    "srgan": ["model.kwargs.num_blocks=1", "model.kwargs.channels=8",
              "discriminator.kwargs.channels=4", "discriminator.kwargs.hidden=8",
              "data.lr_size=8", "data.val_crop=64"],
    "rednet": ["model.kwargs.num_layers=2", "model.kwargs.channels=8", "data.size=24",
               "data.val_crop=48"],
    "denoise_ae": ["model.kwargs.widths=[8,16]", "model.kwargs.latent_channels=8",
                   "data.size=32", "data.val_crop=48"],
    "colorization": ["model.kwargs.width=0.0625", "data.size=32", "data.val_crop=48"],
    "unet": ["model.kwargs.base_channels=4", "model.kwargs.depth=2", "data.size=48",
             "data.val_length=2"],
    "segnet": ["model.kwargs.width=0.0625", "data.size=48", "data.val_length=2"],
    "fcn8s": ["model.kwargs.width=0.0625", "model.kwargs.fc_channels=16", "data.size=48",
              "data.val_length=2"],
    "pix2pix": ["model.kwargs.base_channels=4", "model.kwargs.num_downs=5",
                "discriminator.kwargs.base_channels=4", "data.size=64", "data.val_crop=64"],
    "cyclegan": ["model.kwargs.base_channels=4", "model.kwargs.num_blocks=1",
                 "discriminator.kwargs.base_channels=4", "data.size=32", "data.val_crop=32"],
    "style": ["model.kwargs.base_channels=4", "model.kwargs.num_blocks=1", "data.size=64",
              "data.style_size=64", "data.val_crop=64"],
    "dcgan": ["model.kwargs.base_channels=4", "discriminator.kwargs.base_channels=4"],
}
NEEDS_VGG = ("srgan", "style")


@pytest.fixture(scope="session")
def vgg19_file(tmp_path_factory):
    """Seeded random VGG19 weights: exercises the perceptual losses' code, not their
    meaning (ImageNet weights cannot be downloaded here)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(VGG19Features().features.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def smoke(vgg19_file):
    """recipe -> overrides of its tiny version (KeyError for a recipe without one)."""

    def overrides(recipe: str) -> list[str]:
        extra = [f"vgg19_weights={vgg19_file}"] if recipe in NEEDS_VGG else []
        return COMMON + SMOKE[recipe] + extra

    return overrides
