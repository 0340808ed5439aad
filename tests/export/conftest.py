"""What the export tests share: each zoo model at its tiny configuration (tests/models) with
weights and batch-norm statistics randomized (FCN's zero-initialized scores would make every
comparison trivially equal), the smallest height and width its exported program takes, and
one torch.export per (model, converted) for the tests to share."""

import functools

import torch
from models.conftest import TINY

import pyimg
from pyimg import models
from pyimg.export import export

# The smallest side each tiny zoo model exports for: torch.export refuses a range whose every
# size it cannot take, and a 1-pixel map deep in a network (a 32-pixel SegNet input, pooled
# five times) makes strides ambiguous, which torch specializes.
MIN_SIZE = {
    "ColorizationNet": 9, "CycleGANGenerator": 2, "DCGANDiscriminator": 17,
    "DCGANGenerator": 2, "DenoisingAutoencoder": 5, "ESPCN": 2, "FCN8s": 27, "FCN16s": 27,
    "FCN32s": 27, "FastStyleNet": 5, "PatchGANDiscriminator": 16, "Pix2PixGenerator": 9,
    "REDNet30": 32, "SRGANDiscriminator": 17, "SRResNet": 2, "SegNet": 33, "UNet": 2,
    "VDSR": 2,
}


@torch.no_grad()
def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Zero-initialized parameters drawn at random; batch norms given statistics and affine
    parameters away from the identity; eval mode."""
    for p in model.parameters():
        if not p.any():
            p.uniform_(-0.1, 0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def zoo_model(name: str, converted: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomized(models.create(name, **TINY[name].kwargs))
    return pyimg.convert(model) if converted else model


def sizes(name: str) -> list[tuple[int, int, int]]:
    """(batch, height, width) to check an exported model at: its smallest side, odd sizes."""
    low = MIN_SIZE[name]
    return [(1, low, low + 1), (3, low + 7, 2 * low + 5), (2, 2 * low + 9, low + 2)]


def example(name: str):
    low = MIN_SIZE[name]
    return TINY[name].inputs(2, low + 3, low + 4)


@functools.cache
def exported(name: str, converted: bool):
    """(eager model, its ExportedProgram with dynamic batch / height / width)."""
    model = zoo_model(name, converted)
    return model, export(model, example(name), min_size=MIN_SIZE[name])
