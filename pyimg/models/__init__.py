"""The model zoo: image-to-image networks built from ``pyimg.nn``, each faithful to its paper
(see the class docstrings for the paper, the configuration and the input-size rule).

``create(name, **kwargs)`` builds one by name, ``list_models()`` lists them;
``pretrained(name)`` loads one with the weights that ship with pyimg (``list_pretrained()``,
``pretrained_info(name)``).
``pyimg.inference.optimize_for_inference(model)`` prepares one for fast CPU inference.
"""

from pyimg.models._registry import create, list_models
from pyimg.models.colorization import ColorizationNet
from pyimg.models.fcn import FCN8s, FCN16s, FCN32s
from pyimg.models.generative import DCGANDiscriminator, DCGANGenerator, DenoisingAutoencoder
from pyimg.models.pix2pix import PatchGANDiscriminator, Pix2PixGenerator
from pyimg.models.pretrained import list_pretrained, pretrained, pretrained_info
from pyimg.models.rednet import REDNet30
from pyimg.models.segnet import SegNet
from pyimg.models.style import CycleGANGenerator, FastStyleNet
from pyimg.models.super_resolution import ESPCN, VDSR, SRGANDiscriminator, SRResNet
from pyimg.models.unet import UNet

__all__ = [
    "ESPCN",
    "VDSR",
    "ColorizationNet",
    "CycleGANGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DenoisingAutoencoder",
    "FCN8s",
    "FCN16s",
    "FCN32s",
    "FastStyleNet",
    "PatchGANDiscriminator",
    "Pix2PixGenerator",
    "REDNet30",
    "SRGANDiscriminator",
    "SRResNet",
    "SegNet",
    "UNet",
    "create",
    "list_models",
    "list_pretrained",
    "optimize_for_inference",
    "pretrained",
    "pretrained_info",
]
