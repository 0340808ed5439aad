"""A list of image files read as tensors on demand, with a clear policy for bad files."""

import os
import warnings
from pathlib import Path

import torch

from pyimg.data.color import gray_to_y, rgb_to_y
from pyimg.data.io import read_array, to_tensor

# What a model is fed: colour, grey, the luma Y of MATLAB's rgb2ycbcr, or as stored.
SOURCE_CHANNELS = ("rgb", "gray", "y", "any")


def convert_channels(image: torch.Tensor, channels: str) -> torch.Tensor:
    """A (C, H, W) image in [0, 1] from :func:`pyimg.data.io.to_tensor` ("any") as
    ``channels``; "y" takes a grey image as R = G = B."""
    if channels == "y":
        return gray_to_y(image) if image.shape[0] == 1 else rgb_to_y(image)
    if channels == "rgb" and image.shape[0] == 1:
        return image.expand(3, -1, -1).contiguous()
    if channels == "gray" and image.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (image * weights).sum(0, keepdim=True)
    return image


class ImageSource:
    """Image files read as (C, H, W) float32 tensors in [0, 1] of ``channels``.

    A file that cannot be read, or is smaller than ``min_size`` on a side, raises
    ``OSError``/``ValueError`` naming it. With ``skip_bad=True`` every file is read once
    here instead, and the bad ones are left out and listed in ``skipped`` (path, reason),
    with one warning giving their number. ``cache=True`` keeps the decoded images in memory
    (each DataLoader worker holds its own copy).
    """

    def __init__(self, paths, channels: str = "rgb", cache: bool = False,
                 skip_bad: bool = False, min_size: int = 1):
        if channels not in SOURCE_CHANNELS:
            raise ValueError(f"channels must be one of {SOURCE_CHANNELS}, got {channels!r}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no images given")
        self.channels, self.min_size, self.cache = channels, min_size, cache
        self._cached: dict[int, torch.Tensor] = {}
        self.skipped: list[tuple[Path, str]] = []
        if skip_bad:
            self._drop_bad()

    def _drop_bad(self) -> None:
        good = []
        for path in self.paths:
            try:
                image = self._read(path)
            except (OSError, ValueError) as error:
                self.skipped.append((path, str(error)))
                continue
            if self.cache:
                self._cached[len(good)] = image
            good.append(path)
        if self.skipped:
            warnings.warn(f"skipped {len(self.skipped)} of {len(self.paths)} images that "
                          f"cannot be used, e.g. {self.skipped[0][1]}", stacklevel=3)
        if not good:
            raise ValueError(f"none of the {len(self.paths)} images can be used: "
                             f"{self.skipped[0][1]}")
        self.paths = good

    def _read(self, path: Path) -> torch.Tensor:
        image = convert_channels(to_tensor(read_array(path), "any"), self.channels)
        if min(image.shape[-2:]) < self.min_size:
            raise ValueError(f"{path}: {image.shape[-2]} x {image.shape[-1]} pixels, smaller "
                             f"than the {self.min_size}-pixel crop")
        return image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        if index in self._cached:
            return self._cached[index]
        image = self._read(self.paths[index])
        if self.cache:
            self._cached[index] = image
        return image

    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of every image, from the file headers where possible."""
        from PIL import Image

        out = []
        for i, path in enumerate(self.paths):
            if i in self._cached:
                out.append(tuple(self._cached[i].shape[-2:]))
                continue
            try:
                with Image.open(path) as image:
                    out.append((image.height, image.width))
            except (OSError, ValueError):
                out.append(tuple(self[i].shape[-2:]))
        return out


def folder_paths(folder: str | os.PathLike) -> list[Path]:
    """Every image under ``folder``, raising a clear error when there is none."""
    from pyimg.data.io import list_images

    paths = list_images(folder)
    if not paths:
        raise OSError(f"{folder}: no image files found (looked for PNG, JPEG, TIFF, BMP, "
                      "WebP, PPM)")
    return paths
