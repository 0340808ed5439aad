"""Training pairs for restoration tasks that need no labels: denoising (clean images plus
Gaussian noise) and colourisation (the L of CIE Lab in, its ab out), and whole images for
evaluating them."""

from pathlib import Path

import numpy as np
import torch

from pyimg.data.augment import random_crop_box, random_flips
from pyimg.data.io import read_array, to_tensor
from pyimg.data.sampler import key_index, sample_rng
from pyimg.data.source import ImageSource, convert_channels

# Lab scaling to about [0, 1] (L) and [-1, 1] (a, b): L in [0, 100], ab within +-110.
L_RANGE, AB_RANGE = 100.0, 110.0


def _crop_and_flip(source: ImageSource, key, size: int, hflip: bool, rot: bool):
    rng = sample_rng(key)
    index = key_index(key) % len(source)
    image = source[index]
    if min(image.shape[-2:]) < size:
        raise ValueError(f"{source.paths[index]}: {image.shape[-2]} x {image.shape[-1]} "
                         f"pixels, smaller than the {size}-pixel crop")
    top, left = random_crop_box(image.shape[-2], image.shape[-1], size, rng)
    (crop,) = random_flips([image[:, top:top + size, left:left + size]], rng, hflip, rot)
    return crop, rng


def _area_length(source: ImageSource, size: int) -> int:
    return sum(max(1, round(h * w / size**2)) for h, w in source.sizes())


def _noise(shape, sigma, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise of ``sigma`` (on the 0-255 scale; a [low, high] range draws one)."""
    if not isinstance(sigma, (int, float)):
        sigma = rng.uniform(*sigma)
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) * (sigma / 255)


class NoisyPairs(torch.utils.data.Dataset):
    """Random ``size`` crops (flips/rot90) and the same crops plus Gaussian noise of
    ``sigma`` (0-255 scale; a [low, high] pair draws it per sample), clipped to [0, 1]
    when ``clip``. Items: {"input": noisy, "target": clean}."""

    def __init__(self, source: ImageSource, size: int, sigma, clip: bool = True,
                 hflip: bool = True, rot: bool = True):
        self.source, self.size, self.sigma, self.clip = source, size, sigma, clip
        self.hflip, self.rot = hflip, rot
        self.length = _area_length(source, size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        clean, rng = _crop_and_flip(self.source, key, self.size, self.hflip, self.rot)
        noisy = clean + _noise(clean.shape, self.sigma, rng)
        return {"input": noisy.clamp(0, 1) if self.clip else noisy, "target": clean}


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) sRGB in [0, 1] to CIE Lab (D65, skimage's conversion) scaled as L / 100,
    ab / 110."""
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb.permute(1, 2, 0).double().numpy())
    lab = torch.from_numpy(lab).permute(2, 0, 1).float()
    return lab / torch.tensor([L_RANGE, AB_RANGE, AB_RANGE]).view(3, 1, 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_lab` for one (3, H, W) image, clipped to [0, 1]."""
    from skimage.color import lab2rgb

    scaled = lab.double() * torch.tensor([L_RANGE, AB_RANGE, AB_RANGE],
                                         dtype=torch.float64).view(3, 1, 1)
    return torch.from_numpy(lab2rgb(scaled.permute(1, 2, 0).numpy())).permute(2, 0, 1).float()


class ColorizationPairs(torch.utils.data.Dataset):
    """Random ``size`` crops of colour images (flips/rot90) split into Lab: {"input": L,
    "target": ab} (scaled by :func:`rgb_to_lab`). Grey images carry no colour to learn
    and should be left out of the source."""

    def __init__(self, source: ImageSource, size: int, hflip: bool = True, rot: bool = True):
        self.source, self.size, self.hflip, self.rot = source, size, hflip, rot
        self.length = _area_length(source, size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        crop, _ = _crop_and_flip(self.source, key, self.size, self.hflip, self.rot)
        lab = rgb_to_lab(crop)
        return {"input": lab[:1], "target": lab[1:]}


def center_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return image
    height, width = image.shape[-2:]
    h, w = min(size, height), min(size, width)
    top, left = (height - h) // 2, (width - w) // 2
    return image[..., top:top + h, left:left + w]


class EvalImages(torch.utils.data.Dataset):
    """Whole images (or their central ``crop`` square) for evaluation: {"image", "name",
    "index"}; ``index`` seeds any noise added, so every validation sees the same input."""

    def __init__(self, paths, channels: str = "rgb", crop: int | None = None):
        self.paths, self.channels, self.crop = [Path(p) for p in paths], channels, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        image = convert_channels(to_tensor(read_array(self.paths[index]), "any"), self.channels)
        return {"image": center_crop(image, self.crop), "name": self.paths[index].name,
                "index": index}
