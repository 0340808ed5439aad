"""Semantic segmentation data: PASCAL VOC's folder layout (JPEG images, palette PNG masks,
255 = ignore) and, where no labelled images ship, synthetic scenes: shapes cut from one
photograph pasted on another, labelled by shape."""

from pathlib import Path

import numpy as np
import torch

from pyimg.data.augment import random_flips
from pyimg.data.io import read_image, read_mask
from pyimg.data.sampler import key_index, sample_rng
from pyimg.data.source import ImageSource

IGNORE_INDEX = 255
SHAPES = ("background", "disc", "square", "triangle")


def voc_pairs(root, split: str = "train") -> list[tuple[Path, Path]]:
    """(image, mask) paths of a VOC-layout folder: ``JPEGImages/<id>.jpg`` and
    ``SegmentationClass/<id>.png`` for the ids listed in
    ``ImageSets/Segmentation/<split>.txt`` (every mask when that list is missing)."""
    root = Path(root)
    masks = root / "SegmentationClass"
    if not masks.is_dir():
        raise OSError(f"{root}: not a VOC-layout folder (no SegmentationClass/)")
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if listing.is_file():
        ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        ids = sorted(p.stem for p in masks.glob("*.png"))
    pairs = []
    for name in ids:
        image = root / "JPEGImages" / f"{name}.jpg"
        mask = masks / f"{name}.png"
        for path in (image, mask):
            if not path.is_file():
                raise OSError(f"{root}: {path.relative_to(root)} listed for {split} but "
                              "missing")
        pairs.append((image, mask))
    if not pairs:
        raise OSError(f"{root}: no {split} images")
    return pairs


def _pad_to(image: torch.Tensor, size: int, value: float) -> torch.Tensor:
    height, width = image.shape[-2:]
    if height >= size and width >= size:
        return image
    pad = (0, max(0, size - width), 0, max(0, size - height))
    return torch.nn.functional.pad(image, pad, value=value)


class SegmentationFolder(torch.utils.data.Dataset):
    """(image, mask) pairs, random ``size`` crops (padded with ignored pixels where the
    image is smaller) and horizontal flips; ``size=None`` gives whole images (evaluation).
    Items: {"image": (3, H, W) in [0, 1], "mask": (H, W) int64}."""

    def __init__(self, pairs, size: int | None = None, hflip: bool = True):
        self.pairs, self.size, self.hflip = list(pairs), size, hflip

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key):
        image_path, mask_path = self.pairs[key_index(key)]
        image, mask = read_image(image_path), read_mask(mask_path)
        if image.shape[-2:] != mask.shape:
            raise ValueError(f"{mask_path}: mask {tuple(mask.shape)} does not match image "
                             f"{image_path} {tuple(image.shape[-2:])}")
        if self.size is None:
            return {"image": image, "mask": mask}
        rng = sample_rng(key)
        image, mask = _pad_to(image, self.size, 0.0), _pad_to(mask, self.size, IGNORE_INDEX)
        top = int(rng.integers(0, image.shape[-2] - self.size + 1))
        left = int(rng.integers(0, image.shape[-1] - self.size + 1))
        image = image[:, top:top + self.size, left:left + self.size]
        mask = mask[top:top + self.size, left:left + self.size]
        image, mask = random_flips([image, mask], rng, self.hflip, rot=False)
        return {"image": image, "mask": mask}


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of one shape (disc, square, triangle) somewhere in a size^2 canvas."""
    radius = rng.uniform(0.12, 0.3) * size
    cy, cx = rng.uniform(radius, size - radius, 2)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    if kind == 1:
        return (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    if kind == 2:
        return (np.abs(y - cy) <= radius * 0.85) & (np.abs(x - cx) <= radius * 0.85)
    # An upward triangle: below the apex, above the base, within the two slanted sides.
    dy = y - (cy - radius)
    return (dy >= 0) & (y <= cy + radius / 2) & (np.abs(x - cx) <= dy / np.sqrt(3))


class SyntheticShapes(torch.utils.data.Dataset):
    """Labelled scenes made from unlabelled photographs: a random crop of one image as the
    background and 1-3 shapes (disc, square, triangle; labels 1-3) filled with a crop of
    another, so the classes differ in outline, not in texture. Items as
    :class:`SegmentationFolder`'s; ``length`` scenes per epoch."""

    num_classes = len(SHAPES)

    def __init__(self, source: ImageSource, size: int, length: int = 1000):
        self.source, self.size, self.length = source, size, length

    def __len__(self) -> int:
        return self.length

    def _crop(self, rng: np.random.Generator) -> torch.Tensor:
        index = int(rng.integers(len(self.source)))
        image = self.source[index]
        height, width = image.shape[-2:]
        if min(height, width) < self.size:
            raise ValueError(f"{self.source.paths[index]}: smaller than the {self.size}-pixel "
                             "crop")
        top = int(rng.integers(0, height - self.size + 1))
        left = int(rng.integers(0, width - self.size + 1))
        return image[:, top:top + self.size, left:left + self.size]

    def __getitem__(self, key):
        rng = sample_rng(key)
        image = self._crop(rng).clone()
        mask = torch.zeros(self.size, self.size, dtype=torch.int64)
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(1, len(SHAPES)))
            inside = torch.from_numpy(_shape_mask(kind, self.size, rng))
            image[:, inside] = self._crop(rng)[:, inside]
            mask[inside] = kind
        return {"image": image, "mask": mask}
