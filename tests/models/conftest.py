"""Tiny configurations of every zoo model, shared by the model tests: constructor kwargs
that keep each network a few thousand parameters wide (same architecture as the paper's,
fewer channels) and a function making its inputs for a batch of n images of h x w."""

from dataclasses import dataclass, field

import pytest
import torch

from pyimg import models


def images(channels):
    return lambda n, h, w: (torch.rand(n, channels, h, w),)


@dataclass(frozen=True)
class Tiny:
    kwargs: dict
    inputs: object  # (n, h, w) -> tuple of input tensors
    out_shape: object  # (n, h, w) -> expected output shape
    extra: dict = field(default_factory=dict)


TINY = {
    "FCN32s": Tiny(dict(num_classes=3, width=1 / 16, fc_channels=8), images(3),
                   lambda n, h, w: (n, 3, h, w)),
    "FCN16s": Tiny(dict(num_classes=3, width=1 / 16, fc_channels=8), images(3),
                   lambda n, h, w: (n, 3, h, w)),
    "FCN8s": Tiny(dict(num_classes=3, width=1 / 16, fc_channels=8), images(3),
                  lambda n, h, w: (n, 3, h, w)),
    "UNet": Tiny(dict(in_channels=1, num_classes=3, base_channels=4, depth=2), images(1),
                 lambda n, h, w: (n, 3, h, w)),
    "SegNet": Tiny(dict(in_channels=3, num_classes=4, width=1 / 16), images(3),
                   lambda n, h, w: (n, 4, h, w)),
    "ESPCN": Tiny(dict(upscale_factor=3, in_channels=1, channels=8), images(1),
                  lambda n, h, w: (n, 1, 3 * h, 3 * w)),
    "VDSR": Tiny(dict(in_channels=1, channels=4, num_layers=5), images(1),
                 lambda n, h, w: (n, 1, h, w)),
    "SRResNet": Tiny(dict(upscale_factor=4, in_channels=3, channels=4, num_blocks=2),
                     images(3), lambda n, h, w: (n, 3, 4 * h, 4 * w)),
    "SRGANDiscriminator": Tiny(dict(in_channels=3, channels=2, hidden=8), images(3),
                               lambda n, h, w: (n, 1)),
    "REDNet30": Tiny(dict(in_channels=1, channels=4), images(1),
                     lambda n, h, w: (n, 1, h, w)),
    "Pix2PixGenerator": Tiny(dict(in_channels=3, out_channels=2, base_channels=4, num_downs=3,
                                  test_time_dropout=False), images(3),
                             lambda n, h, w: (n, 2, h, w)),
    "PatchGANDiscriminator": Tiny(
        dict(in_channels=5, base_channels=4, n_layers=2),
        lambda n, h, w: (torch.rand(n, 3, h, w), torch.rand(n, 2, h, w)),
        lambda n, h, w: (n, 1, max(h, 12) // 4 - 2, max(w, 12) // 4 - 2)),
    "CycleGANGenerator": Tiny(dict(base_channels=4, num_blocks=2), images(3),
                              lambda n, h, w: (n, 3, h, w)),
    "FastStyleNet": Tiny(dict(base_channels=4, num_blocks=2), images(3),
                         lambda n, h, w: (n, 3, h, w)),
    "DenoisingAutoencoder": Tiny(dict(in_channels=1, widths=(4, 8), latent_channels=4),
                                 images(1), lambda n, h, w: (n, 1, h, w)),
    "DCGANGenerator": Tiny(dict(latent_dim=8, out_channels=3, base_channels=4),
                           lambda n, h, w: (torch.randn(n, 8),), lambda n, h, w: (n, 3, 64, 64)),
    "DCGANDiscriminator": Tiny(dict(in_channels=3, base_channels=4), images(3),
                               lambda n, h, w: (n, 1)),
    "ColorizationNet": Tiny(dict(width=1 / 32), images(1), lambda n, h, w: (n, 2, h, w)),
}


@pytest.fixture(scope="session")
def tiny_specs():
    """Model name -> Tiny spec."""
    return TINY


@pytest.fixture(params=sorted(TINY))
def tiny(request):
    """(name, model, Tiny spec) of each zoo model at its tiny configuration (seeded)."""
    torch.manual_seed(0)
    spec = TINY[request.param]
    return request.param, models.create(request.param, **spec.kwargs), spec
