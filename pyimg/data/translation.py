"""Image-to-image translation data: pix2pix's aligned A|B images side by side, CycleGAN's
unaligned ``trainA/`` ``trainB/`` folders, and pairs made from unlabelled photographs
(edges -> photo) where no translation dataset ships."""

from pathlib import Path

import numpy as np
import torch

from pyimg.data.augment import random_crop_box, random_flips
from pyimg.data.io import read_image
from pyimg.data.sampler import key_index, sample_rng
from pyimg.data.source import ImageSource, folder_paths


def _random_crop(images: list[torch.Tensor], size: int, rng: np.random.Generator, name):
    height, width = images[0].shape[-2:]
    if min(height, width) < size:
        raise ValueError(f"{name}: {height} x {width} pixels, smaller than the {size}-pixel "
                         "crop")
    top, left = random_crop_box(height, width, size, rng)
    return [im[:, top:top + size, left:left + size] for im in images]


class AlignedPairs(torch.utils.data.Dataset):
    """pix2pix's datasets (facades, maps, edges2shoes...): each file holds A and B side by
    side (A left). Random ``size`` crops at the same place in both and horizontal flips;
    ``size=None`` keeps whole images. ``direction`` "AtoB" or "BtoA". Items:
    {"input", "target"} in [0, 1]."""

    def __init__(self, folder, size: int | None = 256, direction: str = "AtoB",
                 hflip: bool = True):
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.paths = folder_paths(folder)
        self.size, self.direction, self.hflip = size, direction, hflip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        path = self.paths[key_index(key)]
        image = read_image(path)
        width = image.shape[-1]
        if width % 2:
            raise ValueError(f"{path}: an A|B image must have an even width, got {width}")
        a, b = image[..., :width // 2], image[..., width // 2:]
        if self.direction == "BtoA":
            a, b = b, a
        if self.size is not None:
            rng = sample_rng(key)
            a, b = _random_crop([a, b], self.size, rng, path)
            a, b = random_flips([a, b], rng, self.hflip, rot=False)
        return {"input": a.contiguous(), "target": b.contiguous()}


def edges(image: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Canny edges of a (3, H, W) image as a (3, H, W) white-on-black sketch."""
    from skimage.feature import canny

    gray = (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).numpy()
    return torch.from_numpy(canny(gray, sigma=sigma)).float().expand(3, -1, -1).contiguous()


class EdgesToPhoto(torch.utils.data.Dataset):
    """edges2photo pairs from unlabelled photographs (pix2pix's edges2shoes made the same
    way, with HED edges): random ``size`` crops (or whole images with ``size=None``) and
    their Canny edges. Items: {"input": edges, "target": photo}."""

    def __init__(self, source: ImageSource, size: int | None, hflip: bool = True):
        self.source, self.size, self.hflip = source, size, hflip
        self.length = len(source) if size is None else sum(
            max(1, round(h * w / size**2)) for h, w in source.sizes())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key):
        index = key_index(key) % len(self.source)
        photo = self.source[index]
        if self.size is not None:
            rng = sample_rng(key)
            (photo,) = _random_crop([photo], self.size, rng, self.source.paths[index])
            (photo,) = random_flips([photo], rng, self.hflip, rot=False)
        return {"input": edges(photo), "target": photo}


class UnalignedPairs(torch.utils.data.Dataset):
    """CycleGAN's unpaired domains: entry i is image i of A and a random image of B, both
    randomly cropped to ``size`` and flipped. Items: {"a", "b"} in [0, 1]."""

    def __init__(self, source_a: ImageSource, source_b: ImageSource, size: int,
                 hflip: bool = True):
        self.a, self.b, self.size, self.hflip = source_a, source_b, size, hflip

    @classmethod
    def from_folder(cls, root, size: int, split: str = "train", **kwargs):
        """CycleGAN's layout: ``root/<split>A/`` and ``root/<split>B/``."""
        root = Path(root)
        return cls(ImageSource(folder_paths(root / f"{split}A")),
                   ImageSource(folder_paths(root / f"{split}B")), size, **kwargs)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, key):
        rng = sample_rng(key)
        index = key_index(key)
        out = {}
        for name, source, i in (("a", self.a, index % len(self.a)),
                                ("b", self.b, int(rng.integers(len(self.b))))):
            (crop,) = _random_crop([source[i]], self.size, rng, source.paths[i])
            (crop,) = random_flips([crop], rng, self.hflip, rot=False)
            out[name] = crop
        return out
