"""The normalisation layers the image-translation papers choose between."""

from torch import nn

from pyimg import nn as pnn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"`` or ``"instance"`` (Ulyanov et al. 2016; without affine parameters or running
    statistics, as pix2pix and CycleGAN use it)."""
    if kind == "batch":
        return pnn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    raise ValueError(f"norm must be 'batch' or 'instance', got {kind!r}")
