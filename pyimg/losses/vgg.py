"""Losses on VGG19 features (Simonyan & Zisserman 2015): the perceptual/content loss of
Johnson et al. 2016 and SRGAN (Ledig et al. 2017), and the Gram-matrix style loss of Gatys
et al. 2016.

The VGG weights come from a local file, never from the network at run time: a state_dict of
torchvision's ``vgg19`` (whole model or ``features`` only), saved once wherever there is
internet, e.g. ``torch.save(torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict(),
"vgg19.pth")``; pass its path or set ``PYIMG_VGG19_WEIGHTS``.
"""

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pyimg.models._vgg import VGG19, vgg_features

WEIGHTS_ENV = "PYIMG_VGG19_WEIGHTS"
# torchvision's ImageNet preprocessing, for RGB inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_positions(features: nn.Sequential) -> dict[str, int]:
    """"i_j" -> index of the ReLU after the j-th conv of block i (phi_{i,j} in SRGAN)."""
    positions, block, conv = {}, 1, 0
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            block, conv = block + 1, 0
        elif isinstance(module, nn.ReLU):
            conv += 1
            positions[f"{block}_{conv}"] = index
    return positions


class VGG19Features(nn.Module):
    """VGG19's convolutional part, frozen, returning the activations phi_{i,j} asked for
    (after the ReLU of the j-th conv before the i-th max-pool). Inputs are RGB in [0, 1];
    the ImageNet normalisation happens inside. Keys match torchvision's ``vgg19``."""

    def __init__(self):
        super().__init__()
        self.features = vgg_features(VGG19)
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # returned activations must survive later layers
        self.positions = _layer_positions(self.features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None) -> "VGG19Features":
        """Load ImageNet weights from ``path`` (or ``$PYIMG_VGG19_WEIGHTS``)."""
        path = path or os.environ.get(WEIGHTS_ENV)
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"VGG19 weights not found (path={path!r}). pyimg never downloads weights: "
                "save torchvision's once, e.g. torch.save(torchvision.models.vgg19(weights="
                "'IMAGENET1K_V1').state_dict(), 'vgg19.pth'), then pass its path or set "
                f"${WEIGHTS_ENV}."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in state):  # a whole torchvision vgg19
            state = {k.removeprefix("features."): v for k, v in state.items()
                     if k.startswith("features.")}
        model = cls()
        model.features.load_state_dict(state)  # strict: a file of another network fails here
        return model

    def check_layers(self, layers: Sequence[str]) -> None:
        if not layers:
            raise ValueError("choose at least one VGG19 layer")
        unknown = [name for name in layers if name not in self.positions]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; choose from "
                             f"{list(self.positions)}")

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = {self.positions[name]: name for name in layers}
        out = {}
        x = (x - self.mean) / self.std
        for index, module in enumerate(self.features[:max(wanted) + 1]):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def _features(features: VGG19Features | None, weights_path) -> VGG19Features:
    return features if features is not None else VGG19Features.from_file(weights_path)


class PerceptualLoss(nn.Module):
    """Content loss: MSE between VGG19 activations phi_{i,j} of prediction and target,
    summed over ``layers`` ("5_4" is SRGAN's VGG54, "2_2" its VGG22; Johnson et al. use
    "2_2"-like relu2_2 on VGG16). ``features`` shares one loaded VGG19Features between
    losses; otherwise the weights load from ``weights_path``."""

    def __init__(self, layers: Sequence[str] = ("5_4",), weights_path=None,
                 features: VGG19Features | None = None):
        super().__init__()
        self.vgg = _features(features, weights_path)
        self.layers = tuple(layers)
        self.vgg.check_layers(self.layers)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        phi_pred, phi_target = self.vgg(pred, self.layers), self.vgg(target, self.layers)
        return sum(F.mse_loss(phi_pred[k], phi_target[k]) for k in self.layers)


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """(N, C, C) Gram matrices of NCHW features, normalised by C*H*W (Johnson et al. 2016)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class StyleLoss(nn.Module):
    """Style reconstruction loss: MSE between Gram matrices of VGG19 activations, summed over
    ``layers`` (default Gatys et al.'s relu1_1 ... relu5_1). A single style image (batch 1)
    is compared with every image of the batch."""

    def __init__(self, layers: Sequence[str] = ("1_1", "2_1", "3_1", "4_1", "5_1"),
                 weights_path=None, features: VGG19Features | None = None):
        super().__init__()
        self.vgg = _features(features, weights_path)
        self.layers = tuple(layers)
        self.vgg.check_layers(self.layers)

    def forward(self, pred: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        phi_pred, phi_style = self.vgg(pred, self.layers), self.vgg(style, self.layers)
        total = 0
        for k in self.layers:
            g_pred = gram_matrix(phi_pred[k])
            total = total + F.mse_loss(g_pred, gram_matrix(phi_style[k]).expand_as(g_pred))
        return total
