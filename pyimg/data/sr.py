"""Super-resolution pairs: made on the fly from high-resolution images (no labels needed,
a downscaled photo and its original are a training pair), read from paired LR/HR folders,
and the MATLAB evaluation protocol of the SR papers."""

import math
import re
from pathlib import Path

import numpy as np
import torch

from pyimg.data.augment import random_crop_box, random_flips
from pyimg.data.color import gray_to_y, rgb_to_ycbcr
from pyimg.data.degrade import degrade
from pyimg.data.imresize import imresize
from pyimg.data.io import read_array
from pyimg.data.sampler import key_index, sample_rng
from pyimg.data.source import ImageSource


def _check_scale(scale: int, gt_size: int) -> None:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if gt_size % scale:
        raise ValueError(f"gt_size {gt_size} must be a multiple of the scale {scale}")




class SRPairs(torch.utils.data.Dataset):
    """Random ``gt_size`` HR crops and their ``scale``-times smaller LR versions.

    The LR crop is MATLAB's bicubic ``imresize`` of the HR image (antialiased), computed on
    the crop plus a margin of 2 * scale pixels, which is exactly the matching window of the
    whole (mod-cropped) image's LR: the same degradation as the evaluation. Crops lie on the
    scale grid. ``quantize`` rounds the LR to 8-bit levels as a saved LR image would be;
    ``degradations`` (keys blur, noise, jpeg_quality; see :func:`pyimg.data.degrade.degrade`)
    then corrupt it; flips/rot90 apply to both. ``rescale`` = [low, high] first shrinks the
    photograph by a random factor in that range. Items: {"input": LR, "target": HR}.
    """

    def __init__(self, source: ImageSource, scale: int, gt_size: int, hflip: bool = True,
                 rot: bool = True, quantize: bool = True, degradations: dict | None = None,
                 rescale: tuple[float, float] | None = None):
        _check_scale(scale, gt_size)
        self.source, self.scale, self.gt_size = source, int(scale), int(gt_size)
        self.hflip, self.rot, self.quantize = hflip, rot, quantize
        if rescale is not None and not 0 < rescale[0] <= rescale[1] <= 1:
            raise ValueError(f"rescale must be [low, high] within (0, 1], got {rescale!r}")
        self.rescale = tuple(rescale) if rescale is not None else None
        self.degradations = dict(degradations or {})
        unknown = set(self.degradations) - {"blur", "noise", "jpeg_quality"}
        if unknown:
            raise ValueError(f"unknown degradations {sorted(unknown)}; use blur, noise, "
                             "jpeg_quality")

    def __len__(self) -> int:
        return len(self.source)

    def _rescaled_window(self, image: torch.Tensor, rng) -> torch.Tensor:
        """A random window of ``image`` shrunk by a factor drawn from ``rescale``, just
        large enough for a crop with its margin (the scale augmentation of VDSR and its
        successors: more kinds of detail from few photographs)."""
        factor = rng.uniform(*self.rescale)
        out = self.gt_size + 4 * self.scale
        # Source pixels for ``out`` resized ones, plus the resize kernel's reach either side.
        size = math.ceil(out / factor) + 2 * math.ceil(2 / factor) + 2
        if min(image.shape[-2:]) < size:
            return image
        top = int(rng.integers(0, image.shape[-2] - size + 1))
        left = int(rng.integers(0, image.shape[-1] - size + 1))
        resized = imresize(image[:, top:top + size, left:left + size], factor)
        offset = (resized.shape[-1] - out) // 2
        return resized[:, offset:offset + out, offset:offset + out]

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        rng = sample_rng(key)
        path = self.source.paths[key_index(key)]
        image = self.source[key_index(key)]
        if self.rescale is not None:
            image = self._rescaled_window(image, rng)
        s, g = self.scale, self.gt_size
        height, width = image.shape[-2] // s * s, image.shape[-1] // s * s
        if min(height, width) < g:
            raise ValueError(f"{path}: {image.shape[-2]} x {image.shape[-1]} pixels, smaller "
                             f"than the {g}-pixel crop")
        top, left = random_crop_box(height, width, g, rng, step=s)
        margin = 2 * s
        y0, x0 = max(0, top - margin), max(0, left - margin)
        y1, x1 = min(height, top + g + margin), min(width, left + g + margin)
        lr = imresize(image[:, y0:y1, x0:x1], 1 / s)
        lr = lr[:, (top - y0) // s:(top - y0 + g) // s, (left - x0) // s:(left - x0 + g) // s]
        hr = image[:, top:top + g, left:left + g]
        if self.quantize:
            lr = torch.round(lr.clamp(0, 1) * 255) / 255
        lr, hr = random_flips([lr, hr], rng, self.hflip, self.rot)
        if self.degradations:
            lr = degrade(lr, rng, **self.degradations)
        return {"input": lr.contiguous(), "target": hr.contiguous()}


def eval_pair(path, scale: int, channels: str,
              crop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) of one evaluation image by the SR papers' MATLAB protocol (SRCNN's code):
    an 8-bit image goes to Y with ``rgb2ycbcr`` in uint8 ("y"; a grey image as R = G = B)
    or stays RGB ("rgb"), is cropped to a multiple of ``scale`` and shrunk with uint8
    ``imresize``. Deeper images go the same way in float. ``crop`` keeps the central
    square of that many pixels first (quick validation). Both come back (C, H, W) float in
    [0, 1]."""
    array = read_array(path)
    if crop is not None:
        top, left = max(0, (array.shape[0] - crop) // 2), max(0, (array.shape[1] - crop) // 2)
        array = array[top:top + crop, left:left + crop]
    image = torch.from_numpy(np.array(array))  # a writable copy
    image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    if image.dtype != torch.uint8:
        image = image.float() / (65535.0 if image.dtype == torch.uint16 else 1.0)
    if channels == "y":
        image = gray_to_y(image) if image.shape[0] == 1 else rgb_to_ycbcr(image)[:1]
    elif channels == "rgb":
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    else:
        raise ValueError(f"channels must be 'y' or 'rgb', got {channels!r}")
    height, width = image.shape[-2] // scale * scale, image.shape[-1] // scale * scale
    hr = image[:, :height, :width].contiguous()
    lr = imresize(hr, 1 / scale)
    if hr.dtype == torch.uint8:
        return lr.float() / 255, hr.float() / 255
    return lr, hr


class SREval(torch.utils.data.Dataset):
    """Evaluation images as (LR, HR) pairs by :func:`eval_pair` (whole, or their central
    ``crop``; batch size 1: they differ in size). Items: {"input", "target", "name"}."""

    def __init__(self, paths, scale: int, channels: str, crop: int | None = None):
        self.paths, self.scale, self.channels = [Path(p) for p in paths], scale, channels
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> dict:
        lr, hr = eval_pair(self.paths[key_index(index)], self.scale, self.channels, self.crop)
        return {"input": lr, "target": hr, "name": self.paths[key_index(index)].name}


_SCALE_SUFFIX = re.compile(r"^(?P<stem>.+?)x(?P<scale>\d+)$")


def paired_paths(lr_folder, hr_folder, scale: int) -> list[tuple[Path, Path]]:
    """(LR, HR) file pairs of two folders, matched by name: DIV2K's ``0001x4.png`` to
    ``0001.png`` (the ``x<scale>`` suffix must match ``scale``), or identical names."""
    from pyimg.data.source import folder_paths

    hr_by_stem = {p.stem: p for p in folder_paths(hr_folder)}
    pairs, unmatched = [], []
    for lr in folder_paths(lr_folder):
        match = _SCALE_SUFFIX.match(lr.stem)
        stem = lr.stem
        if match and int(match["scale"]) == scale:
            stem = match["stem"]
        if stem in hr_by_stem:
            pairs.append((lr, hr_by_stem[stem]))
        else:
            unmatched.append(lr.name)
    if unmatched:
        raise OSError(f"{lr_folder}: {len(unmatched)} LR images have no HR image of the "
                      f"same name in {hr_folder}, e.g. {unmatched[0]}")
    return pairs


class PairedSR(torch.utils.data.Dataset):
    """Random aligned crops of ready-made LR/HR pairs (DIV2K's ``X4/0001x4.png`` layout):
    a ``gt_size`` HR crop and its ``gt_size / scale`` LR crop, flips/rot90 on both. Every
    HR image must be ``scale`` times its LR image (up to a mod-crop), else the file is
    named in the error."""

    def __init__(self, pairs, scale: int, gt_size: int, channels: str = "rgb",
                 hflip: bool = True, rot: bool = True, cache: bool = False):
        _check_scale(scale, gt_size)
        self.lr = ImageSource([p[0] for p in pairs], channels, cache,
                              min_size=gt_size // scale)
        self.hr = ImageSource([p[1] for p in pairs], channels, cache, min_size=gt_size)
        self.scale, self.gt_size, self.hflip, self.rot = scale, gt_size, hflip, rot

    def __len__(self) -> int:
        return len(self.lr)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        rng = sample_rng(key)
        index = key_index(key)
        lr, hr = self.lr[index], self.hr[index]
        s, g = self.scale, self.gt_size
        if hr.shape[-2] // s != lr.shape[-2] or hr.shape[-1] // s != lr.shape[-1]:
            raise ValueError(f"{self.hr.paths[index]} ({hr.shape[-2]} x {hr.shape[-1]}) is not "
                             f"{s} times {self.lr.paths[index]} ({lr.shape[-2]} x "
                             f"{lr.shape[-1]})")
        top, left = random_crop_box(lr.shape[-2], lr.shape[-1], g // s, rng)
        lr = lr[:, top:top + g // s, left:left + g // s]
        hr = hr[:, top * s:top * s + g, left * s:left * s + g]
        lr, hr = random_flips([lr, hr], rng, self.hflip, self.rot)
        return {"input": lr, "target": hr}
