"""Random crops and dihedral augmentations applied identically to every image of a sample
(an LR/HR pair, an image and its mask), drawn from the sample's own generator."""

import numpy as np
import torch


def random_flips(images: list[torch.Tensor], rng: np.random.Generator, hflip: bool = True,
                 rot: bool = True) -> list[torch.Tensor]:
    """BasicSR's augmentation: a horizontal flip, and with ``rot`` a vertical flip and a
    transpose (together any of the 8 dihedral transforms), each with probability 1/2.
    Draws three numbers whatever the options, so the options do not shift later draws."""
    draws = rng.random(3) < 0.5
    out = []
    for image in images:
        if hflip and draws[0]:
            image = image.flip(-1)
        if rot and draws[1]:
            image = image.flip(-2)
        if rot and draws[2]:
            image = image.transpose(-2, -1)
        out.append(image.contiguous())
    return out


def random_crop_box(height: int, width: int, size: int, rng: np.random.Generator,
                    step: int = 1) -> tuple[int, int]:
    """Top-left corner of a ``size`` x ``size`` window inside height x width, on a grid of
    ``step`` pixels (the scale factor, so that an HR crop lines up with LR pixels)."""
    top = int(rng.integers(0, (height - size) // step + 1)) * step
    left = int(rng.integers(0, (width - size) // step + 1)) * step
    return top, left
